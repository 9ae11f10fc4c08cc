package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A batch goes out as soon as it holds batch_size entries, without waiting
// for batch_timeout.
func TestBatchSentWhenFull(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Throttle.BatchSize = 5
		c.Throttle.BatchTimeout = durationpb.New(10 * time.Second)
	})
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	sub.waitPositioned(t)
	for i := range 5 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	// Well before the 10s timeout: the test context would end first.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if got := len(sub.recvCtx(t, short).GetBatch().GetEntries()); got != 5 {
		t.Errorf("first batch has %d entries, want 5 (full)", got)
	}
}

// A batch that does not fill goes out after batch_timeout, with what
// arrived meanwhile.
func TestBatchSentAfterTimeout(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Throttle.BatchSize = 100
		c.Throttle.MaxBatchSize = 100
		c.Throttle.BatchTimeout = durationpb.New(time.Second)
	})
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	sub.waitPositioned(t)
	for i := range 3 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	if got := len(sub.recv(t).GetBatch().GetEntries()); got != 3 {
		t.Errorf("batch has %d entries, want the 3 published within the timeout", got)
	}
}

// An entry at or above the priority threshold flushes its batch at once.
func TestPriorityFlush(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Throttle.BatchSize = 100
		c.Throttle.MaxBatchSize = 100
		c.Throttle.BatchTimeout = durationpb.New(10 * time.Second)
	})
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	sub.waitPositioned(t)
	h.publish(t, ctx, entry("GET", "http://example.com/ok", 200), entry("GET", "http://example.com/down", 503))
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if got := len(sub.recvCtx(t, short).GetBatch().GetEntries()); got != 2 {
		t.Errorf("priority batch has %d entries, want 2", got)
	}
	resp, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetStats().GetThrottle().GetPriorityFlushes(); got != 1 {
		t.Errorf("priority_flushes = %d, want 1", got)
	}
}

// An entry completed before its batch goes out is sent once, completed.
func TestCoalescedCompletion(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Throttle.BatchSize = 100
		c.Throttle.MaxBatchSize = 100
		c.Throttle.BatchTimeout = durationpb.New(time.Second)
	})
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	sub.waitPositioned(t)
	pending := entry("GET", "http://example.com/x", 0)
	pending.RequestId = "r"
	done := entry("GET", "http://example.com/x", 204)
	done.RequestId = "r"
	h.publish(t, ctx, pending)
	h.publish(t, ctx, done)
	b := sub.recv(t).GetBatch()
	if len(b.GetEntries()) != 1 || len(b.GetUpdates()) != 0 || b.GetEntries()[0].GetStatusCode() != 204 {
		t.Errorf("batch = %v, want the entry once, completed", b)
	}
}

// A subscriber that does not read is ended once a Send stays blocked past
// send_timeout, and counted; the server is not affected.
func TestStuckSubscriberIsEnded(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Throttle.SendTimeout = durationpb.New(300 * time.Millisecond)
		c.Throttle.MaxBatchSize = 500
		c.Throttle.BatchSize = 500
		c.Memory.MaxEntries = 100_000
	})
	ctx := testContext(t)
	// Enough to fill the stream's and the connection's flow-control windows.
	batch := make([]*pxperfv1.Entry, 5000)
	for i := range batch {
		batch[i] = entry("GET", fmt.Sprintf("http://example.com/%06d/%s", i, "padding-padding-padding-padding-padding"), 200)
	}
	h.publish(t, ctx, batch...)
	stuck, err := h.client.Service().Subscribe(ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// Do not read; wait until the server gives up on it. It is counted as
	// stuck before its handler returns and it leaves the subscribers: wait
	// for both.
	h.waitStats(t, "the stuck subscriber to be ended and gone", func(st *pxperfv1.Stats) bool {
		return st.GetThrottle().GetStuckSubscribers() == 1 && st.GetThrottle().GetSubscribers() == 0
	})
	// The client, reading at last, gets what was buffered, then the status.
	for {
		if _, err = stuck.Recv(); err != nil {
			break
		}
	}
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
		t.Errorf("stuck stream ended with %v, want RESOURCE_EXHAUSTED", err)
	}
	// Others are served as before.
	h.publish(t, ctx, entry("GET", "http://example.com/after", 200))
}

// Burst mode doubles the interval while the ingest rate is above the
// threshold (sampled once a second).
func TestBurstModeReactsToIngestRate(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_BURST
		c.Throttle.BurstThreshold = 1
		c.Throttle.BurstCooldown = durationpb.New(time.Hour)
		c.Throttle.MaxUpdatesPerSecond = 100
		c.Throttle.MinUpdateInterval = durationpb.New(10 * time.Millisecond)
	})
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	sub.waitPositioned(t)
	for i := 0; ; i++ {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
		sub.recv(t)
		resp, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		th := resp.GetStats().GetThrottle()
		if th.GetBurstActive() && th.GetBurstEvents() == 1 {
			// The interval chosen after the message just sent.
			h.publish(t, ctx, entry("GET", "http://example.com/next", 200))
			sub.recv(t)
			resp, err = h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetStats().GetThrottle().GetPerSubscriber()[0].GetInterval().AsDuration(); got != 20*time.Millisecond {
				t.Errorf("interval in a burst = %v, want 20ms (doubled)", got)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatal("burst mode never started")
		}
	}
}

// Adaptive mode grows the interval under memory load: a 1 MiB budget puts
// this process's RSS far above the high-water mark.
func TestAdaptiveModeReactsToMemoryLoad(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxMemoryMb = 1
		c.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_ADAPTIVE
		c.Throttle.MaxUpdatesPerSecond = 100
		c.Throttle.MinUpdateInterval = durationpb.New(10 * time.Millisecond)
		c.Throttle.AdaptiveMinUpdatesPerSecond = 2
	})
	ctx := testContext(t)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{})
	sub.waitPositioned(t)
	h.waitStats(t, "the first load sample", func(st *pxperfv1.Stats) bool {
		return st.GetThrottle().GetCpuLoad() > 0
	})
	var interval time.Duration
	for i := range 3 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
		sub.recv(t)
		resp, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetStats().GetThrottle().GetPerSubscriber()[0].GetInterval().AsDuration()
		if got <= interval {
			t.Fatalf("message %d: interval %v did not grow from %v under memory load", i, got, interval)
		}
		interval = got
	}
}
