package monitor

import "time"

const mib = 1 << 20

var t0 = time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)

// idle is a healthy idle server: little memory, no traffic, no cleanups,
// the archive on and quiet.
func idle() Sample {
	return Sample{
		Time: t0,
		Process: Process{
			RSS: 40 * mib, CPUPercent: 2, NumCPU: 2, OpenFiles: 12, Threads: 8,
			HeapLive: 8 * mib, Stacks: 1 * mib, HeapGoal: 16 * mib, HeapFree: 2 * mib, MemoryLimit: 575 * mib, Goroutines: 20,
		},
		Memory:  Memory{Bytes: 1 * mib, Budget: 500 * mib, Allowance: 100 * mib, Entries: 100, MaxEntries: 1000},
		Cleanup: Cleanup{Live: 3},
		Logs:    Logs{Enabled: true, EntriesWritten: 100, QueueCapacity: 1000, Files: 1, MaxFiles: 5, DiskBytes: mib},
	}
}

// restAt sets s's live heap so that the process holds share of its
// allowance besides the store.
func restAt(s *Sample, share float64) {
	s.Process.HeapLive = s.Memory.Bytes + uint64(share*float64(s.Memory.Allowance)) - s.Process.Stacks
}

// with returns idle changed by f.
func with(f func(*Sample)) Sample {
	s := idle()
	f(&s)
	return s
}

// at returns s taken i intervals after t0.
func at(i int, s Sample) Sample {
	s.Time = t0.Add(time.Duration(i) * time.Minute)
	return s
}

func nan() float64 {
	var zero float64
	return zero / zero
}
