package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/httpentry"
	"github.com/pxperf/pxperf/perf/store"
)

// Publisher is where entries go. *service.Service satisfies it in-process;
// [ClientPublisher] adapts a gRPC client. The proxy calls it from one goroutine at a time, with
// up to [MaxBatch] entries a call; it owns the entries from then on.
type Publisher interface {
	Publish(ctx context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error)
}

// ClientPublisher adapts a gRPC client of pxperf to a [Publisher].
func ClientPublisher(c pxperfv1.PerformanceServiceClient) Publisher { return clientPublisher{c} }

type clientPublisher struct {
	c pxperfv1.PerformanceServiceClient
}

func (p clientPublisher) Publish(ctx context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
	return p.c.Publish(ctx, req)
}

// MaxBatch is the most entries the proxy puts in one Publish call.
const MaxBatch = 100

// AlertEntriesDropped names the alert raised while entries are being
// dropped (see [Config.OnAlert]).
const AlertEntriesDropped = "proxy_entries_dropped"

// Config configures a [Proxy]. The zero value of each field but Listen
// means its default.
type Config struct {
	// Listen is the address to listen on, host:port, for
	// [Proxy.ListenAndServe]. Required; [Proxy.Serve] ignores it.
	Listen string
	// Upstream is the proxy to chain to, http://[user:password@]host[:port];
	// the port defaults to 80. With credentials, requests carry them as
	// Basic Proxy-Authorization; without, a client's own
	// Proxy-Authorization is relayed (RFC 9110 §11.7.2) and the
	// upstream's 407 challenge is passed back. Nil: every request goes
	// direct.
	Upstream *url.URL
	// NoProxy lists the targets that bypass Upstream, comma-separated, in
	// NO_PROXY syntax: "*" (everything), a domain name (example.com matches
	// it and its subdomains; .example.com or *.example.com only the
	// subdomains), an IP address or CIDR prefix, each optionally with
	// :port. Loopback targets are not special: list localhost and
	// 127.0.0.1 to keep them direct. Empty: nothing bypasses Upstream.
	NoProxy string
	// AllowTargets lists the targets inside this host that the proxy may
	// reach all the same, in the syntax of NoProxy. Without a listing, a
	// request or tunnel to a loopback, link-local or unspecified address,
	// to localhost, to a name that resolves to one of those (judged on the
	// address dialled when the proxy dials the target itself), or to an
	// address pxperf listens on (OwnAddrs, and the listeners of
	// [Proxy.Serve]) is refused with 403 and recorded with error kind
	// DENIED. A rule without a port opens every port but pxperf's own
	// listeners, which only a rule naming their port opens; "*" opens
	// everything but them. Empty: nothing inside the host is reached.
	AllowTargets string
	// OwnAddrs are the other addresses the server serves on (gRPC,
	// metrics): the proxy refuses them as it refuses its own listeners
	// (see AllowTargets). [Proxy.Serve] adds its listener's address.
	OwnAddrs []net.Addr
	// Authenticate, if set, turns client authentication on: a request must
	// carry Basic Proxy-Authorization credentials for which Authenticate
	// returns true, or it is answered 407 with a Basic challenge and not
	// recorded. Those credentials are the proxy's own: they are never
	// passed on to Upstream, nor is an upstream's challenge passed back.
	// It may be called concurrently. Nil: any client may use the proxy,
	// and one listening beyond loopback says so (a warning in the log,
	// [Stats.Open]).
	Authenticate func(user, password string) bool
	// MaxConnsPerClient limits the connections one client (an IP address)
	// holds open at once: one beyond is answered 429 and closed without
	// taking one of MaxConns's slots. 0: no limit per client.
	MaxConnsPerClient int
	// ClientRequestsPerSecond limits the requests (plain ones and
	// CONNECTs) one client (an IP address) makes a second, on average: one
	// beyond is answered 429 with Retry-After and not recorded. 0: no
	// limit.
	ClientRequestsPerSecond float64
	// ClientRequestBurst is how many requests a client may make at once
	// above ClientRequestsPerSecond (the size of its token bucket).
	// Default: one second's worth, ClientRequestsPerSecond rounded up.
	ClientRequestBurst int
	// Resolver resolves target names when the proxy dials a target itself.
	// Nil: net.DefaultResolver.
	Resolver *net.Resolver
	// MaxBodySize is how many bytes of each request and response body an
	// entry captures. Each body still streams whole, as it is read, to the
	// target or the client. Default 10 KiB.
	MaxBodySize int
	// QueueSize is how many entries may wait to be published. When the
	// queue is full, entries are dropped and counted. Default 4096.
	QueueSize int
	// MaxConns limits concurrent client connections, tunnels and idle
	// keep-alive connections included. Default 1000. A connection beyond
	// the limit is accepted and then waits, unread, until another closes
	// (counted in [Stats.ConnWaits]); further ones wait in the listen
	// backlog. Waiting rather than refusing keeps clients working through
	// a burst; IdleTimeout bounds how long an idle connection holds a slot.
	MaxConns int
	// IdleTimeout closes a client keep-alive connection idle this long, and
	// a tunnel with no bytes either way for this long. Default 90s.
	IdleTimeout time.Duration
	// DialTimeout bounds opening a connection to a target or upstream,
	// and a CONNECT exchange with the upstream. Default 10s.
	DialTimeout time.Duration
	// PublishTimeout bounds one Publish call; the entries of a call that
	// fails are dropped, not retried. Default 10s.
	PublishTimeout time.Duration
	// RedactHeaders are header names, besides Authorization,
	// Proxy-Authorization, Cookie and Set-Cookie, whose values entries
	// record as "[REDACTED]". Case-insensitive. The traffic itself is
	// never changed.
	RedactHeaders []string
	// OnServe, if set, is called by [Proxy.Serve] with its listener's
	// address once the proxy has taken the listener, before it accepts:
	// [Stats] count the listener from then on (in Open, say). It is called
	// on Serve's goroutine.
	OnServe func(addr net.Addr)
	// OnAlert, if set, is called when entries start being dropped (state
	// FIRING) and when the queue has drained to half again (CLEARED). It
	// may be called from any goroutine, never concurrently, and must not
	// block.
	OnAlert func(*pxperfv1.Alert)
	// Now is the clock of entries' times and timings, and of the
	// per-client request rate. Nil: time.Now. Socket deadlines always use
	// the real clock.
	Now func() time.Time
}

