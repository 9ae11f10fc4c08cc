package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/internal/testcert"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const service = "pxperf.v1.PerformanceService"

// Header keys the test service answers with, describing the caller as the
// handler saw it.
const (
	hdrIdentity = "x-identity"
	hdrPeerName = "x-peer-name"
	hdrOwner    = "x-owner"
)

// callerHeader describes the caller of the call in ctx.
func callerHeader(ctx context.Context) metadata.MD {
	id, _ := auth.FromContext(ctx)
	return metadata.Pairs(hdrIdentity, id.Name, hdrPeerName, auth.PeerName(ctx), hdrOwner, auth.Owner(ctx))
}

// testServiceDesc describes a stand-in for PerformanceService with a few of
// its real method names, taking and returning Empty, so that the role table
// is tested against real method names without the generated code. Every
// method answers with callerHeader.
func testServiceDesc() *grpc.ServiceDesc {
	unary := func(name string) grpc.MethodDesc {
		return grpc.MethodDesc{
			MethodName: name,
			Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					if err := grpc.SetHeader(ctx, callerHeader(ctx)); err != nil {
						return nil, err
					}
					return &emptypb.Empty{}, nil
				}
				if ic == nil {
					return h(ctx, in)
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + service + "/" + name}, h)
			},
		}
	}
	return &grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{unary("Publish"), unary("GetStats"), unary("UpdateConfig")},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Subscribe",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
					return err
				}
				if err := stream.SetHeader(callerHeader(stream.Context())); err != nil {
					return err
				}
				return stream.SendMsg(&emptypb.Empty{})
			},
		}},
	}
}

// startServer serves health and the test service on a loopback port until
// the test ends, and returns its address.
func startServer(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(testServiceDesc(), struct{}{})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// tlsServer starts a server with TLS (mutual when clientCA is not nil) and
// the options given, and returns its address and the CA of its
// certificate.
func tlsServer(t *testing.T, clientCA *testcert.CA, opts ...grpc.ServerOption) (string, *testcert.CA) {
	t.Helper()
	ca := testcert.NewCA(t, "server-ca")
	certFile, keyFile := ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	cfg := auth.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	if clientCA != nil {
		cfg.ClientCAFile = clientCA.CertFile
	}
	creds, err := auth.ServerCredentials(cfg)
	if err != nil {
		t.Fatalf("ServerCredentials: %v", err)
	}
	return startServer(t, append(opts, grpc.Creds(creds))...), ca
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// result is what a call returned: its status code, message, the caller
// header the server sent and the connection's peer (unary calls only).
type result struct {
	code   codes.Code
	msg    string
	header metadata.MD
	peer   peer.Peer
}

// call calls method ("Health" for the health check) with the authorization
// metadata authz, unless it is empty.
func call(ctx context.Context, conn *grpc.ClientConn, method, authz string) result {
	if authz != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authz)
	}
	var r result
	var err error
	switch method {
	case "Health":
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&r.peer))
	case "Subscribe":
		err = subscribe(ctx, conn, &r)
	default:
		err = conn.Invoke(ctx, "/"+service+"/"+method, &emptypb.Empty{}, &emptypb.Empty{},
			grpc.Header(&r.header), grpc.Peer(&r.peer))
	}
	s := status.Convert(err)
	r.code, r.msg = s.Code(), s.Message()
	return r
}

func subscribe(ctx context.Context, conn *grpc.ClientConn, r *result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+service+"/Subscribe")
	if err != nil {
		return err
	}
	if err := st.SendMsg(&emptypb.Empty{}); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	if err := st.RecvMsg(new(emptypb.Empty)); err != nil {
		return err
	}
	r.header, err = st.Header()
	return err
}

