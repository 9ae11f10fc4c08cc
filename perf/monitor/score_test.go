package monitor

import (
	"math"
	"strings"
	"testing"
)

func TestScoreOf(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur Sample
		want      map[string]float64 // points by part; parts not named get full points
		explain   map[string][]string
	}{
		{
			name: "healthy idle", prev: idle(), cur: idle(),
			explain: map[string][]string{
				"memory":     {"live memory besides the store, 8 MiB", "8% of its 100 MiB allowance", "store 1 MiB of the 500 MiB budget", "RSS 40 MiB", "full points"},
				"throttling": {"no messages sent in the interval", "full points"},
				"cleanup":    {"no cleanups yet", "full points"},
				"logs":       {"archive on", "0 write errors", "queue 0% full", "full points"},
			},
		},
		{name: "zero samples", prev: Sample{}, cur: Sample{},
			explain: map[string][]string{"memory": {"no memory allowance known"}, "logs": {"archive off"}}},
		{
			name: "memory at 75% of the allowance", prev: idle(),
			cur:     with(func(s *Sample) { restAt(s, 0.75) }),
			want:    map[string]float64{"memory": 15},
			explain: map[string][]string{"memory": {"besides the store, 75 MiB", "75% of its 100 MiB allowance", "15 of 30 points"}},
		},
		{
			name: "memory at 50% of the allowance", prev: idle(),
			cur: with(func(s *Sample) { restAt(s, 0.5) }),
		},
		{
			name: "memory over the allowance", prev: idle(),
			cur:  with(func(s *Sample) { restAt(s, 1.2) }),
			want: map[string]float64{"memory": 0},
		},
		{
			// The budget is there to be filled: a full store, with RSS
			// beyond the budget, is not memory trouble.
			name: "a full store is not memory use", prev: idle(),
			cur: with(func(s *Sample) {
				s.Memory.Bytes, s.Process.RSS = 500*mib, 600*mib
				restAt(s, 0.1)
			}),
			explain: map[string][]string{"memory": {"10% of its 100 MiB allowance", "store 500 MiB of the 500 MiB budget", "full points"}},
		},
		{
			name: "under pressure", prev: idle(),
			cur:     with(func(s *Sample) { restAt(s, 0.6); s.Memory.UnderPressure = true }),
			want:    map[string]float64{"memory": 19},
			explain: map[string][]string{"memory": {"60%", "under memory pressure: −5", "19 of 30 points"}},
		},
		{
			name: "60% throttled in the interval",
			prev: with(func(s *Sample) { s.Throttle.MessagesSent = 100; s.Throttle.ThrottledIntervals = 50 }),
			cur:  with(func(s *Sample) { s.Throttle.MessagesSent = 200; s.Throttle.ThrottledIntervals = 110 }),
			want: map[string]float64{"throttling": 10},
			explain: map[string][]string{"throttling": {
				"60 of 100 messages (60%) waited", "10 of 25 points"}},
		},
		{
			name: "throttled since start but not in the interval",
			prev: with(func(s *Sample) { s.Throttle.MessagesSent = 100; s.Throttle.ThrottledIntervals = 100 }),
			cur:  with(func(s *Sample) { s.Throttle.MessagesSent = 200; s.Throttle.ThrottledIntervals = 100 }),
		},
		{
			name: "gaps and stuck subscribers",
			prev: idle(),
			cur:  with(func(s *Sample) { s.Throttle.Gaps = 2; s.Throttle.StuckSubscribers = 1 }),
			want: map[string]float64{"throttling": 10},
			explain: map[string][]string{"throttling": {
				"2 gaps sent", "−5", "1 subscribers ended as stuck: −10"}},
		},
		{
			name: "counter reset counts from zero",
			prev: with(func(s *Sample) { s.Throttle.MessagesSent = 1000; s.Throttle.ThrottledIntervals = 900 }),
			cur:  with(func(s *Sample) { s.Throttle.MessagesSent = 10; s.Throttle.ThrottledIntervals = 5 }),
			want: map[string]float64{"throttling": 12.5},
		},
		{
			name: "more throttled than sent is capped",
			prev: idle(),
			cur:  with(func(s *Sample) { s.Throttle.MessagesSent = 10; s.Throttle.ThrottledIntervals = 50 }),
			want: map[string]float64{"throttling": 0},
		},
		{
			name: "cleanup failures in the interval",
			prev: with(func(s *Sample) { s.Cleanup.Succeeded = 100; s.Cleanup.Failed = 50 }),
			cur:  with(func(s *Sample) { s.Cleanup.Succeeded = 108; s.Cleanup.Failed = 52 }),
			want: map[string]float64{"cleanup": 20},
			explain: map[string][]string{"cleanup": {
				"2 of 10 cleanups (20%) failed in the interval", "20 of 25 points"}},
		},
		{
			name: "no cleanup in the interval: share since start",
			prev: with(func(s *Sample) { s.Cleanup.Succeeded = 3; s.Cleanup.Failed = 1 }),
			cur:  with(func(s *Sample) { s.Cleanup.Succeeded = 3; s.Cleanup.Failed = 1 }),
			want: map[string]float64{"cleanup": 18.75},
			explain: map[string][]string{"cleanup": {
				"1 of 4 cleanups (25%) failed since start"}},
		},
		{
			name: "leak",
			prev: idle(),
			cur:  with(func(s *Sample) { s.Cleanup.Leaked = 1 }),
			want: map[string]float64{"cleanup": 20},
		},
		{
			name:    "archive off ignores its figures",
			prev:    idle(),
			cur:     with(func(s *Sample) { s.Logs.Enabled = false; s.Logs.WriteErrors = 5; s.Logs.Files = 99 }),
			explain: map[string][]string{"logs": {"archive off", "full points"}},
		},
		{
			name:    "write errors",
			prev:    idle(),
			cur:     with(func(s *Sample) { s.Logs.WriteErrors = 3; s.Logs.LastError = "disk full" }),
			want:    map[string]float64{"logs": 12},
			explain: map[string][]string{"logs": {"3 write errors", "−8", "12 of 20 points"}},
		},
		{
			name: "old write errors do not count",
			prev: with(func(s *Sample) { s.Logs.WriteErrors = 3 }),
			cur:  with(func(s *Sample) { s.Logs.WriteErrors = 3 }),
		},
		{
			name: "dropped entries",
			prev: idle(),
			cur:  with(func(s *Sample) { s.Logs.EntriesDropped = 10 }),
			want: map[string]float64{"logs": 14},
		},
		{
			name:    "queue 75% full",
			prev:    idle(),
			cur:     with(func(s *Sample) { s.Logs.Queued = 750 }),
			want:    map[string]float64{"logs": 18},
			explain: map[string][]string{"logs": {"queue 750 of 1000 entries (75%) full", "−2"}},
		},
		{
			name: "queue 75% full by bytes",
			prev: idle(),
			cur: with(func(s *Sample) {
				s.Logs.Queued, s.Logs.QueuedBytes, s.Logs.QueueBytesCapacity = 10, 6<<20, 8<<20
			}),
			want:    map[string]float64{"logs": 18},
			explain: map[string][]string{"logs": {"queue 6291456 of 8388608 bytes of bodies (75%) full", "−2"}},
		},
		{
			name: "queue half full",
			prev: idle(),
			cur:  with(func(s *Sample) { s.Logs.Queued = 500 }),
		},
		{
			name: "too many files",
			prev: idle(),
			cur:  with(func(s *Sample) { s.Logs.Files = 6 }),
			want: map[string]float64{"logs": 18},
		},
		{
			name: "everything wrong",
			prev: idle(),
			cur: with(func(s *Sample) {
				restAt(s, 1.2)
				s.Memory.UnderPressure = true
				s.Throttle = Throttle{MessagesSent: 10, ThrottledIntervals: 10, Gaps: 1, StuckSubscribers: 1}
				s.Cleanup.Failed = 4
				s.Logs.WriteErrors, s.Logs.EntriesDropped, s.Logs.Queued, s.Logs.Files = 1, 1, 1000, 9
			}),
			want: map[string]float64{"memory": 0, "throttling": 0, "cleanup": 0, "logs": 0},
		},
	}
	full := map[string]float64{"memory": 30, "throttling": 25, "cleanup": 25, "logs": 20}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ScoreOf(tt.prev, tt.cur)
			var names []string
			var wantTotal float64
			for _, p := range got.Parts {
				names = append(names, p.Name)
				want, ok := tt.want[p.Name]
				if !ok {
					want = full[p.Name]
				}
				wantTotal += want
				if p.Points != want || math.IsNaN(p.Points) {
					t.Errorf("%s: %v points (%q), want %v", p.Name, p.Points, p.Explanation, want)
				}
				if p.Max != full[p.Name] {
					t.Errorf("%s: max %v, want %v", p.Name, p.Max, full[p.Name])
				}
				for _, s := range tt.explain[p.Name] {
					if !strings.Contains(p.Explanation, s) {
						t.Errorf("%s: explanation %q lacks %q", p.Name, p.Explanation, s)
					}
				}
			}
			if strings.Join(names, ",") != "memory,throttling,cleanup,logs" {
				t.Errorf("parts %v, want memory, throttling, cleanup, logs", names)
			}
			if got.Total != wantTotal {
				t.Errorf("total %v, want %v", got.Total, wantTotal)
			}
		})
	}
}

