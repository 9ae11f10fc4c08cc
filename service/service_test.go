package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/client"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testMemoryMB is the memory budget of test servers: the largest allowed.
// The server evicts entries when the RSS of its process passes
// memory.high_water of the budget (the pressure watcher), and when it is
// at monitor.memory_alert_threshold of it at a monitor sample (the first
// one at start; monitor.auto_optimize). An in-process test server shares
// its process with the whole -race test binary, whose RSS is often above
// 80 % of the default 500 MiB: the server would evict what a test has just
// published. Tests of pressure and memory alerts set a small budget
// themselves.
const testMemoryMB = 1 << 20

// testOverheadMB is memory.overhead_mb in tests: see newHarnessWith.
const testOverheadMB = 1 << 10

// harness is a real server on an in-memory listener and a client of it.
type harness struct {
	srv    *service.Server
	client *client.Client
	conn   func(context.Context, string) (net.Conn, error)
}

// newHarness starts a server with the default config changed by edit (which
// may be nil). The server and client are stopped when the test ends.
func newHarness(t *testing.T, edit func(*pxperfv1.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, edit, service.Options{})
}

// newHarnessWith is newHarness with server options; dialOpts are added to
// the client's.
func newHarnessWith(t *testing.T, edit func(*pxperfv1.Config), opts service.Options, dialOpts ...grpc.DialOption) *harness {
	t.Helper()
	cfg := config.Default()
	cfg.Throttle.HeartbeatInterval = durationpb.New(100 * time.Millisecond)
	cfg.Throttle.MaxUpdatesPerSecond = 1000
	cfg.Logs.Directory = t.TempDir()
	cfg.Memory.MaxMemoryMb = testMemoryMB
	// The server shares the test binary's heap, which earlier tests leave
	// tens of MiB in: the memory share (live memory besides the store over
	// this) would otherwise judge the binary, not the server.
	cfg.Memory.OverheadMb = testOverheadMB
	if edit != nil {
		edit(cfg)
	}
	srv, err := service.New(cfg, opts)
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }
	c, err := client.New(client.Config{
		Address:     "passthrough:///bufnet",
		DialOptions: append([]grpc.DialOption{grpc.WithContextDialer(dial)}, dialOpts...),
	})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Shutdown()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{srv: srv, client: c, conn: dial}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func entry(method, url string, status int32) *pxperfv1.Entry {
	return &pxperfv1.Entry{
		StartTime:  timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)),
		Method:     method,
		Url:        url,
		StatusCode: status,
	}
}

// publish publishes entries and fails the test unless all are accepted. It
// returns their ids.
func (h *harness) publish(t *testing.T, ctx context.Context, es ...*pxperfv1.Entry) []uint64 {
	t.Helper()
	results, err := h.client.Publish(ctx, es...)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ids := make([]uint64, len(results))
	for i, r := range results {
		if r.GetRejection() != nil {
			t.Fatalf("entry %d rejected: %v", i, r.GetRejection())
		}
		ids[i] = r.GetId()
	}
	return ids
}

// stream is a Subscribe stream read one message at a time.
type stream struct {
	next func() (*pxperfv1.SubscribeResponse, error, bool)
	stop func()
}

func (h *harness) subscribe(t *testing.T, ctx context.Context, req *pxperfv1.SubscribeRequest) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	next, stop := iter.Pull2(h.client.Subscribe(ctx, req))
	s := &stream{next: next, stop: func() { stop(); cancel() }}
	t.Cleanup(s.stop)
	return s
}

// recv returns the next message that is not a progress heartbeat.
func (s *stream) recv(t *testing.T) *pxperfv1.SubscribeResponse {
	t.Helper()
	for {
		m, err, ok := s.next()
		if !ok {
			t.Fatal("stream ended")
		}
		if err != nil {
			t.Fatalf("stream error: %v", err)
		}
		if m.GetProgress() == nil {
			return m
		}
	}
}

// stats returns the server's stats now.
func (h *harness) stats(t *testing.T, ctx context.Context) *pxperfv1.Stats {
	t.Helper()
	resp, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	return resp.GetStats()
}

