package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/gateway"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Server is a gRPC server serving PerformanceService, grpc.health.v1 and
// server reflection, and the HTTP gateway to them. Create it with [New], run
// it with [Server.Serve] (and [Server.ServeGateway]), and stop it with
// [Server.Shutdown]; the caller must call Shutdown even if it never served,
// to stop the server's background workers.
type Server struct {
	svc     *Service
	grpc    *grpc.Server
	gateway *http.Server // nil without server.http_listen_address
	health  *health.Server
	metrics *metrics
	log     *slog.Logger
	grace   time.Duration
}

// Options are what a server needs besides its config. The zero value is a
// plaintext server without auth that discards its logs.
type Options struct {
	// Log receives the server's logs; nil discards them.
	Log *slog.Logger
	// Credentials secure the transport (TLS or mutual TLS: see
	// [auth.ServerCredentials]); nil serves plaintext.
	Credentials credentials.TransportCredentials
	// Tokens turn on bearer-token auth: every call but health and
	// reflection needs a token with the role its method needs (see
	// [auth.RequiredRole]). Nil: no auth. With tokens, the recording
	// proxy authenticates its clients too: Basic credentials, a token's
	// name and the token, of a token with [auth.RoleProxy].
	Tokens *auth.Tokens
	// ServedAddrs are the addresses the process serves on besides the
	// recording proxy's listeners (the gRPC and metrics listeners): the
	// proxy refuses to reach them unless proxy.allow_targets lists them
	// with their port.
	ServedAddrs []net.Addr
	// GatewayTLS secures the HTTP gateway; nil serves it plaintext. Give
	// it the certificate of Credentials (see [auth.ServerTLSConfig]), so
	// that both listeners are secured alike.
	GatewayTLS *tls.Config
}

// New assembles a server for cfg, which must be valid.
func New(cfg *pxperfv1.Config, opts Options) (*Server, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc, err := NewService(cfg, log)
	if err != nil {
		return nil, err
	}
	p, err := newProxy(cfg, svc, opts, log)
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		svc.Shutdown(ctx)
		svc.engine.Close(errShuttingDown)
		return nil, fmt.Errorf("create the recording proxy: %w", err)
	}
	svc.engine.SetProxy(p)
	sc := cfg.GetServer()
	validateUnary, validateStream := validationInterceptors(svc.validator)
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		// Successful calls at debug: a busy producer's Publish calls would
		// otherwise flood the log.
		logging.WithLevels(func(c codes.Code) logging.Level {
			if c == codes.OK || c == codes.Canceled {
				return logging.LevelDebug
			}
			return logging.DefaultServerCodeToLevel(c)
		}),
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p)
		return status.Error(codes.Internal, "internal error; the server logged the details")
	})
	// Order: metrics and logs see every call, refused ones too; recovery
	// guards what follows; auth comes before validation, so that a caller
	// without rights learns nothing about what a valid request looks like.
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	var m *metrics
	if sc.GetMetricsAddress() != "" {
		m = newMetrics(svc)
		unary = append(unary, m.grpc.UnaryServerInterceptor())
		stream = append(stream, m.grpc.StreamServerInterceptor())
	}
	unary = append(unary, logging.UnaryServerInterceptor(logger, logOpts...), recovery.UnaryServerInterceptor(recoverOpt))
	stream = append(stream, logging.StreamServerInterceptor(logger, logOpts...), recovery.StreamServerInterceptor(recoverOpt))
	if opts.Tokens != nil {
		au, as := auth.Interceptors(opts.Tokens, auth.RequiredRole)
		unary, stream = append(unary, au), append(stream, as)
	}
	unary, stream = append(unary, validateUnary), append(stream, validateStream)
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		// Subscribe sends batches built from cached entry encodings;
		// publish requests have a decoder of their own.
		grpc.ForceServerCodecV2(newRawCodec(svc.engine.Store().Redacts, svc.engine.Store().Fields)),
		grpc.MaxRecvMsgSize(int(sc.GetMaxRecvMessageBytes())),
		grpc.MaxSendMsgSize(int(sc.GetMaxSendMessageBytes())),
		grpc.MaxConcurrentStreams(sc.GetMaxConcurrentStreams()),
		// A static window bounds what a producer's connection can have
		// buffered here: gRPC's dynamic one grew to 16 MiB under a flood of
		// large bodies, outside the memory budget (BENCHMARKS.md, flood).
		grpc.StaticStreamWindowSize(int32(sc.GetReceiveWindowBytes())),
		grpc.StaticConnWindowSize(int32(sc.GetReceiveWindowBytes())),
		// Find dead peers within ~40s; refuse clients that ping more than
		// every 10s.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if opts.Credentials != nil {
		serverOpts = append(serverOpts, grpc.Creds(opts.Credentials))
	}
	gs := grpc.NewServer(serverOpts...)
	pxperfv1.RegisterPerformanceServiceServer(gs, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, healthServer{Server: hs, shutdown: svc.shutdown})
	reflection.Register(gs)
	if m != nil {
		m.grpc.InitializeMetrics(gs)
	}
	s := &Server{svc: svc, grpc: gs, health: hs, metrics: m, log: log, grace: sc.GetShutdownTimeout().AsDuration()}
	if sc.GetHttpListenAddress() != "" {
		if s.gateway, err = newGateway(gs, sc, opts.GatewayTLS, log); err != nil {
			s.Shutdown()
			return nil, err
		}
	}
	return s, nil
}