func TestTLS(t *testing.T) {
	addr, ca := tlsServer(t, nil)
	other := testcert.NewCA(t, "other-ca")
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		want  codes.Code
	}{
		{"client trusting the server's CA", credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()}), codes.OK},
		{"plaintext client", insecure.NewCredentials(), codes.Unavailable},
		{"client trusting another CA", credentials.NewTLS(&tls.Config{RootCAs: other.Pool()}), codes.Unavailable},
		{"TLS 1.1 client", credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}), codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			conn := dial(t, addr, tt.creds)
			for _, method := range []string{"Health", "GetStats"} {
				r := call(ctx, conn, method, "")
				if r.code != tt.want {
					t.Fatalf("%s: got %v (%s), want %v", method, r.code, r.msg, tt.want)
				}
				if r.code != codes.OK {
					continue
				}
				info, ok := r.peer.AuthInfo.(credentials.TLSInfo)
				if !ok || info.State.Version != tls.VersionTLS13 {
					t.Errorf("%s: connection not TLS 1.3: %+v", method, r.peer.AuthInfo)
				}
				if method == "GetStats" {
					if got := r.header.Get(hdrPeerName); len(got) != 1 || got[0] != "" {
						t.Errorf("PeerName without mutual TLS: got %q, want \"\"", got)
					}
				}
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	clientCA := testcert.NewCA(t, "client-ca")
	addr, ca := tlsServer(t, clientCA)
	other := testcert.NewCA(t, "other-ca")
	serverOnlyFile, serverOnlyKey := clientCA.Issue(t, "server-only", x509.ExtKeyUsageServerAuth)
	serverOnly, err := tls.LoadX509KeyPair(serverOnlyFile, serverOnlyKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		certs    []tls.Certificate
		want     codes.Code
		wantName string
	}{
		{"certificate from the client CA", []tls.Certificate{clientCA.Certificate(t, "alice", x509.ExtKeyUsageClientAuth)}, codes.OK, "alice"},
		{"no certificate", nil, codes.Unavailable, ""},
		{"certificate from another CA", []tls.Certificate{other.Certificate(t, "mallory", x509.ExtKeyUsageClientAuth)}, codes.Unavailable, ""},
		{"certificate not for client auth", []tls.Certificate{serverOnly}, codes.Unavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			conn := dial(t, addr, credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: tt.certs}))
			r := call(ctx, conn, "GetStats", "")
			if r.code != tt.want {
				t.Fatalf("got %v (%s), want %v", r.code, r.msg, tt.want)
			}
			if r.code != codes.OK {
				return
			}
			if got := r.header.Get(hdrPeerName); len(got) != 1 || got[0] != tt.wantName {
				t.Errorf("PeerName: got %q, want %q", got, tt.wantName)
			}
			owner := r.header.Get(hdrOwner)
			if len(owner) != 1 || !strings.HasPrefix(owner[0], "127.0.0.1:") || !strings.HasSuffix(owner[0], " ("+tt.wantName+")") {
				t.Errorf("Owner: got %q, want \"127.0.0.1:PORT (%s)\"", owner, tt.wantName)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	const (
		viewTok    = "view-token-0123456789"
		publishTok = "publish-token-0123456789"
		adminTok   = "admin-token-0123456789"
		bothTok    = "both-token-0123456789"
	)
	tokens, err := auth.NewTokens(map[string]auth.Identity{
		viewTok:    {Name: "viewer", Roles: []auth.Role{auth.RoleView}},
		publishTok: {Name: "producer", Roles: []auth.Role{auth.RolePublish}},
		adminTok:   {Name: "ops", Roles: []auth.Role{auth.RoleAdmin}},
		bothTok:    {Name: "both", Roles: []auth.Role{auth.RoleView, auth.RolePublish}},
	})
	if err != nil {
		t.Fatal(err)
	}
	unary, stream := auth.Interceptors(tokens, nil)
	addr, ca := tlsServer(t, nil, grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	conn := dial(t, addr, credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()}))

	const (
		ok      = codes.OK
		unauthn = codes.Unauthenticated
		denied  = codes.PermissionDenied
	)
	tests := []struct {
		name  string
		authz string
		// want is the code per method; identity is the name handlers see
		// for successful protected calls.
		want     map[string]codes.Code
		identity string
		// msg is a part of every error message.
		msg string
	}{
		{
			name: "no authorization", authz: "",
			want: map[string]codes.Code{"Health": ok, "GetStats": unauthn, "Publish": unauthn, "UpdateConfig": unauthn, "Subscribe": unauthn},
			msg:  `"authorization: bearer <token>"`,
		},
		{
			name: "basic scheme", authz: "Basic " + adminTok,
			want: map[string]codes.Code{"Health": ok, "GetStats": unauthn, "UpdateConfig": unauthn, "Subscribe": unauthn},
			msg:  `"authorization: bearer <token>"`,
		},
		{
			name: "no scheme", authz: adminTok,
			want: map[string]codes.Code{"GetStats": unauthn, "Subscribe": unauthn},
			msg:  `"authorization: bearer <token>"`,
		},
		{
			name: "empty token", authz: "bearer ",
			want: map[string]codes.Code{"GetStats": unauthn},
			msg:  "unknown bearer token",
		},
		{
			name: "unknown token", authz: "bearer not-a-known-token-0123456789",
			want: map[string]codes.Code{"Health": ok, "GetStats": unauthn, "Publish": unauthn, "Subscribe": unauthn},
			msg:  "unknown bearer token",
		},
		{
			name: "prefix of a token", authz: "bearer " + adminTok[:len(adminTok)-1],
			want: map[string]codes.Code{"UpdateConfig": unauthn},
			msg:  "unknown bearer token",
		},
		{
			name: "view", authz: "bearer " + viewTok,
			want:     map[string]codes.Code{"Health": ok, "GetStats": ok, "Subscribe": ok, "Publish": denied, "UpdateConfig": denied},
			identity: "viewer", msg: `token of "viewer" has role view`,
		},
		{
			name: "publish", authz: "Bearer " + publishTok,
			want:     map[string]codes.Code{"Health": ok, "Publish": ok, "GetStats": denied, "Subscribe": denied, "UpdateConfig": denied},
			identity: "producer", msg: `token of "producer" has role publish`,
		},
		{
			name: "view and publish", authz: "bearer " + bothTok,
			want:     map[string]codes.Code{"GetStats": ok, "Subscribe": ok, "Publish": ok, "UpdateConfig": denied},
			identity: "both", msg: "needs role admin",
		},
		{
			name: "admin", authz: "BEARER " + adminTok,
			want:     map[string]codes.Code{"Health": ok, "GetStats": ok, "Subscribe": ok, "Publish": ok, "UpdateConfig": ok},
			identity: "ops",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			for method, want := range tt.want {
				r := call(ctx, conn, method, tt.authz)
				if r.code != want {
					t.Errorf("%s: got %v (%s), want %v", method, r.code, r.msg, want)
					continue
				}
				if r.code != codes.OK {
					if !strings.Contains(r.msg, tt.msg) {
						t.Errorf("%s: got message %q, want it to contain %q", method, r.msg, tt.msg)
					}
					for _, tok := range []string{viewTok, publishTok, adminTok, bothTok, "not-a-known"} {
						if strings.Contains(r.msg, tok) {
							t.Errorf("%s: message %q repeats a token", method, r.msg)
						}
					}
					if r.code == codes.PermissionDenied && !strings.Contains(r.msg, "/"+service+"/"+method) {
						t.Errorf("%s: message %q does not name the method", method, r.msg)
					}
					continue
				}
				if method == "Health" {
					continue
				}
				if got := r.header.Get(hdrIdentity); len(got) != 1 || got[0] != tt.identity {
					t.Errorf("%s: identity: got %q, want %q", method, got, tt.identity)
				}
				if got := r.header.Get(hdrOwner); len(got) != 1 || !strings.HasSuffix(got[0], " ("+tt.identity+")") {
					t.Errorf("%s: owner: got %q, want \"ADDR (%s)\"", method, got, tt.identity)
				}
			}
		})
	}
}

