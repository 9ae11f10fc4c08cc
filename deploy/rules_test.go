package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/pxperf/pxperf/perf/monitor"
	"github.com/pxperf/pxperf/proxy"
)

const rulesFile = "prometheus/pxperf-alerts.yml"

// loadRules parses and validates the rules file as Prometheus does when it
// loads it, and returns its alert rules.
func loadRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("%s: recording rule %q: the file is for alerts", rulesFile, r.Record)
				continue
			}
			out = append(out, r)
		}
	}
	return out
}

// monitorAlertNames returns the names of the alerts pxperf raises: every
// condition of the monitor, found by evaluating a sample where each holds,
// and the recording proxy's own alert.
func monitorAlertNames(t *testing.T) []string {
	t.Helper()
	bad := monitor.Sample{
		Time:     time.Unix(60, 0),
		Process:  monitor.Process{HeapLive: 100 << 20},
		Memory:   monitor.Memory{Allowance: 1 << 20},
		Throttle: monitor.Throttle{MessagesSent: 10, ThrottledIntervals: 10, StuckSubscribers: 1},
		Cleanup:  monitor.Cleanup{Failed: 10},
		Logs:     monitor.Logs{Enabled: true, WriteErrors: 1},
		Proxy:    monitor.Proxy{Open: []string{"0.0.0.0:8080"}},
		Cluster:  monitor.Cluster{Enabled: true, Lag: monitor.ClusterLagAlert},
	}
	var a monitor.Alerts
	events := a.Evaluate(monitor.Sample{}, bad, monitor.ScoreOf(monitor.Sample{}, bad), monitor.DefaultThresholds())
	names := []string{proxy.AlertEntriesDropped}
	for _, e := range events {
		names = append(names, e.Name)
	}
	if len(names) < 8 {
		t.Fatalf("the sample meant to raise every monitor alert raised only %q", names)
	}
	slices.Sort(names)
	return names
}

