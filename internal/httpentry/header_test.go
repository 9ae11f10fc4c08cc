package httpentry

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/protobuf/testing/protocmp"
)

func TestHeaderList(t *testing.T) {
	lim := Contract()
	type hs = []*pxperfv1.Header
	many := func(n int, value string) http.Header {
		h := http.Header{}
		for i := range n {
			h.Add("X-"+strings.Repeat("a", i/26)+string(rune('a'+i%26)), value)
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		build  func(l *HeaderList) bool // adds to l and returns what the last Add said
		want   hs                       // nil: only count is checked
		count  int                      // how many headers want has, when want is nil
		filled bool                     // whether the list is full at the end
	}{
		{
			name: "sorted, values in order, redacted by canonical name",
			build: func(l *HeaderList) bool {
				return l.AddHeader(http.Header{
					"B":             {"2", "1"},
					"A":             {"x"},
					"authorization": {"secret"}, // not canonical, as a custom transport may leave it
					"Cookie":        {"c=1"},
				}, map[string]bool{"Authorization": true, "Cookie": true})
			},
			want: hs{
				{Name: "A", Value: "x"},
				{Name: "B", Value: "2"},
				{Name: "B", Value: "1"},
				{Name: "Cookie", Value: store.Redacted},
				{Name: "authorization", Value: store.Redacted},
			},
		},
		{
			name: "Host added by Add, not redacted by the names given AddHeader",
			build: func(l *HeaderList) bool {
				l.Add("Host", "example.com", false)
				return l.AddHeader(http.Header{"Host": {"other"}}, map[string]bool{"Host": true})
			},
			want: hs{{Name: "Host", Value: "example.com"}, {Name: "Host", Value: store.Redacted}},
		},
		{
			name: "empty and too long names left out",
			build: func(l *HeaderList) bool {
				l.Add("", "v", false)
				l.Add(strings.Repeat("N", lim.HeaderName+1), "v", false)
				return l.Add(strings.Repeat("N", lim.HeaderName), "v", false)
			},
			want: hs{{Name: strings.Repeat("N", lim.HeaderName), Value: "v"}},
		},
		{
			name: "strings made valid and cut",
			build: func(l *HeaderList) bool {
				return l.Add("X-\xff", "é"+strings.Repeat("v", lim.HeaderValue), false)
			},
			want: hs{{Name: "X-\uFFFD", Value: "é" + strings.Repeat("v", lim.HeaderValue-2)}},
		},
		{
			name:   "as many headers as the contract takes",
			build:  func(l *HeaderList) bool { return l.AddHeader(many(lim.Headers+3, "v"), nil) },
			count:  lim.Headers,
			filled: true,
		},
		{
			name: "as many bytes as a list may hold",
			build: func(l *HeaderList) bool {
				return l.AddHeader(many(lim.Headers, strings.Repeat("v", lim.HeaderValue)), nil)
			},
			count:  headerBytes / (len("X-a") + lim.HeaderValue),
			filled: true,
		},
		{
			name: "nothing after the first that does not fit",
			build: func(l *HeaderList) bool {
				for range lim.Headers + 1 {
					l.Add("X", "v", false)
				}
				return l.Add("Y", "", false)
			},
			count:  lim.Headers,
			filled: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewHeaderList(4)
			more := tc.build(&l)
			got := l.Headers()
			if more == tc.filled {
				t.Errorf("the last Add says the list takes more: %v; want %v", more, !tc.filled)
			}
			if tc.want != nil {
				if diff := cmp.Diff(got, tc.want, protocmp.Transform()); diff != "" {
					t.Errorf("headers (-got +want):\n%s", diff)
				}
			} else if len(got) != tc.count {
				t.Errorf("%d headers; want %d", len(got), tc.count)
			}
			e := validEntry()
			e.RequestHeaders = got
			if err := verdict(t, e); err != nil {
				t.Errorf("the contract refuses the list: %v", err)
			}
		})
	}
}

func TestResponseHeadSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  *http.Response
		want string // the head on the wire
	}{
		{
			name: "no headers",
			res:  &http.Response{Proto: "HTTP/1.1", Status: "204 No Content"},
			want: "HTTP/1.1 204 No Content\r\n\r\n",
		},
		{
			name: "headers, one with two values",
			res: &http.Response{Proto: "HTTP/1.1", Status: "200 OK", Header: http.Header{
				"Content-Type": {"text/plain"},
				"Set-Cookie":   {"a=1", "b=2"},
			}},
			want: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := ResponseHeadSize(tc.res), int64(len(tc.want)); got != want {
				t.Errorf("ResponseHeadSize = %d; want %d", got, want)
			}
		})
	}
}

// BenchmarkHeaderList times the header list of a typical response.
func BenchmarkHeaderList(b *testing.B) {
	h := http.Header{
		"Content-Type":   {"text/html; charset=utf-8"},
		"Content-Length": {"1024"},
		"Date":           {"Mon, 07 Dec 2026 10:00:00 GMT"},
		"Server":         {"origin"},
		"Cache-Control":  {"no-cache"},
		"Set-Cookie":     {"a=1", "b=2"},
		"Vary":           {"Accept-Encoding"},
	}
	redact := map[string]bool{"Set-Cookie": true, "Authorization": true}
	b.ReportAllocs()
	for b.Loop() {
		l := NewHeaderList(len(h))
		l.AddHeader(h, redact)
		_ = l.Headers()
	}
}
