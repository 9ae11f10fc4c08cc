package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeService answers GetStats and Optimize, and records the authorization
// metadata and cookies each call arrived with.
type fakeService struct {
	pxperfv1.UnimplementedPerformanceServiceServer
	mu    sync.Mutex
	auth  []string // the "authorization" metadata of the last call
	calls int
}

func (f *fakeService) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = md.Get("authorization")
	f.calls++
}

func (f *fakeService) last() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth, f.calls
}

func (f *fakeService) GetStats(ctx context.Context, _ *pxperfv1.GetStatsRequest) (*pxperfv1.GetStatsResponse, error) {
	f.record(ctx)
	return &pxperfv1.GetStatsResponse{Stats: &pxperfv1.Stats{}}, nil
}

func (f *fakeService) Optimize(ctx context.Context, _ *pxperfv1.OptimizeRequest) (*pxperfv1.OptimizeResponse, error) {
	f.record(ctx)
	return &pxperfv1.OptimizeResponse{}, nil
}

// newTestGateway serves a gateway with cfg in front of a gRPC server with
// a fakeService over loopback HTTP, and returns its URL.
func newTestGateway(t *testing.T, cfg Config) (*fakeService, string) {
	t.Helper()
	f := &fakeService{}
	gs := grpc.NewServer()
	pxperfv1.RegisterPerformanceServiceServer(gs, f)
	h, err := New(gs, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		gs.Stop()
	})
	return f, hs.URL
}

// do sends req with a deadline and returns the response with its body
// read.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

func newRequest(t *testing.T, method, url, body string, header map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req
}

