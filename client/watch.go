package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Defaults of [WatchOptions].
const (
	// DefaultInitialBackoff is the wait before the first reconnect.
	DefaultInitialBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff is the longest wait between reconnects.
	DefaultMaxBackoff = 10 * time.Second
)

// WatchOptions tune how [Client.Watch] reconnects. The zero value is ready to
// use: it retries for as long as ctx lasts, waiting 100 ms, then twice as
// long after each failure in a row, up to 10 s.
type WatchOptions struct {
	// InitialBackoff is the wait before the first reconnect after a
	// failure. Each further failure in a row doubles it, up to MaxBackoff;
	// a message received resets it. The wait actually taken is drawn
	// between half of it and all of it (jitter), so that clients cut off
	// together do not come back together. Zero means
	// [DefaultInitialBackoff]; negative is refused.
	InitialBackoff time.Duration

	// MaxBackoff is the longest wait between reconnects. Zero means
	// [DefaultMaxBackoff], or InitialBackoff if that is longer; below
	// InitialBackoff is refused. A server's RetryInfo may ask for a longer
	// wait, which is then taken.
	MaxBackoff time.Duration

	// MaxRetries is how many reconnects in a row may fail (without a
	// message in between) before Watch gives up and yields the last error.
	// Zero (the default) means no limit: Watch retries until ctx ends.
	// Negative is refused.
	MaxRetries int

	// ResumeFromOldest makes Watch go on from the oldest entry the server
	// still has when the position it needs is gone (OUT_OF_RANGE with the
	// oldest id), instead of ending with an [*OutOfRangeError]. The entries
	// it skips are reported first, as a Gap message made by the client
	// from the position to the oldest id minus one: the caller sees such a
	// gap as it sees the server's own. The zero value ends the loop.
	ResumeFromOldest bool

	// OnRetry, when set, is called before each reconnect with the error
	// that ended the stream, the number of failures in a row (from 1) and
	// the wait about to be taken: for logs, or to show "reconnecting" in a
	// UI. It runs on the goroutine of the range loop and must return
	// quickly.
	OnRetry func(err error, attempt int, delay time.Duration)
}

// withDefaults returns o with zero fields defaulted, or an error naming a
// field that is out of range.
func (o WatchOptions) withDefaults() (WatchOptions, error) {
	switch {
	case o.InitialBackoff < 0:
		return o, fmt.Errorf("client: WatchOptions.InitialBackoff %v is negative", o.InitialBackoff)
	case o.MaxBackoff < 0:
		return o, fmt.Errorf("client: WatchOptions.MaxBackoff %v is negative", o.MaxBackoff)
	case o.MaxRetries < 0:
		return o, fmt.Errorf("client: WatchOptions.MaxRetries %d is negative", o.MaxRetries)
	}
	if o.InitialBackoff == 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(DefaultMaxBackoff, o.InitialBackoff)
	}
	if o.MaxBackoff < o.InitialBackoff {
		return o, fmt.Errorf("client: WatchOptions.MaxBackoff %v is below InitialBackoff %v", o.MaxBackoff, o.InitialBackoff)
	}
	return o, nil
}

// backoff returns the wait before reconnect number attempt (from 1): the
// exponential step drawn with jitter between half of it and all of it.
func (o WatchOptions) backoff(attempt int) time.Duration {
	step := o.InitialBackoff
	for i := 1; i < attempt && step < o.MaxBackoff; i++ {
		step *= 2
	}
	step = min(step, o.MaxBackoff)
	half := step / 2
	return half + rand.N(step-half+1)
}

// OutOfRangeError is the error [Client.Watch] ends with when the server no
// longer keeps the position it asked for: start_id is older than anything in
// memory or the archive (Oldest is then the oldest id still available), or,
// rarely, beyond the newest id the server has assigned (Oldest is then 0: the
// server lost its ids, as after a restart without its archive).
// Get it with errors.As; it wraps the gRPC status, so status.Code(err) is
// codes.OutOfRange.
type OutOfRangeError struct {
	// StartID is the start_id the stream was opened with.
	StartID uint64
	// Oldest is the oldest id the server still has; 0 when it did not say.
	Oldest uint64
	// Err is the status error from the server.
	Err error
}

