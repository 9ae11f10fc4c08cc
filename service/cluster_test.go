package service_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// clusterNode starts a pxperf node in cluster mode on the NATS servers at
// urls, with replicas replicas.
func clusterNode(t *testing.T, urls []string, replicas uint32, edit func(*pxperfv1.Config)) *harness {
	t.Helper()
	return newHarness(t, func(c *pxperfv1.Config) {
		c.Cluster.Urls = urls
		c.Cluster.Replicas = replicas
		c.Cluster.PublishTimeout = durationpb.New(2 * time.Second)
		if edit != nil {
			edit(c)
		}
	})
}

// listAll returns every entry node holds, oldest first.
func listAll(t *testing.T, ctx context.Context, h *harness) []*pxperfv1.Entry {
	t.Helper()
	res, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: 1000, Order: pxperfv1.Order_ORDER_OLDEST_FIRST})
	if err != nil {
		t.Fatalf("ListEntries: %v", err)
	}
	return res.GetEntries()
}

// waitEntries waits until node holds n entries.
func waitEntries(t *testing.T, ctx context.Context, h *harness, n int) []*pxperfv1.Entry {
	t.Helper()
	for {
		es := listAll(t, ctx, h)
		if len(es) >= n {
			return es
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node holds %d entries, want %d: %v", len(es), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Entries published on node A are served by node B under the same ids:
// listed, streamed, and completed.
func TestClusterPublishOnAReadOnB(t *testing.T) {
	nc := natstest.Start(t, 3)
	a := clusterNode(t, nc.URLs()[:1], 3, nil)
	b := clusterNode(t, nc.URLs()[2:], 3, nil)
	ctx := testContext(t)

	es := entriesN(20)
	pending := entry("GET", "http://example.com/slow", 0)
	pending.RequestId = "slow-1"
	pending.State = pxperfv1.EntryState_ENTRY_STATE_PENDING
	ids := a.publish(t, ctx, append(es, pending)...)
	done := entry("GET", "http://example.com/slow", 201)
	done.RequestId = "slow-1"
	if cid := a.publish(t, ctx, done); cid[0] != ids[20] {
		t.Fatalf("completion got id %d, want the pending entry's %d", cid[0], ids[20])
	}
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("ids %v: want 1..21, the first of a new stream", ids)
		}
	}

	got := waitEntries(t, ctx, b, 21)
	for i, e := range got {
		if e.GetId() != ids[i] {
			t.Errorf("B's entry %d has id %d, A gave %d", i, e.GetId(), ids[i])
		}
	}
	for i := range es {
		if got[i].GetUrl() != es[i].GetUrl() {
			t.Errorf("B's entry %d: url %q, want %q", ids[i], got[i].GetUrl(), es[i].GetUrl())
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, err := b.client.GetEntry(ctx, ids[20])
		if err != nil {
			t.Fatal(err)
		}
		if e.GetState() == pxperfv1.EntryState_ENTRY_STATE_COMPLETED && e.GetStatusCode() == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's entry %d: %v %d; want COMPLETED 201", ids[20], e.GetState(), e.GetStatusCode())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A subscriber on B from id 1 gets the same ids, in order.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var streamed []uint64
	for res, err := range b.client.Subscribe(sctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}) {
		if err != nil {
			t.Fatalf("Subscribe on B: %v", err)
		}
		for _, e := range res.GetBatch().GetEntries() {
			streamed = append(streamed, e.GetId())
		}
		if len(streamed) >= 21 {
			break
		}
	}
	if !slices.Equal(streamed[:21], ids) {
		t.Errorf("B streamed ids %v, want %v", streamed, ids)
	}

	// The stream's figures are as of the last check, once a second.
	cs := waitStats(t, ctx, b, func(st *pxperfv1.Stats) bool { return st.GetCluster().GetLastId() == 21 }).GetCluster()
	// One Publish is one message of the stream.
	if !cs.GetConnected() || cs.GetAppliedId() != 21 || cs.GetFirstId() != 1 || cs.GetStreamMessages() != 1 || cs.GetLag() != 0 {
		t.Errorf("B's cluster stats %v; want connected, ids 1..21 in one message of the stream, all applied", cs)
	}
}

// waitHealth waits, watching grpc.health.v1, until node's health is want.
func waitHealth(t *testing.T, ctx context.Context, h *harness, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	stream, err := healthpb.NewHealthClient(h.rawConn(t)).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		res, err := stream.Recv()
		if err != nil {
			t.Fatalf("health never became %v: %v", want, err)
		}
		if res.GetStatus() == want {
			return
		}
	}
}

// waitStats waits until node's stats satisfy ok, and returns them.
func waitStats(t *testing.T, ctx context.Context, h *harness, ok func(*pxperfv1.Stats) bool) *pxperfv1.Stats {
	t.Helper()
	for {
		res, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(res.GetStats()) {
			return res.GetStats()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stats %v: %v", res.GetStats(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A producer retrying a batch under the same batch_id (after a timeout,
// say) gets the same ids, and the entries are stored once; without a
// batch_id, the same entries published again are new entries, even with
// the same request ids (a proxy may number its requests from 1 again after
// a restart).
func TestClusterRetryNoDuplicate(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, nil)
	ctx := testContext(t)
	publish := func(batchID string) []uint64 {
		t.Helper()
		es := entriesN(5)
		for i, e := range es {
			e.RequestId = fmt.Sprintf("req-%d", i)
		}
		res, err := a.client.Service().Publish(ctx, &pxperfv1.PublishRequest{Entries: es, BatchId: batchID})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]uint64, len(res.GetResults()))
		for i, r := range res.GetResults() {
			ids[i] = r.GetId()
		}
		return ids
	}
	first := publish("batch-1")
	if again := publish("batch-1"); !slices.Equal(first, again) {
		t.Errorf("retry of batch-1 got ids %v, first try %v", again, first)
	}
	if n := len(listAll(t, ctx, a)); n != 5 {
		t.Errorf("node holds %d entries after a retry, want 5", n)
	}
	other := publish("")
	if other[0] != first[4]+1 {
		t.Errorf("the same entries without a batch_id got ids %v, want new ones after %d", other, first[4])
	}
	if n := len(listAll(t, ctx, a)); n != 10 {
		t.Errorf("node holds %d entries, want 10", n)
	}
}

// A retried batch is kept once even when its first attempt changed what
// the node knows: a batch whose PENDING entry the first attempt stored
// (the retry would see its own entry to complete), and one whose
// completion the first attempt applied (the retry would find nothing left
// to complete).
func TestClusterRetryOfPendingAndCompletion(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, nil)
	ctx := testContext(t)
	publish := func(batchID string, es ...*pxperfv1.Entry) []uint64 {
		t.Helper()
		res, err := a.client.Service().Publish(ctx, &pxperfv1.PublishRequest{Entries: es, BatchId: batchID})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]uint64, len(res.GetResults()))
		for i, r := range res.GetResults() {
			if r.GetRejection() != nil {
				t.Fatalf("entry %d rejected: %v", i, r.GetRejection())
			}
			ids[i] = r.GetId()
		}
		return ids
	}
	pending := entry("GET", "http://example.com/slow", 0)
	pending.RequestId, pending.State = "slow", pxperfv1.EntryState_ENTRY_STATE_PENDING
	withPending := func() []*pxperfv1.Entry {
		return []*pxperfv1.Entry{entry("GET", "http://example.com/a", 200), proto.CloneOf(pending), entry("GET", "http://example.com/b", 200)}
	}
	first := publish("with-pending", withPending()...)
	if again := publish("with-pending", withPending()...); !slices.Equal(first, again) {
		t.Errorf("retry of a batch holding a PENDING entry got ids %v, first try %v", again, first)
	}
	done := entry("GET", "http://example.com/slow", 201)
	done.RequestId = "slow"
	completing := func() []*pxperfv1.Entry {
		return []*pxperfv1.Entry{proto.CloneOf(done), entry("GET", "http://example.com/c", 200)}
	}
	second := publish("completing", completing()...)
	if second[0] != first[1] {
		t.Fatalf("the completion got id %d, want the PENDING entry's %d", second[0], first[1])
	}
	if again := publish("completing", completing()...); !slices.Equal(second, again) {
		t.Errorf("retry of a batch completing an entry got ids %v, first try %v", again, second)
	}
	got := listAll(t, ctx, a)
	if len(got) != 4 {
		t.Fatalf("node holds %d entries, want 4: a, slow, b, c", len(got))
	}
	if got[1].GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || got[1].GetStatusCode() != 201 {
		t.Errorf("the PENDING entry is %v with %d, want completed with 201", got[1].GetState(), got[1].GetStatusCode())
	}
}

