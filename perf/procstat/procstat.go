// Package procstat samples the running process: its resident set size and
// CPU time from the operating system (through gopsutil), and the Go
// runtime's heap figures and soft memory limit (through runtime/metrics).
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
}

// Names of the runtime/metrics read, in the order of Reader.samples.
var metricNames = []string{
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/gc/gomemlimit:bytes",
	"/memory/classes/total:bytes",
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

// Read takes a sample.
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
	}, nil
}

// uint64Of returns a sample's value, or 0 if this Go does not support it.
func uint64Of(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