// waitStats polls GetStats until cond holds, for what happens on the
// server's own clock (a sampler tick, a flush, a timeout), and returns the
// stats that satisfied it. It fails the test when the test's deadline
// passes first.
func (h *harness) waitStats(t *testing.T, what string, cond func(*pxperfv1.Stats) bool) *pxperfv1.Stats {
	t.Helper()
	ctx := testContext(t)
	for {
		resp, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if cond(resp.GetStats()) {
			return resp.GetStats()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: not seen by the deadline; last stats: %v", what, resp.GetStats())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// recvErr reads until the stream fails and returns the error.
func (s *stream) recvErr(t *testing.T) error {
	t.Helper()
	for {
		_, err, ok := s.next()
		if !ok {
			t.Fatal("stream ended without an error")
		}
		if err != nil {
			return err
		}
	}
}

// waitPositioned reads until the first heartbeat, which proves the server
// has placed the stream's cursor.
func (s *stream) waitPositioned(t *testing.T) *pxperfv1.Progress {
	t.Helper()
	for {
		m, err, ok := s.next()
		if !ok || err != nil {
			t.Fatalf("stream ended before a heartbeat: %v", err)
		}
		if p := m.GetProgress(); p != nil {
			return p
		}
	}
}

func batchIDs(m *pxperfv1.SubscribeResponse) []uint64 {
	var ids []uint64
	for _, e := range m.GetBatch().GetEntries() {
		ids = append(ids, e.GetId())
	}
	return ids
}

func TestPublishSubscribeListGet(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)

	before := h.publish(t, ctx, entry("GET", "http://example.com/old", 200))
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	if p := sub.waitPositioned(t); p.GetNextId() != before[0]+1 {
		t.Fatalf("subscription from now starts at %d, want %d", p.GetNextId(), before[0]+1)
	}

	e := entry("POST", "https://api.example.com/v1/items?x=1", 201)
	e.RequestHeaders = []*pxperfv1.Header{{Name: "Authorization", Value: "Bearer secret"}}
	e.ResponseBody = &pxperfv1.Body{Data: []byte(`{"ok":true}`), ContentType: "application/json"}
	e.Timings = &pxperfv1.Timings{Total: durationpb.New(42 * time.Millisecond)}
	ids := h.publish(t, ctx, e)

	m := sub.recv(t)
	got := m.GetBatch().GetEntries()
	if len(got) != 1 || got[0].GetId() != ids[0] {
		t.Fatalf("batch ids = %v, want [%d]", batchIDs(m), ids[0])
	}
	if m.GetBatch().GetNextId() != ids[0]+1 {
		t.Errorf("next_id = %d, want %d", m.GetBatch().GetNextId(), ids[0]+1)
	}
	if got[0].GetResponseBody().GetData() != nil {
		t.Errorf("subscribe without include_bodies sent a body")
	}
	if v := got[0].GetRequestHeaders()[0].GetValue(); v != "[REDACTED]" {
		t.Errorf("Authorization header = %q, want redacted", v)
	}

	list, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if list.GetTotalSize() != 2 || len(list.GetEntries()) != 2 || list.GetEntries()[0].GetId() != ids[0] {
		t.Errorf("ListEntries = total %d, %d entries, first id %d; want 2, 2, %d (newest first)",
			list.GetTotalSize(), len(list.GetEntries()), list.GetEntries()[0].GetId(), ids[0])
	}

	full, err := h.client.GetEntry(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	want := entry("POST", "https://api.example.com/v1/items?x=1", 201)
	want.Id = ids[0]
	want.Host = "api.example.com"
	want.State = pxperfv1.EntryState_ENTRY_STATE_COMPLETED
	want.Priority = pxperfv1.Priority_PRIORITY_NORMAL
	want.RequestHeaders = []*pxperfv1.Header{{Name: "Authorization", Value: "[REDACTED]"}}
	want.ResponseBody = &pxperfv1.Body{Data: []byte(`{"ok":true}`), ContentType: "application/json", OriginalSize: 11}
	want.Timings = &pxperfv1.Timings{Total: durationpb.New(42 * time.Millisecond)}
	if diff := cmp.Diff(full, want, protocmp.Transform()); diff != "" {
		t.Errorf("GetEntry (-got +want):\n%s", diff)
	}
}

func TestSubscribeFilters(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	h.publish(t, ctx,
		entry("GET", "http://a.example.com/1", 200),      // 1
		entry("POST", "http://a.example.com/2", 503),     // 2
		entry("GET", "http://b.example.org/3", 404),      // 3
		entry("DELETE", "http://cdn.example.com/4", 500), // 4
		entry("GET", "http://a.example.com/5", 302),      // 5
	)
	tests := []struct {
		name   string
		filter *pxperfv1.Filter
		want   []uint64
	}{
		{"none", nil, []uint64{1, 2, 3, 4, 5}},
		{"method", &pxperfv1.Filter{Methods: []string{"GET"}}, []uint64{1, 3, 5}},
		{"status range", &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}}}, []uint64{2, 4}},
		{"host glob", &pxperfv1.Filter{Host: "*.example.com"}, []uint64{1, 2, 4, 5}},
		{"host substring and method", &pxperfv1.Filter{Host: "a.example", Methods: []string{"GET"}}, []uint64{1, 5}},
		{"query", &pxperfv1.Filter{Query: "method:GET -status:404 OR method:DELETE"}, []uint64{1, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{
				Filter: tt.filter,
				Start:  &pxperfv1.SubscribeRequest_StartId{StartId: 1},
			})
			var got []uint64
			for len(got) < len(tt.want) {
				got = append(got, batchIDs(sub.recv(t))...)
			}
			if !cmp.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			// Nothing more: the next message is a heartbeat at the end.
			if p := sub.waitPositioned(t); p.GetNextId() != 6 {
				t.Errorf("heartbeat next_id = %d, want 6", p.GetNextId())
			}
		})
	}
}

