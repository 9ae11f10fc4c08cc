package monitor

import (
	"fmt"
	"strings"
	"time"
)

// Thresholds say when alerts fire and when automatic optimisation acts. A
// zero share means its default; the zero Thresholds therefore has the
// default shares, no score alert, and alerts off. [DefaultThresholds]
// returns pxperf's defaults.
type Thresholds struct {
	// Enabled is whether alerts are raised (monitor.alerts_enabled). When
	// false, [Alerts.Evaluate] clears every active alert and raises none;
	// automatic optimisation still acts. Default true.
	Enabled bool
	// MemoryShare: "memory_high" fires when the live memory the process
	// holds besides the store reaches this share of its allowance (see
	// [RestShare]); at 1 the store gives way. 0..1; default 0.8; 0 means
	// the default.
	MemoryShare float64
	// ThrottledShare: "throttled_high" fires when this share of the
	// messages sent in an interval waited for the throttle. 0..1; default
	// 0.7; 0 means the default.
	ThrottledShare float64
	// CleanupFailureShare: "cleanup_failures_high" fires when this share
	// of cleanups failed (in the interval, or since start when the
	// interval had none). 0..1; default 0.2; 0 means the default.
	CleanupFailureShare float64
	// MinScore: "score_low" fires when the score falls below this. 0..100;
	// default 60; 0 means no score alert.
	MinScore float64
	// CPUShare: slowing adaptive throttles is planned when the process
	// uses this share of all cores. Not an alert. 0..1; default 0.8; 0
	// means the default.
	CPUShare float64
	// ReleaseShare: returning memory to the OS is planned when free heap
	// not yet returned reaches this share of the memory budget. Not an
	// alert. 0..1; default 0.25; 0 means the default.
	ReleaseShare float64
}

// Hysteresis: an alert clears only when its value is clearly back, so
// that a value wavering about the threshold does not fire and clear on
// alternate ticks.
const (
	// ClearRatio: a share alert clears when its value falls below this
	// fraction of its threshold (memory 0.8 clears below 0.72).
	ClearRatio = 0.9
	// ScoreClearMargin: "score_low" clears when the score is back to at
	// least MinScore plus this many points (capped at 100).
	ScoreClearMargin = 5
)

// DefaultThresholds returns pxperf's defaults: alerts on, memory 80 %,
// throttled 70 %, cleanup failures 20 %, score below 60, CPU 80 %,
// release at 25 %.
func DefaultThresholds() Thresholds {
	return Thresholds{
		Enabled:             true,
		MemoryShare:         0.8,
		ThrottledShare:      0.7,
		CleanupFailureShare: 0.2,
		MinScore:            60,
		CPUShare:            0.8,
		ReleaseShare:        0.25,
	}
}

// Validate reports the first field out of range, by name.
func (th Thresholds) Validate() error {
	shares := []struct {
		name string
		v    float64
	}{
		{"MemoryShare", th.MemoryShare},
		{"ThrottledShare", th.ThrottledShare},
		{"CleanupFailureShare", th.CleanupFailureShare},
		{"CPUShare", th.CPUShare},
		{"ReleaseShare", th.ReleaseShare},
	}
	for _, s := range shares {
		if !(s.v >= 0 && s.v <= 1) {
			return fmt.Errorf("monitor: Thresholds.%s is %v, want 0..1", s.name, s.v)
		}
	}
	if !(th.MinScore >= 0 && th.MinScore <= 100) {
		return fmt.Errorf("monitor: Thresholds.MinScore is %v, want 0..100", th.MinScore)
	}
	return nil
}

