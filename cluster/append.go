package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/wire"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The headers of a message of the stream of entries: the id of its first
// entry, how many it holds, and the connection and attempt that sent it. The ids
// of a message follow those of the message before it, which the stream
// checks when it takes the message (the expected last sequence), so every
// message says its own ids. Its data is a PublishRequest holding the
// entries, in wire form.
const (
	headerID     = "Pxperf-Id"
	headerCount  = "Pxperf-Count"
	headerOrigin = "Pxperf-Origin"
)

// idReserve is how far past the ids given the reserved mark (see
// [appender.reserve]) is moved at once.
const idReserve = 1 << 20

// idsKey is the key of the reserved mark in the config bucket.
const idsKey = "ids"

// headerSlack is what a message's headers and framing may take of the
// NATS server's maximum payload.
const headerSlack = 1024

// ErrForeign is wrapped by the errors about a message of the stream of
// entries that pxperf did not write, or wrote before a message held a
// batch with its ids in its headers.
var ErrForeign = errors.New("not written by this pxperf: use a stream of its own")

// ErrTooLarge is wrapped by the errors of [Log.Append] for an entry larger
// than a message of the NATS servers may be.
var ErrTooLarge = errors.New("larger than a NATS message may be")

// part is entries of one producer's batch, encoded, that go to the stream
// in one message unless they travel with others: parts without a MsgID
// waiting together share a message.
type part struct {
	entries []*pxperfv1.Entry
	data    []byte // entries as a PublishRequest in wire form
	msgID   string
	chain   *Chain
	done    chan partResult // buffered: the appender never waits on it
}

// Chain ties appends whose order matters, such as the batches of one
// producer's stream: once one of them fails, or its caller gives up
// waiting, those after it that have not left yet fail too, rather than be
// stored after it. The zero value is ready to use.
type Chain struct {
	failed atomic.Bool // or given up
}

type partResult struct {
	first, seq uint64
	err        error
}

// appender publishes the parts of [Log.Append] to the stream of entries one
// message at a time, so that each message's ids follow the message before
// it: while one message is on its way, the parts queued meanwhile wait,
// and then go together (a group commit).
type appender struct {
	l    *Log
	wake chan struct{}
	ctx  context.Context // ends at close
	stop context.CancelFunc
	done chan struct{}

	mu    sync.Mutex
	queue []*part

	// Owned by run.
	tip      tip
	reserved uint64 // ids below it are reserved; 0: not read yet
	attempts uint64 // messages sent, each named by it in Pxperf-Origin
}

// tip is the newest message of the stream of entries, as last known.
type tip struct {
	known bool
	seq   uint64 // its sequence
	next  uint64 // the id after its last
}

