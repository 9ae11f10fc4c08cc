package hub

import (
	"errors"
	"fmt"
	"sync"
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
// cached encodings, each a whole EntryBatch.entries field as wire.Encoder
// frames it, which the caller sends without copying (see wire.Batch). The slices
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

// senderIdle is how long a sender goroutine waits for the next message
// before it ends: a subscription that sends nothing for longer (one that
// is idle between heartbeats) holds no goroutine, nor its stack, for its
// Sends.
const senderIdle = 100 * time.Millisecond

// sender runs a subscription's Sends on a goroutine of their own, one
// message at a time, so that the subscription can give up on a Send that
// stays blocked. The goroutine lives while messages flow and ends when it
// has none for senderIdle: the next message starts another.
type sender struct {
	fn   SendFunc
	msgs chan Message // unbuffered: a send succeeds only into a waiting goroutine
	errc chan error   // Send's result, one message at a time
	wg   *sync.WaitGroup
}

func (h *Hub) newSender(send SendFunc) *sender {
	return &sender{fn: send, msgs: make(chan Message), errc: make(chan error, 1), wg: &h.senders}
}

// send hands m to the sender goroutine, starting one when none waits, and
// waits for Send to return, at most timeout. It returns how long Send
// took.
func (snd *sender) send(m Message, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case snd.msgs <- m:
	default:
		// None waits: the last one ended when idle, or is about to. Two
		// may then wait for the next message at once, but Sends never
		// overlap: the subscription waits for each before the next.
		snd.wg.Go(func() { snd.loop(m) })
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-snd.errc:
		return time.Since(start), err
	case <-t.C:
		return timeout, ErrStuck
	}
}

// loop sends m, and the messages that follow within senderIdle of each
// other, until stop or idleness ends it.
func (snd *sender) loop(m Message) {
	idle := time.NewTimer(senderIdle)
	defer idle.Stop()
	for {
		snd.errc <- snd.fn(m)
		idle.Reset(senderIdle)
		var ok bool
		select {
		case m, ok = <-snd.msgs:
			if !ok {
				return
			}
		case <-idle.C:
			return
		}
	}
}

// stop ends the sender's goroutine, if one waits, and any started later
// once its current Send returns.
func (snd *sender) stop() { close(snd.msgs) }
