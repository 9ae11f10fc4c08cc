package replay

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/httpentry"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/proxy"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Options configures [Request] and [Do]. The zero value re-sends the
// request as recorded, directly, with no deadline but the caller's.
type Options struct {
	// Header holds headers to send besides or instead of the recorded
	// ones: a name given replaces every recorded value of that name, a
	// redacted one included, or is added after the recorded headers. A
	// name given with one empty value ("") removes the recorded header.
	// Host sets the request's host. They are sent as given, hop-by-hop
	// ones included. Nil: the recorded headers alone.
	Header http.Header
	// TruncatedBody sends the part of a request body that was recorded
	// when the whole was not (see [ErrTruncatedBody]). False: such an
	// entry is refused with ErrTruncatedBody.
	TruncatedBody bool
	// Client sends the request ([Do] only); its CheckRedirect is not used,
	// since a redirect is the exchange to record. Nil: a client of Do's
	// own for the one request: direct (no proxy from the environment),
	// not asking for compression (a recorded Accept-Encoding is sent as
	// recorded, and the body kept as received), its connections closed
	// when Do returns.
	Client *http.Client
	// Proxy, if set, is an HTTP proxy to send the request through ([Do]
	// only), such as pxperf's recording proxy: Do uses a clone of Client's
	// transport, which must then be nil or an *http.Transport, routed
	// through Proxy, and sends [proxy.ReplayOfHeader] with the original's
	// id (on the CONNECT for an https url), so that a recording proxy
	// links the entry it records to the original. Nil: Client's own
	// routing.
	Proxy *url.URL
	// Timeout bounds the exchange ([Do] only), from the start of the
	// request to the end of the response body; past it, the new entry is
	// FAILED with kind TIMEOUT. 0: no deadline but ctx's. Not negative.
	Timeout time.Duration
	// MaxBodySize is how many bytes of the request and of the response
	// body the new entry keeps ([Do] only); the rest of the response is
	// read and counted. Default 10 KiB, the server's default
	// memory.max_body_size, which truncates bodies at ingest anyway. Not
	// negative.
	MaxBodySize int
	// Now is the clock of the new entry's start time and timings. Nil:
	// time.Now.
	Now func() time.Time
}

// withDefaults checks o and returns it with its defaults filled in.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Timeout < 0:
		return o, fmt.Errorf("replay: Options.Timeout %v: must not be negative", o.Timeout)
	case o.MaxBodySize < 0:
		return o, fmt.Errorf("replay: Options.MaxBodySize %d: must not be negative", o.MaxBodySize)
	case o.Proxy != nil && (o.Proxy.Scheme != "http" && o.Proxy.Scheme != "https" || o.Proxy.Host == ""):
		return o, fmt.Errorf("replay: Options.Proxy %q: want http://host:port", o.Proxy.Redacted())
	}
	if o.MaxBodySize == 0 {
		o.MaxBodySize = 10 << 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Do re-sends the request recorded in e, as [Request] builds it, reads
// the whole response, and returns the exchange as a new entry, ready to
// publish, with replay_of set to e's id: start time, method, url, host,
// the request headers as written (credentials redacted as in e), the
// request body, status, response headers and the first opts.MaxBodySize
// bytes of the response body with its size, timings (dns, connect and
// tls_handshake when a connection was opened, time to first byte,
// total), bytes sent and received (the bodies and the request's head as
// written, the response's head estimated), and
// the route: PROXY with its host:port as the upstream through
// opts.Proxy or the proxy the client's transport chose, else DIRECT.
//
// An exchange that fails is not an error: the entry is FAILED, with the
// status if one came (a response cut short), and an error kind: DNS,
// CONNECT, TIMEOUT, TLS, OTHER; through a proxy, UPSTREAM for anything
// but DNS, TIMEOUT and TLS. Do returns an error when it sent nothing: for
// an entry it cannot re-send ([ErrTunnel], [ErrTruncatedBody],
// [ErrInvalidRequest]) or invalid opts; and ctx's error when ctx ends
// first.
func Do(ctx context.Context, e *pxperfv1.Entry, opts Options) (*pxperfv1.Entry, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := prepare(e, opts.Header, opts.TruncatedBody)
	if err != nil {
		return nil, err
	}
	c, release, err := opts.client(e.GetId())
	if err != nil {
		return nil, err
	}
	defer release()
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if opts.Timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, opts.Timeout)
	}
	defer cancel()
	m := &meter{}
	// Two traces on one context: the transport calls the hooks of both.
	tctx := httptrace.WithClientTrace(rctx, m.timer.Trace(opts.Now))
	req, err := p.request(httptrace.WithClientTrace(tctx, m.trace()))
	if err != nil {
		return nil, err
	}
	if opts.Proxy != nil && e.GetId() != 0 && req.URL.Scheme == "http" {
		// An https request goes through a tunnel, whose CONNECT carries
		// the header (see client): the proxy never sees this one.
		req.Header.Set(proxy.ReplayOfHeader, strconv.FormatUint(e.GetId(), 10))
	}
	out := &pxperfv1.Entry{
		Method:        p.method,
		Url:           e.GetUrl(),
		ProxyDecision: route(c, opts.Proxy, req),
		ReplayOf:      e.GetId(),
	}
	if len(p.url.Host) <= httpentry.Contract().Host {
		out.Host = p.url.Host
	}
	if p.body != nil {
		out.RequestBody = entryBody(p.body, int64(len(p.body)), p.contentType(), opts.MaxBodySize)
	}
	redact := redactions(e)
	viaProxy := out.ProxyDecision.GetRoute() == pxperfv1.Route_ROUTE_PROXY

	target := req.URL.RequestURI()
	if viaProxy && req.URL.Scheme == "http" {
		target = req.URL.String() // absolute-form, to a proxy
	}
	m.line = int64(len(req.Method) + 1 + len(target) + len(" HTTP/1.1\r\n"))
	m.body = int64(len(p.body))
	m.start = opts.Now()
	out.StartTime = timestamppb.New(m.start)
	res, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m.finish(out, redact, opts.Now())
		out.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		out.Error = failure(err, viaProxy, "")
		return out, nil
	}
	head := &headKeeper{max: opts.MaxBodySize}
	n, rerr := io.Copy(head, res.Body)
	res.Body.Close()
	end := opts.Now()
	if rerr != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	m.finish(out, redact, end)
	out.StatusCode = int32(res.StatusCode)
	out.ResponseHeaders = headerList(res.Header, redact)
	out.BytesReceived = httpentry.ResponseHeadSize(res) + n
	if ct := httpentry.MediaType(res.Header.Get("Content-Type")); n > 0 || ct != "" {
		out.ResponseBody = entryBody(head.b, n, ct, opts.MaxBodySize)
	}
	out.State = pxperfv1.EntryState_ENTRY_STATE_COMPLETED
	if rerr != nil {
		out.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		out.Error = failure(rerr, viaProxy, fmt.Sprintf("response body cut after %d bytes: ", n))
	}
	return out, nil
}

