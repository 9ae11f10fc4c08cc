// Package procstat samples the running process: its resident set size, CPU
// time, open files and threads from the operating system (through
// gopsutil), and the Go runtime's heap figures, goroutine stacks, soft
// memory limit, GC CPU share and goroutines (through runtime/metrics).
//
// [Reader.Read] is cheap enough to call every second; [Reader.ReadAll] also
// counts open files and threads, which lists a directory and parses a file
// under /proc, and is meant for once per monitoring interval. [CPUPercent]
// turns two readings into CPU use.
package procstat

import (
	"fmt"
	"math"
	"os"
	"runtime/metrics"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// Reading is one sample of the process.
type Reading struct {
	// Time is when the sample was taken.
	Time time.Time
	// RSS is the resident set size, in bytes.
	RSS uint64
	// HeapLive is the heap occupied by live objects as of the last GC, in
	// bytes.
	HeapLive uint64
	// Stacks is the memory reserved for goroutine stacks, in bytes.
	Stacks uint64
	// HeapGoal is the heap size at which the next GC starts, in bytes.
	HeapGoal uint64
	// MemoryLimit is the Go soft memory limit in force, in bytes
	// (math.MaxInt64 when none is set).
	MemoryLimit uint64
	// GoTotal is all memory mapped by the Go runtime, in bytes.
	GoTotal uint64
	// CPUTime is the CPU time the process has used since it started, user
	// and system.
	CPUTime time.Duration
	// HeapFree is heap memory that is free and still backed by physical
	// memory, in bytes: what the runtime could return to the operating
	// system now (with debug.FreeOSMemory) but has not yet.
	HeapFree uint64
	// GCCPUFraction is the share of the CPU time available to Go since the
	// process started (GOMAXPROCS × wall time) that the garbage collector
	// used, 0..1. The runtime updates its CPU estimates at each GC, so it
	// lags between collections.
	GCCPUFraction float64
	// Goroutines is the number of live goroutines.
	Goroutines uint64
	// OpenFiles is the number of open file descriptors (sockets included).
	// Set by [Reader.ReadAll] only; 0 from [Reader.Read].
	OpenFiles uint64
	// Threads is the number of OS threads. Set by [Reader.ReadAll] only; 0
	// from [Reader.Read].
	Threads uint64
}

// Names of the runtime/metrics read, in the order of Reader.samples.
var metricNames = []string{
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/gc/gomemlimit:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/free:bytes",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/sched/goroutines:goroutines",
	"/memory/classes/heap/stacks:bytes",
}

// Reader samples this process. It keeps one process handle
// for its lifetime, so that gopsutil does not look the process up on every
// read. A Reader is not safe for concurrent use.
type Reader struct {
	proc    *process.Process
	samples []metrics.Sample
}

// NewReader returns a reader for the current process.
func NewReader() (*Reader, error) {
	pid := os.Getpid()
	if pid > math.MaxInt32 {
		return nil, fmt.Errorf("procstat: pid %d does not fit gopsutil's int32", pid)
	}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return nil, fmt.Errorf("procstat: open process %d: %w", pid, err)
	}
	r := &Reader{proc: p, samples: make([]metrics.Sample, len(metricNames))}
	for i, n := range metricNames {
		r.samples[i].Name = n
	}
	return r, nil
}

// Read takes a sample, without OpenFiles and Threads.
func (r *Reader) Read() (Reading, error) {
	mi, err := r.proc.MemoryInfo()
	if err != nil {
		return Reading{}, fmt.Errorf("procstat: read RSS: %w", err)
	}
	times, err := r.proc.Times()
	if err != nil {
		return Reading{}, fmt.Errorf("procstat: read CPU times: %w", err)
	}
	metrics.Read(r.samples)
	return Reading{
		Time:        time.Now(),
		RSS:         mi.RSS,
		HeapLive:    uint64Of(r.samples[0]),
		HeapGoal:    uint64Of(r.samples[1]),
		MemoryLimit: uint64Of(r.samples[2]),
		GoTotal:     uint64Of(r.samples[3]),
		CPUTime:     time.Duration((times.User + times.System) * float64(time.Second)),
		HeapFree:    uint64Of(r.samples[4]),
		// The fraction is of two cumulative figures, not a rate: it is 0
		// before the runtime has accounted any CPU time.
		GCCPUFraction: ratio(float64Of(r.samples[5]), float64Of(r.samples[6])),
		Goroutines:    uint64Of(r.samples[7]),
		Stacks:        uint64Of(r.samples[8]),
	}, nil
}

// Live is the memory the process holds that collecting garbage cannot
// free, in bytes: the live heap as of the last GC and the goroutine stacks.
// Unlike RSS it leaves out garbage not yet collected and free memory not
// yet returned to the operating system, so it moves only when the process
// keeps more.
func (r Reading) Live() uint64 { return r.HeapLive + r.Stacks }

// float64Of returns a sample's value, or 0 if this Go does not support it.
func float64Of(s metrics.Sample) float64 {
	if s.Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s.Value.Float64()
}

// ratio returns part/whole within 0..1, and 0 when whole is not positive.
func ratio(part, whole float64) float64 {
	if !(whole > 0) || !(part > 0) {
		return 0
	}
	return min(part/whole, 1)
}

// uint64Of returns a sample's value, or 0 if this Go does not support it.
func uint64Of(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
