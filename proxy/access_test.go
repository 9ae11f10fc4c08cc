package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// With client authentication on, a request without valid credentials is
// answered 407 with a Basic challenge and not recorded; one with them
// passes, and neither its credentials nor any challenge of the upstream
// cross the proxy.
func TestClientAuth(t *testing.T) {
	const user, pw = "alice", "alice-token-0123456789"
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			http.Error(w, "proxy credentials reached the origin", http.StatusTeapot)
			return
		}
		io.WriteString(w, "ok")
	}))
	for _, chained := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "chained"}[chained]
		t.Run(name, func(t *testing.T) {
			var up *upstream
			h := newHarness(t, func(c *Config) {
				c.Authenticate = func(u, p string) bool { return u == user && p == pw }
				if chained {
					up = newUpstream(t, "", "")
					c.Upstream = up.url
				}
			})
			for _, tc := range []struct {
				name  string
				authz string // the client's Proxy-Authorization; "" for none
				want  int
			}{
				{"no credentials", "", http.StatusProxyAuthRequired},
				{"wrong password", basic(user, "wrong-token-0123456789"), http.StatusProxyAuthRequired},
				{"another user's name", basic("bob", pw), http.StatusProxyAuthRequired},
				{"not Basic", "Bearer " + pw, http.StatusProxyAuthRequired},
				{"bad base64", "Basic !!!", http.StatusProxyAuthRequired},
				{"right", basic(user, pw), http.StatusOK},
				{"right, scheme in upper case", "BASIC " + strings.TrimPrefix(basic(user, pw), "Basic "), http.StatusOK},
			} {
				req, _ := http.NewRequestWithContext(h.ctx, http.MethodGet, origin.URL+"/"+strings.ReplaceAll(tc.name, " ", "-"), nil)
				tr := &http.Transport{Proxy: http.ProxyURL(h.url)}
				if tc.authz != "" {
					tr.ProxyConnectHeader = http.Header{"Proxy-Authorization": {tc.authz}}
					req.Header.Set("Proxy-Authorization", tc.authz)
				}
				res, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("%s: GET: %v", tc.name, err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != tc.want {
					t.Errorf("%s: GET: %d %q; want %d", tc.name, res.StatusCode, body, tc.want)
				}
				if res.StatusCode == http.StatusProxyAuthRequired && !strings.HasPrefix(res.Header.Get("Proxy-Authenticate"), "Basic ") {
					t.Errorf("%s: 407 with Proxy-Authenticate %q; want a Basic challenge", tc.name, res.Header.Get("Proxy-Authenticate"))
				}
				// A tunnel, the same way.
				hdr := http.Header{}
				if tc.authz != "" {
					hdr.Set("Proxy-Authorization", tc.authz)
				}
				c, _, cres := rawConnect(t, h.ctx, h.url.Host, origin.Listener.Addr().String(), hdr)
				cres.Body.Close()
				c.Close()
				if cres.StatusCode != tc.want {
					t.Errorf("%s: CONNECT: %d; want %d", tc.name, cres.StatusCode, tc.want)
				}
				tr.CloseIdleConnections()
			}
			if s := h.p.Stats(); s.AuthFailures != 10 {
				t.Errorf("Stats.AuthFailures = %d; want 10 (5 GETs, 5 CONNECTs)", s.AuthFailures)
			}
			// Only the authenticated GETs and CONNECTs were recorded.
			waitFor(t, h.ctx, "the 4 authenticated exchanges to end", func() bool {
				n := 0
				for _, e := range h.pub.all() {
					if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
						n++
					}
				}
				return n == 4
			})
			for _, e := range h.pub.all() {
				if !e.GetTunnel() && !strings.Contains(e.GetUrl(), "/right") {
					t.Errorf("recorded %s %s; want only the authenticated requests", e.GetMethod(), e.GetUrl())
				}
				if a := e.GetUpstreamAuth(); chained && a.GetMethod() != pxperfv1.AuthMethod_AUTH_METHOD_NONE {
					t.Errorf("entry %s says %v was sent upstream; want NONE", e.GetUrl(), a.GetMethod())
				}
			}
			if chained {
				auths := up.authsSeen()
				if len(auths) != 4 {
					t.Errorf("the upstream saw %d requests; want 4 (2 GETs, 2 CONNECTs)", len(auths))
				}
				for _, a := range auths {
					if a != "" {
						t.Errorf("the upstream saw Proxy-Authorization %q; want none: the client's credentials are the proxy's", a)
					}
				}
			}
		})
	}
}