func TestSubscribeTailSnapshot(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	for i := range 5 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 3}})
	var got []uint64
	for {
		m := sub.recv(t)
		if end := m.GetSnapshotEnd(); end != nil {
			if end.GetNextId() != 6 {
				t.Errorf("snapshot_end next_id = %d, want 6", end.GetNextId())
			}
			break
		}
		got = append(got, batchIDs(m)...)
	}
	if !cmp.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("snapshot ids = %v, want [3 4 5]", got)
	}
	h.publish(t, ctx, entry("GET", "http://example.com/live", 200))
	if ids := batchIDs(sub.recv(t)); !cmp.Equal(ids, []uint64{6}) {
		t.Errorf("live ids = %v, want [6]", ids)
	}
}

// subscriberPaths are a subscription's two ways of reading the store: without
// a filter, runs of cached encodings (store.Limit.RunsOnly); with one, entry
// by entry. The filter selects every entry the tests publish (GET).
var subscriberPaths = []struct {
	name   string
	filter *pxperfv1.Filter
}{{"no filter", nil}, {"filter", &pxperfv1.Filter{Methods: []string{"GET"}}}}

// The snapshot_end marker falls exactly between snapshot and live entries
// even when a batch would cross it: entries published while the snapshot
// is being sent come after the marker, with or without a filter.
func TestSubscribeTailSnapshotEndsBatch(t *testing.T) {
	for _, tt := range subscriberPaths {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *pxperfv1.Config) {
				c.Throttle.BatchSize = 2
				c.Throttle.MaxBatchSize = 2
			})
			ctx := testContext(t)
			for i := range 5 {
				h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
			}
			// Two messages a second: the second batch is read after entry 6
			// is published.
			sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{
				Start: &pxperfv1.SubscribeRequest_Tail{Tail: 3}, Filter: tt.filter, MaxUpdatesPerSecond: 2,
			})
			if ids := batchIDs(sub.recv(t)); !cmp.Equal(ids, []uint64{3, 4}) {
				t.Fatalf("first batch = %v, want [3 4]", ids)
			}
			h.publish(t, ctx, entry("GET", "http://example.com/live", 200))
			if ids := batchIDs(sub.recv(t)); !cmp.Equal(ids, []uint64{5}) {
				t.Errorf("second batch = %v, want [5]: it must stop at the snapshot's end", ids)
			}
			if end := sub.recv(t).GetSnapshotEnd(); end.GetNextId() != 6 {
				t.Errorf("want snapshot_end with next_id 6, got %v", end)
			}
			if ids := batchIDs(sub.recv(t)); !cmp.Equal(ids, []uint64{6}) {
				t.Errorf("live ids = %v, want [6]", ids)
			}
		})
	}
}