// ErrInvalidConfig is wrapped by the errors of [New] for a bad [Config].
var ErrInvalidConfig = errors.New("invalid proxy config")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// lists are the parsed target lists of a [Config].
type lists struct {
	noProxy, allow hostList
}

// withDefaults validates c and returns it with its defaults filled in, and
// its target lists parsed.
func (c Config) withDefaults() (Config, lists, error) {
	var ls lists
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, ls, invalid("Listen", "want host:port, got %q", c.Listen)
	}
	if u := c.Upstream; u != nil {
		if u.Scheme != "http" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return c, ls, invalid("Upstream", "want http://[user:password@]host[:port], got %q", u.Redacted())
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return c, ls, invalid("Upstream", "port %q is not 1..65535", p)
			}
		}
		up := *u
		up.Path = ""
		if up.Port() == "" {
			up.Host = net.JoinHostPort(up.Hostname(), "80")
		}
		c.Upstream = &up
	}
	var err error
	if ls.noProxy, err = parseHostList(c.NoProxy); err != nil {
		return c, ls, invalid("NoProxy", "%v", err)
	}
	if ls.allow, err = parseHostList(c.AllowTargets); err != nil {
		return c, ls, invalid("AllowTargets", "%v", err)
	}
	if r := c.ClientRequestsPerSecond; !(r >= 0 && r <= math.MaxInt32) {
		return c, ls, invalid("ClientRequestsPerSecond", "want 0..%d, got %v", math.MaxInt32, r)
	}
	if c.ClientRequestBurst == 0 {
		c.ClientRequestBurst = int(math.Ceil(c.ClientRequestsPerSecond))
	}
	for _, d := range []struct {
		field string
		v     *int
		def   int
	}{
		{"MaxBodySize", &c.MaxBodySize, 10 << 10},
		{"QueueSize", &c.QueueSize, 4096},
		{"MaxConns", &c.MaxConns, 1000},
		{"MaxConnsPerClient", &c.MaxConnsPerClient, 0},
		{"ClientRequestBurst", &c.ClientRequestBurst, 0},
	} {
		if *d.v < 0 {
			return c, ls, invalid(d.field, "must not be negative, got %d", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"IdleTimeout", &c.IdleTimeout, 90 * time.Second},
		{"DialTimeout", &c.DialTimeout, 10 * time.Second},
		{"PublishTimeout", &c.PublishTimeout, 10 * time.Second},
	} {
		if *d.v < 0 {
			return c, ls, invalid(d.field, "must not be negative, got %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for i, h := range c.RedactHeaders {
		if limit := httpentry.Contract().HeaderName; h == "" || len(h) > limit {
			return c, ls, invalid(fmt.Sprintf("RedactHeaders[%d]", i), "want a header name of 1..%d bytes, got %q", limit, h)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, ls, nil
}

// Proxy is a recording HTTP forward proxy. Create it with [New], serve
// with [Proxy.Serve], stop with [Proxy.Shutdown]. The caller must call
// Shutdown even if it never served, to stop the publishing goroutine. It
// is safe for concurrent use.
type Proxy struct {
	cfg     Config
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time
	noProxy hostList
	guard   *guard
	clients *clients        // per-client limits; nil when there are none
	redact  map[string]bool // canonical header names
	via     string          // our Via entry, unique to this instance
	prefix  string          // of request ids
	nextID  atomic.Uint64

	srv       *http.Server
	rp        *httputil.ReverseProxy
	transport *http.Transport
	dialer    *net.Dialer   // to the upstream
	direct    *net.Dialer   // to targets, judged by the guard
	slots     chan struct{} // one per open client connection

	// refusing counts the goroutines answering connections refused by
	// MaxConnsPerClient; refuseSlots bounds them.
	refusing    sync.WaitGroup
	refuseSlots chan struct{}

	// baseCtx is the parent of every request's context; Shutdown cancels
	// it once the grace period is over.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu       sync.Mutex
	closing  bool                 // Shutdown has begun
	draining bool                 // Shutdown waits for handlers; no new ones
	active   int                  // handlers running
	idlec    chan struct{}        // closed when draining and active reaches 0
	tunnels  map[*tunnel]struct{} // open tunnels, closed by Shutdown
	open     []string             // listeners beyond loopback, without client auth

	queue      chan *pxperfv1.Entry
	qmu        sync.RWMutex  // held to write qclosed, read-held to queue
	qclosed    bool          // the queue is no longer drained
	stopc      chan struct{} // closed by Shutdown: drain the queue and stop
	loopDone   chan struct{}
	loopCtx    context.Context // cancelled when Shutdown's ctx ends
	cancelLoop context.CancelFunc

	alertMu   sync.Mutex
	dropping  atomic.Bool
	dropStart time.Time
	dropBase  uint64 // stats.dropped when the alert fired
	failing   bool   // the last Publish call failed; loop goroutine only

	stats counters
}

// counters are the running totals behind [Stats].
type counters struct {
	requests, tunnels, bytesIn, bytesOut, errors atomic.Uint64
	published, rejected, dropped, unrecorded     atomic.Uint64
	publishErrors, connWaits                     atomic.Uint64
	denied, authFailures, rateLimited            atomic.Uint64
	connsRefused                                 atomic.Uint64
	activeTunnels                                atomic.Int64
}

// Stats are a proxy's counters since [New], and gauges now.
type Stats struct {
	Requests uint64 // plain HTTP requests received
	Tunnels  uint64 // CONNECT requests received
	// BytesOut counts payload bytes from clients to targets (request
	// bodies, tunnel bytes); BytesIn payload bytes from targets to
	// clients (response bodies, tunnel bytes). Headers are not counted.
	BytesOut uint64
	BytesIn  uint64
	// Errors counts exchanges recorded as FAILED.
	Errors uint64
	// Published counts entries the Publisher accepted; Rejected those it
	// refused one by one (a bug in the proxy: it should build valid
	// entries); Dropped those never delivered: the queue was full, their
	// Publish call failed, or Shutdown's deadline passed.
	Published uint64
	Rejected  uint64
	Dropped   uint64
	// Unrecorded counts requests not recorded because no valid entry
	// describes them: carried with a method outside the IANA registry, or
	// refused as a CONNECT without host:port.
	Unrecorded uint64
	// PublishErrors counts failed Publish calls.
	PublishErrors uint64
	// ConnWaits counts client connections that had to wait for a slot
	// (see [Config.MaxConns]).
	ConnWaits uint64
	// Denied counts requests and tunnels refused with 403 because their
	// target is inside this host (see [Config.AllowTargets]).
	Denied uint64
	// AuthFailures counts requests answered 407: client authentication is
	// on and they carried no valid credentials (see [Config.Authenticate]).
	AuthFailures uint64
	// RateLimited counts requests answered 429 by
	// [Config.ClientRequestsPerSecond].
	RateLimited uint64
	// ConnsRefused counts connections answered 429 and closed by
	// [Config.MaxConnsPerClient].
	ConnsRefused uint64
	// Queued is the number of entries waiting to be published now.
	Queued int
	// ActiveConns is the number of client connections open now.
	ActiveConns int
	// ActiveTunnels is the number of tunnels open now.
	ActiveTunnels int
	// Dropping is whether the dropped-entries alert holds now.
	Dropping bool
	// Open lists the addresses where the proxy serves beyond loopback
	// without client authentication: anyone who can reach them may use
	// it. Nil when there are none.
	Open []string
}

// Stats returns the proxy's counters and gauges.
func (p *Proxy) Stats() Stats {
	s := &p.stats
	return Stats{
		Requests:      s.requests.Load(),
		Tunnels:       s.tunnels.Load(),
		BytesOut:      s.bytesOut.Load(),
		BytesIn:       s.bytesIn.Load(),
		Errors:        s.errors.Load(),
		Published:     s.published.Load(),
		Rejected:      s.rejected.Load(),
		Dropped:       s.dropped.Load(),
		Unrecorded:    s.unrecorded.Load(),
		PublishErrors: s.publishErrors.Load(),
		ConnWaits:     s.connWaits.Load(),
		Denied:        s.denied.Load(),
		AuthFailures:  s.authFailures.Load(),
		RateLimited:   s.rateLimited.Load(),
		ConnsRefused:  s.connsRefused.Load(),
		Queued:        len(p.queue),
		ActiveConns:   len(p.slots),
		ActiveTunnels: int(s.activeTunnels.Load()),
		Dropping:      p.dropping.Load(),
		Open:          p.openAddrs(),
	}
}

// New returns a proxy for cfg that publishes to pub, and starts its
// publishing goroutine. log may be nil to discard logs. An invalid cfg
// gives an error wrapping [ErrInvalidConfig] that names the field.
func New(cfg Config, pub Publisher, log *slog.Logger) (*Proxy, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: a Publisher is required", ErrInvalidConfig)
	}
	cfg, ls, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand)
	p := &Proxy{
		cfg:      cfg,
		pub:      pub,
		log:      log,
		now:      cfg.Now,
		noProxy:  ls.noProxy,
		guard:    &guard{allow: ls.allow},
		clients:  newClients(cfg),
		redact:   make(map[string]bool),
		via:      "1.1 pxperf-" + hex.EncodeToString(rnd[:3]),
		prefix:   "pxp-" + hex.EncodeToString(rnd[:]) + "-",
		dialer:   &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		slots:    make(chan struct{}, cfg.MaxConns),
		tunnels:  make(map[*tunnel]struct{}),
		queue:    make(chan *pxperfv1.Entry, cfg.QueueSize),
		stopc:    make(chan struct{}),
		loopDone: make(chan struct{}),

		refuseSlots: make(chan struct{}, maxRefusing),
	}
	p.guard.addOwn(cfg.OwnAddrs...)
	p.direct = &net.Dialer{
		Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second,
		Resolver: cfg.Resolver, ControlContext: p.guard.control,
	}
	for _, h := range store.AlwaysRedacted {
		p.redact[textproto.CanonicalMIMEHeaderKey(h)] = true
	}
	for _, h := range cfg.RedactHeaders {
		p.redact[textproto.CanonicalMIMEHeaderKey(h)] = true
	}
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	p.loopCtx, p.cancelLoop = context.WithCancel(context.Background())
	p.transport = p.newTransport()
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	p.rp = p.newReverseProxy(errLog)
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return p.baseCtx },
		ErrorLog:          errLog,
		// OPTIONS * is for us to refuse, not for the server to answer.
		DisableGeneralOptionsHandler: true,
	}
	go p.publishLoop()
	return p, nil
}

