package service_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The throttle's timing rules, proved on a fake clock: each test runs in a
// synctest bubble, where time stands still while any goroutine of the test
// (server, gRPC transport over bufconn, client) can run, and jumps to the
// next timer once all are blocked. So the times measured below are exact,
// whatever the machine's load, and a 30 s timeout takes no real time.

// clockTest runs f in a synctest bubble.
func clockTest(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}

// clockContext is the context of a clock test's calls: an hour of fake
// time, which passes in moments of real time when the test waits for what
// never comes, so that such a test fails at once rather than at go test's
// timeout.
func clockContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	t.Cleanup(cancel)
	return ctx
}

// timedMessage is a message and the fake time it arrived.
type timedMessage struct {
	at time.Duration // since the test's origin
	m  *pxperfv1.SubscribeResponse
}

// recvTimed reads messages until one satisfies keep, and returns it with
// its arrival time since origin.
func (s *stream) recvTimed(t *testing.T, origin time.Time, keep func(*pxperfv1.SubscribeResponse) bool) timedMessage {
	t.Helper()
	for {
		m, err, ok := s.next()
		if !ok || err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		if keep(m) {
			return timedMessage{at: time.Since(origin), m: m}
		}
	}
}

func isBatch(m *pxperfv1.SubscribeResponse) bool { return m.GetBatch() != nil }

func publishN(t *testing.T, h *harness, n int, status int32) {
	t.Helper()
	es := make([]*pxperfv1.Entry, n)
	for i := range es {
		es[i] = entry("GET", fmt.Sprintf("http://example.com/%d", i), status)
	}
	h.publish(t, clockContext(t), es...)
}

// A batch that fills goes out at once; one that does not, exactly
// batch_timeout after its first entry arrived; a priority entry flushes its
// batch at once.
func TestClockBatching(t *testing.T) {
	for _, tt := range []struct {
		name        string
		entries     int
		status      int32
		wantEntries int
		wantAfter   time.Duration
	}{
		{"full", 5, 200, 5, 0},
		{"timeout", 3, 200, 3, 10 * time.Second},
		{"priority", 1, 503, 1, 0},
		{"not a priority", 1, 404, 1, 10 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clockTest(t, func(t *testing.T) {
				h := newHarness(t, func(c *pxperfv1.Config) {
					c.Throttle.BatchSize = 5
					c.Throttle.BatchTimeout = durationpb.New(10 * time.Second)
					c.Throttle.HeartbeatInterval = durationpb.New(time.Minute)
				})
				sub := h.subscribe(t, clockContext(t), &pxperfv1.SubscribeRequest{})
				sub.waitPositioned(t)
				// The heartbeat just sent (after a minute) counts against
				// the rate cap: let its interval pass.
				time.Sleep(time.Second)
				origin := time.Now()
				publishN(t, h, tt.entries, tt.status)
				got := sub.recvTimed(t, origin, isBatch)
				if n := len(got.m.GetBatch().GetEntries()); n != tt.wantEntries || got.at != tt.wantAfter {
					t.Errorf("batch of %d entries after %v, want %d after %v", n, got.at, tt.wantEntries, tt.wantAfter)
				}
				wantFlushes := uint64(0)
				if tt.status >= 500 {
					wantFlushes = 1
				}
				if got := h.stats(t, clockContext(t)).GetThrottle().GetPriorityFlushes(); got != wantFlushes {
					t.Errorf("priority_flushes = %d, want %d", got, wantFlushes)
				}
			})
		})
	}
}

// However many entries wait, a subscriber gets at most
// max_updates_per_second messages a second, spaced evenly; one that asks
// for fewer gets fewer.
func TestClockRateCap(t *testing.T) {
	for _, tt := range []struct {
		name  string
		asked uint32 // SubscribeRequest.max_updates_per_second; 0: the server's
		want  time.Duration
	}{
		{"server cap", 0, 100 * time.Millisecond},
		{"asked for fewer", 4, 250 * time.Millisecond},
		{"asked for more", 1000, 100 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clockTest(t, func(t *testing.T) {
				h := newHarness(t, func(c *pxperfv1.Config) {
					c.Throttle.MaxUpdatesPerSecond = 10
					c.Throttle.MinUpdateInterval = durationpb.New(time.Millisecond)
					c.Throttle.BatchSize = 1
					c.Throttle.MaxBatchSize = 1
				})
				sub := h.subscribe(t, clockContext(t), &pxperfv1.SubscribeRequest{MaxUpdatesPerSecond: tt.asked})
				sub.waitPositioned(t)
				origin := time.Now()
				const n = 30
				publishN(t, h, n, 200)
				var last time.Duration
				for i := range n {
					got := sub.recvTimed(t, origin, isBatch)
					if i > 0 && got.at-last < tt.want {
						t.Fatalf("message %d came %v after the one before, want at least %v", i, got.at-last, tt.want)
					}
					last = got.at
				}
				// Evenly spaced: the cap is reached, not undershot.
				if want := (n - 1) * tt.want; last > want+tt.want {
					t.Errorf("%d messages took %v, want about %v", n, last, want)
				}
			})
		})
	}
}

