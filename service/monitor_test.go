package service_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/monitor"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// fastMonitor samples every 100ms.
func fastMonitor(c *pxperfv1.Config) {
	c.Monitor.StatsUpdateInterval = durationpb.New(100 * time.Millisecond)
}

// GetStats carries the score, its four parts with their explanations, and
// the process figures only the monitor samples.
func TestGetStatsScore(t *testing.T) {
	h := newHarness(t, fastMonitor)
	st := h.waitStats(t, "a second monitor sample", func(st *pxperfv1.Stats) bool {
		return st.GetScore() != nil && st.GetProcess().GetCpuPercent() > 0
	})
	sc := st.GetScore()
	var sum, maxSum float64
	var names []string
	for _, p := range sc.GetParts() {
		sum += p.GetPoints()
		maxSum += p.GetMaxPoints()
		names = append(names, p.GetName())
		if p.GetExplanation() == "" || p.GetPoints() < 0 || p.GetPoints() > p.GetMaxPoints() {
			t.Errorf("part %v", p)
		}
	}
	if !slices.Equal(names, []string{"memory", "throttling", "cleanup", "logs"}) || maxSum != 100 {
		t.Errorf("parts %v worth %v, want memory, throttling, cleanup, logs worth 100", names, maxSum)
	}
	if math.Abs(sum-sc.GetTotal()) > 0.05 || sc.GetTotal() < 60 {
		t.Errorf("total %v, parts sum to %v; want them equal, and a healthy idle server above 60", sc.GetTotal(), sum)
	}
	p := st.GetProcess()
	if p.GetOpenFiles() == 0 || p.GetThreads() == 0 || p.GetGcCpuFraction() < 0 {
		t.Errorf("process %v, want open files, threads and GC fraction sampled", p)
	}
}

// watchEvents reads a WatchStats stream in the background and hands over
// everything but stats samples.
func watchEvents(t *testing.T, s grpc.ServerStreamingClient[pxperfv1.WatchStatsResponse]) (<-chan *pxperfv1.WatchStatsResponse, <-chan int) {
	events := make(chan *pxperfv1.WatchStatsResponse, 100)
	samples := make(chan int, 1000)
	go func() {
		defer close(events)
		n := 0
		for {
			m, err := s.Recv()
			if err != nil {
				return
			}
			if m.GetStats() != nil {
				n++
				samples <- n
				continue
			}
			events <- m
		}
	}()
	return events, samples
}

// An alert fires once while its condition holds, is seen by WatchStats
// and GetStats, and clears once when a live config change ends the
// condition; the change itself is reported too.
func TestAlertFiresOnceAndClears(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		fastMonitor(c)
		c.Memory.OverheadMb = 1 // any process holds more besides its store
		c.Monitor.AutoOptimize = false
	})
	ctx := testContext(t)
	svc := h.client.Service()
	ws, err := svc.WatchStats(ctx, &pxperfv1.WatchStatsRequest{Interval: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	events, samples := watchEvents(t, ws)
	next := func() *pxperfv1.WatchStatsResponse {
		t.Helper()
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatal("WatchStats ended")
			}
			return m
		case <-ctx.Done():
			t.Fatal("no event by the deadline")
		}
		return nil
	}
	first := next()
	if a := first.GetAlert(); a.GetName() != "memory_high" || a.GetState() != pxperfv1.AlertState_ALERT_STATE_FIRING || a.GetValue() < 0.8 || !strings.Contains(a.GetMessage(), "allowance") {
		t.Fatalf("first event %v, want memory_high firing with its figures", first)
	}
	// Several more samples while it holds: no second event.
	for n := 0; n < 5; {
		select {
		case n = <-samples:
		case m := <-events:
			t.Fatalf("event while the condition holds: %v", m)
		case <-ctx.Done():
			t.Fatal("no samples")
		}
	}
	st := h.waitStats(t, "stats", func(*pxperfv1.Stats) bool { return true })
	if !slices.ContainsFunc(st.GetActiveAlerts(), func(a *pxperfv1.Alert) bool { return a.GetName() == "memory_high" }) {
		t.Errorf("active alerts %v, want memory_high", st.GetActiveAlerts())
	}

	if _, err := svc.UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{OverheadMb: testOverheadMB}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"memory.overhead_mb"}},
	}); err != nil {
		t.Fatal(err)
	}
	cc := next().GetConfigChanged()
	if !slices.Equal(cc.GetChangedFields().GetPaths(), []string{"memory.overhead_mb"}) || cc.GetConfig().GetMemory().GetOverheadMb() != testOverheadMB {
		t.Errorf("config change event %v", cc)
	}
	cleared := next().GetAlert()
	if cleared.GetName() != "memory_high" || cleared.GetState() != pxperfv1.AlertState_ALERT_STATE_CLEARED || cleared.GetClearTime() == nil {
		t.Errorf("event after the change %v, want memory_high cleared", cleared)
	}
}

