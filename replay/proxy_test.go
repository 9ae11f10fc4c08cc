package replay

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/proxy"
)

// publisher keeps what a recording proxy publishes.
type publisher struct {
	mu      sync.Mutex
	entries []*pxperfv1.Entry
	changed chan struct{} // closed and replaced on each call
}

func (p *publisher) Publish(_ context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	res := &pxperfv1.PublishResponse{}
	for _, e := range req.GetEntries() {
		p.entries = append(p.entries, e)
		res.Results = append(res.Results, &pxperfv1.PublishResult{Id: uint64(len(p.entries))})
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return res, nil
}

// final waits until ctx ends for the last entry of the exchange with url u.
func (p *publisher) final(t *testing.T, ctx context.Context, u string) *pxperfv1.Entry {
	t.Helper()
	for {
		p.mu.Lock()
		i := slices.IndexFunc(p.entries, func(e *pxperfv1.Entry) bool {
			return e.GetUrl() == u && e.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING
		})
		changed := p.changed
		p.mu.Unlock()
		if i >= 0 {
			return p.entries[i]
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the recording proxy recorded no exchange with %s", u)
		}
	}
}

// recordingProxy starts pxperf's recording proxy on loopback, allowed to
// reach loopback targets, and returns its URL and what it publishes.
func recordingProxy(t *testing.T) (*url.URL, *publisher) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub := &publisher{changed: make(chan struct{})}
	p, err := proxy.New(proxy.Config{Listen: lis.Addr().String(), AllowTargets: "127.0.0.1"}, pub, nil)
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("proxy Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("proxy Serve: %v", err)
		}
	})
	return &url.URL{Scheme: "http", Host: lis.Addr().String()}, pub
}

// Through the recording proxy, the request goes as recorded, and the
// proxy records the exchange with replay_of: plain http, and https over
// a CONNECT tunnel, whose entry is the one linked.
func TestDoThroughProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	proxyURL, pub := recordingProxy(t)
	target, got := newTarget(t)
	secure := httptest.NewTLSServer(target.Config.Handler)
	defer secure.Close()
	tc := findCase(t, "a body with its type and quotes")
	for _, s := range []struct {
		name   string
		target *httptest.Server
		client *http.Client
		record func(addr string) string // the url of the proxy's entry
	}{
		{"http", target, nil, func(addr string) string { return "http://" + addr + "/api" }},
		{"https", secure, secure.Client(), func(addr string) string { return addr }},
	} {
		t.Run(s.name, func(t *testing.T) {
			addr := s.target.Listener.Addr().String()
			recorded := tc.at(addr)
			recorded.Url = strings.Replace(recorded.Url, "http:", s.name+":", 1)
			e, err := Do(ctx, recorded, Options{Proxy: proxyURL, Client: s.client})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, receive(t, ctx, got), addr, "User-Agent", "Content-Length", "Via", "Accept-Encoding")
			if d := e.GetProxyDecision(); d.GetRoute() != pxperfv1.Route_ROUTE_PROXY || d.GetUpstream() != proxyURL.Host ||
				e.GetStatusCode() != 200 || e.GetReplayOf() != 17 {
				t.Errorf("Do's entry: route %v via %q, status %d, replay_of %d; want PROXY via %s, 200, 17",
					d.GetRoute(), d.GetUpstream(), e.GetStatusCode(), e.GetReplayOf(), proxyURL.Host)
			}
			if v := headerValues(e.GetRequestHeaders(), proxy.ReplayOfHeader); v != nil {
				t.Errorf("Do's entry records %s %q", proxy.ReplayOfHeader, v)
			}
			rec := pub.final(t, ctx, s.record(addr))
			if rec.GetReplayOf() != 17 || rec.GetStatusCode() != 200 {
				t.Errorf("the proxy's entry: replay_of %d, status %d; want 17, 200", rec.GetReplayOf(), rec.GetStatusCode())
			}
		})
	}
	secure.Client().CloseIdleConnections()
}

// curl through the recording proxy, as Curl writes it with a proxy, gets
// its exchange linked too: plain http, and https, whose CONNECT carries
// the link.
func TestCurlThroughProxy(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: the command lines are not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	proxyURL, pub := recordingProxy(t)
	target, got := newTarget(t)
	secure := httptest.NewTLSServer(target.Config.Handler)
	defer secure.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tc := findCase(t, "a body with its type and quotes")
	for _, s := range []struct {
		name   string
		target *httptest.Server
		record func(addr string) string // the url of the proxy's entry
	}{
		{"http", target, func(addr string) string { return "http://" + addr + "/api" }},
		{"https", secure, func(addr string) string { return addr }},
	} {
		t.Run(s.name, func(t *testing.T) {
			addr := s.target.Listener.Addr().String()
			recorded := tc.at(addr)
			recorded.Url = strings.Replace(recorded.Url, "http:", s.name+":", 1)
			cmd, err := Curl(recorded, CurlOptions{Proxy: proxyURL})
			if err != nil {
				t.Fatal(err)
			}
			if out, err := sh(t, ctx, cmd, "CURL_CA_BUNDLE="+ca); err != nil || string(out) != "ok" {
				t.Fatalf("%s: %q, %v", cmd, out, err)
			}
			tc.check(t, receive(t, ctx, got), addr, "User-Agent", "Accept", "Content-Length", "Via")
			if rec := pub.final(t, ctx, s.record(addr)); rec.GetReplayOf() != 17 {
				t.Errorf("the proxy's entry: replay_of %d, want 17", rec.GetReplayOf())
			}
		})
	}
}
