package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
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

// Pressure eviction gives way to live memory beyond the budget and the
// margin, by the excess only: live memory above the budget but within the
// margin evicts nothing, and a reading over the threshold evicts as many
// entries as cover the excess, whatever the entry count.
func TestRelievePressure(t *testing.T) {
	one := entrySize(t)
	const held = 10
	budget, margin := held*one, 4*one // the store is full
	threshold := budget + margin
	tests := []struct {
		name          string
		live          int64
		wantEvicted   int
		wantPressured bool
	}{
		{"idle: live memory well under the budget", budget / 2, 0, false},
		{"store full, the rest within the margin", budget + margin/2, 0, false},
		{"at the threshold", threshold, 0, false},
		{"a byte over evicts one entry", threshold + 1, 1, true},
		{"three entries over evicts three", threshold + 3*one, 3, true},
		{"two and a half over evicts three", threshold + 2*one + one/2, 3, true},
		{"more over than the store holds empties it", 10 * threshold, held, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: budget, PressureMargin: margin})
			s.Append(entries(held))
			var observed Eviction
			s.Observe(func(e Eviction) { observed = e })
			ev := s.RelievePressure(uint64(tt.live))
			want := Eviction{}
			if tt.wantEvicted > 0 {
				want = Eviction{Reason: ReasonPressure, Count: tt.wantEvicted, Bytes: int64(tt.wantEvicted) * one, OldestID: uint64(tt.wantEvicted) + 1}
			}
			if ev != want || observed != want {
				t.Errorf("RelievePressure(%d) = %+v, observed %+v; want %+v", tt.live, ev, observed, want)
			}
			st := s.Stats()
			if st.Entries != held-tt.wantEvicted || st.EvictedByPressure != uint64(tt.wantEvicted) || st.EvictedByBytes != 0 ||
				st.UnderPressure != tt.wantPressured || st.LiveMemory != uint64(tt.live) {
				t.Errorf("stats = %+v; want %d entries, %d evicted by pressure, under pressure %v, live memory %d",
					st, held-tt.wantEvicted, tt.wantEvicted, tt.wantPressured, tt.live)
			}
		})
	}
}

// Pressure does not outlast the excess: once a reading is back at the
// threshold nothing more is evicted, and the store refills to its budget.
func TestRelievePressureEvictsNoMore(t *testing.T) {
	one := entrySize(t)
	budget, margin := 10*one, 4*one
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: budget, PressureMargin: margin})
	s.Append(entries(10))
	steps := []struct {
		name        string
		live        int64
		wantEvicted int
	}{
		{"over by two entries", budget + margin + 2*one, 2},
		{"back at the threshold", budget + margin, 0},
		{"just under", budget + margin - 1, 0},
	}
	for _, st := range steps {
		if ev := s.RelievePressure(uint64(st.live)); ev.Count != st.wantEvicted {
			t.Errorf("%s: evicted %d, want %d", st.name, ev.Count, st.wantEvicted)
		}
	}
	if st := s.Stats(); st.Entries != 8 || st.UnderPressure {
		t.Errorf("after pressure ended: %d entries, under pressure %v; want 8, false", st.Entries, st.UnderPressure)
	}
	s.Append(entries(5))
	if st := s.Stats(); st.Entries != 10 || st.Bytes != budget {
		t.Errorf("after refilling: %d entries, %d bytes; want the budget's 10, %d bytes", st.Entries, st.Bytes, budget)
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
	if ev := s.RelievePressure(1 << 30); ev.Count != 0 || !s.Stats().UnderPressure {
		t.Errorf("empty store under pressure: evicted %d, under pressure %v; want 0, true", ev.Count, s.Stats().UnderPressure)
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
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 5 * one, PressureMargin: 2 * one, CheckInterval: time.Millisecond})
	s.Append(entries(5))
	readErr := errors.New("no /proc")
	readings := []struct {
		used uint64
		err  error
	}{
		{used: uint64(7 * one)}, // the budget and the margin: nothing
		{err: readErr},
		{used: uint64(9 * one)}, // two entries over: evict 2
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

// The byte budget alone bounds the store: after every Append its accounted
// bytes are within MaxMemoryBytes, with no pressure reading at all, and
// the store stays as full as evicting whole entries oldest first allows.
func TestByteBudgetBoundsTheStore(t *testing.T) {
	const budget = 256 << 10
	body := func(rng *rand.Rand, n int) *pxperfv1.Body {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		return &pxperfv1.Body{Data: data, ContentType: "application/octet-stream"}
	}
	tests := []struct {
		name string
		// batch makes the i-th batch to append.
		batch func(rng *rand.Rand, i int) []*pxperfv1.Entry
		// largest bounds one entry's accounted size, or is 0 when entries
		// may pass the budget on their own.
		largest int64
	}{
		{"entries without bodies", func(_ *rand.Rand, i int) []*pxperfv1.Entry { return entries(1 + i%7) }, 2 << 10},
		{"bodies of random sizes", func(rng *rand.Rand, i int) []*pxperfv1.Entry {
			es := entries(1 + i%5)
			for _, e := range es {
				e.ResponseBody = body(rng, rng.IntN(40<<10))
			}
			return es
		}, 48 << 10},
		{"completions that grow held entries", func(rng *rand.Rand, i int) []*pxperfv1.Entry {
			id := fmt.Sprintf("r%d", i)
			done := newEntry("GET", "http://example.com/"+id, 200)
			done.RequestId = id
			done.ResponseBody = body(rng, rng.IntN(40<<10))
			return []*pxperfv1.Entry{pendingEntry(id, "http://example.com/"+id), done}
		}, 48 << 10},
		{"an entry larger than the budget", func(rng *rand.Rand, i int) []*pxperfv1.Entry {
			es := entries(3)
			if i%10 == 9 {
				es[1].ResponseBody = body(rng, budget+1)
			}
			return es
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Config{MaxEntries: 1 << 20, MaxMemoryBytes: budget, MaxBodySize: 2 * budget})
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 300 {
				s.Append(tt.batch(rng, i))
				st := s.Stats()
				if st.Bytes > budget {
					t.Fatalf("batch %d: %d accounted bytes held, over the %d budget", i, st.Bytes, budget)
				}
				if st.EvictedByBytes > 0 && tt.largest > 0 && st.Bytes <= budget-tt.largest {
					t.Fatalf("batch %d: %d bytes held after evicting; want more than the budget less one entry (%d)", i, st.Bytes, budget-tt.largest)
				}
				if st.EvictedByPressure != 0 || st.EvictedByCount != 0 {
					t.Fatalf("batch %d: evicted %d by pressure, %d by count; want the budget's evictions only", i, st.EvictedByPressure, st.EvictedByCount)
				}
			}
			if st := s.Stats(); st.EvictedByBytes == 0 {
				t.Errorf("nothing evicted by bytes (%d held): the test did not reach the budget", st.Bytes)
			}
		})
	}
}
