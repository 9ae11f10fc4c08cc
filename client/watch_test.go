package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
)

// fastRetry retries at once, or nearly: tests wait for events, not clocks.
var fastRetry = WatchOptions{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func ids(from, to uint64) []*pxperfv1.Entry {
	var es []*pxperfv1.Entry
	for id := from; id <= to; id++ {
		es = append(es, &pxperfv1.Entry{Id: id})
	}
	return es
}

func batchOf(es []*pxperfv1.Entry, updates []*pxperfv1.Entry, next uint64) *pxperfv1.SubscribeResponse {
	return &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: &pxperfv1.EntryBatch{Entries: es, Updates: updates, NextId: next}}}
}

func gapOf(first, last uint64) *pxperfv1.SubscribeResponse {
	return &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Gap{Gap: &pxperfv1.Gap{FirstMissedId: first, LastMissedId: last}}}
}

func progressOf(next uint64) *pxperfv1.SubscribeResponse {
	return &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Progress{Progress: &pxperfv1.Progress{NewestId: next - 1, NextId: next}}}
}

func snapshotEndOf(next uint64) *pxperfv1.SubscribeResponse {
	return &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_SnapshotEnd{SnapshotEnd: &pxperfv1.SnapshotEnd{NextId: next}}}
}

func outOfRangeStatus(oldest uint64) error {
	st, err := status.New(codes.OutOfRange, "start_id is older than anything kept").WithDetails(&errdetails.ErrorInfo{
		Reason: "ENTRIES_EVICTED", Domain: "pxperf.v1", Metadata: map[string]string{"oldest_id": strconv.FormatUint(oldest, 10)},
	})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// endedAt is a status of code that ends a stream, carrying the start_id to
// resume from as pxperf does.
func endedAt(code codes.Code, next uint64) error {
	st, err := status.New(code, "ended").WithDetails(&errdetails.ErrorInfo{
		Reason: "STREAM_ENDED", Domain: "pxperf.v1", Metadata: map[string]string{"start_id": strconv.FormatUint(next, 10)},
	})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// attempt is what a scripted server does on one Subscribe call: it sends
// msgs and ends with end.
type attempt struct {
	msgs []*pxperfv1.SubscribeResponse
	end  error
}

// scriptedServer answers the i-th Subscribe call with script[i], recording
// each request, and ends with ABORTED past the script.
func scriptedServer(script []attempt, reqs *[]*pxperfv1.SubscribeRequest) *fakeServer {
	var n int
	return &fakeServer{
		subscribe: func(req *pxperfv1.SubscribeRequest, stream pxperfv1.PerformanceService_SubscribeServer) error {
			*reqs = append(*reqs, req) // calls come one at a time
			i := n
			n++
			if i >= len(script) {
				return status.Error(codes.Aborted, "script over")
			}
			for _, m := range script[i].msgs {
				if err := stream.Send(m); err != nil {
					return err
				}
			}
			return script[i].end
		},
	}
}

// watchResult is what a Watch loop yielded.
type watchResult struct {
	msgs    []*pxperfv1.SubscribeResponse
	err     error // the last error; Watch yields at most one
	errs    int
	retries []int // attempt numbers given to OnRetry
}

func runWatch(ctx context.Context, c *Client, req *pxperfv1.SubscribeRequest, opts WatchOptions) watchResult {
	var r watchResult
	opts.OnRetry = func(_ error, attempt int, _ time.Duration) { r.retries = append(r.retries, attempt) }
	for msg, err := range c.Watch(ctx, req, opts) {
		if err != nil {
			r.err = err
			r.errs++
			continue // Watch must end the loop itself
		}
		r.msgs = append(r.msgs, msg)
	}
	return r
}

func startID(id uint64) *pxperfv1.SubscribeRequest {
	return &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: id}}
}