// Snapshot entries evicted before they were sent, and live ones after
// them, are reported as gaps on either side of the snapshot_end marker:
// the marker still falls between snapshot and live ids, and next_id never
// goes back.
func TestSubscribeTailSnapshotEvicted(t *testing.T) {
	for _, tt := range subscriberPaths {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *pxperfv1.Config) {
				c.Memory.MaxEntries = 3
				c.Logs.Enabled = false // memory only: the gaps are reported, not filled
				c.Throttle.BatchSize = 10
				c.Throttle.MaxBatchSize = 10
				c.Throttle.BatchTimeout = durationpb.New(200 * time.Millisecond)
			})
			ctx := testContext(t)
			for i := range 5 { // 3..5 held
				h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
			}
			// The generated client opens the stream at once (the Go client's
			// iterator would open it on the first read).
			sub, err := h.client.Service().Subscribe(ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 2}, Filter: tt.filter})
			if err != nil {
				t.Fatal(err)
			}
			h.waitStats(t, "the subscriber to start at id 4", func(st *pxperfv1.Stats) bool {
				subs := st.GetThrottle().GetPerSubscriber()
				return len(subs) == 1 && subs[0].GetNextId() == 4
			})
			// 4 and 5 are evicted before their batch (waiting to fill) goes.
			es := make([]*pxperfv1.Entry, 10) // 6..15; 13..15 held
			for i := range es {
				es[i] = entry("GET", fmt.Sprintf("http://example.com/live/%d", i), 200)
			}
			h.publish(t, ctx, es...)
			var got []string
			for len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "batch") {
				m, err := sub.Recv()
				if err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				switch {
				case m.GetProgress() != nil:
				case m.GetGap() != nil:
					got = append(got, fmt.Sprintf("gap %d..%d", m.GetGap().GetFirstMissedId(), m.GetGap().GetLastMissedId()))
				case m.GetSnapshotEnd() != nil:
					got = append(got, fmt.Sprintf("end %d", m.GetSnapshotEnd().GetNextId()))
				default:
					got = append(got, fmt.Sprintf("batch %v next %d", batchIDs(m), m.GetBatch().GetNextId()))
				}
			}
			want := []string{"gap 4..5", "end 6", "gap 6..12", "batch [13 14 15] next 16"}
			if !cmp.Equal(got, want) {
				t.Errorf("messages %q, want %q", got, want)
			}
		})
	}
}

// A subscriber whose cursor falls behind the oldest entry kept is told the
// exact ids it missed: every id is either delivered or reported, once.
func TestSubscribeGapAccountsForEveryID(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 3
		c.Throttle.MaxUpdatesPerSecond = 2
		c.Logs.Enabled = false // memory only: with the archive, it fills the gap
	})
	ctx := testContext(t)
	h.publish(t, ctx, entry("GET", "http://example.com/1", 200))
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{
		Start:        &pxperfv1.SubscribeRequest_StartId{StartId: 1},
		MaxBatchSize: 1,
	})
	first := sub.recv(t)
	// The subscriber now waits for its rate limit; meanwhile 19 more
	// entries arrive and all but 3 are evicted.
	for i := 2; i <= 20; i++ {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	seen := map[uint64]int{}
	for _, id := range batchIDs(first) {
		seen[id]++
	}
	gaps := 0
	for len(seen) < 20 {
		m := sub.recv(t)
		for _, id := range batchIDs(m) {
			seen[id]++
		}
		if g := m.GetGap(); g != nil {
			gaps++
			for id := g.GetFirstMissedId(); id <= g.GetLastMissedId(); id++ {
				seen[id]++
			}
		}
	}
	if gaps == 0 {
		t.Error("no gap message, although entries were evicted before the subscriber read them")
	}
	for id := uint64(1); id <= 20; id++ {
		if seen[id] != 1 {
			t.Errorf("id %d accounted %d times, want once", id, seen[id])
		}
	}
}

func TestSubscribeResumeOutOfRange(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 2
		c.Logs.Enabled = false // memory only: the archive would still have them
	})
	ctx := testContext(t)
	for i := range 5 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	err := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 2}}).recvErr(t)
	st := status.Convert(err)
	if st.Code() != codes.OutOfRange {
		t.Fatalf("resume from evicted id: %v, want OUT_OF_RANGE", err)
	}
	var oldest string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			oldest = info.GetMetadata()["oldest_id"]
		}
	}
	if oldest != "4" {
		t.Errorf("oldest_id detail = %q, want 4 (details %v)", oldest, st.Details())
	}

	// Resuming from the oldest kept id works.
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 4}})
	if ids := batchIDs(sub.recv(t)); !cmp.Equal(ids, []uint64{4, 5}) {
		t.Errorf("resumed ids = %v, want [4 5]", ids)
	}
}

