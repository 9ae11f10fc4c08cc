package service_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// openSubscriber opens a Subscribe stream and waits for its first message,
// so that the server has registered it.
func openSubscriber(t *testing.T, ctx context.Context, svc pxperfv1.PerformanceServiceClient) (grpc.ServerStreamingClient[pxperfv1.SubscribeResponse], error) {
	t.Helper()
	s, err := svc.Subscribe(ctx, &pxperfv1.SubscribeRequest{})
	if err != nil {
		return nil, err
	}
	if _, err := s.Recv(); err != nil {
		return nil, err
	}
	return s, nil
}

// openSubscribers opens n Subscribe streams as openSubscriber does, all at
// once (one after the other, their first messages, heartbeats, would take
// n heartbeat intervals), and returns a cancel func for each, called when
// the test ends if not before.
func openSubscribers(t *testing.T, ctx context.Context, svc pxperfv1.PerformanceServiceClient, n int) []context.CancelFunc {
	t.Helper()
	cancels := make([]context.CancelFunc, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		cancels[i] = cancel
		wg.Go(func() { _, errs[i] = openSubscriber(t, sctx, svc) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("subscriber %d: %v", i+1, err)
		}
	}
	return cancels
}

// recvUntilError reads a stream until it ends and returns how.
func recvUntilError[T any](s interface{ Recv() (T, error) }) error {
	for {
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
}

func listResources(t *testing.T, ctx context.Context, svc pxperfv1.PerformanceServiceClient, typ pxperfv1.ResourceType) []*pxperfv1.Resource {
	t.Helper()
	resp, err := svc.ListResources(ctx, &pxperfv1.ListResourcesRequest{Type: typ, PageSize: 1000})
	if err != nil {
		t.Fatalf("ListResources: %v", err)
	}
	return resp.GetResources()
}

// The 101st subscriber is refused with RESOURCE_EXHAUSTED naming the
// limit; once one leaves, a new one is accepted.
func TestSubscriberLimit(t *testing.T) {
	h := newHarness(t, nil) // cleanup.max_resources defaults to 100
	ctx := testContext(t)
	svc := h.client.Service()
	cancels := openSubscribers(t, ctx, svc, 100)
	_, err := openSubscriber(t, ctx, svc)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "limit of 100") {
		t.Fatalf("101st subscriber: %v, want RESOURCE_EXHAUSTED naming the limit of 100", err)
	}
	cancels[0]()
	// The stream leaves the subscribers before its handler returns and
	// releases its resource, which is what the limit counts: wait for both.
	h.waitStats(t, "the first subscriber to leave", func(st *pxperfv1.Stats) bool {
		return st.GetThrottle().GetSubscribers() == 99 &&
			len(listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_SUBSCRIBER)) == 99
	})
	if _, err := openSubscriber(t, ctx, svc); err != nil {
		t.Fatalf("subscriber after one left: %v", err)
	}
	st := h.waitStats(t, "stats", func(*pxperfv1.Stats) bool { return true })
	if got := st.GetResources().GetRefused(); got != 1 {
		t.Errorf("refused = %d, want 1", got)
	}
}

// CloseResource ends a subscriber with ABORTED, the reason and where to
// resume; ListResources no longer lists it; the cleanup counts once.
func TestCloseResourceSubscriber(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	h.publish(t, ctx, entriesN(3)...)
	s, err := openSubscriber(t, ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	subs := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_SUBSCRIBER)
	if len(subs) != 1 || !strings.HasPrefix(subs[0].GetId(), "sub-") || subs[0].GetOwner() == "" {
		t.Fatalf("subscribers listed: %v, want one with an id and an owner", subs)
	}
	before := h.waitStats(t, "stats", func(*pxperfv1.Stats) bool { return true }).GetResources()
	resp, err := svc.CloseResource(ctx, &pxperfv1.CloseResourceRequest{Id: subs[0].GetId(), Reason: "maintenance"})
	if err != nil {
		t.Fatalf("CloseResource: %v", err)
	}
	if resp.GetResource().GetId() != subs[0].GetId() {
		t.Errorf("CloseResource returned %v, want %s", resp.GetResource(), subs[0].GetId())
	}
	err = recvUntilError(s)
	st := status.Convert(err)
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "maintenance") || !strings.Contains(st.Message(), "start_id 4") {
		t.Errorf("closed stream ended with %v, want ABORTED with the reason and start_id 4", err)
	}
	if id, ok := client.ResumeID(err); !ok || id != 4 {
		t.Errorf("ResumeID of %v = %d, %v; want 4, after the 3 entries published, in an ErrorInfo detail", err, id, ok)
	}
	if got := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_SUBSCRIBER); len(got) != 0 {
		t.Errorf("still listed after close: %v", got)
	}
	after := h.waitStats(t, "the cleanup to be counted", func(st *pxperfv1.Stats) bool {
		return st.GetResources().GetCleanupsSucceeded() == before.GetCleanupsSucceeded()+1
	}).GetResources()
	if after.GetCleanupsFailed() != 0 {
		t.Errorf("cleanups failed = %d, want 0", after.GetCleanupsFailed())
	}
	if _, err := svc.CloseResource(ctx, &pxperfv1.CloseResourceRequest{Id: subs[0].GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("closing it again = %v, want NOT_FOUND", err)
	}
}

