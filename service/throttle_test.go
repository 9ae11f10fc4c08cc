package service_test

import (
	"fmt"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

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