func TestHostCheck(t *testing.T) {
	tests := []struct {
		listen  string
		allowed []string
		host    string
		want    bool
	}{
		{"127.0.0.1:50080", nil, "127.0.0.1:50080", true},
		{"127.0.0.1:50080", nil, "localhost:50080", true},
		{"127.0.0.1:50080", nil, "LOCALHOST.", true},
		{"127.0.0.1:50080", nil, "[::1]:50080", true},
		{"127.0.0.1:50080", nil, "127.0.0.2", true},
		{"127.0.0.1:50080", nil, "evil.example:50080", false},
		{"127.0.0.1:50080", nil, "evil.example", false},
		{"127.0.0.1:50080", nil, "localhost.evil.example", false},
		{"127.0.0.1:50080", nil, "192.168.1.5:50080", false},
		{"127.0.0.1:50080", nil, "", false},
		{"192.168.1.5:50080", nil, "192.168.1.5:50080", true},
		{"192.168.1.5:50080", nil, "10.0.0.1:50080", false},
		{"0.0.0.0:50080", nil, "10.0.0.1:50080", true},
		{"[::]:50080", nil, "[fe80::1]:50080", true},
		{":50080", nil, "10.0.0.1", true},
		{"0.0.0.0:50080", nil, "desk.example:50080", false},
		{"0.0.0.0:50080", []string{"Desk.Example"}, "desk.example:50080", true},
		{"0.0.0.0:50080", []string{"desk.example"}, "DESK.example", true},
		{"0.0.0.0:50080", []string{"desk.example:443"}, "desk.example:443", true},
		{"0.0.0.0:50080", []string{"desk.example:443"}, "desk.example:50080", false},
		{"0.0.0.0:50080", []string{"desk.example:443"}, "desk.example", false},
		{"desk.example:50080", nil, "desk.example:50080", true},
		{"127.0.0.1:50080", []string{"[fd00::1]"}, "[FD00::1]:50080", true},
		{"192.168.1.5:50080", []string{"[fd00::1]:443"}, "[fd00::1]:443", true},
		{"", nil, "localhost", true},
	}
	for _, tt := range tests {
		t.Run(tt.listen+" "+strings.Join(tt.allowed, ",")+" "+tt.host, func(t *testing.T) {
			c, err := newHostCheck(tt.listen, tt.allowed)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.allows(tt.host); got != tt.want {
				t.Errorf("allows(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"listen address", Config{ListenAddress: "nohost"}, "ListenAddress"},
		{"allowed host with a path", Config{AllowedHosts: []string{"desk.example/x"}}, "AllowedHosts"},
		{"allowed host with a scheme", Config{AllowedHosts: []string{"http://desk.example"}}, "AllowedHosts"},
		{"empty allowed host", Config{AllowedHosts: []string{""}}, "AllowedHosts"},
		{"allowed host with a bad port", Config{AllowedHosts: []string{"desk.example:http"}}, "AllowedHosts"},
		{"bare IPv6 allowed host", Config{AllowedHosts: []string{"fd00::1"}}, "AllowedHosts"},
		{"origin with a path", Config{CORSOrigins: []string{"https://ui.example/app"}}, "CORSOrigins"},
	}
	gs := grpc.NewServer()
	defer gs.Stop()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(gs, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// Every response carries the security headers: answers, refusals and
// errors alike.
func TestSecurityHeaders(t *testing.T) {
	_, url := newTestGateway(t, Config{ListenAddress: "127.0.0.1:0"})
	tests := []struct {
		name       string
		req        *http.Request
		wantStatus int
	}{
		{"REST", newRequest(t, "GET", url+"/v1/stats", "", nil), http.StatusOK},
		{"the UI's page", newRequest(t, "GET", url+"/", "", nil), http.StatusOK},
		{"a UI asset that is not there", newRequest(t, "GET", url+"/assets/nothing.js", "", nil), http.StatusNotFound},
		{"unknown path", newRequest(t, "GET", url+"/nowhere", "", nil), http.StatusNotFound},
		{"unimplemented", newRequest(t, "GET", url+"/v1/config", "", nil), http.StatusNotImplemented},
		{"Host refused", newRequest(t, "GET", url+"/v1/stats", "", map[string]string{"Host": "evil.example"}), http.StatusForbidden},
	}
	want := map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self'") || strings.Contains(ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP %q allows inline script", ContentSecurityPolicy)
	}
}

func TestHostRefusedSaysWhy(t *testing.T) {
	f, url := newTestGateway(t, Config{ListenAddress: "127.0.0.1:0"})
	resp, body := do(t, newRequest(t, "GET", url+"/v1/stats", "", map[string]string{"Host": "rebound.example:50080"}))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"rebound.example:50080"`) || !strings.Contains(body, "server.http_allowed_hosts") {
		t.Errorf("status %d, body %q; want 403 naming the host and server.http_allowed_hosts", resp.StatusCode, body)
	}
	if _, calls := f.last(); calls != 0 {
		t.Errorf("the service was called %d times, want 0", calls)
	}
}

func TestCORS(t *testing.T) {
	const origin = "https://ui.example"
	preflight := func(t *testing.T, url, from string) *http.Request {
		return newRequest(t, "OPTIONS", url+"/v1/config", "", map[string]string{
			"Origin":                         from,
			"Access-Control-Request-Method":  "PATCH",
			"Access-Control-Request-Headers": "authorization,content-type",
		})
	}
	get := func(t *testing.T, url, from string) *http.Request {
		return newRequest(t, "GET", url+"/v1/stats", "", map[string]string{"Origin": from})
	}
	_, plain := newTestGateway(t, Config{})
	_, withOrigin := newTestGateway(t, Config{CORSOrigins: []string{origin}})
	tests := []struct {
		name            string
		req             *http.Request
		wantAllowOrigin string
		wantAllowHeader string // in Access-Control-Allow-Headers
	}{
		{"no origins configured: preflight", preflight(t, plain, origin), "", ""},
		{"no origins configured: request", get(t, plain, origin), "", ""},
		{"configured origin: preflight", preflight(t, withOrigin, origin), origin, "authorization"},
		{"configured origin: request", get(t, withOrigin, origin), origin, ""},
		{"other origin: preflight", preflight(t, withOrigin, "https://evil.example"), "", ""},
		{"other origin: request", get(t, withOrigin, "https://evil.example"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, tt.req)
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllowOrigin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.wantAllowOrigin)
			}
			if tt.wantAllowOrigin == "" {
				for k := range resp.Header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("CORS header %s: %q sent", k, resp.Header.Get(k))
					}
				}
			}
			if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, tt.wantAllowHeader) {
				t.Errorf("Access-Control-Allow-Headers %q, want %q in it", got, tt.wantAllowHeader)
			}
		})
	}
}

// A page of another origin cannot make the gateway change something by a
// request the browser sends without asking (a form, a no-cors fetch).
func TestCrossOriginRequestsRefused(t *testing.T) {
	const origin = "https://ui.example"
	f, url := newTestGateway(t, Config{CORSOrigins: []string{origin}})
	json := map[string]string{"Content-Type": "application/json"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range json {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"not from a browser", json, http.StatusOK},
		{"same origin", with(map[string]string{"Sec-Fetch-Site": "same-origin"}), http.StatusOK},
		{"cross-site", with(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}), http.StatusForbidden},
		{"old browser, other origin", with(map[string]string{"Origin": "https://evil.example"}), http.StatusForbidden},
		{"configured origin", with(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": origin}), http.StatusOK},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, before := f.last()
			resp, body := do(t, newRequest(t, "POST", url+"/v1:optimize", "{}", tt.header))
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			_, after := f.last()
			if called := after > before; called != (tt.want == http.StatusOK) {
				t.Errorf("service called: %v, want %v", called, tt.want == http.StatusOK)
			}
		})
	}
}

// The Authorization header reaches the gRPC server as the metadata auth
// reads; a cookie or a query parameter does not.
func TestAuthorizationOnlyFromTheHeader(t *testing.T) {
	f, url := newTestGateway(t, Config{})
	tests := []struct {
		name string
		req  *http.Request
		want []string
	}{
		{"header, REST", newRequest(t, "GET", url+"/v1/stats", "", map[string]string{"Authorization": "Bearer tok"}), []string{"Bearer tok"}},
		{"header, Connect", newRequest(t, "POST", url+"/pxperf.v1.PerformanceService/GetStats", "{}", map[string]string{
			"Authorization": "Bearer tok", "Content-Type": "application/json", "Connect-Protocol-Version": "1",
		}), []string{"Bearer tok"}},
		{"cookie", newRequest(t, "GET", url+"/v1/stats", "", map[string]string{"Cookie": "authorization=Bearer tok; token=tok"}), nil},
		{"query parameters", newRequest(t, "GET", url+"/v1/stats?authorization=Bearer+tok&access_token=tok&token=tok", "", nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got, _ := f.last()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("authorization metadata %q, want %q", got, tt.want)
			}
		})
	}
}

// A message beyond MaxMessageBytes is refused before the server reads it.
func TestMaxMessageBytes(t *testing.T) {
	f, url := newTestGateway(t, Config{MaxMessageBytes: 1024})
	body := `{"actions":[` + strings.Repeat(`"OPTIMIZE_ACTION_EVICT",`, 100) + `"OPTIMIZE_ACTION_EVICT"]}`
	resp, got := do(t, newRequest(t, "POST", url+"/v1:optimize", body, map[string]string{"Content-Type": "application/json"}))
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d (%s), want a refusal for the size", resp.StatusCode, got)
	}
	if _, calls := f.last(); calls != 0 {
		t.Errorf("the service was called %d times, want 0", calls)
	}
}
