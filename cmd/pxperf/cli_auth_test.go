package main

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/pxperf/pxperf/internal/testcert"
)

// testPKI is a CA made for one test, with a server and a client
// certificate it signed, all written as PEM files.
type testPKI struct {
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := testcert.NewCA(t, "test CA")
	p := testPKI{caFile: ca.CertFile}
	p.serverCert, p.serverKey = ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = ca.Issue(t, "client", x509.ExtKeyUsageClientAuth)
	return p
}

// The connection flags reach a server with mutual TLS and bearer tokens;
// refusals have the exit codes of the table in cli.go.
func TestClientTLSAndTokens(t *testing.T) {
	pki := newTestPKI(t)
	const viewToken, adminToken = "view-token-0123456789abcdef", "admin-token-0123456789abcdef"
	tokens := writeFile(t, "tokens", "view viewer "+viewToken+"\nadmin ops "+adminToken+"\n")
	s := startServer(t, "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.caFile, "--tokens", tokens)

	env := func(token string, extra ...string) map[string]string {
		m := map[string]string{
			"PXPERF_SERVER": s.Addr, "PXPERF_TOKEN": token,
			"PXPERF_TLS_CA": pki.caFile, "PXPERF_CLIENT_CERT": pki.clientCert, "PXPERF_CLIENT_KEY": pki.clientKey,
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want int
		msg  string
	}{
		{"view token reads", env(viewToken), []string{"stats"}, 0, ""},
		{"flag beats environment", env("wrong-token"), []string{"config", "get", "memory.max_entries", "--token", viewToken}, 0, ""},
		{"admin token changes config", env(adminToken), []string{"config", "set", "memory.max_entries=2000"}, 0, ""},
		{"no token", env(""), []string{"stats"}, exitDenied, "UNAUTHENTICATED"},
		{"unknown token", env("wrong-token-0123456789"), []string{"stats"}, exitDenied, "UNAUTHENTICATED"},
		{"view token cannot change config", env(viewToken), []string{"config", "set", "memory.max_entries=3000"}, exitDenied, "PERMISSION_DENIED"},
		{"no client certificate", env(viewToken, "PXPERF_CLIENT_CERT", "", "PXPERF_CLIENT_KEY", ""), []string{"stats"}, exitRPC, "UNAVAILABLE"},
		{"plaintext to a TLS server", map[string]string{"PXPERF_SERVER": s.Addr}, []string{"stats", "--timeout", "5s"}, exitRPC, "UNAVAILABLE"},
		{"certificate without key", env(viewToken, "PXPERF_CLIENT_KEY", ""), []string{"stats"}, exitUsage, "--client-cert and --client-key go together"},
		{"token in clear to a remote server", map[string]string{"PXPERF_SERVER": "192.0.2.1:50051", "PXPERF_TOKEN": viewToken}, []string{"stats"}, exitUsage, "clear text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runEnv(t, tt.env, nil, tt.args...)
			if r.code != tt.want || (tt.msg != "" && !strings.Contains(r.err.Error(), tt.msg)) {
				t.Errorf("pxperf %s: %v\nwant exit %d with %q", strings.Join(tt.args, " "), r, tt.want, tt.msg)
			}
		})
	}
}