// Error implements error.
func (e *OutOfRangeError) Error() string {
	if e.Oldest == 0 {
		return fmt.Sprintf("client: watch: start_id %d is out of range: %v", e.StartID, e.Err)
	}
	return fmt.Sprintf("client: watch: start_id %d is gone, the oldest id available is %d: %v", e.StartID, e.Oldest, e.Err)
}

// Unwrap returns the status error.
func (e *OutOfRangeError) Unwrap() error { return e.Err }

// OldestAvailable returns the oldest id a server still keeps, as reported by
// an OUT_OF_RANGE error of a Subscribe stream: from an [*OutOfRangeError]
// (from [Client.Watch]) or from the status error itself (from
// [Client.Subscribe] or the stub). ok is false for any other error, and for
// an OUT_OF_RANGE that names no oldest id.
func OldestAvailable(err error) (oldest uint64, ok bool) {
	if oe, isOOR := errors.AsType[*OutOfRangeError](err); isOOR {
		return oe.Oldest, oe.Oldest != 0
	}
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.OutOfRange {
		return 0, false
	}
	return errorInfoID(st, "oldest_id")
}

// ResumeID returns the start_id a server said to resume from in the status
// that ended a Subscribe stream (an ErrorInfo detail with metadata
// "start_id", which pxperf gives whatever ended the stream): the id after
// the last one whose message the server sent. ok is false for an error that
// carries none, such as one from the client's side of the connection.
func ResumeID(err error) (id uint64, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return 0, false
	}
	return errorInfoID(st, "start_id")
}

// errorInfoID returns the id under key in an ErrorInfo detail of st.
func errorInfoID(st *status.Status, key string) (uint64, bool) {
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo {
			if v, found := info.GetMetadata()[key]; found {
				if n, perr := strconv.ParseUint(v, 10, 64); perr == nil && n != 0 {
					return n, true
				}
			}
		}
	}
	return 0, false
}

