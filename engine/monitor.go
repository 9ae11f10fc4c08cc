package engine

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/monitor"
	"github.com/pxperf/pxperf/perf/procstat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// monitorConfig is the monitor's config for the monitor group.
func monitorConfig(mc *pxperfv1.MonitorConfig) monitor.Config {
	return monitor.Config{
		Interval:     mc.GetStatsUpdateInterval().AsDuration(),
		AutoOptimize: mc.GetAutoOptimize(),
		Thresholds: monitor.Thresholds{
			Enabled:             mc.GetAlertsEnabled(),
			MemoryShare:         mc.GetMemoryAlertThreshold(),
			ThrottledShare:      mc.GetThrottledAlertThreshold(),
			CleanupFailureShare: mc.GetCleanupFailureAlertThreshold(),
			MinScore:            float64(mc.GetMinScore()),
		},
	}
}

// newMonitor creates the performance monitor over s: s's components are
// its source of samples and carry out its optimisations.
func newMonitor(e *Engine, cfg *pxperfv1.MonitorConfig) (*monitor.Monitor, error) {
	return monitor.New(monitorConfig(cfg), &monitorSource{e: e}, optimizer{e}, e.log)
}

// monitorSource samples every part of the service for the monitor. Only
// the monitor calls it, never concurrently.
type monitorSource struct {
	e    *Engine
	prev procstat.Reading // for CPU use between samples
}

// Sample implements monitor.Source.
func (src *monitorSource) Sample(context.Context) (monitor.Sample, error) {
	e := src.e
	cfg := e.Config()
	st := e.store.Stats()
	r, err := e.proc.readAll()
	if err != nil {
		return monitor.Sample{}, err
	}
	// The live heap is as of the last collection, which on a quiet server
	// may be long past and count what has been freed since. Before the
	// memory share raises or holds an alert, a collection makes it current:
	// at most one a sample, and only then.
	if monitor.RestShare(r.Live(), uint64(st.Bytes), uint64(overhead(cfg.GetMemory()))) >= cfg.GetMonitor().GetMemoryAlertThreshold() {
		runtime.GC()
		if r, err = e.proc.readAll(); err != nil {
			return monitor.Sample{}, err
		}
	}
	var cpu float64
	if !src.prev.Time.IsZero() {
		cpu = procstat.CPUPercent(src.prev, r)
	}
	src.prev = r
	hs := e.hub.Stats(st.NewestID, r.Time)
	sample := monitor.Sample{
		Time: r.Time,
		Process: monitor.Process{
			RSS: r.RSS, CPUPercent: cpu, NumCPU: runtime.NumCPU(),
			OpenFiles: r.OpenFiles, Threads: r.Threads,
			HeapLive: r.HeapLive, Stacks: r.Stacks, HeapGoal: r.HeapGoal, HeapFree: r.HeapFree, MemoryLimit: r.MemoryLimit,
			GCCPUFraction: r.GCCPUFraction, Goroutines: r.Goroutines,
		},
		Memory: monitor.Memory{
			Bytes: uint64(st.Bytes), Budget: uint64(st.BudgetBytes), Allowance: uint64(overhead(cfg.GetMemory())),
			Entries: uint64(st.Entries), MaxEntries: uint64(st.MaxEntries),
			UnderPressure: st.UnderPressure, EvictedByPressure: st.EvictedByPressure,
		},
		Throttle: monitor.Throttle{
			MessagesSent:       hs.Messages,
			ThrottledIntervals: hs.Throttled,
			Gaps:               hs.Gaps,
			StuckSubscribers:   hs.Stuck,
			Subscribers:        uint64(len(hs.Subscriptions)),
			MaxLag:             hs.MaxLag,
		},
	}
	if p := e.proxy.Load(); p != nil {
		sample.Proxy.Open = p.Stats().Open
	}
	if cs := e.clusterStats(); cs != nil {
		sample.Cluster = monitor.Cluster{Enabled: true, Connected: cs.GetConnected(), Applied: cs.GetAppliedId(), Lag: cs.GetLag()}
	}
	rs := e.resources.Stats()
	sample.Cleanup = monitor.Cleanup{
		Live: rs.Live, Succeeded: rs.Succeeded, Failed: rs.Failed, Leaked: rs.Leaked, IdleClosed: rs.IdleClosed,
		Idle: uint64(e.resources.Idle()),
	}
	if e.archive != nil {
		as := e.archive.Stats()
		sample.Logs = monitor.Logs{
			Enabled:            true,
			EntriesWritten:     as.EntriesWritten,
			WriteErrors:        as.WriteErrors,
			EntriesDropped:     as.EntriesDropped,
			Queued:             uint64(as.Queued),
			QueueCapacity:      uint64(cfg.GetLogs().GetQueueSize()),
			QueuedBytes:        uint64(as.QueuedBytes),
			QueueBytesCapacity: uint64(e.archive.Config().QueueBytes),
			Files:              as.Files,
			MaxFiles:           uint64(cfg.GetLogs().GetMaxFiles()),
			DiskBytes:          as.DiskBytes,
			// The archive's writer rotates by count, size and time on its
			// own, idle or not: nothing is ever overdue for the monitor.
			RotationDue: false,
			LastError:   as.LastError,
		}
	}
	return sample, nil
}

