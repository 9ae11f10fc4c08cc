// Package cluster is pxperf's cluster mode: the entries of several pxperf
// nodes live in a NATS JetStream stream, an existing replicated log, whose
// sequence numbers are their ids. Every node appends what its producers
// publish and follows the stream into its own store, so every node serves
// the same entries under the same ids.
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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	// FirstID is the first id of a stream of entries created by Open: an
	// embedded install that moves to cluster mode continues its ids. 0 or
	// 1 starts at 1; an existing stream keeps its ids.
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
}

// Message is one entry to append: a new entry, or the completion of the
// PENDING entry Completes.
type Message struct {
	// Entry is the entry, normalised, with the data of its bodies.
	Entry *pxperfv1.Entry
	// Completes is the id of the entry it completes; 0 for a new entry.
	Completes uint64
	// MsgID makes retries of the same message one message: the stream
	// keeps the first and acknowledges the others with its sequence.
	// Empty for none.
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
	l := &Log{cfg: cfg, log: log, nc: nc, js: js}
	// A NATS cluster that has just started elects its JetStream leader
	// first: until then the streams cannot be created. Retry until ctx
	// ends.
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.ensureStreams(actx)
		cancel()
		if err == nil {
			return l, nil
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
	ec.Description = "pxperf entries: the sequence numbers are their ids"
	if l.cfg.FirstID > 1 {
		ec.FirstSeq = l.cfg.FirstID
	}
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
	l.config, err = l.js.CreateKeyValue(ctx, kc)
	if errors.Is(err, jetstream.ErrBucketExists) {
		l.config, err = l.js.KeyValue(ctx, kc.Bucket)
	}
	if err != nil {
		return fmt.Errorf("create the config bucket %s: %w", kc.Bucket, err)
	}
	return nil
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
				cfg.FirstSeq = have.FirstSeq // set at creation only
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
func (l *Log) Close() { l.nc.Close() }

// Connected reports whether the connection to NATS is up.
func (l *Log) Connected() bool { return l.nc.IsConnected() }

// Server returns the URL of the NATS server connected to, its password
// masked; empty while disconnected.
func (l *Log) Server() string { return l.nc.ConnectedUrlRedacted() }

// Append publishes msgs and waits for the streams to acknowledge them all.
// It returns the sequence of each in the stream it went to: the entry's id
// for a new entry. It fails wrapping [ErrUnavailable] when any is not
// acknowledged in time; those acknowledged stay in the stream, and a retry
// with the same MsgIDs is acknowledged with their sequences again. Such a
// retry may store the messages the stream missed after those it took: a
// batch keeps its order only when it is taken whole.
func (l *Log) Append(ctx context.Context, msgs []Message) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		data, err := proto.Marshal(m.Entry)
		if err != nil {
			return nil, fmt.Errorf("encode entry %d: %w", i, err)
		}
		// The subjects are the streams' alone (JetStream refuses streams
		// whose subjects overlap), so no expected-stream header is sent:
		// the server would check it for every message.
		subject := l.cfg.Subject
		if m.Completes != 0 {
			subject = l.completionSubject(m.Completes)
		}
		var opts []jetstream.PublishOpt
		if m.MsgID != "" {
			opts = append(opts, jetstream.WithMsgID(m.MsgID))
		}
		if futures[i], err = l.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data}, opts...); err != nil {
			return nil, fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
		}
	}
	seqs := make([]uint64, len(msgs))
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no acknowledgement within %v: %w", ErrUnavailable, l.cfg.PublishTimeout, ctx.Err())
		}
	}
	return seqs, nil
}

// State is the stream of entries as NATS reports it.
type State struct {
	// Msgs and Bytes are what the stream holds.
	Msgs, Bytes uint64
	// FirstSeq and LastSeq are the oldest and newest sequence held; the
	// stream is empty when LastSeq < FirstSeq.
	FirstSeq, LastSeq uint64
}

// State reads the state of the stream of entries.
func (l *Log) State(ctx context.Context) (State, error) {
	info, err := l.entries.Info(ctx)
	if err != nil {
		return State{}, fmt.Errorf("read the state of stream %s: %w", l.cfg.Stream, err)
	}
	s := info.State
	return State{Msgs: s.Msgs, Bytes: s.Bytes, FirstSeq: s.FirstSeq, LastSeq: s.LastSeq}, nil
}

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
