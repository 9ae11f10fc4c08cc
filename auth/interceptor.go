package auth

import (
	"context"
	"fmt"
	"strings"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Interceptors returns server interceptors that check the bearer token of
// every call whose method needs a role, as required says; a nil required
// means [RequiredRole]. A nil t knows no token, so every call that needs a
// role is refused. Install both, after logging and panic recovery and
// before request validation, so that a caller without a token learns
// nothing about the request it sent.
//
// A call needing a role must carry the metadata "authorization: bearer
// <token>" (the scheme in any case). Without it, with another scheme, or
// with a token t does not know, the call fails with UNAUTHENTICATED; with a
// known token lacking the role, with PERMISSION_DENIED naming the role and
// the identity. Otherwise the handler runs with the token's [Identity] in
// its context (see [FromContext]). Calls that need no role run with their
// context unchanged, whatever metadata they carry.
func Interceptors(t *Tokens, required func(fullMethod string) (Role, bool)) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if required == nil {
		required = RequiredRole
	}
	check := func(ctx context.Context) (context.Context, error) {
		// The middleware's AuthFunc is not told the method; the server
		// context is, for unary and streaming calls alike.
		method, ok := grpc.Method(ctx)
		if !ok {
			return nil, status.Error(codes.Internal, "auth: no gRPC method in the server context")
		}
		role, need := required(method)
		if !need {
			return ctx, nil
		}
		token, err := grpcauth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, status.Errorf(codes.Unauthenticated,
				"%s needs a bearer token: send the metadata %q", method, "authorization: bearer <token>")
		}
		id, ok := t.Lookup(strings.TrimSpace(token))
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "unknown bearer token")
		}
		if !id.Allows(role) {
			return nil, status.Errorf(codes.PermissionDenied,
				"%s needs role %s; token of %q has role %s", method, role, id.Name, rolesString(id.Roles))
		}
		return NewContext(ctx, id), nil
	}
	return grpcauth.UnaryServerInterceptor(check), grpcauth.StreamServerInterceptor(check)
}

type identityKey struct{}

// NewContext returns a copy of ctx carrying id, as [Interceptors] does for
// an authenticated call. Tests of handlers use it too.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity of the bearer token the call in ctx was
// authenticated with, or false if it was not (no token needed, or no
// [Interceptors] installed). The identity's Roles must not be modified.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Owner names the caller of the RPC in ctx for the resource registry: its
// peer address ("unknown peer" if ctx has none), followed by " (NAME)" when
// the caller is known by name — the bearer token's identity, or else the
// mutual-TLS certificate's name ([PeerName]). For example
// "10.0.0.7:53122 (alice)".
func Owner(ctx context.Context) string {
	addr := "unknown peer"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	name := PeerName(ctx)
	if id, ok := FromContext(ctx); ok {
		name = id.Name
	}
	if name == "" {
		return addr
	}
	return fmt.Sprintf("%s (%s)", addr, name)
}
