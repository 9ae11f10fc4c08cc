package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/prototext"
)

// origin is a target server on loopback.
type origin struct {
	*httptest.Server
	URL string
}

func newOrigin(t testing.TB, h http.Handler) *origin {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return &origin{Server: s, URL: s.URL}
}

func okHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, body)
	}
}

// pattern is n bytes that differ along their length.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26 + i/26%3)
	}
	return b
}

func TestForward(t *testing.T) {
	big := pattern(100 << 10)
	upload := pattern(300 << 10)
	for _, tc := range []struct {
		name    string
		method  string
		upload  []byte // the request body; nil: none
		reqType string // its Content-Type
		chunked bool   // send the body with unknown length
		handler http.HandlerFunc

		wantStatus  int
		wantBody    []byte // what the client reads; the entry has its first 1 KiB
		wantType    string // the entry's body content_type
		wantReqType string // the entry's request body content_type
		wantSent    int64  // the entry's bytes_sent is at least this
	}{
		{
			name: "GET small", method: "GET",
			handler:    okHandler("hello"),
			wantStatus: 200, wantBody: []byte("hello"), wantType: "text/plain",
		},
		{
			name: "POST small", method: "POST", upload: []byte("name=px&x=1"), reqType: "application/x-www-form-urlencoded; charset=UTF-8",
			handler: func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				fmt.Fprintf(w, `{"got":%q}`, b)
			},
			wantStatus: 201, wantBody: []byte(`{"got":"name=px&x=1"}`), wantType: "application/json", wantSent: 11,
			wantReqType: "application/x-www-form-urlencoded",
		},
		{
			name: "response over the capture limit", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Write(big)
			},
			wantStatus: 200, wantBody: big, wantType: "application/octet-stream",
		},
		{
			name: "chunked both ways", method: "PUT", chunked: true, upload: upload,
			handler: func(w http.ResponseWriter, r *http.Request) {
				if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
					http.Error(w, fmt.Sprintf("request transfer encoding %v, want chunked", r.TransferEncoding), 400)
					return
				}
				sum := sha256.New()
				n, _ := io.Copy(sum, r.Body)
				w.Header().Set("Content-Type", "text/plain")
				for i := range 3 { // flushed pieces: no Content-Length, chunked
					fmt.Fprintf(w, "piece %d;", i)
					w.(http.Flusher).Flush()
				}
				fmt.Fprintf(w, "%d:%s", n, hex.EncodeToString(sum.Sum(nil)))
			},
			wantStatus: 200, wantSent: int64(len(upload)), wantType: "text/plain",
			wantBody: fmt.Appendf(nil, "piece 0;piece 1;piece 2;%d:%x", len(upload), sha256.Sum256(upload)),
		},
		{
			name: "HEAD", method: "HEAD", handler: okHandler("not sent"),
			wantStatus: 200, wantBody: []byte{}, wantType: "text/plain",
		},
		{
			name: "204", method: "DELETE",
			handler:    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
			wantStatus: 204, wantBody: []byte{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var originVia atomic.Value
			origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				originVia.Store(r.Header.Get("Via"))
				w.Header().Set("X-Origin", "yes")
				tc.handler(w, r)
			}))
			h := newHarness(t, func(c *Config) { c.MaxBodySize = 1024 })
			target := origin.URL + "/path?q=1;x"
			var body io.Reader
			if tc.upload != nil {
				body = bytes.NewReader(tc.upload)
				if tc.chunked {
					body = io.MultiReader(body) // hides the length
				}
			}
			req, err := http.NewRequestWithContext(h.ctx, tc.method, target, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Client", "c1")
			if tc.reqType != "" {
				req.Header.Set("Content-Type", tc.reqType)
			}
			res, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}

			// What the client got.
			if res.StatusCode != tc.wantStatus || !bytes.Equal(got, tc.wantBody) {
				t.Fatalf("client got %d %.80q; want %d %.80q", res.StatusCode, got, tc.wantStatus, tc.wantBody)
			}
			if res.Header.Get("X-Origin") != "yes" || !strings.Contains(res.Header.Get("Via"), "pxperf-") {
				t.Errorf("client got headers %v; want X-Origin and a pxperf Via", res.Header)
			}
			if v, _ := originVia.Load().(string); !strings.Contains(v, "pxperf-") {
				t.Errorf("origin got Via %q; want the proxy's", v)
			}

			// What pxperf recorded.
			pending, e := h.pub.exchangeEntries(t, h.ctx, target)
			if pending.GetMethod() != tc.method || pending.GetHost() != strings.TrimPrefix(origin.URL, "http://") || pending.GetTunnel() {
				t.Errorf("pending entry: %v", pending)
			}
			if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetStatusCode() != int32(tc.wantStatus) || e.GetError() != nil {
				t.Fatalf("final entry state %v status %d error %v; want COMPLETED %d", e.GetState(), e.GetStatusCode(), e.GetError(), tc.wantStatus)
			}
			d := e.GetProxyDecision()
			if d.GetRoute() != pxperfv1.Route_ROUTE_DIRECT || d.GetSource() != pxperfv1.DecisionSource_DECISION_SOURCE_DEFAULT || e.GetUpstreamAuth() != nil {
				t.Errorf("decision %v auth %v; want DIRECT by default, no upstream auth", d, e.GetUpstreamAuth())
			}
			captured, noBody := tc.wantBody[:min(len(tc.wantBody), 1024)], len(tc.wantBody) == 0 && tc.wantType == ""
			if b := e.GetResponseBody(); noBody != (b == nil) || !bytes.Equal(b.GetData(), captured) ||
				b.GetOriginalSize() != int64(len(tc.wantBody)) || b.GetContentType() != tc.wantType {
				t.Errorf("entry body %.80q size %d type %q; want %.80q size %d type %q (none: %v)",
					b.GetData(), b.GetOriginalSize(), b.GetContentType(), captured, len(tc.wantBody), tc.wantType, noBody)
			}
			upCaptured := tc.upload[:min(len(tc.upload), 1024)]
			if b := e.GetRequestBody(); (tc.upload == nil) != (b == nil) || !bytes.Equal(b.GetData(), upCaptured) ||
				b.GetOriginalSize() != int64(len(tc.upload)) || b.GetContentType() != tc.wantReqType {
				t.Errorf("entry request body %.80q size %d type %q; want %.80q size %d type %q (none: %v)",
					b.GetData(), b.GetOriginalSize(), b.GetContentType(), upCaptured, len(tc.upload), tc.wantReqType, tc.upload == nil)
			}
			if got := header(e.GetRequestHeaders(), "X-Client"); len(got) != 1 || got[0] != "c1" {
				t.Errorf("entry request header X-Client %v; want [c1]", got)
			}
			if got := header(e.GetRequestHeaders(), "Host"); len(got) != 1 {
				t.Errorf("entry request header Host %v; want one", got)
			}
			if got := header(e.GetResponseHeaders(), "X-Origin"); len(got) != 1 || got[0] != "yes" {
				t.Errorf("entry response header X-Origin %v; want [yes]", got)
			}
			tm := e.GetTimings()
			if tm.GetTotal() == nil || tm.GetTimeToFirstByte() == nil || tm.GetTimeToFirstByte().AsDuration() > tm.GetTotal().AsDuration() {
				t.Errorf("timings %v; want time_to_first_byte <= total, both set", tm)
			}
			if e.GetBytesSent() < tc.wantSent+50 || e.GetBytesReceived() < int64(len(tc.wantBody)) {
				t.Errorf("entry bytes sent %d received %d; want at least %d (plus a head) and %d", e.GetBytesSent(), e.GetBytesReceived(), tc.wantSent, len(tc.wantBody))
			}
			if s := h.p.Stats(); s.Requests != 1 || s.Errors != 0 || s.BytesIn < uint64(len(tc.wantBody)) || s.BytesOut < uint64(tc.wantSent) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// A request body is captured as it streams to the origin: its first