// Each part only loses points as its input worsens.
func TestScoreMonotone(t *testing.T) {
	points := func(s Score, name string) float64 {
		for _, p := range s.Parts {
			if p.Name == name {
				return p.Points
			}
		}
		t.Fatalf("no part %q", name)
		return 0
	}
	tests := []struct {
		part  string
		worst float64                           // points at i = 100
		at    func(i uint64) (prev, cur Sample) // i from 0 to 100: worse as it grows
	}{
		{"memory", 0, func(i uint64) (Sample, Sample) {
			return idle(), with(func(s *Sample) { restAt(s, float64(i)/100*1.2) })
		}},
		{"throttling", 0, func(i uint64) (Sample, Sample) {
			return idle(), with(func(s *Sample) { s.Throttle.MessagesSent, s.Throttle.ThrottledIntervals = 100, i })
		}},
		{"cleanup", 0, func(i uint64) (Sample, Sample) {
			return idle(), with(func(s *Sample) { s.Cleanup.Succeeded, s.Cleanup.Failed = 100-i, i })
		}},
		{"logs", 16, func(i uint64) (Sample, Sample) {
			return idle(), with(func(s *Sample) { s.Logs.Queued = i * 10 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.part, func(t *testing.T) {
			last := math.Inf(1)
			for i := range uint64(101) {
				p := points(ScoreOf(tt.at(i)), tt.part)
				if p > last {
					t.Fatalf("step %d: %v points, more than %v at the step before", i, p, last)
				}
				last = p
			}
			if last != tt.worst {
				t.Errorf("worst case scores %v, want %v", last, tt.worst)
			}
		})
	}
}

func TestBytesOf(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"}, {500 * mib, "500 MiB"}, {3 << 30, "3 GiB"},
	}
	for _, tt := range tests {
		if got := bytesOf(tt.n); got != tt.want {
			t.Errorf("bytesOf(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestRestShare(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		live, store, allowance uint64
		want                   float64
	}{
		{"half the allowance", 300 * mib, 284 * mib, 32 * mib, 0.5},
		{"a full store alone", 256 * mib, 256 * mib, 32 * mib, 0},
		{"accounting above live", 250 * mib, 256 * mib, 32 * mib, 0},
		{"over the allowance", 336 * mib, 256 * mib, 32 * mib, 2.5},
		{"no allowance", 300 * mib, 0, 0, 0},
	} {
		if got := RestShare(tc.live, tc.store, tc.allowance); got != tc.want {
			t.Errorf("%s: RestShare(%d, %d, %d) = %v, want %v", tc.name, tc.live, tc.store, tc.allowance, got, tc.want)
		}
	}
}
