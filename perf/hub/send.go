package hub

import (
	"errors"
	"fmt"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Message is one message of a subscription, for the caller to encode and
// send: exactly one of Response and Batch is set.
type Message struct {
	// Response is a message built whole: a gap, a heartbeat, the end of
	// the snapshot, or a batch of entries read back from the archive or
	// carrying bodies.
	Response *pxperfv1.SubscribeResponse
	// Batch is a batch of the store's cached encodings.
	Batch *WireBatch
	// Entries is how many entries and updates the message carries.
	Entries int
}

// WireBatch is an EntryBatch whose entries and updates are the store's
// cached encodings, each a whole EntryBatch.entries field (framed as
// store.EntryField), which the caller sends without copying. The slices
// are the store's and the subscription's: they stay valid until the
// [SendFunc] it was given to returns.
type WireBatch struct {
	// Entries are the entries' fields in id order, in any number of
	// slices.
	Entries [][]byte
	// Updates are the updates' fields, one a slice.
	Updates [][]byte
	// NextID is where to resume after this batch; UpdatesLost counts
	// completions that left memory before they could be sent.
	NextID, UpdatesLost uint64
}

// SendFunc sends one message on the subscription's stream, blocking until
// the stream has taken it (as grpc's SendMsg does under flow control). It
// is called from one goroutine at a time, never concurrently.
type SendFunc func(Message) error

// ErrStuck ends a subscription whose Send stayed blocked past
// [Settings].SendTimeout: its client does not read.
var ErrStuck = errors.New("send blocked past the send timeout")

// ErrClosed ends the subscriptions of a closed hub: the server is shutting
// down.
var ErrClosed = errors.New("the hub is closed: the server is shutting down")

// EndError is every error that ends [Subscription.Run]: why it ended (Err:
// [ErrStuck], [ErrClosed], the context's error, or an error reading the
// store or the archive), and where the subscriber resumes: NextID, the id
// after the last one whose message Send took.
type EndError struct {
	Err    error
	NextID uint64
}

func (e *EndError) Error() string {
	return fmt.Sprintf("subscription ended: %v; resume with start_id %d", e.Err, e.NextID)
}

func (e *EndError) Unwrap() error { return e.Err }

// RangeError is the error of [Hub.Subscribe] for a start id that cannot be
// served: older than anything kept (Oldest is then the oldest id
// available), or beyond the next id to be assigned (Future; Oldest is then
// that next id).
type RangeError struct {
	StartID, Oldest uint64
	Future          bool
}

func (e *RangeError) Error() string {
	if e.Future {
		return fmt.Sprintf("start_id %d is beyond the next id to be assigned (%d)", e.StartID, e.Oldest)
	}
	return fmt.Sprintf("start_id %d is older than anything kept in memory or the archive; the oldest id available is %d", e.StartID, e.Oldest)
}

// sender owns a subscription's Send: one goroutine, one message at a time.
type sender struct {
	msgs chan Message
	errc chan error
}

// startSender starts the subscription's sender goroutine; stop ends it once
// its current Send returns.
func (h *Hub) startSender(send SendFunc) *sender {
	snd := &sender{msgs: make(chan Message), errc: make(chan error, 1)}
	h.senders.Go(func() {
		for m := range snd.msgs {
			snd.errc <- send(m)
		}
	})
	return snd
}

// send hands m to the sender goroutine and waits for Send to return, at
// most timeout. It returns how long Send took.
func (snd *sender) send(m Message, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	snd.msgs <- m // the goroutine is idle: the previous send was waited for
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-snd.errc:
		return time.Since(start), err
	case <-t.C:
		return timeout, ErrStuck
	}
}

func (snd *sender) stop() { close(snd.msgs) }
