package proxy

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/httpentry"
)

// exchangeKey is the context key of a request's *exchange.
type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (p *Proxy) newTransport() *http.Transport {
	return &http.Transport{
		// The route was decided, and recorded, by the handler.
		Proxy: func(r *http.Request) (*url.URL, error) {
			if ex := exchangeOf(r.Context()); ex != nil && ex.up != nil {
				return ex.up, nil
			}
			return nil, nil
		},
		DialContext:           p.dial,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   p.cfg.DialTimeout,
		ExpectContinueTimeout: time.Second,
		// A proxy passes encodings through; it does not ask for gzip and
		// decode it behind the client's back.
		DisableCompression: true,
	}
}

// dial opens the transport's connections: to the upstream the route
// chose, as configured, or to the target, judged by the guard.
func (p *Proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if ex := exchangeOf(ctx); ex != nil && ex.up != nil {
		return p.dialer.DialContext(ctx, network, addr)
	}
	return p.direct.DialContext(ctx, network, addr)
}

func (p *Proxy) newReverseProxy(errLog *log.Logger) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      recorder{p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.forwardError,
		// Flush each read at once: a client never waits for the proxy.
		FlushInterval: -1,
		BufferPool:    bufferPool{},
		ErrorLog:      errLog,
	}
}

// forwardedHeaders are the headers that ReverseProxy's Rewrite mode strips
// as a reverse proxy should; a forward proxy passes the client's along.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// rewrite adjusts the outgoing request, from which ReverseProxy has already
// removed the hop-by-hop headers.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	for _, h := range forwardedHeaders {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
	// ReverseProxy drops query parameters it cannot parse; the target may
	// well parse them.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Header.Add("Via", p.via)
	if ex := exchangeOf(pr.In.Context()); ex != nil && ex.relay {
		pr.Out.Header["Proxy-Authorization"] = pr.In.Header["Proxy-Authorization"]
	}
}

func (p *Proxy) modifyResponse(res *http.Response) error {
	if ex := exchangeOf(res.Request.Context()); ex != nil && ex.challenge != nil && ex.answers {
		// The client answers the upstream's challenge; see Config.Upstream.
		res.Header["Proxy-Authenticate"] = ex.challenge
	}
	res.Header.Add("Via", p.via)
	return nil
}

// serveForward forwards an absolute-form request and records it.
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	p.stats.requests.Add(1)
	for _, v := range r.Header["Via"] {
		if strings.Contains(v, p.via[len("1.1 "):]) {
			http.Error(w, "pxperf proxy: request loop: it came through this proxy already", http.StatusLoopDetected)
			return
		}
	}
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = defaultPort(r.URL.Scheme)
	}
	u, ok := entryURL(r.URL)
	ex := p.newExchange(r, u, r.URL.Host, host, port)
	if !ok || !httpentry.Contract().Recordable(r.Method) {
		// Carried all the same, but no valid entry can describe it.
		p.stats.unrecorded.Add(1)
		ex.id = ""
	}
	if err := p.guard.checkTarget(host, port); err != nil {
		p.deny(w, ex, err)
		return
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	if ex.id == "" {
		p.rp.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	p.enqueue(p.pending(ex))
	ctx = httptrace.WithClientTrace(ctx, ex.timer.Trace(p.now))
	r = r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		ex.upload.start(p.cfg.MaxBodySize, r.ContentLength)
		r.Body = &countingBody{ReadCloser: r.Body, ex: ex, p: p}
	}
	// Deferred, so that it runs when ReverseProxy aborts the response
	// with http.ErrAbortHandler too.
	defer p.finishForward(ex, r)
	p.rp.ServeHTTP(w, r)
}

// finishForward works out how the exchange ended and queues its entry.
func (p *Proxy) finishForward(ex *exchange, r *http.Request) {
	end := p.now()
	switch {
	case ex.failed(), ex.status == 0:
	case ex.status == http.StatusSwitchingProtocols || ex.bodyDone:
		// Complete. Bytes of an upgraded connection are not counted.
	case p.baseCtx.Err() != nil:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_OTHER, fmt.Sprintf("the proxy shut down after %d bytes of the response", ex.recv.Load()))
	case ex.bodyErr != nil && r.Context().Err() == nil:
		kind, msg := p.failure(ex, r.Context(), ex.bodyErr)
		ex.fail(kind, fmt.Sprintf("response body cut after %d bytes: %s", ex.recv.Load(), msg))
	default:
		// The copy to the client stopped without a read error: the client
		// went away (its write failed, or its context was cancelled).
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED, fmt.Sprintf("the client went away after %d bytes of the response", ex.recv.Load()))
	}
	if ex.failed() || ex.status == 0 {
		p.stats.errors.Add(1)
	}
	p.enqueue(p.final(ex, end))
}

