package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".pem", "CERTIFICATE", der), write(cn+".key", "PRIVATE KEY", keyDER)
	}
	p := testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue(3, "client", x509.ExtKeyUsageClientAuth)
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
			"PXPERF_SERVER": s.addr, "PXPERF_TOKEN": token,
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
		{"plaintext to a TLS server", map[string]string{"PXPERF_SERVER": s.addr}, []string{"stats", "--timeout", "5s"}, exitRPC, "UNAVAILABLE"},
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