// openAddrs returns a copy of p.open.
func (p *Proxy) openAddrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.open)
}

// readHeaderTimeout bounds how long a client may take to send a request's
// headers.
const readHeaderTimeout = 30 * time.Second

// ListenAndServe listens on [Config.Listen] and serves until
// [Proxy.Shutdown].
func (p *Proxy) ListenAndServe() error {
	lis, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return p.Serve(lis)
}

// Serve accepts client connections on lis and serves them until
// [Proxy.Shutdown], after which it returns nil. It closes lis. The proxy
// refuses to reach lis's address (see [Config.AllowTargets]); without
// client authentication, a lis beyond loopback is logged as a warning and
// sets [Stats.Open].
func (p *Proxy) Serve(lis net.Listener) error {
	addr := lis.Addr()
	p.guard.addOwn(addr)
	p.log.Info("proxy serving", "addr", addr.String(), "upstream", upstreamName(p.cfg.Upstream), "client_auth", p.cfg.Authenticate != nil)
	if ap, err := netip.ParseAddrPort(addr.String()); p.cfg.Authenticate == nil && (err != nil || !ap.Addr().IsLoopback()) {
		p.mu.Lock()
		p.open = append(p.open, addr.String())
		p.mu.Unlock()
		p.log.Warn("the recording proxy listens beyond loopback without client authentication: anyone who can reach it can use it; "+
			"turn client authentication on (pxperf serve: --tokens, with tokens of the proxy role)", "addr", addr.String())
	}
	if p.cfg.OnServe != nil {
		p.cfg.OnServe(addr)
	}
	err := p.srv.Serve(newLimitListener(lis, p.slots, &p.stats.connWaits, p.clients, p.refuseConn))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("proxy: %w", err)
}

