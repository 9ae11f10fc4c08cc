package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/httpentry"
)

// tunnel is an open CONNECT tunnel: the client's connection and the
// target's (or the upstream's).
type tunnel struct {
	client, target net.Conn
	once           sync.Once
}

func (t *tunnel) close() {
	t.once.Do(func() {
		_ = t.client.Close()
		_ = t.target.Close()
	})
}

// addTunnel registers t for Shutdown to close; false when shutting down.
func (p *Proxy) addTunnel(t *tunnel) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.tunnels[t] = struct{}{}
	p.stats.activeTunnels.Add(1)
	return true
}

func (p *Proxy) removeTunnel(t *tunnel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tunnels, t)
	p.stats.activeTunnels.Add(-1)
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// serveConnect opens a tunnel to the target of a CONNECT request, carries
// it until either side ends it, and records it.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	p.stats.tunnels.Add(1)
	target := r.Host
	host, port, err := net.SplitHostPort(target)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 || len(target) > httpentry.Contract().Host {
		p.stats.unrecorded.Add(1)
		http.Error(w, "pxperf proxy: CONNECT needs host:port, the port a number 1..65535", http.StatusBadRequest)
		return
	}
	ex := p.newExchange(r, target, target, host, port)
	if err := p.guard.checkTarget(host, port); err != nil {
		p.deny(w, ex, err)
		return
	}
	p.enqueue(p.pending(ex))
	defer func() {
		if ex.failed() || ex.status == 0 {
			p.stats.errors.Add(1)
		}
		p.enqueue(p.final(ex, p.now()))
	}()

	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), exchangeKey{}, ex), p.cfg.DialTimeout)
	start := p.now()
	conn, br, refusal, err := p.dialTunnel(ctx, ex, r)
	cancel()
	if err != nil {
		p.noResponse(w, ex, r.Context(), err)
		return
	}
	ex.timer.SetConnect(p.now().Sub(start))
	if refusal != nil {
		p.relayRefusal(w, ex, conn, refusal)
		return
	}
	p.carry(w, ex, conn, br)
}

// dialTunnel connects to the target, directly or by a CONNECT through the
// upstream. When the upstream answers other than 2xx, it returns that
// answer as refusal, with its connection. br holds what the upstream sent
// after its answer, if anything.
func (p *Proxy) dialTunnel(ctx context.Context, ex *exchange, r *http.Request) (c net.Conn, br *bufio.Reader, refusal *http.Response, err error) {
	target := r.Host
	if ex.up == nil {
		c, err = p.direct.DialContext(ctx, "tcp", target)
		return c, nil, nil, err
	}
	c, err = p.dialer.DialContext(ctx, "tcp", ex.up.Host)
	if err != nil {
		return nil, nil, nil, err
	}
	hdr := http.Header{"User-Agent": {r.Header.Get("User-Agent")}, "Via": {p.via}}
	switch {
	case ex.up.User != nil:
		hdr.Set("Proxy-Authorization", basicAuth(ex.up.User))
	case ex.relay:
		hdr["Proxy-Authorization"] = r.Header["Proxy-Authorization"]
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: hdr}
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (net.Conn, *bufio.Reader, *http.Response, error) {
		_ = c.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("CONNECT to %s through the upstream: %w", target, ctx.Err())
		}
		return nil, nil, nil, err
	}
	if err := req.Write(c); err != nil {
		return fail(err)
	}
	br = bufio.NewReader(c)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	p.gotResponse(ex, res)
	if res.StatusCode/100 != 2 {
		// The deadline stays: it bounds relaying the refusal too.
		return c, nil, res, nil
	}
	_ = c.SetDeadline(time.Time{})
	return c, br, nil, nil
}

func basicAuth(u *url.Userinfo) string {
	pw, _ := u.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw))
}

// relayRefusal passes the upstream's refusal of a CONNECT (a 407, say)
// back to the client.
func (p *Proxy) relayRefusal(w http.ResponseWriter, ex *exchange, c net.Conn, res *http.Response) {
	defer c.Close()
	defer res.Body.Close()
	h := w.Header()
	copyEndToEnd(h, res.Header)
	if ex.challenge != nil && ex.answers {
		h["Proxy-Authenticate"] = ex.challenge
	}
	h.Add("Via", p.via)
	w.WriteHeader(res.StatusCode)
	_, err := io.Copy(w, &captureBody{ReadCloser: res.Body, ex: ex, p: p})
	switch {
	case ex.bodyDone:
	case ex.bodyErr != nil:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM, fmt.Sprintf("upstream proxy %s: refusal body cut: %v", ex.up.Host, ex.bodyErr))
	case err != nil:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED, "the client went away: "+err.Error())
	}
}

