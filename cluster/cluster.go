// Package cluster is pxperf's cluster mode: the entries of several pxperf
// nodes live in a NATS JetStream stream, an existing replicated log. Every
// node appends what its producers publish and follows the stream into its
// own store, so every node serves the same entries under the same ids.
//
// A message of the stream holds the entries of one batch, or of several
// published together, and says in its headers the id of its first entry
// and how many it holds. Its ids follow those of the message before it:
// the node appending asks the stream to take it only after the message it
// knows as the newest (JetStream's expected last sequence), so a message
// whose ids another node's message took is refused, and sent again after
// that one. The stream's order is the ids' order, on every node.
//
// Completions of PENDING entries travel in a second stream, named after the
// first with "_COMPLETIONS", one subject per entry completed: the stream of
// entries keeps consecutive ids, and a completion can be looked up by the
// id it completes.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
)

// ErrUnavailable is wrapped by the errors of [Log.Append] when the stream
// did not take the entries: NATS is unreachable, or did not acknowledge in
// time. None of the batch may be taken as accepted.
var ErrUnavailable = errors.New("the cluster's stream is unavailable")

// DedupWindow is how long the stream remembers a message id: a message
// sent again with the same [Message].MsgID within it is kept once.
const DedupWindow = 2 * time.Minute

// Config says where the stream is and what it keeps.
type Config struct {
	// URLs of the NATS servers. Required.
	URLs []string
	// Stream names the stream of entries. Required.
	Stream string
	// Subject is the subject entries are published on. Required.
	Subject string
	// Replicas of each stream.
	Replicas int
	// MaxBytes bounds the stream of entries; 0 means no limit.
	MaxBytes int64
	// MaxAge bounds how long the streams keep messages; 0 means for ever.
	MaxAge time.Duration
	// CredsFile is a NATS credentials file; empty for none.
	CredsFile string
	// CAFile is a PEM file of certificate authorities for TLS; empty for
	// the system's.
	CAFile string
	// FirstID is an id the stream's ids are to start at, or above, while it
	// holds none: an embedded install that moves to cluster mode continues
	// its ids. 0 or 1 leaves them as they are; a stream that holds entries
	// goes on from its newest.
	FirstID uint64
	// PublishTimeout bounds how long Append waits for acknowledgements.
	PublishTimeout time.Duration
	// Name names the connection in the NATS server's monitoring.
	Name string
	// Log gets connection events; nil discards them.
	Log *slog.Logger
}

// Log is a connection to the cluster's streams.
type Log struct {
	cfg         Config
	log         *slog.Logger
	nc          *nats.Conn
	js          jetstream.JetStream
	entries     jetstream.Stream
	completions jetstream.Stream
	config      jetstream.KeyValue
	batches     jetstream.KeyValue // see PinBatch
	app         *appender
	origin      string      // names this connection in its messages' Pxperf-Origin
	local       localMsgs   // what this node appended, for its follower
	followed    followedTip // how far its follower got
	headers     struct {    // see headerFrom
		mu sync.Mutex
		m  map[uint64]msgHeader
	}
}

// Message is one entry to append: a new entry, or the completion of the
// PENDING entry Completes.
type Message struct {
	// Entry is the entry, normalised, with the data of its bodies.
	Entry *pxperfv1.Entry
	// Completes is the id of the entry it completes; 0 for a new entry.
	Completes uint64
	// MsgID makes retries of the same batch one: the stream keeps the
	// first and acknowledges the others with its ids. The new entries that
	// go in one message are named after the first one's MsgID (and their
	// number); a completion after its own. Empty for none.
	MsgID string
}