// optimizer carries out the monitor's optimisations on the service.
type optimizer struct{ e *Engine }

const mib = 1 << 20

// Evict implements monitor.Actions: it evicts the oldest entries until
// the store's accounted bytes are at the low-water mark of the budget
// (memory.low_water). Only Optimize asks for it (see monitor.Plan). RSS
// plays no part: what it holds beyond the store is not the store's to
// give back.
func (o optimizer) Evict(context.Context) (monitor.Result, error) {
	e := o.e
	st := e.store.Stats()
	low := int64(e.Config().GetMemory().GetLowWater() * float64(st.BudgetBytes))
	excess := st.Bytes - low
	if excess <= 0 || st.Entries == 0 {
		return monitor.Result{Summary: fmt.Sprintf("nothing to evict: the store's %d MiB are within the low-water mark (%d MiB)",
			st.Bytes/mib, low/mib)}, nil
	}
	ev := e.store.EvictBytes(excess)
	after := e.store.Stats()
	return monitor.Result{
		Summary: fmt.Sprintf("evicted %d entries (%d KiB): store %d → %d entries, %d → %d MiB; low-water mark %d MiB",
			ev.Count, ev.Bytes>>10, st.Entries, after.Entries, st.Bytes/mib, after.Bytes/mib, low/mib),
		EntriesEvicted: uint64(ev.Count),
		BytesFreed:     uint64(ev.Bytes),
	}, nil
}

// Rotate implements monitor.Actions.
func (o optimizer) Rotate(ctx context.Context) (monitor.Result, error) {
	a := o.e.archive
	if a == nil {
		return monitor.Result{Summary: "archive off (logs.enabled): nothing to rotate"}, nil
	}
	before := a.Stats()
	if err := a.Rotate(ctx); err != nil {
		return monitor.Result{}, err
	}
	after := a.Stats()
	n := after.RotationsManual - before.RotationsManual
	if n == 0 {
		return monitor.Result{Summary: "nothing to rotate: no entry was archived since the last rotation"}, nil
	}
	return monitor.Result{
		Summary:      fmt.Sprintf("rotated the current file; files %d → %d", before.Files, after.Files),
		FilesRotated: n,
	}, nil
}

// Reclaim implements monitor.Actions: a sweep now.
func (o optimizer) Reclaim(context.Context) (monitor.Result, error) {
	e := o.e
	before := e.resources.Stats().Live
	n := e.resources.Sweep()
	return monitor.Result{
		Summary: fmt.Sprintf("ended %d streams idle past %v; resources %d → %d",
			n, e.Config().GetCleanup().GetResourceTimeout().AsDuration(), before, e.resources.Stats().Live),
		ResourcesReclaimed: uint64(n),
	}, nil
}

