package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestObserversSeeEvictionsByReason(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 3, MaxMemoryBytes: 1 << 30})
	var got []Eviction
	remove := s.Observe(func(e Eviction) { got = append(got, e) })
	s.Append(entries(5))
	one := entrySize(t)
	want := Eviction{Reason: ReasonCount, Count: 2, Bytes: 2 * one, OldestID: 3}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("observed %+v, want [%+v]", got, want)
	}
	if err := s.SetConfig(Config{MaxEntries: 3, MaxMemoryBytes: one}); err != nil {
		t.Fatal(err)
	}
	want = Eviction{Reason: ReasonBytes, Count: 2, Bytes: 2 * one, OldestID: 5}
	if len(got) != 2 || got[1] != want {
		t.Fatalf("observed %+v, want second %+v", got, want)
	}
	remove()
	s.Append(entries(1))
	if len(got) != 2 {
		t.Errorf("observer called after remove: %+v", got)
	}
}

// Pressure evicts whatever the entry count, keeps evicting between the marks
// once started, and does not start between them.
func TestRelievePressureHysteresis(t *testing.T) {
	one := entrySize(t)
	budget := 20 * one
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: budget, HighWater: 0.8, LowWater: 0.5})
	s.Append(entries(10)) // half the budget, a tenth of the count cap
	var observed int
	s.Observe(func(e Eviction) {
		if e.Reason == ReasonPressure {
			observed += e.Count
		}
	})
	steps := []struct {
		name          string
		used          int64 // process memory, in entry sizes
		wantEvicted   int
		wantUnderPres bool
	}{
		{"between the marks, not started", 14, 0, false},
		{"above high water", 17, 7, true}, // 17 - 10 (low) = 7 entries' worth
		{"between the marks, under pressure", 11, 1, true},
		{"below low water ends pressure", 9, 0, false},
		{"between the marks again, not restarted", 14, 0, false},
	}
	held := 10
	for _, st := range steps {
		ev := s.RelievePressure(uint64(st.used * one))
		held -= ev.Count
		if ev.Count != st.wantEvicted {
			t.Errorf("%s: evicted %d, want %d", st.name, ev.Count, st.wantEvicted)
		}
		stats := s.Stats()
		if stats.UnderPressure != st.wantUnderPres || stats.Entries != held || stats.ProcessMemory != uint64(st.used*one) {
			t.Errorf("%s: stats = %+v, want under pressure %v and %d entries", st.name, stats, st.wantUnderPres, held)
		}
	}
	if got := s.Stats().EvictedByPressure; got != 8 || observed != 8 {
		t.Errorf("EvictedByPressure = %d, observed %d; want 8", got, observed)
	}
}

func TestRelievePressureEmptiesStoreIfNeeded(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 1 << 20})
	s.Append(entries(3))
	ev := s.RelievePressure(1 << 30) // far more memory than the store holds
	if ev.Count != 3 || s.Stats().Entries != 0 {
		t.Fatalf("evicted %d, %d left; want all 3", ev.Count, s.Stats().Entries)
	}
	if oldest, next := s.Bounds(); oldest != next || next != 4 {
		t.Errorf("Bounds = %d, %d; want empty at 4", oldest, next)
	}
}

// EvictBytes frees at least the bytes asked for, oldest first, without
// pressure, and counts them as evicted by pressure.
func TestEvictBytes(t *testing.T) {
	one := entrySize(t)
	tests := []struct {
		name      string
		n         int64
		wantCount int
	}{
		{"nothing asked", 0, 0},
		{"part of one entry frees it", 1, 1},
		{"exactly two", 2 * one, 2},
		{"just over two", 2*one + 1, 3},
		{"more than held", 100 * one, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 1 << 20})
			s.Append(entries(5))
			ev := s.EvictBytes(tt.n)
			st := s.Stats()
			if ev.Count != tt.wantCount || ev.Bytes != int64(tt.wantCount)*one || st.Entries != 5-tt.wantCount || st.EvictedByPressure != uint64(tt.wantCount) {
				t.Errorf("EvictBytes(%d) = %+v, stats entries %d, by pressure %d; want %d evicted", tt.n, ev, st.Entries, st.EvictedByPressure, tt.wantCount)
			}
			if oldest, _ := s.Bounds(); oldest != uint64(tt.wantCount)+1 {
				t.Errorf("oldest id %d, want %d", oldest, tt.wantCount+1)
			}
		})
	}
}

// WatchPressure feeds each reading to RelievePressure, releases memory after
// an eviction, reports read errors, and stops with ctx.
func TestWatchPressure(t *testing.T) {
	one := entrySize(t)
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 10 * one, CheckInterval: time.Millisecond})
	s.Append(entries(5))
	readErr := errors.New("no /proc")
	readings := []struct {
		used uint64
		err  error
	}{
		{used: uint64(5 * one)},
		{err: readErr},
		{used: uint64(9 * one)}, // above 0.8: evict 9 - 7 = 2 entries
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reads, released := 0, 0
	var errs []error
	read := func() (uint64, error) {
		r := readings[reads]
		reads++
		if reads == len(readings) {
			defer cancel() // the last reading: stop after it is handled
		}
		return r.used, r.err
	}
	err := s.WatchPressure(ctx, read, func() { released++ }, func(err error) { errs = append(errs, err) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchPressure = %v, want context.Canceled", err)
	}
	if reads != 3 || released != 1 || len(errs) != 1 || !errors.Is(errs[0], readErr) {
		t.Errorf("reads %d, released %d, errors %v; want 3, 1, [%v]", reads, released, errs, readErr)
	}
	if got := s.Stats().EvictedByPressure; got != 2 {
		t.Errorf("EvictedByPressure = %d, want 2", got)
	}
}
