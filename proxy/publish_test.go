package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// get fetches u through the harness's proxy and fails the test unless it
// gets 200.
func (h *harness) get(t testing.TB, u string) {
	t.Helper()
	if code := h.status(t, u); code != http.StatusOK {
		t.Fatalf("GET %s: %d", u, code)
	}
}

// When pxperf does not keep up, traffic flows on: entries are dropped,
// counted and alerted on, and the alert clears once the queue drains.
func TestDropsWhenPublisherIsBlocked(t *testing.T) {
	const requests = 20
	alerts := make(chan *pxperfv1.Alert, 10)
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, func(c *Config) {
		c.QueueSize = 4
		c.OnAlert = func(a *pxperfv1.Alert) { alerts <- a }
	})
	release := h.pub.blockCalls()
	defer release()
	for i := range requests {
		h.get(t, fmt.Sprintf("%s/%d", origin.URL, i)) // each is served while nothing is published
	}
	s := h.p.Stats()
	if s.Dropped == 0 || !s.Dropping || s.Published != 0 {
		t.Fatalf("with the publisher blocked: %+v; want drops, the alert on, nothing published", s)
	}
	select {
	case a := <-alerts:
		if a.GetName() != AlertEntriesDropped || a.GetState() != pxperfv1.AlertState_ALERT_STATE_FIRING || a.GetStartTime() == nil {
			t.Errorf("alert %v; want %s FIRING", a, AlertEntriesDropped)
		}
	default:
		t.Fatal("no alert while dropping")
	}

	release()
	waitFor(t, h.ctx, "every entry published or dropped", func() bool {
		s := h.p.Stats()
		return s.Published+s.Dropped == 2*requests
	})
	select {
	case a := <-alerts:
		if a.GetState() != pxperfv1.AlertState_ALERT_STATE_CLEARED || a.GetClearTime() == nil {
			t.Errorf("alert %v; want CLEARED", a)
		}
	case <-h.ctx.Done():
		t.Fatal("the alert did not clear")
	}
	if s := h.p.Stats(); s.Dropping || s.Published == 0 {
		t.Errorf("after draining: %+v; want the alert off, entries published", s)
	}
	// A final entry stands on its own, whether or not its pending one was
	// published: the store keeps it as a new entry then.
	for _, e := range h.pub.all() {
		if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING &&
			(e.GetMethod() == "" || e.GetStartTime() == nil || len(e.GetRequestHeaders()) == 0 || e.GetStatusCode() != 200) {
			t.Errorf("final entry not whole: %v", e)
		}
	}
}

// The queue is published in batches, not one call per entry.
func TestPublishBatches(t *testing.T) {
	const requests = 40
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, nil)
	release := h.pub.blockCalls()
	defer release()
	h.get(t, origin.URL+"/first")
	select { // the loop is now stuck in a call: the rest queue up
	case <-h.pub.entered:
	case <-h.ctx.Done():
		t.Fatal("no Publish call")
	}
	for i := range requests {
		h.get(t, fmt.Sprintf("%s/%d", origin.URL, i))
	}
	release()
	waitFor(t, h.ctx, "all published", func() bool { return h.p.Stats().Published == 2*requests+2 })
	h.pub.mu.Lock()
	batches := h.pub.batches
	h.pub.mu.Unlock()
	if len(batches) > 3 {
		t.Errorf("%d entries took %d Publish calls (%v); want them batched", 2*requests+2, len(batches), batches)
	}
	for _, n := range batches {
		if n > MaxBatch {
			t.Errorf("a batch of %d entries; want at most %d", n, MaxBatch)
		}
	}
}

// A failing Publisher costs entries, not traffic.
func TestPublishFailure(t *testing.T) {
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, nil)
	h.pub.mu.Lock()
	h.pub.err = errors.New("pxperf is down")
	h.pub.mu.Unlock()
	h.get(t, origin.URL+"/")
	waitFor(t, h.ctx, "both entries dropped", func() bool { return h.p.Stats().Dropped == 2 })
	if s := h.p.Stats(); s.PublishErrors == 0 || s.Published != 0 {
		t.Errorf("stats %+v; want failed calls, nothing published", s)
	}
}

// Shutdown publishes what is queued before it returns.
func TestShutdownDrains(t *testing.T) {
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, nil)
	release := h.pub.blockCalls()
	h.get(t, origin.URL+"/a")
	h.get(t, origin.URL+"/b")
	done := make(chan error, 1)
	go func() { done <- h.p.Shutdown(h.ctx) }()
	release()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if s := h.p.Stats(); s.Published != 4 || s.Dropped != 0 || s.Queued != 0 {
		t.Errorf("after Shutdown: %+v; want all 4 entries published", s)
	}
}

// Shutdown's context bounds the drain: what is left is dropped and the
// publishing goroutine stops (goleak checks).
func TestShutdownDeadline(t *testing.T) {
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, nil)
	release := h.pub.blockCalls()
	defer release()
	h.get(t, origin.URL+"/a")
	h.get(t, origin.URL+"/b")
	ctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
	defer cancel()
	if err := h.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v; want DeadlineExceeded", err)
	}
	waitFor(t, h.ctx, "the leftovers dropped", func() bool { return h.p.Stats().Dropped == 4 })
}