// Open connects to NATS and creates the streams, or brings their limits to
// cfg's. While JetStream is not ready it retries, until ctx ends.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("cluster: no NATS URL")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No buffering while disconnected: a publish then fails at once,
		// rather than being reported failed and stored later.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				log.Warn("lost the connection to NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", strings.Join(redacted(cfg.URLs), ","), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	l := &Log{cfg: cfg, log: log, nc: nc, js: js, origin: nuid.Next()}
	// A NATS cluster that has just started elects its JetStream leader
	// first: until then the streams cannot be created. Retry until ctx
	// ends.
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.ensureStreams(actx)
		if err == nil && l.cfg.FirstID > 1 {
			err = l.reserveFrom(actx, l.cfg.FirstID)
		}
		var t tip
		if err == nil {
			t, err = l.tip(actx) // and the stream is pxperf's
		}
		cancel()
		if err == nil {
			l.app = newAppender(l, t)
			return l, nil
		}
		if errors.Is(err, ErrForeign) {
			nc.Close()
			return nil, fmt.Errorf("stream %s: %w", cfg.Stream, err)
		}
		log.Info("waiting for JetStream", "err", err)
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ensureStreams creates the two streams and the config bucket, or updates
// their limits.
func (l *Log) ensureStreams(ctx context.Context) error {
	maxBytes := l.cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	base := jetstream.StreamConfig{
		Storage:    jetstream.FileStorage,
		Replicas:   max(l.cfg.Replicas, 1),
		MaxAge:     l.cfg.MaxAge,
		MaxBytes:   maxBytes,
		Discard:    jetstream.DiscardOld,
		Retention:  jetstream.LimitsPolicy,
		Duplicates: DedupWindow,
	}
	ec := base
	ec.Name = l.cfg.Stream
	ec.Subjects = []string{l.cfg.Subject}
	ec.Description = "pxperf entries: each message holds those from id Pxperf-Id on, Pxperf-Count of them"
	var err error
	if l.entries, err = l.ensureStream(ctx, ec); err != nil {
		return err
	}
	cc := base
	cc.Name = l.completionsStream()
	cc.Subjects = []string{l.cfg.Subject + ".completions.*"}
	cc.Description = "pxperf completions of PENDING entries, one subject per id completed"
	if l.completions, err = l.ensureStream(ctx, cc); err != nil {
		return err
	}
	kc := jetstream.KeyValueConfig{
		Bucket:      l.cfg.Stream + "_CONFIG",
		Description: "pxperf: the config the nodes share",
		History:     10,
		Replicas:    max(l.cfg.Replicas, 1),
		Storage:     jetstream.FileStorage,
	}
	if l.config, err = l.ensureBucket(ctx, kc); err != nil {
		return err
	}
	bc := jetstream.KeyValueConfig{
		Bucket:      l.cfg.Stream + "_BATCHES",
		Description: "pxperf: how the named batches of the deduplication window were ingested",
		History:     1,
		TTL:         DedupWindow,
		Replicas:    max(l.cfg.Replicas, 1),
		Storage:     jetstream.FileStorage,
	}
	l.batches, err = l.ensureBucket(ctx, bc)
	return err
}