func TestInterceptorsCustomTable(t *testing.T) {
	tokens, err := auth.NewTokens(map[string]auth.Identity{
		"view-token-0123456789": {Name: "viewer", Roles: []auth.Role{auth.RoleView}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Everything open except GetStats, which needs admin.
	required := func(m string) (auth.Role, bool) { return auth.RoleAdmin, m == "/"+service+"/GetStats" }
	unary, stream := auth.Interceptors(tokens, required)
	addr := startServer(t, grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	conn := dial(t, addr, insecure.NewCredentials())
	ctx := testContext(t)
	for method, want := range map[string]codes.Code{"UpdateConfig": codes.OK, "Subscribe": codes.OK, "GetStats": codes.PermissionDenied} {
		if r := call(ctx, conn, method, "bearer view-token-0123456789"); r.code != want {
			t.Errorf("%s: got %v (%s), want %v", method, r.code, r.msg, want)
		}
	}
}

func TestNilTokensRefuse(t *testing.T) {
	unary, stream := auth.Interceptors(nil, nil)
	addr := startServer(t, grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	conn := dial(t, addr, insecure.NewCredentials())
	ctx := testContext(t)
	for method, want := range map[string]codes.Code{"Health": codes.OK, "GetStats": codes.Unauthenticated, "Subscribe": codes.Unauthenticated} {
		if r := call(ctx, conn, method, "bearer some-token-0123456789"); r.code != want {
			t.Errorf("%s: got %v (%s), want %v", method, r.code, r.msg, want)
		}
	}
}

func TestOwner(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 53122}
	withPeer := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"nothing known", context.Background(), "unknown peer"},
		{"peer only", withPeer, "10.0.0.7:53122"},
		{"peer and identity", auth.NewContext(withPeer, auth.Identity{Name: "alice", Roles: []auth.Role{auth.RoleView}}), "10.0.0.7:53122 (alice)"},
		{"identity only", auth.NewContext(context.Background(), auth.Identity{Name: "bob"}), "unknown peer (bob)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auth.Owner(tt.ctx); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