// Background workers and the archive's file are listed but cannot be
// closed.
func TestCloseResourceWorkerRefused(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	h.publish(t, ctx, entriesN(3)...)
	files := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_FILE)
	if len(files) != 1 || !strings.HasPrefix(files[0].GetOwner(), "archive in ") || files[0].GetEntries() != 3 {
		t.Fatalf("files listed: %v, want the archive's, with the 3 entries written", files)
	}
	if _, err := svc.CloseResource(ctx, &pxperfv1.CloseResourceRequest{Id: files[0].GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CloseResource(archive file) = %v, want FAILED_PRECONDITION", err)
	}
	workers := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_WORKER)
	if len(workers) < 3 {
		t.Fatalf("workers listed: %v, want the pressure watcher, the sampler and the cleaner", workers)
	}
	_, err := svc.CloseResource(ctx, &pxperfv1.CloseResourceRequest{Id: workers[0].GetId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CloseResource(worker) = %v, want FAILED_PRECONDITION", err)
	}
}

// A publisher stream idle past cleanup.resource_timeout is ended with
// ABORTED saying why; what it published before stays.
func TestIdlePublisherEnded(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Cleanup.ResourceTimeout = durationpb.New(time.Second)
		c.Cleanup.CleanupInterval = durationpb.New(time.Second)
	})
	ctx := testContext(t)
	h.publish(t, ctx, entriesN(2)...)
	ps, err := h.client.Service().PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&pxperfv1.PublishStreamRequest{Entries: entriesN(2)}); err != nil {
		t.Fatal(err)
	}
	var resp pxperfv1.PublishStreamResponse
	err = ps.RecvMsg(&resp) // no half-close: the stream stays open and idle
	st := status.Convert(err)
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "resource_timeout") || !strings.Contains(st.Message(), "2 entries accepted") {
		t.Fatalf("idle publisher ended with %v, want ABORTED naming resource_timeout and the 2 accepted entries", err)
	}
	stats := h.waitStats(t, "the idle close to be counted", func(st *pxperfv1.Stats) bool { return st.GetResources().GetIdleClosed() >= 1 })
	if got := stats.GetStore().GetAccepted(); got != 4 {
		t.Errorf("accepted = %d, want 4: entries of an ended stream stay", got)
	}
}

