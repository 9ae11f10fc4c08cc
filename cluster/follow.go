package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
)

// Applier takes what the streams hold, in order: the entries, and each
// completion after the entry it completes.
type Applier interface {
	// Entries stores entries under the ids first, first+1, …. first is
	// above the last id given before when the ids between left the stream
	// unread.
	Entries(first uint64, entries []*pxperfv1.Entry)
	// Complete completes entry id with e.
	Complete(id uint64, e *pxperfv1.Entry)
}

// maxApplyBatch bounds the entries handed to Applier.Entries at once.
const maxApplyBatch = 1024

// completionLead is how far before the first entry followed the
// completions are read from: a completion is stored after its entry, but
// the two streams may have leaders on servers whose clocks differ. A
// completion of an entry not held is ignored by the applier.
const completionLead = time.Minute

// Follower follows the streams into an Applier, and says how far it got.
type Follower struct {
	mu          sync.Mutex
	id          uint64 // the last id applied
	entries     uint64 // sequence of the last message of entries applied
	completions uint64 // sequence of the last completion applied
	advanced    chan struct{}
	done        chan struct{}
	err         error
}

// Follow starts following the streams from the message that holds entry
// from (the oldest the stream holds when it holds none at or before from):
// entries in order, and each completion once its entry is applied. It
// runs until ctx ends or the streams cannot be read; see [Follower.Done].
func (l *Log) Follow(ctx context.Context, from uint64, a Applier) (*Follower, error) {
	start, last, err := l.locate(ctx, from)
	var startSeq uint64
	ccfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case err == nil:
		startSeq = start.msg.Sequence
		at := start.msg.Time.Add(-completionLead)
		ccfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &at}
	case errors.Is(err, ErrNotFound):
		// Nothing from there on as the stream was searched: from the
		// message after its last then.
		startSeq = last + 1
	default:
		return nil, fmt.Errorf("find entry %d in stream %s: %w", from, l.cfg.Stream, err)
	}
	ecfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: startSeq}
	econs, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, ecfg)
	if err != nil {
		return nil, fmt.Errorf("follow stream %s: %w", l.cfg.Stream, err)
	}
	ccons, err := l.js.OrderedConsumer(ctx, l.completionsStream(), ccfg)
	if err != nil {
		return nil, fmt.Errorf("follow stream %s: %w", l.completionsStream(), err)
	}
	f := &Follower{id: max(from, 1) - 1, entries: startSeq - 1, advanced: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	entries := make(chan jetstream.Msg, maxApplyBatch)
	completions := make(chan jetstream.Msg, maxApplyBatch)
	var readers sync.WaitGroup
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { f.err = err })
		cancel()
	}
	for _, r := range []struct {
		cons jetstream.Consumer
		out  chan<- jetstream.Msg
	}{{econs, entries}, {ccons, completions}} {
		it, err := r.cons.Messages()
		if err != nil {
			cancel()
			return nil, fmt.Errorf("follow the streams: %w", err)
		}
		readers.Go(func() {
			defer it.Stop()
			for {
				m, err := it.Next(jetstream.NextContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("read the stream: %w", err))
					}
					return
				}
				select {
				case r.out <- m:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		defer close(f.done)
		defer readers.Wait()
		defer cancel()
		f.apply(ctx, l, a, max(from, 1), entries, completions)
	}()
	return f, nil
}

// apply hands what the readers deliver to a, in order, until ctx ends.
func (f *Follower) apply(ctx context.Context, l *Log, a Applier, from uint64, entries, completions <-chan jetstream.Msg) {
	completionPrefix := l.cfg.Subject + ".completions."
	var waiting []jetstream.Msg // completions of entries not yet applied
	batch := make([]*pxperfv1.Entry, 0, maxApplyBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-entries:
			// The messages waiting are applied together: consecutive ids
			// in one call.
			var first, next, seq uint64 // of the batch: its ids, and its last message
			flush := func() {
				if len(batch) > 0 {
					a.Entries(first, batch)
					batch = batch[:0]
					f.advance(next-1, seq, 0)
				}
			}
		drain:
			for {
				mseq := sequence(m)
				h, err := parseHeader(m.Headers())
				var es []*pxperfv1.Entry
				if err == nil {
					var ok bool
					if es, ok = l.local.take(mseq, h.origin); !ok {
						es = decodeEntries(m.Data(), h.count)
					}
					if h.first < from { // the message the follower started in
						es = es[min(from-h.first, uint64(len(es))):]
						h.first = from
					}
				}
				switch {
				case err != nil:
					// Not pxperf's: nothing to apply, and the ids go on.
					l.log.Error("skipped a message of the cluster's stream", "sequence", mseq, "err", err)
				case len(es) == 0:
				case h.first != next || len(batch) >= maxApplyBatch:
					flush()
					first = h.first
					fallthrough
				default:
					batch = append(batch, es...)
					next = h.first + uint64(len(es))
				}
				seq = mseq
				select {
				case m = <-entries:
				default:
					break drain
				}
			}
			flush()
			f.advance(0, seq, 0) // past messages skipped too
			l.followed.set(seq, f.Applied().ID+1)
		case m := <-completions:
			waiting = append(waiting, m)
		}
		applied := f.Applied().ID
		for len(waiting) > 0 {
			id, err := strconv.ParseUint(strings.TrimPrefix(waiting[0].Subject(), completionPrefix), 10, 64)
			if err == nil && id > applied {
				break // in order: the later ones wait too
			}
			if err == nil {
				a.Complete(id, decode(waiting[0].Data()))
			}
			f.advance(0, 0, sequence(waiting[0]))
			waiting = waiting[1:]
		}
	}
}

// sequence returns m's sequence in its stream.
func sequence(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// decode returns the entry in data. pxperf wrote it, so it decodes; should
// it not, a FAILED entry saying so keeps its id.
func decode(data []byte) *pxperfv1.Entry {
	e := new(pxperfv1.Entry)
	if err := proto.Unmarshal(data, e); err != nil {
		return undecodable(err)
	}
	return e
}

// advance records progress: the last id, message of entries and
// completion applied (0 leaves one as it is).
func (f *Follower) advance(id, entries, completions uint64) {
	f.mu.Lock()
	f.id = max(f.id, id)
	f.entries = max(f.entries, entries)
	f.completions = max(f.completions, completions)
	close(f.advanced)
	f.advanced = make(chan struct{})
	f.mu.Unlock()
}

// Progress is how far a follower got.
type Progress struct {
	// ID is the last id applied.
	ID uint64
	// Entries and Completions are the sequences of the last message
	// applied of each stream.
	Entries, Completions uint64
}

// Applied returns how far the follower got.
func (f *Follower) Applied() Progress {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Progress{ID: f.id, Entries: f.entries, Completions: f.completions}
}

// Wait waits until the message of entries with sequence entries and the
// completion with sequence completions (0 for none) are applied.
func (f *Follower) Wait(ctx context.Context, entries, completions uint64) error {
	for {
		f.mu.Lock()
		ok := f.entries >= entries && f.completions >= completions
		advanced := f.advanced
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-advanced:
		case <-f.done:
			return fmt.Errorf("the node stopped following the stream: %w", f.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Done is closed when the follower stops.
func (f *Follower) Done() <-chan struct{} { return f.done }

// Err returns why the follower stopped; nil while it runs, or when its
// context ended.
func (f *Follower) Err() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}