func TestWatchResumes(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection lost")
	stuck := status.Error(codes.ResourceExhausted, "this subscriber did not take a message for 5s (throttle.send_timeout); resume with start_id 9")
	tail := &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 5}}
	tests := []struct {
		name      string
		req       *pxperfv1.SubscribeRequest
		opts      WatchOptions
		script    []attempt
		wantReqs  []*pxperfv1.SubscribeRequest
		wantMsgs  []*pxperfv1.SubscribeResponse
		wantCode  codes.Code
		wantRetry []int
	}{
		{
			name: "resumes from the position and drops what it has seen",
			req:  startID(1),
			script: []attempt{
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(1, 3), nil, 4)}, end: unavailable},
				{msgs: []*pxperfv1.SubscribeResponse{
					// 3 again; 2 completed since: an update, kept.
					batchOf(ids(3, 5), ids(2, 2), 6),
					gapOf(5, 8), // 5 was seen: trimmed to 6..8
					gapOf(2, 3), // seen: dropped
					batchOf(ids(4, 5), nil, 6),
					progressOf(9),
				}, end: stuck},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(9, 9), nil, 10)}},
			},
			wantReqs: []*pxperfv1.SubscribeRequest{startID(1), startID(4), startID(9)},
			wantMsgs: []*pxperfv1.SubscribeResponse{
				batchOf(ids(1, 3), nil, 4),
				batchOf(ids(4, 5), ids(2, 2), 6),
				gapOf(6, 8),
				progressOf(9),
				batchOf(ids(9, 9), nil, 10),
			},
			wantCode:  codes.OK, // the server ended the stream cleanly
			wantRetry: []int{1, 1},
		},
		{
			name: "failures in a row count up, a message resets them",
			req:  startID(7),
			script: []attempt{
				{end: unavailable},
				{end: unavailable},
				{msgs: []*pxperfv1.SubscribeResponse{progressOf(7)}, end: unavailable},
				{end: status.Error(codes.Aborted, "closed by an administrator")},
			},
			wantReqs:  []*pxperfv1.SubscribeRequest{startID(7), startID(7), startID(7), startID(7)},
			wantMsgs:  []*pxperfv1.SubscribeResponse{progressOf(7)},
			wantCode:  codes.Aborted,
			wantRetry: []int{1, 2, 1},
		},
		{
			name: "a tail request that failed before any message is sent again",
			req:  tail,
			script: []attempt{
				{end: unavailable},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(10, 11), nil, 12), snapshotEndOf(14)}, end: unavailable},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(14, 14), nil, 15)}},
			},
			wantReqs: []*pxperfv1.SubscribeRequest{tail, tail, startID(14)},
			wantMsgs: []*pxperfv1.SubscribeResponse{
				batchOf(ids(10, 11), nil, 12), snapshotEndOf(14), batchOf(ids(14, 14), nil, 15),
			},
			wantRetry: []int{1, 1},
		},
		{
			name: "a stream from now that ended before its first message resumes at the server's start_id",
			req:  &pxperfv1.SubscribeRequest{},
			script: []attempt{
				{end: endedAt(codes.Unavailable, 42)},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(42, 42), nil, 43)}},
			},
			wantReqs:  []*pxperfv1.SubscribeRequest{{}, startID(42)},
			wantMsgs:  []*pxperfv1.SubscribeResponse{batchOf(ids(42, 42), nil, 43)},
			wantRetry: []int{1},
		},
		{
			name: "the server's start_id moves the position on, never back",
			req:  startID(1),
			script: []attempt{
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(1, 3), nil, 4)}, end: endedAt(codes.Unavailable, 9)},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(9, 9), nil, 10)}, end: endedAt(codes.ResourceExhausted, 2)},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(10, 10), nil, 11)}},
			},
			wantReqs: []*pxperfv1.SubscribeRequest{startID(1), startID(9), startID(10)},
			wantMsgs: []*pxperfv1.SubscribeResponse{
				batchOf(ids(1, 3), nil, 4), batchOf(ids(9, 9), nil, 10), batchOf(ids(10, 10), nil, 11),
			},
			wantRetry: []int{1, 1},
		},
		{
			name: "a snapshot cut short gets its end marker from the client",
			req:  tail,
			script: []attempt{
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(10, 11), nil, 12)}, end: unavailable},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(12, 13), nil, 14)}},
			},
			wantReqs: []*pxperfv1.SubscribeRequest{tail, startID(12)},
			wantMsgs: []*pxperfv1.SubscribeResponse{
				batchOf(ids(10, 11), nil, 12), snapshotEndOf(12), batchOf(ids(12, 13), nil, 14),
			},
			wantRetry: []int{1},
		},
		{
			name: "out of range ends the loop",
			req:  startID(3),
			script: []attempt{
				{end: outOfRangeStatus(7)},
			},
			wantReqs:  []*pxperfv1.SubscribeRequest{startID(3)},
			wantCode:  codes.OutOfRange,
			wantRetry: nil,
		},
		{
			name: "out of range with ResumeFromOldest reports a gap and goes on",
			req:  startID(3),
			opts: WatchOptions{ResumeFromOldest: true},
			script: []attempt{
				{msgs: []*pxperfv1.SubscribeResponse{progressOf(3)}, end: unavailable},
				{end: outOfRangeStatus(7)},
				{msgs: []*pxperfv1.SubscribeResponse{batchOf(ids(7, 7), nil, 8)}},
			},
			wantReqs:  []*pxperfv1.SubscribeRequest{startID(3), startID(3), startID(7)},
			wantMsgs:  []*pxperfv1.SubscribeResponse{progressOf(3), gapOf(3, 6), batchOf(ids(7, 7), nil, 8)},
			wantRetry: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs []*pxperfv1.SubscribeRequest
			c := newTestClient(t, scriptedServer(tt.script, &reqs))
			opts := tt.opts
			opts.InitialBackoff, opts.MaxBackoff = fastRetry.InitialBackoff, fastRetry.MaxBackoff
			got := runWatch(testContext(t), c, tt.req, opts)
			if diff := cmp.Diff(got.msgs, tt.wantMsgs, protocmp.Transform()); diff != "" {
				t.Errorf("messages (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(reqs, tt.wantReqs, protocmp.Transform()); diff != "" {
				t.Errorf("requests (-got +want):\n%s", diff)
			}
			if got.errs > 1 {
				t.Errorf("%d errors yielded, want at most 1", got.errs)
			}
			if code := status.Code(got.err); code != tt.wantCode {
				t.Errorf("error %v: code %v, want %v", got.err, code, tt.wantCode)
			}
			if diff := cmp.Diff(got.retries, tt.wantRetry); diff != "" {
				t.Errorf("OnRetry attempts (-got +want):\n%s", diff)
			}
		})
	}
}

