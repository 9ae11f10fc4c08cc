package auth_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/internal/testcert"
)

func TestServerCredentialsErrors(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	cert, key := ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	_, otherKey := ca.Issue(t, "other", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     auth.TLSConfig
		wantErr []string // parts of the error
	}{
		{"TLS", auth.TLSConfig{CertFile: cert, KeyFile: key}, nil},
		{"mutual TLS", auth.TLSConfig{CertFile: cert, KeyFile: key, ClientCAFile: ca.CertFile}, nil},
		{"no cert", auth.TLSConfig{KeyFile: key}, []string{"CertFile is empty"}},
		{"client CA only", auth.TLSConfig{ClientCAFile: ca.CertFile}, []string{"CertFile is empty"}},
		{"no key", auth.TLSConfig{CertFile: cert}, []string{"KeyFile is empty", cert}},
		{"missing cert", auth.TLSConfig{CertFile: missing, KeyFile: key}, []string{missing}},
		{"cert not PEM", auth.TLSConfig{CertFile: notPEM, KeyFile: key}, []string{notPEM}},
		{"key of another cert", auth.TLSConfig{CertFile: cert, KeyFile: otherKey}, []string{cert, otherKey}},
		{"missing client CA", auth.TLSConfig{CertFile: cert, KeyFile: key, ClientCAFile: missing}, []string{"client CA", missing}},
		{"client CA not PEM", auth.TLSConfig{CertFile: cert, KeyFile: key, ClientCAFile: notPEM}, []string{notPEM, "no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := auth.ServerCredentials(tt.cfg)
			if tt.wantErr == nil {
				if err != nil || creds == nil {
					t.Fatalf("got (%v, %v), want credentials", creds, err)
				}
				return
			}
			if err == nil {
				t.Fatal("got no error")
			}
			for _, part := range tt.wantErr {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
		})
	}
}

func TestTLSConfigEnabled(t *testing.T) {
	for _, tt := range []struct {
		cfg  auth.TLSConfig
		want bool
	}{
		{auth.TLSConfig{}, false},
		{auth.TLSConfig{CertFile: "c"}, true},
		{auth.TLSConfig{KeyFile: "k"}, true},
		{auth.TLSConfig{ClientCAFile: "ca"}, true},
	} {
		if got := tt.cfg.Enabled(); got != tt.want {
			t.Errorf("%+v.Enabled() = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}
