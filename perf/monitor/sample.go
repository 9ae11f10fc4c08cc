package monitor

import (
	"fmt"
	"time"
)

// Sample is one reading of every part of the server, filled by the caller
// (the service) from its components each interval. Counters (documented as
// such) count from the server's start; the score and the alerts use their
// growth since the previous sample. A counter that went down is taken to
// have been reset and to have counted from zero since. The zero value of a
// part means the part reported nothing, which scores full points.
type Sample struct {
	// Time is when the sample was taken. [Monitor] sets it from its clock
	// when the source leaves it zero.
	Time time.Time
	// Process describes the server process and the Go runtime.
	Process Process
	// Memory describes the in-memory store.
	Memory Memory
	// Throttle describes subscribers and throttling.
	Throttle Throttle
	// Cleanup describes tracked resources and their cleanup.
	Cleanup Cleanup
	// Logs describes the archive.
	Logs Logs
	// Proxy describes the recording proxy.
	Proxy Proxy
	// Cluster describes cluster mode.
	Cluster Cluster
}

// Cluster describes this node of a cluster (see package cluster).
type Cluster struct {
	// Enabled is true in cluster mode; the rest means nothing without it.
	Enabled bool
	// Connected is true while the node can publish: connected to NATS,
	// with the stream answering.
	Connected bool
	// Applied is the newest id the node has applied from the stream.
	Applied uint64
	// Lag is how many of the stream's entries the node has not applied.
	Lag uint64
}

// ClusterLagAlert is the lag, in entries, at which cluster_behind fires
// whatever the node's progress.
const ClusterLagAlert = 10000

// Proxy describes the recording proxy.
type Proxy struct {
	// Open lists the addresses where the proxy listens beyond loopback
	// without client authentication, so that anyone who can reach them
	// may use it; empty when there are none or the proxy is off.
	Open []string
}

// Process describes the server process and the Go runtime (see
// procstat.Reading, which supplies most of it).
type Process struct {
	// RSS is the resident set size, in bytes.
	RSS uint64
	// CPUPercent is CPU use since the previous sample, in percent of one
	// core (200 is two cores busy).
	CPUPercent float64
	// NumCPU is the number of cores CPUPercent is out of; 0 is taken as 1.
	NumCPU int
	// OpenFiles is the number of open file descriptors.
	OpenFiles uint64
	// Threads is the number of OS threads.
	Threads uint64
	// HeapLive is the heap in live objects after the last GC, in bytes.
	HeapLive uint64
	// Stacks is the memory reserved for goroutine stacks, in bytes.
	Stacks uint64
	// HeapGoal is the heap size the next GC aims at, in bytes.
	HeapGoal uint64
	// HeapFree is free heap memory still backed by physical pages, in
	// bytes: what returning memory to the OS would give back.
	HeapFree uint64
	// MemoryLimit is the Go soft memory limit, in bytes.
	MemoryLimit uint64
	// GCCPUFraction is the share of CPU spent in GC since start, 0..1.
	GCCPUFraction float64
	// Goroutines is the number of live goroutines.
	Goroutines uint64
}

// Memory describes the in-memory store.
type Memory struct {
	// Bytes is the accounted size of the entries held, in bytes.
	Bytes uint64
	// Budget is the memory budget (memory.max_memory_mb), in bytes: what
	// the store holds at most.
	Budget uint64
	// Allowance is the live memory, in bytes, that the rest of the process
	// may hold beside the store's entries before the store gives way to
	// it (the pressure margin). The memory share is what the rest holds
	// (see [RestShare]) over Allowance; 0 means no allowance is known, and
	// memory then scores full points and raises no alert.
	Allowance uint64
	// Entries is the number of entries held.
	Entries uint64
	// MaxEntries is the entry cap (memory.max_entries).
	MaxEntries uint64
	// UnderPressure is whether the store's last pressure check found live
	// memory beyond the budget and the allowance for the rest of the
	// process, and evicted the excess.
	UnderPressure bool
	// EvictedByPressure counts entries evicted under memory pressure.
	EvictedByPressure uint64
}

// Throttle describes subscribers and throttling.
type Throttle struct {
	// Subscribers is the number of open subscriber streams.
	Subscribers uint64
	// MessagesSent counts messages sent to subscribers.
	MessagesSent uint64
	// ThrottledIntervals counts messages that had entries ready but waited
	// for the throttle's interval before going out.
	ThrottledIntervals uint64
	// Gaps counts gap messages: a subscriber fell behind the oldest entry
	// held.
	Gaps uint64
	// StuckSubscribers counts subscribers ended because a send stayed
	// blocked too long.
	StuckSubscribers uint64
	// MaxLag is the largest lag of any open subscriber, in ids behind the
	// newest.
	MaxLag uint64
}

// Cleanup describes tracked resources and their cleanup.
type Cleanup struct {
	// Live is the number of resources tracked now.
	Live uint64
	// Idle is the number of tracked resources idle past the resource
	// timeout now: what reclaiming would end.
	Idle uint64
	// Succeeded counts cleanups that succeeded.
	Succeeded uint64
	// Failed counts cleanups that failed.
	Failed uint64
	// Leaked counts resources found collected without their cleanup having
	// run.
	Leaked uint64
	// IdleClosed counts resources ended for being idle.
	IdleClosed uint64
}

