package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/procstat"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Pressure eviction reads live memory (the live heap and stacks), not RSS:
// RSS far beyond the budget with live memory within the budget and the
// allowance evicts nothing; live memory beyond them evicts the excess
// only, and is followed by a collection.
func TestWatchLiveReadsLiveMemoryNotRSS(t *testing.T) {
	cfg := config.Default()
	cfg.Memory.MaxMemoryMb = 1
	cfg.Memory.MaxBodySize = 1 << 20
	cfg.Memory.CleanupInterval = durationpb.New(time.Millisecond)
	st, err := store.New(storeConfig(cfg.GetMemory()))
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{log: slog.New(slog.DiscardHandler), store: st}
	for i := range 8 {
		en := testentry.Proxied(i)
		en.ResponseBody = &pxperfv1.Body{Data: make([]byte, 100<<10)}
		st.Append([]*pxperfv1.Entry{en})
	}
	full := st.Stats()
	if full.Entries != 8 || full.EvictedByBytes != 0 {
		t.Fatalf("store after 8 entries of 100 KiB: %+v; want all 8 within the 1 MiB budget", full)
	}
	one := full.Bytes / 8 // entries alike but for a counter in their URL
	threshold := uint64(full.BudgetBytes + overhead(cfg.GetMemory()))
	const rss = 4 << 30 // far beyond the budget, as garbage and free pages make it
	readings := []procstat.Reading{
		{RSS: rss, HeapLive: threshold - 1<<20, Stacks: 1 << 19},        // within: nothing
		{RSS: rss, HeapLive: threshold, Stacks: 0},                      // at the threshold: nothing
		{RSS: rss, HeapLive: threshold, Stacks: uint64(one) + 1 + 1024}, // a little over one entry: evict two
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reads, collected, evictedAtCollect := 0, 0, uint64(0)
	read := func() (procstat.Reading, error) {
		r := readings[reads]
		reads++
		if reads == len(readings) {
			defer cancel()
		}
		return r, nil
	}
	collect := func() {
		collected++
		evictedAtCollect = st.Stats().EvictedByPressure
	}
	e.watchLive(ctx, read, collect)
	if reads != len(readings) {
		t.Fatalf("read %d times, want %d", reads, len(readings))
	}
	got := st.Stats()
	if got.EvictedByPressure != 2 || got.Entries != 6 || !got.UnderPressure || got.LiveMemory != threshold+uint64(one)+1+1024 {
		t.Errorf("after the readings: %+v; want 2 evicted by pressure, 6 held, under pressure at the last reading", got)
	}
	if collected != 1 || evictedAtCollect != 2 {
		t.Errorf("collected %d times, after %d evictions; want once, after the eviction", collected, evictedAtCollect)
	}
}

// The memory limit stays above the live memory pressure eviction allows,
// by a share of it, so that the collector has headroom whatever the
// budget.
func TestMemoryLimitAbovePressureThreshold(t *testing.T) {
	for _, mib := range []uint32{1, 16, 256, 500, 1 << 20} {
		cfg := config.Default()
		cfg.Memory.MaxMemoryMb = mib
		sc := storeConfig(cfg.GetMemory())
		threshold := sc.MaxMemoryBytes + sc.PressureMargin
		limit := MemoryLimit(cfg)
		if limit < threshold+int64(float64(threshold)*gcHeadroom) {
			t.Errorf("%d MiB: limit %d, pressure threshold %d; want the limit %v of it above", mib, limit, threshold, gcHeadroom)
		}
	}
}
