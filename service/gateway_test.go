package service_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testcert"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// gatewayHarness is a harness whose server also serves its HTTP gateway on
// a loopback port.
type gatewayHarness struct {
	*harness
	url  string       // the gateway's base URL, without a trailing slash
	http *http.Client // a client of its own, its idle connections closed at the end
}

// newGatewayHarness starts a harness (see newHarnessWith) and its gateway
// on 127.0.0.1:0, plaintext unless opts.GatewayTLS is set.
func newGatewayHarness(t *testing.T, edit func(*pxperfv1.Config), opts service.Options) *gatewayHarness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the harness, so that it runs after the harness's
	// cleanup has shut the server down.
	served := make(chan error, 1)
	started := false
	t.Cleanup(func() {
		if !started {
			lis.Close()
			return
		}
		if err := <-served; err != nil {
			t.Errorf("ServeGateway: %v", err)
		}
	})
	h := newHarnessWith(t, edit, opts)
	started = true
	go func() { served <- h.srv.ServeGateway(lis) }()
	tr := &http.Transport{}
	scheme := "http"
	if opts.GatewayTLS != nil {
		scheme = "https"
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &gatewayHarness{harness: h, url: scheme + "://" + lis.Addr().String(), http: &http.Client{Transport: tr}}
}

// call sends a request to the gateway with header, and returns the status
// and the body.
func (g *gatewayHarness) call(t *testing.T, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// mustCall is call that fails the test unless the status is want, and
// returns the body.
func (g *gatewayHarness) mustCall(t *testing.T, method, path, body string, want int) string {
	t.Helper()
	code, got := g.call(t, method, path, body, nil)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, got)
	}
	return got
}

// httpStatus is the JSON error of a REST call: google.rpc.Status.
type httpStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string `json:"@type"`
		FieldViolations []struct {
			Field string `json:"field"`
		} `json:"fieldViolations"`
	} `json:"details"`
}

func decodeStatus(t *testing.T, body string) httpStatus {
	t.Helper()
	var s httpStatus
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return s
}

// fields returns the fields of s's BadRequest violations.
func (s httpStatus) fields() []string {
	var fs []string
	for _, d := range s.Details {
		for _, v := range d.FieldViolations {
			fs = append(fs, v.Field)
		}
	}
	return fs
}

