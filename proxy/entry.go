package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits of the contract (proto/pxperf/v1/entry.proto) that the proxy
// keeps to so that its entries are never rejected.
const (
	maxURL         = 8192
	maxHost        = 255
	maxHeaders     = 256
	maxHeaderName  = 256
	maxHeaderValue = 16384
	maxErrMessage  = 4096
	maxContentType = 256
	// maxHeaderBytes bounds each of an entry's header lists, so that the
	// two stay well within the entry's 1 MiB for strings and headers.
	maxHeaderBytes = 256 << 10
)

// recordable reports whether an entry may carry method: the contract only
// takes the methods of the IANA registry, read from it once.
var recordable = sync.OnceValue(func() func(string) bool {
	fd := (&pxperfv1.Entry{}).ProtoReflect().Descriptor().Fields().ByName("method")
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	methods := rules.GetString().GetIn()
	return func(m string) bool { return slices.Contains(methods, m) }
})

// exchange is what the proxy learns about one request or tunnel, from
// which it builds the request's entries. Fields without a note are written
// by the handler's goroutine only.
type exchange struct {
	id      string
	start   time.Time
	method  string
	url     string
	host    string
	tunnel  bool
	up      *url.URL // the upstream used; nil for direct
	source  pxperfv1.DecisionSource
	auth    pxperfv1.AuthMethod // sent to the upstream
	relay   bool                // the client's Proxy-Authorization is relayed
	answers bool                // the client answers the upstream's challenge
	reqHost string
	req     http.Header // the client's request headers, read only
	reqType string      // the media type of the request body
	upload  bodyCapture // the request body; written by the transport's goroutine
	replay  uint64      // the entry this exchange replays (ReplayOfHeader); 0: none

	targetHost string // as asked: a name or IP address

	sent atomic.Int64 // bytes client → target; written by the transport too
	recv atomic.Int64 // bytes target → client; written by tunnel pumps too

	mu        sync.Mutex // guards the trace times, set from the transport's goroutines
	dnsStart  time.Time
	dns       time.Duration
	connStart time.Time
	connect   time.Duration
	tlsStart  time.Time
	tlsDur    time.Duration
	firstByte time.Time

	status      int
	respHeaders []*pxperfv1.Header
	challenge   []string // the upstream's Proxy-Authenticate on a 407
	contentType string
	headSent    int64 // estimated bytes of the request line and headers
	headRecv    int64 // estimated bytes of the status line and headers
	download    bodyCapture
	bodyDone    bool // the response body was read to its end
	bodyErr     error
	carried     bool // a tunnel was opened: recv counts its bytes, not a body

	errKind pxperfv1.ErrorKind
	errMsg  string
}

// newExchange starts an exchange for r with the entry's url and host, to
// the target host (a name or IP address) and port, routed by [Proxy.route].
func (p *Proxy) newExchange(r *http.Request, entryURL, entryHost, host, port string) *exchange {
	up, source := p.route(host, port)
	replay := takeReplayOf(r.Header)
	ex := &exchange{
		id:      p.newID(),
		start:   p.now(),
		method:  r.Method,
		url:     entryURL,
		host:    clean(entryHost, maxHost),
		tunnel:  r.Method == http.MethodConnect,
		up:      up,
		source:  source,
		reqHost: r.Host,
		req:     r.Header,
		reqType: mediaType(r.Header.Get("Content-Type")),
		replay:  replay,

		targetHost: host,
	}
	if up != nil {
		// Without credentials of its own for the upstream, the proxy
		// lets the client answer the upstream's challenge; with client
		// authentication on, the client's credentials are the proxy's
		// own, never the upstream's.
		ex.answers = up.User == nil && p.cfg.Authenticate == nil
		ex.auth = pxperfv1.AuthMethod_AUTH_METHOD_NONE
		switch pa := r.Header.Get("Proxy-Authorization"); {
		case up.User != nil:
			ex.auth = pxperfv1.AuthMethod_AUTH_METHOD_BASIC
		case pa != "" && ex.answers:
			ex.auth, ex.relay = authMethod(pa), true
		}
	}
	return ex
}

