package proxy

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// authenticate checks r's Basic Proxy-Authorization when client
// authentication is on ([Config.Authenticate]) and answers 407 when it
// fails; it reports whether r may go on.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request) bool {
	if p.cfg.Authenticate == nil {
		return true
	}
	if user, pw, ok := parseBasic(r.Header.Get("Proxy-Authorization")); ok && p.cfg.Authenticate(user, pw) {
		return true
	}
	p.stats.authFailures.Add(1)
	w.Header().Set("Proxy-Authenticate", `Basic realm="pxperf", charset="UTF-8"`)
	http.Error(w, "pxperf proxy: proxy authentication required: send Basic Proxy-Authorization with a token's name and the token", http.StatusProxyAuthRequired)
	return false
}

// parseBasic parses the value of a Basic Authorization or
// Proxy-Authorization header (RFC 7617): the scheme in any case, then
// base64 of user:password. net/http parses it only from Authorization.
func parseBasic(v string) (user, password string, ok bool) {
	const prefix = "basic "
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(b), ":")
}

// maxRefusing bounds the connections being refused at once; beyond it, a
// refused connection is closed without an answer.
const maxRefusing = 64

// refuseTimeout bounds the answer to a refused connection, and the wait
// for its client to close.
const refuseTimeout = time.Second

const tooManyConnsBody = "pxperf proxy: this client has too many connections open (proxy.max_connections_per_client)\n"

// tooManyConns is the whole answer to a connection refused by
// [Config.MaxConnsPerClient].
var tooManyConns = fmt.Sprintf("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"+
	"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s", len(tooManyConnsBody), tooManyConnsBody)

// refuseConn answers a connection whose client is at
// [Config.MaxConnsPerClient] with 429 and closes it. It reads what the
// client sends until the client closes or refuseTimeout passes, so that
// closing with unread bytes does not reset the connection before the
// client has read the answer.
func (p *Proxy) refuseConn(c net.Conn) {
	p.stats.connsRefused.Add(1)
	select {
	case p.refuseSlots <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	p.refusing.Go(func() {
		defer func() { <-p.refuseSlots }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if _, err := io.WriteString(c, tooManyConns); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	})
}
