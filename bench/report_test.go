package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// row is one figure of the suite beside its baseline. Every goal of issue
// 10 is a bound on ratio = pxperf / baseline: a floor (ratio ≥ goal) for
// throughput, a ceiling (AtMost: ratio ≤ goal) for memory, latency and
// message rate. Where there is no baseline server (window, flood,
// throttled), the baseline is the bound itself: the goal's latency, the
// memory budget, the 30 msgs/s limit. A row without a goal (Goal 0) sets
// a figure beside a baseline for information: it counts as met, and the
// table shows "-" for its goal and verdict.
type row struct {
	Scenario     string  `json:"scenario"`      // BenchmarkSuite sub-benchmark: ingest, e2e, fanout, ...
	Name         string  `json:"name"`          // the row's name in the table
	Figure       string  `json:"figure"`        // what pxperf and baseline measure, with unit
	Unit         string  `json:"unit"`          // unit of pxperf and baseline
	Pxperf       float64 `json:"pxperf"`        // pxperf's figure
	PxperfText   string  `json:"pxperf_text"`   // as printed in the table
	Baseline     float64 `json:"baseline"`      // the baseline's figure
	BaselineName string  `json:"baseline_name"` // what the baseline is
	BaselineText string  `json:"baseline_text"` // as printed in the table
	Ratio        float64 `json:"ratio"`         // Pxperf / Baseline
	Goal         float64 `json:"goal"`          // bound on Ratio; 0: none
	AtMost       bool    `json:"at_most"`       // Goal is a ceiling, not a floor
	GoalSource   string  `json:"goal_source,omitempty"`
	GoalNote     string  `json:"goal_note,omitempty"` // printed after the goal: what is judged
	Met          bool    `json:"met"`
	Shortfall    string  `json:"shortfall,omitempty"` // by how much a missed goal is missed
	// Extra holds the figures behind the row: percentiles, per-round
	// ratios, counts.
	Extra map[string]float64 `json:"extra,omitempty"`
	Note  string             `json:"note,omitempty"`
	Error string             `json:"error,omitempty"` // the scenario failed: no figure
}

// judge sets Ratio, Met and Shortfall from the figures and the goal.
func (r *row) judge() {
	if r.Error != "" || r.Baseline == 0 {
		return
	}
	r.Ratio = r.Pxperf / r.Baseline
	if r.Goal == 0 {
		r.Met = true
		return
	}
	if r.AtMost {
		r.Met = r.Ratio <= r.Goal
		if !r.Met {
			r.Shortfall = fmt.Sprintf("%.2f > %.2f: %.0f %% over", r.Ratio, r.Goal, 100*(r.Ratio/r.Goal-1))
		}
		return
	}
	r.Met = r.Ratio >= r.Goal
	if !r.Met {
		r.Shortfall = fmt.Sprintf("%.2f < %.2f: %.0f %% short", r.Ratio, r.Goal, 100*(1-r.Ratio/r.Goal))
	}
}

// goalText is the goal column: the bound on the ratio.
func (r *row) goalText() string {
	var s string
	switch {
	case r.Goal == 0:
		return "-"
	case r.AtMost:
		s = "≤ " + trimFloat(r.Goal)
	default:
		s = "≥ " + trimFloat(r.Goal)
	}
	if r.GoalNote != "" {
		s += " (" + r.GoalNote + ")"
	}
	return s
}

func (r *row) metText() string {
	switch {
	case r.Error != "":
		return "ERROR"
	case r.Goal == 0:
		return "-" // a figure beside its baseline, with no goal on it
	case r.Met:
		return "yes"
	}
	return "NO (" + r.Shortfall + ")"
}

// report is the suite's result: what ran, where, and the rows.
type report struct {
	Date     string   `json:"date"` // UTC, RFC 3339
	Machine  machine  `json:"machine"`
	Command  string   `json:"command"`
	Seconds  float64  `json:"seconds_per_side_per_round"`
	Rounds   int      `json:"rounds"`
	Env      []string `json:"env,omitempty"` // PXPERF_* variables set
	LoadAvg  []string `json:"loadavg,omitempty"`
	Rows     []row    `json:"rows"`
	Finished string   `json:"finished"`
}

// machine describes where the figures come from.
type machine struct {
	CPUs     int     `json:"cpus"`
	CPUModel string  `json:"cpu_model"`
	MemGiB   float64 `json:"mem_gib"`
	Go       string  `json:"go"`
	OS       string  `json:"os"`
}

func newReport(opts suiteOptions) *report {
	rep := &report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: thisMachine(),
		Command: suiteCommand(opts),
		Seconds: opts.seconds.Seconds(),
		Rounds:  opts.rounds,
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PXPERF_") {
			rep.Env = append(rep.Env, kv)
		}
	}
	slices.Sort(rep.Env)
	rep.loadAvg("start")
	return rep
}

// suiteCommand is the command that runs the suite as it was run, for the
// report.
func suiteCommand(opts suiteOptions) string {
	cmd := "go test -run '^$' -bench 'Suite' -benchtime 1x -timeout 60m ./bench -args"
	cmd += fmt.Sprintf(" -suite.seconds=%s -suite.rounds=%d", trimFloat(opts.seconds.Seconds()), opts.rounds)
	if opts.json != "" {
		cmd += " -suite.json=" + opts.json
	}
	if opts.profiles != "" {
		cmd += " -suite.profiles=" + opts.profiles
	}
	return cmd
}