// An upstream that asks for credentials, behind a proxy with client
// authentication on: its 407 reaches the client without its challenge,
// since the client's credentials would go to the proxy, not to it.
func TestClientAuthUpstreamChallenge(t *testing.T) {
	up := newUpstream(t, "carol", "upstream-password")
	h := newHarness(t, func(c *Config) {
		c.Upstream = up.url
		c.Authenticate = func(u, p string) bool { return u == "alice" && p == "pw" }
	})
	origin := newOrigin(t, okHandler("unreachable"))
	req, _ := http.NewRequestWithContext(h.ctx, http.MethodGet, origin.URL+"/", nil)
	req.Header.Set("Proxy-Authorization", basic("alice", "pw"))
	res, err := (&http.Transport{Proxy: http.ProxyURL(h.url)}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusProxyAuthRequired || res.Header.Get("Proxy-Authenticate") != "" {
		t.Errorf("got %d with Proxy-Authenticate %q; want the upstream's 407 without its challenge", res.StatusCode, res.Header.Get("Proxy-Authenticate"))
	}
	if auths := up.authsSeen(); len(auths) != 1 || auths[0] != "" {
		t.Errorf("the upstream saw %q; want one request without credentials", auths)
	}
}

// A client past its request rate is answered 429 with Retry-After, not
// recorded; another client is not held back. The clock stands still, so
// the bucket never refills.
func TestClientRequestRate(t *testing.T) {
	origin := newOrigin(t, okHandler("ok"))
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	h := newHarness(t, func(c *Config) {
		c.ClientRequestsPerSecond, c.ClientRequestBurst = 1, 3
		c.Now = func() time.Time { return now }
	})
	var codes []int
	for i := range 5 {
		codes = append(codes, h.status(t, origin.URL+"/"+string(rune('a'+i))))
	}
	c, _, res := rawConnect(t, h.ctx, h.url.Host, origin.Listener.Addr().String(), nil)
	res.Body.Close()
	c.Close()
	codes = append(codes, res.StatusCode)
	want := []int{200, 200, 200, 429, 429, 429}
	if !slices.Equal(codes, want) {
		t.Errorf("codes %v; want %v", codes, want)
	}
	if s := h.p.Stats(); s.RateLimited != 3 || s.Requests != 3 || s.Tunnels != 0 {
		t.Errorf("stats: %d rate limited, %d requests, %d tunnels; want 3, 3, 0", s.RateLimited, s.Requests, s.Tunnels)
	}
	if n := len(h.pub.all()); n > 6 {
		t.Errorf("%d entries published; want at most 6, for the 3 requests served", n)
	}
	// Another client has a bucket of its own: requests served by
	// ServeHTTP directly, as from 192.0.2.1.
	for i := range 3 {
		req := httptest.NewRequestWithContext(h.ctx, http.MethodGet, origin.URL+"/other", nil)
		req.RemoteAddr = "192.0.2.1:4000"
		rec := httptest.NewRecorder()
		h.p.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("another client's request %d: %d; want 200", i, rec.Code)
		}
	}
}

// A client at its connection limit has its next connection answered 429
// and closed, without a slot of MaxConns; once it closes one, it may open
// another.
func TestMaxConnsPerClient(t *testing.T) {
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, func(c *Config) { c.MaxConnsPerClient = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", h.url.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The held connections are accepted before the next is: a request on
	// each proves it.
	for _, c := range held {
		fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: %s\r\n\r\n", origin.URL, origin.Listener.Addr())
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("a held connection: %d; want 200", res.StatusCode)
		}
	}
	c, err := net.Dial("tcp", h.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: %s\r\n\r\n", origin.URL, origin.Listener.Addr())
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "proxy.max_connections_per_client") {
		t.Errorf("the third connection: %d %q; want 429 naming proxy.max_connections_per_client", res.StatusCode, body)
	}
	if s := h.p.Stats(); s.ConnsRefused != 1 || s.ActiveConns != 2 {
		t.Errorf("stats: %d connections refused, %d active; want 1, 2", s.ConnsRefused, s.ActiveConns)
	}
	held[0].Close()
	waitFor(t, h.ctx, "the closed connection to leave its client's count", func() bool { return h.p.Stats().ActiveConns == 1 })
	if code := h.status(t, origin.URL+"/after"); code != http.StatusOK {
		t.Errorf("after closing one: %d; want 200", code)
	}
}

// addrListener is a listener that reports another address, to serve as a
// proxy listening beyond loopback without leaving loopback.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// A proxy listening beyond loopback without client authentication warns
// and says it is open; on loopback, or with client authentication, it
// does neither.
func TestOpenProxyWarning(t *testing.T) {
	for _, tc := range []struct {
		name     string
		addr     string
		auth     bool
		wantOpen bool
	}{
		{"beyond loopback, no auth", "192.0.2.10:3128", false, true},
		{"every interface, no auth", "0.0.0.0:3128", false, true},
		{"beyond loopback, auth", "192.0.2.10:3128", true, false},
		{"loopback, no auth", "127.0.0.1:3128", false, false},
		{"IPv6 loopback, no auth", "[::1]:3128", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			// Warnings only: Serve logs its warning before it calls
			// OnServe, and nothing else until the test has read them.
			var logs bytes.Buffer
			serving := make(chan net.Addr, 1)
			cfg := Config{Listen: "127.0.0.1:0", OnServe: func(a net.Addr) { serving <- a }}
			if tc.auth {
				cfg.Authenticate = func(string, string) bool { return false }
			}
			p, err := New(cfg, newFakePublisher(t), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr))
			served := make(chan error, 1)
			go func() { served <- p.Serve(addrListener{lis, addr}) }()
			select {
			case a := <-serving:
				if a.String() != addr.String() {
					t.Errorf("OnServe(%v); want the listener's address %v", a, addr)
				}
			case <-ctx.Done():
				t.Fatal("Serve never called OnServe")
			}
			warned := strings.Contains(logs.String(), "without client authentication")
			var wantOpen []string
			if tc.wantOpen {
				wantOpen = []string{addr.String()}
			}
			if open := p.Stats().Open; !slices.Equal(open, wantOpen) || warned != tc.wantOpen {
				t.Errorf("Stats.Open %q, warned %v; want %q, warned %v. Log:\n%s", open, warned, wantOpen, tc.wantOpen, logs.String())
			}
			if err := p.Shutdown(ctx); err != nil {
				t.Error(err)
			}
			if err := <-served; err != nil {
				t.Error(err)
			}
		})
	}
}
