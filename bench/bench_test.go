package bench

import (
	"slices"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The scenarios. See the package doc for what each measures.
var (
	ingest = scenario{subscribers: 0, batch: 100, perIteration: 100_000}
	relay  = scenario{subscribers: 1, batch: 100, perIteration: 100_000, archive: true}
	// relayBare is relay without pxperf's archive: issue 5's end-to-end
	// figure, the update throttler's own path.
	relayBare = scenario{subscribers: 1, batch: 100, perIteration: 100_000}
	fanout    = scenario{subscribers: 100, batch: 100, perIteration: 10_000, archive: true}
)

// BenchmarkIngest: one PublishStream, messages of 100 entries; entries/s
// acknowledged by the server.
func BenchmarkIngest(b *testing.B) { benchPair(b, ingest) }

// BenchmarkRelay: one PublishStream and one unthrottled subscriber;
// entries/s delivered to the subscriber.
func BenchmarkRelay(b *testing.B) { benchPair(b, relay) }

// BenchmarkFanout: one PublishStream and 100 unthrottled subscribers, each
// on its own connection; entries/s delivered, summed over subscribers.
func BenchmarkFanout(b *testing.B) { benchPair(b, fanout) }

// benchPair runs sc against the bare server, then against pxperf, as
// sub-benchmarks of b. The pxperf result also reports pxperf/bare: its
// entries/s over the median entries/s of the bare runs of this process
// (with -count N, the N bare runs come first).
func benchPair(b *testing.B, sc scenario) {
	var bareRates []float64
	b.Run(string(bare), func(b *testing.B) {
		bareRates = append(bareRates, measure(b, bare, sc))
	})
	b.Run(string(pxperf), func(b *testing.B) {
		rate := measure(b, pxperf, sc)
		if len(bareRates) > 0 {
			b.ReportMetric(rate/median(bareRates), "pxperf/bare")
		}
	})
}

// measure runs sc against a server of kind k for b's iterations and
// returns the entries per second it reports: delivered (summed over
// subscribers) when sc has subscribers, else acknowledged.
func measure(b *testing.B, k kind, sc scenario) float64 {
	r := newRig(b, k, sc)
	warm := r.messages()
	iterations := 0
	for b.Loop() {
		if err := r.iterate(sc.perIteration); err != nil {
			b.Fatalf("iteration %d: %v", iterations+1, err)
		}
		iterations++
	}
	elapsed := b.Elapsed().Seconds()
	counts, err := r.check()
	if err != nil {
		b.Fatalf("after %d iterations: %v (%s)", iterations, err, counts)
	}
	entries := float64(iterations * sc.perIteration * max(1, sc.subscribers))
	rate := entries / elapsed
	b.ReportMetric(rate, "entries/s")
	if sc.subscribers > 0 {
		b.ReportMetric(entries/float64(r.messages()-warm), "entries/msg")
	}
	b.Logf("%d iterations, %.0f entries in %.3fs; %s", iterations, entries, elapsed, counts)
	return rate
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestScenarios runs each scenario at a small scale against both servers,
// so that go test (and -race) checks the harness and goleak checks that
// every goroutine ends, without running the benchmarks.
func TestScenarios(t *testing.T) {
	small := func(sc scenario) scenario {
		sc.perIteration = 1_000
		sc.subscribers = min(sc.subscribers, 5)
		return sc
	}
	for _, tc := range []struct {
		name string
		sc   scenario
	}{
		{"ingest", small(ingest)},
		{"relay", small(relay)},
		{"fanout", small(fanout)},
	} {
		for _, k := range []kind{bare, pxperf} {
			t.Run(tc.name+"/"+string(k), func(t *testing.T) {
				r := newRig(t, k, tc.sc)
				for range 3 {
					if err := r.iterate(tc.sc.perIteration); err != nil {
						t.Fatal(err)
					}
				}
				if counts, err := r.check(); err != nil {
					t.Fatalf("%v (%s)", err, counts)
				}
			})
		}
	}
}

// TestEntrySize keeps the published entries near the 300 bytes the
// design's figures assume.
func TestEntrySize(t *testing.T) {
	pool := entryPool()
	total := 0
	for _, e := range pool {
		total += proto.Size(e)
	}
	avg := float64(total) / float64(len(pool))
	t.Logf("marshalled entry: %.1f bytes on average (first %d, message of 100: %d bytes)",
		avg, proto.Size(pool[0]), len(publishRequests(100)[0]))
	if avg < 270 || avg > 330 {
		t.Errorf("marshalled entry is %.1f bytes on average, want about 300", avg)
	}
}