// Watch is [Client.Subscribe] that survives broken streams: when a stream
// fails in a way worth retrying, it opens a new one with start_id set to the
// position it has reached, after a backoff (see [WatchOptions]), so that the
// loop sees every matching entry once, in id order, and every gap the server
// reported, as if the stream had never broken. A nil req means the zero
// request: every entry, from the next one published. req is not modified.
//
// The position is the next id to ask for, taken from each message:
// EntryBatch.next_id, Gap.last_missed_id+1, Progress.next_id and
// SnapshotEnd.next_id, and from the status that ended the stream when it
// names one further on (see [ResumeID]). Should a server send again what the loop has already
// seen, Watch drops it: entries with an id below the position, and gaps or
// the parts of gaps below it. EntryBatch.updates are not dropped: they are
// later versions of entries below the position, by design.
//
// What ends the stream decides what Watch does:
//
//   - UNAVAILABLE (connection lost, server shutting down or restarting) and
//     RESOURCE_EXHAUSTED (the server's subscriber limit, or a subscriber that
//     did not read for throttle.send_timeout) are retried with backoff, while
//     ctx lasts and up to [WatchOptions.MaxRetries] failures in a row (the
//     loop then gets the last error, wrapped). Not retried: a
//     RESOURCE_EXHAUSTED from this client's own receive size limit, which
//     the same messages would hit again.
//   - OUT_OF_RANGE ends the loop with an [*OutOfRangeError], unless
//     [WatchOptions.ResumeFromOldest] is set.
//   - Every other code ends the loop with the error: ABORTED (an
//     administrator closed the stream with CloseResource, or it was idle),
//     INVALID_ARGUMENT (a bad filter), UNAUTHENTICATED, PERMISSION_DENIED,
//     and the rest.
//   - When ctx ends, the loop gets ctx.Err() as it is, and ends.
//   - When the server ends a stream cleanly (pxperf does not), the loop
//     just ends.
//
// Only the last error is yielded: the loop gets (nil, err) once and then
// ends; retried errors go to [WatchOptions.OnRetry]. Breaking out of the loop
// ends the stream.
//
// Resuming a tail (snapshot) request asks for start_id, not a second
// snapshot. If the stream broke before the SnapshotEnd message, that message
// is yielded early, by the client, just before the first message of the
// resumed stream: the rest of the snapshot then follows it, in order, like
// live entries. If it broke before any message, when no position is known
// yet and the status that ended it names none (the connection broke), the
// request is sent again as it was; the same holds for a request from now,
// so entries published between the broken stream and the new one are then
// not delivered.
//
// Known limit: the server sends in EntryBatch.updates the completions of
// entries below a stream's position that happen while that stream is open;
// completions that happen while Watch is reconnecting are not sent again.
// Re-read such entries with ListEntries or GetEntry if they matter.
func (c *Client) Watch(ctx context.Context, req *pxperfv1.SubscribeRequest, opts WatchOptions) iter.Seq2[*pxperfv1.SubscribeResponse, error] {
	if req == nil {
		req = &pxperfv1.SubscribeRequest{}
	}
	req = proto.CloneOf(req) // ours to change; the caller may reuse theirs
	return func(yield func(*pxperfv1.SubscribeResponse, error) bool) {
		opts, err := opts.withDefaults()
		if err != nil {
			yield(nil, err)
			return
		}
		// Cancelling is what releases a stream in grpc: see Subscribe.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w := newWatcher(req)
		failures := 0
		for {
			err := w.stream(ctx, c, yield)
			if errors.Is(err, errStopped) {
				return
			}
			if ctx.Err() != nil {
				yield(nil, ctx.Err())
				return
			}
			if err == nil { // the server ended the stream cleanly
				return
			}
			if w.received {
				failures = 0
			}
			if st := status.Convert(err); st.Code() == codes.OutOfRange {
				oe := &OutOfRangeError{StartID: w.next, Err: err}
				oe.Oldest, _ = OldestAvailable(err)
				if !opts.ResumeFromOldest || !w.known || oe.Oldest <= w.next {
					yield(nil, oe)
					return
				}
				// Ids before the oldest are gone for good: say so, and go on
				// from the oldest at once; waiting would lose more.
				gap := &pxperfv1.Gap{FirstMissedId: w.next, LastMissedId: oe.Oldest - 1}
				w.next = oe.Oldest
				if !yield(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Gap{Gap: gap}}, nil) {
					return
				}
				continue
			}
			if !retryable(err) {
				yield(nil, err)
				return
			}
			// The server's cursor: at or past the position, never behind
			// what it sent. It may be ahead (entries it examined and did
			// not match), or the only position known (a stream from now
			// that ended before its first message).
			if id, ok := ResumeID(err); ok && (!w.known || id > w.next) {
				w.known, w.next = true, id
			}
			failures++
			if opts.MaxRetries > 0 && failures > opts.MaxRetries {
				yield(nil, fmt.Errorf("client: watch: giving up after %d failures in a row: %w", failures, err))
				return
			}
			delay := max(opts.backoff(failures), retryDelay(err))
			if opts.OnRetry != nil {
				opts.OnRetry(err, failures, delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				yield(nil, ctx.Err())
				return
			}
		}
	}
}

// errStopped is returned by watcher.stream when the loop's body stopped
// the iteration.
var errStopped = errors.New("stopped by the caller")

// watcher is the state of one Watch loop across its streams.
type watcher struct {
	req             *pxperfv1.SubscribeRequest
	known           bool   // whether next is known yet
	next            uint64 // the position: the next id to ask for
	snapshotPending bool   // a tail request whose snapshot_end has not been seen
	snapshotCut     bool   // yield a snapshot_end before the next message
	received        bool   // the current stream has delivered a message
}