// Optimize runs every action when asked for none, and each reports what
// it did with figures. Evict brings the store down to the low-water mark
// of its budget, not further.
func TestOptimize(t *testing.T) {
	const budget, lowWater = 1 << 20, 0.05
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Monitor.AutoOptimize = false
		c.Memory.MaxMemoryMb = budget >> 20
		c.Memory.LowWater = lowWater
		c.Memory.MaxBodySize = 64 << 10
	})
	ctx := testContext(t)
	es := entriesN(5)
	for _, e := range es {
		e.ResponseBody = &pxperfv1.Body{Data: make([]byte, 20<<10)} // 5 of them pass the low-water mark
	}
	h.publish(t, ctx, es...)
	h.archived(t, 5)
	resp, err := h.client.Service().Optimize(ctx, &pxperfv1.OptimizeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[pxperfv1.OptimizeAction]*pxperfv1.OptimizeResult{}
	for _, r := range resp.GetResults() {
		got[r.GetAction()] = r
		if r.GetSummary() == "" || strings.HasPrefix(r.GetSummary(), "failed") {
			t.Errorf("%v: summary %q", r.GetAction(), r.GetSummary())
		}
	}
	if len(got) != 5 {
		t.Fatalf("results %v, want one per action", resp.GetResults())
	}
	evicted := got[pxperfv1.OptimizeAction_OPTIMIZE_ACTION_EVICT].GetEntriesEvicted()
	if evicted == 0 || evicted >= 5 {
		t.Errorf("evict: %v, want some of the 5 entries evicted, not all", got[pxperfv1.OptimizeAction_OPTIMIZE_ACTION_EVICT])
	}
	if r := got[pxperfv1.OptimizeAction_OPTIMIZE_ACTION_ROTATE]; r.GetFilesRotated() != 1 {
		t.Errorf("rotate: %v, want the current file rotated", r)
	}
	if r := got[pxperfv1.OptimizeAction_OPTIMIZE_ACTION_RELEASE_MEMORY]; !strings.Contains(r.GetSummary(), "RSS") {
		t.Errorf("release: %v, want the RSS before and after", r)
	}
	st := h.waitStats(t, "stats", func(*pxperfv1.Stats) bool { return true })
	if s := st.GetStore(); s.GetEntries() != 5-evicted || float64(s.GetBytes()) > budget*lowWater || st.GetArchive().GetRotationsManual() != 1 {
		t.Errorf("after Optimize: store %v, archive rotations %d; want %d entries within the low-water mark (%v bytes)",
			s, st.GetArchive().GetRotationsManual(), 5-evicted, budget*lowWater)
	}

	one, err := h.client.Service().Optimize(ctx, &pxperfv1.OptimizeRequest{Actions: []pxperfv1.OptimizeAction{pxperfv1.OptimizeAction_OPTIMIZE_ACTION_RECLAIM}})
	if err != nil || len(one.GetResults()) != 1 || one.GetResults()[0].GetAction() != pxperfv1.OptimizeAction_OPTIMIZE_ACTION_RECLAIM {
		t.Errorf("Optimize(RECLAIM) = %v, %v; want just that action", one, err)
	}
}

// The monitor does not evict on its own, even with RSS far beyond the
// budget: the store evicts by itself, and the monitor evicting too would
// cut the history the budget is there to keep.
func TestAutoOptimizeKeepsHistory(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		fastMonitor(c)
		c.Memory.MaxMemoryMb = 1 // this process's RSS is far beyond it
	})
	ctx := testContext(t)
	h.publish(t, ctx, entriesN(5)...)
	// A sample that counts the entries was taken after the publish, and the
	// actions of its tick ran before GetStats could show it.
	h.waitStats(t, "a monitor sample after the publish", func(st *pxperfv1.Stats) bool {
		for _, p := range st.GetScore().GetParts() {
			if p.GetName() == "memory" && strings.Contains(p.GetExplanation(), ", store ") && !strings.Contains(p.GetExplanation(), ", store 0 B ") {
				return true
			}
		}
		return false
	})
	st := h.stats(t, ctx)
	if s := st.GetStore(); s.GetEntries() != 5 || s.GetEvictedByPressure() != 0 {
		t.Errorf("store %v with RSS %d; want the 5 entries kept, none evicted by pressure", s, st.GetProcess().GetRssBytes())
	}
}

// The contract's optimize actions and the monitor's have the same numbers,
// which Optimize relies on.
func TestOptimizeActionsMatch(t *testing.T) {
	for _, a := range monitor.AllActions() {
		name := pxperfv1.OptimizeAction(a).String()
		if want := "OPTIMIZE_ACTION_" + strings.ToUpper(a.String()); name != want {
			t.Errorf("monitor action %d is %s in the contract, want %s", a, name, want)
		}
	}
}