// loadAvg records /proc/loadavg, a hint of what else the machine ran.
func (rep *report) loadAvg(when string) {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAvg = append(rep.LoadAvg, when+": "+strings.TrimSpace(string(b)))
	}
}

func thisMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64); err == nil {
		m.MemGiB = math.Round(kb/(1<<20)*10) / 10
	}
	return m
}

// procField returns the value of the first "name: value" line of a /proc
// file, or "" when there is none.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// writeText prints the report as a table: scenario | pxperf | baseline |
// ratio | goal | met?.
func (rep *report) writeText(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "pxperf benchmark suite, %s; %d CPUs (%s), %.1f GiB, %s %s\n", rep.Date, m.CPUs, m.CPUModel, m.MemGiB, m.Go, m.OS)
	fmt.Fprintf(w, "%s\n", rep.Command)
	if len(rep.Env) > 0 {
		fmt.Fprintf(w, "env: %s\n", strings.Join(rep.Env, " "))
	}
	for _, l := range rep.LoadAvg {
		fmt.Fprintf(w, "loadavg %s\n", l)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tpxperf\tbaseline\tratio\tgoal\tmet?")
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\tERROR: %s\n", r.Name, r.goalText(), firstLine(r.Error))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\n", r.Name, r.PxperfText, r.BaselineText, r.Ratio, r.goalText(), r.metText())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i := range rep.Rows {
		if n := rep.Rows[i].Note; n != "" {
			fmt.Fprintf(w, "  %s: %s\n", rep.Rows[i].Name, n)
		}
	}
	_, err := fmt.Fprintf(w, "finished %s\n", rep.Finished)
	return err
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// trimFloat formats x with at most three decimals and no trailing zeros.
func trimFloat(x float64) string {
	return strconv.FormatFloat(math.Round(x*1000)/1000, 'f', -1, 64)
}

// rateText formats a rate in entries per second.
func rateText(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2f M/s", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1f k/s", x/1e3)
	}
	return fmt.Sprintf("%.0f /s", x)
}

// percentile returns the p-th quantile (0 < p ≤ 1) of sorted by the
// nearest-rank method: the smallest value with at least p of them at or
// below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

func TestRowJudge(t *testing.T) {
	for _, tc := range []struct {
		name      string
		r         row
		met       bool
		shortfall string
	}{
		{"floor met", row{Pxperf: 7, Baseline: 10, Goal: 0.6}, true, ""},
		{"floor missed", row{Pxperf: 3, Baseline: 10, Goal: 0.6}, false, "0.30 < 0.60: 50 % short"},
		{"ceiling met", row{Pxperf: 300, Baseline: 256, Goal: 1.3, AtMost: true}, true, ""},
		{"ceiling missed", row{Pxperf: 2, Baseline: 1, Goal: 1, AtMost: true}, false, "2.00 > 1.00: 100 % over"},
		{"no goal", row{Pxperf: 2, Baseline: 1}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.judge()
			if tc.r.Met != tc.met || tc.r.Shortfall != tc.shortfall {
				t.Errorf("judge: met %v, shortfall %q; want %v, %q", tc.r.Met, tc.r.Shortfall, tc.met, tc.shortfall)
			}
			if got := tc.r.metText(); (tc.r.Goal == 0) != (got == "-") {
				t.Errorf("metText = %q for goal %v; want \"-\" exactly when there is no goal", got, tc.r.Goal)
			}
		})
	}
}

// TestReport checks that the text table has a line per row with the
// columns in order, and that the JSON holds the same rows.
func TestReport(t *testing.T) {
	rep := newReport(suiteOptions{seconds: 2 * time.Second, rounds: 3})
	rows := []row{
		{Scenario: "ingest", Name: "ingest", Pxperf: 2e6, PxperfText: rateText(2e6), Baseline: 3e6, BaselineText: "bare " + rateText(3e6), Goal: 0.6},
		{Scenario: "flood", Name: "flood peak RSS", Pxperf: 400, PxperfText: "400 MiB", Baseline: 256, BaselineText: "budget 256 MiB", Goal: 1.3, AtMost: true, Note: "from 1 GiB"},
		{Scenario: "window", Name: "window", Error: "it broke\nbadly", Goal: 1, AtMost: true},
	}
	for _, r := range rows {
		r.judge()
		rep.Rows = append(rep.Rows, r)
	}
	var buf bytes.Buffer
	if err := rep.writeText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"ingest          2.00 M/s  bare 3.00 M/s   0.67   ≥ 0.6  yes",
		"NO (1.56 > 1.30: 20 % over)",
		"ERROR: it broke\n",
		"flood peak RSS: from 1 GiB",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	path := t.TempDir() + "/bench.json"
	if err := rep.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != 3 || got.Rows[1].Ratio != 400.0/256 || got.Rows[1].Met || got.Rows[2].Error == "" {
		t.Errorf("JSON rows = %+v", got.Rows)
	}
}
