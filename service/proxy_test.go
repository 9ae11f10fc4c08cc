package service_test

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pxperf/pxperf/auth"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/grpc/metadata"
)

// A request through the recording proxy reaches the origin and comes back
// as one completed entry, with the proxy's figures in GetStats.
func TestRecordingProxy(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no credentials reached the origin", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "hello from the origin")
	}))
	defer origin.Close()
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Proxy.ListenAddress = plis.Addr().String()
		c.Proxy.AllowTargets = "127.0.0.1" // the origin is on loopback
	})
	served := make(chan error, 1)
	go func() { served <- h.srv.ServeProxy(plis) }()
	t.Cleanup(func() {
		h.srv.Shutdown()
		if err := <-served; err != nil {
			t.Errorf("ServeProxy: %v", err)
		}
	})
	ctx := testContext(t)

	proxyURL := &url.URL{Scheme: "http", Host: plis.Addr().String()}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+"/path", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello from the origin" {
		t.Fatalf("through the proxy: %d %q", resp.StatusCode, body)
	}

	// The proxy counts an entry published once the call returns, after the
	// store has it: wait for both.
	st := h.waitStats(t, "the entry to be completed", func(st *pxperfv1.Stats) bool {
		return st.GetStore().GetCompleted() == 1 && st.GetProxy().GetPublished() == 2
	})
	if p := st.GetProxy(); p.GetRequests() != 1 || p.GetPublished() != 2 || p.GetDropped() != 0 {
		t.Errorf("proxy stats %v, want 1 request, 2 entries published (pending, completed), none dropped", p)
	}
	list, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetEntries()) != 1 {
		t.Fatalf("entries %v, want one", list.GetEntries())
	}
	e := list.GetEntries()[0]
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetStatusCode() != 200 || e.GetUrl() != origin.URL+"/path" {
		t.Errorf("entry %v, want the completed GET of /path", e)
	}
	for _, hd := range e.GetRequestHeaders() {
		if hd.GetName() == "Authorization" && hd.GetValue() == "Bearer secret" {
			t.Error("the credential was stored; want it redacted")
		}
	}
}

// serveProxy serves h's recording proxy on lis until the test ends.
func (h *harness) serveProxy(t *testing.T, lis net.Listener) {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- h.srv.ServeProxy(lis) }()
	t.Cleanup(func() {
		h.srv.Shutdown()
		if err := <-served; err != nil {
			t.Errorf("ServeProxy: %v", err)
		}
	})
}

