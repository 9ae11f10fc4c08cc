package replay

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
)

// received is what a target got.
type received struct {
	method, uri, host string
	header            http.Header
	body              []byte
}

// newTarget starts a loopback server that answers 200 "ok" and reports
// each request it gets.
func newTarget(t testing.TB) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), body: body}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, got
}

// receive returns the next request a target got, failing t if none comes
// before ctx ends.
func receive(t testing.TB, ctx context.Context, got <-chan received) received {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-ctx.Done():
		t.Fatal("the target got no request")
		return received{}
	}
}

// at returns a copy of tc's entry whose url points at addr (host:port)
// instead of its own host.
func (tc requestCase) at(addr string) *pxperfv1.Entry {
	e := proto.Clone(tc.entry).(*pxperfv1.Entry)
	u, _ := url.Parse(e.GetUrl())
	e.Url = strings.Replace(e.GetUrl(), "://"+u.Host, "://"+addr, 1)
	return e
}

// check compares what a target at addr got with what tc must send. Headers
// in own, the sender's own (curl's User-Agent, say), may come as well.
func (tc requestCase) check(t testing.TB, got received, addr string, own ...string) {
	t.Helper()
	u, _ := url.Parse(tc.url)
	host := tc.host
	if host == "" {
		host = addr
	}
	if got.method != tc.method || got.uri != u.RequestURI() || got.host != host {
		t.Errorf("target got %s %s (Host %s), want %s %s (Host %s)", got.method, got.uri, got.host, tc.method, u.RequestURI(), host)
	}
	for name, want := range tc.want {
		if vs := got.header[name]; !slices.Equal(vs, want) {
			t.Errorf("target got %s %q, want %q", name, vs, want)
		}
	}
	for name, vs := range got.header {
		if _, ok := tc.want[name]; !ok && !slices.Contains(own, name) {
			t.Errorf("target got %s %q, which it should not", name, vs)
		}
	}
	if string(got.body) != tc.body {
		t.Errorf("target got body %q, want %q", got.body, tc.body)
	}
}
