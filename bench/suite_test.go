package bench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// The suite's options, given after -args (see the package doc).
var (
	suiteSecondsFlag  = flag.Float64("suite.seconds", 2, "seconds each server runs each timed scenario, per round")
	suiteRoundsFlag   = flag.Int("suite.rounds", 5, "rounds of the timed scenarios; the servers take turns in each")
	suiteJSONFlag     = flag.String("suite.json", "", "write the results as JSON to this file")
	suiteProfilesFlag = flag.String("suite.profiles", "", "write a CPU profile of each scenario into this directory")
)

// suiteOptions is what the flags say.
type suiteOptions struct {
	seconds  time.Duration // each side of a timed scenario, per round
	rounds   int
	json     string // file for the JSON report; "" for none
	profiles string // directory for CPU profiles; "" for none
}

func suiteFlags(tb testing.TB) suiteOptions {
	opts := suiteOptions{
		seconds:  time.Duration(*suiteSecondsFlag * float64(time.Second)),
		rounds:   *suiteRoundsFlag,
		json:     *suiteJSONFlag,
		profiles: *suiteProfilesFlag,
	}
	if opts.seconds <= 0 || opts.rounds < 1 {
		tb.Fatalf("-suite.seconds=%v -suite.rounds=%d: want a positive duration and at least one round", *suiteSecondsFlag, opts.rounds)
	}
	if opts.profiles != "" {
		if err := os.MkdirAll(opts.profiles, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return opts
}

// suiteScenario is one sub-benchmark of BenchmarkSuite.
type suiteScenario struct {
	name string
	// run returns the scenario's rows, or why it has none. A failure
	// inside a rig ends the sub-benchmark with b.Fatal instead.
	run func(b *testing.B, opts suiteOptions) ([]row, error)
}

// suiteScenarios are run in this order: the quick in-process ones first,
// the flood, which takes longest, last.
var suiteScenarios = []suiteScenario{
	{"ingest", runIngest},
	{"e2e", runE2E},
	{"relay", runRelay},
	{"fanout", runFanout},
	{"freshness", runFreshness},
	{"liveview", runLiveView},
	{"idle", runIdle},
	{"window", runWindow},
	{"throttled", runThrottled},
	{"flood", runFlood},
	{"cluster", runCluster},
}

// BenchmarkSuite runs issue 10's scenarios, each against its baseline in
// the same run, and prints one table of pxperf | baseline | ratio | goal
// (and writes it as JSON with -suite.json). Each scenario is a
// sub-benchmark, so -bench 'Suite/(ingest|fanout)' picks some. See the
// package doc for the command and what each scenario measures.
func BenchmarkSuite(b *testing.B) {
	opts := suiteFlags(b)
	rep := newReport(opts)
	for _, sc := range suiteScenarios {
		var rows []row
		ran := false
		ok := b.Run(sc.name, func(b *testing.B) {
			// With -benchtime Nx the testing package calls this N+1
			// times; the scenario runs for a fixed time, once.
			if ran {
				return
			}
			ran = true
			stop := startProfile(b, opts, sc.name)
			defer stop()
			var err error
			if rows, err = sc.run(b, opts); err != nil {
				rows = []row{{Scenario: sc.name, Name: sc.name, Error: err.Error()}}
				b.Error(err)
				return
			}
			for _, r := range rows {
				if r.Error == "" && r.Baseline != 0 {
					b.ReportMetric(r.Ratio, metricName(r.Name))
				}
			}
		})
		if !ran {
			continue // not selected by -bench
		}
		if !ok && len(rows) == 0 {
			rows = []row{{Scenario: sc.name, Name: sc.name, Error: "the scenario failed: see the log above"}}
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	if len(rep.Rows) == 0 {
		return
	}
	rep.loadAvg("end")
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	fmt.Println()
	if err := rep.writeText(os.Stdout); err != nil {
		b.Error(err)
	}
	if opts.json != "" {
		if err := rep.writeJSON(opts.json); err != nil {
			b.Errorf("writing %s: %v", opts.json, err)
		}
	}
}

// metricName turns a row name into a benchmark metric unit: lower-case
// letters, digits and underscores; "_ratio" at the end, as the metric is
// the row's ratio.
func metricName(name string) string {
	var sb strings.Builder
	sep := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if sep && sb.Len() > 0 {
				sb.WriteByte('_')
			}
			sb.WriteRune(c)
			sep = false
			continue
		}
		sep = true
	}
	return sb.String() + "_ratio"
}

// startProfile starts a CPU profile of the scenario when -suite.profiles
// is set and returns what stops it. Server goroutines carry the labels
// side=server and kind=bare|pxperf|nats (see serverLabels).
func startProfile(b *testing.B, opts suiteOptions, name string) (stop func()) {
	if opts.profiles == "" || name == "throttled" || name == "flood" {
		return func() {} // those two profile the server binary, or nothing
	}
	f, err := os.Create(filepath.Join(opts.profiles, name+".cpu"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("CPU profile (not with -cpuprofile): %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// runner is a server under test with its clients: a [rig] or a
// [natsRig].
type runner interface {
	iterate(n int) error
	check() (string, error)
	messages() uint64
	close() error
}

func startRunner(b *testing.B, k kind, sc scenario) runner {
	if k == natsKind {
		return newNATSRig(b, sc)
	}
	return newRig(b, k, sc)
}

// sideResult is what one kind of server did over all rounds.
type sideResult struct {
	entries  float64 // delivered (summed over subscribers), or acknowledged
	seconds  float64
	messages uint64 // batch messages received by the subscribers
	rates    []float64
	archive  archiveBytes // summed over rounds; pxperf with its archive on only
}

// archiveBytes is what a pxperf server's archive had done when a round
// ended.
type archiveBytes struct {
	written uint64 // lines written, before compression
	backlog uint64 // rotated files still waiting for compression
}

func (s sideResult) rate() float64 { return s.entries / s.seconds }

// timedPair runs sc against each kind in kinds for opts.rounds rounds. In
// every round each kind gets a fresh server and clients and runs for
// opts.seconds of whole iterations; the order rotates from round to round
// so that no kind always runs first. The rates it returns are pooled:
// all entries over all seconds, per kind.
func timedPair(b *testing.B, sc scenario, kinds []kind, opts suiteOptions) map[kind]*sideResult {
	res := make(map[kind]*sideResult)
	for _, k := range kinds {
		res[k] = &sideResult{}
	}
	for round := range opts.rounds {
		// One log line a round: the testing package keeps only the first
		// ten lines of a benchmark's log.
		var line []string
		for i := range kinds {
			k := kinds[(round+i)%len(kinds)]
			entries, seconds, msgs, ab := runTimed(b, k, sc, opts.seconds)
			s := res[k]
			s.entries += entries
			s.seconds += seconds
			s.messages += msgs
			s.rates = append(s.rates, entries/seconds)
			s.archive.written += ab.written
			s.archive.backlog += ab.backlog
			line = append(line, fmt.Sprintf("%s %s (%.0f entries in %.2fs)", k, rateText(entries/seconds), entries, seconds))
		}
		b.Logf("round %d: %s", round+1, strings.Join(line, "; "))
	}
	return res
}

// runTimed runs whole iterations of sc against a fresh server of kind k
// until d has passed, and returns the entries delivered (or acknowledged),
// the seconds they took, the batch messages received, and, for pxperf with
// its archive on, what the archive had done by the end.
func runTimed(b *testing.B, k kind, sc scenario, d time.Duration) (entries, seconds float64, messages uint64, ab archiveBytes) {
	r := startRunner(b, k, sc)
	defer func() {
		if err := r.close(); err != nil {
			b.Errorf("stopping %s: %v", k, err)
		}
		// Drop this server's heap before the next one runs, so that
		// neither pays for the other's garbage collection.
		runtime.GC()
	}()
	warm := r.messages()
	iterations := 0
	start := time.Now()
	for iterations == 0 || time.Since(start) < d {
		if err := r.iterate(sc.perIteration); err != nil {
			b.Fatalf("%s, iteration %d: %v", k, iterations+1, err)
		}
		iterations++
	}
	elapsed := time.Since(start).Seconds()
	if counts, err := r.check(); err != nil {
		b.Fatalf("%s after %d iterations: %v (%s)", k, iterations, err, counts)
	}
	if rg, ok := r.(*rig); ok && k.isPxperf() && sc.archive {
		var err error
		if ab, err = rg.archived(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(iterations * sc.perIteration * max(1, sc.subscribers)), elapsed, r.messages() - warm, ab
}

// pairRow is the row of a timed scenario: pxperf against base.
func pairRow(scenarioName, name, figure string, res map[kind]*sideResult, base kind, baseName string, goal float64) row {
	return kindRow(scenarioName, name, figure, res, pxperf, base, baseName, goal)
}

// kindRow is the row of a timed scenario: kind k against base.
func kindRow(scenarioName, name, figure string, res map[kind]*sideResult, k, base kind, baseName string, goal float64) row {
	p, q := res[k], res[base]
	r := row{
		Scenario:     scenarioName,
		Name:         name,
		Figure:       figure,
		Unit:         "entries/s",
		Pxperf:       p.rate(),
		PxperfText:   rateText(p.rate()),
		Baseline:     q.rate(),
		BaselineName: baseName,
		BaselineText: string(base) + " " + rateText(q.rate()),
		Goal:         goal,
		GoalSource:   "issue 10",
		Extra:        map[string]float64{},
	}
	lo, hi := 0.0, 0.0
	for i := range min(len(p.rates), len(q.rates)) {
		ratio := p.rates[i] / q.rates[i]
		r.Extra[fmt.Sprintf("round%d_ratio", i+1)] = ratio
		if i == 0 || ratio < lo {
			lo = ratio
		}
		hi = max(hi, ratio)
	}
	if p.messages > 0 {
		r.Extra["pxperf_entries_per_msg"] = p.entries / float64(p.messages)
	}
	r.judge()
	r.Note = fmt.Sprintf("ratio per round %.2f..%.2f", lo, hi)
	if a := p.archive; a.written > 0 {
		r.Extra["archive_MiB_written"] = float64(a.written) / (1 << 20)
		r.Extra["archive_MiB_awaiting_compression"] = float64(a.backlog) / (1 << 20)
		r.Note += fmt.Sprintf("; archive: %.0f MiB of lines written, %.0f MiB of them in rotated files still waiting for compression when the rounds ended",
			float64(a.written)/(1<<20), float64(a.backlog)/(1<<20))
	}
	return r
}

// The timed scenarios' shapes: those of BenchmarkIngest, BenchmarkRelay and
// BenchmarkFanout.
func runIngest(b *testing.B, opts suiteOptions) ([]row, error) {
	res := timedPair(b, ingest, []kind{bare, pxperf}, opts)
	return []row{pairRow("ingest", "ingest (archive off)",
		"entries/s acknowledged: one PublishStream, 100 entries of ~300 B a message",
		res, bare, "bare grpc-go server that only counts the entries", 0.6)}, nil
}

func runE2E(b *testing.B, opts suiteOptions) ([]row, error) {
	res := timedPair(b, relay, []kind{bare, pxperf}, opts)
	return []row{pairRow("e2e", "e2e (archive on, 1 sub)",
		"entries/s delivered to one subscriber, ingest and archive included",
		res, bare, "bare grpc-go relay (stream in, stream out)", 0.5)}, nil
}

func runRelay(b *testing.B, opts suiteOptions) ([]row, error) {
	res := timedPair(b, relayBare, []kind{bare, pxperf}, opts)
	return []row{pairRow("relay", "relay (archive off, 1 sub)",
		"entries/s delivered to one subscriber, ingest included, archive off: issue 5's end-to-end figure",
		res, bare, "bare grpc-go relay (stream in, stream out)", 0.5)}, nil
}

func runFanout(b *testing.B, opts suiteOptions) ([]row, error) {
	res := timedPair(b, fanout, []kind{bare, pxperf, natsKind}, opts)
	const figure = "entries/s delivered, summed over 100 subscribers, each on its own connection"
	return []row{
		pairRow("fanout", "fanout 100 subs vs bare", figure, res, bare, "bare grpc-go relay to 100 subscribers", 0.8),
		pairRow("fanout", "fanout 100 subs vs NATS", figure, res, natsKind,
			"embedded nats-server v2, one message per 100-entry batch, 100 subscribers", 1.0),
	}, nil
}
