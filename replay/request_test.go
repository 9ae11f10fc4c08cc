package replay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testTimeout bounds every test's context.
const testTimeout = 15 * time.Second

// recorded returns an entry of a request as a recording proxy stores it,
// with headers given as "Name: value".
func recorded(method, url string, headers ...string) *pxperfv1.Entry {
	e := &pxperfv1.Entry{
		Id:         17,
		StartTime:  timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)),
		Method:     method,
		Url:        url,
		State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		StatusCode: 200,
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		e.RequestHeaders = append(e.RequestHeaders, &pxperfv1.Header{Name: name, Value: value})
	}
	return e
}

// withBody returns e with a request body.
func withBody(e *pxperfv1.Entry, data string, originalSize int64, truncated bool) *pxperfv1.Entry {
	e.RequestBody = &pxperfv1.Body{Data: []byte(data), OriginalSize: originalSize, Truncated: truncated}
	return e
}

// requestCase is a recorded request and what re-sending it must send, for
// the tests of Request, Curl and Do alike.
type requestCase struct {
	name      string
	entry     *pxperfv1.Entry
	header    http.Header // given again
	truncated bool        // Options.TruncatedBody

	method  string
	url     string
	host    string      // the Host header sent; "" for the url's
	want    http.Header // every header sent, curl's and Go's own aside
	body    string
	leftOut []string
	err     error // wrapped by the error, if any
}