// newAppender starts the appender of l, from t, the stream's newest
// message as Open found it.
func newAppender(l *Log, t tip) *appender {
	a := &appender{l: l, tip: t, wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.ctx, a.stop = context.WithCancel(context.Background())
	go a.run()
	return a
}

// close stops the appender: the message on its way is given up, and the
// parts queued fail.
func (a *appender) close() {
	a.stop()
	<-a.done
}

// add queues parts, in order.
func (a *appender) add(parts []*part) {
	a.mu.Lock()
	// Under the lock: run fails what is queued when it stops, under it too.
	if a.ctx.Err() != nil {
		a.mu.Unlock()
		for _, p := range parts {
			p.done <- partResult{err: fmt.Errorf("%w: the connection is closed", ErrUnavailable)}
		}
		return
	}
	a.queue = append(a.queue, parts...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *appender) run() {
	defer close(a.done)
	for a.ctx.Err() == nil {
		if a.failChained() {
			continue
		}
		group := a.take()
		if group == nil {
			select {
			case <-a.ctx.Done():
			case <-a.wake:
			}
			continue
		}
		a.publish(group)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.queue {
		p.done <- partResult{err: fmt.Errorf("%w: the connection is closed", ErrUnavailable)}
	}
	a.queue = nil
}

// take takes the next message's parts from the queue: a part with a MsgID
// alone, so that the stream can tell a retry of it; else the parts without
// one that follow, as many as fit a message.
func (a *appender) take() []*part {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return nil
	}
	n, size, limit := 1, len(a.queue[0].data), a.l.maxData()
	if a.queue[0].msgID == "" {
		for n < len(a.queue) && a.queue[n].msgID == "" && !a.queue[n].chain.failed.Load() && size+len(a.queue[n].data) <= limit {
			size += len(a.queue[n].data)
			n++
		}
	}
	group := slices.Clone(a.queue[:n])
	a.queue = a.queue[n:]
	return group
}

// failChained fails the parts at the head of the queue whose chain failed,
// and reports whether it did: they are not to be stored after the part
// that failed.
func (a *appender) failChained() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for n < len(a.queue) && a.queue[n].chain.failed.Load() {
		a.queue[n].done <- partResult{err: fmt.Errorf("%w: an earlier batch of the same stream failed", ErrUnavailable)}
		n++
	}
	a.queue = a.queue[n:]
	return n > 0
}

// publish appends group as one message, and tells each part where it went.
func (a *appender) publish(group []*part) {
	ctx, cancel := context.WithTimeout(a.ctx, a.l.cfg.PublishTimeout)
	defer cancel()
	first, seq, err := a.append(ctx, group)
	for _, p := range group {
		if err != nil {
			p.chain.failed.Store(true)
		}
		p.done <- partResult{first: first, seq: seq, err: err}
		first += uint64(len(p.entries))
	}
}

// append publishes group as one message whose ids follow the stream's
// newest message, and returns the first id and its sequence. When another
// node appended meanwhile, it learns the stream's newest message and
// tries again.
func (a *appender) append(ctx context.Context, group []*part) (first, seq uint64, err error) {
	// Serialised PublishRequests that hold only entries, one after the
	// other, are one that holds them all.
	data := group[0].data
	entries := group[0].entries
	if len(group) > 1 {
		size, count := 0, 0
		for _, p := range group {
			size += len(p.data)
			count += len(p.entries)
		}
		data, entries = make([]byte, 0, size), make([]*pxperfv1.Entry, 0, count)
		for _, p := range group {
			data = append(data, p.data...)
			entries = append(entries, p.entries...)
		}
	}
	count := len(entries)
	for {
		if !a.tip.known {
			if a.tip, err = a.l.tip(ctx); err != nil {
				return 0, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
		next := a.tip.next
		if err := a.reserve(ctx, next+uint64(count)); err != nil {
			a.tip.known = false
			return 0, 0, err
		}
		m := &nats.Msg{Subject: a.l.cfg.Subject, Data: data, Header: nats.Header{}}
		m.Header.Set(headerID, strconv.FormatUint(next, 10))
		m.Header.Set(headerCount, strconv.Itoa(count))
		a.attempts++
		origin := a.l.origin + "." + strconv.FormatUint(a.attempts, 10)
		m.Header.Set(headerOrigin, origin)
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequence(a.tip.seq)}
		if len(group) == 1 && group[0].msgID != "" {
			opts = append(opts, jetstream.WithMsgID(group[0].msgID))
		}
		// Taken, the message is the one after the tip: this node's
		// follower may apply the entries as they are, not decoded again.
		seq := a.tip.seq + 1
		a.l.local.put(seq, origin, entries)
		ack, err := a.l.js.PublishMsg(ctx, m, opts...)
		if err != nil || ack.Duplicate || ack.Sequence != seq {
			a.l.local.drop(seq)
		}
		var apiErr *jetstream.APIError
		switch {
		case err == nil && ack.Duplicate:
			// Taken before, under the ids it was given then. The tip may
			// have moved since: learn it before the next message.
			a.tip.known = false
			h, err := a.l.headerFrom(ctx, ack.Sequence)
			if err != nil {
				return 0, 0, fmt.Errorf("%w: read message %d of stream %s: %w", ErrUnavailable, ack.Sequence, a.l.cfg.Stream, err)
			}
			return h.first, ack.Sequence, nil
		case err == nil:
			a.tip = tip{known: true, seq: ack.Sequence, next: next + uint64(count)}
			return next, ack.Sequence, nil
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			a.tip.known = false // another node appended: follow its message
		default:
			a.tip.known = false // it may have been taken: learn
			return 0, 0, fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("%w: no message taken within %v, others appending: %w", ErrUnavailable, a.l.cfg.PublishTimeout, err)
		}
	}
}

// reserve makes sure that the ids below next are reserved: the mark in
// the config bucket is above every id given, so that ids never go back,
// even after the stream lost all its messages by age. It is moved
// idReserve at a time, so that it is written seldom.
func (a *appender) reserve(ctx context.Context, next uint64) error {
	if next <= a.reserved {
		return nil
	}
	if err := a.l.reserveFrom(ctx, next+idReserve); err != nil {
		return err
	}
	a.reserved = next + idReserve
	return nil
}

// reserveFrom raises the reserved mark to first, so that the stream's ids
// start there, or above, when it holds none: those below are taken.
func (l *Log) reserveFrom(ctx context.Context, first uint64) error {
	for {
		mark, rev, err := l.reserved(ctx)
		if err != nil || mark >= first {
			return err
		}
		value := []byte(strconv.FormatUint(first, 10))
		if rev == 0 {
			_, err = l.config.Create(ctx, idsKey, value)
		} else {
			_, err = l.config.Update(ctx, idsKey, value, rev)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			// another node moved it: read it again
		default:
			return fmt.Errorf("%w: reserve ids: %w", ErrUnavailable, err)
		}
	}
}

// reserved reads the reserved mark and its revision; 0 and 0 when none.
func (l *Log) reserved(ctx context.Context) (uint64, uint64, error) {
	e, err := l.config.Get(ctx, idsKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: read the reserved ids: %w", ErrUnavailable, err)
	}
	mark, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("the reserved ids in the config bucket, %q, are not a number: %w", e.Value(), err)
	}
	return mark, e.Revision(), nil
}

// tip reads the stream's newest message of entries, and the id after it.
// For a stream that holds none (they went by age), the id after is the one
// after the last this node applied when that was the stream's last
// message, else the reserved mark: ids never go back, but may jump.
func (l *Log) tip(ctx context.Context) (tip, error) {
	for {
		m, err := l.entries.GetLastMsgForSubject(ctx, l.cfg.Subject)
		if err == nil {
			h, err := parseHeader(m.Header)
			if err != nil {
				return tip{}, fmt.Errorf("the newest message of stream %s (sequence %d): %w", l.cfg.Stream, m.Sequence, err)
			}
			return tip{known: true, seq: m.Sequence, next: h.first + uint64(h.count)}, nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return tip{}, fmt.Errorf("read the newest message of stream %s: %w", l.cfg.Stream, err)
		}
		info, err := l.entries.Info(ctx)
		if err != nil {
			return tip{}, fmt.Errorf("read the state of stream %s: %w", l.cfg.Stream, err)
		}
		if info.State.Msgs > 0 {
			continue // one came meanwhile
		}
		last := info.State.LastSeq
		// Every message takes a sequence and at least one id, so the ids
		// go on from the sequences at least.
		next := last + 1
		if seq, id := l.followed.get(); seq == last && seq > 0 {
			next = max(next, id) // applied here before it went: exact
		} else {
			mark, _, err := l.reserved(ctx)
			if err != nil {
				return tip{}, err
			}
			next = max(next, mark)
		}
		return tip{known: true, seq: last, next: next}, nil
	}
}

// followedTip is the last message of entries a node's follower applied,
// and the id after it.
type followedTip struct {
	mu        sync.Mutex
	seq, next uint64
}

func (f *followedTip) set(seq, next uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq, f.next = seq, next
}

func (f *followedTip) get() (seq, next uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq, f.next
}

// msgHeader is what the headers of a message of entries say.
type msgHeader struct {
	first  uint64
	count  int
	origin string
}

func parseHeader(h nats.Header) (msgHeader, error) {
	first, err := strconv.ParseUint(h.Get(headerID), 10, 64)
	if err != nil || first == 0 {
		return msgHeader{}, fmt.Errorf("no valid %s header (%q): %w", headerID, h.Get(headerID), ErrForeign)
	}
	count, err := strconv.Atoi(h.Get(headerCount))
	if err != nil || count < 1 {
		return msgHeader{}, fmt.Errorf("no valid %s header (%q): %w", headerCount, h.Get(headerCount), ErrForeign)
	}
	return msgHeader{first: first, count: count, origin: h.Get(headerOrigin)}, nil
}

// maxData is the most entry data one message carries.
func (l *Log) maxData() int {
	return max(int(l.nc.MaxPayload())-headerSlack, 1)
}

// encodeParts encodes the entries of msgs, new entries all, into parts: as
// many entries to a part as fit a message, each part named after the
// MsgID of its first entry and its number of entries, so that a batch
// sent again with another number of entries is another batch, as in
// embedded mode.
func (l *Log) encodeParts(chain *Chain, msgs []Message) ([]*part, error) {
	var parts []*part
	var partSizes []int             // of each part's data
	sizes := make([]int, len(msgs)) // of each entry
	limit := l.maxData()
	for i, m := range msgs {
		sizes[i] = proto.Size(m.Entry)
		n := protowire.SizeTag(entriesField) + protowire.SizeBytes(sizes[i])
		if n > limit {
			return nil, fmt.Errorf("entry %d is %d bytes encoded: %w (%d bytes); lower memory.max_body_size or raise the NATS servers' max_payload",
				i, n, ErrTooLarge, limit)
		}
		if len(parts) == 0 || partSizes[len(parts)-1]+n > limit {
			parts = append(parts, &part{msgID: m.MsgID, chain: chain, done: make(chan partResult, 1)})
			partSizes = append(partSizes, 0)
		}
		parts[len(parts)-1].entries = append(parts[len(parts)-1].entries, m.Entry)
		partSizes[len(parts)-1] += n
	}
	// Each part as a PublishRequest in wire form, as proto.Marshal writes
	// it, with the entries' sizes just measured.
	i := 0
	for k, p := range parts {
		if p.msgID != "" {
			p.msgID += "+" + strconv.Itoa(len(p.entries))
		}
		p.data = make([]byte, 0, partSizes[k])
		for _, e := range p.entries {
			p.data = protowire.AppendTag(p.data, entriesField, protowire.BytesType)
			p.data = protowire.AppendVarint(p.data, uint64(sizes[i]))
			var err error
			if p.data, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(p.data, e); err != nil {
				return nil, fmt.Errorf("encode entry %d: %w", i, err)
			}
			i++
		}
	}
	return parts, nil
}

// entriesField is the field number of PublishRequest's entries.
var entriesField = (&pxperfv1.PublishRequest{}).ProtoReflect().Descriptor().Fields().ByName("entries").Number()

// decodeEntries decodes the count entries of a message's data. pxperf
// wrote them, so they decode; should they not, FAILED entries saying so
// keep the ids.
func decodeEntries(data []byte, count int) []*pxperfv1.Entry {
	var req pxperfv1.PublishRequest
	_, err := wire.UnmarshalPublish(data, &req, wire.Redaction{})
	if err == nil && len(req.Entries) != count {
		err = fmt.Errorf("it holds %d entries, its header says %d", len(req.Entries), count)
	}
	if err != nil {
		out := make([]*pxperfv1.Entry, count)
		for i := range out {
			out[i] = undecodable(err)
		}
		return out
	}
	return req.Entries
}

// undecodable is the entry that stands for one that does not decode.
func undecodable(err error) *pxperfv1.Entry {
	return &pxperfv1.Entry{
		State: pxperfv1.EntryState_ENTRY_STATE_FAILED,
		Error: &pxperfv1.EntryError{Message: "pxperf cannot decode this message of the cluster's stream: " + err.Error()},
	}
}

// waitParts waits for the appender to take parts. When one fails, the
// appender fails its chain; when ctx ends first, waitParts gives the chain
// up: either way the parts not yet taken, and those of the chain queued
// after them, fail rather than be stored after the producer was told.
func (l *Log) waitParts(ctx context.Context, parts []*part) ([]partResult, error) {
	results := make([]partResult, len(parts))
	for i, p := range parts {
		select {
		case r := <-p.done:
			if r.err != nil {
				return nil, r.err
			}
			results[i] = r
		case <-ctx.Done():
			p.chain.failed.Store(true)
			return nil, fmt.Errorf("%w: not taken within %v: %w", ErrUnavailable, l.cfg.PublishTimeout, ctx.Err())
		}
	}
	return results, nil
}

// maxLocal bounds the messages a node keeps for its follower: should the
// follower not come by, the others are decoded when it does.
const maxLocal = 1024

// localMsgs are the entries of the messages this node appended, by
// sequence, for its follower to apply as they are rather than decode
// again. A message is the one kept when its origin, which names the
// connection and the attempt, matches: an attempt given up for lost that
// the stream took after all is not another attempt at the same sequence.
type localMsgs struct {
	mu sync.Mutex
	m  map[uint64]localMsg
}

type localMsg struct {
	origin  string
	entries []*pxperfv1.Entry
}

func (l *localMsgs) put(seq uint64, origin string, entries []*pxperfv1.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[uint64]localMsg)
	}
	if len(l.m) < maxLocal {
		l.m[seq] = localMsg{origin, entries}
	}
}

func (l *localMsgs) drop(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, seq)
}

// take returns the entries kept for the message seq from origin; the
// follower takes the messages in order, so those before seq are
// forgotten.
func (l *localMsgs) take(seq uint64, origin string) ([]*pxperfv1.Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.m {
		if s < seq {
			delete(l.m, s)
		}
	}
	m, ok := l.m[seq]
	delete(l.m, seq)
	return m.entries, ok && m.origin == origin
}