// A quiet stream gets a progress message every heartbeat_interval,
// carrying the newest id, so that it stays resumable.
func TestClockHeartbeats(t *testing.T) {
	clockTest(t, func(t *testing.T) {
		h := newHarness(t, func(c *pxperfv1.Config) {
			c.Throttle.HeartbeatInterval = durationpb.New(5 * time.Second)
		})
		ids := h.publish(t, clockContext(t), entry("GET", "http://example.com/", 200))
		sub := h.subscribe(t, clockContext(t), &pxperfv1.SubscribeRequest{})
		origin := time.Now()
		for i := range 4 {
			got := sub.recvTimed(t, origin, func(*pxperfv1.SubscribeResponse) bool { return true })
			p := got.m.GetProgress()
			if p == nil {
				t.Fatalf("message %d is %v, want a heartbeat", i, got.m)
			}
			if want := time.Duration(i+1) * 5 * time.Second; got.at != want || p.GetNewestId() != ids[0] || p.GetNextId() != ids[0]+1 {
				t.Errorf("heartbeat %d at %v: %v; want at %v with newest_id %d, next_id %d", i, got.at, p, want, ids[0], ids[0]+1)
			}
		}
	})
}

// A subscriber whose Send stays blocked for send_timeout is ended with
// RESOURCE_EXHAUSTED and counted, and not before, whether memory or the
// archive feeds it. Its first messages go out a floor interval (33 ms)
// apart until the flow-control windows are full: the Send that blocks
// starts within the first half second.
func TestClockStuckSubscriberCut(t *testing.T) {
	for _, tt := range []struct {
		name       string
		maxEntries uint32
	}{
		{"from memory", 100_000},
		// The store keeps the last 100: the subscriber, from id 1, is fed
		// from the archive.
		{"from the archive", 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clockTest(t, func(t *testing.T) {
				h := newHarness(t, func(c *pxperfv1.Config) {
					c.Throttle.SendTimeout = durationpb.New(30 * time.Second)
					c.Throttle.MaxBatchSize = 500
					c.Throttle.BatchSize = 500
					c.Memory.MaxEntries = tt.maxEntries
					c.Logs.FlushInterval = durationpb.New(10 * time.Millisecond)
				})
				ctx := clockContext(t)
				// Enough to fill the stream's and the connection's
				// flow-control windows, so that the server's Send blocks.
				batch := make([]*pxperfv1.Entry, 5000)
				for i := range batch {
					batch[i] = entry("GET", fmt.Sprintf("http://example.com/%06d/%s", i, "padding-padding-padding-padding-padding"), 200)
				}
				h.publish(t, ctx, batch...)
				h.archived(t, uint64(len(batch)))
				stuck, err := h.client.Service().Subscribe(ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}})
				if err != nil {
					t.Fatal(err)
				}
				stats := func() *pxperfv1.ThrottleStats { return h.stats(t, ctx).GetThrottle() }
				subscribed := time.Now()
				time.Sleep(30*time.Second - time.Millisecond)
				synctest.Wait()
				if st := stats(); st.GetStuckSubscribers() != 0 || st.GetSubscribers() != 1 {
					t.Fatalf("%v after subscribing: %d stuck, %d subscribers; want 0 and 1", time.Since(subscribed), st.GetStuckSubscribers(), st.GetSubscribers())
				}
				time.Sleep(500 * time.Millisecond)
				synctest.Wait()
				if st := stats(); st.GetStuckSubscribers() != 1 || st.GetSubscribers() != 0 {
					t.Fatalf("%v after subscribing: %d stuck, %d subscribers; want 1 and 0", time.Since(subscribed), st.GetStuckSubscribers(), st.GetSubscribers())
				}
				// The client, reading at last, gets what was buffered, then
				// the status, which says to resume right after the last
				// entry it got: the message that was blocked in Send is
				// lost with the stream, and must not be skipped.
				var last uint64
				for {
					var m *pxperfv1.SubscribeResponse
					if m, err = stuck.Recv(); err != nil {
						break
					}
					if es := m.GetBatch().GetEntries(); len(es) > 0 {
						last = es[len(es)-1].GetId()
					}
				}
				st := status.Convert(err)
				if st.Code() != codes.ResourceExhausted {
					t.Errorf("stuck stream ended with %v, want RESOURCE_EXHAUSTED", err)
				}
				if want := fmt.Sprintf("resume with start_id %d,", last+1); last == 0 || !strings.Contains(st.Message(), want) {
					t.Errorf("stuck stream ended with %q after entries up to id %d; want it to say %q", st.Message(), last, want)
				}
				if id, ok := client.ResumeID(err); !ok || id != last+1 {
					t.Errorf("ResumeID of the stuck stream's status = %d, %v; want %d", id, ok, last+1)
				}
			})
		})
	}
}

