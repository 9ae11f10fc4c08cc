package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// ErrNotFound is wrapped by [Log.Entry] for an id the stream does not hold.
var ErrNotFound = errors.New("not in the cluster's stream")

// readBatch is how many messages Read asks the stream for at once.
const readBatch = 256

// Entry returns entry id as the stream holds it, and its last completion
// (nil when none). It fails wrapping [ErrNotFound] when the stream does not
// hold id: never published, or gone by the stream's limits.
func (l *Log) Entry(ctx context.Context, id uint64) (entry, completion *pxperfv1.Entry, err error) {
	m, err := l.entries.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, fmt.Errorf("id %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read id %d: %w", ErrUnavailable, id, err)
	}
	entry = decode(m.Data)
	entry.Id = id
	if completion, err = l.completion(ctx, entry); err != nil {
		return nil, nil, err
	}
	return entry, completion, nil
}

// completion returns the last completion of e, nil when none or when e is
// not PENDING.
func (l *Log) completion(ctx context.Context, e *pxperfv1.Entry) (*pxperfv1.Entry, error) {
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
		return nil, nil
	}
	m, err := l.completions.GetLastMsgForSubject(ctx, l.completionSubject(e.GetId()))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read the completion of id %d: %w", ErrUnavailable, e.GetId(), err)
	}
	return decode(m.Data), nil
}

// Read calls fn with each entry the stream holds from id first to id last
// (0: to the newest), in id order, with its last completion (nil when
// none), until fn returns an error, which Read returns.
func (l *Log) Read(ctx context.Context, first, last uint64, fn func(entry, completion *pxperfv1.Entry) error) error {
	cons, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   max(first, 1),
	})
	if err != nil {
		return fmt.Errorf("%w: read from id %d: %w", ErrUnavailable, first, err)
	}
	for {
		batch, err := cons.Fetch(readBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("%w: read from id %d: %w", ErrUnavailable, first, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read from id %d: %w", first, err)
			}
			id := md.Sequence.Stream
			if last != 0 && id > last {
				return nil
			}
			e := decode(m.Data())
			e.Id = id
			c, err := l.completion(ctx, e)
			if err != nil {
				return err
			}
			if err := fn(e, c); err != nil {
				return err
			}
			if md.NumPending == 0 || id == last {
				return nil // the newest, or the last wanted
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("%w: read from id %d: %w", ErrUnavailable, first, err)
		}
		if n == 0 {
			return nil // nothing from first on
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