func TestWatchEndCodes(t *testing.T) {
	tests := []struct {
		name      string
		end       error
		wantRetry bool
	}{
		{"unavailable", status.Error(codes.Unavailable, "server is shutting down; resume with start_id 1"), true},
		{"subscriber limit", status.Error(codes.ResourceExhausted, "too many subscribers (cleanup.max_resources)"), true},
		{"receive limit", status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"), false},
		{"aborted", status.Error(codes.Aborted, "ended by the server: closed by request"), false},
		{"invalid argument", status.Error(codes.InvalidArgument, "filter.methods[0]: bad"), false},
		{"permission denied", status.Error(codes.PermissionDenied, "needs view"), false},
		{"unauthenticated", status.Error(codes.Unauthenticated, "unknown bearer token"), false},
		{"internal", status.Error(codes.Internal, "bug"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newTestClient(t, &fakeServer{
				subscribe: func(*pxperfv1.SubscribeRequest, pxperfv1.PerformanceService_SubscribeServer) error {
					calls.Add(1)
					return tt.end
				},
			})
			opts := fastRetry
			opts.MaxRetries = 2
			got := runWatch(testContext(t), c, startID(1), opts)
			wantCalls, wantRetries := int32(1), 0
			if tt.wantRetry {
				wantCalls, wantRetries = 3, 2
			}
			if n := calls.Load(); n != wantCalls {
				t.Errorf("Subscribe called %d times, want %d", n, wantCalls)
			}
			if len(got.retries) != wantRetries {
				t.Errorf("OnRetry called %d times, want %d", len(got.retries), wantRetries)
			}
			want := status.Convert(tt.end)
			if st := status.Convert(got.err); st.Code() != want.Code() || !strings.Contains(st.Message(), want.Message()) {
				t.Errorf("error = %v, want one with code %v and message %q", got.err, want.Code(), want.Message())
			}
			if len(got.msgs) != 0 || got.errs != 1 {
				t.Errorf("got %d messages and %d errors, want 0 and 1", len(got.msgs), got.errs)
			}
		})
	}
}

func TestWatchContextEnds(t *testing.T) {
	c := newTestClient(t, &fakeServer{
		subscribe: func(*pxperfv1.SubscribeRequest, pxperfv1.PerformanceService_SubscribeServer) error {
			return status.Error(codes.Unavailable, "down")
		},
	})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	// A backoff far longer than the test: only the cancel can end it.
	opts := WatchOptions{InitialBackoff: time.Hour, OnRetry: func(error, int, time.Duration) { cancel() }}
	var errs []error
	for _, err := range c.Watch(ctx, nil, opts) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || errs[0] != context.Canceled {
		t.Errorf("errors %v, want exactly context.Canceled", errs)
	}
}

func TestWatchOptionsRefused(t *testing.T) {
	tests := []struct {
		opts WatchOptions
		want string
	}{
		{WatchOptions{InitialBackoff: -1}, "InitialBackoff"},
		{WatchOptions{MaxBackoff: -1}, "MaxBackoff"},
		{WatchOptions{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff"},
		{WatchOptions{MaxRetries: -1}, "MaxRetries"},
	}
	c := newTestClient(t, &fakeServer{})
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := runWatch(testContext(t), c, nil, tt.opts)
			if got.err == nil || !strings.Contains(got.err.Error(), tt.want) {
				t.Errorf("error = %v, want one naming %s", got.err, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	o, err := WatchOptions{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second}, // capped
		{100, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := o.backoff(tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

func TestOutOfRangeError(t *testing.T) {
	var reqs []*pxperfv1.SubscribeRequest
	c := newTestClient(t, scriptedServer([]attempt{{end: outOfRangeStatus(41)}}, &reqs))
	got := runWatch(testContext(t), c, startID(1), fastRetry)
	oe, ok := errors.AsType[*OutOfRangeError](got.err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *OutOfRangeError", got.err, got.err)
	}
	if oe.StartID != 1 || oe.Oldest != 41 {
		t.Errorf("OutOfRangeError{StartID: %d, Oldest: %d}, want {1, 41}", oe.StartID, oe.Oldest)
	}
	if code := status.Code(got.err); code != codes.OutOfRange {
		t.Errorf("status.Code = %v, want %v", code, codes.OutOfRange)
	}
	tests := []struct {
		name   string
		err    error
		want   uint64
		wantOK bool
	}{
		{"from Watch", got.err, 41, true},
		{"wrapped", fmt.Errorf("resume: %w", got.err), 41, true},
		{"status from Subscribe", outOfRangeStatus(9), 9, true},
		{"out of range without the oldest", status.Error(codes.OutOfRange, "start_id 99 is beyond the next id"), 0, false},
		{"other code", status.Error(codes.Unavailable, "down"), 0, false},
		{"not a status", errors.New("boom"), 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := OldestAvailable(tt.err); got != tt.want || ok != tt.wantOK {
				t.Errorf("OldestAvailable(%v) = %d, %v; want %d, %v", tt.err, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// event is one thing a Watch loop saw: an entry, or a gap.
type event struct {
	id          uint64 // 0 for a gap
	first, last uint64 // the gap
}

// checkSequence fails the test unless events cover first..last exactly
// once, in order: each id follows the previous one, or a gap reported the
// ids between. It returns the number of ids reported missing.
func checkSequence(t *testing.T, events []event, first, last uint64) (missed uint64) {
	t.Helper()
	want := first
	for i, e := range events {
		switch {
		case e.id == 0 && e.first == want:
			missed += e.last - e.first + 1
			want = e.last + 1
		case e.id == 0:
			t.Fatalf("event %d: gap %d..%d, want one from %d", i, e.first, e.last, want)
		case e.id != want:
			t.Fatalf("event %d: entry %d, want %d (lost or repeated)", i, e.id, want)
		default:
			want++
		}
	}
	if want != last+1 {
		t.Fatalf("saw up to id %d, want up to %d", want-1, last)
	}
	return missed
}

// record appends what msg carries to events, and returns the last id
// seen (or last, if msg carries none).
func record(events []event, msg *pxperfv1.SubscribeResponse, last uint64) ([]event, uint64) {
	if g := msg.GetGap(); g != nil {
		return append(events, event{first: g.GetFirstMissedId(), last: g.GetLastMissedId()}), g.GetLastMissedId()
	}
	for _, e := range msg.GetBatch().GetEntries() {
		events = append(events, event{id: e.GetId()})
		last = e.GetId()
	}
	return events, last
}

// TestWatchSurvivesKilledConnections is the resume proof: the watcher's
// connection is killed 4 times while 5000 entries are being published, and
// the loop sees each id exactly once, in order, with no gap.
func TestWatchSurvivesKilledConnections(t *testing.T) {
	const total, size, lead = 5000, 100, 1000
	killAt := []uint64{700, 1900, 3100, 4300}
	ts := startServer(t, func(cfg *pxperfv1.Config) {
		cfg.Memory.MaxEntries = 100_000 // no gap: every id must be delivered
		cfg.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED
		cfg.Throttle.BatchSize = 100
		cfg.Throttle.MaxBatchSize = 500
	}, service.Options{})
	pub := ts.client(t, Config{}, nil)
	k := &killer{next: ts.dial}
	watcher := ts.client(t, Config{}, k.dial)
	ctx := testContext(t)

	// The producer keeps at most lead entries ahead of the watcher, so that
	// entries are in flight at every kill and published during every
	// reconnect.
	var seen, sentCount atomic.Uint64
	progress := make(chan struct{}, 1)
	published := make(chan error, 1)
	go func() {
		for sent := uint64(0); sent < total; sent += size {
			for sent > seen.Load()+lead {
				select {
				case <-progress:
				case <-ctx.Done():
					published <- ctx.Err()
					return
				}
			}
			if _, err := pub.Publish(ctx, entries(size)...); err != nil {
				published <- err
				return
			}
			sentCount.Add(size)
		}
		published <- nil
	}()

	var events []event
	var last uint64
	retries, kills, killsWhilePublishing := 0, 0, 0
	opts := fastRetry
	opts.OnRetry = func(err error, _ int, _ time.Duration) {
		retries++
		if status.Code(err) != codes.Unavailable {
			t.Errorf("retried after %v, want only UNAVAILABLE", err)
		}
	}
	for msg, err := range watcher.Watch(ctx, startID(1), opts) {
		if err != nil {
			t.Fatalf("Watch after %d entries: %v", last, err)
		}
		events, last = record(events, msg, last)
		seen.Store(last)
		select {
		case progress <- struct{}{}:
		default:
		}
		if len(killAt) > 0 && last >= killAt[0] {
			if n := k.kill(); n == 0 {
				t.Fatalf("no connection to kill at id %d", last)
			}
			kills++
			if sentCount.Load() < total {
				killsWhilePublishing++
			}
			killAt = killAt[1:]
		}
		if last >= total {
			break
		}
	}
	if err := <-published; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	if missed := checkSequence(t, events, 1, total); missed != 0 {
		t.Errorf("%d ids reported missing, want 0", missed)
	}
	if kills != 4 || retries < kills {
		t.Errorf("%d kills, %d reconnects; want 4 kills, each followed by a reconnect", kills, retries)
	}
	if killsWhilePublishing < 3 {
		t.Errorf("%d kills while entries were still being published, want at least 3", killsWhilePublishing)
	}
	t.Logf("%d entries in %d events, %d kills (%d while publishing), %d reconnects, %d dials", total, len(events), kills, killsWhilePublishing, retries, k.dials)
}

// TestWatchSurvivesServerRestart restarts the server on the same archive
// mid-stream: the new server continues the ids, and Watch resumes, getting
// from the archive what the new server's memory never held.
func TestWatchSurvivesServerRestart(t *testing.T) {
	const before, after = 2000, 1000
	ts := startServer(t, func(cfg *pxperfv1.Config) {
		cfg.Memory.MaxEntries = 1000 // the first entries come from the archive even before the restart
		cfg.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED
		cfg.Throttle.BatchSize = 100
		cfg.Throttle.MaxBatchSize = 500
	}, service.Options{})
	pub := ts.client(t, Config{}, nil)
	watcher := ts.client(t, Config{}, nil)
	ctx := testContext(t)
	publishAll(t, ctx, pub, before, 500)

	restarted := make(chan error, 1)
	var events []event
	var last uint64
	var retries []error
	opts := fastRetry
	opts.OnRetry = func(err error, _ int, _ time.Duration) { retries = append(retries, err) }
	restarting := false
	for msg, err := range watcher.Watch(ctx, startID(1), opts) {
		if err != nil {
			t.Fatalf("Watch after %d entries: %v", last, err)
		}
		events, last = record(events, msg, last)
		if !restarting && last >= 500 {
			restarting = true
			go func() {
				ts.restart()
				// Published to the new server, which must continue the ids.
				for n := after; n > 0; n -= 250 {
					results, err := pub.Publish(ctx, entries(250)...)
					if err != nil {
						restarted <- err
						return
					}
					if id := results[0].GetId(); id <= before {
						restarted <- fmt.Errorf("new server gave id %d, want above %d", id, before)
						return
					}
				}
				restarted <- nil
			}()
		}
		if last >= before+after {
			break
		}
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if missed := checkSequence(t, events, 1, before+after); missed != 0 {
		t.Errorf("%d ids reported missing, want 0", missed)
	}
	if len(retries) == 0 {
		t.Error("no reconnect: the restart did not break the stream")
	}
	for _, err := range retries {
		if status.Code(err) != codes.Unavailable {
			t.Errorf("retried after %v, want only UNAVAILABLE", err)
		}
	}
}

func TestWatchOutOfRangeFromServer(t *testing.T) {
	ts := startServer(t, func(cfg *pxperfv1.Config) {
		cfg.Logs.Enabled = false // nothing outlives memory
		cfg.Memory.MaxEntries = 10
	}, service.Options{})
	c := ts.client(t, Config{}, nil)
	ctx := testContext(t)
	publishAll(t, ctx, c, 50, 50)
	list, err := c.ListEntries(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldest := list.GetOldestId()
	if oldest < 41 {
		t.Fatalf("oldest id in memory %d, want at least 41 with max_entries 10", oldest)
	}

	t.Run("typed error", func(t *testing.T) {
		got := runWatch(ctx, c, startID(1), fastRetry)
		oe, ok := errors.AsType[*OutOfRangeError](got.err)
		if !ok {
			t.Fatalf("error %v (%T), want an *OutOfRangeError", got.err, got.err)
		}
		if oe.StartID != 1 || oe.Oldest != oldest {
			t.Errorf("OutOfRangeError{StartID: %d, Oldest: %d}, want {1, %d}", oe.StartID, oe.Oldest, oldest)
		}
		if len(got.retries) != 0 {
			t.Errorf("%d retries, want none", len(got.retries))
		}
	})
	t.Run("Subscribe error", func(t *testing.T) {
		var err error
		for _, e := range c.Subscribe(ctx, startID(1)) {
			err = e
		}
		if got, ok := OldestAvailable(err); !ok || got != oldest {
			t.Errorf("OldestAvailable(%v) = %d, %v; want %d, true", err, got, ok, oldest)
		}
	})
	t.Run("ResumeFromOldest", func(t *testing.T) {
		opts := fastRetry
		opts.ResumeFromOldest = true
		var events []event
		var last uint64
		for msg, err := range c.Watch(ctx, startID(1), opts) {
			if err != nil {
				t.Fatal(err)
			}
			if events, last = record(events, msg, last); last >= 50 {
				break
			}
		}
		if missed := checkSequence(t, events, 1, 50); missed != oldest-1 {
			t.Errorf("%d ids reported missing, want %d", missed, oldest-1)
		}
	})
}

func TestWatchBadFilterIsNotRetried(t *testing.T) {
	ts := startServer(t, nil, service.Options{})
	c := ts.client(t, Config{}, nil)
	req := &pxperfv1.SubscribeRequest{Filter: &pxperfv1.Filter{Methods: []string{"not a method"}}}
	got := runWatch(testContext(t), c, req, fastRetry)
	if status.Code(got.err) != codes.InvalidArgument {
		t.Errorf("error %v, want code %v", got.err, codes.InvalidArgument)
	}
	if len(got.retries) != 0 || len(got.msgs) != 0 {
		t.Errorf("%d retries and %d messages, want none", len(got.retries), len(got.msgs))
	}
}