// SlowThrottles implements monitor.Actions: adaptive subscribers are
// treated as under high load until the monitor's next tick, so each of
// their messages grows the interval by throttle.adaptive_growth (up to the
// cap), as real load would.
func (o optimizer) SlowThrottles(context.Context) (monitor.Result, error) {
	e := o.e
	cfg := e.Config()
	until := time.Now().Add(cfg.GetMonitor().GetStatsUpdateInterval().AsDuration())
	e.hub.SlowUntil(until)
	if cfg.GetThrottle().GetMode() != pxperfv1.ThrottleMode_THROTTLE_MODE_ADAPTIVE {
		return monitor.Result{Summary: fmt.Sprintf("throttle.mode is %v, not adaptive: intervals stay as they are", cfg.GetThrottle().GetMode())}, nil
	}
	ts := e.throttleStats(e.store.Stats().NewestID)
	var sum time.Duration
	for _, ss := range ts.GetPerSubscriber() {
		sum += ss.GetInterval().AsDuration()
	}
	avg := time.Duration(0)
	if n := len(ts.GetPerSubscriber()); n > 0 {
		avg = sum / time.Duration(n)
	}
	return monitor.Result{Summary: fmt.Sprintf("%d subscribers slowed until %s: average interval %v now, growing ×%.2g a message up to %v",
		len(ts.GetPerSubscriber()), until.Format(time.TimeOnly), avg.Round(time.Millisecond),
		cfg.GetThrottle().GetAdaptiveGrowth(), time.Second/time.Duration(cfg.GetThrottle().GetAdaptiveMinUpdatesPerSecond()))}, nil
}

// ReleaseMemory implements monitor.Actions.
func (o optimizer) ReleaseMemory(context.Context) (monitor.Result, error) {
	e := o.e
	before, err := e.proc.read()
	if err != nil {
		return monitor.Result{}, err
	}
	debug.FreeOSMemory()
	after, err := e.proc.read()
	if err != nil {
		return monitor.Result{}, err
	}
	var freed uint64
	if before.RSS > after.RSS {
		freed = before.RSS - after.RSS
	}
	return monitor.Result{
		Summary: fmt.Sprintf("returned free memory to the OS: RSS %d → %d MiB, free heap %d → %d MiB",
			before.RSS/mib, after.RSS/mib, before.HeapFree/mib, after.HeapFree/mib),
		BytesFreed: freed,
	}, nil
}

// configChanged tells WatchStats streams about a config update.
func (e *Engine) configChanged(paths []string, cfg *pxperfv1.Config) {
	cc := &pxperfv1.ConfigChanged{Config: proto.CloneOf(cfg)}
	cc.ChangedFields = &fieldmaskpb.FieldMask{Paths: slices.Clone(paths)}
	e.monitor.Notify(cc)
}

// addMonitorStats fills the parts of stats that come from the monitor's
// latest sample: the score, the active alerts and the process figures only
// the monitor samples.
func (e *Engine) addMonitorStats(stats *pxperfv1.Stats) {
	snap, ok := e.monitor.Latest()
	if !ok {
		return
	}
	sc := &pxperfv1.Score{Total: snap.Score.Total}
	for _, p := range snap.Score.Parts {
		sc.Parts = append(sc.Parts, &pxperfv1.ScorePart{Name: p.Name, Points: p.Points, MaxPoints: p.Max, Explanation: p.Explanation})
	}
	stats.Score = sc
	for _, ev := range snap.Active {
		stats.ActiveAlerts = append(stats.ActiveAlerts, AlertProto(ev))
	}
	if a := e.proxyAlert(); a != nil {
		stats.ActiveAlerts = append(stats.ActiveAlerts, a)
	}
	if p := stats.GetProcess(); p != nil {
		sp := snap.Sample.Process
		p.CpuPercent, p.OpenFiles, p.Threads, p.GcCpuFraction = sp.CPUPercent, sp.OpenFiles, sp.Threads, sp.GCCPUFraction
	}
}

// AlertProto is the contract's form of a monitor event.
func AlertProto(e monitor.Event) *pxperfv1.Alert {
	a := &pxperfv1.Alert{
		Name:      e.Name,
		Message:   e.Message,
		State:     pxperfv1.AlertState_ALERT_STATE_FIRING,
		StartTime: timestamppb.New(e.Start),
		Value:     e.Value,
		Threshold: e.Threshold,
	}
	if !e.Firing {
		a.State = pxperfv1.AlertState_ALERT_STATE_CLEARED
		a.ClearTime = timestamppb.New(e.Clear)
	}
	return a
}