// authMethod is the scheme of a Proxy-Authorization value.
func authMethod(v string) pxperfv1.AuthMethod {
	scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
	switch strings.ToLower(scheme) {
	case "basic":
		return pxperfv1.AuthMethod_AUTH_METHOD_BASIC
	case "digest":
		return pxperfv1.AuthMethod_AUTH_METHOD_DIGEST
	case "ntlm":
		return pxperfv1.AuthMethod_AUTH_METHOD_NTLM
	case "negotiate":
		return pxperfv1.AuthMethod_AUTH_METHOD_NEGOTIATE
	}
	return pxperfv1.AuthMethod_AUTH_METHOD_UNSPECIFIED
}

// fail records why the exchange failed; the first reason wins.
func (ex *exchange) fail(kind pxperfv1.ErrorKind, msg string) {
	if ex.errKind == pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED {
		ex.errKind, ex.errMsg = kind, msg
	}
}

func (ex *exchange) failed() bool {
	return ex.errKind != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED
}

// trace returns hooks that time the transport's work for ex.
func (ex *exchange) trace(now func() time.Time) *httptrace.ClientTrace {
	mark := func(t *time.Time) {
		ex.mu.Lock()
		if t.IsZero() {
			*t = now()
		}
		ex.mu.Unlock()
	}
	done := func(start *time.Time, d *time.Duration, ok bool) {
		ex.mu.Lock()
		if !start.IsZero() && *d == 0 && ok {
			*d = max(now().Sub(*start), 1) // 0 means not measured
		}
		ex.mu.Unlock()
	}
	return &httptrace.ClientTrace{
		DNSStart:             func(httptrace.DNSStartInfo) { mark(&ex.dnsStart) },
		DNSDone:              func(i httptrace.DNSDoneInfo) { done(&ex.dnsStart, &ex.dns, i.Err == nil) },
		ConnectStart:         func(_, _ string) { mark(&ex.connStart) },
		ConnectDone:          func(_, _ string, err error) { done(&ex.connStart, &ex.connect, err == nil) },
		TLSHandshakeStart:    func() { mark(&ex.tlsStart) },
		TLSHandshakeDone:     func(_ tls.ConnectionState, err error) { done(&ex.tlsStart, &ex.tlsDur, err == nil) },
		GotFirstResponseByte: func() { mark(&ex.firstByte) },
	}
}

// gotResponse records a response's status and headers as received.
func (p *Proxy) gotResponse(ex *exchange, res *http.Response) {
	ex.mu.Lock()
	if ex.firstByte.IsZero() {
		ex.firstByte = p.now()
	}
	ex.mu.Unlock()
	ex.status = res.StatusCode
	ex.respHeaders = p.headerList("", res.Header)
	ex.contentType = mediaType(res.Header.Get("Content-Type"))
	ex.headRecv = responseHeadSize(res)
	if ex.up != nil && res.StatusCode == http.StatusProxyAuthRequired {
		ex.challenge = slices.Clone(res.Header["Proxy-Authenticate"])
	}
	ex.download.start(p.cfg.MaxBodySize, res.ContentLength)
}

// bodyCapture keeps the first bytes of a body, request or response, as it
// streams through, and counts the bytes read: the body is passed on as it
// is read, never held back or buffered past the first max bytes. A
// request body is read by the transport on a goroutine of its own, which
// may go on reading after the handler has built the entry; so take ends
// the capture, and what is read after it is neither kept nor counted.
type bodyCapture struct {
	mu     sync.Mutex
	max    int    // the most bytes kept
	data   []byte // the first bytes read, at most max
	n      int64  // bytes read
	sealed bool   // taken
}

// start readies c to keep the first max bytes of a body of length bytes
// (-1 or 0 when unknown), so that a body of known length is kept in one
// allocation.
func (c *bodyCapture) start(max int, length int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
	if length > 0 && c.data == nil {
		c.data = make([]byte, 0, min(length, int64(max)))
	}
}

// write records b, the next bytes read of the body.
func (c *bodyCapture) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed {
		return
	}
	c.n += int64(len(b))
	if room := c.max - len(c.data); room > 0 {
		c.data = append(c.data, b[:min(len(b), room)]...)
	}
}

// take ends the capture and returns the bytes kept and the bytes read.
// The caller owns data.
func (c *bodyCapture) take() (data []byte, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sealed = true
	data, c.data = c.data, nil
	return data, c.n
}

