package client

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/internal/testcert"
	"github.com/pxperf/pxperf/service"
)

func TestNewToken(t *testing.T) {
	const tok = "0123456789abcdef-token"
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "default address is loopback", cfg: Config{Token: tok}},
		{name: "localhost", cfg: Config{Token: tok, Address: "localhost:7000"}},
		{name: "IPv6 loopback", cfg: Config{Token: tok, Address: "[::1]:7000"}},
		{name: "loopback behind a scheme", cfg: Config{Token: tok, Address: "dns:///127.0.0.2:7000"}},
		{name: "unix socket", cfg: Config{Token: tok, Address: "unix:///run/pxperf.sock"}},
		{name: "remote with TLS", cfg: Config{Token: tok, Address: "pxperf.example:7000", TLS: &tls.Config{}}},
		{name: "remote, allowed without TLS", cfg: Config{Token: tok, Address: "pxperf.example:7000", AllowTokenWithoutTLS: true}},
		{name: "remote in clear text", cfg: Config{Token: tok, Address: "pxperf.example:7000"}, wantErr: "Config.Token"},
		{name: "all interfaces is not loopback", cfg: Config{Token: tok, Address: "0.0.0.0:7000"}, wantErr: "not a loopback address"},
		{name: "a name that could resolve anywhere", cfg: Config{Token: tok, Address: "dns:///localhost.example:7000"}, wantErr: "Config.Token"},
		{name: "space in the token", cfg: Config{Token: "two words"}, wantErr: "Config.Token"},
		{name: "newline in the token", cfg: Config{Token: tok + "\n"}, wantErr: "Config.Token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("New = nil error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

func TestToken(t *testing.T) {
	const tok = "0123456789abcdef-token"
	tokens, err := auth.NewTokens(map[string]auth.Identity{tok: {Name: "tester", Roles: []auth.Role{auth.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, nil, service.Options{Tokens: tokens})
	ctx := testContext(t)
	tests := []struct {
		name     string
		cfg      Config
		wantCode codes.Code
	}{
		{"with the token", Config{Token: tok, AllowTokenWithoutTLS: true}, codes.OK},
		{"without a token", Config{}, codes.Unauthenticated},
		{"with another token", Config{Token: "another-token-0123456789", AllowTokenWithoutTLS: true}, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.client(t, tt.cfg, nil)
			if _, err := c.GetConfig(ctx); status.Code(err) != tt.wantCode {
				t.Errorf("GetConfig: %v, want code %v", err, tt.wantCode)
			}
			// Streams carry it too, and Watch does not retry without it.
			got := runWatchUntilFirst(t, c)
			if status.Code(got.err) != tt.wantCode || len(got.retries) != 0 {
				t.Errorf("Watch: error %v after %d retries, want code %v and no retry", got.err, len(got.retries), tt.wantCode)
			}
		})
	}
}

// runWatchUntilFirst runs Watch until its first message or error.
func runWatchUntilFirst(t *testing.T, c *Client) watchResult {
	var r watchResult
	opts := fastRetry
	opts.OnRetry = func(_ error, attempt int, _ time.Duration) { r.retries = append(r.retries, attempt) }
	for msg, err := range c.Watch(testContext(t), nil, opts) {
		r.err = err
		if msg != nil {
			r.msgs = append(r.msgs, msg)
		}
		break
	}
	return r
}

func TestTokenOverTLS(t *testing.T) {
	const tok = "0123456789abcdef-token"
	tokens, err := auth.NewTokens(map[string]auth.Identity{tok: {Name: "tester", Roles: []auth.Role{auth.RoleView}}})
	if err != nil {
		t.Fatal(err)
	}
	ca := testcert.NewCA(t, "test CA")
	cert, pool := ca.Certificate(t, "pxperf.test", x509.ExtKeyUsageServerAuth), ca.Pool()
	ts := startServer(t, nil, service.Options{
		Tokens:      tokens,
		Credentials: credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}),
	})
	// passthrough:///bufnet is not loopback: only TLS lets the token go.
	c := ts.client(t, Config{Token: tok, TLS: &tls.Config{RootCAs: pool, ServerName: "pxperf.test", MinVersion: tls.VersionTLS13}}, nil)
	if _, err := c.GetConfig(testContext(t)); err != nil {
		t.Errorf("GetConfig over TLS with a token: %v", err)
	}
	untrusted := ts.client(t, Config{Token: tok, TLS: &tls.Config{ServerName: "pxperf.test", MinVersion: tls.VersionTLS13}}, nil)
	if _, err := untrusted.GetConfig(testContext(t)); status.Code(err) != codes.Unavailable {
		t.Errorf("GetConfig trusting no CA: %v, want code %v", err, codes.Unavailable)
	}
}
