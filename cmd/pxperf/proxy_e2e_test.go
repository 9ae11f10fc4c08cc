package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// through sends a CONNECT or a GET for target (host:port) through the
// proxy at proxyAddr and returns the status.
func through(t *testing.T, ctx context.Context, proxyAddr, method, target string) int {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: target, Path: "/grpc.health.v1.Health/Check"}, Host: target, Header: http.Header{}}
	if method == http.MethodConnect {
		req.URL = &url.URL{Opaque: target}
	}
	if err := req.WriteProxy(c); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// Through the recording proxy of the real binary, pxperf's own gRPC and
// metrics ports and another loopback service are refused with 403 and
// recorded as DENIED; --allow-targets opens the listed service only.
func TestProxyGuardsTheHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "inside") }))
	defer origin.Close()
	proxyRe := regexp.MustCompile(`msg="proxy serving".* addr=(\S+)`)
	metricsRe := regexp.MustCompile(`msg="serving metrics" url=http://(\S+)/metrics`)

	s := startServer(t, "--proxy-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
	proxyAddr, metricsAddr := s.Logged(t, ctx, proxyRe), s.Logged(t, ctx, metricsRe)
	targets := []string{s.Addr, metricsAddr, origin.Listener.Addr().String()}
	for _, target := range targets {
		for _, method := range []string{http.MethodConnect, http.MethodGet} {
			if got := through(t, ctx, proxyAddr, method, target); got != http.StatusForbidden {
				t.Errorf("%s %s: %d; want 403", method, target, got)
			}
		}
	}
	c, err := client.New(client.Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The proxy publishes off the request, in batches: poll until all
	// are stored.
	var denied []string
	for len(denied) != 2*len(targets) {
		res, err := c.ListEntries(ctx, &pxperfv1.ListEntriesRequest{})
		if err != nil {
			t.Fatalf("ListEntries: %v; denied entries so far %q, want a CONNECT and a GET for each of %q", err, denied, targets)
		}
		denied = denied[:0]
		for _, e := range res.GetEntries() {
			if e.GetError().GetKind() == pxperfv1.ErrorKind_ERROR_KIND_DENIED && e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED {
				denied = append(denied, e.GetMethod()+" "+e.GetHost())
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Allowed by address and port: the origin, and nothing else.
	s2 := startServer(t, "--proxy-listen", "127.0.0.1:0", "--allow-targets", origin.Listener.Addr().String())
	proxyAddr = s2.Logged(t, ctx, proxyRe)
	if got := through(t, ctx, proxyAddr, http.MethodGet, origin.Listener.Addr().String()); got != http.StatusOK {
		t.Errorf("GET the listed origin: %d; want 200", got)
	}
	if got := through(t, ctx, proxyAddr, http.MethodConnect, s2.Addr); got != http.StatusForbidden {
		t.Errorf("CONNECT the gRPC port with another target listed: %d; want 403", got)
	}
	if strings.Contains(s.Logs.String()+s2.Logs.String(), "without client authentication") {
		t.Errorf("a proxy on loopback warned of no client authentication:\n%s", s.Logs.String())
	}
}
