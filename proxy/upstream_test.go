package proxy

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// upstream is a local upstream proxy that wants Basic credentials
// user:pw (none when user is empty): another Proxy behind a check.
type upstream struct {
	url  *url.URL
	seen atomic.Int64 // requests it received

	mu    sync.Mutex
	auths []string // the Proxy-Authorization of each request, "" for none
}

// authsSeen returns the Proxy-Authorization of each request so far.
func (u *upstream) authsSeen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.auths)
}

func newUpstream(t *testing.T, user, pw string) *upstream {
	t.Helper()
	inner, err := New(Config{Listen: "127.0.0.1:0", AllowTargets: "127.0.0.1"}, newFakePublisher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.seen.Add(1)
		up.mu.Lock()
		up.auths = append(up.auths, r.Header.Get("Proxy-Authorization"))
		up.mu.Unlock()
		if user != "" && r.Header.Get("Proxy-Authorization") != want {
			w.Header().Set("Proxy-Authenticate", `Basic realm="upstream"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			io.WriteString(w, "credentials, please")
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := inner.Shutdown(ctx); err != nil {
			t.Errorf("upstream Shutdown: %v", err)
		}
		ts.Close()
	})
	up.url, _ = url.Parse(ts.URL)
	return up
}

func TestUpstream(t *testing.T) {
	const user, pw = "alice", "pw:with:colons"
	for _, tc := range []struct {
		name         string
		upstreamUser *url.Userinfo // in Config.Upstream
		clientUser   *url.Userinfo // in the client's proxy URL: sent as Proxy-Authorization
		noProxy      bool

		wantStatus    int
		wantRoute     pxperfv1.Route
		wantSource    pxperfv1.DecisionSource
		wantAuth      *pxperfv1.UpstreamAuth
		wantSeen      int64
		wantChallenge bool // the client sees the upstream's challenge
	}{
		{
			name: "credentials configured", upstreamUser: url.UserPassword(user, pw),
			wantStatus: 200, wantRoute: pxperfv1.Route_ROUTE_PROXY, wantSource: pxperfv1.DecisionSource_DECISION_SOURCE_MANUAL, wantSeen: 1,
			wantAuth: &pxperfv1.UpstreamAuth{Method: pxperfv1.AuthMethod_AUTH_METHOD_BASIC, Outcome: pxperfv1.AuthOutcome_AUTH_OUTCOME_SUCCEEDED},
		},
		{
			name:       "no credentials: 407",
			wantStatus: 407, wantRoute: pxperfv1.Route_ROUTE_PROXY, wantSource: pxperfv1.DecisionSource_DECISION_SOURCE_MANUAL, wantSeen: 1,
			wantAuth:      &pxperfv1.UpstreamAuth{Method: pxperfv1.AuthMethod_AUTH_METHOD_NONE, Outcome: pxperfv1.AuthOutcome_AUTH_OUTCOME_FAILED},
			wantChallenge: true,
		},
		{
			name: "wrong credentials configured: 407", upstreamUser: url.UserPassword(user, "wrong"),
			wantStatus: 407, wantRoute: pxperfv1.Route_ROUTE_PROXY, wantSource: pxperfv1.DecisionSource_DECISION_SOURCE_MANUAL, wantSeen: 1,
			wantAuth: &pxperfv1.UpstreamAuth{Method: pxperfv1.AuthMethod_AUTH_METHOD_BASIC, Outcome: pxperfv1.AuthOutcome_AUTH_OUTCOME_FAILED},
		},
		{
			name: "client credentials relayed", clientUser: url.UserPassword(user, pw),
			wantStatus: 200, wantRoute: pxperfv1.Route_ROUTE_PROXY, wantSource: pxperfv1.DecisionSource_DECISION_SOURCE_MANUAL, wantSeen: 1,
			wantAuth: &pxperfv1.UpstreamAuth{Method: pxperfv1.AuthMethod_AUTH_METHOD_BASIC, Outcome: pxperfv1.AuthOutcome_AUTH_OUTCOME_SUCCEEDED},
		},
		{
			name: "no-proxy bypass", noProxy: true,
			wantStatus: 200, wantRoute: pxperfv1.Route_ROUTE_DIRECT, wantSource: pxperfv1.DecisionSource_DECISION_SOURCE_NO_PROXY,
		},
	} {
		for _, tunnel := range []bool{false, true} {
			name := tc.name + "/plain"
			if tunnel {
				name = tc.name + "/tunnel"
			}
			t.Run(name, func(t *testing.T) {
				up := newUpstream(t, user, pw)
				var seenVia atomic.Value
				handler := func(w http.ResponseWriter, r *http.Request) {
					seenVia.Store(r.Header.Values("Via"))
					io.WriteString(w, "through")
				}
				var originURL string
				var tlsOrigin *httptest.Server
				if tunnel {
					tlsOrigin = httptest.NewTLSServer(http.HandlerFunc(handler))
					t.Cleanup(tlsOrigin.Close)
					originURL = tlsOrigin.URL
				} else {
					originURL = newOrigin(t, http.HandlerFunc(handler)).URL
				}
				h := newHarness(t, func(c *Config) {
					c.Upstream = &url.URL{Scheme: "http", Host: up.url.Host, User: tc.upstreamUser}
					if tc.noProxy {
						c.NoProxy = "example.com, 127.0.0.0/8"
					}
				})
				pu := *h.url
				pu.User = tc.clientUser
				target := originURL + "/x"
				entryURL := target
				var tr *http.Transport
				if tunnel {
					entryURL = strings.TrimPrefix(originURL, "https://")
					tr = tlsOrigin.Client().Transport.(*http.Transport).Clone()
				} else {
					tr = &http.Transport{}
				}
				tr.Proxy = http.ProxyURL(&pu)
				defer tr.CloseIdleConnections()
				var res *http.Response
				if tunnel && tc.wantStatus != 200 {
					// Go's client turns a refused CONNECT into an error
					// without the response: send it by hand.
					_, _, res = rawConnect(t, h.ctx, h.url.Host, entryURL, nil)
				} else {
					req, _ := http.NewRequestWithContext(h.ctx, "GET", target, nil)
					var err error
					if res, err = (&http.Client{Transport: tr}).Do(req); err != nil {
						t.Fatal(err)
					}
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				tr.CloseIdleConnections() // ends a tunnel

				// What the client got.
				if res.StatusCode != tc.wantStatus {
					t.Fatalf("client got %d %q; want %d", res.StatusCode, body, tc.wantStatus)
				}
				if tc.wantStatus == 200 && string(body) != "through" {
					t.Errorf("client got body %q; want the origin's", body)
				}
				if got := res.Header.Get("Proxy-Authenticate"); (got != "") != tc.wantChallenge {
					t.Errorf("client got Proxy-Authenticate %q; want it: %v", got, tc.wantChallenge)
				}
				if vias, _ := seenVia.Load().([]string); !tunnel && tc.wantStatus == 200 && len(vias) != 1+int(tc.wantSeen) {
					t.Errorf("origin got Via %q; want one per proxy on the way", vias)
				}
				if got := up.seen.Load(); got != tc.wantSeen {
					t.Errorf("the upstream saw %d requests; want %d", got, tc.wantSeen)
				}

				// What pxperf recorded: the first exchange with entryURL.
				_, e := h.pub.exchangeEntries(t, h.ctx, entryURL)
				d := e.GetProxyDecision()
				if e.GetStatusCode() != int32(tc.wantStatus) || e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED ||
					d.GetRoute() != tc.wantRoute || d.GetSource() != tc.wantSource {
					t.Errorf("entry %v status %d decision %v; want COMPLETED %d %v by %v", e.GetState(), e.GetStatusCode(), d, tc.wantStatus, tc.wantRoute, tc.wantSource)
				}
				if tc.wantRoute == pxperfv1.Route_ROUTE_PROXY && d.GetUpstream() != up.url.Host {
					t.Errorf("entry upstream %q; want %q", d.GetUpstream(), up.url.Host)
				}
				if a := e.GetUpstreamAuth(); a.GetMethod() != tc.wantAuth.GetMethod() || a.GetOutcome() != tc.wantAuth.GetOutcome() {
					t.Errorf("entry upstream auth %v; want %v", a, tc.wantAuth)
				}
				if tc.wantStatus == 407 && !tunnel && string(e.GetResponseBody().GetData()) != "credentials, please" {
					t.Errorf("entry body %q; want the upstream's 407 body", e.GetResponseBody().GetData())
				}
			})
		}
	}
}

func TestUpstreamDown(t *testing.T) {
	down := closedAddr(t)
	h := newHarness(t, func(c *Config) { c.Upstream = &url.URL{Scheme: "http", Host: down} })
	origin := newOrigin(t, okHandler("never"))
	req, _ := http.NewRequestWithContext(h.ctx, "GET", origin.URL+"/", nil)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	_, _, cres := rawConnect(t, h.ctx, h.url.Host, strings.TrimPrefix(origin.URL, "http://"), nil)
	if res.StatusCode != http.StatusBadGateway || cres.StatusCode != http.StatusBadGateway {
		t.Errorf("client got %d and, for CONNECT, %d; want 502s", res.StatusCode, cres.StatusCode)
	}
	for _, u := range []string{origin.URL + "/", strings.TrimPrefix(origin.URL, "http://")} {
		_, e := h.pub.exchangeEntries(t, h.ctx, u)
		if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM ||
			!strings.Contains(e.GetError().GetMessage(), down) || e.GetProxyDecision().GetUpstream() != down ||
			e.GetUpstreamAuth().GetOutcome() != pxperfv1.AuthOutcome_AUTH_OUTCOME_UNSPECIFIED {
			t.Errorf("entry for %s: %v; want FAILED, UPSTREAM naming %s, auth outcome unknown", u, e, down)
		}
	}
}