// MaxBodySize bytes, the bytes read, and the media type the client gave.
func TestForwardRequestBody(t *testing.T) {
	const limit = 1024
	for _, tc := range []struct {
		name      string
		upload    []byte
		chunked   bool   // sent with unknown length
		reqType   string // the client's Content-Type
		wantNone  bool   // no request body in the entry
		wantType  string
		wantBytes int // kept
	}{
		{name: "within the limit", upload: []byte(`{"a":1}`), reqType: "application/json", wantType: "application/json", wantBytes: 7},
		{name: "at the limit", upload: pattern(limit), wantBytes: limit},
		{name: "over the limit", upload: pattern(3 * limit), reqType: "application/octet-stream", wantType: "application/octet-stream", wantBytes: limit},
		{name: "over the limit, chunked", upload: pattern(3 * limit), chunked: true, wantBytes: limit},
		{name: "binary", upload: []byte{0xff, 0x00, 0xfe}, reqType: "image/png", wantType: "image/png", wantBytes: 3},
		{name: "empty with a type", upload: []byte{}, reqType: "text/plain;charset=utf-8", wantType: "text/plain"},
		{name: "none", wantNone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan []byte, 1)
			origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- b
				w.WriteHeader(http.StatusNoContent)
			}))
			h := newHarness(t, func(c *Config) { c.MaxBodySize = limit })
			var body io.Reader
			if tc.upload != nil {
				body = bytes.NewReader(tc.upload)
				if tc.chunked {
					body = io.MultiReader(body)
				}
			}
			req, _ := http.NewRequestWithContext(h.ctx, "POST", origin.URL+"/up", body)
			if tc.reqType != "" {
				req.Header.Set("Content-Type", tc.reqType)
			}
			res, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if b := <-got; !bytes.Equal(b, tc.upload) {
				t.Fatalf("origin got %d bytes; want the %d sent", len(b), len(tc.upload))
			}
			pending, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/up")
			if pending.GetRequestBody() != nil {
				t.Errorf("pending entry has a request body: %v", pending.GetRequestBody())
			}
			b := e.GetRequestBody()
			if tc.wantNone {
				if b != nil {
					t.Errorf("entry request body %v; want none", b)
				}
				return
			}
			if b == nil || !bytes.Equal(b.GetData(), tc.upload[:tc.wantBytes]) || b.GetOriginalSize() != int64(len(tc.upload)) || b.GetContentType() != tc.wantType {
				t.Errorf("entry request body %.40q (%d bytes), original size %d, type %q; want the first %d bytes, %d, %q",
					b.GetData(), len(b.GetData()), b.GetOriginalSize(), b.GetContentType(), tc.wantBytes, len(tc.upload), tc.wantType)
			}
		})
	}
}

