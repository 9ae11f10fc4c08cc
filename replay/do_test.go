package replay

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
)

// valid fails t unless the server would take e as it is.
func valid(t testing.TB, e *pxperfv1.Entry) {
	t.Helper()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(e); err != nil {
		t.Errorf("the entry breaks the contract: %v", err)
	}
	if err := store.Check(e); err != nil {
		t.Errorf("the entry breaks the store's rules: %v", err)
	}
}

// headerValues returns the values of name in hs.
func headerValues(hs []*pxperfv1.Header, name string) []string {
	var vs []string
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			vs = append(vs, h.GetValue())
		}
	}
	return vs
}

// Do sends what Request builds, and describes the exchange as a new entry
// linked to the original.
func TestDo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	target, got := newTarget(t)
	addr := strings.TrimPrefix(target.URL, "http://")
	for _, tc := range requestCases() {
		if tc.err != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			e, err := Do(ctx, tc.at(addr), Options{Header: tc.header, TruncatedBody: tc.truncated})
			if err != nil {
				t.Fatal(err)
			}
			// Go's own: a User-Agent when none was recorded, the body's
			// length.
			tc.check(t, receive(t, ctx, got), addr, "User-Agent", "Content-Length")
			valid(t, e)
			if e.GetReplayOf() != 17 || e.GetId() != 0 || e.GetMethod() != tc.method || e.GetHost() != addr ||
				e.GetProxyDecision().GetRoute() != pxperfv1.Route_ROUTE_DIRECT {
				t.Errorf("entry replay_of %d id %d method %s host %s route %v; want replay_of 17, no id, %s, %s, DIRECT",
					e.GetReplayOf(), e.GetId(), e.GetMethod(), e.GetHost(), e.GetProxyDecision().GetRoute(), tc.method, addr)
			}
			if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetStatusCode() != 200 || e.GetError() != nil {
				t.Errorf("entry %v %d %v, want COMPLETED 200", e.GetState(), e.GetStatusCode(), e.GetError())
			}
			if start := e.GetStartTime().AsTime(); start.Before(before) || start.After(time.Now()) {
				t.Errorf("start time %v, want between %v and now", start, before)
			}
			rb := e.GetResponseBody()
			wantBody := "ok"
			if tc.method == "HEAD" {
				wantBody = ""
			}
			if string(rb.GetData()) != wantBody || rb.GetOriginalSize() != int64(len(wantBody)) || rb.GetContentType() != "text/plain" {
				t.Errorf("response body %q of %d bytes, type %q; want %q, text/plain", rb.GetData(), rb.GetOriginalSize(), rb.GetContentType(), wantBody)
			}
			if got := headerValues(e.GetResponseHeaders(), "Content-Type"); !slices.Equal(got, []string{"text/plain; charset=utf-8"}) {
				t.Errorf("response Content-Type %q", got)
			}
			if got := string(e.GetRequestBody().GetData()); got != tc.body[:min(len(tc.body), 10<<10)] || e.GetRequestBody().GetOriginalSize() != int64(len(tc.body)) {
				t.Errorf("request body %.40q of %d bytes, want %.40q", got, e.GetRequestBody().GetOriginalSize(), tc.body)
			}
			// The request headers as written: the Host first, each one
			// sent, credentials redacted.
			if hs := e.GetRequestHeaders(); len(hs) == 0 || hs[0].GetName() != "Host" {
				t.Errorf("request headers %v, want Host first", hs)
			}
			for name, want := range tc.want {
				if store.Redacted != "" && slices.Contains(store.AlwaysRedacted, strings.ToLower(name)) {
					want = []string{store.Redacted}
				}
				if got := headerValues(e.GetRequestHeaders(), name); !slices.Equal(got, want) {
					t.Errorf("entry's request header %s %q, want %q", name, got, want)
				}
			}
			tm := e.GetTimings()
			if tm.GetTotal().AsDuration() <= 0 || tm.GetConnect().AsDuration() <= 0 ||
				tm.GetTimeToFirstByte().AsDuration() <= 0 || tm.GetTimeToFirstByte().AsDuration() > tm.GetTotal().AsDuration() {
				t.Errorf("timings %v; want connect, time to first byte and total, the first byte within the total", tm)
			}
			if e.GetBytesSent() <= int64(len(tc.body))+int64(len(tc.method)) || e.GetBytesReceived() <= int64(len(wantBody)) {
				t.Errorf("bytes sent %d, received %d; want the heads and bodies", e.GetBytesSent(), e.GetBytesReceived())
			}
		})
	}
}

