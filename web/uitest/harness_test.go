package uitest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testserve"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// server is a running pxperf serve (see testserve.Start).
type server struct{ *testserve.Server }

// startServer runs pxperf serve on free loopback ports with args, and
// stops it when the test ends.
func startServer(t testing.TB, args ...string) server {
	t.Helper()
	return server{testserve.Start(t, args...)}
}

// client returns a gRPC client of s that sends token, if any.
func (s server) client(t testing.TB, token string) pxperfv1.PerformanceServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), method, req, reply, cc, opts...)
		}))
	}
	conn, err := grpc.NewClient(s.Addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pxperfv1.NewPerformanceServiceClient(conn)
}

// publish publishes entries with c, failing t on any rejection.
func publish(ctx context.Context, t testing.TB, c pxperfv1.PerformanceServiceClient, entries []*pxperfv1.Entry) {
	t.Helper()
	res, err := c.Publish(ctx, &pxperfv1.PublishRequest{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.GetResults() {
		if r.GetRejection() != nil {
			t.Fatalf("entry %d rejected: %v", i, r.GetRejection())
		}
	}
}

// chromium returns the browser to drive, or skips t when there is none.
func chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PXPERF_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (set PXPERF_CHROMIUM, or install chromium: apt-get install --no-install-recommends chromium); .ci/run installs it")
	return ""
}

// newBrowser starts a headless Chromium with a window of width×height and
// returns a tab's context, whose deadline is the test's (at most timeout).
func newBrowser(t testing.TB, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("the browser tests build and run the binary and a browser")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancel()
	})
	// Start the browser now, so that a failure to is reported as one.
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return tctx
}

// screenshot saves the tab as NAME.png in dir, and in the directory
// PXPERF_UI_SCREENSHOTS names when it is set, and returns its path in dir.
func screenshot(ctx context.Context, t testing.TB, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	if keep := os.Getenv("PXPERF_UI_SCREENSHOTS"); keep != "" {
		if err := os.WriteFile(filepath.Join(keep, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// waitFor polls the JavaScript expression until it is truthy, failing t
// with what after timeout.
func waitFor(ctx context.Context, t testing.TB, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting until %s (%s): %v", what, expr, err)
	}
}

// eval returns the value of the JavaScript expression.
func eval[T any](ctx context.Context, t testing.TB, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// rowsJS is a JavaScript expression: the rows shown, each an array of its
// cells' text.
const rowsJS = `[...document.querySelectorAll("#scroller .row:not([hidden])")].map(r => [...r.children].map(c => c.textContent))`