func upstreamName(u *url.URL) string {
	if u == nil {
		return "DIRECT"
	}
	return u.Host
}

// Shutdown stops the proxy: it stops accepting, closes every tunnel, lets
// plain requests in flight finish until ctx ends (then closes their
// connections), publishes what is still queued, and stops its goroutines.
// Entries still queued when ctx ends are dropped. It returns ctx's error if
// ctx ended first. Calls after the first wait for the first to finish.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		select {
		case <-p.loopDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.closing = true
	tunnels := make([]*tunnel, 0, len(p.tunnels))
	for t := range p.tunnels {
		tunnels = append(tunnels, t)
	}
	p.mu.Unlock()

	for _, t := range tunnels {
		t.close()
	}
	err := p.srv.Shutdown(ctx)
	p.cancelBase() // ends upgraded connections and anything left
	if err != nil {
		_ = p.srv.Close()
	}
	// The listeners are closed: no refusal starts now, and each running
	// one ends within refuseTimeout.
	p.refusing.Wait()
	if werr := p.waitHandlers(ctx); err == nil {
		err = werr
	}
	p.transport.CloseIdleConnections()

	close(p.stopc)
	select {
	case <-p.loopDone:
	case <-ctx.Done():
		// Cancel the call in flight here, not from context.AfterFunc: a
		// deferred stop could win the race with it and leave the call
		// running to its own timeout. The loop stops once the Publisher
		// honours its cancelled context.
		p.cancelLoop()
		return ctx.Err()
	}
	p.cancelLoop()
	return err
}

