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

// BenchmarkListWindow measures a 50-row ListEntries window over 1 M
// entries, as a virtual-scrolling UI asks for it: unfiltered (O(window)),
// and with a filter matching 1 % (one pass to count the view).
func BenchmarkListWindow(b *testing.B) {
	s := windowStore(b, 1_000_000)
	rare, err := filter.Compile(&pxperfv1.Filter{Host: "rare.example"})
	if err != nil {
		b.Fatal(err)
	}
	tests := []struct {
		name string
		q    Query
		want int // entries in the view
	}{
		{"unfiltered/top", Query{Limit: 50}, 1_000_000},
		{"unfiltered/middle", Query{Limit: 50, Offset: 500_000}, 1_000_000},
		{"filtered1pct/top", Query{Limit: 50, Match: rare.Match}, 10_000},
		{"filtered1pct/middle", Query{Limit: 50, Offset: 5_000, Match: rare.Match}, 10_000},
		{"filtered1pct/cached/top", Query{Limit: 50, Match: rare.Match, Key: "rare"}, 10_000},
		{"filtered1pct/cached/middle", Query{Limit: 50, Offset: 5_000, Match: rare.Match, Key: "rare"}, 10_000},
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
	rare, err := filter.Compile(&pxperfv1.Filter{Host: "rare.example"})
	if err != nil {
		b.Fatal(err)
	}
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
				if p := s.List(Query{Limit: 50, Match: rare.Match, Key: key}); len(p.Entries) != 50 {
					b.Fatalf("window of %d entries", len(p.Entries))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/window")
		})
	}
}