func TestListEntriesPagingAndWindow(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	batch := make([]*pxperfv1.Entry, 120)
	for i := range batch {
		method := "GET"
		if i%4 == 0 {
			method = "POST"
		}
		batch[i] = entry(method, fmt.Sprintf("http://example.com/%d", i+1), 200)
	}
	h.publish(t, ctx, batch...)

	// Page through the POSTs, oldest first.
	var got []uint64
	req := &pxperfv1.ListEntriesRequest{
		Filter:   &pxperfv1.Filter{Methods: []string{"POST"}},
		PageSize: 7,
		Order:    pxperfv1.Order_ORDER_OLDEST_FIRST,
	}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging did not end")
		}
		resp, err := h.client.ListEntries(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotalSize() != 30 {
			t.Fatalf("total_size = %d, want 30", resp.GetTotalSize())
		}
		for _, e := range resp.GetEntries() {
			got = append(got, e.GetId())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if len(got) != 30 || got[0] != 1 || got[29] != 117 {
		t.Errorf("paged ids = %v, want 30 ids 1, 5, …, 117", got)
	}

	// A virtual-scrolling window: rows 10..14 of the newest-first view.
	resp, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{Offset: 10, PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	var window []uint64
	for _, e := range resp.GetEntries() {
		window = append(window, e.GetId())
	}
	if !cmp.Equal(window, []uint64{110, 109, 108, 107, 106}) || resp.GetTotalSize() != 120 ||
		resp.GetOldestId() != 1 || resp.GetNewestId() != 120 {
		t.Errorf("window = %v total %d ids %d..%d", window, resp.GetTotalSize(), resp.GetOldestId(), resp.GetNewestId())
	}
}

func TestPublishStreamSummary(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	ps, err := h.client.Service().PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := entry("GET", "not a url", 200)
	for _, es := range [][]*pxperfv1.Entry{
		{entry("GET", "http://example.com/1", 200), entry("GET", "http://example.com/2", 200)},
		{bad, entry("GET", "http://example.com/3", 200)},
	} {
		if err := ps.Send(&pxperfv1.PublishStreamRequest{Entries: es}); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := ps.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	want := &pxperfv1.PublishStreamResponse{
		Accepted: 3, Rejected: 1, FirstId: 1, LastId: 3,
		Rejections: []*pxperfv1.IndexedRejection{{Index: 2, Rejection: &pxperfv1.Rejection{
			Message:         `url: need an absolute URL with scheme and host, such as http://example.com/path, got "not a url"`,
			FieldViolations: []*pxperfv1.FieldViolation{{Field: "url", Description: `need an absolute URL with scheme and host, such as http://example.com/path, got "not a url"`}},
		}}},
	}
	if diff := cmp.Diff(sum, want, protocmp.Transform()); diff != "" {
		t.Errorf("summary (-got +want):\n%s", diff)
	}
}

// fieldViolations returns the BadRequest field names of a status error.
func fieldViolations(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	return fields
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	tests := []struct {
		name      string
		call      func() error
		wantField string
	}{
		{"empty publish", func() error {
			_, err := svc.Publish(ctx, &pxperfv1.PublishRequest{})
			return err
		}, "entries"},
		{"page size too big", func() error {
			_, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: 5000})
			return err
		}, "page_size"},
		{"offset with page token", func() error {
			_, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{Offset: 3, PageToken: "x"})
			return err
		}, ""},
		{"forged page token", func() error {
			_, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageToken: "bm9wZQ"})
			return err
		}, "page_token"},
		{"bad status range", func() error {
			_, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{Filter: &pxperfv1.Filter{
				StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 400}},
			}})
			return err
		}, "filter.status_ranges[0]"},
		{"bad host glob", func() error {
			_, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{Filter: &pxperfv1.Filter{Host: "[a-"}})
			return err
		}, "filter.host"},
		{"get id 0", func() error {
			_, err := svc.GetEntry(ctx, &pxperfv1.GetEntryRequest{})
			return err
		}, "id"},
		{"subscribe tail too big", func() error {
			return h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 1_000_000}}).recvErr(t)
		}, "tail"},
		{"subscribe bad glob", func() error {
			return h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Filter: &pxperfv1.Filter{Url: "http://[x"}}).recvErr(t)
		}, "filter.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want INVALID_ARGUMENT", err)
			}
			if tt.wantField != "" && !cmp.Equal(fieldViolations(err), []string{tt.wantField}) {
				t.Errorf("field violations = %v, want [%s] (error: %v)", fieldViolations(err), tt.wantField, err)
			}
		})
	}
}