// client returns the client that sends the request of the entry with id,
// by o, and a func that releases what it made for the one request.
func (o Options) client(id uint64) (*http.Client, func(), error) {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if o.Client == nil && o.Proxy == nil {
		t := newTransport()
		return &http.Client{Transport: t, CheckRedirect: noRedirect}, t.CloseIdleConnections, nil
	}
	c := &http.Client{}
	if o.Client != nil {
		*c = *o.Client
	}
	c.CheckRedirect = noRedirect
	if o.Proxy == nil {
		return c, func() {}, nil
	}
	var t *http.Transport
	switch rt := c.Transport.(type) {
	case *http.Transport:
		t = rt.Clone()
	case nil:
		t = newTransport()
		if o.Client != nil {
			t = http.DefaultTransport.(*http.Transport).Clone()
		}
	default:
		return nil, nil, fmt.Errorf("replay: with Options.Proxy, Options.Client's Transport must be nil or an *http.Transport, not %T", rt)
	}
	t.Proxy = http.ProxyURL(o.Proxy)
	if id != 0 {
		if t.ProxyConnectHeader == nil {
			t.ProxyConnectHeader = http.Header{}
		}
		t.ProxyConnectHeader.Set(proxy.ReplayOfHeader, strconv.FormatUint(id, 10))
	}
	c.Transport = t
	return c, t.CloseIdleConnections, nil
}

// newTransport returns the transport of a client of Do's own: direct,
// without compression, with the timeouts of http.DefaultTransport.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// route returns how c sends req: through through when set, else through
// the proxy c's transport picks, else directly. Nil when c's transport
// does not say.
func route(c *http.Client, through *url.URL, req *http.Request) *pxperfv1.ProxyDecision {
	if through != nil {
		return &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_PROXY, Upstream: hostPort(through), Source: pxperfv1.DecisionSource_DECISION_SOURCE_MANUAL}
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil
	}
	if t.Proxy != nil {
		if u, err := t.Proxy(req); err == nil && u != nil {
			return &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_PROXY, Upstream: hostPort(u)}
		}
	}
	return &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_DIRECT}
}

// hostPort is a proxy URL's host:port, the port defaulted as net/http
// does, cut to the contract's limit.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return httpentry.Clean(net.JoinHostPort(u.Hostname(), port), httpentry.Contract().Upstream)
}

