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

// readBytes bounds what Read asks the stream for at once: a message may
// hold up to a NATS message's worth of entries.
const readBytes = 4 << 20

// located is a message of the stream of entries.
type located struct {
	msg *jetstream.RawStreamMsg
	msgHeader
}

// locate returns the message that holds id or, when the stream holds none
// at or before id, the oldest message; and the stream's last sequence as
// of the search. It fails wrapping ErrNotFound when the stream holds no id
// at or after id. The ids grow with the sequences, so it is a binary
// search over them.
func (l *Log) locate(ctx context.Context, id uint64) (located, uint64, error) {
	info, err := l.entries.Info(ctx)
	if err != nil {
		return located{}, 0, fmt.Errorf("%w: read the state of stream %s: %w", ErrUnavailable, l.cfg.Stream, err)
	}
	m, err := l.search(ctx, id, info.State)
	return m, info.State.LastSeq, err
}

// search is locate's search, over the stream in state st.
func (l *Log) search(ctx context.Context, id uint64, st jetstream.StreamState) (located, error) {
	if st.Msgs == 0 {
		return located{}, fmt.Errorf("id %d: %w (it is empty)", id, ErrNotFound)
	}
	lo, hi := st.FirstSeq, st.LastSeq
	var found located
	for lo <= hi {
		mid := lo + (hi-lo)/2
		// The first message at or after mid: sequences may be gone.
		m, err := l.entries.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(l.cfg.Subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid - 1
			continue
		}
		if err != nil {
			return located{}, fmt.Errorf("%w: read message %d of stream %s: %w", ErrUnavailable, mid, l.cfg.Stream, err)
		}
		h, err := parseHeader(m.Header)
		if err != nil {
			return located{}, fmt.Errorf("message %d of stream %s: %w", m.Sequence, l.cfg.Stream, err)
		}
		switch {
		case id < h.first:
			found = located{m, h} // the oldest after id, so far
			hi = mid - 1
		case id >= h.first+uint64(h.count):
			lo = m.Sequence + 1
		default:
			return located{m, h}, nil
		}
	}
	if found.msg == nil {
		return located{}, fmt.Errorf("id %d: %w", id, ErrNotFound)
	}
	return found, nil
}

// Entry returns entry id as the stream holds it, and its last completion
// (nil when none). It fails wrapping [ErrNotFound] when the stream does not
// hold id: never published, or gone by the stream's limits.
func (l *Log) Entry(ctx context.Context, id uint64) (entry, completion *pxperfv1.Entry, err error) {
	m, _, err := l.locate(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if id < m.first {
		return nil, nil, fmt.Errorf("id %d: %w", id, ErrNotFound)
	}
	entry = decodeEntries(m.msg.Data, m.count)[id-m.first]
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
	start, _, err := l.locate(ctx, first)
	if errors.Is(err, ErrNotFound) {
		return nil // nothing from first on
	}
	if err != nil {
		return err
	}
	cons, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start.msg.Sequence,
	})
	if err != nil {
		return fmt.Errorf("%w: read from id %d: %w", ErrUnavailable, first, err)
	}
	for {
		batch, err := cons.FetchBytes(readBytes, jetstream.FetchMaxWait(time.Second))
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
			h, err := parseHeader(m.Headers())
			if err != nil {
				return fmt.Errorf("message %d of stream %s: %w", md.Sequence.Stream, l.cfg.Stream, err)
			}
			for i, e := range decodeEntries(m.Data(), h.count) {
				id := h.first + uint64(i)
				if id < first {
					continue
				}
				if last != 0 && id > last {
					return nil
				}
				e.Id = id
				c, err := l.completion(ctx, e)
				if err != nil {
					return err
				}
				if err := fn(e, c); err != nil {
					return err
				}
			}
			if md.NumPending == 0 {
				return nil // the newest
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