// proxyGet sends a GET for u through the proxy at proxyAddr, with the
// Proxy-Authorization authz unless it is empty, and returns the status.
func proxyGet(t *testing.T, ctx context.Context, proxyAddr, u, authz string) int {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Proxy-Authorization", authz)
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", u, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// With a token file, the recording proxy takes Basic credentials of the
// tokens with the proxy role (admin too), and refuses the server's own
// listening addresses even when loopback is allowed.
func TestRecordingProxyClientAuth(t *testing.T) {
	const proxyTok, viewTok, adminTok = "proxy-token-0123456789", "view-token-0123456789", "admin-token-0123456789"
	tokens, err := auth.NewTokens(map[string]auth.Identity{
		proxyTok: {Name: "alice", Roles: []auth.Role{auth.RoleProxy}},
		viewTok:  {Name: "ui", Roles: []auth.Role{auth.RoleView}},
		adminTok: {Name: "ops", Roles: []auth.Role{auth.RoleAdmin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer origin.Close()
	served, err := net.Listen("tcp", "127.0.0.1:0") // stands for the gRPC listener
	if err != nil {
		t.Fatal(err)
	}
	defer served.Close()
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, func(c *pxperfv1.Config) {
		c.Proxy.ListenAddress = plis.Addr().String()
		c.Proxy.AllowTargets = "127.0.0.1"
	}, service.Options{Tokens: tokens, ServedAddrs: []net.Addr{served.Addr()}})
	h.serveProxy(t, plis)
	ctx := testContext(t)
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	for _, tc := range []struct {
		name, url, authz string
		want             int
	}{
		{"no credentials", origin.URL, "", http.StatusProxyAuthRequired},
		{"a view token", origin.URL, basic("ui", viewTok), http.StatusProxyAuthRequired},
		{"a proxy token under another name", origin.URL, basic("ui", proxyTok), http.StatusProxyAuthRequired},
		{"a proxy token", origin.URL, basic("alice", proxyTok), http.StatusOK},
		{"an admin token", origin.URL, basic("ops", adminTok), http.StatusOK},
		{"the server's own port", "http://" + served.Addr().String() + "/", basic("alice", proxyTok), http.StatusForbidden},
	} {
		if got := proxyGet(t, ctx, plis.Addr().String(), tc.url, tc.authz); got != tc.want {
			t.Errorf("%s: %d; want %d", tc.name, got, tc.want)
		}
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "bearer "+viewTok)
	res, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.GetStats().GetProxy(); p.GetAuthFailures() != 3 || p.GetDenied() != 1 || p.GetRequests() != 3 {
		t.Errorf("proxy stats %v; want 3 auth failures, 1 denied, 3 requests", p)
	}
	for _, a := range res.GetStats().GetActiveAlerts() {
		if a.GetName() == "proxy_open" {
			t.Errorf("alert %v with client authentication on", a)
		}
	}
}

// addrListener reports another address than its own, to stand for a
// listener beyond loopback without leaving loopback.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// A recording proxy listening beyond loopback without client
// authentication raises proxy_open at once: in GetStats, and for a
// WatchStats stream opened later; on loopback it does not.
func TestRecordingProxyOpenAlert(t *testing.T) {
	for _, beyond := range []bool{true, false} {
		t.Run(map[bool]string{true: "beyond loopback", false: "loopback"}[beyond], func(t *testing.T) {
			plis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, func(c *pxperfv1.Config) {
				c.Proxy.ListenAddress = plis.Addr().String()
				c.Server.MetricsAddress = "127.0.0.1:0"
			})
			var lis net.Listener = plis
			if beyond {
				lis = addrListener{plis, &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 3128}}
			}
			h.serveProxy(t, lis)
			ctx := testContext(t)
			// Once the proxy answers, it has served, and the monitor has
			// sampled it.
			if got := proxyGet(t, ctx, plis.Addr().String(), "http://127.0.0.1:1/", ""); got != http.StatusForbidden {
				t.Fatalf("a loopback target: %d; want 403", got)
			}
			res, err := h.client.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var alert *pxperfv1.Alert
			for _, a := range res.GetStats().GetActiveAlerts() {
				if a.GetName() == "proxy_open" {
					alert = a
				}
			}
			// /metrics counts the open listener the alert is about.
			if got, want := gaugeValue(t, h, "pxperf_proxy_open_listeners"), map[bool]float64{true: 1, false: 0}[beyond]; got != want {
				t.Errorf("pxperf_proxy_open_listeners = %v, want %v", got, want)
			}
			if !beyond {
				if alert != nil {
					t.Errorf("alert %v for a proxy on loopback", alert)
				}
				return
			}
			if alert == nil || !strings.Contains(alert.GetMessage(), "192.0.2.10:3128") {
				t.Fatalf("active alerts %v; want proxy_open naming 192.0.2.10:3128", res.GetStats().GetActiveAlerts())
			}
			ws, err := h.client.Service().WatchStats(ctx, &pxperfv1.WatchStatsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for {
				m, err := ws.Recv()
				if err != nil {
					t.Fatalf("WatchStats ended before the proxy_open alert: %v", err)
				}
				if a := m.GetAlert(); a.GetName() == "proxy_open" && a.GetState() == pxperfv1.AlertState_ALERT_STATE_FIRING {
					break
				}
			}
		})
	}
}