// One bad entry in a batch is rejected with the field it breaks; the others
// are accepted.
func TestPublishRejectsPerEntry(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	negative := entry("GET", "http://example.com/t", 200)
	negative.Timings = &pxperfv1.Timings{Total: durationpb.New(-time.Second)}
	huge := entry("GET", "http://example.com/huge", 200)
	for range 80 { // 1.3 MiB of headers, each within its own limit
		huge.RequestHeaders = append(huge.RequestHeaders, &pxperfv1.Header{Name: "X-Big", Value: strings.Repeat("v", 16384)})
	}
	results, err := h.client.Publish(ctx,
		entry("GET", "http://example.com/ok", 200),
		entry("BREW", "coffee://pot", 418),
		entry("get", "http://example.com/lower", 200),
		negative,
		&pxperfv1.Entry{Method: "GET", Url: "http://example.com/no-time"},
		huge,
		entry("GET", "http://example.com/ok2", 200),
	)
	if err != nil {
		t.Fatal(err)
	}
	type fate struct {
		ID     uint64
		Fields []string
	}
	var got []fate
	for _, r := range results {
		f := fate{ID: r.GetId()}
		for _, fv := range r.GetRejection().GetFieldViolations() {
			f.Fields = append(f.Fields, fv.GetField())
		}
		got = append(got, f)
	}
	want := []fate{
		{ID: 1},
		{Fields: []string{"method"}}, // not a registered method
		{Fields: []string{"method"}}, // lower case
		{Fields: []string{"timings.total"}},
		{Fields: []string{"start_time"}},
		{Fields: []string{"request_headers"}}, // over the 1 MiB entry limit
		{ID: 2},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("results (-got +want):\n%s", diff)
	}
	if msg := results[2].GetRejection().GetMessage(); !strings.Contains(msg, "method") {
		t.Errorf("rejection message %q does not name the field", msg)
	}
}

func TestGetEntryNotFound(t *testing.T) {
	h := newHarness(t, nil)
	_, err := h.client.GetEntry(testContext(t), 99)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetEntry(99) = %v, want NOT_FOUND", err)
	}
}

func TestGetConfigReturnsEffectiveConfig(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 1234
		c.Logs.Directory = dir
	})
	got, err := h.client.GetConfig(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Memory.MaxEntries = 1234
	want.Throttle.HeartbeatInterval = durationpb.New(100 * time.Millisecond)
	want.Throttle.MaxUpdatesPerSecond = 1000
	want.Memory.MaxMemoryMb = testMemoryMB
	want.Memory.OverheadMb = testOverheadMB
	want.Logs.Directory = dir
	if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
		t.Errorf("GetConfig (-got +want):\n%s", diff)
	}
}

func TestGetStatsReportsStore(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Memory.MaxEntries = 2 })
	ctx := testContext(t)
	for i := range 3 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	stats := h.stats(t, ctx)
	st := stats.GetStore()
	if st.GetEntries() != 2 || st.GetAccepted() != 3 || st.GetEvictedByCount() != 1 || st.GetOldestId() != 2 || st.GetNewestId() != 3 {
		t.Errorf("store stats = %v", st)
	}
	p := stats.GetProcess()
	if p.GetRssBytes() == 0 || p.GetHeapLiveBytes() == 0 || p.GetMemoryLimitBytes() == 0 || p.GetGoroutines() == 0 {
		t.Errorf("process stats = %v, want real figures", p)
	}
}

// The store gives way when live memory passes the budget and the
// allowance for the rest of the process, even when it holds few entries:
// a ballast kept live in this process, beside the in-process server, puts
// live memory there.
func TestPressureEvictsWithFewEntries(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxMemoryMb = 1
		c.Memory.OverheadMb = 32
		c.Memory.CleanupInterval = durationpb.New(100 * time.Millisecond)
	})
	ctx := testContext(t)
	h.publish(t, ctx, entry("GET", "http://example.com/1", 200), entry("GET", "http://example.com/2", 200))
	ballast := make([]byte, 128<<20) // well beyond the 1 MiB budget and the 32 MiB overhead
	runtime.GC()                     // so that the live heap counts it
	stats := h.waitStats(t, "a pressure eviction", func(st *pxperfv1.Stats) bool {
		return st.GetStore().GetEvictedByPressure() == 2
	})
	runtime.KeepAlive(ballast)
	if st, proc := stats.GetStore(), stats.GetProcess(); st.GetEntries() != 0 || !st.GetUnderPressure() || proc.GetHeapLiveBytes() < 128<<20 {
		t.Errorf("after pressure eviction: store %v, process %v", st, proc)
	}
}

