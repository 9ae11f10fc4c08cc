package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"github.com/pxperf/pxperf/service"
)

// countCalls is a client interceptor counting the unary calls made.
func countCalls(n *atomic.Int32) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == pxperfv1.PerformanceService_Publish_FullMethodName {
			n.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

func newPublisher(t *testing.T, c *Client, cfg PublisherConfig) *Publisher {
	t.Helper()
	p, err := c.NewPublisher(testContext(t), cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { p.Close(testContext(t)) })
	return p
}

func TestPublisherBatches(t *testing.T) {
	const n, size = 1050, 100
	ts := startServer(t, nil, service.Options{})
	var calls atomic.Int32
	c := ts.client(t, Config{DialOptions: []grpc.DialOption{countCalls(&calls)}}, nil)
	var sizes []int
	var gotIDs []uint64
	p := newPublisher(t, c, PublisherConfig{
		BatchSize:     size,
		FlushInterval: time.Hour, // only full batches, and Close, send
		QueueSize:     2 * n,
		OnBatch: func(es []*pxperfv1.Entry, results []*pxperfv1.PublishResult, err error) {
			if err != nil {
				t.Errorf("batch failed: %v", err)
			}
			sizes = append(sizes, len(es))
			for _, r := range results {
				gotIDs = append(gotIDs, r.GetId())
			}
		},
	})
	for _, e := range entries(n) {
		if err := p.Add(e); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	sum, err := p.Close(testContext(t))
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := int(calls.Load()), (n+size-1)/size; got != want {
		t.Errorf("%d Publish calls for %d entries in batches of %d, want %d", got, n, size, want)
	}
	wantSizes := append(slices.Repeat([]int{size}, n/size), n%size)
	if !slices.Equal(sizes, wantSizes) {
		t.Errorf("batch sizes %v, want %v", sizes, wantSizes)
	}
	if sum.Accepted != n || sum.Rejected+sum.Failed+sum.Unknown != 0 || sum.FirstID != 1 || sum.LastID != n {
		t.Errorf("summary %+v, want %d accepted with ids 1..%d", sum, n, n)
	}
	for i, id := range gotIDs {
		if id != uint64(i+1) {
			t.Fatalf("entry %d got id %d, want %d: ids must follow the order of Add", i, id, i+1)
		}
	}
}

func TestPublisherRejections(t *testing.T) {
	ts := startServer(t, nil, service.Options{})
	c := ts.client(t, Config{}, nil)
	p := newPublisher(t, c, PublisherConfig{})
	good := entries(2)
	bad := &pxperfv1.Entry{Url: "http://example.test/"} // no method, no start time
	for _, e := range []*pxperfv1.Entry{good[0], bad, good[1]} {
		if err := p.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := p.Close(testContext(t))
	if err != nil {
		t.Fatalf("Close: %v (rejections are not errors)", err)
	}
	if sum.Accepted != 2 || sum.Rejected != 1 || len(sum.Rejections) != 1 {
		t.Fatalf("summary %+v, want 2 accepted and 1 rejection", sum)
	}
	r := sum.Rejections[0]
	if r.Entry != bad || r.Rejection.GetMessage() == "" || len(r.Rejection.GetFieldViolations()) == 0 {
		t.Errorf("rejection %+v, want the bad entry with a message and field violations", r)
	}
}

func TestPublisherFlush(t *testing.T) {
	ts := startServer(t, nil, service.Options{})
	c := ts.client(t, Config{}, nil)
	ctx := testContext(t)
	p := newPublisher(t, c, PublisherConfig{FlushInterval: time.Hour})
	for _, e := range entries(3) {
		if err := p.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	list, err := c.ListEntries(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if list.GetTotalSize() != 3 {
		t.Errorf("server holds %d entries after Flush, want 3", list.GetTotalSize())
	}
	if sum := p.Summary(); sum.Accepted != 3 {
		t.Errorf("Summary().Accepted = %d after Flush, want 3", sum.Accepted)
	}
	for _, e := range entries(2) {
		if err := p.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := p.Close(ctx)
	if err != nil || sum.Accepted != 5 {
		t.Errorf("Close = %+v, %v; want 5 accepted", sum, err)
	}
	if err := p.Add(entries(1)[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want %v", err, ErrClosed)
	}
	if err := p.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v, want %v", err, ErrClosed)
	}
	if again, err := p.Close(ctx); !errors.Is(err, ErrClosed) || again.Accepted != 5 {
		t.Errorf("second Close = %+v, %v; want the same summary and %v", again, err, ErrClosed)
	}
}

func TestPublisherFlushInterval(t *testing.T) {
	ts := startServer(t, nil, service.Options{})
	c := ts.client(t, Config{}, nil)
	sent := make(chan int, 1)
	p := newPublisher(t, c, PublisherConfig{
		FlushInterval: 10 * time.Millisecond,
		OnBatch:       func(es []*pxperfv1.Entry, _ []*pxperfv1.PublishResult, _ error) { sent <- len(es) },
	})
	if err := p.Add(entries(1)[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-sent:
		if n != 1 {
			t.Errorf("batch of %d, want 1", n)
		}
	case <-testContext(t).Done():
		t.Fatal("a lone entry was not sent after the flush interval")
	}
}

func rateLimited(delay time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, "producer rate limit reached").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestPublisherFailures(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error // what the server answers each call with; nil accepts
		wantCalls int32
		want      PublishSummary
		wantCode  codes.Code // of Close's error
	}{
		{
			name:      "connection lost: fate unknown",
			errs:      []error{status.Error(codes.Unavailable, "connection reset")},
			wantCalls: 1,
			want:      PublishSummary{Unknown: 2},
			wantCode:  codes.Unavailable,
		},
		{
			name:      "refused as a whole: failed",
			errs:      []error{status.Error(codes.InvalidArgument, "too many entries")},
			wantCalls: 1,
			want:      PublishSummary{Failed: 2},
			wantCode:  codes.InvalidArgument,
		},
		{
			name:      "no token: failed",
			errs:      []error{status.Error(codes.Unauthenticated, "needs a bearer token")},
			wantCalls: 1,
			want:      PublishSummary{Failed: 2},
			wantCode:  codes.Unauthenticated,
		},
		{
			name:      "rate limited: sent again after the delay",
			errs:      []error{rateLimited(time.Millisecond), rateLimited(time.Millisecond), nil},
			wantCalls: 3,
			want:      PublishSummary{Accepted: 2, FirstID: 1, LastID: 2},
			wantCode:  codes.OK,
		},
		{
			name:      "over the burst, no delay: failed",
			errs:      []error{status.Error(codes.ResourceExhausted, "batch larger than the rate limit allows")},
			wantCalls: 1,
			want:      PublishSummary{Failed: 2},
			wantCode:  codes.ResourceExhausted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newTestClient(t, &fakeServer{
				publish: func(_ context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
					i := calls.Add(1) - 1
					if err := tt.errs[min(int(i), len(tt.errs)-1)]; err != nil {
						return nil, err
					}
					resp := &pxperfv1.PublishResponse{}
					for j := range req.GetEntries() {
						resp.Results = append(resp.Results, &pxperfv1.PublishResult{Id: uint64(j + 1)})
					}
					return resp, nil
				},
			})
			p := newPublisher(t, c, PublisherConfig{BatchSize: 2})
			for _, e := range entries(2) {
				if err := p.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := p.Close(testContext(t))
			if sum.Accepted != tt.want.Accepted || sum.Failed != tt.want.Failed || sum.Unknown != tt.want.Unknown ||
				sum.FirstID != tt.want.FirstID || sum.LastID != tt.want.LastID {
				t.Errorf("summary %+v, want %+v", sum, tt.want)
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("Close error %v: code %v, want %v", err, got, tt.wantCode)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
		})
	}
}

// blockingServer answers Publish only when release is closed, or the call
// ends; entered gets one value per call.
func blockingServer(entered chan<- struct{}, release <-chan struct{}) *fakeServer {
	return &fakeServer{
		publish: func(ctx context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			resp := &pxperfv1.PublishResponse{}
			for range req.GetEntries() {
				resp.Results = append(resp.Results, &pxperfv1.PublishResult{Id: 1})
			}
			return resp, nil
		},
	}
}

func TestPublisherQueueFull(t *testing.T) {
	entered, release := make(chan struct{}, 10), make(chan struct{})
	c := newTestClient(t, blockingServer(entered, release))
	p := newPublisher(t, c, PublisherConfig{BatchSize: 1, QueueSize: 2})
	es := entries(4)
	if err := p.Add(es[0]); err != nil {
		t.Fatal(err)
	}
	<-entered // es[0] is in flight: the queue is empty again
	for _, e := range es[1:3] {
		if err := p.Add(e); err != nil {
			t.Fatalf("Add with room: %v", err)
		}
	}
	if err := p.Add(es[3]); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Add to a full queue: %v, want %v", err, ErrQueueFull)
	}
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if err := p.AddWait(ctx, es[3]); err != context.Canceled {
		t.Errorf("AddWait with an ended context: %v, want %v", err, context.Canceled)
	}
	waited := make(chan error, 1)
	waitCtx := testContext(t)
	go func() { waited <- p.AddWait(waitCtx, es[3]) }()
	close(release)
	if err := <-waited; err != nil {
		t.Errorf("AddWait once there is room: %v", err)
	}
	sum, err := p.Close(testContext(t))
	if err != nil || sum.Accepted != 4 {
		t.Errorf("Close = %+v, %v; want 4 accepted", sum, err)
	}
}

func TestPublisherCloseContextEnds(t *testing.T) {
	entered := make(chan struct{}, 10)
	c := newTestClient(t, blockingServer(entered, nil)) // never answers
	p := newPublisher(t, c, PublisherConfig{BatchSize: 1})
	for _, e := range entries(3) {
		if err := p.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	<-entered
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	sum, err := p.Close(ctx)
	if err != context.Canceled {
		t.Errorf("Close error %v, want %v", err, context.Canceled)
	}
	if sum.Unknown != 1 || sum.Failed != 2 || sum.Accepted != 0 {
		t.Errorf("summary %+v, want 1 unknown (in flight) and 2 failed (never sent)", sum)
	}
}

func TestPublisherContextEnds(t *testing.T) {
	entered := make(chan struct{}, 10)
	c := newTestClient(t, blockingServer(entered, nil))
	ctx, cancel := context.WithCancel(testContext(t))
	p, err := c.NewPublisher(ctx, PublisherConfig{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(entries(1)[0]); err != nil {
		t.Fatal(err)
	}
	<-entered
	cancel()
	flushed := p.Flush(testContext(t)) // returns once the goroutine stops
	if err := p.Add(entries(1)[0]); !errors.Is(err, context.Canceled) {
		t.Errorf("Add after the context ended: %v, want %v", err, context.Canceled)
	}
	sum, err := p.Close(testContext(t))
	if status.Code(err) != codes.Canceled || status.Code(flushed) != codes.Canceled {
		t.Errorf("Flush = %v, Close = %v; want both to carry the cancelled call", flushed, err)
	}
	if sum.Unknown != 1 {
		t.Errorf("summary %+v, want the cancelled call's entry unknown", sum)
	}
}

func TestPublisherConfigRefused(t *testing.T) {
	tests := []struct {
		cfg  PublisherConfig
		want string
	}{
		{PublisherConfig{BatchSize: -1}, "BatchSize"},
		{PublisherConfig{BatchSize: MaxBatchSize + 1}, "BatchSize"},
		{PublisherConfig{FlushInterval: -time.Second}, "FlushInterval"},
		{PublisherConfig{BatchSize: 10, QueueSize: 5}, "QueueSize"},
	}
	c := newTestClient(t, &fakeServer{})
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p, err := c.NewPublisher(testContext(t), tt.cfg)
			if err == nil {
				p.Close(testContext(t))
				t.Fatalf("NewPublisher(%+v) = nil error, want one naming %s", tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name %s", err, tt.want)
			}
		})
	}
}

func TestPublisherFlushReportsEachFailureOnce(t *testing.T) {
	var calls atomic.Int32
	c := newTestClient(t, &fakeServer{
		publish: func(_ context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
			if calls.Add(1) == 1 {
				return nil, status.Error(codes.Unavailable, "connection reset")
			}
			resp := &pxperfv1.PublishResponse{}
			for range req.GetEntries() {
				resp.Results = append(resp.Results, &pxperfv1.PublishResult{Id: 1})
			}
			return resp, nil
		},
	})
	ctx := testContext(t)
	p := newPublisher(t, c, PublisherConfig{FlushInterval: time.Hour})
	for _, want := range []codes.Code{codes.Unavailable, codes.OK} {
		for _, e := range entries(2) {
			if err := p.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); status.Code(err) != want {
			t.Errorf("Flush = %v, want code %v", err, want)
		}
	}
	if sum := p.Summary(); sum.Unknown != 2 || sum.Accepted != 2 {
		t.Errorf("summary %+v, want 2 unknown and 2 accepted", sum)
	}
}

// With RetryUnavailable, on a server in cluster mode, batches that fail
// while NATS is down are sent again once it is back: every entry is
// accepted, and stored once.
func TestPublisherRetryUnavailable(t *testing.T) {
	nc := natstest.Start(t, 1)
	ts := startServer(t, func(c *pxperfv1.Config) {
		c.Cluster.Urls = nc.URLs()
		c.Cluster.PublishTimeout = durationpb.New(300 * time.Millisecond)
	}, service.Options{})
	c := ts.client(t, Config{}, nil)
	var failed atomic.Int32
	p := newPublisher(t, c, PublisherConfig{
		BatchSize:        10,
		FlushInterval:    10 * time.Millisecond,
		RetryUnavailable: true,
	})
	add := func(es []*pxperfv1.Entry) {
		t.Helper()
		for _, e := range es {
			if err := p.Add(e); err != nil {
				t.Fatalf("Add: %v", err)
			}
		}
	}
	es := entries(60)
	for i, e := range es {
		e.Url = fmt.Sprintf("http://example.com/%d", i)
	}
	add(es[:30])
	if err := p.Flush(testContext(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	nc.Stop(0)
	add(es[30:])
	// The batches fail while NATS is down; the publisher keeps them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Service().GetStats(testContext(t), &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if n := st.GetStats().GetCluster().GetPublishFailures(); n > 0 {
			failed.Store(int32(n))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no publish failed while NATS was down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	nc.Restart(0)
	sum, err := p.Close(testContext(t))
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if sum.Accepted != 60 || sum.Failed+sum.Unknown != 0 {
		t.Errorf("summary %+v after %d failed publishes; want all 60 accepted", sum, failed.Load())
	}
	res, err := c.ListEntries(testContext(t), &pxperfv1.ListEntriesRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range res.GetEntries() {
		seen[e.GetUrl()]++
	}
	for _, e := range es {
		if seen[e.GetUrl()] != 1 {
			t.Errorf("%s stored %d times, want once", e.GetUrl(), seen[e.GetUrl()])
		}
	}
}
