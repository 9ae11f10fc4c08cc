package monitor

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one evaluation: a sample, the score (ScoreOf unless set), the
// thresholds (DefaultThresholds unless set), and the transitions wanted,
// "+name" for firing and "-name" for cleared.
type step struct {
	s     Sample
	score *Score
	th    *Thresholds
	want  []string
}

func memoryAt(share float64) Sample {
	return with(func(s *Sample) { restAt(s, share) })
}

// throttledAt returns a sequence of samples whose intervals have the
// given throttled shares, 100 messages each.
func throttledAt(shares ...float64) []Sample {
	var out []Sample
	var msgs, throttled uint64
	for _, sh := range shares {
		msgs += 100
		throttled += uint64(sh * 100)
		out = append(out, with(func(s *Sample) { s.Throttle.MessagesSent, s.Throttle.ThrottledIntervals = msgs, throttled }))
	}
	return out
}

func scoreOf(total float64) *Score { return &Score{Total: total} }

func steps(samples []Sample, wants ...[]string) []step {
	var out []step
	for i, s := range samples {
		out = append(out, step{s: s, want: wants[i]})
	}
	return out
}

func TestAlertsTransitions(t *testing.T) {
	off := Thresholds{Enabled: false}
	noScore := DefaultThresholds()
	noScore.MinScore = 0
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "healthy idle raises nothing",
			steps: []step{
				{s: idle()}, {s: idle()}, {s: idle()},
			},
		},
		{
			name: "memory fires once, holds between thresholds, clears once",
			steps: []step{
				{s: memoryAt(0.5)},
				{s: memoryAt(0.85), want: []string{"+memory_high"}},
				{s: memoryAt(0.95)},
				{s: memoryAt(0.85)},
				{s: memoryAt(0.75)}, // between 0.72 and 0.8: still firing, nothing said
				{s: memoryAt(0.73)},
				{s: memoryAt(0.7), want: []string{"-memory_high"}},
				{s: memoryAt(0.75)}, // between the thresholds again: does not fire
				{s: memoryAt(0.8), want: []string{"+memory_high"}},
			},
		},
		{
			name: "memory without an allowance does not fire, and clears",
			steps: []step{
				{s: memoryAt(0.9), want: []string{"+memory_high"}},
				{s: with(func(s *Sample) { s.Memory.Allowance = 0 }), want: []string{"-memory_high"}},
				{s: with(func(s *Sample) { s.Memory.Allowance = 0; s.Process.HeapLive = 1 << 40 })},
			},
		},
		{
			name: "throttled share over intervals",
			steps: steps(throttledAt(0.1, 0.7, 0.9, 0.65, 0.62, 0.69, 0.7),
				nil, []string{"+throttled_high"}, nil, nil, []string{"-throttled_high"}, nil, []string{"+throttled_high"}),
		},
		{
			name: "throttled clears when no message is sent",
			steps: []step{
				{s: throttledAt(0.8)[0], want: []string{"+throttled_high"}},
				{s: throttledAt(0.8)[0], want: []string{"-throttled_high"}},
			},
		},
		{
			name: "cleanup failures, and the share since start when an interval has none",
			steps: []step{
				{s: with(func(s *Sample) { s.Cleanup.Succeeded, s.Cleanup.Failed = 10, 0 })},
				{s: with(func(s *Sample) { s.Cleanup.Succeeded, s.Cleanup.Failed = 12, 8 }), want: []string{"+cleanup_failures_high"}},
				// No cleanup in the interval: 8 of 20 since start still holds.
				{s: with(func(s *Sample) { s.Cleanup.Succeeded, s.Cleanup.Failed = 12, 8 })},
				{s: with(func(s *Sample) { s.Cleanup.Succeeded, s.Cleanup.Failed = 112, 8 }), want: []string{"-cleanup_failures_high"}},
			},
		},
		{
			name: "score low with margin",
			steps: []step{
				{s: idle(), score: scoreOf(61)},
				{s: idle(), score: scoreOf(59.5), want: []string{"+score_low"}},
				{s: idle(), score: scoreOf(40)},
				{s: idle(), score: scoreOf(62)},
				{s: idle(), score: scoreOf(64.99)},
				{s: idle(), score: scoreOf(65), want: []string{"-score_low"}},
				{s: idle(), score: scoreOf(62)},
				{s: idle(), score: scoreOf(10), want: []string{"+score_low"}},
				{s: idle(), score: scoreOf(10), th: &noScore, want: []string{"-score_low"}},
				{s: idle(), score: scoreOf(10), th: &noScore},
			},
		},
		{
			name: "archive write errors fire while growing, clear after a quiet interval",
			steps: []step{
				{s: idle()},
				{s: with(func(s *Sample) { s.Logs.WriteErrors = 1 }), want: []string{"+archive_write_errors"}},
				{s: with(func(s *Sample) { s.Logs.WriteErrors = 5 })},
				{s: with(func(s *Sample) { s.Logs.WriteErrors, s.Logs.EntriesDropped = 5, 3 })},
				{s: with(func(s *Sample) { s.Logs.WriteErrors, s.Logs.EntriesDropped = 5, 3 }), want: []string{"-archive_write_errors"}},
				{s: with(func(s *Sample) { s.Logs.WriteErrors, s.Logs.EntriesDropped = 5, 4 }), want: []string{"+archive_write_errors"}},
				{s: with(func(s *Sample) { s.Logs.Enabled = false; s.Logs.WriteErrors = 9 }), want: []string{"-archive_write_errors"}},
			},
		},
		{
			name: "stuck subscribers",
			steps: []step{
				{s: with(func(s *Sample) { s.Throttle.StuckSubscribers = 2 }), want: []string{"+stuck_subscribers"}},
				{s: with(func(s *Sample) { s.Throttle.StuckSubscribers = 3 })},
				{s: with(func(s *Sample) { s.Throttle.StuckSubscribers = 3 }), want: []string{"-stuck_subscribers"}},
				{s: with(func(s *Sample) { s.Throttle.StuckSubscribers = 3 })},
			},
		},
		{
			name: "proxy open holds while the proxy listens beyond loopback without auth",
			steps: []step{
				{s: idle()},
				{s: with(func(s *Sample) { s.Proxy.Open = []string{"0.0.0.0:3128"} }), want: []string{"+proxy_open"}},
				{s: with(func(s *Sample) { s.Proxy.Open = []string{"0.0.0.0:3128"} })},
				{s: with(func(s *Sample) { s.Proxy.Open = []string{"0.0.0.0:3128"} }), th: &off, want: []string{"-proxy_open"}},
				{s: with(func(s *Sample) { s.Proxy.Open = []string{"0.0.0.0:3128"} }), want: []string{"+proxy_open"}},
				{s: idle(), want: []string{"-proxy_open"}},
			},
		},
		{
			name: "cluster disconnected holds while the node cannot publish; never in embedded mode",
			steps: []step{
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true} })},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true} }), want: []string{"+cluster_disconnected"}},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true} })},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true} }), want: []string{"-cluster_disconnected"}},
				{s: idle()},
			},
		},
		{
			name: "cluster behind fires on a large lag, or a lag with no progress",
			steps: []step{
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true, Applied: 100, Lag: 50} })},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true, Applied: 200, Lag: 50} })},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true, Applied: 200, Lag: 50} }), want: []string{"+cluster_behind"}},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true, Applied: 300, Lag: 0} }), want: []string{"-cluster_behind"}},
				{s: with(func(s *Sample) {
					s.Cluster = Cluster{Enabled: true, Connected: true, Applied: 400, Lag: ClusterLagAlert}
				}), want: []string{"+cluster_behind"}},
				{s: with(func(s *Sample) { s.Cluster = Cluster{Enabled: true, Connected: true, Applied: 20400, Lag: 10} }), want: []string{"-cluster_behind"}},
			},
		},
		{
			name: "alerts off clears what is active and raises nothing",
			steps: []step{
				{s: memoryAt(0.9), score: scoreOf(50), want: []string{"+memory_high", "+score_low"}},
				{s: memoryAt(0.9), score: scoreOf(50), th: &off, want: []string{"-memory_high", "-score_low"}},
				{s: memoryAt(0.9), score: scoreOf(50), th: &off},
				{s: memoryAt(0.9), score: scoreOf(50), want: []string{"+memory_high", "+score_low"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Alerts
			var prev Sample
			active := map[string]bool{}
			for i, st := range tt.steps {
				cur := at(i, st.s)
				score := ScoreOf(prev, cur)
				if st.score != nil {
					score = *st.score
				}
				th := DefaultThresholds()
				if st.th != nil {
					th = *st.th
				}
				var got []string
				for _, e := range a.Evaluate(prev, cur, score, th) {
					sign := "-"
					if e.Firing {
						sign = "+"
					}
					got = append(got, sign+e.Name)
					active[e.Name] = e.Firing
				}
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d: events (-want +got):\n%s", i, diff)
				}
				var gotActive []string
				for _, e := range a.Active() {
					gotActive = append(gotActive, e.Name)
				}
				var wantActive []string
				for _, n := range conditionNames() {
					if active[n] {
						wantActive = append(wantActive, n)
					}
				}
				if diff := cmp.Diff(wantActive, gotActive); diff != "" {
					t.Errorf("step %d: active (-want +got):\n%s", i, diff)
				}
				prev = cur
			}
		})
	}
}