// rawConn is a second, plain gRPC connection to the harness's server,
// closed when the test ends.
func (h *harness) rawConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(h.conn), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestHealthServing(t *testing.T) {
	h := newHarness(t, nil)
	conn := h.rawConn(t)
	for _, svc := range []string{"", "pxperf.v1.PerformanceService"} {
		resp, err := healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
}

// Shutdown ends open Subscribe streams with UNAVAILABLE and a resume
// position, and Serve returns.
func TestShutdownEndsStreams(t *testing.T) {
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	srv, err := service.New(cfg, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	c, err := client.New(client.Config{
		Address: "passthrough:///bufnet",
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testContext(t)
	if _, err := c.Publish(ctx, entry("GET", "http://example.com/", 200)); err != nil {
		t.Fatal(err)
	}
	next, stop := iter.Pull2(c.Subscribe(ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}))
	defer stop()
	if m, err, _ := next(); err != nil || m.GetBatch() == nil {
		t.Fatalf("first message = %v, %v; want a batch", m, err)
	}

	srv.Shutdown()
	_, err, _ = next()
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "start_id 2") {
		t.Errorf("stream ended with %v, want UNAVAILABLE naming start_id 2", err)
	}
	if id, ok := client.ResumeID(err); !ok || id != 2 {
		t.Errorf("ResumeID of %v = %d, %v; want start_id 2 in an ErrorInfo detail", err, id, ok)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := c.GetConfig(ctx); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("call after shutdown = %v, want an error", err)
	}
}

// A grpc.health.v1 Watch stream ends at shutdown, with UNAVAILABLE, so
// that it does not hold GracefulStop until server.shutdown_timeout (the
// longest allowed here, far past the test's deadline).
func TestShutdownEndsHealthWatchers(t *testing.T) {
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	cfg.Server.ShutdownTimeout = durationpb.New(5 * time.Minute)
	srv, err := service.New(cfg, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := testContext(t)
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch message = %v, %v; want SERVING", m, err)
	}
	stopped := make(chan struct{})
	go func() {
		srv.Shutdown()
		close(stopped)
	}()
	for {
		m, err := w.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("Watch ended with %v; want UNAVAILABLE", err)
			}
			break
		}
		if m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch sent %v at shutdown; want NOT_SERVING", m.GetStatus())
		}
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("Shutdown still waits with a health watcher open")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// A PENDING entry completed later by its request id keeps its id, and a
// subscriber that already got it pending gets it again as an update.
func TestCompletionReachesSubscriberAsUpdate(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Filter: &pxperfv1.Filter{Host: "example.com"}})
	sub.waitPositioned(t)

	pending := entry("GET", "http://example.com/slow", 0)
	pending.RequestId = "req-1"
	ids := h.publish(t, ctx, pending)
	m := sub.recv(t).GetBatch()
	if len(m.GetEntries()) != 1 || m.GetEntries()[0].GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
		t.Fatalf("first batch = %v, want the pending entry", m)
	}

	done := entry("GET", "http://example.com/slow", 502)
	done.RequestId = "req-1"
	if got := h.publish(t, ctx, done); got[0] != ids[0] {
		t.Fatalf("completion got id %d, want %d", got[0], ids[0])
	}
	m = sub.recv(t).GetBatch()
	if len(m.GetEntries()) != 0 || len(m.GetUpdates()) != 1 {
		t.Fatalf("second batch = %v, want one update and no new entries", m)
	}
	u := m.GetUpdates()[0]
	if u.GetId() != ids[0] || u.GetStatusCode() != 502 || u.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || u.GetPriority() != pxperfv1.Priority_PRIORITY_HIGH {
		t.Errorf("update = %v, want id %d completed with 502 at HIGH priority", u, ids[0])
	}
	list, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if list.GetTotalSize() != 1 || list.GetEntries()[0].GetStatusCode() != 502 {
		t.Errorf("ListEntries = %v, want the one completed entry", list.GetEntries())
	}
}

