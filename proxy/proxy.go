package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
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
	// MaxBodySize is how many bytes of each response body an entry
	// captures. The body still streams whole to the client. Default 10
	// KiB.
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
	// OnAlert, if set, is called when entries start being dropped (state
	// FIRING) and when the queue has drained to half again (CLEARED). It
	// may be called from any goroutine, never concurrently, and must not
	// block.
	OnAlert func(*pxperfv1.Alert)
	// Now is the clock of entries' times and timings. Nil: time.Now.
	// Socket deadlines always use the real clock.
	Now func() time.Time
}

// ErrInvalidConfig is wrapped by the errors of [New] for a bad [Config].
var ErrInvalidConfig = errors.New("invalid proxy config")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// withDefaults validates c and returns it with its defaults filled in.
func (c Config) withDefaults() (Config, noProxy, error) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, noProxy{}, invalid("Listen", "want host:port, got %q", c.Listen)
	}
	if u := c.Upstream; u != nil {
		if u.Scheme != "http" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return c, noProxy{}, invalid("Upstream", "want http://[user:password@]host[:port], got %q", u.Redacted())
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return c, noProxy{}, invalid("Upstream", "port %q is not 1..65535", p)
			}
		}
		up := *u
		up.Path = ""
		if up.Port() == "" {
			up.Host = net.JoinHostPort(up.Hostname(), "80")
		}
		c.Upstream = &up
	}
	np, err := parseNoProxy(c.NoProxy)
	if err != nil {
		return c, noProxy{}, invalid("NoProxy", "%v", err)
	}
	for _, d := range []struct {
		field string
		v     *int
		def   int
	}{
		{"MaxBodySize", &c.MaxBodySize, 10 << 10},
		{"QueueSize", &c.QueueSize, 4096},
		{"MaxConns", &c.MaxConns, 1000},
	} {
		if *d.v < 0 {
			return c, noProxy{}, invalid(d.field, "must not be negative, got %d", *d.v)
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
			return c, noProxy{}, invalid(d.field, "must not be negative, got %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for i, h := range c.RedactHeaders {
		if h == "" || len(h) > maxHeaderName {
			return c, noProxy{}, invalid(fmt.Sprintf("RedactHeaders[%d]", i), "want a header name of 1..%d bytes, got %q", maxHeaderName, h)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, np, nil
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
	noProxy noProxy
	redact  map[string]bool // canonical header names
	via     string          // our Via entry, unique to this instance
	prefix  string          // of request ids
	nextID  atomic.Uint64

	srv       *http.Server
	rp        *httputil.ReverseProxy
	transport *http.Transport
	dialer    *net.Dialer
	slots     chan struct{} // one per open client connection

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
	// Queued is the number of entries waiting to be published now.
	Queued int
	// ActiveConns is the number of client connections open now.
	ActiveConns int
	// ActiveTunnels is the number of tunnels open now.
	ActiveTunnels int
	// Dropping is whether the dropped-entries alert holds now.
	Dropping bool
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
		Queued:        len(p.queue),
		ActiveConns:   len(p.slots),
		ActiveTunnels: int(s.activeTunnels.Load()),
		Dropping:      p.dropping.Load(),
	}
}

// New returns a proxy for cfg that publishes to pub, and starts its
// publishing goroutine. log may be nil to discard logs. An invalid cfg
// gives an error wrapping [ErrInvalidConfig] that names the field.
func New(cfg Config, pub Publisher, log *slog.Logger) (*Proxy, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: a Publisher is required", ErrInvalidConfig)
	}
	cfg, np, err := cfg.withDefaults()
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
		noProxy:  np,
		redact:   make(map[string]bool),
		via:      "1.1 pxperf-" + hex.EncodeToString(rnd[:3]),
		prefix:   "pxp-" + hex.EncodeToString(rnd[:]) + "-",
		dialer:   &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		slots:    make(chan struct{}, cfg.MaxConns),
		tunnels:  make(map[*tunnel]struct{}),
		queue:    make(chan *pxperfv1.Entry, cfg.QueueSize),
		stopc:    make(chan struct{}),
		loopDone: make(chan struct{}),
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
// [Proxy.Shutdown], after which it returns nil. It closes lis.
func (p *Proxy) Serve(lis net.Listener) error {
	p.log.Info("proxy serving", "addr", lis.Addr().String(), "upstream", upstreamName(p.cfg.Upstream))
	err := p.srv.Serve(newLimitListener(lis, p.slots, &p.stats.connWaits))
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
// request is forwarded, anything else is refused with 400. It is the
// handler of the proxy's own server; connections it serves elsewhere do
// not count against [Config.MaxConns].
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		w.Header().Set("Connection", "close")
		http.Error(w, "pxperf proxy: shutting down", http.StatusServiceUnavailable)
		return
	}
	defer p.exit()
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