// Connections are tracked while open and released when the client goes.
func TestConnectionTracking(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	if _, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{}); err != nil {
		t.Fatal(err)
	}
	conns := func() int {
		return len(listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_CONNECTION))
	}
	if n := conns(); n != 1 {
		t.Fatalf("connections = %d with one client, want 1", n)
	}
	for round := range 3 {
		other := h.rawConn(t)
		if _, err := pxperfv1.NewPerformanceServiceClient(other).GetStats(ctx, &pxperfv1.GetStatsRequest{}); err != nil {
			t.Fatal(err)
		}
		list := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_CONNECTION)
		if len(list) != 2 {
			t.Fatalf("round %d: connections = %d with two clients, want 2", round, len(list))
		}
		for _, c := range list {
			if c.GetBytes() == 0 {
				t.Errorf("round %d: connection %s moved 0 bytes", round, c.GetId())
			}
		}
		other.Close()
		for conns() != 1 {
			select {
			case <-ctx.Done():
				t.Fatalf("round %d: the closed connection is still tracked", round)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// Clients leaving while CloseResource ends the same streams: every
// stream's cleanup runs once, and none fails.
func TestCleanupOnceUnderRaces(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	const n = 30
	cancels := openSubscribers(t, ctx, svc, n)
	before := h.waitStats(t, "stats", func(*pxperfv1.Stats) bool { return true }).GetResources()
	subs := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_SUBSCRIBER)
	if len(subs) != n {
		t.Fatalf("%d subscribers listed, want %d", len(subs), n)
	}
	var wg sync.WaitGroup
	for i, r := range subs {
		wg.Go(func() { svc.CloseResource(ctx, &pxperfv1.CloseResourceRequest{Id: r.GetId(), Reason: "race"}) })
		wg.Go(cancels[i])
	}
	wg.Wait()
	// A stream leaves the subscribers before its handler returns and
	// releases its resource, which counts the cleanup: wait for both.
	after := h.waitStats(t, "every subscriber to end and be cleaned up", func(st *pxperfv1.Stats) bool {
		r := st.GetResources()
		return st.GetThrottle().GetSubscribers() == 0 &&
			r.GetCleanupsSucceeded()+r.GetCleanupsFailed() >= before.GetCleanupsSucceeded()+before.GetCleanupsFailed()+n
	}).GetResources()
	if got := after.GetCleanupsSucceeded() - before.GetCleanupsSucceeded(); got != n {
		t.Errorf("cleanups succeeded = %d, want %d (one per stream)", got, n)
	}
	if after.GetCleanupsFailed() != 0 {
		t.Errorf("cleanups failed = %d, want 0", after.GetCleanupsFailed())
	}
}

// Shutdown ends an open PublishStream with UNAVAILABLE saying how many of
// its entries were accepted.
func TestShutdownEndsPublisher(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	ps, err := h.client.Service().PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&pxperfv1.PublishStreamRequest{Entries: entriesN(5)}); err != nil {
		t.Fatal(err)
	}
	h.waitStats(t, "the entries to be stored", func(st *pxperfv1.Stats) bool { return st.GetStore().GetAccepted() == 5 })
	done := make(chan struct{})
	go func() { h.srv.Shutdown(); close(done) }()
	var resp pxperfv1.PublishStreamResponse
	err = ps.RecvMsg(&resp)
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "5 entries accepted") {
		t.Errorf("publisher at shutdown ended with %v, want UNAVAILABLE with 5 entries accepted", err)
	}
	<-done
}

// A message larger than server.max_recv_message_bytes is refused with
// RESOURCE_EXHAUSTED, and the server goes on.
func TestOversizeMessageRefused(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Server.MaxRecvMessageBytes = 64 << 10 })
	ctx := testContext(t)
	big := entry("GET", "http://example.com/big", 200)
	big.ResponseBody = &pxperfv1.Body{Data: make([]byte, 100<<10)}
	_, err := h.client.Publish(ctx, big)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Publish of a 100 KiB message with a 64 KiB limit = %v, want RESOURCE_EXHAUSTED", err)
	}
	h.publish(t, ctx, entriesN(1)...)
}

// ListResources pages with tokens; a token it did not make is refused.
func TestListResourcesPages(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	all := listResources(t, ctx, svc, pxperfv1.ResourceType_RESOURCE_TYPE_WORKER)
	var paged []string
	req := &pxperfv1.ListResourcesRequest{Type: pxperfv1.ResourceType_RESOURCE_TYPE_WORKER, PageSize: 3}
	for range len(all) + 1 {
		resp, err := svc.ListResources(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResources() {
			paged = append(paged, r.GetId())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	var want []string
	for _, r := range all {
		want = append(want, r.GetId())
	}
	if len(want) < 4 || strings.Join(paged, ",") != strings.Join(want, ",") {
		t.Errorf("pages of 3 gave %v, want %v (4 workers or more)", paged, want)
	}
	_, err := svc.ListResources(ctx, &pxperfv1.ListResourcesRequest{PageToken: "bm90IGEgdG9rZW4"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListResources with a foreign token = %v, want INVALID_ARGUMENT", err)
	}
}