// Without NATS, publishing fails with UNAVAILABLE, and what the node holds
// is still served.
func TestClusterUnavailable(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, func(c *pxperfv1.Config) {
		c.Cluster.PublishTimeout = durationpb.New(300 * time.Millisecond)
		c.Monitor.StatsUpdateInterval = durationpb.New(100 * time.Millisecond)
	})
	ctx := testContext(t)
	a.publish(t, ctx, entriesN(3)...)
	nc.Stop(0)
	_, err := a.client.Publish(ctx, entriesN(1)...)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Publish without NATS: %v; want UNAVAILABLE", err)
	}
	if n := len(listAll(t, ctx, a)); n != 3 {
		t.Errorf("node serves %d entries without NATS, want the 3 it holds", n)
	}
	waitHealth(t, ctx, a, healthpb.HealthCheckResponse_NOT_SERVING)
	st := waitStats(t, ctx, a, func(st *pxperfv1.Stats) bool {
		for _, al := range st.GetActiveAlerts() {
			if al.GetName() == "cluster_disconnected" {
				return true
			}
		}
		return false
	})
	if cs := st.GetCluster(); cs.GetConnected() || cs.GetPublishFailures() != 1 || cs.GetLastError() == "" {
		t.Errorf("cluster stats without NATS: %v; want not connected, 1 publish failure and the error", cs)
	}

	nc.Restart(0)
	waitHealth(t, ctx, a, healthpb.HealthCheckResponse_SERVING)
	ids := a.publish(t, ctx, entriesN(1)...)
	if ids[0] != 4 {
		t.Errorf("first entry after NATS came back got id %d, want 4", ids[0])
	}
	// The node follows the stream again: it holds the new entry.
	if got := waitEntries(t, ctx, a, 4); got[3].GetId() != 4 {
		t.Errorf("after NATS came back the node holds ids up to %d, want 4", got[len(got)-1].GetId())
	}
}

