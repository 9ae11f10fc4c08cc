package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TLSConfig locates the PEM files for a TLS server. The files are read
// once, by [ServerCredentials]: to rotate a certificate, restart the
// server.
type TLSConfig struct {
	// CertFile is the server's certificate chain, leaf first. Required.
	CertFile string
	// KeyFile is the private key of CertFile's leaf. Required.
	KeyFile string
	// ClientCAFile holds the CA certificates client certificates must chain
	// to. Empty: clients are not asked for a certificate (plain TLS). Set:
	// mutual TLS; every client must present a certificate from one of these
	// CAs, valid for client authentication, or the handshake fails.
	ClientCAFile string
}

// Enabled reports whether any file is set, that is whether the server
// should use TLS at all.
func (c TLSConfig) Enabled() bool {
	return c.CertFile != "" || c.KeyFile != "" || c.ClientCAFile != ""
}

// ServerCredentials returns gRPC server transport credentials for c: TLS
// 1.2 at least (1.3 whenever the client has it), with mutual TLS when
// c.ClientCAFile is set. Errors name the field or file at fault.
func ServerCredentials(c TLSConfig) (credentials.TransportCredentials, error) {
	cfg, err := c.serverConfig()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ServerTLSConfig returns the TLS config [ServerCredentials] uses, for an
// HTTP server (the gateway) to serve the same certificate, and to require
// client certificates alike.
func ServerTLSConfig(c TLSConfig) (*tls.Config, error) {
	return c.serverConfig()
}

func (c TLSConfig) serverConfig() (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, errors.New("tls: CertFile is empty; a TLS server needs a certificate")
	}
	if c.KeyFile == "" {
		return nil, fmt.Errorf("tls: KeyFile is empty; give the private key of %s", c.CertFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client CA %s: no PEM certificate in it", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// PeerName returns the name in the verified client certificate of the call
// in ctx: its subject common name, or else its first DNS name, email
// address or URI. It returns "" when the connection has no verified client
// certificate (no TLS, or TLS without [TLSConfig.ClientCAFile]).
func PeerName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	// VerifiedChains, not PeerCertificates: only a certificate the server
	// checked against the client CAs names anyone.
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return ""
	}
	leaf := chains[0][0]
	switch {
	case leaf.Subject.CommonName != "":
		return leaf.Subject.CommonName
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	case len(leaf.EmailAddresses) > 0:
		return leaf.EmailAddresses[0]
	case len(leaf.URIs) > 0:
		return leaf.URIs[0].String()
	}
	return ""
}