func TestGatewayREST(t *testing.T) {
	g := newGatewayHarness(t, nil, service.Options{})
	var published pxperfv1.PublishResponse
	body := `{"entries":[` + strings.Repeat(`{"method":"GET","url":"http://example.com/a","statusCode":200,"startTime":"2026-11-27T10:00:00Z"},`, 6) +
		`{"method":"POST","url":"http://example.com/b","statusCode":502,"startTime":"2026-11-27T10:00:01Z"}]}`
	decode(t, g.mustCall(t, "POST", "/v1/entries:publish", body, http.StatusOK), &published)
	if len(published.GetResults()) != 7 || published.GetResults()[6].GetId() == 0 {
		t.Fatalf("publish: %v", &published)
	}
	last := published.GetResults()[6].GetId()

	t.Run("list a page", func(t *testing.T) {
		var list pxperfv1.ListEntriesResponse
		decode(t, g.mustCall(t, "GET", "/v1/entries?page_size=5", "", http.StatusOK), &list)
		if len(list.GetEntries()) != 5 || list.GetTotalSize() != 7 || list.GetEntries()[0].GetId() != last || list.GetNextPageToken() == "" {
			t.Errorf("got %d entries (first id %d) of %d, next page %q; want 5 of 7, newest (%d) first, and a next page",
				len(list.GetEntries()), list.GetEntries()[0].GetId(), list.GetTotalSize(), list.GetNextPageToken(), last)
		}
	})
	t.Run("list with a filter in the query", func(t *testing.T) {
		var list pxperfv1.ListEntriesResponse
		decode(t, g.mustCall(t, "GET", "/v1/entries?filter.query=status:>=500&order=ORDER_OLDEST_FIRST", "", http.StatusOK), &list)
		if len(list.GetEntries()) != 1 || list.GetEntries()[0].GetStatusCode() != 502 {
			t.Errorf("got %v, want the one 502", list.GetEntries())
		}
	})
	t.Run("get one", func(t *testing.T) {
		var got pxperfv1.GetEntryResponse
		decode(t, g.mustCall(t, "GET", fmt.Sprintf("/v1/entries/%d", last), "", http.StatusOK), &got)
		if got.GetEntry().GetId() != last || got.GetEntry().GetMethod() != "POST" {
			t.Errorf("got %v, want entry %d", got.GetEntry(), last)
		}
	})
	t.Run("not found", func(t *testing.T) {
		code, body := g.call(t, "GET", "/v1/entries/999999", "", nil)
		if s := decodeStatus(t, body); code != http.StatusNotFound || s.Code != 5 {
			t.Errorf("status %d, %s; want 404 with NOT_FOUND (5)", code, body)
		}
	})
	t.Run("close a resource that is not there", func(t *testing.T) {
		code, body := g.call(t, "POST", "/v1/resources/subscriber-999:close", `{"reason":"test"}`, nil)
		if s := decodeStatus(t, body); code != http.StatusNotFound || s.Code != 5 {
			t.Errorf("status %d, %s; want 404 with NOT_FOUND (5)", code, body)
		}
	})
	t.Run("stats, config, resources, log files, optimize", func(t *testing.T) {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v1/stats", ""},
			{"GET", "/v1/config", ""},
			{"GET", "/v1/resources", ""},
			{"GET", "/v1/logFiles", ""},
			{"POST", "/v1:optimize", `{"actions":["OPTIMIZE_ACTION_RELEASE_MEMORY"]}`},
		} {
			g.mustCall(t, c.method, c.path, c.body, http.StatusOK)
		}
	})
}

