package uitest

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	p := openBenchPage(b, entries, entries+seconds*200_000)
	ctx, c := p.ctx, p.c

	before := topID(ctx, b)
	b.ResetTimer()
	for range b.N {
		eval[any](ctx, b, `__pxperf.startFrames()`)
		pctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
		var published atomic.Int64
		done := make(chan error, 1)
		go func() {
			from := p.next
			var err error
			for pctx.Err() == nil && err == nil {
				err = p.publishBatch(pctx)
			}
			published.Store(int64(p.next - from))
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

// BenchmarkJump fills the store as BenchmarkFollow does, opens the page,
// pauses, and jumps PXPERF_UI_BENCH_JUMPS times (default 200) to a random
// offset in the view, as a drag of the scrollbar would
// (__pxperf.jumpTo). Each jump is timed in the page, with
// performance.now(), from the scroll until a frame whose rows on screen
// are all the entries of that offset (newest first, the row at offset k
// has id newest−k): CDP round trips are not counted, and the time is
// rounded up to a frame. It reports the p50, p99 and longest jump.
func BenchmarkJump(b *testing.B) {
	entries := envInt(b, "PXPERF_UI_BENCH_ENTRIES", 200_000)
	jumps := envInt(b, "PXPERF_UI_BENCH_JUMPS", 200)
	p := openBenchPage(b, entries, entries)
	ctx := p.ctx
	eval[any](ctx, b, `document.getElementById("pause").click()`)
	waitFor(ctx, b, "the table is paused", `document.getElementById("status").textContent.includes("paused")`)
	visible := eval[int](ctx, b, `__pxperf.visibleRows()`)
	rng := rand.New(rand.NewPCG(1, 2))

	b.ResetTimer()
	for range b.N {
		ms := make([]float64, jumps)
		for j := range ms {
			k := rng.IntN(p.next - visible)
			got, err := chromedp.Run(ctx, chromedp.Evaluate[jump](fmt.Sprintf(jumpJS, k, p.next), chromedp.EvalAwaitPromise))
			if err != nil {
				b.Fatalf("jump %d to offset %d: %v", j, k, err)
			}
			if got.Err != "" {
				b.Fatalf("jump %d to offset %d: %s", j, k, got.Err)
			}
			ms[j] = got.MS
		}
		slices.Sort(ms)
		pct := func(p float64) float64 { return ms[int(p*float64(len(ms)-1))] }
		b.ReportMetric(pct(0.5), "jump-p50-ms")
		b.ReportMetric(pct(0.99), "jump-p99-ms")
		b.ReportMetric(ms[len(ms)-1], "jump-max-ms")
	}
	b.StopTimer()
	screenshot(ctx, b, b.TempDir(), "jump")
}

// jump is what jumpJS returns.
type jump struct {
	MS  float64 `json:"ms"`
	Err string  `json:"err"`
}

// jumpJS is a JavaScript expression, a format taking the offset to jump to
// and the newest id. It jumps, then checks once a frame until the rows on
// screen start within two rows of the offset (the scrollbar maps to rows
// by proportion in a tall view, so a jump can land a row or two off) and
// each shows the entry of its offset; it returns the time that took, or
// after 10 s an error.
const jumpJS = `(() => {
	const k = %d, newest = %d;
	const t0 = performance.now();
	__pxperf.jumpTo(k);
	return new Promise((resolve) => {
		const check = () => {
			const rows = [...document.querySelectorAll("#scroller .row:not([hidden])")];
			const first = rows.length ? Number(rows[0].dataset.index) : -1;
			const shown = Math.abs(first - k) <= 2 &&
				rows.every((r) => r.querySelector(".id").textContent === String(newest - Number(r.dataset.index)));
			const ms = performance.now() - t0;
			if (shown) {
				resolve({ms});
			} else if (ms > 10000) {
				resolve({ms, err: "after 10 s the first row is " + first + ", ids " + rows.map((r) => r.querySelector(".id").textContent).join(" ")});
			} else {
				requestAnimationFrame(check);
			}
		};
		requestAnimationFrame(check);
	});
})()`

// benchPage is the real binary whose store a benchmark filled, and a
// browser showing its page with the newest row on top.
type benchPage struct {
	ctx  context.Context
	c    pxperfv1.PerformanceServiceClient
	next int // the entries published: the newest's id
}

// openBenchPage starts the binary with room for capacity entries, fills
// its store with entries entries, and opens the page in a 1280×800
// browser.
func openBenchPage(b *testing.B, entries, capacity int) *benchPage {
	b.Helper()
	ctx := newBrowser(b, 1280, 800, 10*time.Minute)
	s := startServer(b, "--max-entries", strconv.Itoa(capacity), "--archive=false", "--max-memory-mb", "4000")
	p := &benchPage{ctx: ctx, c: s.client(b, "")}
	start := time.Now()
	for p.next < entries {
		if err := p.publishBatch(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("filled the store with %d entries in %v", p.next, time.Since(start).Round(time.Millisecond))
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL)); err != nil {
		b.Fatal(err)
	}
	waitFor(ctx, b, "the newest row shows", `document.querySelector("#scroller .row:not([hidden]) .id")?.textContent === "`+strconv.Itoa(p.next)+`"`)
	return p
}

// publishBatch publishes the next benchBatch entries. Only one goroutine
// at a time may call it.
func (p *benchPage) publishBatch(ctx context.Context) error {
	es := make([]*pxperfv1.Entry, benchBatch)
	for i := range es {
		es[i] = testentry.Proxied(p.next + i)
	}
	p.next += benchBatch
	_, err := p.c.Publish(ctx, &pxperfv1.PublishRequest{Entries: es})
	return err
}

// benchBatch is the entries a benchmark publishes per call.
const benchBatch = 1000