// A node started on a stream that holds entries loads the newest that fit
// its memory, under the stream's ids, and follows on.
func TestClusterNodeCatchesUp(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, nil)
	ctx := testContext(t)
	a.publish(t, ctx, entriesN(30)...)
	b := clusterNode(t, nc.URLs(), 1, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 10
		c.Server.MetricsAddress = "127.0.0.1:0"
	})
	got := waitEntries(t, ctx, b, 10)
	if got[0].GetId() != 21 || got[9].GetId() != 30 {
		t.Errorf("new node holds ids %d..%d, want the newest that fit: 21..30", got[0].GetId(), got[len(got)-1].GetId())
	}
	more := a.publish(t, ctx, entriesN(2)...)
	got = waitEntries(t, ctx, b, 10)
	for len(got) == 0 || got[len(got)-1].GetId() != more[1] {
		time.Sleep(20 * time.Millisecond)
		got = listAll(t, ctx, b)
		if ctx.Err() != nil {
			t.Fatalf("new node did not follow on to id %d", more[1])
		}
	}
}

// In cluster mode /metrics has the cluster's figures; in embedded mode it
// has none of them.
func TestClusterMetrics(t *testing.T) {
	nc := natstest.Start(t, 1)
	for _, tc := range []struct {
		name      string
		clustered bool
	}{{"cluster", true}, {"embedded", false}} {
		t.Run(tc.name, func(t *testing.T) {
			edit := func(c *pxperfv1.Config) { c.Server.MetricsAddress = "127.0.0.1:0" }
			var h *harness
			if tc.clustered {
				h = clusterNode(t, nc.URLs(), 1, edit)
			} else {
				h = newHarness(t, edit)
			}
			rec := httptest.NewRecorder()
			h.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			body := rec.Body.String()
			for _, name := range []string{"pxperf_cluster_connected", "pxperf_cluster_lag", "pxperf_cluster_last_id", "pxperf_cluster_publish_failures_total"} {
				if got := strings.Contains(body, "\n"+name+" "); got != tc.clustered {
					t.Errorf("/metrics has %s: %v, want %v", name, got, tc.clustered)
				}
			}
			if tc.clustered && !strings.Contains(body, "\npxperf_cluster_connected 1\n") {
				t.Errorf("/metrics does not say the node is connected:\n%s", body)
			}
		})
	}
}