// Events carry their figures, thresholds and times; Active keeps the
// latest figures of an alert that holds.
func TestAlertsEventFields(t *testing.T) {
	var a Alerts
	th := DefaultThresholds()
	s0 := at(0, idle())
	s1 := at(1, memoryAt(0.9))
	s2 := at(2, memoryAt(0.95))
	s3 := at(3, memoryAt(0.5))
	a.Evaluate(Sample{}, s0, ScoreOf(Sample{}, s0), th)
	fired := a.Evaluate(s0, s1, ScoreOf(s0, s1), th)
	a.Evaluate(s1, s2, ScoreOf(s1, s2), th)
	active := a.Active()
	cleared := a.Evaluate(s2, s3, ScoreOf(s2, s3), th)

	ignoreMessage := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Message" }, cmp.Ignore())
	approx := cmp.Comparer(func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 })
	tests := []struct {
		name    string
		got     []Event
		want    Event
		message []string
	}{
		{"fired", fired, Event{Name: "memory_high", Firing: true, Value: 0.9, Threshold: 0.8, Start: t0.Add(time.Minute)},
			[]string{"live memory besides the store, 90 MiB", "90% of its 100 MiB allowance", "store 1 MiB of the 500 MiB budget", "at least 80%"}},
		{"active", active, Event{Name: "memory_high", Firing: true, Value: 0.95, Threshold: 0.8, Start: t0.Add(time.Minute)},
			[]string{"95%"}},
		{"cleared", cleared, Event{Name: "memory_high", Value: 0.5, Threshold: 0.72, Start: t0.Add(time.Minute), Clear: t0.Add(3 * time.Minute)},
			[]string{"50%", "cleared", "below 72%"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) != 1 {
				t.Fatalf("got %d events %+v, want 1", len(tt.got), tt.got)
			}
			if diff := cmp.Diff(tt.want, tt.got[0], ignoreMessage, approx); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			for _, s := range tt.message {
				if !strings.Contains(tt.got[0].Message, s) {
					t.Errorf("message %q lacks %q", tt.got[0].Message, s)
				}
			}
		})
	}
}

func TestThresholdsValidate(t *testing.T) {
	tests := []struct {
		name  string
		th    Thresholds
		field string // empty: valid
	}{
		{"defaults", DefaultThresholds(), ""},
		{"zero", Thresholds{}, ""},
		{"memory over 1", Thresholds{MemoryShare: 1.5}, "MemoryShare"},
		{"throttled negative", Thresholds{ThrottledShare: -0.1}, "ThrottledShare"},
		{"cleanup NaN", Thresholds{CleanupFailureShare: nan()}, "CleanupFailureShare"},
		{"cpu over 1", Thresholds{CPUShare: 2}, "CPUShare"},
		{"release negative", Thresholds{ReleaseShare: -1}, "ReleaseShare"},
		{"score over 100", Thresholds{MinScore: 101}, "MinScore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.th.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}
