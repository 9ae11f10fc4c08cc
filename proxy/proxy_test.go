package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every test's context.
const testTimeout = 15 * time.Second

// fakePublisher records the entries it is given, and rejects those that
// pxperf would reject (protovalidate and store.Check), so that a test sees
// an invalid entry as a rejection. It can be blocked to stand for a pxperf
// that does not keep up.
type fakePublisher struct {
	v protovalidate.Validator

	mu         sync.Mutex
	entries    []*pxperfv1.Entry
	batches    []int
	rejections []string
	changed    chan struct{} // closed and replaced on each call
	block      chan struct{} // while open and not nil, Publish waits
	entered    chan struct{} // a token per blocked call
	err        error         // returned by every call when set
}

func newFakePublisher(t testing.TB) *fakePublisher {
	t.Helper()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatalf("protovalidate.New: %v", err)
	}
	return &fakePublisher{v: v, changed: make(chan struct{}), entered: make(chan struct{}, 1000)}
}

// blockCalls makes Publish wait until the returned func is called.
func (f *fakePublisher) blockCalls() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan struct{})
	f.block = c
	var once sync.Once
	return func() { once.Do(func() { close(c) }) }
}

func (f *fakePublisher) Publish(ctx context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
	f.mu.Lock()
	block, err := f.block, f.err
	f.mu.Unlock()
	if block != nil {
		f.entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	res := &pxperfv1.PublishResponse{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range req.GetEntries() {
		r := &pxperfv1.PublishResult{Id: uint64(len(f.entries) + 1)}
		err := f.v.Validate(e)
		if err == nil {
			err = store.Check(e)
		}
		if err != nil {
			r = &pxperfv1.PublishResult{Rejection: &pxperfv1.Rejection{Message: err.Error()}}
			f.rejections = append(f.rejections, fmt.Sprintf("%s %s %s: %v", e.GetState(), e.GetMethod(), e.GetUrl(), err))
		}
		res.Results = append(res.Results, r)
		f.entries = append(f.entries, e)
	}
	f.batches = append(f.batches, len(req.GetEntries()))
	close(f.changed)
	f.changed = make(chan struct{})
	return res, nil
}

// all returns the entries published so far.
func (f *fakePublisher) all() []*pxperfv1.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

// wait returns the first published entry for which ok holds, waiting for
// it until ctx ends.
func (f *fakePublisher) wait(t testing.TB, ctx context.Context, what string, ok func(*pxperfv1.Entry) bool) *pxperfv1.Entry {
	t.Helper()
	for {
		f.mu.Lock()
		for _, e := range f.entries {
			if ok(e) {
				f.mu.Unlock()
				return e
			}
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no published entry %s before the deadline; have %d entries", what, len(f.all()))
		}
	}
}

// exchangeEntries waits for the PENDING and the final entry of the one
// exchange whose url is u, and checks that they pair up.
func (f *fakePublisher) exchangeEntries(t testing.TB, ctx context.Context, u string) (pending, final *pxperfv1.Entry) {
	t.Helper()
	final = f.wait(t, ctx, "ending "+u, func(e *pxperfv1.Entry) bool {
		return e.GetUrl() == u && e.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING
	})
	pending = f.wait(t, ctx, "starting "+u, func(e *pxperfv1.Entry) bool {
		return e.GetUrl() == u && e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING
	})
	if pending.GetRequestId() == "" || pending.GetRequestId() != final.GetRequestId() {
		t.Errorf("request ids: pending %q, final %q; want equal, not empty", pending.GetRequestId(), final.GetRequestId())
	}
	if !pending.GetStartTime().AsTime().Equal(final.GetStartTime().AsTime()) {
		t.Errorf("start times: pending %v, final %v; want equal", pending.GetStartTime().AsTime(), final.GetStartTime().AsTime())
	}
	return pending, final
}

// harness is a proxy serving on loopback, a fake publisher behind it, and
// an HTTP client that uses it.
type harness struct {
	ctx    context.Context
	p      *Proxy
	pub    *fakePublisher
	url    *url.URL // of the proxy
	client *http.Client
}

// newHarness starts a proxy with cfg changed by edit (which may be nil;
// cfg.Listen is the address the proxy serves on).
// It is shut down, and checked to have built only valid entries, when the
// test ends.
func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	pub := newFakePublisher(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The tests' origins are on loopback, which the proxy reaches only
	// when allowed to.
	cfg := Config{Listen: lis.Addr().String(), AllowTargets: "127.0.0.1"}
	if edit != nil {
		edit(&cfg)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(cfg, pub, log)
	if err != nil {
		lis.Close()
		t.Fatalf("New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(lis) }()
	pu := &url.URL{Scheme: "http", Host: lis.Addr().String()}
	tr := &http.Transport{Proxy: http.ProxyURL(pu), DisableCompression: true}
	h := &harness{ctx: ctx, p: p, pub: pub, url: pu, client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		pub.mu.Lock()
		defer pub.mu.Unlock()
		if s := p.Stats(); s.Rejected != 0 || len(pub.rejections) != 0 {
			t.Errorf("the proxy built invalid entries: Stats.Rejected %d, rejections:\n%s", s.Rejected, strings.Join(pub.rejections, "\n"))
		}
	})
	return h
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
// For conditions that no event announces (a counter, a closed socket).
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline", what)
		}
	}
}

// rawConnect opens a tunnel through the proxy at proxyAddr by hand, for
// tests that look at bytes. It returns the connection and the reader to
// read from it (which may hold bytes already).
func rawConnect(t testing.TB, ctx context.Context, proxyAddr, target string, header http.Header) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: header}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, res
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// header returns the values of name in hs.
func header(hs []*pxperfv1.Header, name string) []string {
	var vs []string
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			vs = append(vs, h.GetValue())
		}
	}
	return vs
}