// A config change made on node A applies on node B, which announces it on
// WatchStats; a node's own group (memory) stays its own; a node started
// later takes the shared groups from the cluster.
func TestClusterSharedConfig(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, nil)
	b := clusterNode(t, nc.URLs(), 1, nil)
	ctx := testContext(t)

	events := make(chan *pxperfv1.ConfigChanged, 4)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	stream, err := b.client.Service().WatchStats(wctx, &pxperfv1.WatchStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	go func() {
		for first := true; ; first = false {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if first {
				close(opened)
			}
			if cc := m.GetConfigChanged(); cc != nil {
				events <- cc
			}
		}
	}()
	// The stream is open once its first message (a stats sample) came.
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("WatchStats on B sent nothing")
	}

	if _, err := a.client.SetConfigFields(ctx, map[string]string{
		"throttle.max_updates_per_second": "7",
		"memory.max_entries":              "1234",
	}); err != nil {
		t.Fatalf("UpdateConfig on A: %v", err)
	}
	select {
	case cc := <-events:
		if cc.GetConfig().GetThrottle().GetMaxUpdatesPerSecond() != 7 || !slices.Contains(cc.GetChangedFields().GetPaths(), "throttle") {
			t.Errorf("B's config_changed: %v; want throttle changed to 7", cc)
		}
	case <-ctx.Done():
		t.Fatal("B announced no config change")
	}
	cfgB, err := b.client.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfgB.GetThrottle().GetMaxUpdatesPerSecond() != 7 {
		t.Errorf("B's throttle.max_updates_per_second = %d, want A's 7", cfgB.GetThrottle().GetMaxUpdatesPerSecond())
	}
	if cfgB.GetMemory().GetMaxEntries() == 1234 {
		t.Error("B took A's memory.max_entries: memory is each node's own")
	}

	c := clusterNode(t, nc.URLs(), 1, nil)
	cfgC, err := c.client.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfgC.GetThrottle().GetMaxUpdatesPerSecond() != 7 {
		t.Errorf("a node started later has throttle.max_updates_per_second %d, want the cluster's 7", cfgC.GetThrottle().GetMaxUpdatesPerSecond())
	}
}

// What left a node's memory is read back from the cluster's stream, with
// its completion: by GetEntry, and by a subscriber starting before the
// oldest entry the node holds, which gets every entry, in order, without a
// gap.
func TestClusterHistoryFromStream(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 10
		c.Logs.Enabled = false
	})
	ctx := testContext(t)
	pending := entry("GET", "http://example.com/slow", 0)
	pending.RequestId = "slow-1"
	pending.State = pxperfv1.EntryState_ENTRY_STATE_PENDING
	ids := a.publish(t, ctx, append([]*pxperfv1.Entry{pending}, entriesN(4)...)...)
	done := entry("GET", "http://example.com/slow", 201)
	done.RequestId = "slow-1"
	done.ResponseBody = &pxperfv1.Body{Data: []byte("made"), ContentType: "text/plain"}
	a.publish(t, ctx, done)
	ids = append(ids, a.publish(t, ctx, entriesN(25)...)...)

	got, err := a.client.GetEntry(ctx, ids[0])
	if err != nil {
		t.Fatalf("GetEntry(%d), gone from memory: %v", ids[0], err)
	}
	if got.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || got.GetStatusCode() != 201 || string(got.GetResponseBody().GetData()) != "made" {
		t.Errorf("entry %d from the stream: %v %d %q; want it COMPLETED 201 with its body", ids[0], got.GetState(), got.GetStatusCode(), got.GetResponseBody().GetData())
	}
	if _, err := a.client.GetEntry(ctx, 999); status.Code(err) != codes.NotFound {
		t.Errorf("GetEntry of an id never given: %v; want NOT_FOUND", err)
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var streamed []uint64
	for res, err := range a.client.Subscribe(sctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}) {
		if err != nil {
			t.Fatalf("Subscribe from 1: %v", err)
		}
		if g := res.GetGap(); g != nil {
			t.Fatalf("gap %v: the stream holds every entry", g)
		}
		for _, e := range res.GetBatch().GetEntries() {
			streamed = append(streamed, e.GetId())
		}
		if len(streamed) >= len(ids) {
			break
		}
	}
	if !slices.Equal(streamed, ids) {
		t.Errorf("subscriber from 1 got ids %v, want %v", streamed, ids)
	}
}

