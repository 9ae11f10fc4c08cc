package store

import (
	"fmt"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// windowStore returns a store of n entries in which 1 % have host
// rare.example.com, for the window benchmarks.
func windowStore(b *testing.B, n int) *Store {
	b.Helper()
	s := mustNew(b, Config{MaxEntries: n, MaxMemoryBytes: 1 << 40})
	ts := timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	batch := make([]*pxperfv1.Entry, 0, 10_000)
	for i := range n {
		host := fmt.Sprintf("host%d.example.com", i%50)
		if i%100 == 0 {
			host = "rare.example.com"
		}
		batch = append(batch, &pxperfv1.Entry{
			StartTime:  ts,
			Method:     "GET",
			Url:        fmt.Sprintf("http://%s/path/%d", host, i),
			StatusCode: 200,
			Timings:    &pxperfv1.Timings{},
		})
		if len(batch) == cap(batch) {
			s.Append(batch)
			batch = batch[:0]
		}
	}
	s.Append(batch)
	return s
}

// matcher compiles f into a Matcher split for the column, as the service
// does.
func matcher(tb testing.TB, f *pxperfv1.Filter) Matcher {
	tb.Helper()
	c, err := filter.Compile(f)
	if err != nil {
		tb.Fatal(err)
	}
	p := c.Parts()
	return Matcher{Host: p.Host, Status: p.Status, Match: p.Rest}
}

// BenchmarkListFirstCall measures the first call of a filtered view over
// 1 M entries, what a UI pays when the user changes the filter: every
// iteration compiles a new filter (cycling through the 50 busy hosts of
// windowStore, 2 % each but the first) and asks for a window without
// a Key, so that nothing is cached between iterations.
func BenchmarkListFirstCall(b *testing.B) {
	s := windowStore(b, 1_000_000)
	tests := []struct {
		name   string
		filter func(i int) *pxperfv1.Filter
	}{
		{"host", func(i int) *pxperfv1.Filter {
			return &pxperfv1.Filter{Host: fmt.Sprintf("host%d.example", i%50)}
		}},
		{"host+status", func(i int) *pxperfv1.Filter {
			return &pxperfv1.Filter{Host: fmt.Sprintf("host%d.example", i%50),
				StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}}}
		}},
		{"hostglob", func(i int) *pxperfv1.Filter {
			return &pxperfv1.Filter{Host: fmt.Sprintf("host%d.*.com", i%50)}
		}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := s.List(Query{Limit: 50, Offset: 1000, Match: matcher(b, tt.filter(i))})
				want := 20_000
				if i%50 == 0 {
					want = 10_000 // the other 1 % is rare.example.com
				}
				if len(p.Entries) != 50 || p.Total != want {
					b.Fatalf("List = %d entries of %d, want 50 of %d", len(p.Entries), p.Total, want)
				}
				i++
			}
		})
	}
}

// BenchmarkListWindow measures a 50-row ListEntries window over 1 M
// entries, as a virtual-scrolling UI asks for it: unfiltered (O(window)),
// and with a filter matching 1 % (one pass to count the view).
func BenchmarkListWindow(b *testing.B) {
	s := windowStore(b, 1_000_000)
	match := matcher(b, &pxperfv1.Filter{Host: "rare.example"})
	tests := []struct {
		name string
		q    Query
		want int // entries in the view
	}{
		{"unfiltered/top", Query{Limit: 50}, 1_000_000},
		{"unfiltered/middle", Query{Limit: 50, Offset: 500_000}, 1_000_000},
		{"filtered1pct/top", Query{Limit: 50, Match: match}, 10_000},
		{"filtered1pct/middle", Query{Limit: 50, Offset: 5_000, Match: match}, 10_000},
		{"filtered1pct/cached/top", Query{Limit: 50, Match: match, Key: "rare"}, 10_000},
		{"filtered1pct/cached/middle", Query{Limit: 50, Offset: 5_000, Match: match, Key: "rare"}, 10_000},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := s.List(tt.q)
				if p.Total != tt.want || len(p.Entries) != 50 {
					b.Fatalf("List = %d entries of %d, want 50 of %d", len(p.Entries), p.Total, tt.want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/window")
		})
	}
}

// BenchmarkListWindowLive is a UI scrolling a filtered view while traffic
// arrives: 1000 new entries (10 of them matching) between two windows. The
// appends are not timed.
func BenchmarkListWindowLive(b *testing.B) {
	s := windowStore(b, 1_000_000)
	match := matcher(b, &pxperfv1.Filter{Host: "rare.example"})
	more := make([]*pxperfv1.Entry, 1000)
	ts := timestamppb.Now()
	for _, key := range []string{"", "rare"} {
		name := "full-pass"
		if key != "" {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for i := range more {
					host := "busy.example.com"
					if i%100 == 0 {
						host = "rare.example.com"
					}
					more[i] = &pxperfv1.Entry{StartTime: ts, Method: "GET", Url: "http://" + host + "/", StatusCode: 200}
				}
				s.Append(more)
				b.StartTimer()
				if p := s.List(Query{Limit: 50, Match: match, Key: key}); len(p.Entries) != 50 {
					b.Fatalf("window of %d entries", len(p.Entries))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/window")
		})
	}
}

// BenchmarkReadFrom measures what an unfiltered subscriber pays to read a
// batch of 1 500 entries already encoded, as each of 100 subscribers does
// in the fan-out: hot, every reader reading the same batch; cold, each
// read a batch further on through 1 M entries; entries, with Entries and
// Fields; runs, with Runs alone, as a subscriber without bodies reads.
func BenchmarkReadFrom(b *testing.B) {
	const n, batch = 1_000_000, 1_500
	s := windowStore(b, n)
	var r Read
	for next := uint64(1); next <= n; next = r.Next {
		var err error
		if r, err = s.ReadFrom(next, Limit{Entries: 10_000}, Matcher{}, r); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		step     uint64
		runsOnly bool
	}{{"hot/entries", 0, false}, {"cold/entries", batch, false}, {"hot/runs", 0, true}, {"cold/runs", batch, true}} {
		b.Run(tc.name, func(b *testing.B) {
			next := uint64(1)
			lim := Limit{Entries: batch, Bytes: 1 << 20, RunsOnly: tc.runsOnly}
			for b.Loop() {
				var err error
				if r, err = s.ReadFrom(next, lim, Matcher{}, r); err != nil {
					b.Fatal(err)
				}
				if r.Count != batch {
					b.Fatalf("read %d entries, want %d", r.Count, batch)
				}
				if next += tc.step; next+batch > n {
					next = 1
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
		})
	}
}