func newWatcher(req *pxperfv1.SubscribeRequest) *watcher {
	w := &watcher{req: req}
	switch start := req.GetStart().(type) {
	case *pxperfv1.SubscribeRequest_StartId:
		w.known, w.next = true, start.StartId
	case *pxperfv1.SubscribeRequest_Tail:
		w.snapshotPending = true
	}
	return w
}

// request returns the request for the next stream: the caller's until a
// position is known, then the caller's with start_id at the position.
func (w *watcher) request() *pxperfv1.SubscribeRequest {
	if !w.known {
		return w.req
	}
	r := proto.CloneOf(w.req)
	r.Start = &pxperfv1.SubscribeRequest_StartId{StartId: w.next}
	return r
}

// stream opens one stream and yields what it brings until it ends. It
// returns the error that ended it (nil for a clean end), or errStopped.
func (w *watcher) stream(ctx context.Context, c *Client, yield func(*pxperfv1.SubscribeResponse, error) bool) error {
	w.received = false
	req := w.request()
	if w.known && w.snapshotPending {
		// This stream starts at an id inside the snapshot: the server will
		// not mark its end, so the client does.
		w.snapshotPending, w.snapshotCut = false, true
	}
	// Each stream gets its own context, so that a failed one is released
	// before the next one opens.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.service.Subscribe(ctx, req)
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		w.received = true
		if w.snapshotCut {
			w.snapshotCut = false
			end := &pxperfv1.SnapshotEnd{NextId: w.next}
			if !yield(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_SnapshotEnd{SnapshotEnd: end}}, nil) {
				return errStopped
			}
		}
		if !w.track(msg) {
			continue
		}
		if !yield(msg, nil) {
			return errStopped
		}
	}
}

// track moves the position past msg, dropping from msg what is below the
// position already. It reports whether anything is left to yield.
func (w *watcher) track(msg *pxperfv1.SubscribeResponse) bool {
	prev, known := w.next, w.known
	advance := func(next uint64) {
		if !w.known || next > w.next {
			w.next = next
		}
		w.known = true
	}
	switch ev := msg.GetEvent().(type) {
	case *pxperfv1.SubscribeResponse_Batch:
		b := ev.Batch
		if known {
			b.Entries = dropBelow(b.GetEntries(), prev)
		}
		advance(b.GetNextId())
		// An empty batch still says where the stream is, if it moved.
		return len(b.GetEntries())+len(b.GetUpdates()) > 0 || b.GetUpdatesLost() > 0 || !known || w.next > prev
	case *pxperfv1.SubscribeResponse_Gap:
		g := ev.Gap
		if known && g.GetLastMissedId() < prev {
			return false // reported before
		}
		if known && g.GetFirstMissedId() < prev {
			g.FirstMissedId = prev
		}
		advance(g.GetLastMissedId() + 1)
	case *pxperfv1.SubscribeResponse_Progress:
		advance(ev.Progress.GetNextId())
	case *pxperfv1.SubscribeResponse_SnapshotEnd:
		w.snapshotPending = false
		advance(ev.SnapshotEnd.GetNextId())
	}
	return true
}

// dropBelow removes the entries with an id below next, which the loop has
// seen. Entries are in id order, so they are at the front.
func dropBelow(es []*pxperfv1.Entry, next uint64) []*pxperfv1.Entry {
	i := 0
	for i < len(es) && es[i].GetId() < next {
		i++
	}
	return es[i:]
}

// retryable reports whether a stream that ended with err is worth opening
// again.
func retryable(err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		// grpc's own receive limit: the same message would fail again.
		return !strings.HasPrefix(st.Message(), "grpc: received message larger than max")
	}
	return false
}

// retryDelay returns the wait a status error's RetryInfo asks for; 0 when
// it has none.
func retryDelay(err error) time.Duration {
	st, ok := status.FromError(err)
	if !ok {
		return 0
	}
	for _, d := range st.Details() {
		if ri, isRI := d.(*errdetails.RetryInfo); isRI {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