// forwardError is ReverseProxy's ErrorHandler: the request got no
// response, or its upgrade failed.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	p.noResponse(w, exchangeOf(r.Context()), r.Context(), err)
}

// noResponse records why ex got no response (err; ctx is the request's)
// and answers the client: 403 for a target the guard refused, 504 for a
// timeout, 502 for anything else.
func (p *Proxy) noResponse(w http.ResponseWriter, ex *exchange, ctx context.Context, err error) {
	kind, msg := p.failure(ex, ctx, err)
	ex.fail(kind, msg)
	code := http.StatusBadGateway
	switch kind {
	case pxperfv1.ErrorKind_ERROR_KIND_DENIED:
		p.stats.denied.Add(1)
		code = http.StatusForbidden
	case pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT:
		code = http.StatusGatewayTimeout
	}
	http.Error(w, "pxperf proxy: "+msg, code)
}

// deny answers a request or CONNECT whose target the guard refused before
// anything was dialled with 403, and records it, unless ex is unrecorded,
// as one FAILED entry with error kind DENIED: no PENDING entry goes before
// it, for nothing started.
func (p *Proxy) deny(w http.ResponseWriter, ex *exchange, err error) {
	p.stats.denied.Add(1)
	http.Error(w, "pxperf proxy: "+err.Error(), http.StatusForbidden)
	if ex.id == "" {
		return
	}
	ex.fail(pxperfv1.ErrorKind_ERROR_KIND_DENIED, err.Error())
	p.stats.errors.Add(1)
	p.enqueue(p.final(ex, p.now()))
}

// recorder is the transport of the ReverseProxy: it records what the
// target answered and captures the response body as the client reads it.
type recorder struct{ p *Proxy }

func (t recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	ex := exchangeOf(r.Context())
	ex.headSent = requestHeadSize(r, ex.up != nil)
	res, err := t.p.transport.RoundTrip(r)
	if err != nil || ex.id == "" {
		return res, err
	}
	t.p.gotResponse(ex, res)
	if res.StatusCode != http.StatusSwitchingProtocols { // ReverseProxy needs the upgraded body as it is
		res.Body = &captureBody{ReadCloser: res.Body, ex: ex, p: t.p}
	}
	return res, nil
}

// countingBody counts a request body as the transport sends it, and
// keeps its start; the transport reads it on a goroutine of its own.
type countingBody struct {
	io.ReadCloser
	ex *exchange
	p  *Proxy
}

func (b *countingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.ex.sent.Add(int64(n))
		b.p.stats.bytesOut.Add(uint64(n))
		b.ex.upload.write(buf[:n])
	}
	return n, err
}

// captureBody counts a response body and keeps its start as the client
// reads it; ReverseProxy reads it on the handler's goroutine.
type captureBody struct {
	io.ReadCloser
	ex *exchange
	p  *Proxy
}

func (b *captureBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.ex.recv.Add(int64(n))
		b.p.stats.bytesIn.Add(uint64(n))
		b.ex.download.write(buf[:n])
	}
	switch {
	case err == io.EOF:
		b.ex.bodyDone = true
	case err != nil && b.ex.bodyErr == nil:
		b.ex.bodyErr = err
	}
	return n, err
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte  { return buffers.Get().(*[32 << 10]byte)[:] }
func (bufferPool) Put(b []byte) { buffers.Put((*[32 << 10]byte)(b)) }

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1 and those
// that older proxies use.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// copyEndToEnd copies the end-to-end headers of src into dst.
func copyEndToEnd(dst, src http.Header) {
	skip := map[string]bool{}
	for _, h := range hopHeaders {
		skip[h] = true
	}
	for _, v := range src["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			skip[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range src {
		if !skip[k] {
			dst[k] = append(dst[k], vs...)
		}
	}
}