// A live view over gRPC: the newest matching entries first, then what
// arrives, with the total that ListEntries would count.
func TestSubscribeLiveView(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	h.publish(t, ctx,
		entry("GET", "http://a.example.com/1", 200),  // 1
		entry("POST", "http://a.example.com/2", 201), // 2
		entry("GET", "http://a.example.com/3", 404),  // 3
		entry("GET", "http://a.example.com/4", 200),  // 4
	)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{
		Filter:   &pxperfv1.Filter{Methods: []string{"GET"}},
		LiveView: &pxperfv1.LiveView{Window: 2},
	})
	first := sub.recv(t).GetView()
	if got := viewIDs(first.GetEntries()); !cmp.Equal(got, []uint64{4, 3}) || first.GetTotal() != 3 || first.GetNewestId() != 4 {
		t.Errorf("first message: ids %v, total %d, newest %d; want [4 3], 3, 4", got, first.GetTotal(), first.GetNewestId())
	}
	h.publish(t, ctx, entry("POST", "http://a.example.com/5", 200), entry("GET", "http://a.example.com/6", 200))
	next := sub.recv(t).GetView()
	if got := viewIDs(next.GetEntries()); !cmp.Equal(got, []uint64{6}) || next.GetTotal() != 4 || next.GetNewestId() != 6 {
		t.Errorf("second message: ids %v, total %d, newest %d; want [6], 4, 6", got, next.GetTotal(), next.GetNewestId())
	}
}

func viewIDs(es []*pxperfv1.Entry) []uint64 {
	var ids []uint64
	for _, e := range es {
		ids = append(ids, e.GetId())
	}
	return ids
}

// A live view sends the newest entries only: the options of a stream of
// every entry are refused with it, and so is a window out of range.
func TestSubscribeLiveViewRefused(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	view := &pxperfv1.LiveView{Window: 10}
	for _, tc := range []struct {
		name string
		req  *pxperfv1.SubscribeRequest
		want string
	}{
		{"with start_id", &pxperfv1.SubscribeRequest{LiveView: view, Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}, "live_view"},
		{"with tail", &pxperfv1.SubscribeRequest{LiveView: view, Start: &pxperfv1.SubscribeRequest_Tail{Tail: 5}}, "live_view"},
		{"with bodies", &pxperfv1.SubscribeRequest{LiveView: view, IncludeBodies: true}, "live_view"},
		{"with max_batch_size", &pxperfv1.SubscribeRequest{LiveView: view, MaxBatchSize: 5}, "live_view"},
		{"window 0", &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{}}, "live_view.window"},
		{"window 1001", &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: 1001}}, "live_view.window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := h.client.Service().Subscribe(ctx, tc.req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("Subscribe = %v; want INVALID_ARGUMENT naming %s", err, tc.want)
			}
		})
	}
}

// rawSend sends a message already encoded (a []byte) as it is, and decodes
// replies with the proto codec: for requests no proto library would
// marshal.
type rawSend struct{ proto encoding.CodecV2 }

func (c rawSend) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawSend) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (rawSend) Name() string { return "proto" }

// An entry whose URL is not valid UTF-8 is rejected alone, naming the
// field; the entries beside it are stored.
func TestPublishRejectsUndecodableEntryAlone(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	urlField := (&pxperfv1.Entry{}).ProtoReflect().Descriptor().Fields().ByName("url").Number()
	var req []byte
	for _, url := range []string{"http://a.example.com/1", "http://a.example.com/\xff", "http://a.example.com/3"} {
		b, err := proto.Marshal(entry("GET", "http://a.example.com/", 200))
		if err != nil {
			t.Fatal(err)
		}
		b = protowire.AppendTag(b, urlField, protowire.BytesType) // the last one wins
		b = protowire.AppendBytes(b, []byte(url))
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, b)
	}
	resp := &pxperfv1.PublishResponse{}
	err := h.rawConn(t).Invoke(ctx, pxperfv1.PerformanceService_Publish_FullMethodName, req, resp,
		grpc.ForceCodecV2(rawSend{encoding.GetCodecV2("proto")}))
	if err != nil {
		t.Fatalf("Publish = %v; want the request served", err)
	}
	rs := resp.GetResults()
	if len(rs) != 3 || rs[0].GetId() == 0 || rs[2].GetId() == 0 || rs[1].GetId() != 0 {
		t.Fatalf("results %v; want entries 0 and 2 stored, 1 rejected", rs)
	}
	fv := rs[1].GetRejection().GetFieldViolations()
	if len(fv) != 1 || fv[0].GetField() != "url" || !strings.Contains(fv[0].GetDescription(), "UTF-8") {
		t.Errorf("rejection %v; want one naming url, not UTF-8", rs[1].GetRejection())
	}
	if got := h.stats(t, ctx).GetStore(); got.GetAccepted() != 2 || got.GetRejected() != 1 {
		t.Errorf("store accepted %d, rejected %d; want 2 and 1", got.GetAccepted(), got.GetRejected())
	}
}
