package httpentry

import (
	"strings"
	"testing"
	"unicode/utf8"

	"buf.build/go/protovalidate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// validEntry returns the least entry the contract takes.
func validEntry() *pxperfv1.Entry {
	return &pxperfv1.Entry{StartTime: timestamppb.Now(), Method: "GET", Url: "http://example.com/"}
}

// verdict returns the contract's verdict on e.
func verdict(t testing.TB, e *pxperfv1.Entry) error {
	t.Helper()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	return v.Validate(e)
}

// TestContract holds each limit to the contract: an entry at the limit is
// taken, one past it is not.
func TestContract(t *testing.T) {
	lim := Contract()
	headers := func(n int) []*pxperfv1.Header {
		hs := make([]*pxperfv1.Header, n)
		for i := range hs {
			hs[i] = &pxperfv1.Header{Name: "X", Value: "v"}
		}
		return hs
	}
	for _, tc := range []struct {
		name  string
		limit int
		set   func(e *pxperfv1.Entry, n int)
	}{
		{"URL", lim.URL, func(e *pxperfv1.Entry, n int) {
			e.Url = "http://example.com/" + strings.Repeat("a", n-len("http://example.com/"))
		}},
		{"Host", lim.Host, func(e *pxperfv1.Entry, n int) { e.Host = strings.Repeat("h", n) }},
		{"Upstream", lim.Upstream, func(e *pxperfv1.Entry, n int) {
			e.ProxyDecision = &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_PROXY, Upstream: strings.Repeat("u", n)}
		}},
		{"Headers in request_headers", lim.Headers, func(e *pxperfv1.Entry, n int) { e.RequestHeaders = headers(n) }},
		{"Headers in response_headers", lim.Headers, func(e *pxperfv1.Entry, n int) { e.ResponseHeaders = headers(n) }},
		{"HeaderName", lim.HeaderName, func(e *pxperfv1.Entry, n int) {
			e.RequestHeaders = []*pxperfv1.Header{{Name: strings.Repeat("N", n), Value: "v"}}
		}},
		{"HeaderValue", lim.HeaderValue, func(e *pxperfv1.Entry, n int) {
			e.RequestHeaders = []*pxperfv1.Header{{Name: "X", Value: strings.Repeat("v", n)}}
		}},
		{"ErrorMessage", lim.ErrorMessage, func(e *pxperfv1.Entry, n int) {
			e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_OTHER, Message: strings.Repeat("m", n)}
		}},
		{"ContentType", lim.ContentType, func(e *pxperfv1.Entry, n int) {
			e.ResponseBody = &pxperfv1.Body{ContentType: strings.Repeat("t", n)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.limit <= 0 {
				t.Fatalf("limit %d; want one read from the contract", tc.limit)
			}
			e := validEntry()
			tc.set(e, tc.limit)
			if err := verdict(t, e); err != nil {
				t.Errorf("at the limit %d: %v; want it taken", tc.limit, err)
			}
			e = validEntry()
			tc.set(e, tc.limit+1)
			if err := verdict(t, e); err == nil {
				t.Errorf("past the limit %d: taken; want it refused", tc.limit)
			}
		})
	}
}

func TestRecordable(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   bool
	}{
		{"GET", true},
		{"CONNECT", true},
		{"QUERY", true},
		{"MKCALENDAR", true},
		{"get", false},
		{"BREW", false},
		{"", false},
	} {
		name := tc.method
		if name == "" {
			name = "empty"
		}
		t.Run(name, func(t *testing.T) {
			got := Contract().Recordable(tc.method)
			if got != tc.want {
				t.Errorf("Recordable(%q) = %v; want %v", tc.method, got, tc.want)
			}
			e := validEntry()
			e.Method = tc.method
			if taken := verdict(t, e) == nil; taken != got {
				t.Errorf("Recordable(%q) = %v, but the contract takes it: %v", tc.method, got, taken)
			}
		})
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "plain", 10, "plain"},
		{"cut at a character", "héllo", 2, "h"}, // not half an é
		{"invalid replaced", "a\xffb", 10, "a\uFFFDb"},
		{"cut", "abcdef", 3, "abc"},
		{"replaced then cut", "\xff\xff", 4, "\uFFFD"},
		{"nothing kept", "abc", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Clean(tc.in, tc.max); got != tc.want {
				t.Errorf("Clean(%q, %d) = %q; want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "plain", "héllo", "a\xffb", "\xe2\x82"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := Clean(s, max)
		if !utf8.ValidString(got) || len(got) > max {
			t.Fatalf("Clean(%q, %d) = %q: not valid UTF-8 of at most %d bytes", s, max, got, max)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); !strings.HasPrefix(want, got) {
			t.Fatalf("Clean(%q, %d) = %q; want a prefix of %q", s, max, got, want)
		}
		if utf8.ValidString(s) && len(s) <= max && got != s {
			t.Fatalf("Clean(%q, %d) = %q; want it unchanged", s, max, got)
		}
	})
}

func TestMediaType(t *testing.T) {
	long := "application/" + strings.Repeat("x", Contract().ContentType)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"none", "", ""},
		{"bare", "text/html", "text/html"},
		{"parameters dropped", "text/html; charset=utf-8", "text/html"},
		{"lower case", "Application/JSON", "application/json"},
		{"unparsed", " Text/Plain ;;bad=", "text/plain"},
		{"not a media type", "garbage", "garbage"},
		{"cut to the contract", long, long[:Contract().ContentType]},
		{"invalid UTF-8", "text/\xff", "text/\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MediaType(tc.in); got != tc.want {
				t.Errorf("MediaType(%q) = %q; want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzMediaType(f *testing.F) {
	for _, s := range []string{"", "text/html; charset=utf-8", "Application/JSON", " a/b ;;x=", "\xff/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		got := MediaType(ct)
		if !utf8.ValidString(got) || len(got) > Contract().ContentType || strings.Contains(got, ";") {
			t.Fatalf("MediaType(%q) = %q: want valid UTF-8 of at most %d bytes, no parameters", ct, got, Contract().ContentType)
		}
		if ct == "" && got != "" {
			t.Fatalf("MediaType(%q) = %q; want \"\"", ct, got)
		}
	})
}