// newGateway returns the HTTP server of the gateway to gs for sc.
func newGateway(gs *grpc.Server, sc *pxperfv1.ServerConfig, tlsConfig *tls.Config, log *slog.Logger) (*http.Server, error) {
	h, err := gateway.New(gs, gateway.Config{
		ListenAddress:   sc.GetHttpListenAddress(),
		AllowedHosts:    sc.GetHttpAllowedHosts(),
		CORSOrigins:     sc.GetHttpCorsOrigins(),
		MaxMessageBytes: max(sc.GetMaxRecvMessageBytes(), sc.GetMaxSendMessageBytes()),
	})
	if err != nil {
		return nil, err
	}
	return &http.Server{
		Handler:   h,
		TLSConfig: tlsConfig,
		// No read or write timeout: streams last. A client has this long
		// to send its headers, and an idle keep-alive connection is
		// closed after the second.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// HTTP/2 (over TLS) under the gRPC listener's limits: streams per
		// connection, and what a client may have sent unread.
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(sc.GetMaxConcurrentStreams()),
			MaxReceiveBufferPerStream:     int(sc.GetReceiveWindowBytes()),
			MaxReceiveBufferPerConnection: int(sc.GetReceiveWindowBytes()),
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, nil
}

// MetricsHandler serves Prometheus metrics in the text format: gRPC server
// metrics, Go and process metrics, and pxperf's own. It is nil unless
// server.metrics_address is set.
func (s *Server) MetricsHandler() http.Handler {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.handler()
}

// Service returns the PerformanceService implementation, for tests and for
// in-process producers.
func (s *Server) Service() *Service { return s.svc }

// Serve serves on lis until [Server.Shutdown]. Health reports SERVING from
// the moment it starts (in cluster mode, while the node can publish). It
// returns nil after a shutdown.
func (s *Server) Serve(lis net.Listener) error {
	s.svc.engine.OnClusterReady(s.syncHealth)
	s.syncHealth()
	s.log.Info("serving", "addr", lis.Addr().String())
	if err := s.grpc.Serve(trackedListener{Listener: lis, reg: s.svc.engine.Resources()}); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// syncHealth sets health from whether the node can publish: NOT_SERVING in
// cluster mode while it cannot reach the stream, SERVING otherwise. After
// a shutdown it changes nothing.
func (s *Server) syncHealth() {
	st := healthpb.HealthCheckResponse_SERVING
	if !s.svc.engine.ClusterReady() {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(pxperfv1.PerformanceService_ServiceDesc.ServiceName, st)
}

// ServeGateway serves the HTTP gateway (see package [gateway]) on lis until
// [Server.Shutdown], with TLS when [Options.GatewayTLS] is set. It returns
// nil after a shutdown, and an error at once when the config has no
// server.http_listen_address.
func (s *Server) ServeGateway(lis net.Listener) error {
	if s.gateway == nil {
		return errors.New("serve gateway: server.http_listen_address is not set")
	}
	scheme := "http"
	if s.gateway.TLSConfig != nil {
		scheme = "https"
	}
	s.log.Info("serving the HTTP gateway (Connect, gRPC-Web, REST): open it in a browser", "url", scheme+"://"+browserHost(lis.Addr())+"/")
	lis = trackedListener{Listener: lis, reg: s.svc.engine.Resources()}
	var err error
	if s.gateway.TLSConfig != nil {
		err = s.gateway.ServeTLS(lis, "", "")
	} else {
		err = s.gateway.Serve(lis)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve gateway: %w", err)
	}
	return nil
}

// browserHost returns addr as a browser can open it: an unspecified IP
// address (listening on every interface) becomes the loopback one.
func browserHost(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

// ServeProxy serves the recording proxy on lis until [Server.Shutdown]. It
// returns nil after a shutdown, and an error at once when the config has
// no proxy.listen_address.
func (s *Server) ServeProxy(lis net.Listener) error {
	p := s.svc.engine.Proxy()
	if p == nil {
		return errors.New("serve proxy: proxy.listen_address is not set")
	}
	return p.Serve(lis) // it logs where it serves
}

// Shutdown stops the server: the recording proxy first (its tunnels closed,
// its queued entries published), then health turns NOT_SERVING, open streams end with
// UNAVAILABLE (telling clients where to resume), in-flight calls get the
// server's shutdown_timeout to finish, then every connection is closed and
// the archive is written out, fsynced and closed.
// It returns once the server has stopped.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	if p := s.svc.engine.Proxy(); p != nil {
		if err := p.Shutdown(ctx); err != nil {
			s.log.Warn("recording proxy did not stop in time", "err", err)
		}
	}
	s.health.Shutdown()
	if err := s.svc.Shutdown(ctx); err != nil {
		s.log.Warn("streams did not end in time", "err", err)
	}
	// The gateway's calls are the gRPC server's too: with its streams
	// ended above, its unary calls finish within the same grace.
	if s.gateway != nil {
		if err := s.gateway.Shutdown(ctx); err != nil {
			s.log.Warn("HTTP gateway did not stop in time; closing its connections", "err", err)
			s.gateway.Close()
		}
	}
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.log.Warn("graceful stop timed out; closing connections", "timeout", s.grace)
		s.grpc.Stop()
		<-stopped
	}
	// Whatever is still tracked (connections grpc has not closed, the
	// workers) ends now, each cleanup counted; no publisher is left, so the
	// archive writes out and closes its current file.
	s.svc.engine.Close(errShuttingDown)
}

// healthServer is grpc-go's health server with Watch streams that end when
// the server shuts down: grpc-go's keep a watcher open after its final
// NOT_SERVING, and GracefulStop would wait for it until the shutdown
// timeout.
type healthServer struct {
	*health.Server
	shutdown <-chan struct{} // closed when the service shuts down
}

// Watch implements healthpb.HealthServer.
func (h healthServer) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.shutdown:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, watchStream{Health_WatchServer: stream, ctx: ctx})
	select {
	case <-h.shutdown:
		return status.Error(codes.Unavailable, "server is shutting down")
	default:
		return err
	}
}

// watchStream is a Watch stream with another context.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