// There is one rule for each alert pxperf raises, named by its
// monitor_alert label, and every rule says what it is about.
func TestRulesMirrorMonitor(t *testing.T) {
	want := monitorAlertNames(t)
	var got []string
	for _, r := range loadRules(t) {
		name := r.Labels["monitor_alert"]
		if name == "" {
			t.Errorf("rule %s has no monitor_alert label", r.Alert)
		}
		got = append(got, name)
		if r.Labels["severity"] == "" {
			t.Errorf("rule %s has no severity label", r.Alert)
		}
		for _, a := range []string{"summary", "description"} {
			if r.Annotations[a] == "" {
				t.Errorf("rule %s has no %s annotation", r.Alert, a)
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("rules' monitor_alert labels = %q, want one for each of pxperf's alerts %q", got, want)
	}
}

// evalStep and evalSpan are how often and how long the rules are evaluated
// over the test's series, which have a sample a minute from 0 to evalSpan.
const (
	evalStep = time.Minute
	evalSpan = 40 * time.Minute
)

// series is one series for promqltest's load command: labels are added.
type series struct {
	metric string // with its own labels, if any: `pxperf_score_part{part="memory"}`
	values string // promqltest's notation, from 0 to evalSpan a minute apart
}

// load is the promqltest load command for ss, each with the labels of one
// scraped pxperf.
func load(ss []series) string {
	var b strings.Builder
	fmt.Fprintf(&b, "load %s\n", evalStep)
	for _, s := range ss {
		target := `job="pxperf", instance="pxperf:9090"`
		m := s.metric + "{" + target + "}"
		if i := strings.IndexByte(s.metric, '{'); i >= 0 {
			m = s.metric[:i] + "{" + target + ", " + s.metric[i+1:]
		}
		fmt.Fprintf(&b, "  %s %s\n", m, s.values)
	}
	return b.String()
}

// steady is a constant value for the whole span; growing and growingFrom
// count up from 0 or start by step a minute; stepUp holds before and after a rise halfway.
func steady(v float64) string     { return fmt.Sprintf("%gx%d", v, int(evalSpan/evalStep)) }
func growing(step float64) string { return growingFrom(0, step) }
func growingFrom(start, step float64) string {
	return fmt.Sprintf("%g+%gx%d", start, step, int(evalSpan/evalStep))
}
func stepUp(before, after float64) string {
	half := int(evalSpan/evalStep) / 2
	return fmt.Sprintf("%gx%d %gx%d", before, half, after, half-1)
}

// Each rule fires on series where the monitor's alert would, with the
// monitor's default thresholds, and stays quiet on series where it would
// not.
func TestAlertRules(t *testing.T) {
	th := monitor.DefaultThresholds()
	const mib = 1 << 20
	// memory builds the series of a memory share: the store holds 50 MiB,
	// the rest share of a 100 MiB allowance.
	memory := func(share float64) []series {
		return []series{
			{"pxperf_store_bytes", steady(50 * mib)},
			{"pxperf_memory_overhead_bytes", steady(100 * mib)},
			{"pxperf_memory_live_bytes", steady(50*mib + share*100*mib)},
		}
	}
	// messages and cleanups count up a minute: of 100 messages, pct waited
	// for the throttle; of 100 cleanups, pct failed.
	messages := func(pct float64) []series {
		return []series{
			{"pxperf_messages_sent_total", growing(100)},
			{"pxperf_throttled_intervals_total", growing(pct)},
		}
	}
	cleanups := func(pct float64) []series {
		return []series{
			{"pxperf_cleanups_failed_total", growing(pct)},
			{"pxperf_cleanups_succeeded_total", growing(100 - pct)},
		}
	}
	// cleanupsBefore are cleanups that all happened before the series
	// start: none in any window, so the share since start counts.
	cleanupsBefore := func(pct float64) []series {
		return []series{
			{"pxperf_cleanups_failed_total", steady(pct)},
			{"pxperf_cleanups_succeeded_total", steady(100 - pct)},
		}
	}
	score := func(total float64) []series {
		return []series{
			{"pxperf_score", steady(total)},
			{`pxperf_score_part{part="memory"}`, steady(30)},
		}
	}
	tests := []struct {
		name   string
		alert  string // the monitor_alert label of the rule
		series []series
		fire   bool
	}{
		{"memory share at the threshold", "memory_high", memory(th.MemoryShare), true},
		{"memory share over", "memory_high", memory(1.2), true},
		{"memory share under", "memory_high", memory(th.MemoryShare - 0.01), false},
		{"store holds all live memory", "memory_high", memory(-0.5), false},

		{"throttled share over", "throttled_high", messages(th.ThrottledShare*100 + 1), true},
		{"throttled share under", "throttled_high", messages(th.ThrottledShare*100 - 1), false},
		{"no messages", "throttled_high", []series{
			{"pxperf_messages_sent_total", steady(0)}, {"pxperf_throttled_intervals_total", steady(0)},
		}, false},

		{"cleanup failures over", "cleanup_failures_high", cleanups(th.CleanupFailureShare*100 + 1), true},
		{"cleanup failures under", "cleanup_failures_high", cleanups(th.CleanupFailureShare*100 - 1), false},
		{"no cleanups in the window, failures since start over", "cleanup_failures_high", cleanupsBefore(th.CleanupFailureShare*100 + 1), true},
		{"no cleanups in the window, failures since start under", "cleanup_failures_high", cleanupsBefore(th.CleanupFailureShare*100 - 1), false},
		{"failures since start over, in the window under", "cleanup_failures_high", []series{
			{"pxperf_cleanups_failed_total", growingFrom(1000, 1)}, {"pxperf_cleanups_succeeded_total", growing(99)},
		}, false},
		{"never a cleanup", "cleanup_failures_high", []series{
			{"pxperf_cleanups_failed_total", steady(0)}, {"pxperf_cleanups_succeeded_total", steady(0)},
		}, false},

		{"score below the minimum", "score_low", score(th.MinScore - 1), true},
		{"score at the minimum", "score_low", score(th.MinScore), false},
		{"no score before the monitor's first tick", "score_low", []series{{"pxperf_score", steady(0)}}, false},

		{"archive write errors", "archive_write_errors", []series{
			{"pxperf_archive_write_errors_total", stepUp(0, 1)}, {"pxperf_archive_entries_dropped_total", steady(0)},
		}, true},
		{"archive entries dropped", "archive_write_errors", []series{
			{"pxperf_archive_write_errors_total", steady(2)}, {"pxperf_archive_entries_dropped_total", stepUp(5, 9)},
		}, true},
		{"archive errors long ago only", "archive_write_errors", []series{
			{"pxperf_archive_write_errors_total", steady(2)}, {"pxperf_archive_entries_dropped_total", steady(5)},
		}, false},

		{"a subscriber ended as stuck", "stuck_subscribers", []series{{"pxperf_stuck_subscribers_total", stepUp(0, 1)}}, true},
		{"stuck subscribers long ago only", "stuck_subscribers", []series{{"pxperf_stuck_subscribers_total", steady(3)}}, false},

		{"proxy dropping entries", "proxy_entries_dropped", []series{{"pxperf_proxy_entries_dropped_total", stepUp(0, 100)}}, true},
		{"proxy dropped long ago only", "proxy_entries_dropped", []series{{"pxperf_proxy_entries_dropped_total", steady(100)}}, false},

		{"proxy open", "proxy_open", []series{{"pxperf_proxy_open_listeners", steady(1)}}, true},
		{"proxy closed", "proxy_open", []series{{"pxperf_proxy_open_listeners", steady(0)}}, false},

		{"node cannot publish", "cluster_disconnected", []series{{"pxperf_cluster_connected", stepUp(1, 0)}}, true},
		{"node connected", "cluster_disconnected", []series{{"pxperf_cluster_connected", steady(1)}}, false},

		{"lag at the threshold", "cluster_behind", []series{
			{"pxperf_cluster_lag", steady(monitor.ClusterLagAlert)}, {"pxperf_cluster_applied_id", growing(100000)},
		}, true},
		{"lag and no progress", "cluster_behind", []series{
			{"pxperf_cluster_lag", steady(5)}, {"pxperf_cluster_applied_id", steady(1000)},
		}, true},
		{"small lag, progressing", "cluster_behind", []series{
			{"pxperf_cluster_lag", steady(50)}, {"pxperf_cluster_applied_id", growing(1000)},
		}, false},
		{"no lag, no traffic", "cluster_behind", []series{
			{"pxperf_cluster_lag", steady(0)}, {"pxperf_cluster_applied_id", steady(1000)},
		}, false},
	}
	byAlert := make(map[string]rulefmt.Rule)
	for _, r := range loadRules(t) {
		byAlert[r.Labels["monitor_alert"]] = r
	}
	tested := make(map[string]map[bool]bool)
	for _, tt := range tests {
		t.Run(tt.alert+"/"+tt.name, func(t *testing.T) {
			r, ok := byAlert[tt.alert]
			if !ok {
				t.Fatalf("no rule has monitor_alert=%q", tt.alert)
			}
			fired, err := evalRule(t, r, load(tt.series))
			if err != nil {
				t.Fatal(err)
			}
			if fired != tt.fire {
				t.Errorf("rule %s fired = %v, want %v; series:\n%s", r.Alert, fired, tt.fire, load(tt.series))
			}
		})
		if tested[tt.alert] == nil {
			tested[tt.alert] = make(map[bool]bool)
		}
		tested[tt.alert][tt.fire] = true
	}
	for alert := range byAlert {
		if !tested[alert][true] || !tested[alert][false] {
			t.Errorf("rule for %s is not tested both firing and quiet", alert)
		}
	}
}

// evalRule loads the series into an in-memory storage and evaluates r
// over them every evalStep from 0 to evalSpan with Prometheus's rule
// engine, as a rule group would. It reports whether the alert fired (went
// beyond pending) at any step.
func evalRule(t *testing.T, r rulefmt.Rule, series string) (bool, error) {
	storage := promqltest.LoadedStorage(t, series)
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
	if err != nil {
		return false, fmt.Errorf("rule %s: %w", r.Alert, err)
	}
	rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
		labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	query := rules.EngineQueryFunc(engine, storage)
	ctx := context.Background()
	fired := false
	for ts := time.Unix(0, 0); !ts.After(time.Unix(0, 0).Add(evalSpan)); ts = ts.Add(evalStep) {
		if _, err := rule.Eval(ctx, 0, ts, query, nil, 0); err != nil {
			return false, fmt.Errorf("rule %s at %v: %w", r.Alert, ts.Sub(time.Unix(0, 0)), err)
		}
		for _, a := range rule.ActiveAlerts() {
			if a.State == rules.StateFiring {
				fired = true
				if got := a.Labels.Get("monitor_alert"); got != r.Labels["monitor_alert"] {
					t.Errorf("alert %s has monitor_alert %q, want %q", r.Alert, got, r.Labels["monitor_alert"])
				}
			}
		}
	}
	return fired, nil
}
