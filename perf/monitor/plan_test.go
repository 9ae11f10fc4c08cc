package monitor

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		s    Sample
		th   Thresholds
		want []Action
	}{
		{name: "healthy idle", s: idle()},
		{name: "zero sample", s: Sample{}},
		// The store evicts by itself: a full store, RSS beyond the budget
		// and pressure call for no eviction of the monitor's.
		{name: "memory at threshold", s: memoryAt(0.8)},
		{name: "memory threshold from config", s: memoryAt(0.6), th: Thresholds{MemoryShare: 0.5}},
		{name: "store full, RSS beyond the budget", s: with(func(s *Sample) { s.Memory.Bytes = s.Memory.Budget; s.Process.RSS = 2 * s.Memory.Budget })},
		{name: "under pressure", s: with(func(s *Sample) { s.Memory.UnderPressure = true })},
		{name: "no budget", s: with(func(s *Sample) { s.Process.RSS = 1 << 40; s.Memory.Budget = 0; s.Process.HeapFree = 1 << 40 })},
		{name: "rotation due", s: with(func(s *Sample) { s.Logs.RotationDue = true }), want: []Action{Rotate}},
		{name: "rotation due but archive off", s: with(func(s *Sample) { s.Logs.RotationDue = true; s.Logs.Enabled = false })},
		{name: "idle resources", s: with(func(s *Sample) { s.Cleanup.Idle = 2 }), want: []Action{Reclaim}},
		{name: "CPU load with subscribers", s: with(func(s *Sample) { s.Process.CPUPercent = 160; s.Throttle.Subscribers = 1 }), want: []Action{SlowThrottles}},
		{name: "CPU below threshold", s: with(func(s *Sample) { s.Process.CPUPercent = 159; s.Throttle.Subscribers = 1 })},
		{name: "CPU load without subscribers", s: with(func(s *Sample) { s.Process.CPUPercent = 200 })},
		{name: "NumCPU unknown is one core", s: with(func(s *Sample) { s.Process.NumCPU = 0; s.Process.CPUPercent = 80; s.Throttle.Subscribers = 3 }), want: []Action{SlowThrottles}},
		{name: "free heap to return", s: with(func(s *Sample) { s.Process.HeapFree = 125 * mib }), want: []Action{ReleaseMemory}},
		{name: "little free heap", s: with(func(s *Sample) { s.Process.HeapFree = 124 * mib })},
		{
			name: "everything",
			s: with(func(s *Sample) {
				s.Memory.UnderPressure = true
				s.Logs.RotationDue = true
				s.Cleanup.Idle = 1
				s.Process.CPUPercent = 190
				s.Throttle.Subscribers = 4
				s.Process.HeapFree = 125 * mib
			}),
			want: []Action{Rotate, Reclaim, SlowThrottles, ReleaseMemory},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Plan(tt.s, tt.th)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	want := []string{"evict", "rotate", "reclaim", "slow_throttles", "release_memory"}
	var got []string
	for _, a := range AllActions() {
		got = append(got, a.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if got := Action(0).String(); got != "Action(0)" {
		t.Errorf("Action(0).String() = %q, want Action(0)", got)
	}
}