// enter registers a running handler; false once Shutdown waits for them.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draining {
		return false
	}
	p.active++
	return true
}

func (p *Proxy) exit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active == 0 && p.idlec != nil {
		close(p.idlec)
		p.idlec = nil
	}
}

// waitHandlers waits, until ctx ends, for every handler to return, so that
// their last entries are queued before the queue is drained.
func (p *Proxy) waitHandlers(ctx context.Context) error {
	p.mu.Lock()
	p.draining = true
	if p.active == 0 {
		p.mu.Unlock()
		return nil
	}
	idle := make(chan struct{})
	p.idlec = idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP proxies one request: CONNECT opens a tunnel, an absolute-form
// request is forwarded, anything else is refused with 400. A request
// without valid credentials when client authentication is on is answered
// 407, one beyond its client's rate 429, one for a target inside this host
// 403 (see [Config]). It is the
// handler of the proxy's own server; connections it serves elsewhere do
// not count against [Config.MaxConns].
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		w.Header().Set("Connection", "close")
		http.Error(w, "pxperf proxy: shutting down", http.StatusServiceUnavailable)
		return
	}
	defer p.exit()
	if !p.authenticate(w, r) {
		return
	}
	if !p.clients.allowRequest(r.RemoteAddr) {
		p.stats.rateLimited.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "pxperf proxy: too many requests from this client (proxy.client_requests_per_second); slow down", http.StatusTooManyRequests)
		return
	}
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	if (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Host == "" {
		http.Error(w, "pxperf proxy: this is a forward proxy; send absolute-form requests (GET http://host/path) or CONNECT host:port", http.StatusBadRequest)
		return
	}
	p.serveForward(w, r)
}

// newID returns a request id unique to this proxy instance.
func (p *Proxy) newID() string {
	return p.prefix + strconv.FormatUint(p.nextID.Add(1), 10)
}
