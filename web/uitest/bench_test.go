package uitest

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BenchmarkFollow fills the store with PXPERF_UI_BENCH_ENTRIES entries
// (default 200 000), opens the page, and publishes as fast as one
// publisher can for PXPERF_UI_BENCH_SECONDS (default 5) while the table
// follows the newest. It reports the frame time (requestAnimationFrame
// deltas, p50, p95 and the longest), the JS heap after the run
// (Runtime.getHeapUsage), the table rows in the DOM against those on
// screen, and the rate published. Run it alone, with -benchtime 1x: one
// iteration is the whole run.
func BenchmarkFollow(b *testing.B) {
	entries := envInt(b, "PXPERF_UI_BENCH_ENTRIES", 200_000)
	seconds := envInt(b, "PXPERF_UI_BENCH_SECONDS", 5)
	ctx := newBrowser(b, 1280, 800, 10*time.Minute)
	s := startServer(b, "--max-entries", strconv.Itoa(entries+seconds*200_000), "--archive=false", "--max-memory-mb", "4000")
	c := s.client(b, "")

	const batch = 1000
	next := 0
	publishBatch := func(ctx context.Context) error {
		es := make([]*pxperfv1.Entry, batch)
		for i := range es {
			es[i] = testentry.Proxied(next + i)
		}
		next += batch
		_, err := c.Publish(ctx, &pxperfv1.PublishRequest{Entries: es})
		return err
	}
	start := time.Now()
	for next < entries {
		if err := publishBatch(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("filled the store with %d entries in %v", next, time.Since(start).Round(time.Millisecond))
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url)); err != nil {
		b.Fatal(err)
	}
	waitFor(ctx, b, "the newest row shows", `document.querySelector("#scroller .row:not([hidden]) .id")?.textContent === "`+strconv.Itoa(next)+`"`)

	before := topID(ctx, b)
	b.ResetTimer()
	for range b.N {
		eval[any](ctx, b, `__pxperf.startFrames()`)
		pctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
		var published atomic.Int64
		done := make(chan error, 1)
		go func() {
			from := next
			var err error
			for pctx.Err() == nil && err == nil {
				err = publishBatch(pctx)
			}
			published.Store(int64(next - from))
			// The end of the run cancels the call in flight; gRPC may say
			// so before the context does.
			if pctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
				err = nil
			}
			done <- err
		}()
		t0 := time.Now()
		<-pctx.Done()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(t0)
		cancel()
		frames := eval[[]float64](ctx, b, `__pxperf.stopFrames()`)
		if len(frames) < 10 {
			b.Fatalf("%d frames recorded, want many", len(frames))
		}
		heap, err := chromedp.Call(ctx, runtime.GetHeapUsage, cdp.Empty{})
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(frames)
		pct := func(p float64) float64 { return frames[int(p*float64(len(frames)-1))] }
		b.ReportMetric(pct(0.5), "frame-p50-ms")
		b.ReportMetric(pct(0.95), "frame-p95-ms")
		b.ReportMetric(frames[len(frames)-1], "frame-max-ms")
		b.ReportMetric(float64(heap.UsedSize)/(1<<20), "heap-used-MiB")
		b.ReportMetric(float64(eval[int](ctx, b, `__pxperf.domRows()`))/float64(eval[int](ctx, b, `__pxperf.visibleRows()`)), "dom-rows/visible")
		b.ReportMetric(float64(published.Load())/elapsed.Seconds(), "published/s")
		list, err := c.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(list.GetTotalSize()), "store-entries")
	}
	b.StopTimer()
	// The table followed: its top row is newer than when the run began.
	// (The id of the newest cannot be known here: the server may have
	// accepted the batch whose call the end of the run cancelled.)
	if after := topID(ctx, b); after <= before {
		b.Errorf("the top row's id is %d after the run, %d before: the table did not follow", after, before)
	}
	screenshot(ctx, b, b.TempDir(), "follow")
}

// topID returns the id in the table's top row.
func topID(ctx context.Context, tb testing.TB) int {
	tb.Helper()
	id, err := strconv.Atoi(eval[string](ctx, tb, `document.querySelector("#scroller .row:not([hidden]) .id")?.textContent ?? ""`))
	if err != nil {
		tb.Fatalf("the top row's id: %v", err)
	}
	return id
}

// envInt returns the integer in the environment variable name, or def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
