package client

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// tokenCredentials sends a bearer token with every call. It implements
// credentials.PerRPCCredentials.
type tokenCredentials struct {
	header     string // "bearer <token>"
	requireTLS bool
}

// newTokenCredentials checks cfg.Token and whether it may travel over the
// connection cfg describes to address.
func newTokenCredentials(cfg Config, addresses []string) (*tokenCredentials, error) {
	for _, r := range cfg.Token {
		// Metadata values are printable ASCII; a space or newline would
		// also split the "bearer <token>" header.
		if r <= ' ' || r > '~' {
			return nil, fmt.Errorf("client: Config.Token: want printable ASCII without spaces, found %q", r)
		}
	}
	secure := cfg.TLS != nil
	for _, address := range addresses {
		if !secure && !cfg.AllowTokenWithoutTLS && !isLoopbackTarget(address) {
			return nil, fmt.Errorf("client: Config.Token: would be sent in clear text to %q, which is not a loopback address; set Config.TLS, or Config.AllowTokenWithoutTLS for a connection secured another way", address)
		}
	}
	// With TLS, grpc itself refuses to send the token should the
	// connection turn out not to be secure (DialOptions replaced the
	// transport).
	return &tokenCredentials{header: "bearer " + cfg.Token, requireTLS: secure}, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.header}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c *tokenCredentials) RequireTransportSecurity() bool { return c.requireTLS }

// isLoopbackTarget reports whether the grpc target address reaches only
// this machine: a unix socket, or host:port (after any "scheme://authority/")
// whose host is "localhost" or a loopback IP. Any other host name could
// resolve to anything, so it is not loopback.
func isLoopbackTarget(address string) bool {
	endpoint := address
	if scheme, rest, ok := strings.Cut(address, "://"); ok {
		if scheme == "unix" || scheme == "unix-abstract" {
			return true
		}
		_, endpoint, _ = strings.Cut(rest, "/") // skip the authority
	} else if strings.HasPrefix(address, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