// With three replicas on three NATS servers, two nodes lose no
// acknowledged entry when one NATS server stops, and publishing goes on:
// a batch that fails while the stream elects a new leader is retried
// under its batch_id, and each of its entries is stored once.
func TestClusterSurvivesLossOfANATSServer(t *testing.T) {
	nc := natstest.Start(t, 3)
	a := clusterNode(t, nc.URLs(), 3, nil)
	b := clusterNode(t, nc.URLs()[1:], 3, nil)
	ctx := testContext(t)
	publish := func(batch int) {
		t.Helper()
		es := entriesN(10)
		for i, e := range es {
			e.Url = fmt.Sprintf("http://example.com/%d/%d", batch, i)
		}
		for {
			_, err := a.client.Service().Publish(ctx, &pxperfv1.PublishRequest{Entries: es, BatchId: fmt.Sprintf("batch-%d", batch)})
			if err == nil {
				return
			}
			if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
				t.Fatalf("publish batch %d: %v; want success, or UNAVAILABLE until the stream has a leader again", batch, err)
			}
			time.Sleep(100 * time.Millisecond)
			es = entriesN(10) // the retry sends the batch again, as a producer does
			for i, e := range es {
				e.Url = fmt.Sprintf("http://example.com/%d/%d", batch, i)
			}
		}
	}
	for batch := range 5 {
		publish(batch)
	}
	nc.Stop(0)
	for batch := 5; batch < 10; batch++ {
		publish(batch)
	}
	got := waitEntries(t, ctx, b, 100)
	seen := map[string]int{}
	for _, e := range got {
		seen[e.GetUrl()]++
	}
	for batch := range 10 {
		for i := range 10 {
			if u := fmt.Sprintf("http://example.com/%d/%d", batch, i); seen[u] != 1 {
				t.Errorf("%s is stored %d times on B, want once", u, seen[u])
			}
		}
	}
	if len(got) != 100 {
		t.Errorf("B holds %d entries, want 100", len(got))
	}
}

// A PublishStream in cluster mode sends its messages on their way to the
// stream before the earlier ones are taken; its entries keep the stream's
// order all the same, and a message that completes a PENDING entry of the
// message before it completes it rather than adding an entry.
func TestClusterPublishStreamInOrder(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := clusterNode(t, nc.URLs(), 1, nil)
	b := clusterNode(t, nc.URLs(), 1, nil)
	ctx := testContext(t)

	ps, err := a.client.Service().PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const messages, size = 40, 20 // within one page of listAll
	var urls []string             // of the new entries, in the order sent
	for m := range messages {
		es := make([]*pxperfv1.Entry, size)
		for i := range es {
			es[i] = entry("GET", fmt.Sprintf("http://example.com/%d/%d", m, i), 200)
			urls = append(urls, es[i].GetUrl())
		}
		if m%10 == 0 { // the last entry is PENDING, and the next message completes it
			es[size-1].RequestId = fmt.Sprintf("slow-%d", m)
			es[size-1].State = pxperfv1.EntryState_ENTRY_STATE_PENDING
			es[size-1].StatusCode = 0
		}
		if m%10 == 1 {
			done := entry("GET", fmt.Sprintf("http://example.com/%d/%d", m-1, size-1), 201)
			done.RequestId = fmt.Sprintf("slow-%d", m-1)
			es = append([]*pxperfv1.Entry{done}, es...)
		}
		if err := ps.Send(&pxperfv1.PublishStreamRequest{Entries: es}); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := ps.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	total := messages*size + messages/10 // the completions are accepted too
	if sum.GetAccepted() != uint64(total) || sum.GetRejected() != 0 || sum.GetFirstId() != 1 || sum.GetLastId() != uint64(messages*size) {
		t.Fatalf("summary %v; want %d accepted, ids 1..%d", sum, total, messages*size)
	}
	for _, node := range []*harness{a, b} {
		got := waitEntries(t, ctx, node, len(urls))
		if len(got) != len(urls) {
			t.Fatalf("node holds %d entries, want %d: a completion became an entry", len(got), len(urls))
		}
		for i, e := range got {
			if e.GetId() != uint64(i+1) || e.GetUrl() != urls[i] {
				t.Fatalf("entry %d is %d %s, want %d %s", i, e.GetId(), e.GetUrl(), i+1, urls[i])
			}
		}
		for m := 0; m < messages; m += 10 {
			id := uint64(m*size + size)
			deadline := time.Now().Add(10 * time.Second)
			for {
				e, err := node.client.GetEntry(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if e.GetState() == pxperfv1.EntryState_ENTRY_STATE_COMPLETED && e.GetStatusCode() == 201 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("entry %d is %v with status %d, want completed with 201", id, e.GetState(), e.GetStatusCode())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}