func requestCases() []requestCase {
	return []requestCase{
		{
			name:   "GET as recorded",
			entry:  recorded("GET", "http://example.test/a/b?q=1&r=%20x", "Accept: application/json", "User-Agent: test/1", "X-Multi: one", "X-Multi: two"),
			method: "GET", url: "http://example.test/a/b?q=1&r=%20x",
			want: http.Header{"Accept": {"application/json"}, "User-Agent": {"test/1"}, "X-Multi": {"one", "two"}},
		},
		{
			name: "hop-by-hop and framing headers are not copied",
			entry: recorded("GET", "http://example.test/hop",
				"Connection: keep-alive, X-Conn-Named", "X-Conn-Named: 1", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
				"Transfer-Encoding: identity", "Te: trailers", "Trailer: X-T", "Upgrade: h2c", "Proxy-Authorization: [REDACTED]",
				"Content-Length: 0", "Pxperf-Replay-Of: 3", ":authority: example.test", "X-Keep: yes"),
			method: "GET", url: "http://example.test/hop",
			want: http.Header{"X-Keep": {"yes"}},
		},
		{
			name:   "redacted headers are left out",
			entry:  recorded("GET", "http://example.test/private", "Authorization: [REDACTED]", "Cookie: [REDACTED]", "X-Api-Key: [REDACTED]", "X-Public: 1"),
			method: "GET", url: "http://example.test/private",
			want:    http.Header{"X-Public": {"1"}},
			leftOut: []string{"Authorization", "Cookie", "X-Api-Key"},
		},
		{
			name:   "given headers replace redacted and recorded ones, and are added",
			entry:  recorded("GET", "http://example.test/private", "Authorization: [REDACTED]", "Cookie: [REDACTED]", "Accept: a", "Accept: b", "X-Drop: 1"),
			header: http.Header{"authorization": {"Bearer it's-me"}, "Accept": {"c"}, "X-New": {"new"}, "X-Drop": {""}},
			method: "GET", url: "http://example.test/private",
			want:    http.Header{"Authorization": {"Bearer it's-me"}, "Accept": {"c"}, "X-New": {"new"}},
			leftOut: []string{"Cookie"},
		},
		{
			name:   "a Host that differs from the url's is sent",
			entry:  recorded("GET", "http://127.0.0.1:8080/vhost", "Host: site.example.test"),
			method: "GET", url: "http://127.0.0.1:8080/vhost", host: "site.example.test",
			want: http.Header{},
		},
		{
			name:   "an empty header value is sent empty",
			entry:  recorded("GET", "http://example.test/empty", "X-Empty: "),
			method: "GET", url: "http://example.test/empty",
			want: http.Header{"X-Empty": {""}},
		},
		{
			name:   "a body with its type and quotes",
			entry:  withBody(recorded("POST", "http://example.test/api", "Content-Type: application/json", "Content-Length: 31"), `{"name": "O'Brien", "n": "$x"}`+"\n", 31, false),
			method: "POST", url: "http://example.test/api",
			want: http.Header{"Content-Type": {"application/json"}},
			body: `{"name": "O'Brien", "n": "$x"}` + "\n",
		},
		{
			name: "a body without Content-Type takes its recorded type",
			entry: func() *pxperfv1.Entry {
				e := withBody(recorded("PUT", "http://example.test/doc"), "<a/>", 4, false)
				e.RequestBody.ContentType = "text/xml"
				return e
			}(),
			method: "PUT", url: "http://example.test/doc",
			want: http.Header{"Content-Type": {"text/xml"}},
			body: "<a/>",
		},
		{
			name:   "a body without any type is sent without one",
			entry:  withBody(recorded("PATCH", "http://example.test/raw"), "raw", 0, false),
			method: "PATCH", url: "http://example.test/raw",
			want: http.Header{},
			body: "raw",
		},
		{
			name:   "a binary body",
			entry:  withBody(recorded("POST", "http://example.test/bin", "Content-Type: application/octet-stream"), "\x00\x01\x7f\x80\xff'%\\-\r\n\x1b[31m", 0, false),
			method: "POST", url: "http://example.test/bin",
			want: http.Header{"Content-Type": {"application/octet-stream"}},
			body: "\x00\x01\x7f\x80\xff'%\\-\r\n\x1b[31m",
		},
		{
			name:   "a body that starts with @ is not a file name",
			entry:  withBody(recorded("POST", "http://example.test/at", "Content-Type: text/plain"), "@/etc/passwd", 0, false),
			method: "POST", url: "http://example.test/at",
			want: http.Header{"Content-Type": {"text/plain"}},
			body: "@/etc/passwd",
		},
		{
			name:   "a text body with tabs and non-ASCII letters",
			entry:  withBody(recorded("POST", "http://example.test/text", "Content-Type: text/plain; charset=utf-8"), "héllo\twörld ✓\n", 0, false),
			method: "POST", url: "http://example.test/text",
			want: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			body: "héllo\twörld ✓\n",
		},
		{
			name:   "a text body too long for an argument",
			entry:  withBody(recorded("POST", "http://example.test/long", "Content-Type: text/plain"), strings.Repeat("a line of text, 'quoted'\n", 3000), 0, false),
			method: "POST", url: "http://example.test/long",
			want: http.Header{"Content-Type": {"text/plain"}},
			body: strings.Repeat("a line of text, 'quoted'\n", 3000),
		},
		{
			name:   "a GET with a body",
			entry:  withBody(recorded("GET", "http://example.test/search", "Content-Type: application/json"), `{"q":1}`, 0, false),
			method: "GET", url: "http://example.test/search",
			want: http.Header{"Content-Type": {"application/json"}},
			body: `{"q":1}`,
		},
		{
			name:   "HEAD",
			entry:  recorded("HEAD", "http://example.test/head", "Accept: */*"),
			method: "HEAD", url: "http://example.test/head",
			want: http.Header{"Accept": {"*/*"}},
		},
		{
			name:   "DELETE without a body",
			entry:  recorded("DELETE", "http://example.test/item/1"),
			method: "DELETE", url: "http://example.test/item/1",
			want: http.Header{},
		},
		{
			name:   "a url curl would glob or resolve",
			entry:  recorded("GET", "http://example.test/a/../b/./c?list[]=1&set={x}"),
			method: "GET", url: "http://example.test/a/../b/./c?list[]=1&set={x}",
			want: http.Header{},
		},
		{
			name:  "a truncated body is refused",
			entry: withBody(recorded("POST", "http://example.test/big", "Content-Type: text/plain"), "abc", 10, true),
			err:   ErrTruncatedBody,
		},
		{
			name:  "a body shorter than its original size is refused",
			entry: withBody(recorded("POST", "http://example.test/big"), "abc", 10, false),
			err:   ErrTruncatedBody,
		},
		{
			name:  "a body not recorded is refused",
			entry: recorded("POST", "http://example.test/form", "Content-Length: 12"),
			err:   ErrTruncatedBody,
		},
		{
			name:  "a chunked body not recorded is refused",
			entry: recorded("POST", "http://example.test/form", "Transfer-Encoding: chunked"),
			err:   ErrTruncatedBody,
		},
		{
			name:      "a truncated body is sent in part when asked",
			entry:     withBody(recorded("POST", "http://example.test/big", "Content-Type: text/plain"), "abc", 10, true),
			truncated: true,
			method:    "POST", url: "http://example.test/big",
			want: http.Header{"Content-Type": {"text/plain"}},
			body: "abc",
		},
		{
			name:   "Content-Length 0 without a body",
			entry:  recorded("POST", "http://example.test/empty", "Content-Length: 0"),
			method: "POST", url: "http://example.test/empty",
			want: http.Header{},
		},
		{
			name:  "a tunnel",
			entry: func() *pxperfv1.Entry { e := recorded("CONNECT", "example.test:443"); e.Tunnel = true; return e }(),
			err:   ErrTunnel,
		},
		{
			name:  "a url that is not http",
			entry: recorded("GET", "ftp://example.test/file"),
			err:   ErrInvalidRequest,
		},
		{
			name:  "a relative url",
			entry: recorded("GET", "/path"),
			err:   ErrInvalidRequest,
		},
		{
			name:  "a recorded header value that would split the request",
			entry: recorded("GET", "http://example.test/", "X-Evil: a\r\nX-Injected: 1"),
			err:   ErrInvalidRequest,
		},
		{
			name:   "a given header name that is not a token",
			entry:  recorded("GET", "http://example.test/"),
			header: http.Header{"X Bad": {"1"}},
			err:    ErrInvalidRequest,
		},
	}
}

func TestRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, tc := range requestCases() {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Request(ctx, tc.entry, Options{Header: tc.header, TruncatedBody: tc.truncated})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Request: %v, want an error wrapping %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			host := tc.host
			if host == "" {
				host = req.URL.Host
			}
			if req.Method != tc.method || req.URL.String() != tc.url || req.Host != host {
				t.Errorf("request %s %s (host %s), want %s %s (host %s)", req.Method, req.URL, req.Host, tc.method, tc.url, host)
			}
			if diff := cmp.Diff(req.Header, tc.want); diff != "" {
				t.Errorf("headers (-got +want):\n%s", diff)
			}
			var body []byte
			if req.Body != nil {
				if body, err = io.ReadAll(req.Body); err != nil {
					t.Fatal(err)
				}
			}
			if string(body) != tc.body || req.ContentLength != int64(len(tc.body)) {
				t.Errorf("body %q (length %d), want %q", body, req.ContentLength, tc.body)
			}
			if tc.body != "" && req.GetBody == nil {
				t.Error("GetBody is nil: the body cannot be sent again")
			}
			if got := LeftOut(tc.entry, tc.header); !slices.Equal(got, tc.leftOut) {
				t.Errorf("LeftOut = %q, want %q", got, tc.leftOut)
			}
		})
	}
}