// failure describes err, which ended an exchange, as the entry's error;
// prefix goes before its message.
func failure(err error, viaProxy bool, prefix string) *pxperfv1.EntryError {
	kind := httpentry.ErrorKind(err)
	switch kind {
	case pxperfv1.ErrorKind_ERROR_KIND_DNS, pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT, pxperfv1.ErrorKind_ERROR_KIND_TLS:
	default:
		if viaProxy {
			kind = pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM
		}
	}
	return &pxperfv1.EntryError{Kind: kind, Message: httpentry.Clean(prefix+err.Error(), httpentry.Contract().ErrorMessage)}
}

// contentType returns the media type of the Content-Type p sends, if any.
func (p *prepared) contentType() string {
	for _, f := range p.header {
		if strings.EqualFold(f.name, "Content-Type") {
			return httpentry.MediaType(f.value)
		}
	}
	return ""
}

// entryBody returns an entry's body of size bytes that begin with data, of
// which it keeps max.
func entryBody(data []byte, size int64, contentType string, max int) *pxperfv1.Body {
	b := &pxperfv1.Body{Data: data, ContentType: contentType, OriginalSize: size}
	if len(data) > max {
		b.Data = data[:max]
	}
	b.Truncated = int64(len(b.Data)) < size
	return b
}

// headKeeper keeps the first max bytes written to it and discards the
// rest.
type headKeeper struct {
	b   []byte
	max int
}

func (h *headKeeper) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// redactions returns the header names, canonical, whose values the new
// entry records as redacted: those always redacted and those e has
// redacted, which the server that recorded it redacts.
func redactions(e *pxperfv1.Entry) map[string]bool {
	r := map[string]bool{}
	for _, h := range store.AlwaysRedacted {
		r[http.CanonicalHeaderKey(h)] = true
	}
	for _, h := range slices.Concat(e.GetRequestHeaders(), e.GetResponseHeaders()) {
		if h.GetValue() == store.Redacted {
			r[http.CanonicalHeaderKey(h.GetName())] = true
		}
	}
	return r
}

// headerList turns h into an entry's header list: sorted by name (a
// header map keeps no order), the values of a name in the order received,
// redacted, fitted to the contract.
func headerList(h http.Header, redact map[string]bool) []*pxperfv1.Header {
	var hs []field
	for _, name := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[name] {
			hs = append(hs, field{name, v})
		}
	}
	return fit(hs, redact)
}

// fit makes hs an entry's header list, as [httpentry.HeaderList] does,
// credentials redacted; pseudo-headers and the proxy's link header, which
// are no headers of the exchange, are left out.
func fit(hs []field, redact map[string]bool) []*pxperfv1.Header {
	l := httpentry.NewHeaderList(len(hs))
	for _, f := range hs {
		if strings.HasPrefix(f.name, ":") || strings.EqualFold(f.name, proxy.ReplayOfHeader) {
			continue
		}
		if !l.Add(f.name, f.value, redact[http.CanonicalHeaderKey(f.name)]) {
			break
		}
	}
	return l.Headers()
}

// meter measures an exchange: its phases, through the hooks of
// net/http/httptrace, which the transport calls from its own goroutines,
// and what it wrote.
type meter struct {
	timer httpentry.Timer
	start time.Time // set before the request is sent
	line  int64     // bytes of the request line; set before the request is sent
	body  int64     // bytes of the request body; set before the request is sent

	mu       sync.Mutex // guards what follows
	sent     []field    // the headers written, in order
	headSent int64      // bytes of the headers written
}

// trace returns the hooks that record the request's headers as written;
// those of m.timer time the exchange.
func (m *meter) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			// A retry on another connection writes the request again.
			m.mu.Lock()
			m.sent, m.headSent = nil, 0
			m.mu.Unlock()
		},
		WroteHeaderField: func(name string, values []string) {
			m.mu.Lock()
			for _, v := range values {
				m.sent = append(m.sent, field{name, v})
				m.headSent += int64(len(name) + len(v) + 4) // ": " and CRLF
			}
			m.mu.Unlock()
		},
	}
}

// finish sets what m measured on out, the exchange ending at end: the
// request headers written, bytes sent and timings.
func (m *meter) finish(out *pxperfv1.Entry, redact map[string]bool, end time.Time) {
	m.mu.Lock()
	out.RequestHeaders = fit(m.sent, redact)
	if len(m.sent) > 0 {
		// The request line, the headers, the blank line, and the body,
		// which follows once the headers are written.
		out.BytesSent = m.line + m.headSent + 2 + m.body
	}
	m.mu.Unlock()
	out.Timings = m.timer.Timings(m.start, end)
}
