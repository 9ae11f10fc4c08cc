package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// tlsClient is an HTTP client that reaches the TLS server ts through the
// proxy at proxyURL, trusting ts's certificate.
func tlsClient(ts *httptest.Server, h *harness) *http.Client {
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(h.url)
	return &http.Client{Transport: tr}
}

// A CONNECT tunnel carries a real TLS handshake and exchange, and is
// recorded when the client closes it.
func TestTunnelTLS(t *testing.T) {
	ts := httptest.NewTLSServer(okHandler("secret page"))
	defer ts.Close()
	h := newHarness(t, nil)
	c := tlsClient(ts, h)
	req, _ := http.NewRequestWithContext(h.ctx, "GET", ts.URL+"/", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "secret page" || res.TLS == nil || !res.TLS.HandshakeComplete {
		t.Fatalf("client got %d %q TLS %v; want 200 over a completed handshake", res.StatusCode, body, res.TLS)
	}
	waitFor(t, h.ctx, "the tunnel open", func() bool { return h.p.Stats().ActiveTunnels == 1 })
	c.CloseIdleConnections() // ends the tunnel

	target := strings.TrimPrefix(ts.URL, "https://")
	pending, e := h.pub.exchangeEntries(t, h.ctx, target)
	if !pending.GetTunnel() || pending.GetMethod() != "CONNECT" {
		t.Errorf("pending entry %v; want a CONNECT tunnel", pending)
	}
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetStatusCode() != 200 || !e.GetTunnel() ||
		e.GetHost() != target || e.GetResponseBody() != nil {
		t.Errorf("entry %v status %d tunnel %v host %q body %v; want a COMPLETED 200 tunnel to %s, no body",
			e.GetState(), e.GetStatusCode(), e.GetTunnel(), e.GetHost(), e.GetResponseBody(), target)
	}
	// The TLS records both ways: a handshake is well over 1 KiB from the
	// server, some hundred bytes from the client.
	if e.GetBytesSent() < 200 || e.GetBytesReceived() < 1000 {
		t.Errorf("entry bytes sent %d received %d; want a TLS exchange's worth", e.GetBytesSent(), e.GetBytesReceived())
	}
	tm := e.GetTimings()
	if tm.GetConnect() == nil || tm.GetTimeToFirstByte() == nil || tm.GetTotal().AsDuration() < tm.GetTimeToFirstByte().AsDuration() {
		t.Errorf("timings %v; want connect, time_to_first_byte <= total", tm)
	}
	if s := h.p.Stats(); s.Tunnels != 1 || s.ActiveTunnels != 0 || s.BytesIn != uint64(e.GetBytesReceived()) || s.BytesOut != uint64(e.GetBytesSent()) {
		t.Errorf("stats %+v; want 1 tunnel, closed, bytes as in the entry", s)
	}
}

// echoServer accepts connections and answers each with what it read,
// "bye" once the client has closed its side, then closes.
func echoServer(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		lis.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				if _, err := io.Copy(c, c); err == nil {
					io.WriteString(c, "bye")
				}
			})
		}
	})
	return lis.Addr().String()
}

// A tunnel is carried byte for byte, and a half-close passes through it.
func TestTunnelHalfClose(t *testing.T) {
	echo := echoServer(t)
	h := newHarness(t, nil)
	c, br, res := rawConnect(t, h.ctx, h.url.Host, echo, nil)
	if res.StatusCode != 200 {
		t.Fatalf("CONNECT: %d; want 200", res.StatusCode)
	}
	payload := pattern(200 << 10)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Clone(payload), "bye"...); !bytes.Equal(got, want) {
		t.Fatalf("through the tunnel: got %d bytes, want %d (the payload echoed, then bye)", len(got), len(want))
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, echo)
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetBytesSent() != int64(len(payload)) ||
		e.GetBytesReceived() != int64(len(payload)+3) {
		t.Errorf("entry %v bytes sent %d received %d; want COMPLETED, %d and %d", e.GetState(),
			e.GetBytesSent(), e.GetBytesReceived(), len(payload), len(payload)+3)
	}
}

// A tunnel with no bytes either way for IdleTimeout is closed.
func TestTunnelIdleTimeout(t *testing.T) {
	echo := echoServer(t)
	h := newHarness(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c, br, res := rawConnect(t, h.ctx, h.url.Host, echo, nil)
	if res.StatusCode != 200 {
		t.Fatalf("CONNECT: %d; want 200", res.StatusCode)
	}
	io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if n, err := br.Read(got); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle tunnel: read %d, %v; want EOF", n, err)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, echo)
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetStatusCode() != 200 ||
		e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT || e.GetBytesSent() != 4 || e.GetBytesReceived() != 4 {
		t.Errorf("entry %v status %d error %v bytes %d/%d; want FAILED 200 TIMEOUT 4/4", e.GetState(), e.GetStatusCode(),
			e.GetError(), e.GetBytesSent(), e.GetBytesReceived())
	}
}

func TestTunnelTargetDown(t *testing.T) {
	h := newHarness(t, nil)
	target := closedAddr(t)
	_, _, res := rawConnect(t, h.ctx, h.url.Host, target, nil)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "refused") {
		t.Errorf("CONNECT got %d %q; want 502 naming the refusal", res.StatusCode, body)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, target)
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetStatusCode() != 0 || !e.GetTunnel() ||
		e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_CONNECT {
		t.Errorf("entry %v status %d error %v; want a FAILED tunnel, CONNECT", e.GetState(), e.GetStatusCode(), e.GetError())
	}
}

// Shutdown closes open tunnels and publishes their entries before it
// returns.
func TestShutdownClosesTunnels(t *testing.T) {
	echo := echoServer(t)
	h := newHarness(t, nil)
	c, br, res := rawConnect(t, h.ctx, h.url.Host, echo, nil)
	if res.StatusCode != 200 {
		t.Fatalf("CONNECT: %d; want 200", res.StatusCode)
	}
	io.WriteString(c, "ping")
	if _, err := io.ReadFull(br, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := h.p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("after Shutdown the client read %d, %v; want the tunnel closed", n, err)
	}
	var final *pxperfv1.Entry
	for _, e := range h.pub.all() { // no waiting: Shutdown has published it
		if e.GetUrl() == echo && e.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
			final = e
		}
	}
	if final.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || final.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_OTHER ||
		!strings.Contains(final.GetError().GetMessage(), "shut down") {
		t.Errorf("tunnel entry after Shutdown: %v; want FAILED, OTHER, shut down", final)
	}
}
