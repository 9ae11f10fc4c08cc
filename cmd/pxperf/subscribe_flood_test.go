package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// floodAttempts is how many Subscribe calls TestSubscribeFlood makes.
const floodAttempts = 10_000

// TestSubscribeFlood makes 10 000 Subscribe attempts on the real binary
// over loopback, 64 at a time over 8 connections, while 100 long-lived
// subscribers hold every slot cleanup.max_resources allows: each attempt is
// either refused at once with RESOURCE_EXHAUSTED or (once a slot frees)
// accepted and let go. The server must stay within its limits throughout,
// answer health checks, and afterwards be back where it started:
// no subscriber, no leaked goroutine, every cleanup succeeded.
//
//	go test -run TestSubscribeFlood -v ./cmd/pxperf
func TestSubscribeFlood(t *testing.T) {
	s := startServer(t, "--max-resources", "100")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clients := make([]*client.Client, 8)
	for i := range clients {
		c, err := client.New(client.Config{Address: s.Addr})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	svc := clients[0].Service()
	if _, err := clients[0].Publish(ctx, &pxperfv1.Entry{Method: "GET", Url: "http://flood.example.com/", StatusCode: 200, StartTime: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	stats := func() *pxperfv1.Stats {
		t.Helper()
		r, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStats()
	}
	// Every connection up before the baseline: each has goroutines of its
	// own on the server.
	hc := healthpb.NewHealthClient(healthConn(t, s.Addr))
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if _, err := c.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	before := stats()

	// subscribe opens a stream and waits for its first message (the tail
	// snapshot), so that the server has counted it; or returns the refusal.
	subscribe := func(ctx context.Context, c *client.Client) (func(), error) {
		sctx, stop := context.WithCancel(ctx)
		st, err := c.Service().Subscribe(sctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 1}})
		if err == nil {
			_, err = st.Recv()
		}
		if err != nil {
			stop()
			return nil, err
		}
		return stop, nil
	}

	// 100 holders take every slot; 10 of them let go during the flood, so
	// that some attempts are accepted too.
	holders := make([]func(), 0, 100)
	for i := range 100 {
		stop, err := subscribe(ctx, clients[i%len(clients)])
		if err != nil {
			t.Fatalf("holder %d: %v", i, err)
		}
		holders = append(holders, stop)
	}

	var accepted, refused, other atomic.Int64
	var maxOpen atomic.Uint64
	var firstOther atomic.Value
	attempts := make(chan int)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			c := clients[w%len(clients)]
			for range attempts {
				stop, err := subscribe(ctx, c)
				switch {
				case err == nil:
					accepted.Add(1)
					stop()
				case status.Code(err) == codes.ResourceExhausted:
					refused.Add(1)
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	// Watch the limit while the flood runs.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			r, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
			if err != nil {
				return
			}
			if n := r.GetStats().GetThrottle().GetSubscribers(); n > maxOpen.Load() {
				maxOpen.Store(n)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			if accepted.Load()+refused.Load()+other.Load() >= floodAttempts {
				return
			}
		}
	}()
	for i := range floodAttempts {
		if i == floodAttempts/2 {
			for _, stop := range holders[:10] {
				stop()
			}
			holders = holders[10:]
		}
		attempts <- i
	}
	close(attempts)
	wg.Wait()
	elapsed := time.Since(start)
	<-watchDone

	health, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after the flood = %v, %v; want SERVING", health.GetStatus(), err)
	}
	if other.Load() != 0 {
		t.Errorf("%d attempts failed otherwise than RESOURCE_EXHAUSTED; first: %v", other.Load(), firstOther.Load())
	}
	if accepted.Load() == 0 || refused.Load() == 0 {
		t.Errorf("accepted %d, refused %d; want some of each", accepted.Load(), refused.Load())
	}
	if maxOpen.Load() > 100 {
		t.Errorf("%d subscribers open at once, over the limit of 100", maxOpen.Load())
	}
	for _, stop := range holders {
		stop()
	}
	var after *pxperfv1.Stats
	for {
		after = stats()
		if after.GetThrottle().GetSubscribers() == 0 && after.GetProcess().GetGoroutines() <= before.GetProcess().GetGoroutines()+5 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the server did not settle: %d subscribers, %d goroutines (%d before)",
				after.GetThrottle().GetSubscribers(), after.GetProcess().GetGoroutines(), before.GetProcess().GetGoroutines())
		case <-time.After(50 * time.Millisecond):
		}
	}
	rs := after.GetResources()
	if rs.GetCleanupsFailed() != 0 || rs.GetRefused() != uint64(refused.Load()) {
		t.Errorf("resources %v: want no failed cleanup and %d refusals counted", rs, refused.Load())
	}
	t.Logf("%d attempts in %v (%.0f/s): %d accepted, %d refused with RESOURCE_EXHAUSTED; at most %d subscribers open (limit 100); "+
		"RSS %.1f → %.1f MiB, goroutines %d → %d, cleanups %d succeeded, %d failed",
		floodAttempts, elapsed.Round(time.Millisecond), float64(floodAttempts)/elapsed.Seconds(), accepted.Load(), refused.Load(), maxOpen.Load(),
		float64(before.GetProcess().GetRssBytes())/(1<<20), float64(after.GetProcess().GetRssBytes())/(1<<20),
		before.GetProcess().GetGoroutines(), after.GetProcess().GetGoroutines(), rs.GetCleanupsSucceeded(), rs.GetCleanupsFailed())
}

// healthConn is a plain connection to addr, closed when the test ends.
func healthConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
