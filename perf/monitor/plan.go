package monitor

import (
	"context"
	"fmt"
)

// Action is one kind of optimisation.
type Action int

// The actions, in the order [Plan] lists them and [Monitor.Optimize] runs
// them all.
const (
	// Evict evicts the oldest entries from the store down to its low-water
	// mark. Only [Monitor.Optimize] runs it: see [Plan].
	Evict Action = iota + 1
	// Rotate rotates the current archive file.
	Rotate
	// Reclaim ends tracked resources idle past their timeout.
	Reclaim
	// SlowThrottles grows the interval of subscribers in adaptive mode.
	SlowThrottles
	// ReleaseMemory returns free heap memory to the operating system.
	ReleaseMemory
)

// AllActions returns every action, in order.
func AllActions() []Action {
	return []Action{Evict, Rotate, Reclaim, SlowThrottles, ReleaseMemory}
}

// String returns the action's lower_snake name, for example
// "release_memory".
func (a Action) String() string {
	switch a {
	case Evict:
		return "evict"
	case Rotate:
		return "rotate"
	case Reclaim:
		return "reclaim"
	case SlowThrottles:
		return "slow_throttles"
	case ReleaseMemory:
		return "release_memory"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Actions carries out optimisations; the service implements it over its
// components. [Monitor] never calls it concurrently. Each method does its
// work now, whether or not it seems needed, and reports what it did; a
// method with nothing to do returns a Result saying so and a nil error.
type Actions interface {
	// Evict evicts the oldest entries down to the store's low-water mark.
	Evict(ctx context.Context) (Result, error)
	// Rotate closes the current archive file and starts a new one.
	Rotate(ctx context.Context) (Result, error)
	// Reclaim ends the resources idle past their timeout.
	Reclaim(ctx context.Context) (Result, error)
	// SlowThrottles grows the interval of adaptive throttles, as high load
	// would.
	SlowThrottles(ctx context.Context) (Result, error)
	// ReleaseMemory collects garbage and returns free memory to the
	// operating system (debug.FreeOSMemory).
	ReleaseMemory(ctx context.Context) (Result, error)
}

// Result is what one action did.
type Result struct {
	// Action is the action. [Monitor] sets it.
	Action Action
	// Summary says what changed, before → after, for example
	// "RSS 412 MiB → 230 MiB, 5210 entries → 3600". Empty when Err is set.
	Summary string
	// EntriesEvicted counts entries evicted (Evict).
	EntriesEvicted uint64
	// BytesFreed counts bytes freed: accounted entry bytes for Evict, bytes
	// returned to the operating system for ReleaseMemory.
	BytesFreed uint64
	// FilesRotated counts archive files rotated (Rotate).
	FilesRotated uint64
	// ResourcesReclaimed counts resources ended (Reclaim).
	ResourcesReclaimed uint64
	// Err is why the action failed; nil if it did not.
	Err error
}

// Plan returns the actions that cur calls for, in [AllActions] order. It
// is a pure function; a healthy idle sample calls for none. th has its
// zero shares taken as their defaults.
//
//   - Evict never: the store evicts by itself, to its budget at every
//     insert and by the excess of live memory under pressure at every
//     check. The monitor evicting more, on RSS or on a full store, would
//     cut the history the budget is there to keep. Evict is for
//     [Monitor.Optimize].
//   - Rotate when the archive is on and its current file is due
//     (Logs.RotationDue).
//   - Reclaim when resources are idle past their timeout (Cleanup.Idle > 0).
//   - SlowThrottles when there are subscribers and the process uses at
//     least th.CPUShare of all cores (CPUPercent / NumCPU / 100).
//   - ReleaseMemory when free heap not yet returned (Process.HeapFree) is
//     at least th.ReleaseShare of the memory budget.
func Plan(cur Sample, th Thresholds) []Action {
	th = th.withDefaults()
	var acts []Action
	if cur.Logs.Enabled && cur.Logs.RotationDue {
		acts = append(acts, Rotate)
	}
	if cur.Cleanup.Idle > 0 {
		acts = append(acts, Reclaim)
	}
	if cur.Throttle.Subscribers > 0 && cpuShare(cur) >= th.CPUShare {
		acts = append(acts, SlowThrottles)
	}
	if cur.Memory.Budget > 0 && float64(cur.Process.HeapFree) >= th.ReleaseShare*float64(cur.Memory.Budget) {
		acts = append(acts, ReleaseMemory)
	}
	return acts
}