// Burst mode doubles the interval while the ingest rate, sampled each
// second, is above burst_threshold, and for burst_cooldown after it falls.
func TestClockBurstCooldown(t *testing.T) {
	clockTest(t, func(t *testing.T) {
		h := newHarness(t, func(c *pxperfv1.Config) {
			c.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_BURST
			c.Throttle.BurstThreshold = 100
			c.Throttle.BurstCooldown = durationpb.New(10 * time.Second)
			c.Throttle.HeartbeatInterval = durationpb.New(30 * time.Minute)
		})
		ctx := clockContext(t)
		throttle := func() *pxperfv1.ThrottleStats { return h.stats(t, ctx).GetThrottle() }
		// The sampler ticks at whole seconds from the server's start.
		synctest.Wait()
		start := time.Now()
		publishN(t, h, 50, 200)
		time.Sleep(time.Second)
		synctest.Wait()
		if st := throttle(); st.GetBurstActive() {
			t.Fatalf("burst active at 50 entries/s, threshold 100")
		}
		publishN(t, h, 500, 200)
		time.Sleep(time.Second)
		synctest.Wait()
		st := throttle()
		if !st.GetBurstActive() || st.GetBurstEvents() != 1 {
			t.Fatalf("at 500 entries/s (threshold 100): burst_active %v, burst_events %d; want true, 1", st.GetBurstActive(), st.GetBurstEvents())
		}
		// Quiet from now on: the burst lasts the cooldown after the sample
		// that saw it, then ends.
		burstSeen := time.Since(start)
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if !throttle().GetBurstActive() {
			t.Errorf("burst ended %v after it was seen, before the 10s cooldown", time.Since(start)-burstSeen)
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if throttle().GetBurstActive() {
			t.Errorf("burst still active %v after it was seen, past the 10s cooldown and a sample", time.Since(start)-burstSeen)
		}
	})
}

// A batch goes out as soon as its entries reach the byte bound of a
// message, however few they are against batch_size, with a filter or
// without: entries of 7 KiB arriving one at a time, against a 64 KiB
// message, do not wait for batch_timeout.
func TestClockByteFullBatch(t *testing.T) {
	for _, tt := range subscriberPaths {
		t.Run(tt.name, func(t *testing.T) {
			clockTest(t, func(t *testing.T) {
				const maxSend = 64 << 10
				h := newHarness(t, func(c *pxperfv1.Config) {
					c.Server.MaxSendMessageBytes = maxSend
					c.Throttle.BatchSize = 1000
					c.Throttle.MaxBatchSize = 1000
					c.Throttle.BatchTimeout = durationpb.New(10 * time.Second)
					c.Throttle.HeartbeatInterval = durationpb.New(time.Minute)
				})
				sub := h.subscribe(t, clockContext(t), &pxperfv1.SubscribeRequest{Filter: tt.filter, MaxBatchSize: 1000})
				sub.waitPositioned(t)
				time.Sleep(time.Second) // past the heartbeat's interval
				origin := time.Now()
				for i := range 20 {
					e := entry("GET", fmt.Sprintf("http://example.com/%d/%s", i, strings.Repeat("p", 7<<10)), 200)
					h.publish(t, clockContext(t), e)
					// The subscriber has read what there is and waits for
					// more: each entry arrives on its own.
					synctest.Wait()
				}
				got := sub.recvTimed(t, origin, isBatch)
				n := len(got.m.GetBatch().GetEntries())
				if got.at != 0 || n < 2 || n >= 20 || proto.Size(got.m) > maxSend {
					t.Errorf("first batch: %d entries, %d bytes, after %v; want a full message (under %d bytes) at once",
						n, proto.Size(got.m), got.at, maxSend)
				}
			})
		})
	}
}