// withDefaults returns th with its zero shares set to their defaults.
func (th Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	for _, f := range []struct{ v, def *float64 }{
		{&th.MemoryShare, &d.MemoryShare},
		{&th.ThrottledShare, &d.ThrottledShare},
		{&th.CleanupFailureShare, &d.CleanupFailureShare},
		{&th.CPUShare, &d.CPUShare},
		{&th.ReleaseShare, &d.ReleaseShare},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return th
}

// Event is an alert starting or clearing.
type Event struct {
	// Name is the condition's stable name: "memory_high",
	// "throttled_high", "cleanup_failures_high", "score_low",
	// "archive_write_errors", "stuck_subscribers", "proxy_open",
	// "cluster_disconnected" or "cluster_behind".
	Name string
	// Firing is true when the condition started, false when it cleared.
	Firing bool
	// Message says what is wrong (or that it is no longer), with the
	// figures.
	Message string
	// Value is the measured value: a share (0..1), the score, or a count
	// in the interval, as the condition's documentation says.
	Value float64
	// Threshold is the threshold crossed: the raise threshold when
	// Firing, the clear threshold when not.
	Threshold float64
	// Start is when the condition started (the sample's time).
	Start time.Time
	// Clear is when it cleared; zero while it holds.
	Clear time.Time
}

// Alerts remembers which conditions hold, so that each start and each end
// is reported once. The zero value is ready to use, with no alert active.
// It is not safe for concurrent use.
type Alerts struct {
	active map[string]Event
}

// reading is one condition judged against one sample.
type reading struct {
	name             string
	value            float64
	raise, clear     bool    // the condition starts; an active one ends
	raiseAt, clearAt float64 // thresholds, for events
	what             string  // the figures
	raiseText        string  // how it fires, for messages
	clearText        string  // how it clears, for messages
}

// conditionNames returns the conditions in the order they are evaluated
// and listed.
func conditionNames() [9]string {
	return [...]string{
		"memory_high",
		"throttled_high",
		"cleanup_failures_high",
		"score_low",
		"archive_write_errors",
		"stuck_subscribers",
		"proxy_open",
		"cluster_disconnected",
		"cluster_behind",
	}
}

// readings judges every condition for cur. th has its defaults applied.
func readings(prev, cur Sample, score Score, th Thresholds) []reading {
	var rs []reading

	u, rest, ok := memoryShare(cur)
	r := shareReading("memory_high", u, th.MemoryShare, memoryText(cur, u, rest))
	if !ok {
		r.raise, r.clear, r.what = false, true, "no memory allowance known"
	}
	rs = append(rs, r)

	s, msgs := throttledShare(prev, cur)
	rs = append(rs, shareReading("throttled_high", s, th.ThrottledShare,
		fmt.Sprintf("%s of %d messages waited for the throttle in the interval", percent(s), msgs)))

	f, failed, total, basis := failureShare(prev, cur)
	rs = append(rs, shareReading("cleanup_failures_high", f, th.CleanupFailureShare,
		fmt.Sprintf("%d of %d cleanups (%s) failed %s", failed, total, percent(f), basis)))

	clearAt := min(th.MinScore+ScoreClearMargin, 100)
	rs = append(rs, reading{
		name: "score_low", value: score.Total,
		raise: score.Total < th.MinScore, clear: th.MinScore == 0 || score.Total >= clearAt,
		raiseAt: th.MinScore, clearAt: clearAt,
		what:      fmt.Sprintf("score %s of 100", num(score.Total)),
		raiseText: fmt.Sprintf("below %s", num(th.MinScore)),
		clearText: fmt.Sprintf("at least %s", num(clearAt)),
	})

	bad := delta(prev.Logs.WriteErrors, cur.Logs.WriteErrors) + delta(prev.Logs.EntriesDropped, cur.Logs.EntriesDropped)
	what := fmt.Sprintf("%d archive write errors and %d entries dropped in the interval",
		delta(prev.Logs.WriteErrors, cur.Logs.WriteErrors), delta(prev.Logs.EntriesDropped, cur.Logs.EntriesDropped))
	if cur.Logs.LastError != "" {
		what += fmt.Sprintf(" (last error: %s)", cur.Logs.LastError)
	}
	if !cur.Logs.Enabled {
		bad, what = 0, "archive off"
	}
	rs = append(rs, countReading("archive_write_errors", bad, what))

	stuck := delta(prev.Throttle.StuckSubscribers, cur.Throttle.StuckSubscribers)
	rs = append(rs, countReading("stuck_subscribers", stuck,
		fmt.Sprintf("%d subscribers ended as stuck in the interval", stuck)))

	open := len(cur.Proxy.Open) > 0
	rs = append(rs, reading{
		name: "proxy_open", value: float64(len(cur.Proxy.Open)),
		raise: open, clear: !open,
		what: fmt.Sprintf("the recording proxy listens beyond loopback without client authentication at %s: anyone who can reach it may use it",
			strings.Join(cur.Proxy.Open, ", ")),
		raiseText: "such a listener",
		clearText: "none left",
	})
	if !open {
		rs[len(rs)-1].what = "the recording proxy listens on loopback only, or authenticates its clients"
	}
	return append(rs, clusterReadings(prev.Cluster, cur.Cluster)...)
}

// clusterReadings judges cluster mode: cluster_disconnected while the node
// cannot publish; cluster_behind while it lags the stream by
// ClusterLagAlert entries or more, or lags and applied nothing since the
// previous sample. Neither fires in embedded mode.
func clusterReadings(prev, cur Cluster) []reading {
	down := cur.Enabled && !cur.Connected
	disconnected := reading{
		name: "cluster_disconnected", value: boolValue(down),
		raise: down, clear: !down,
		what:      "connected to NATS, and the cluster's stream answers",
		raiseText: "no connection to NATS or no answer from the stream",
		clearText: "connected again",
	}
	if down {
		disconnected.what = "this node cannot reach NATS or the cluster's stream: publishing fails with UNAVAILABLE and health is NOT_SERVING"
	}
	stalled := cur.Lag > 0 && prev.Enabled && cur.Applied == prev.Applied
	behind := cur.Enabled && (cur.Lag >= ClusterLagAlert || stalled)
	return []reading{disconnected, {
		name: "cluster_behind", value: float64(cur.Lag),
		raise: behind, clear: !behind,
		raiseAt: ClusterLagAlert, clearAt: ClusterLagAlert,
		what:      fmt.Sprintf("this node lags the cluster's stream by %d entries, at id %d (applied %d since the previous sample)", cur.Lag, cur.Applied, delta(prev.Applied, cur.Applied)),
		raiseText: fmt.Sprintf("a lag of %d entries, or a lag and no progress", ClusterLagAlert),
		clearText: "keeping up",
	}}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// shareReading judges a share against its threshold with [ClearRatio].
func shareReading(name string, v, at float64, what string) reading {
	clearAt := at * ClearRatio
	return reading{
		name: name, value: v,
		raise: v >= at, clear: v < clearAt,
		raiseAt: at, clearAt: clearAt,
		what:      what,
		raiseText: "at least " + percent(at),
		clearText: "below " + percent(clearAt),
	}
}

// countReading fires while a count grew in the interval and clears after
// an interval with none.
func countReading(name string, n uint64, what string) reading {
	return reading{
		name: name, value: float64(n),
		raise: n > 0, clear: n == 0,
		what:      what,
		raiseText: "more than 0",
		clearText: "none",
	}
}

// Evaluate judges cur (prev is the sample before it, or the zero Sample)
// and returns only the transitions: a firing event for each condition that
// starts, a cleared event for each that ends, in the order of
// [Alerts.Active]. A condition that keeps holding, or a value between a
// condition's clear and raise thresholds, returns nothing. With th.Enabled
// false it clears every active alert and raises none.
func (a *Alerts) Evaluate(prev, cur Sample, score Score, th Thresholds) []Event {
	th = th.withDefaults()
	if a.active == nil {
		a.active = make(map[string]Event)
	}
	var events []Event
	for _, r := range readings(prev, cur, score, th) {
		e, active := a.active[r.name]
		switch {
		case active && (r.clear || !th.Enabled):
			msg := r.what + ": cleared (" + r.clearText + ")"
			if !th.Enabled {
				msg = r.what + ": cleared (alerts turned off)"
			}
			e.Firing, e.Message, e.Value, e.Threshold, e.Clear = false, msg, r.value, r.clearAt, cur.Time
			delete(a.active, r.name)
			events = append(events, e)
		case active:
			// Still holds: keep the figures current for Active, say nothing.
			e.Message, e.Value = r.what+" ("+r.raiseText+" raises this alert)", r.value
			a.active[r.name] = e
		case r.raise && th.Enabled:
			e = Event{
				Name: r.name, Firing: true,
				Message: r.what + " (" + r.raiseText + " raises this alert)",
				Value:   r.value, Threshold: r.raiseAt, Start: cur.Time,
			}
			a.active[r.name] = e
			events = append(events, e)
		}
	}
	return events
}

// Active returns the alerts whose condition holds, in a fixed order, with
// the figures of the latest evaluation. The slice is the caller's.
func (a *Alerts) Active() []Event {
	var out []Event
	for _, n := range conditionNames() {
		if e, ok := a.active[n]; ok {
			out = append(out, e)
		}
	}
	return out
}