// An origin that answers before reading all of an upload: the entry
// counts the bytes the proxy read by then, and keeps their start; what the
// transport reads after the entry is made is neither kept nor counted.
func TestForwardRequestBodyAnsweredEarly(t *testing.T) {
	const limit, read = 1024, 4096
	upload := pattern(4 << 20)
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, read))
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	h := newHarness(t, func(c *Config) { c.MaxBodySize = limit })
	req, _ := http.NewRequestWithContext(h.ctx, "POST", origin.URL+"/big", bytes.NewReader(upload))
	if res, err := h.client.Do(req); err == nil { // the client may see its upload cut instead
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/big")
	b := e.GetRequestBody()
	if n := b.GetOriginalSize(); n < read || n > int64(len(upload)) || !bytes.Equal(b.GetData(), upload[:limit]) {
		t.Errorf("entry request body: %d bytes kept, original size %d; want the first %d, and %d..%d read", len(b.GetData()), n, limit, read, len(upload))
	}
}

// The client reads the first part of a response while the origin still
// holds back the rest: the proxy neither buffers nor waits for capture.
func TestForwardStreamsResponse(t *testing.T) {
	more := make(chan struct{})
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		w.(http.Flusher).Flush()
		select {
		case <-more:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second")
	}))
	h := newHarness(t, nil)
	req, _ := http.NewRequestWithContext(h.ctx, "GET", origin.URL+"/stream", nil)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(res.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("first part: %q, %v", first, err)
	}
	close(more)
	rest, err := io.ReadAll(res.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/stream")
	if string(e.GetResponseBody().GetData()) != "first;second" || e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED {
		t.Errorf("entry %v body %q; want COMPLETED first;second", e.GetState(), e.GetResponseBody().GetData())
	}
}

// An upload reaches the origin while the client is still sending it: the
// proxy does not buffer request bodies.
func TestForwardStreamsUpload(t *testing.T) {
	const head, tail = 64 << 10, 4 << 20
	gotHead := make(chan struct{})
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadFull(r.Body, make([]byte, head)); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		close(gotHead)
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, head+n)
	}))
	h := newHarness(t, nil)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(pattern(head))
		select { // the rest only once the origin has the start
		case <-gotHead:
		case <-h.ctx.Done():
			pw.CloseWithError(h.ctx.Err())
			return
		}
		pw.Write(pattern(tail))
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(h.ctx, "POST", origin.URL+"/upload", pr)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := strconv.Itoa(head + tail); string(body) != want {
		t.Fatalf("origin received %s bytes; want %s", body, want)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/upload")
	if e.GetBytesSent() < head+tail || e.GetStatusCode() != 200 {
		t.Errorf("entry bytes_sent %d status %d; want at least %d, 200", e.GetBytesSent(), e.GetStatusCode(), head+tail)
	}
}