func TestNewValidates(t *testing.T) {
	pub := newFakePublisher(t)
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no listen", Config{}, "Listen"},
		{"bad listen", Config{Listen: "localhost"}, "Listen"},
		{"https upstream", Config{Listen: ":0", Upstream: &url.URL{Scheme: "https", Host: "px:3128"}}, "Upstream"},
		{"upstream path", Config{Listen: ":0", Upstream: &url.URL{Scheme: "http", Host: "px:3128", Path: "/x"}}, "Upstream"},
		{"upstream port", Config{Listen: ":0", Upstream: &url.URL{Scheme: "http", Host: "px:99999"}}, "Upstream"},
		{"no proxy", Config{Listen: ":0", NoProxy: "10.0.0.0/99"}, "NoProxy"},
		{"body size", Config{Listen: ":0", MaxBodySize: -1}, "MaxBodySize"},
		{"queue", Config{Listen: ":0", QueueSize: -1}, "QueueSize"},
		{"conns", Config{Listen: ":0", MaxConns: -5}, "MaxConns"},
		{"idle", Config{Listen: ":0", IdleTimeout: -time.Second}, "IdleTimeout"},
		{"dial", Config{Listen: ":0", DialTimeout: -time.Second}, "DialTimeout"},
		{"redact", Config{Listen: ":0", RedactHeaders: []string{"X-Ok", ""}}, "RedactHeaders[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg, pub, nil)
			if err == nil {
				_ = p.Shutdown(context.Background())
				t.Fatalf("New(%+v) succeeded; want an error naming %s", tc.cfg, tc.field)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("New error %q; want ErrInvalidConfig naming %s", err, tc.field)
			}
		})
	}
	if _, err := New(Config{Listen: ":0"}, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New without a Publisher: %v; want ErrInvalidConfig", err)
	}
}

func TestNewDefaults(t *testing.T) {
	p, err := New(Config{Listen: "127.0.0.1:0", Upstream: &url.URL{Scheme: "http", Host: "px"}}, newFakePublisher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	c := p.cfg
	if c.MaxBodySize != 10<<10 || c.QueueSize != 4096 || c.MaxConns != 1000 || c.IdleTimeout != 90*time.Second ||
		c.DialTimeout != 10*time.Second || c.PublishTimeout != 10*time.Second || c.Now == nil {
		t.Errorf("defaults: got %+v", c)
	}
	if c.Upstream.Host != "px:80" {
		t.Errorf("upstream host %q; want px:80", c.Upstream.Host)
	}
}

// The idle connection of a keep-alive client is closed after IdleTimeout,
// and its slot freed.
func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	origin := newOrigin(t, okHandler("hi"))
	h := newHarness(t, func(c *Config) { c.IdleTimeout = 150 * time.Millisecond })
	var d net.Dialer
	c, err := d.DialContext(h.ctx, "tcp", h.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dl, _ := h.ctx.Deadline()
	_ = c.SetDeadline(dl)
	fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: %s\r\n\r\n", origin.URL, strings.TrimPrefix(origin.URL, "http://"))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "hi" || res.Close {
		t.Fatalf("got %d %q close=%v; want a kept-alive 200 hi", res.StatusCode, body, res.Close)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d, %v; want EOF when the proxy closes it", n, err)
	}
	waitFor(t, h.ctx, "ActiveConns back to 0", func() bool { return h.p.Stats().ActiveConns == 0 })
	_, final := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/")
	if final.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED {
		t.Errorf("entry state %v; want COMPLETED", final.GetState())
	}
}

// Beyond MaxConns, a connection waits until another closes.
func TestMaxConnsWaits(t *testing.T) {
	origin := newOrigin(t, okHandler("hi"))
	h := newHarness(t, func(c *Config) { c.MaxConns = 1 })
	var d net.Dialer
	first, err := d.DialContext(h.ctx, "tcp", h.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, h.ctx, "the first connection holding the slot", func() bool { return h.p.Stats().ActiveConns == 1 })

	got := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(h.ctx, http.MethodGet, origin.URL+"/", nil)
		res, err := h.client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		got <- err
	}()
	waitFor(t, h.ctx, "the second connection waiting", func() bool { return h.p.Stats().ConnWaits == 1 })
	select {
	case err := <-got:
		t.Fatalf("the second client was served (err %v) while the first held the only slot", err)
	default:
	}
	first.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second client: %v", err)
		}
	case <-h.ctx.Done():
		t.Fatal("the second client was not served after the first closed")
	}
	h.pub.exchangeEntries(t, h.ctx, origin.URL+"/")
}
