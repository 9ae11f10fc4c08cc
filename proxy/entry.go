package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/httpentry"
	"google.golang.org/protobuf/types/known/timestamppb"
)

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

	timer httpentry.Timer // written by the transport's goroutines too

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
		host:    httpentry.Clean(entryHost, httpentry.Contract().Host),
		tunnel:  r.Method == http.MethodConnect,
		up:      up,
		source:  source,
		reqHost: r.Host,
		req:     r.Header,
		reqType: httpentry.MediaType(r.Header.Get("Content-Type")),
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

// gotResponse records a response's status and headers as received.
func (p *Proxy) gotResponse(ex *exchange, res *http.Response) {
	ex.timer.FirstByte(p.now)
	ex.status = res.StatusCode
	ex.respHeaders = p.headerList("", res.Header)
	ex.contentType = httpentry.MediaType(res.Header.Get("Content-Type"))
	ex.headRecv = httpentry.ResponseHeadSize(res)
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
		e.ProxyDecision.Upstream = httpentry.Clean(ex.up.Host, httpentry.Contract().Upstream)
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
	e.Timings = ex.timer.Timings(ex.start, end)
	switch {
	case ex.failed():
		e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		e.Error = &pxperfv1.EntryError{Kind: ex.errKind, Message: httpentry.Clean(ex.errMsg, httpentry.Contract().ErrorMessage)}
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

// headerList turns h into the entry's header list: sorted by name (Go's
// header map keeps no order), the values of a name in the order received,
// credentials redacted, within the contract's limits. host, if not empty,
// comes first as the Host header, which Go keeps apart.
func (p *Proxy) headerList(host string, h http.Header) []*pxperfv1.Header {
	n := len(h)
	if host != "" {
		n++
	}
	l := httpentry.NewHeaderList(n)
	if host != "" {
		l.Add("Host", host, false)
	}
	l.AddHeader(h, p.redact)
	return l.Headers()
}

// entryURL is the entry's url for an absolute-form request URL: the
// password masked, cut to the contract's limit. ok is false when no valid
// url can describe it.
func entryURL(u *url.URL) (s string, ok bool) {
	s = u.Redacted()
	limit := httpentry.Contract().URL
	if len(s) <= limit {
		return s, true
	}
	s = s[:limit]
	// Do not leave half a percent-escape behind.
	if i := strings.LastIndexByte(s, '%'); i >= len(s)-2 {
		s = s[:i]
	}
	v, err := url.Parse(s)
	return s, err == nil && v.Scheme != "" && v.Host != ""
}

// requestHeadSize estimates the bytes of r's request line and headers as
// the transport sends them.
func requestHeadSize(r *http.Request, proxied bool) int64 {
	target := r.URL.RequestURI()
	if proxied {
		target = r.URL.String()
	}
	n := int64(len(r.Method)+len(target)+len(" HTTP/1.1\r\n")+1) + httpentry.HeaderSize(r.Header) + 2
	n += int64(len("Host: \r\n") + len(r.Host))
	return n
}

// kindOf classifies err, an error reaching a target (through the upstream
// if viaUpstream): as [httpentry.ErrorKind] does, but through the upstream
// any failure other than DNS or TIMEOUT is UPSTREAM.
func kindOf(err error, viaUpstream bool) pxperfv1.ErrorKind {
	kind := httpentry.ErrorKind(err)
	if viaUpstream && kind != pxperfv1.ErrorKind_ERROR_KIND_DNS && kind != pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT {
		return pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM
	}
	return kind
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
