package service_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
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
		th := h.stats(t, ctx).GetThrottle()
		if th.GetBurstActive() && th.GetBurstEvents() == 1 {
			// The interval chosen after the message just sent.
			h.publish(t, ctx, entry("GET", "http://example.com/next", 200))
			sub.recv(t)
			if got := h.stats(t, ctx).GetThrottle().GetPerSubscriber()[0].GetInterval().AsDuration(); got != 20*time.Millisecond {
				t.Errorf("interval in a burst = %v, want 20ms (doubled)", got)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatal("burst mode never started")
		}
	}
}

// Adaptive mode grows the interval under memory load: a 1 MiB overhead
// puts this process's live memory besides the store far above the
// high-water mark.
func TestAdaptiveModeReactsToMemoryLoad(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.OverheadMb = 1
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
		got := h.stats(t, ctx).GetThrottle().GetPerSubscriber()[0].GetInterval().AsDuration()
		if got <= interval {
			t.Fatalf("message %d: interval %v did not grow from %v under memory load", i, got, interval)
		}
		interval = got
	}
}

// A batch stops growing before its message would be too large to send:
// entries that together pass server.max_send_message_bytes (with their
// bodies or long URLs) arrive in several messages, each within the
// limit, none lost, whether they come from memory or, evicted, from the
// archive.
func TestBatchBytesBounded(t *testing.T) {
	const maxSend = 64 << 10
	for _, tt := range []struct {
		name    string
		bodies  bool
		archive bool // evicted from memory: sent from the archive
	}{
		{"long urls", false, false},
		{"bodies", true, false},
		{"long urls from the archive", false, true},
		{"bodies from the archive", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *pxperfv1.Config) {
				c.Server.MaxSendMessageBytes = maxSend
				c.Throttle.BatchSize = 1000
				c.Throttle.MaxBatchSize = 1000
				c.Throttle.BatchTimeout = durationpb.New(100 * time.Millisecond)
				c.Memory.MaxBodySize = 8 << 10
				if tt.archive {
					c.Memory.MaxEntries = 1
					c.Logs.FlushInterval = durationpb.New(10 * time.Millisecond)
				}
			})
			ctx := testContext(t)
			const n = 40 // about 320 KiB: five times the limit
			es := make([]*pxperfv1.Entry, n)
			for i := range es {
				if tt.bodies {
					es[i] = entry("GET", fmt.Sprintf("http://example.com/%d", i), 200)
					es[i].ResponseBody = &pxperfv1.Body{Data: []byte(strings.Repeat("b", 8<<10))}
				} else {
					es[i] = entry("GET", fmt.Sprintf("http://example.com/%d/%s", i, strings.Repeat("p", 7<<10)), 200)
				}
			}
			h.publish(t, ctx, es...)
			if tt.archive {
				h.archived(t, n)
			}
			sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{
				Start:         &pxperfv1.SubscribeRequest_StartId{StartId: 1},
				MaxBatchSize:  1000,
				IncludeBodies: tt.bodies,
			})
			next, msgs := uint64(1), 0
			for next <= n {
				m := sub.recv(t)
				if size := proto.Size(m); size > maxSend {
					t.Fatalf("message %d is %d bytes, over max_send_message_bytes %d", msgs, size, maxSend)
				}
				msgs++
				for _, e := range m.GetBatch().GetEntries() {
					if e.GetId() != next {
						t.Fatalf("got id %d, want %d", e.GetId(), next)
					}
					if tt.bodies && len(e.GetResponseBody().GetData()) != 8<<10 {
						t.Fatalf("entry %d has a body of %d bytes, want %d", next, len(e.GetResponseBody().GetData()), 8<<10)
					}
					next++
				}
			}
			// About 7 entries fit a message: neither one message nor one per entry.
			if msgs < 5 || msgs > 10 {
				t.Errorf("%d entries came in %d messages, want 5 to 10 of at most %d bytes", n, msgs, maxSend)
			}
		})
	}
}