func TestGatewayUpdateConfig(t *testing.T) {
	g := newGatewayHarness(t, nil, service.Options{})
	var resp pxperfv1.UpdateConfigResponse
	decode(t, g.mustCall(t, "PATCH", "/v1/config?update_mask=memory.maxEntries,throttle.maxUpdatesPerSecond",
		`{"memory":{"maxEntries":4321},"throttle":{"maxUpdatesPerSecond":12}}`, http.StatusOK), &resp)
	cfg, err := g.client.Service().GetConfig(testContext(t), &pxperfv1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.GetConfig().GetMemory().GetMaxEntries(); got != 4321 || resp.GetConfig().GetMemory().GetMaxEntries() != 4321 {
		t.Errorf("memory.max_entries %d over gRPC, %d in the response; want 4321", got, resp.GetConfig().GetMemory().GetMaxEntries())
	}

	// The gRPC server's validation, its interceptor and the handler's,
	// answer over HTTP as 400 with the field at fault.
	tests := []struct {
		name, query, body string
		wantField         string
	}{
		{"a value out of range", "?update_mask=memory.maxEntries", `{"memory":{"maxEntries":0}}`, "config.memory.max_entries"},
		{"no update mask", "", `{"memory":{"maxEntries":10}}`, "update_mask"},
		{"a field that is not live", "?update_mask=server.listenAddress", `{"server":{"listenAddress":"0.0.0.0:1"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := g.call(t, "PATCH", "/v1/config"+tt.query, tt.body, nil)
			s := decodeStatus(t, body)
			if tt.wantField == "" {
				if code != http.StatusBadRequest || s.Code != 9 {
					t.Errorf("status %d, %s; want 400 with FAILED_PRECONDITION (9)", code, body)
				}
				return
			}
			if code != http.StatusBadRequest || s.Code != 3 || !strings.Contains(strings.Join(s.fields(), " "), tt.wantField) {
				t.Errorf("status %d, %s; want 400 with INVALID_ARGUMENT (3) and a violation of %s", code, body, tt.wantField)
			}
		})
	}
}

func TestGatewayConnectUnary(t *testing.T) {
	g := newGatewayHarness(t, nil, service.Options{})
	code, body := g.call(t, "POST", "/pxperf.v1.PerformanceService/GetStats", "{}", map[string]string{"Connect-Protocol-Version": "1"})
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var resp pxperfv1.GetStatsResponse
	decode(t, body, &resp)
	if resp.GetStats().GetScore() == nil {
		t.Errorf("stats without a score: %s", body)
	}
	// A Connect error is JSON with a string code.
	code, body = g.call(t, "POST", "/pxperf.v1.PerformanceService/GetEntry", `{"id":"0"}`, map[string]string{"Connect-Protocol-Version": "1"})
	if code != http.StatusBadRequest || !strings.Contains(body, `"code":"invalid_argument"`) || !strings.Contains(body, "id") {
		t.Errorf("GetEntry id 0: status %d, %s; want 400, invalid_argument", code, body)
	}
}

// Subscribe streams to browsers over Connect and gRPC-Web.
func TestGatewayStreams(t *testing.T) {
	g := newGatewayHarness(t, nil, service.Options{})
	ctx := testContext(t)
	ids := g.publish(t, ctx, entry("GET", "http://example.com/1", 200), entry("GET", "http://example.com/2", 404))
	for _, protocol := range []struct {
		name string
		opt  connect.ClientOption
	}{
		{"Connect", connect.WithProtoJSON()},
		{"gRPC-Web", connect.WithGRPCWeb()},
	} {
		t.Run(protocol.name, func(t *testing.T) {
			c := connect.NewClient[pxperfv1.SubscribeRequest, pxperfv1.SubscribeResponse](g.http,
				g.url+"/pxperf.v1.PerformanceService/Subscribe", protocol.opt)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := c.CallServerStream(ctx, connect.NewRequest(&pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 2}}))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			var got []uint64
			for len(got) < len(ids) && stream.Receive() {
				for _, e := range stream.Msg().GetBatch().GetEntries() {
					got = append(got, e.GetId())
				}
			}
			if diff := cmp.Diff(ids, got); diff != "" {
				t.Errorf("ids received (-want +got):\n%s\nerr: %v", diff, stream.Err())
			}
		})
	}
}

func TestGatewayAuth(t *testing.T) {
	const (
		viewTok  = "view-token-0123456789"
		adminTok = "admin-token-0123456789"
	)
	tokens, err := auth.NewTokens(map[string]auth.Identity{
		viewTok:  {Name: "ui", Roles: []auth.Role{auth.RoleView}},
		adminTok: {Name: "ops", Roles: []auth.Role{auth.RoleAdmin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := newGatewayHarness(t, nil, service.Options{Tokens: tokens})
	const patch = `{"memory":{"maxEntries":500}}`
	tests := []struct {
		name               string
		method, path, body string
		header             map[string]string
		wantHTTP, wantCode int
	}{
		{"no token", "GET", "/v1/stats", "", nil, http.StatusUnauthorized, 16},
		{"view token", "GET", "/v1/stats", "", map[string]string{"Authorization": "Bearer " + viewTok}, http.StatusOK, 0},
		{"view token changing config", "PATCH", "/v1/config?update_mask=memory.maxEntries", patch, map[string]string{"Authorization": "Bearer " + viewTok}, http.StatusForbidden, 7},
		{"admin token changing config", "PATCH", "/v1/config?update_mask=memory.maxEntries", patch, map[string]string{"Authorization": "bearer " + adminTok}, http.StatusOK, 0},
		{"token in a query parameter", "GET", "/v1/stats?access_token=" + viewTok + "&token=" + viewTok, "", nil, http.StatusUnauthorized, 16},
		{"token in a cookie", "GET", "/v1/stats", "", map[string]string{"Cookie": "authorization=Bearer " + viewTok + "; token=" + viewTok}, http.StatusUnauthorized, 16},
		{"unknown token", "GET", "/v1/stats", "", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized, 16},
		{"no token, Connect", "POST", "/pxperf.v1.PerformanceService/GetStats", "{}", map[string]string{"Connect-Protocol-Version": "1"}, http.StatusUnauthorized, 0},
		{"view token, Connect", "POST", "/pxperf.v1.PerformanceService/GetStats", "{}", map[string]string{"Connect-Protocol-Version": "1", "Authorization": "Bearer " + viewTok}, http.StatusOK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := g.call(t, tt.method, tt.path, tt.body, tt.header)
			if code != tt.wantHTTP {
				t.Fatalf("status %d, want %d: %s", code, tt.wantHTTP, body)
			}
			if tt.wantCode != 0 {
				if s := decodeStatus(t, body); s.Code != tt.wantCode {
					t.Errorf("code %d, want %d: %s", s.Code, tt.wantCode, body)
				}
			}
		})
	}

	t.Run("stream without a token", func(t *testing.T) {
		c := connect.NewClient[pxperfv1.SubscribeRequest, pxperfv1.SubscribeResponse](g.http, g.url+"/pxperf.v1.PerformanceService/Subscribe")
		stream, err := c.CallServerStream(testContext(t), connect.NewRequest(&pxperfv1.SubscribeRequest{}))
		if err == nil {
			for stream.Receive() {
				t.Error("received a message without a token")
			}
			err = stream.Err()
			stream.Close()
		}
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Subscribe without a token: %v, want UNAUTHENTICATED", err)
		}
	})
}

// Each of the gateway's protocols answers with auth off, refuses a call
// without a token with auth on (HTTP 401 for REST and Connect unary;
// gRPC-Web carries the code in its trailers), and answers one with a
// valid token in the Authorization header.
func TestGatewayProtocolsAuth(t *testing.T) {
	const token = "view-token-0123456789"
	tokens, err := auth.NewTokens(map[string]auth.Identity{token: {Name: "ui", Roles: []auth.Role{auth.RoleView}}})
	if err != nil {
		t.Fatal(err)
	}
	open := newGatewayHarness(t, nil, service.Options{})
	guarded := newGatewayHarness(t, nil, service.Options{Tokens: tokens})

	// Each protocol calls GetStats with the bearer token, if any, and
	// returns the HTTP status (0 when the protocol does not say it),
	// the code and, on success, the stats.
	type result struct {
		http  int
		code  connect.Code
		stats *pxperfv1.GetStatsResponse
	}
	bearer := func(token string) map[string]string {
		h := map[string]string{}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		return h
	}
	protocols := []struct {
		name string
		call func(t *testing.T, g *gatewayHarness, token string) result
	}{
		{"REST", func(t *testing.T, g *gatewayHarness, token string) result {
			code, body := g.call(t, "GET", "/v1/stats", "", bearer(token))
			if code != http.StatusOK {
				return result{http: code, code: connect.Code(decodeStatus(t, body).Code)}
			}
			var resp pxperfv1.GetStatsResponse
			decode(t, body, &resp)
			return result{http: code, stats: &resp}
		}},
		{"Connect", func(t *testing.T, g *gatewayHarness, token string) result {
			h := bearer(token)
			h["Connect-Protocol-Version"] = "1"
			code, body := g.call(t, "POST", "/pxperf.v1.PerformanceService/GetStats", "{}", h)
			if code != http.StatusOK {
				var e struct {
					Code connect.Code `json:"code"`
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil {
					t.Fatalf("Connect error %q: %v", body, err)
				}
				return result{http: code, code: e.Code}
			}
			var resp pxperfv1.GetStatsResponse
			decode(t, body, &resp)
			return result{http: code, stats: &resp}
		}},
		{"gRPC-Web", func(t *testing.T, g *gatewayHarness, token string) result {
			c := connect.NewClient[pxperfv1.GetStatsRequest, pxperfv1.GetStatsResponse](g.http,
				g.url+"/pxperf.v1.PerformanceService/GetStats", connect.WithGRPCWeb())
			req := connect.NewRequest(&pxperfv1.GetStatsRequest{})
			for k, v := range bearer(token) {
				req.Header().Set(k, v)
			}
			resp, err := c.CallUnary(testContext(t), req)
			if err != nil {
				return result{code: connect.CodeOf(err)}
			}
			return result{stats: resp.Msg}
		}},
	}
	cases := []struct {
		name     string
		g        *gatewayHarness
		token    string
		wantHTTP int // for REST and Connect
		wantCode connect.Code
	}{
		{"auth off", open, "", http.StatusOK, 0},
		{"auth on, no token", guarded, "", http.StatusUnauthorized, connect.CodeUnauthenticated},
		{"auth on, valid token", guarded, token, http.StatusOK, 0},
	}
	for _, p := range protocols {
		for _, tt := range cases {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				got := p.call(t, tt.g, tt.token)
				if got.http != 0 && got.http != tt.wantHTTP {
					t.Errorf("HTTP status %d, want %d", got.http, tt.wantHTTP)
				}
				if got.code != tt.wantCode {
					t.Errorf("code %v, want %v", got.code, tt.wantCode)
				}
				if tt.wantCode == 0 && got.stats.GetStats().GetScore() == nil {
					t.Errorf("stats without a score: %v", got.stats)
				}
			})
		}
	}
}

// With TLS, the gateway serves the gRPC listener's certificate, over
// HTTP/2 when the client has it, and with a client CA it requires client
// certificates as the gRPC listener does.
func TestGatewayTLS(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "pxperf", x509.ExtKeyUsageServerAuth)
	clientCA := testcert.NewCA(t, "client CA")
	tests := []struct {
		name       string
		tls        auth.TLSConfig
		clientCert bool
		wantOK     bool
	}{
		{"TLS", auth.TLSConfig{CertFile: certFile, KeyFile: keyFile}, false, true},
		{"mutual TLS with a certificate", auth.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.CertFile}, true, true},
		{"mutual TLS without one", auth.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.CertFile}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsConfig, err := auth.ServerTLSConfig(tt.tls)
			if err != nil {
				t.Fatal(err)
			}
			g := newGatewayHarness(t, nil, service.Options{GatewayTLS: tlsConfig})
			tr := g.http.Transport.(*http.Transport)
			tr.ForceAttemptHTTP2 = true
			tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
			if tt.clientCert {
				tr.TLSClientConfig.Certificates = []tls.Certificate{clientCA.Certificate(t, "alice", x509.ExtKeyUsageClientAuth)}
			}
			req, err := http.NewRequestWithContext(testContext(t), "GET", g.url+"/v1/stats", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := g.http.Do(req)
			if !tt.wantOK {
				if err == nil {
					resp.Body.Close()
					t.Errorf("status %d without a client certificate, want a refused handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Errorf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
			}

			plain := &http.Transport{}
			defer plain.CloseIdleConnections()
			req, err = http.NewRequestWithContext(testContext(t), "GET", strings.Replace(g.url, "https:", "http:", 1)+"/v1/stats", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := (&http.Client{Transport: plain}).Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Errorf("plaintext to the TLS gateway: status %d, want a refusal", resp.StatusCode)
				}
			}
		})
	}
}

// decode unmarshals the protojson body into msg, failing the test on an
// error.
func decode(t *testing.T, body string, msg proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(body), msg); err != nil {
		t.Fatalf("decoding %T from %q: %v", msg, body, err)
	}
}

// A gateway setting that passes the contract's rules but not the
// gateway's (a port past 65535) fails New with the field named, and stops
// what New had started (goleak checks).
func TestGatewayBadSettingFailsNew(t *testing.T) {
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	cfg.Server.HttpAllowedHosts = []string{"desk.example:99999"}
	if _, err := service.New(cfg, service.Options{}); err == nil || !strings.Contains(err.Error(), "AllowedHosts") {
		t.Errorf("New: %v, want an error naming AllowedHosts", err)
	}
}
