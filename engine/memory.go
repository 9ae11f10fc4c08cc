package engine

import (
	"context"
	"runtime"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/procstat"
	"github.com/pxperf/pxperf/perf/store"
)

// How the process is held near the memory budget. The store keeps its
// accounted bytes within the budget by itself, at every insert. Live
// memory (procstat.Reading.Live: the live heap and goroutine stacks) is the
// store's entries plus what the rest of the process holds; the rest is
// allowed memory.overhead_mb (see overhead) before pressure eviction makes
// the store give way to it. The Go memory limit sits gcHeadroom above
// that: the
// garbage the collector may let build up before it must run, so that under
// a flood it collects often rather than let the process grow, and still
// has room when pressure eviction holds live memory at its threshold.
// BENCHMARKS.md ("The memory budget keeps its history") has the flood runs
// behind the figures.
const (
	// gcHeadroom is how far the memory limit is above the live memory
	// pressure eviction allows, as a share of it. More lets RSS grow under
	// a flood; less makes the collector run more often, slowing ingest.
	gcHeadroom = 0.025
)

// overhead is the live memory, in bytes, that the rest of the process may
// hold besides the store's entries (memory.overhead_mb): the runtime,
// gRPC's buffers (a fixed receive window per connection), entries decoded
// ahead of ingest, the archive's queue (bounded in body bytes), batches on
// their way to subscribers.
func overhead(m *pxperfv1.MemoryConfig) int64 {
	return int64(m.GetOverheadMb()) << 20
}

// MemoryLimit is the Go soft memory limit, in bytes, that suits cfg: the
// memory budget, the live memory the rest of the process is allowed
// beside the store (memory.overhead_mb), and headroom for the garbage
// collector (see gcHeadroom). The limit makes the collector work harder before the
// process grows past it; pressure eviction keeps live memory below it, so
// the collector is never asked for the impossible.
func MemoryLimit(cfg *pxperfv1.Config) int64 {
	live := int64(cfg.GetMemory().GetMaxMemoryMb())<<20 + overhead(cfg.GetMemory())
	return live + int64(float64(live)*gcHeadroom)
}

// watchPressure evicts the excess from the store whenever live memory
// passes the budget and memory.overhead_mb (see [store.Store.RelievePressure]),
// until ctx ends. It reads live memory (procstat.Reading.Live), not RSS:
// RSS also counts garbage the collector has not yet reached and free
// memory not yet returned, which evicting entries would not reduce.
func (e *Engine) watchPressure(ctx context.Context) {
	// Collect after an eviction: the live heap is measured by a
	// collection, and a reading from before this one would count the
	// evicted entries again. The memory limit returns freed memory to the
	// operating system as needed.
	e.watchLive(ctx, e.proc.read, runtime.GC)
}

// watchLive is watchPressure with its reading of the process and its
// collection passed in.
func (e *Engine) watchLive(ctx context.Context, read func() (procstat.Reading, error), collect func()) {
	live := func() (uint64, error) {
		r, err := read()
		return r.Live(), err
	}
	onError := func(err error) { e.log.Warn("cannot read live memory; pressure eviction skipped", "err", err) }
	remove := e.store.Observe(func(ev store.Eviction) {
		if ev.Reason == store.ReasonPressure {
			e.log.Info("evicted under memory pressure", "entries", ev.Count, "bytes", ev.Bytes, "oldest_id", ev.OldestID)
		}
	})
	defer remove()
	e.store.WatchPressure(ctx, live, collect, onError)
}