// carry takes over the client's connection, confirms the tunnel and
// carries bytes both ways until it ends.
func (p *Proxy) carry(w http.ResponseWriter, ex *exchange, conn net.Conn, br *bufio.Reader) {
	cc, bufrw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = conn.Close()
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_OTHER, "cannot take over the client's connection: "+err.Error())
		http.Error(w, "pxperf proxy: cannot open a tunnel on this connection", http.StatusInternalServerError)
		return
	}
	t := &tunnel{client: cc, target: conn}
	if !p.addTunnel(t) {
		t.close()
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_OTHER, "the proxy shut down")
		return
	}
	defer p.removeTunnel(t)
	defer t.close()
	if ex.status == 0 {
		ex.status = http.StatusOK
	}
	ex.carried = true
	ex.headRecv = 0 // bytes_received counts what the tunnel carried
	_ = cc.SetDeadline(time.Time{})
	_ = cc.SetWriteDeadline(time.Now().Add(p.cfg.IdleTimeout))
	if _, err := io.WriteString(cc, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED, "the client went away: "+err.Error())
		return
	}
	var fromClient io.Reader = cc
	if n := bufrw.Reader.Buffered(); n > 0 {
		fromClient = io.MultiReader(io.LimitReader(bufrw.Reader, int64(n)), cc)
	}
	var fromTarget io.Reader = conn
	if br != nil && br.Buffered() > 0 {
		fromTarget = io.MultiReader(io.LimitReader(br, int64(br.Buffered())), conn)
	}
	p.pump(ex, t, fromClient, fromTarget)
}

// dirEnd is how one direction of a tunnel ended.
type dirEnd struct {
	up         bool  // the direction client → target
	err        error // nil: its sender closed (EOF)
	clientSide bool  // err is on the client's connection
	timeout    bool  // err is an idle timeout
}

// pump carries bytes both ways. When one sender closes, the close is passed
// on (half-close) and the other direction carries on; an error on either
// ends both. The first direction to end says how the tunnel ended.
func (p *Proxy) pump(ex *exchange, t *tunnel, fromClient, fromTarget io.Reader) {
	var last atomic.Int64 // unix nanos of the last byte either way
	last.Store(time.Now().UnixNano())
	ends := make(chan dirEnd, 2)
	go func() { ends <- p.copyDir(ex, t.target, t.client, fromClient, true, &last) }()
	go func() { ends <- p.copyDir(ex, t.client, t.target, fromTarget, false, &last) }()
	first := <-ends
	if first.err == nil {
		dst := t.client
		if first.up {
			dst = t.target
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			t.close()
		}
	} else {
		t.close()
	}
	<-ends
	switch {
	case first.err == nil:
	case p.isClosing():
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_OTHER, "the proxy shut down")
	case first.timeout:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT, fmt.Sprintf("no bytes either way for %s", p.cfg.IdleTimeout))
	case first.clientSide:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED, "client: "+first.err.Error())
	case ex.up != nil:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM, fmt.Sprintf("upstream proxy %s: %v", ex.up.Host, first.err))
	default:
		ex.fail(pxperfv1.ErrorKind_ERROR_KIND_OTHER, "target: "+first.err.Error())
	}
}

// copyDir copies src (read from srcConn) to dst until src ends or
// something fails. A read waits at most IdleTimeout, and longer only while
// the other direction is busy.
func (p *Proxy) copyDir(ex *exchange, dst, srcConn net.Conn, src io.Reader, up bool, last *atomic.Int64) dirEnd {
	buf := buffers.Get().(*[32 << 10]byte)
	defer buffers.Put(buf)
	idle := p.cfg.IdleTimeout
	count, total := &ex.recv, &p.stats.bytesIn
	if up {
		count, total = &ex.sent, &p.stats.bytesOut
	}
	seen := false
	for {
		_ = srcConn.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf[:])
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if !up && !seen {
				seen = true
				ex.timer.SetFirstByte(p.now())
			}
			_ = dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return dirEnd{up: up, err: werr, clientSide: !up, timeout: isTimeout(werr)}
			}
			count.Add(int64(n))
			total.Add(uint64(n))
		}
		if err == io.EOF {
			return dirEnd{up: up}
		}
		if err != nil {
			if isTimeout(err) && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy
			}
			return dirEnd{up: up, err: err, clientSide: up, timeout: isTimeout(err)}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