// Requests from one client connection reuse one proxy connection and one
// origin connection.
func TestForwardKeepAlive(t *testing.T) {
	var originConns atomic.Int64
	origin := httptest.NewUnstartedServer(okHandler("again"))
	origin.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			originConns.Add(1)
		}
	}
	origin.Start()
	defer origin.Close()
	h := newHarness(t, nil)
	for i := range 3 {
		var reused bool
		ctx := httptrace.WithClientTrace(h.ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/%d", origin.URL, i), nil)
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if i > 0 && !reused {
			t.Errorf("request %d: the client's connection to the proxy was not reused", i)
		}
		h.pub.exchangeEntries(t, h.ctx, fmt.Sprintf("%s/%d", origin.URL, i))
	}
	if n := originConns.Load(); n != 1 {
		t.Errorf("the origin saw %d connections; want 1", n)
	}
	if n := h.p.Stats().ActiveConns; n != 1 {
		t.Errorf("ActiveConns %d; want 1", n)
	}
}

// Hop-by-hop headers stop at the proxy, both ways; the others pass.
func TestForwardHopByHop(t *testing.T) {
	seen := make(chan http.Header, 1)
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("X-Resp-Keep", "1")
		io.WriteString(w, "ok")
	}))
	h := newHarness(t, nil)
	req, _ := http.NewRequestWithContext(h.ctx, "GET", origin.URL+"/hop", nil)
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("X-Keep", "1")
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	got := <-seen
	for _, name := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := got.Get(name); v != "" {
			t.Errorf("origin got hop-by-hop %s: %q", name, v)
		}
	}
	if got.Get("X-Keep") != "1" || got.Get("X-Forwarded-For") != "10.1.2.3" {
		t.Errorf("origin got %v; want X-Keep and the client's X-Forwarded-For unchanged", got)
	}
	if res.Header.Get("X-Resp-Hop") != "" || res.Header.Get("X-Resp-Keep") != "1" {
		t.Errorf("client got %v; want X-Resp-Keep and not X-Resp-Hop", res.Header)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/hop")
	if got := header(e.GetRequestHeaders(), "Proxy-Authorization"); len(got) != 1 || got[0] != "[REDACTED]" {
		t.Errorf("entry Proxy-Authorization %v; want it recorded as received, redacted", got)
	}
}

// Credentials reach the origin and the client unchanged, and pxperf never
// sees them.
func TestForwardRedactsCredentials(t *testing.T) {
	const secret = "s3cr3t-value"
	seen := make(chan http.Header, 1)
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		http.SetCookie(w, &http.Cookie{Name: "session", Value: secret})
		io.WriteString(w, "ok")
	}))
	h := newHarness(t, func(c *Config) { c.RedactHeaders = []string{"x-api-key"} })
	req, _ := http.NewRequestWithContext(h.ctx, "GET", origin.URL+"/private", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Cookie", "id="+secret)
	req.Header.Set("X-Api-Key", secret)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	got := <-seen
	if got.Get("Authorization") != "Bearer "+secret || got.Get("Cookie") != "id="+secret || got.Get("X-Api-Key") != secret {
		t.Errorf("origin got %v; want the credentials unchanged", got)
	}
	if !strings.Contains(res.Header.Get("Set-Cookie"), secret) {
		t.Errorf("client got Set-Cookie %q; want the origin's", res.Header.Get("Set-Cookie"))
	}
	pending, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/private")
	for _, en := range []*pxperfv1.Entry{pending, e} {
		if text := prototext.Format(en); strings.Contains(text, secret) {
			t.Errorf("%v entry carries the secret:\n%s", en.GetState(), text)
		}
		for _, name := range []string{"Authorization", "Cookie", "X-Api-Key"} {
			if got := header(en.GetRequestHeaders(), name); len(got) != 1 || got[0] != "[REDACTED]" {
				t.Errorf("%v entry header %s: %v; want [REDACTED]", en.GetState(), name, got)
			}
		}
	}
	if got := header(e.GetResponseHeaders(), "Set-Cookie"); len(got) != 1 || got[0] != "[REDACTED]" {
		t.Errorf("entry Set-Cookie %v; want [REDACTED]", got)
	}
}

