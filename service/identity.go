package service

import (
	"context"
	"net"

	"github.com/pxperf/pxperf/auth"
	"google.golang.org/grpc/peer"
)

// identityName is the authenticated identity of a call, or "" when auth is
// off.
func identityName(ctx context.Context) string {
	id, _ := auth.FromContext(ctx)
	return id.Name
}

// producerOf names the producer of a call for rate limiting: the
// authenticated identity if there is one, else the client's IP address
// (not its port: a producer that reconnects is the same producer).
func producerOf(ctx context.Context) string {
	if id := identityName(ctx); id != "" {
		return id
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}
