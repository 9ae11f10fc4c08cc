package client

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
)

// testMemoryMB is the memory budget of test servers: the largest allowed.
// The server evicts entries when the RSS of its process passes
// memory.high_water of the budget (the pressure watcher), and when it is
// at monitor.memory_alert_threshold of it at a monitor sample (the first
// one at start; monitor.auto_optimize). An in-process test server shares
// its process with the whole -race test binary, whose RSS is often above
// 80 % of the default 500 MiB: the server would evict what a test has just
// published. Tests of pressure eviction set a small budget themselves.
const testMemoryMB = 1 << 20

// testServer is a real pxperf server on an in-memory listener. It can be
// restarted on the same config, and so the same archive directory.
type testServer struct {
	t      *testing.T
	cfg    *pxperfv1.Config
	opts   service.Options
	lis    atomic.Pointer[bufconn.Listener] // where dials go
	mu     sync.Mutex
	srv    *service.Server
	served chan error
}

// startServer starts a server with the default config for tests changed by
// edit (which may be nil). It is stopped when the test ends.
func startServer(t *testing.T, edit func(*pxperfv1.Config), opts service.Options) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	cfg.Throttle.HeartbeatInterval = durationpb.New(100 * time.Millisecond)
	cfg.Throttle.MaxUpdatesPerSecond = 1000
	cfg.Memory.MaxMemoryMb = testMemoryMB
	if edit != nil {
		edit(cfg)
	}
	ts := &testServer{t: t, cfg: cfg, opts: opts}
	lis := bufconn.Listen(1 << 20)
	ts.lis.Store(lis)
	ts.serve(lis)
	t.Cleanup(func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.stopLocked()
	})
	return ts
}

// serve starts a server on lis.
func (ts *testServer) serve(lis *bufconn.Listener) {
	ts.t.Helper()
	srv, err := service.New(ts.cfg, ts.opts)
	if err != nil {
		ts.t.Fatalf("service.New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.srv, ts.served = srv, served
}

func (ts *testServer) stopLocked() {
	ts.srv.Shutdown()
	if err := <-ts.served; err != nil {
		ts.t.Errorf("Serve: %v", err)
	}
}

// restart shuts the server down and starts a new one on the same config.
// Dials made meanwhile wait for the new server rather than fail. It may be
// called from any goroutine; it reports failures with t.Errorf.
func (ts *testServer) restart() {
	next := bufconn.Listen(1 << 20)
	ts.lis.Store(next)
	ts.mu.Lock()
	ts.stopLocked()
	ts.mu.Unlock()
	srv, err := service.New(ts.cfg, ts.opts)
	if err != nil {
		ts.t.Errorf("service.New after restart: %v", err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(next) }()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.srv, ts.served = srv, served
}

// dial connects to the current listener.
func (ts *testServer) dial(ctx context.Context, _ string) (net.Conn, error) {
	return ts.lis.Load().DialContext(ctx)
}

// client returns a Client of the server, configured by cfg plus an
// in-memory dialer (dial, or the server's own when nil). It is closed when
// the test ends.
func (ts *testServer) client(t *testing.T, cfg Config, dial func(context.Context, string) (net.Conn, error)) *Client {
	t.Helper()
	if dial == nil {
		dial = ts.dial
	}
	cfg.Address = "passthrough:///bufnet"
	cfg.DialOptions = append([]grpc.DialOption{grpc.WithContextDialer(dial)}, cfg.DialOptions...)
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// killer dials through next and can close every connection it made, as a
// network failure would.
type killer struct {
	next  func(context.Context, string) (net.Conn, error)
	mu    sync.Mutex
	conns []net.Conn
	dials int
}

func (k *killer) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := k.next(ctx, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.conns = append(k.conns, c)
	k.dials++
	return c, nil
}

// kill closes the connections made so far and returns how many were open.
func (k *killer) kill() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := len(k.conns)
	for _, c := range k.conns {
		c.Close()
	}
	k.conns = nil
	return n
}

// entries returns n valid entries for publishing.
func entries(n int) []*pxperfv1.Entry {
	// Now, not a fixed time: the archive deletes files whose entries are
	// older than logs.max_age.
	now := timestamppb.Now()
	es := make([]*pxperfv1.Entry, n)
	for i := range es {
		es[i] = &pxperfv1.Entry{Method: "GET", Url: "http://example.test/", StartTime: now}
	}
	return es
}

// publishAll publishes n entries in batches of size and fails the test
// unless every one is accepted.
func publishAll(t *testing.T, ctx context.Context, c *Client, n, size int) {
	t.Helper()
	for n > 0 {
		k := min(n, size)
		results, err := c.Publish(ctx, entries(k)...)
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		for _, r := range results {
			if r.GetRejection() != nil {
				t.Fatalf("entry rejected: %v", r.GetRejection())
			}
		}
		n -= k
	}
}