// An exchange that fails is an entry that says why.
func TestDoFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := refused.Addr().String()
	refused.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the client gives up
	}))
	defer slow.Close()
	secure := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake it refuses
	secure.StartTLS()
	defer secure.Close()
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nabc")
		buf.Flush()
		c.Close()
	}))
	defer cut.Close()
	noDNS := &http.Transport{DialContext: (&net.Dialer{Resolver: &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no name server in this test")
		},
	}}).DialContext}
	defer noDNS.CloseIdleConnections()

	for _, tc := range []struct {
		name   string
		url    string
		opts   Options
		kind   pxperfv1.ErrorKind
		status int32
		body   string
	}{
		{name: "refused", url: "http://" + closed + "/", kind: pxperfv1.ErrorKind_ERROR_KIND_CONNECT},
		{name: "timeout", url: slow.URL + "/", opts: Options{Timeout: 100 * time.Millisecond}, kind: pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT},
		{name: "certificate not trusted", url: secure.URL + "/", kind: pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{name: "name not resolved", url: "http://replay-test.invalid/", opts: Options{Client: &http.Client{Transport: noDNS}}, kind: pxperfv1.ErrorKind_ERROR_KIND_DNS},
		{name: "body cut short", url: cut.URL + "/", kind: pxperfv1.ErrorKind_ERROR_KIND_OTHER, status: 200, body: "abc"},
		{name: "proxy refused", url: "http://example.test/", opts: Options{Proxy: &url.URL{Scheme: "http", Host: closed}}, kind: pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Do(ctx, recorded("GET", tc.url), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			valid(t, e)
			if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetError().GetKind() != tc.kind || e.GetError().GetMessage() == "" ||
				e.GetStatusCode() != tc.status || string(e.GetResponseBody().GetData()) != tc.body {
				t.Errorf("entry %v %v status %d body %q; want FAILED, kind %v, status %d, body %q",
					e.GetState(), e.GetError(), e.GetStatusCode(), e.GetResponseBody().GetData(), tc.kind, tc.status, tc.body)
			}
			if e.GetReplayOf() != 17 || e.GetTimings().GetTotal() == nil {
				t.Errorf("entry replay_of %d timings %v; want 17 and a total", e.GetReplayOf(), e.GetTimings())
			}
		})
	}
}

// A redirect is the exchange recorded, not followed, whatever the
// client's CheckRedirect says.
func TestDoRedirect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	hits := make(chan string, 4)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.URL.Path
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer s.Close()
	for _, c := range []*http.Client{nil, s.Client()} {
		e, err := Do(ctx, recorded("GET", s.URL+"/moved"), Options{Client: c})
		if err != nil {
			t.Fatal(err)
		}
		if e.GetStatusCode() != http.StatusFound || !slices.Equal(headerValues(e.GetResponseHeaders(), "Location"), []string{"/elsewhere"}) {
			t.Errorf("entry %d %v, want 302 to /elsewhere", e.GetStatusCode(), e.GetResponseHeaders())
		}
		if path := <-hits; path != "/moved" || len(hits) != 0 {
			t.Errorf("the server got %s and %d more; want /moved alone", path, len(hits))
		}
	}
	s.Client().CloseIdleConnections()
}

// Bodies beyond MaxBodySize are kept in part and counted whole.
func TestDoMaxBodySize(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	big := strings.Repeat("0123456789", 10_000)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, big)
	}))
	defer s.Close()
	e, err := Do(ctx, withBody(recorded("PUT", s.URL+"/big"), big[:5000], 0, false), Options{MaxBodySize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	valid(t, e)
	req, res := e.GetRequestBody(), e.GetResponseBody()
	if string(req.GetData()) != big[:1000] || req.GetOriginalSize() != 5000 || !req.GetTruncated() {
		t.Errorf("request body %d bytes of %d, truncated %v; want 1000 of 5000, truncated", len(req.GetData()), req.GetOriginalSize(), req.GetTruncated())
	}
	if string(res.GetData()) != big[:1000] || res.GetOriginalSize() != int64(len(big)) || !res.GetTruncated() {
		t.Errorf("response body %d bytes of %d, truncated %v; want 1000 of %d, truncated", len(res.GetData()), res.GetOriginalSize(), res.GetTruncated(), len(big))
	}
	if e.GetBytesSent() < 5000 || e.GetBytesReceived() < int64(len(big)) {
		t.Errorf("bytes sent %d, received %d; want the whole bodies counted", e.GetBytesSent(), e.GetBytesReceived())
	}
}

// A caller that gives up gets its context's error, and no entry.
func TestDoCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	arrived := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	defer s.Close()
	rctx, rcancel := context.WithCancel(ctx)
	go func() {
		<-arrived
		rcancel()
	}()
	e, err := Do(rctx, recorded("GET", s.URL+"/"), Options{})
	if !errors.Is(err, context.Canceled) || e != nil {
		t.Errorf("Do = %v, %v; want no entry and context.Canceled", e, err)
	}
}

func TestDoOptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	e := recorded("GET", "http://example.test/")
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Timeout: -time.Second}, "Options.Timeout"},
		{Options{MaxBodySize: -1}, "Options.MaxBodySize"},
		{Options{Proxy: &url.URL{Scheme: "socks5", Host: "127.0.0.1:1080"}}, "Options.Proxy"},
		{Options{Proxy: &url.URL{Scheme: "http", Host: "127.0.0.1:3128"}, Client: &http.Client{Transport: roundTripper(nil)}}, "Transport"},
	} {
		if _, err := Do(ctx, e, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Do with %+v: %v, want an error naming %s", tc.opts, err, tc.want)
		}
	}
}

// roundTripper is an http.RoundTripper that is not an *http.Transport.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