// pending is the entry published when the exchange starts.
func (p *Proxy) pending(ex *exchange) *pxperfv1.Entry {
	e := p.base(ex)
	e.State = pxperfv1.EntryState_ENTRY_STATE_PENDING
	return e
}

// base is what both of an exchange's entries carry. Each call builds new
// messages, so that the Publisher may own each entry.
func (p *Proxy) base(ex *exchange) *pxperfv1.Entry {
	e := &pxperfv1.Entry{
		RequestId:      ex.id,
		StartTime:      timestamppb.New(ex.start),
		Method:         ex.method,
		Url:            ex.url,
		Host:           ex.host,
		Tunnel:         ex.tunnel,
		ProxyDecision:  &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_DIRECT, Source: ex.source},
		RequestHeaders: p.headerList(ex.reqHost, ex.req),
		ReplayOf:       ex.replay,
	}
	if ex.up != nil {
		e.ProxyDecision.Route = pxperfv1.Route_ROUTE_PROXY
		e.ProxyDecision.Upstream = clean(ex.up.Host, maxHost)
		e.UpstreamAuth = &pxperfv1.UpstreamAuth{Method: ex.auth}
	}
	return e
}

// final is the entry published when the exchange ends at end.
func (p *Proxy) final(ex *exchange, end time.Time) *pxperfv1.Entry {
	e := p.base(ex)
	e.StatusCode = int32(ex.status)
	e.ResponseHeaders = ex.respHeaders
	e.BytesSent = ex.headSent + ex.sent.Load()
	e.BytesReceived = ex.headRecv + ex.recv.Load()
	if data, n := ex.upload.take(); !ex.tunnel && (n > 0 || ex.reqType != "") {
		e.RequestBody = &pxperfv1.Body{Data: data, ContentType: ex.reqType, OriginalSize: n}
	}
	if data, n := ex.download.take(); !ex.carried && ex.status != 0 && (n > 0 || ex.contentType != "") {
		e.ResponseBody = &pxperfv1.Body{Data: data, ContentType: ex.contentType, OriginalSize: n}
	}
	e.Timings = p.timings(ex, end)
	switch {
	case ex.failed():
		e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		e.Error = &pxperfv1.EntryError{Kind: ex.errKind, Message: clean(ex.errMsg, maxErrMessage)}
	case ex.status == 0:
		e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_OTHER, Message: "the exchange ended without a response"}
	default:
		e.State = pxperfv1.EntryState_ENTRY_STATE_COMPLETED
	}
	if a := e.UpstreamAuth; a != nil {
		switch {
		case ex.status == http.StatusProxyAuthRequired:
			a.Outcome = pxperfv1.AuthOutcome_AUTH_OUTCOME_FAILED
		case ex.status == 0:
			// No answer from the upstream: the outcome is unknown.
		case ex.auth == pxperfv1.AuthMethod_AUTH_METHOD_NONE:
			a.Outcome = pxperfv1.AuthOutcome_AUTH_OUTCOME_NOT_ATTEMPTED
		default:
			a.Outcome = pxperfv1.AuthOutcome_AUTH_OUTCOME_SUCCEEDED
		}
	}
	return e
}