// ensureBucket creates the key-value bucket cfg describes, or opens it
// when it exists.
func (l *Log) ensureBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := l.js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = l.js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create the bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ensureStream creates the stream cfg describes, or brings an existing
// one's limits to cfg's. It creates first and updates only a stream that
// differs: nodes starting together all try, and an update of a replicated
// stream whose creation is still under way waits for its leader.
func (l *Log) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := l.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = l.js.Stream(ctx, cfg.Name)
		if err == nil {
			have := s.CachedInfo().Config
			if have.Replicas != cfg.Replicas || have.MaxBytes != cfg.MaxBytes || have.MaxAge != cfg.MaxAge {
				s, err = l.js.UpdateStream(ctx, cfg)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create the stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

func (l *Log) completionsStream() string { return l.cfg.Stream + "_COMPLETIONS" }

// completionSubject is the subject of the completions of entry id.
func (l *Log) completionSubject(id uint64) string {
	return l.cfg.Subject + ".completions." + strconv.FormatUint(id, 10)
}

// Close closes the connection.
func (l *Log) Close() {
	l.app.close()
	l.nc.Close()
}

// Connected reports whether the connection to NATS is up.
func (l *Log) Connected() bool { return l.nc.IsConnected() }

// Server returns the URL of the NATS server connected to, its password
// masked; empty while disconnected.
func (l *Log) Server() string { return l.nc.ConnectedUrlRedacted() }

// Appended says where a [Message] went.
type Appended struct {
	// ID is the id of a new entry; for a completion, of the entry it
	// completes.
	ID uint64
	// Seq is the sequence of the message that holds it, in the stream it
	// went to: a follower holds it once it has applied Seq (see
	// [Follower.Wait]).
	Seq uint64
}

// Append publishes msgs and waits for the streams to take them all. The
// new entries go in as few messages of the stream of entries as fit, in
// order, under consecutive ids that follow the stream's newest; each
// completion is a message of the stream of completions. It fails wrapping
// [ErrUnavailable] when any is not taken in time: those taken stay in the
// streams, and a retry with the same MsgIDs is acknowledged with their
// ids again. An entry too large for a NATS message fails it wrapping
// [ErrTooLarge], and nothing is published.
func (l *Log) Append(ctx context.Context, msgs []Message) ([]Appended, error) {
	a, err := l.Start(nil, msgs)
	if err != nil {
		return nil, err
	}
	return a.Wait(ctx)
}

// Appending is an [Log.Append] under way: its messages are queued, in
// order after those of every Start before.
type Appending struct {
	l        *Log
	msgs     []Message
	parts    []*part                  // the new entries
	futures  []jetstream.PubAckFuture // the completions, by index in msgs
	deadline time.Time
}

// Start is the first half of [Log.Append]: it queues msgs and returns at
// once, so that the caller may start the next (which goes after these)
// before these are taken. The publish timeout counts from now. The caller
// must call [Appending.Wait]. The appends of a chain (nil: one of its own)
// that follow one that failed fail too, unless they left before.
func (l *Log) Start(chain *Chain, msgs []Message) (*Appending, error) {
	if chain == nil {
		chain = new(Chain)
	}
	if chain.failed.Load() {
		return nil, fmt.Errorf("%w: an earlier batch of the same stream failed", ErrUnavailable)
	}
	a := &Appending{l: l, msgs: msgs, deadline: time.Now().Add(l.cfg.PublishTimeout)}
	var fresh []Message // the new entries, in order
	for _, m := range msgs {
		if m.Completes == 0 {
			fresh = append(fresh, m)
		}
	}
	var err error
	if a.parts, err = l.encodeParts(chain, fresh); err != nil {
		return nil, err
	}
	// The completions name entries published before: they need not wait
	// for the new entries.
	for i, m := range msgs {
		if m.Completes == 0 {
			continue
		}
		data, err := proto.Marshal(m.Entry)
		if err != nil {
			return nil, fmt.Errorf("encode entry %d: %w", i, err)
		}
		var opts []jetstream.PublishOpt
		if m.MsgID != "" {
			opts = append(opts, jetstream.WithMsgID(m.MsgID))
		}
		if a.futures == nil {
			a.futures = make([]jetstream.PubAckFuture, len(msgs))
		}
		if a.futures[i], err = l.js.PublishMsgAsync(&nats.Msg{Subject: l.completionSubject(m.Completes), Data: data}, opts...); err != nil {
			return nil, fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
		}
	}
	l.app.add(a.parts)
	return a, nil
}

// Wait is the second half of [Log.Append]: it waits for the streams to
// take the messages, and returns where each went. When ctx ends first,
// the new entries not yet on their way to the stream stay out of it.
func (a *Appending) Wait(ctx context.Context) ([]Appended, error) {
	ctx, cancel := context.WithDeadline(ctx, a.deadline)
	defer cancel()
	results, err := a.l.waitParts(ctx, a.parts)
	if err != nil {
		return nil, err
	}
	out := make([]Appended, len(a.msgs))
	p, in := 0, 0 // the part of the next new entry, and its place in it
	for i, m := range a.msgs {
		if m.Completes != 0 {
			select {
			case ack := <-a.futures[i].Ok():
				out[i] = Appended{ID: m.Completes, Seq: ack.Sequence}
			case err := <-a.futures[i].Err():
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: no acknowledgement within %v: %w", ErrUnavailable, a.l.cfg.PublishTimeout, ctx.Err())
			}
			continue
		}
		out[i] = Appended{ID: results[p].first + uint64(in), Seq: results[p].seq}
		if in++; in == len(a.parts[p].entries) {
			p, in = p+1, 0
		}
	}
	return out, nil
}

// State is the stream of entries as NATS reports it.
type State struct {
	// Msgs and Bytes are what the stream holds; a message holds one or
	// more entries.
	Msgs, Bytes uint64
	// FirstSeq and LastSeq are the oldest and newest sequence held; the
	// stream is empty when LastSeq < FirstSeq.
	FirstSeq, LastSeq uint64
	// FirstID and LastID are the oldest and newest id held; 0 when the
	// stream is empty.
	FirstID, LastID uint64
}

// State reads the state of the stream of entries.
func (l *Log) State(ctx context.Context) (State, error) {
	info, err := l.entries.Info(ctx)
	if err != nil {
		return State{}, fmt.Errorf("read the state of stream %s: %w", l.cfg.Stream, err)
	}
	s := info.State
	st := State{Msgs: s.Msgs, Bytes: s.Bytes, FirstSeq: s.FirstSeq, LastSeq: s.LastSeq}
	if s.Msgs == 0 {
		return st, nil
	}
	// The oldest may go by age meanwhile: the next one then is.
	first, err := l.headerFrom(ctx, s.FirstSeq)
	if err == nil {
		st.FirstID = first.first
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return State{}, fmt.Errorf("read the oldest message of stream %s: %w", l.cfg.Stream, err)
	}
	if seq, next := l.followed.get(); seq == s.LastSeq {
		st.LastID = next - 1 // applied here: no need to read it
		return st, nil
	}
	last, err := l.headerFrom(ctx, s.LastSeq)
	if err == nil {
		st.LastID = last.first + uint64(last.count) - 1
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return State{}, fmt.Errorf("read the newest message of stream %s: %w", l.cfg.Stream, err)
	}
	return st, nil
}

// headerFrom returns the headers of the first message of entries at or
// after sequence seq. A message never changes, and State asks for the
// oldest and the newest every second: the last few are remembered.
func (l *Log) headerFrom(ctx context.Context, seq uint64) (msgHeader, error) {
	l.headers.mu.Lock()
	h, ok := l.headers.m[seq]
	l.headers.mu.Unlock()
	if ok {
		return h, nil
	}
	m, err := l.entries.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(l.cfg.Subject))
	if err != nil {
		return msgHeader{}, err
	}
	if h, err = parseHeader(m.Header); err != nil {
		return msgHeader{}, err
	}
	l.headers.mu.Lock()
	defer l.headers.mu.Unlock()
	if len(l.headers.m) >= maxHeaders || l.headers.m == nil {
		l.headers.m = make(map[uint64]msgHeader, maxHeaders)
	}
	l.headers.m[m.Sequence] = h
	return h, nil
}

// maxHeaders bounds the headers headerFrom remembers.
const maxHeaders = 8

// redacted returns urls with their passwords masked, for messages; one
// that does not parse is left out whole, since it may hold one.
func redacted(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		if pu, err := url.Parse(u); err == nil {
			out[i] = pu.Redacted()
		} else {
			out[i] = "(a URL that does not parse)"
		}
	}
	return out
}