func TestForwardOriginDown(t *testing.T) {
	h := newHarness(t, nil)
	target := "http://" + closedAddr(t) + "/down"
	req, _ := http.NewRequestWithContext(h.ctx, "GET", target, nil)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "refused") {
		t.Errorf("client got %d %q; want 502 naming the refusal", res.StatusCode, body)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, target)
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetStatusCode() != 0 ||
		e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_CONNECT || !strings.Contains(e.GetError().GetMessage(), "refused") {
		t.Errorf("entry %v status %d error %v; want FAILED, no status, CONNECT refused", e.GetState(), e.GetStatusCode(), e.GetError())
	}
	if s := h.p.Stats(); s.Errors != 1 {
		t.Errorf("Stats.Errors %d; want 1", s.Errors)
	}
}

// A client that goes away mid-response: the origin's request is cancelled
// and the entry says the client closed, keeping the status.
func TestForwardClientGoesAway(t *testing.T) {
	cancelled := make(chan struct{})
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(pattern(32 << 10))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	}))
	h := newHarness(t, nil)
	req, _ := http.NewRequestWithContext(h.ctx, "GET", origin.URL+"/long", nil)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	res.Body.Close() // unread: the client closes the connection
	select {
	case <-cancelled:
	case <-h.ctx.Done():
		t.Fatal("the origin's request was not cancelled")
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/long")
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetStatusCode() != 200 ||
		e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED {
		t.Errorf("entry %v status %d error %v; want FAILED, 200 kept, CLIENT_CLOSED", e.GetState(), e.GetStatusCode(), e.GetError())
	}
	if n := e.GetResponseBody().GetOriginalSize(); n < 1000 || n > 32<<10 {
		t.Errorf("entry body original_size %d; want what was carried, 1000..32768", n)
	}
}

// A request that is not absolute-form is refused and not recorded; one with
// a method no entry can carry is forwarded and not recorded.
func TestForwardNotRecorded(t *testing.T) {
	methods := make(chan string, 1)
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods <- r.Method
		io.WriteString(w, "ok")
	}))
	h := newHarness(t, nil)

	req, _ := http.NewRequestWithContext(h.ctx, "GET", h.url.String()+"/", nil)
	res, err := http.DefaultTransport.RoundTrip(req) // straight to the proxy, origin-form
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request: %d; want 400", res.StatusCode)
	}

	req, _ = http.NewRequestWithContext(h.ctx, "BREW", origin.URL+"/pot", nil)
	res, err = h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if m := <-methods; res.StatusCode != 200 || m != "BREW" {
		t.Errorf("BREW: client got %d, origin got %s; want 200, BREW", res.StatusCode, m)
	}
	if s := h.p.Stats(); s.Unrecorded != 1 || s.Queued != 0 || len(h.pub.all()) != 0 {
		t.Errorf("stats %+v, %d entries; want 1 unrecorded, no entries", s, len(h.pub.all()))
	}
}

// A request that would come back through the same proxy is refused: here
// the proxy is its own upstream.
func TestForwardLoop(t *testing.T) {
	origin := newOrigin(t, okHandler("unreachable"))
	h := newHarness(t, func(c *Config) { c.Upstream = &url.URL{Scheme: "http", Host: c.Listen} })
	target := origin.URL + "/loop"
	req, _ := http.NewRequestWithContext(h.ctx, "GET", target, nil)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusLoopDetected {
		t.Errorf("client got %d; want 508", res.StatusCode)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, target)
	if e.GetStatusCode() != http.StatusLoopDetected || e.GetProxyDecision().GetRoute() != pxperfv1.Route_ROUTE_PROXY {
		t.Errorf("entry status %d decision %v; want 508 through the upstream", e.GetStatusCode(), e.GetProxyDecision())
	}
}

// An origin that breaks off a response: the client sees it cut, the entry
// keeps the status and says what broke.
func TestForwardOriginCutsBody(t *testing.T) {
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\nonly this")
		bw.Flush()
	}))
	h := newHarness(t, nil)
	req, _ := http.NewRequestWithContext(h.ctx, "GET", origin.URL+"/cut", nil)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(got) != "only this" || err == nil {
		t.Errorf("client got %d %q, %v; want 200, the part sent, then an error", res.StatusCode, got, err)
	}
	_, e := h.pub.exchangeEntries(t, h.ctx, origin.URL+"/cut")
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetStatusCode() != 200 ||
		e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_OTHER || !strings.Contains(e.GetError().GetMessage(), "cut after 9 bytes") ||
		string(e.GetResponseBody().GetData()) != "only this" {
		t.Errorf("entry %v status %d error %v body %q; want FAILED, 200 kept, OTHER cut after 9 bytes", e.GetState(), e.GetStatusCode(), e.GetError(), e.GetResponseBody().GetData())
	}
}