func (p *Proxy) timings(ex *exchange, end time.Time) *pxperfv1.Timings {
	dur := func(d time.Duration) *durationpb.Duration {
		if d <= 0 {
			return nil
		}
		return durationpb.New(d)
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	t := &pxperfv1.Timings{
		Dns:          dur(ex.dns),
		Connect:      dur(ex.connect),
		TlsHandshake: dur(ex.tlsDur),
		Total:        durationpb.New(max(end.Sub(ex.start), 0)),
	}
	if !ex.firstByte.IsZero() {
		t.TimeToFirstByte = durationpb.New(max(ex.firstByte.Sub(ex.start), 0))
	}
	return t
}

// headerList turns h into the entry's header list: sorted by name (Go's
// header map keeps no order), the values of a name in the order received,
// credentials redacted, within the contract's limits. host, if not empty,
// comes first as the Host header, which Go keeps apart.
func (p *Proxy) headerList(host string, h http.Header) []*pxperfv1.Header {
	n := len(h)
	if host != "" {
		n++
	}
	out := make([]*pxperfv1.Header, 0, min(n, maxHeaders))
	budget := maxHeaderBytes
	if host != "" {
		v := clean(host, maxHeaderValue)
		budget -= len("Host") + len(v)
		out = append(out, &pxperfv1.Header{Name: "Host", Value: v})
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		if k != "" && len(k) <= maxHeaderName {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := clean(k, maxHeaderName)
		for _, v := range h[k] {
			if p.redact[k] {
				v = store.Redacted
			} else {
				v = clean(v, maxHeaderValue)
			}
			budget -= len(name) + len(v)
			if len(out) == maxHeaders || budget < 0 {
				return out
			}
			out = append(out, &pxperfv1.Header{Name: name, Value: v})
		}
	}
	return out
}

// clean makes s valid UTF-8 (protobuf strings must be) of at most max
// bytes, cutting at a character boundary.
func clean(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// mediaType is the media type of a Content-Type value, without
// parameters.
func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return clean(mt, maxContentType)
	}
	mt, _, _ := strings.Cut(ct, ";")
	return clean(strings.ToLower(strings.TrimSpace(mt)), maxContentType)
}

// entryURL is the entry's url for an absolute-form request URL: the
// password masked, cut to the contract's limit. ok is false when no valid
// url can describe it.
func entryURL(u *url.URL) (s string, ok bool) {
	s = u.Redacted()
	if len(s) <= maxURL {
		return s, true
	}
	s = s[:maxURL]
	// Do not leave half a percent-escape behind.
	if i := strings.LastIndexByte(s, '%'); i >= len(s)-2 {
		s = s[:i]
	}
	v, err := url.Parse(s)
	return s, err == nil && v.Scheme != "" && v.Host != ""
}

// headerSize estimates the bytes of h on the wire.
func headerSize(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4) // ": " and CRLF
		}
	}
	return n
}

// requestHeadSize estimates the bytes of r's request line and headers as
// the transport sends them.
func requestHeadSize(r *http.Request, proxied bool) int64 {
	target := r.URL.RequestURI()
	if proxied {
		target = r.URL.String()
	}
	n := int64(len(r.Method)+len(target)+len(" HTTP/1.1\r\n")+1) + headerSize(r.Header) + 2
	n += int64(len("Host: \r\n") + len(r.Host))
	return n
}

func responseHeadSize(r *http.Response) int64 {
	return int64(len(r.Proto)+len(r.Status)+3) + headerSize(r.Header) + 2
}

// kindOf classifies err, an error reaching a target (through the upstream
// if viaUpstream).
func kindOf(err error, viaUpstream bool) pxperfv1.ErrorKind {
	var (
		dnsErr  *net.DNSError
		netErr  net.Error
		opErr   *net.OpError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		verErr  *tls.CertificateVerificationError
		authErr x509.UnknownAuthorityError
		hostErr x509.HostnameError
		certErr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return pxperfv1.ErrorKind_ERROR_KIND_DNS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT
	case viaUpstream:
		return pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM
	case errors.As(err, &recErr), errors.As(err, &alert), errors.As(err, &verErr),
		errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &certErr):
		return pxperfv1.ErrorKind_ERROR_KIND_TLS
	case errors.As(err, &opErr) && opErr.Op == "dial",
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return pxperfv1.ErrorKind_ERROR_KIND_CONNECT
	}
	return pxperfv1.ErrorKind_ERROR_KIND_OTHER
}

// failure classifies err, which ended ex; ctx is the request's context.
func (p *Proxy) failure(ex *exchange, ctx context.Context, err error) (pxperfv1.ErrorKind, string) {
	switch {
	case p.baseCtx.Err() != nil:
		return pxperfv1.ErrorKind_ERROR_KIND_OTHER, "the proxy shut down: " + err.Error()
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED, "the client went away: " + err.Error()
	}
	var denied *deniedError
	switch {
	case errors.As(err, &denied):
		return pxperfv1.ErrorKind_ERROR_KIND_DENIED, denied.Error()
	case errors.Is(err, errDenied):
		return pxperfv1.ErrorKind_ERROR_KIND_DENIED, err.Error()
	}
	kind := kindOf(err, ex.up != nil)
	if kind == pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM {
		return kind, fmt.Sprintf("upstream proxy %s: %v", ex.up.Host, err)
	}
	return kind, err.Error()
}