// Logs describes the archive.
type Logs struct {
	// Enabled is whether the archive is on (logs.enabled). When it is off
	// the other fields are ignored: logs score full points, raise no alert
	// and are never rotated.
	Enabled bool
	// EntriesWritten counts entries written to archive files.
	EntriesWritten uint64
	// WriteErrors counts write, sync or compression errors.
	WriteErrors uint64
	// EntriesDropped counts entries not archived because the queue was
	// full while writes were failing.
	EntriesDropped uint64
	// Queued is the number of entries waiting for the writer now.
	Queued uint64
	// QueueCapacity is how many entries the queue holds; 0 means unknown,
	// and queue fill is then not scored.
	QueueCapacity uint64
	// QueuedBytes and QueueBytesCapacity are the same in bytes of bodies,
	// the queue's other bound; a capacity of 0 means unknown. The fuller
	// of the two is scored.
	QueuedBytes, QueueBytesCapacity uint64
	// Files is the number of archive files on disk now.
	Files uint64
	// MaxFiles is the most files retention keeps (logs.max_files); 0 means
	// no limit.
	MaxFiles uint64
	// DiskBytes is the size of the archive files on disk now, in bytes.
	DiskBytes uint64
	// RotationDue is whether the current file should be rotated now: the
	// caller decides (for example, the file is older than the rotation
	// interval, or over its size, and the writer has not rotated it yet).
	RotationDue bool
	// LastError is the last write, compression or deletion error; empty if
	// none.
	LastError string
}

// delta is how much a counter grew from prev to cur. A counter that went
// down was reset, and counted cur since.
func delta(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// clamp returns x within 0..1; NaN gives 0.
func clamp(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return min(x, 1)
}

// share returns part/whole within 0..1, and 0 when whole is 0.
func share(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return clamp(float64(part) / float64(whole))
}

// RestShare is the live memory the process holds besides the store's
// entries, as a share of allowance: live (the live heap and goroutine
// stacks) less the store's accounted bytes, over the allowance the rest of
// the process has before the store gives way to it. A full store is what
// the budget is for, so it counts for nothing here; at 1 the store starts
// to give way. It is not clamped (1.2 means 20 % over), and 0 when
// allowance is 0.
func RestShare(live, storeBytes, allowance uint64) float64 {
	if allowance == 0 || live <= storeBytes {
		return 0
	}
	return float64(live-storeBytes) / float64(allowance)
}

// memoryShare is s's [RestShare], the bytes the rest holds, and whether an
// allowance is known.
func memoryShare(s Sample) (u float64, rest uint64, ok bool) {
	live := s.Process.HeapLive + s.Process.Stacks
	if live > s.Memory.Bytes {
		rest = live - s.Memory.Bytes
	}
	return RestShare(live, s.Memory.Bytes, s.Memory.Allowance), rest, s.Memory.Allowance > 0
}

// memoryText says what the memory share is made of, for explanations.
func memoryText(s Sample, u float64, rest uint64) string {
	return fmt.Sprintf("live memory besides the store, %s, is %s of its %s allowance (live %s, store %s of the %s budget, RSS %s)",
		bytesOf(rest), percent(u), bytesOf(s.Memory.Allowance), bytesOf(s.Process.HeapLive+s.Process.Stacks),
		bytesOf(s.Memory.Bytes), bytesOf(s.Memory.Budget), bytesOf(s.Process.RSS))
}

// throttledShare is the share of the messages sent in the interval that
// waited for the throttle, and how many messages were sent.
func throttledShare(prev, cur Sample) (float64, uint64) {
	msgs := delta(prev.Throttle.MessagesSent, cur.Throttle.MessagesSent)
	return share(delta(prev.Throttle.ThrottledIntervals, cur.Throttle.ThrottledIntervals), msgs), msgs
}

// failureShare is the share of cleanups that failed in the interval; when
// the interval had none, the share since start; 0 when there was never
// one. basis says which it is, for explanations.
func failureShare(prev, cur Sample) (f float64, failed, total uint64, basis string) {
	failed = delta(prev.Cleanup.Failed, cur.Cleanup.Failed)
	total = failed + delta(prev.Cleanup.Succeeded, cur.Cleanup.Succeeded)
	if total > 0 {
		return share(failed, total), failed, total, "in the interval"
	}
	failed, total = cur.Cleanup.Failed, cur.Cleanup.Failed+cur.Cleanup.Succeeded
	return share(failed, total), failed, total, "since start"
}

// cpuShare is CPU use as a share of all cores, 0..1 (more if the figures
// disagree).
func cpuShare(s Sample) float64 {
	n := max(s.Process.NumCPU, 1)
	if !(s.Process.CPUPercent > 0) {
		return 0
	}
	return s.Process.CPUPercent / 100 / float64(n)
}
