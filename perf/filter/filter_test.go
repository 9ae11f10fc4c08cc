package filter

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/contract"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

// testEntry returns a fresh, typical completed entry: GET 200 through an
// upstream proxy, JSON response, 250ms total.
func testEntry() *pxperfv1.Entry {
	return &pxperfv1.Entry{
		Method: "GET",
		Url:    "https://api.example.com/v1/users?id=42",
		Host:   "api.example.com",
		ProxyDecision: &pxperfv1.ProxyDecision{
			Route:    pxperfv1.Route_ROUTE_PROXY,
			Upstream: "proxy.corp:3128",
		},
		State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		StatusCode: 200,
		RequestHeaders: []*pxperfv1.Header{
			{Name: "Accept", Value: "application/json"},
			{Name: "X-Trace-Id", Value: "abc123"},
		},
		ResponseHeaders: []*pxperfv1.Header{
			{Name: "Content-Type", Value: "application/json; charset=utf-8"},
			{Name: "Server", Value: "Envoy"},
		},
		ResponseBody: &pxperfv1.Body{ContentType: "application/json"},
		Timings:      &pxperfv1.Timings{Total: durationpb.New(250 * time.Millisecond)},
	}
}

func mustCompile(t testing.TB, f *pxperfv1.Filter) *Filter {
	t.Helper()
	c, err := Compile(f)
	if err != nil {
		t.Fatalf("Compile(%v) error: %v", f, err)
	}
	return c
}

func TestMatch(t *testing.T) {
	failedEntry := func(e *pxperfv1.Entry) {
		e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		e.StatusCode = 0
		e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_CONNECT, Message: "dial tcp: Connection Refused"}
	}
	tests := []struct {
		name   string
		filter *pxperfv1.Filter
		modify func(e *pxperfv1.Entry) // changes testEntry; nil keeps it
		nilE   bool                    // match a nil entry instead
		want   bool
	}{
		{name: "nil filter", filter: nil, want: true},
		{name: "empty filter", filter: &pxperfv1.Filter{}, want: true},
		{name: "empty filter, nil entry", filter: &pxperfv1.Filter{}, nilE: true, want: true},
		{name: "host filter, nil entry", filter: &pxperfv1.Filter{Host: "example"}, nilE: true, want: false},
		{name: "zero min_duration is no criterion", filter: &pxperfv1.Filter{MinDuration: durationpb.New(0)},
			modify: func(e *pxperfv1.Entry) { e.Timings = nil }, want: true},

		// methods
		{name: "method matches", filter: &pxperfv1.Filter{Methods: []string{"GET"}}, want: true},
		{name: "method matches case-insensitively", filter: &pxperfv1.Filter{Methods: []string{"get"}}, want: true},
		{name: "lower-case entry method matches", filter: &pxperfv1.Filter{Methods: []string{"Get"}},
			modify: func(e *pxperfv1.Entry) { e.Method = "get" }, want: true},
		{name: "second method matches", filter: &pxperfv1.Filter{Methods: []string{"POST", "get"}}, want: true},
		{name: "method does not match", filter: &pxperfv1.Filter{Methods: []string{"POST", "PUT"}}, want: false},
		{name: "method prefix does not match", filter: &pxperfv1.Filter{Methods: []string{"GE"}}, want: false},

		// status_ranges
		{name: "status in range", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}}}, want: true},
		{name: "status on both bounds", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 200}}}, want: true},
		{name: "status in second range", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}, {Min: 100, Max: 200}}}, want: true},
		{name: "status out of range", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 400, Max: 599}}}, want: false},
		{name: "status just above range", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 100, Max: 199}}}, want: false},
		{name: "no status does not match a range", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 100, Max: 599}}},
			modify: func(e *pxperfv1.Entry) { e.StatusCode = 0 }, want: false},

		// errors_only
		{name: "errors_only skips a 200", filter: &pxperfv1.Filter{ErrorsOnly: true}, want: false},
		{name: "errors_only keeps a 404", filter: &pxperfv1.Filter{ErrorsOnly: true},
			modify: func(e *pxperfv1.Entry) { e.StatusCode = 404 }, want: true},
		{name: "errors_only skips a 399", filter: &pxperfv1.Filter{ErrorsOnly: true},
			modify: func(e *pxperfv1.Entry) { e.StatusCode = 399 }, want: false},
		{name: "errors_only keeps FAILED", filter: &pxperfv1.Filter{ErrorsOnly: true}, modify: failedEntry, want: true},
		{name: "errors_only keeps FAILED state without error", filter: &pxperfv1.Filter{ErrorsOnly: true},
			modify: func(e *pxperfv1.Entry) { e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED }, want: true},
		{name: "errors_only keeps an error kind with unspecified state", filter: &pxperfv1.Filter{ErrorsOnly: true},
			modify: func(e *pxperfv1.Entry) {
				e.State, e.StatusCode = pxperfv1.EntryState_ENTRY_STATE_UNSPECIFIED, 0
				e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT}
			}, want: true},
		{name: "errors_only skips an error without kind", filter: &pxperfv1.Filter{ErrorsOnly: true},
			modify: func(e *pxperfv1.Entry) { e.Error = &pxperfv1.EntryError{Message: "note"} }, want: false},

		// host
		{name: "host substring", filter: &pxperfv1.Filter{Host: "example"}, want: true},
		{name: "host substring case-insensitive", filter: &pxperfv1.Filter{Host: "API.Example"}, want: true},
		{name: "host substring case-insensitive entry", filter: &pxperfv1.Filter{Host: "api.example"},
			modify: func(e *pxperfv1.Entry) { e.Host = "API.EXAMPLE.COM" }, want: true},
		{name: "host substring does not match", filter: &pxperfv1.Filter{Host: "example.org"}, want: false},
		{name: "host glob", filter: &pxperfv1.Filter{Host: "*.example.com"}, want: true},
		{name: "host glob case-insensitive", filter: &pxperfv1.Filter{Host: "*.EXAMPLE.com"}, want: true},
		{name: "host glob question mark", filter: &pxperfv1.Filter{Host: "api.example.co?"}, want: true},
		{name: "host glob class", filter: &pxperfv1.Filter{Host: "[a-c]pi.example.com"}, want: true},
		{name: "host glob class case-insensitive", filter: &pxperfv1.Filter{Host: "[A-C]PI.example.com"}, want: true},
		{name: "host glob negated class", filter: &pxperfv1.Filter{Host: "[^a]pi.example.com"}, want: false},
		{name: "host glob is anchored", filter: &pxperfv1.Filter{Host: "example.*"}, want: false},
		{name: "host glob does not match", filter: &pxperfv1.Filter{Host: "*.example.org"}, want: false},
		{name: "empty entry host does not match", filter: &pxperfv1.Filter{Host: "example"},
			modify: func(e *pxperfv1.Entry) { e.Host = "" }, want: false},
		{name: "non-ASCII folds nothing", filter: &pxperfv1.Filter{Host: "BÜCHER"},
			modify: func(e *pxperfv1.Entry) { e.Host = "bücher.example" }, want: false},
		{name: "non-ASCII matches exactly", filter: &pxperfv1.Filter{Host: "BüCHER"},
			modify: func(e *pxperfv1.Entry) { e.Host = "bücher.example" }, want: true},

		// url
		{name: "url substring", filter: &pxperfv1.Filter{Url: "/V1/Users"}, want: true},
		{name: "url substring does not match", filter: &pxperfv1.Filter{Url: "/v2/"}, want: false},
		{name: "url glob star crosses slashes", filter: &pxperfv1.Filter{Url: "https://*/users?id=*"}, want: true},
		{name: "url glob star crosses many slashes", filter: &pxperfv1.Filter{Url: "https:*42"}, want: true},
		{name: "url glob question mark", filter: &pxperfv1.Filter{Url: "*id=4?"}, want: true},
		{name: "url glob question mark matches slash", filter: &pxperfv1.Filter{Url: "https:??api*"}, want: true},
		{name: "url glob is anchored", filter: &pxperfv1.Filter{Url: "*users"}, want: false},
		{name: "url glob does not match", filter: &pxperfv1.Filter{Url: "*/v2/*"}, want: false},
		{name: "url glob case-insensitive", filter: &pxperfv1.Filter{Url: "HTTPS://API.*"}, want: true},
		{name: "url glob escaped star is literal", filter: &pxperfv1.Filter{Url: `*\*`}, want: false},

		// route
		{name: "route matches", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_PROXY}, want: true},
		{name: "route does not match", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_DIRECT}, want: false},
		{name: "route without decision does not match", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_PROXY},
			modify: func(e *pxperfv1.Entry) { e.ProxyDecision = nil }, want: false},

		// min_duration
		{name: "min_duration below total", filter: &pxperfv1.Filter{MinDuration: durationpb.New(200 * time.Millisecond)}, want: true},
		{name: "min_duration equal to total", filter: &pxperfv1.Filter{MinDuration: durationpb.New(250 * time.Millisecond)}, want: true},
		{name: "min_duration above total", filter: &pxperfv1.Filter{MinDuration: durationpb.New(250*time.Millisecond + 1)}, want: false},
		{name: "min_duration without timings", filter: &pxperfv1.Filter{MinDuration: durationpb.New(time.Nanosecond)},
			modify: func(e *pxperfv1.Entry) { e.Timings = nil }, want: false},
		{name: "min_duration without total", filter: &pxperfv1.Filter{MinDuration: durationpb.New(time.Nanosecond)},
			modify: func(e *pxperfv1.Entry) { e.Timings.Total = nil }, want: false},

		// content_type
		{name: "content_type substring", filter: &pxperfv1.Filter{ContentType: "JSON"}, want: true},
		{name: "content_type does not match", filter: &pxperfv1.Filter{ContentType: "xml"}, want: false},
		{name: "content_type without body", filter: &pxperfv1.Filter{ContentType: "json"},
			modify: func(e *pxperfv1.Entry) { e.ResponseBody = nil }, want: false},

		// text
		{name: "text in url", filter: &pxperfv1.Filter{Text: "USERS?ID"}, want: true},
		{name: "text in error message", filter: &pxperfv1.Filter{Text: "connection refused"}, modify: failedEntry, want: true},
		{name: "text in request header value", filter: &pxperfv1.Filter{Text: "ABC123"}, want: true},
		{name: "text in request header name", filter: &pxperfv1.Filter{Text: "x-trace"}, want: true},
		{name: "text in response header name", filter: &pxperfv1.Filter{Text: "SERVER"}, want: true},
		{name: "text in response header value", filter: &pxperfv1.Filter{Text: "envoy"}, want: true},
		{name: "text not found", filter: &pxperfv1.Filter{Text: "nginx"}, want: false},
		{name: "text is not searched in the body", filter: &pxperfv1.Filter{Text: "secret"},
			modify: func(e *pxperfv1.Entry) { e.ResponseBody.Data = []byte("secret") }, want: false},

		// combinations
		{name: "all criteria match", filter: &pxperfv1.Filter{
			Methods:      []string{"get", "POST"},
			StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}},
			Host:         "*.example.com",
			Url:          "/v1/",
			Route:        pxperfv1.Route_ROUTE_PROXY,
			MinDuration:  durationpb.New(100 * time.Millisecond),
			ContentType:  "json",
			Text:         "envoy",
		}, want: true},
		{name: "all but one criterion match", filter: &pxperfv1.Filter{
			Methods:      []string{"GET"},
			StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}},
			Host:         "*.example.com",
			Url:          "/v1/",
			Route:        pxperfv1.Route_ROUTE_DIRECT,
			ContentType:  "json",
		}, want: false},
		{name: "errors_only and status range", filter: &pxperfv1.Filter{
			ErrorsOnly:   true,
			StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}},
		}, modify: func(e *pxperfv1.Entry) { e.StatusCode = 503 }, want: true},
		{name: "errors_only and status range, 4xx", filter: &pxperfv1.Filter{
			ErrorsOnly:   true,
			StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}},
		}, modify: func(e *pxperfv1.Entry) { e.StatusCode = 404 }, want: false},
		{name: "failed entry with text and host", filter: &pxperfv1.Filter{
			ErrorsOnly: true,
			Host:       "API",
			Text:       "refused",
		}, modify: failedEntry, want: true},

		// sizes: bytes_received, else the response body's size
		{name: "min_size below bytes_received", filter: &pxperfv1.Filter{MinSize: proto.Int64(1000)},
			modify: func(e *pxperfv1.Entry) { e.BytesReceived = 1000 }, want: true},
		{name: "min_size above bytes_received", filter: &pxperfv1.Filter{MinSize: proto.Int64(1001)},
			modify: func(e *pxperfv1.Entry) { e.BytesReceived = 1000 }, want: false},
		{name: "max_size at bytes_received", filter: &pxperfv1.Filter{MaxSize: proto.Int64(1000)},
			modify: func(e *pxperfv1.Entry) { e.BytesReceived = 1000 }, want: true},
		{name: "max_size below bytes_received", filter: &pxperfv1.Filter{MaxSize: proto.Int64(999)},
			modify: func(e *pxperfv1.Entry) { e.BytesReceived = 1000 }, want: false},
		{name: "max_size 0 keeps empty responses", filter: &pxperfv1.Filter{MaxSize: proto.Int64(0)}, want: true},
		{name: "size falls back to the body's original size", filter: &pxperfv1.Filter{MinSize: proto.Int64(5000)},
			modify: func(e *pxperfv1.Entry) { e.ResponseBody.OriginalSize = 5000 }, want: true},
		{name: "size falls back to the body's data", filter: &pxperfv1.Filter{MinSize: proto.Int64(3)},
			modify: func(e *pxperfv1.Entry) { e.ResponseBody.Data = []byte("abc") }, want: true},
		{name: "bytes_received wins over the body", filter: &pxperfv1.Filter{MaxSize: proto.Int64(10)},
			modify: func(e *pxperfv1.Entry) { e.BytesReceived, e.ResponseBody.OriginalSize = 10, 5000 }, want: true},

		// states and tunnel
		{name: "state kept", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_PENDING, pxperfv1.EntryState_ENTRY_STATE_COMPLETED}}, want: true},
		{name: "state not kept", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_FAILED}}, want: false},
		{name: "failed state", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_FAILED}}, modify: failedEntry, want: true},
		{name: "unspecified state matches no state", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_COMPLETED}},
			modify: func(e *pxperfv1.Entry) { e.State = 0 }, want: false},
		{name: "out-of-range state matches no state", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_COMPLETED}},
			modify: func(e *pxperfv1.Entry) { e.State = -2 }, want: false},
		{name: "tunnels only, plain request", filter: &pxperfv1.Filter{Tunnel: proto.Bool(true)}, want: false},
		{name: "tunnels only, tunnel", filter: &pxperfv1.Filter{Tunnel: proto.Bool(true)},
			modify: func(e *pxperfv1.Entry) { e.Tunnel = true }, want: true},
		{name: "plain only, plain request", filter: &pxperfv1.Filter{Tunnel: proto.Bool(false)}, want: true},
		{name: "plain only, tunnel", filter: &pxperfv1.Filter{Tunnel: proto.Bool(false)},
			modify: func(e *pxperfv1.Entry) { e.Tunnel = true }, want: false},

		// url_regex
		{name: "regex matches anywhere", filter: &pxperfv1.Filter{UrlRegex: `v[0-9]+/users`}, want: true},
		{name: "regex is case-insensitive", filter: &pxperfv1.Filter{UrlRegex: `^HTTPS://API\.`}, want: true},
		{name: "regex case-sensitive on request", filter: &pxperfv1.Filter{UrlRegex: `(?-i)^HTTPS://`}, want: false},
		{name: "regex anchored miss", filter: &pxperfv1.Filter{UrlRegex: `^http://`}, want: false},

		// body_text
		{name: "body text in the response body", filter: &pxperfv1.Filter{BodyText: "ORDER"},
			modify: func(e *pxperfv1.Entry) { e.ResponseBody.Data = []byte(`{"order": 1}`) }, want: true},
		{name: "body text in the request body", filter: &pxperfv1.Filter{BodyText: "order"},
			modify: func(e *pxperfv1.Entry) { e.RequestBody = &pxperfv1.Body{Data: []byte("ORDER=1")} }, want: true},
		{name: "body text not in headers", filter: &pxperfv1.Filter{BodyText: "envoy"}, want: false},
		{name: "body text, no bodies", filter: &pxperfv1.Filter{BodyText: "x"},
			modify: func(e *pxperfv1.Entry) { e.ResponseBody = nil }, want: false},

		// any_of and exclude
		{name: "any_of, second matches", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Host: "other"}, {Methods: []string{"GET"}}}}, want: true},
		{name: "any_of, none matches", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Host: "other"}, {Methods: []string{"PUT"}}}}, want: false},
		{name: "any_of ANDed with own criteria", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_DIRECT, AnyOf: []*pxperfv1.Filter{{Host: "api"}}}, want: false},
		{name: "exclude matches", filter: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Host: "other"}, {Host: "api"}}}, want: false},
		{name: "exclude does not match", filter: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Host: "other"}, {StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}}}}}, want: true},
		{name: "exclude within an alternative", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{
			{Host: "api", Exclude: []*pxperfv1.Filter{{Url: "/v1/"}}},
			{Text: "nginx"},
		}}, want: false},
		{name: "exclude needs all its criteria", filter: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Host: "api", Methods: []string{"POST"}}}}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustCompile(t, tt.filter)
			e := testEntry()
			if tt.modify != nil {
				tt.modify(e)
			}
			if tt.nilE {
				e = nil
			}
			if got := f.Match(e); got != tt.want {
				t.Errorf("Compile(%v).Match(%v) = %v, want %v", tt.filter, e, got, tt.want)
			}
		})
	}
}

// partsMatch reports whether e passes every part of p, as a caller of
// Parts tests it.
func partsMatch(p Parts, e *pxperfv1.Entry) bool {
	return (p.Host == nil || p.Host(e.GetHost())) &&
		(p.Status == nil || p.Status(e.GetStatusCode())) &&
		(p.Rest == nil || p.Rest(e)) &&
		(p.RestBodies == nil || p.RestBodies(e, nil, nil))
}

func TestParts(t *testing.T) {
	ranges := []*pxperfv1.StatusRange{{Min: 200, Max: 299}}
	tests := []struct {
		name                       string
		f                          *pxperfv1.Filter
		wantHost, wantStatus, want bool // which parts are set
	}{
		{"nil", nil, false, false, false},
		{"empty", &pxperfv1.Filter{}, false, false, false},
		{"host", &pxperfv1.Filter{Host: "API"}, true, false, false},
		{"host glob", &pxperfv1.Filter{Host: "*.example.com"}, true, false, false},
		{"status", &pxperfv1.Filter{StatusRanges: ranges}, false, true, false},
		{"host and status", &pxperfv1.Filter{Host: "api", StatusRanges: ranges}, true, true, false},
		{"errors only is rest", &pxperfv1.Filter{ErrorsOnly: true, StatusRanges: ranges}, false, true, true},
		{"all", &pxperfv1.Filter{Host: "api", StatusRanges: ranges, Methods: []string{"get"}, Text: "envoy"}, true, true, true},
		{"no host nor status", &pxperfv1.Filter{Url: "*/v1/*"}, false, false, true},
		{"any_of is rest", &pxperfv1.Filter{Host: "api", AnyOf: []*pxperfv1.Filter{{Host: "example.com"}, {StatusRanges: ranges}}}, true, false, true},
		{"exclude is rest", &pxperfv1.Filter{StatusRanges: ranges, Exclude: []*pxperfv1.Filter{{Host: "api"}}}, false, true, true},
		{"body text is rest", &pxperfv1.Filter{Host: "api", BodyText: "x"}, true, false, true},
		{"body text in exclude", &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{BodyText: "x"}}}, false, false, true},
		{"every alternative has a host and a status", &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{
			{Host: "*.example.com", StatusRanges: ranges}, {Host: "WEB", StatusRanges: []*pxperfv1.StatusRange{{Min: 404, Max: 404}}, Methods: []string{"POST"}},
		}}, true, true, true},
		{"one alternative without a host", &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Host: "api", StatusRanges: ranges}, {StatusRanges: ranges}}}, false, true, true},
	}
	// Entries that pass or fail each criterion.
	var es []*pxperfv1.Entry
	for _, host := range []string{"api.example.com", "API.EXAMPLE.COM", "web.example.org", ""} {
		for _, code := range []int32{0, 200, 404, 503} {
			for _, method := range []string{"GET", "POST"} {
				e := testEntry()
				e.Host, e.StatusCode, e.Method = host, code, method
				es = append(es, e)
			}
		}
	}
	for _, body := range []string{"", "x"} {
		e := testEntry()
		e.ResponseBody.Data = []byte(body)
		es = append(es, e)
	}
	es = append(es, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, tt.f)
			p := c.Parts()
			if p.Rest != nil && p.RestBodies != nil {
				t.Errorf("Parts() sets both Rest and RestBodies")
			}
			if got, want := p.RestBodies != nil, c.NeedsBodies(); got != want {
				t.Errorf("Parts().RestBodies set = %v, NeedsBodies = %v", got, want)
			}
			if got := [3]bool{p.Host != nil, p.Status != nil, p.Rest != nil || p.RestBodies != nil}; got != [3]bool{tt.wantHost, tt.wantStatus, tt.want} {
				t.Errorf("Parts() sets host, status, rest = %v, want %v", got, [3]bool{tt.wantHost, tt.wantStatus, tt.want})
			}
			for _, e := range es {
				if got, want := partsMatch(p, e), c.Match(e); got != want {
					t.Errorf("parts on %v = %v, Match = %v", e, got, want)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name       string
		filter     *pxperfv1.Filter
		wantField  string
		wantReason string // a substring of Reason
	}{
		{name: "empty method", filter: &pxperfv1.Filter{Methods: []string{""}},
			wantField: "methods[0]", wantReason: "must be an HTTP method"},
		{name: "method with space", filter: &pxperfv1.Filter{Methods: []string{"GET", "G ET"}},
			wantField: "methods[1]", wantReason: "letters, digits, '-' or '_'"},
		{name: "method starting with a digit", filter: &pxperfv1.Filter{Methods: []string{"1GET"}},
			wantField: "methods[0]", wantReason: "a letter followed by"},
		{name: "method too long", filter: &pxperfv1.Filter{Methods: []string{strings.Repeat("A", 33)}},
			wantField: "methods[0]", wantReason: "at most 31"},
		{name: "too many methods", filter: &pxperfv1.Filter{Methods: strings.Fields(strings.Repeat("GET ", 17))},
			wantField: "methods", wantReason: "at most 16 methods"},
		{name: "nil status range", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{nil}},
			wantField: "status_ranges[0]", wantReason: "must be set"},
		{name: "status min too low", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}, {Min: 99, Max: 200}}},
			wantField: "status_ranges[1].min", wantReason: "between 100 and 599, got 99"},
		{name: "status max too high", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 600}}},
			wantField: "status_ranges[0].max", wantReason: "between 100 and 599, got 600"},
		{name: "status range unset", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{}}},
			wantField: "status_ranges[0].min", wantReason: "got 0"},
		{name: "status min above max", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}, {Min: 500, Max: 400}}},
			wantField: "status_ranges[1]", wantReason: "min (500) must not be greater than max (400)"},
		{name: "too many status ranges", filter: &pxperfv1.Filter{StatusRanges: make([]*pxperfv1.StatusRange, 17)},
			wantField: "status_ranges", wantReason: "at most 16 ranges"},
		{name: "host bad glob", filter: &pxperfv1.Filter{Host: "[a-"},
			wantField: "host", wantReason: "bad glob: syntax error in pattern"},
		{name: "negative min_size", filter: &pxperfv1.Filter{MinSize: proto.Int64(-1)},
			wantField: "min_size", wantReason: "must not be negative"},
		{name: "negative max_size", filter: &pxperfv1.Filter{MaxSize: proto.Int64(-1)},
			wantField: "max_size", wantReason: "must not be negative"},
		{name: "min_size above max_size", filter: &pxperfv1.Filter{MinSize: proto.Int64(10), MaxSize: proto.Int64(9)},
			wantField: "min_size", wantReason: "greater than max_size (9)"},
		{name: "unspecified state", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_FAILED, 0}},
			wantField: "states[1]", wantReason: "ENTRY_STATE_PENDING"},
		{name: "too many states", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{1, 2, 3, 1}},
			wantField: "states", wantReason: "at most 3 states"},
		{name: "bad regex", filter: &pxperfv1.Filter{UrlRegex: "a(b"},
			wantField: "url_regex", wantReason: "missing closing ): `a(b`"},
		{name: "regex too long", filter: &pxperfv1.Filter{UrlRegex: strings.Repeat("a", 513)},
			wantField: "url_regex", wantReason: "at most 512 bytes"},
		{name: "regex too big once compiled", filter: &pxperfv1.Filter{UrlRegex: "(abc){700}"},
			wantField: "url_regex", wantReason: "instructions, more than 2000"},
		{name: "body text too long", filter: &pxperfv1.Filter{BodyText: strings.Repeat("a", 257)},
			wantField: "body_text", wantReason: "at most 256 bytes"},
		{name: "error in any_of", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{}, {Host: "[a-"}}},
			wantField: "any_of[1].host", wantReason: "bad glob"},
		{name: "error in exclude in any_of", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Exclude: []*pxperfv1.Filter{{Url: "x"}, {UrlRegex: "("}}}}},
			wantField: "any_of[0].exclude[1].url_regex", wantReason: "missing closing )"},
		{name: "any_of in any_of", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{AnyOf: []*pxperfv1.Filter{{Host: "a"}}}}},
			wantField: "any_of[0].any_of", wantReason: "may not hold any_of"},
		{name: "exclude in exclude", filter: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Exclude: []*pxperfv1.Filter{{Host: "a"}}}}},
			wantField: "exclude[0].exclude", wantReason: "may not hold exclude"},
		{name: "any_of in exclude", filter: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{AnyOf: []*pxperfv1.Filter{{Host: "a"}}}}},
			wantField: "exclude[0].any_of", wantReason: "may not hold any_of"},
		{name: "empty exclude", filter: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Host: "a"}, {}}},
			wantField: "exclude[1]", wantReason: "would exclude every entry"},
		{name: "too many alternatives", filter: &pxperfv1.Filter{AnyOf: make([]*pxperfv1.Filter, 17)},
			wantField: "any_of", wantReason: "at most 16 filters"},
		{name: "too many exclusions", filter: &pxperfv1.Filter{Exclude: make([]*pxperfv1.Filter, 17)},
			wantField: "exclude", wantReason: "at most 16 filters"},
		{name: "query in any_of", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Query: "host:a"}}},
			wantField: "any_of[0].query", wantReason: "only the outermost filter"},
		{name: "query syntax error", filter: &pxperfv1.Filter{Query: "status:700"},
			wantField: "query", wantReason: "status 700 is outside 100..599"},
		{name: "query too long", filter: &pxperfv1.Filter{Query: strings.Repeat("a", 2049)},
			wantField: "query", wantReason: "at most 2048 bytes"},
		{name: "query and field set the same criterion", filter: &pxperfv1.Filter{Host: "a", Query: "method:GET host:b"},
			wantField: "query", wantReason: "the query sets host, which the filter sets too"},
		{name: "query and field both with alternatives", filter: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Host: "a"}}, Query: "host:b OR host:c"},
			wantField: "query", wantReason: "the query sets any_of"},
		{name: "query and field exclusions too many", filter: &pxperfv1.Filter{Exclude: make([]*pxperfv1.Filter, 16), Query: "-host:b"},
			wantField: "query", wantReason: "make 17, more than 16"},
		{name: "host empty class", filter: &pxperfv1.Filter{Host: "*.[]"},
			wantField: "host", wantReason: "bad glob"},
		{name: "host trailing backslash", filter: &pxperfv1.Filter{Host: `*.example\`},
			wantField: "host", wantReason: "bad glob"},
		{name: "host too long", filter: &pxperfv1.Filter{Host: strings.Repeat("h", 256)},
			wantField: "host", wantReason: "at most 255 bytes, got 256"},
		{name: "url bad glob", filter: &pxperfv1.Filter{Url: "https://*/[^"},
			wantField: "url", wantReason: "bad glob: syntax error in pattern"},
		{name: "url too long", filter: &pxperfv1.Filter{Url: strings.Repeat("u", 1025)},
			wantField: "url", wantReason: "at most 1024 bytes"},
		{name: "unknown route", filter: &pxperfv1.Filter{Route: 9},
			wantField: "route", wantReason: "unknown value 9"},
		{name: "negative min_duration", filter: &pxperfv1.Filter{MinDuration: durationpb.New(-time.Second)},
			wantField: "min_duration", wantReason: "must not be negative"},
		{name: "negative nanos min_duration", filter: &pxperfv1.Filter{MinDuration: &durationpb.Duration{Nanos: -1}},
			wantField: "min_duration", wantReason: "must not be negative"},
		{name: "invalid min_duration nanos", filter: &pxperfv1.Filter{MinDuration: &durationpb.Duration{Seconds: 1, Nanos: 2e9}},
			wantField: "min_duration", wantReason: "out-of-range nanos"},
		{name: "invalid min_duration signs", filter: &pxperfv1.Filter{MinDuration: &durationpb.Duration{Seconds: 1, Nanos: -1}},
			wantField: "min_duration", wantReason: "same sign"},
		{name: "content_type too long", filter: &pxperfv1.Filter{ContentType: strings.Repeat("c", 257)},
			wantField: "content_type", wantReason: "at most 256 bytes"},
		{name: "text too long", filter: &pxperfv1.Filter{Text: strings.Repeat("t", 257)},
			wantField: "text", wantReason: "at most 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.filter)
			if err == nil {
				t.Fatalf("Compile(%v) = %v, nil; want an error for field %q", tt.filter, f, tt.wantField)
			}
			if f != nil {
				t.Errorf("Compile(%v) returned a non-nil Filter with error %v", tt.filter, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Compile(%v) error %v does not wrap ErrInvalid", tt.filter, err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Compile(%v) error %v (%T) is not a *FieldError", tt.filter, err, err)
			}
			if fe.Field != tt.wantField {
				t.Errorf("Compile(%v) error field = %q, want %q", tt.filter, fe.Field, tt.wantField)
			}
			if !strings.Contains(fe.Reason, tt.wantReason) {
				t.Errorf("Compile(%v) error reason = %q, want it to contain %q", tt.filter, fe.Reason, tt.wantReason)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.wantField) || !strings.Contains(msg, fe.Reason) {
				t.Errorf("Compile(%v) error message = %q, want it to name field %q and reason %q", tt.filter, msg, tt.wantField, fe.Reason)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	err := error(&FieldError{Field: "host", Reason: "bad glob: syntax error in pattern"})
	if got, want := err.Error(), "invalid filter: host: bad glob: syntax error in pattern"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", err)
	}
	if _, ok := errors.AsType[*SyntaxError](err); ok {
		t.Errorf("errors.AsType[*SyntaxError](%v) found one in a FieldError without Syntax", err)
	}
	se := &SyntaxError{Input: "host:[", Token: "host:[", Reason: "bad glob"}
	err = &FieldError{Field: "query", Reason: se.Error(), Syntax: se}
	if got, ok := errors.AsType[*SyntaxError](err); !ok || got != se || !errors.Is(err, ErrInvalid) {
		t.Errorf("FieldError with Syntax: AsType = %v, %v; Is(ErrInvalid) = %v; want the SyntaxError and true", got, ok, errors.Is(err, ErrInvalid))
	}
	wrapped := fmt.Errorf("subscribe: %w", err)
	if !errors.Is(wrapped, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", wrapped)
	}
}

func TestCompileEmpty(t *testing.T) {
	tests := []struct {
		name   string
		filter *pxperfv1.Filter
		want   bool
	}{
		{name: "nil", filter: nil, want: true},
		{name: "zero", filter: &pxperfv1.Filter{}, want: true},
		{name: "empty lists", filter: &pxperfv1.Filter{Methods: []string{}, StatusRanges: []*pxperfv1.StatusRange{}}, want: true},
		{name: "zero min_duration", filter: &pxperfv1.Filter{MinDuration: &durationpb.Duration{}}, want: true},
		{name: "unspecified route", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_UNSPECIFIED}, want: true},
		{name: "methods", filter: &pxperfv1.Filter{Methods: []string{"GET"}}, want: false},
		{name: "status_ranges", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 100, Max: 599}}}, want: false},
		{name: "errors_only", filter: &pxperfv1.Filter{ErrorsOnly: true}, want: false},
		{name: "host", filter: &pxperfv1.Filter{Host: "x"}, want: false},
		{name: "url", filter: &pxperfv1.Filter{Url: "*"}, want: false},
		{name: "route", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_DIRECT}, want: false},
		{name: "min_duration", filter: &pxperfv1.Filter{MinDuration: durationpb.New(time.Nanosecond)}, want: false},
		{name: "content_type", filter: &pxperfv1.Filter{ContentType: "json"}, want: false},
		{name: "text", filter: &pxperfv1.Filter{Text: "x"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustCompile(t, tt.filter).Empty(); got != tt.want {
				t.Errorf("Compile(%v).Empty() = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestNilFilter(t *testing.T) {
	var f *Filter
	if !f.Empty() {
		t.Errorf("(*Filter)(nil).Empty() = false, want true")
	}
	if !f.Match(testEntry()) {
		t.Errorf("(*Filter)(nil).Match(entry) = false, want true")
	}
	if !f.Match(nil) {
		t.Errorf("(*Filter)(nil).Match(nil) = false, want true")
	}
}

func TestCompileCopies(t *testing.T) {
	pf := &pxperfv1.Filter{
		Methods:      []string{"POST"},
		StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}},
		Host:         "other",
	}
	f := mustCompile(t, pf)
	pf.Methods[0] = "GET"
	pf.StatusRanges[0].Min = 200
	pf.Host = "example"
	if f.Match(testEntry()) {
		t.Errorf("Match after changing the compiled proto = true, want false: Compile must copy")
	}
}

// An entry's size is the bytes received, or the body's size when the
// producer did not count them.
func TestSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    *pxperfv1.Entry
		want int64
	}{
		{"bytes received", &pxperfv1.Entry{BytesReceived: 2048, ResponseBody: &pxperfv1.Body{OriginalSize: 10}}, 2048},
		{"a body, as the store keeps it", &pxperfv1.Entry{ResponseBody: &pxperfv1.Body{OriginalSize: 4096}}, 4096},
		{"a body with its data", &pxperfv1.Entry{ResponseBody: &pxperfv1.Body{Data: []byte("hello")}}, 5},
		{"neither", &pxperfv1.Entry{}, 0},
		{"nil", nil, 0},
	} {
		if got := Size(tc.e); got != tc.want {
			t.Errorf("%s: %d; want %d", tc.name, got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name string
		in   *pxperfv1.Filter
		want *pxperfv1.Filter
	}{
		{"nil", nil, nil},
		{"no query", &pxperfv1.Filter{Host: "a"}, &pxperfv1.Filter{Host: "a"}},
		{"query only", &pxperfv1.Filter{Query: "host:a -url:/x OR status:5xx"}, &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{
			{Host: "a", Exclude: []*pxperfv1.Filter{{Url: "/x"}}},
			{StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}}},
		}}},
		{"fields and query combine", &pxperfv1.Filter{
			Methods: []string{"GET"}, Exclude: []*pxperfv1.Filter{{Host: "cdn"}}, Query: "host:api -status:304",
		}, &pxperfv1.Filter{
			Methods: []string{"GET"}, Host: "api",
			Exclude: []*pxperfv1.Filter{{Host: "cdn"}, {StatusRanges: []*pxperfv1.StatusRange{{Min: 304, Max: 304}}}},
		}},
		{"query alternatives beside fields", &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_DIRECT, Query: "host:a OR host:b"}, &pxperfv1.Filter{
			Route: pxperfv1.Route_ROUTE_DIRECT, AnyOf: []*pxperfv1.Filter{{Host: "a"}, {Host: "b"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *pxperfv1.Filter
			if tt.in != nil {
				before = proto.CloneOf(tt.in)
			}
			got, err := Resolve(tt.in)
			if err != nil {
				t.Fatalf("Resolve(%v) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("Resolve(%v) mismatch (-got +want):\n%s", tt.in, diff)
			}
			if tt.in != nil && !proto.Equal(tt.in, before) {
				t.Errorf("Resolve changed its argument: %v, was %v", tt.in, before)
			}
		})
	}
}

// A query syntax error keeps its position for the service's ErrorInfo.
func TestCompileQuerySyntaxError(t *testing.T) {
	_, err := Compile(&pxperfv1.Filter{Query: "method:GET status:>=700"})
	se, ok := errors.AsType[*SyntaxError](err)
	if !ok {
		t.Fatalf("Compile error %v holds no *SyntaxError", err)
	}
	if se.Pos != 11 || se.Token != "status:>=700" {
		t.Errorf("SyntaxError at %d, token %q; want 11, status:>=700", se.Pos, se.Token)
	}
}

// TestMatchAllocs checks that Match does not allocate for the common
// criteria, matching or not.
func TestMatchAllocs(t *testing.T) {
	tests := []struct {
		name   string
		filter *pxperfv1.Filter
	}{
		{name: "empty", filter: nil},
		{name: "methods", filter: &pxperfv1.Filter{Methods: []string{"post", "get"}}},
		{name: "status_ranges", filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 400, Max: 599}}}},
		{name: "errors_only", filter: &pxperfv1.Filter{ErrorsOnly: true}},
		{name: "host substring", filter: &pxperfv1.Filter{Host: "Example"}},
		{name: "host substring miss", filter: &pxperfv1.Filter{Host: "example.org"}},
		{name: "host glob", filter: &pxperfv1.Filter{Host: "*.EXAMPLE.[a-z]om"}},
		{name: "url glob", filter: &pxperfv1.Filter{Url: "https://*/v1/*id=4?"}},
		{name: "url glob miss", filter: &pxperfv1.Filter{Url: "https://*/v2/*"}},
		{name: "route", filter: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_DIRECT}},
		{name: "min_duration", filter: &pxperfv1.Filter{MinDuration: durationpb.New(time.Millisecond)}},
		{name: "content_type", filter: &pxperfv1.Filter{ContentType: "JSON"}},
		{name: "text", filter: &pxperfv1.Filter{Text: "envoy"}},
		{name: "text miss", filter: &pxperfv1.Filter{Text: "nginx"}},
		{name: "sizes", filter: &pxperfv1.Filter{MinSize: proto.Int64(1), MaxSize: proto.Int64(1 << 20)}},
		{name: "states", filter: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_COMPLETED}}},
		{name: "tunnel", filter: &pxperfv1.Filter{Tunnel: proto.Bool(false)}},
		{name: "body text", filter: &pxperfv1.Filter{BodyText: "users"}},
		{name: "url_regex", filter: &pxperfv1.Filter{UrlRegex: `v[0-9]+/users\?id=4[0-9]$`}},
		{name: "url_regex miss", filter: &pxperfv1.Filter{UrlRegex: `^http://`}},
		{name: "any_of and exclude", filter: &pxperfv1.Filter{
			AnyOf:   []*pxperfv1.Filter{{Host: "nope"}, {Host: "*.example.com", Exclude: []*pxperfv1.Filter{{Text: "nginx"}}}},
			Exclude: []*pxperfv1.Filter{{StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}}}},
		}},
		{name: "all", filter: &pxperfv1.Filter{
			Methods:      []string{"GET"},
			StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}},
			Host:         "*.example.com",
			Url:          "/v1/",
			Route:        pxperfv1.Route_ROUTE_PROXY,
			MinDuration:  durationpb.New(100 * time.Millisecond),
			ContentType:  "json",
			Text:         "envoy",
		}},
	}
	e := testEntry()
	e.ResponseBody.Data = []byte(`{"users": []}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if raceEnabled && tt.filter.GetUrlRegex() != "" {
				t.Skip("under -race, sync.Pool drops regexp's matchers at random: a match allocates now and then")
			}
			f := mustCompile(t, tt.filter)
			if got := testing.AllocsPerRun(100, func() { f.Match(e) }); got != 0 {
				t.Errorf("Match allocates %v times per call, want 0", got)
			}
		})
	}
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		s, sub string // sub as given; the test lowers it as Compile does
		want   bool
	}{
		{s: "", sub: "", want: true},
		{s: "abc", sub: "", want: true},
		{s: "", sub: "a", want: false},
		{s: "api.Example.COM", sub: "example.com", want: true},
		{s: "api.Example.COM", sub: "EXAMPLE", want: true},
		{s: "api.example.com", sub: "api.example.com", want: true},
		{s: "api.example.com", sub: "api.example.com.", want: false},
		{s: "aaab", sub: "aab", want: true},
		{s: "aaa", sub: "aab", want: false},
		{s: "x-[1]", sub: "-[1]", want: true},
		{s: "ÄPFEL", sub: "äpfel", want: false}, // non-ASCII compares exactly
		{s: "Äpfel", sub: "ÄPFEL", want: true},
		{s: "\xff\xfeA", sub: "\xfea", want: true},
		{s: "@[`{", sub: "`", want: true}, // neighbours of the letter ranges do not fold
		{s: "@[`{", sub: "@@", want: false},
		{s: "[", sub: "{", want: false},
		// Many false starts: containsFold switches to rabinKarpFold.
		{s: strings.Repeat("Ab", 1000) + "AbC", sub: "abababc", want: true},
		{s: strings.Repeat("Ab", 1000) + "AbD", sub: "abababc", want: false},
		{s: strings.Repeat("a", 5000), sub: strings.Repeat("A", 255) + "b", want: false},
		{s: strings.Repeat("a", 5000) + "B", sub: strings.Repeat("A", 255) + "b", want: true},
		{s: "B" + strings.Repeat("a", 5000), sub: "b" + strings.Repeat("A", 255), want: true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%.20s/%.20s", tt.s, tt.sub)
		t.Run(name, func(t *testing.T) {
			sub := lowerASCII(tt.sub)
			if got := containsFold(tt.s, sub); got != tt.want {
				t.Errorf("containsFold(%q, %q) = %v, want %v", tt.s, sub, got, tt.want)
			}
			want := strings.Index(lowerASCII(tt.s), sub)
			if got := indexFold(tt.s, sub); got != want {
				t.Errorf("indexFold(%q, %q) = %d, want %d", tt.s, sub, got, want)
			}
			if got := rabinKarpFold(tt.s, sub); got != want {
				t.Errorf("rabinKarpFold(%q, %q) = %d, want %d", tt.s, sub, got, want)
			}
		})
	}
}

func TestASCIICase(t *testing.T) {
	tests := []struct {
		in, lower, upper string
	}{
		{in: "", lower: "", upper: ""},
		{in: "Get-Post_1", lower: "get-post_1", upper: "GET-POST_1"},
		{in: "ÄpFel", lower: "Äpfel", upper: "ÄPFEL"},
		{in: "a\xffB", lower: "a\xffb", upper: "A\xffB"}, // invalid UTF-8 kept
		{in: "@[`{", lower: "@[`{", upper: "@[`{"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := lowerASCII(tt.in); got != tt.lower {
				t.Errorf("lowerASCII(%q) = %q, want %q", tt.in, got, tt.lower)
			}
			if got := upperASCII(tt.in); got != tt.upper {
				t.Errorf("upperASCII(%q) = %q, want %q", tt.in, got, tt.upper)
			}
			if !equalFoldASCII(tt.lower, tt.upper) {
				t.Errorf("equalFoldASCII(%q, %q) = false, want true", tt.lower, tt.upper)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{pattern: "*", name: "", want: true},
		{pattern: "*", name: "a/b/c", want: true},
		{pattern: "a*", name: "a/b", want: true},
		{pattern: "*c", name: "a/b/c", want: true},
		{pattern: "*/b/*", name: "a/b/c", want: true},
		{pattern: "*/b/*", name: "a/c/c", want: false},
		{pattern: "a*b*c", name: "a/x/b/y/c", want: true},
		{pattern: "a*b*c", name: "abcbc", want: true},
		{pattern: "a*b*c", name: "abcbd", want: false},
		{pattern: "*ab", name: "aab", want: true},
		{pattern: "*x", name: "xxx", want: true},
		{pattern: "?", name: "/", want: true},
		{pattern: "?", name: "é", want: true}, // one character, two bytes
		{pattern: "??", name: "é", want: false},
		{pattern: "a?c", name: "abc", want: true},
		{pattern: "a?c", name: "ac", want: false},
		{pattern: "abc", name: "ABC", want: true},
		{pattern: "ABC", name: "abc", want: true},
		{pattern: "abc", name: "abcd", want: false}, // anchored at the end
		{pattern: "bc", name: "abc", want: false},   // anchored at the start
		{pattern: "[a-c]x", name: "Bx", want: true},
		{pattern: "[A-C]x", name: "bx", want: true},
		{pattern: "[^a-c]x", name: "Bx", want: false},
		{pattern: "[^a-c]x", name: "dx", want: true},
		{pattern: "[Z-a]", name: "_", want: true}, // a range across the letters keeps its meaning
		{pattern: "[Z-a]", name: "z", want: true}, // 'Z' folds
		{pattern: "[Z-a]", name: "b", want: false},
		{pattern: "[é]", name: "é", want: true},
		{pattern: "[é]", name: "É", want: false}, // non-ASCII does not fold
		{pattern: `[\]]`, name: "]", want: true},
		{pattern: `[\-]`, name: "-", want: true},
		{pattern: `\*`, name: "*", want: true},
		{pattern: `\*`, name: "x", want: false},
		{pattern: `a\?`, name: "a?", want: true},
		{pattern: "*[\uFFFD]", name: "é", want: false}, // a chunk never starts inside a character
		{pattern: "*.example.com", name: "api.example.com", want: true},
		{pattern: "*.example.com", name: "example.com", want: false},
		// Literal chunks between stars are found with indexFold.
		{pattern: "*a*b*c*", name: "xAyBzC", want: true},
		{pattern: "*a*b*c*", name: "xAyCzB", want: false},
		{pattern: "*ab*", name: "aab", want: true},
		{pattern: `*\[x*`, name: "a[X]", want: true},
		{pattern: "*é*", name: "caféine", want: true},
		{pattern: "*\x82*", name: "€", want: false}, // not the start of a character
		{pattern: "*\x82*", name: "\x82", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"/"+tt.name, func(t *testing.T) {
			if _, err := path.Match(tt.pattern, ""); err != nil {
				t.Fatalf("bad test pattern %q: %v", tt.pattern, err)
			}
			got, err := compileGlob(tt.pattern).match(tt.name)
			if err != nil {
				t.Fatalf("compileGlob(%q).match(%q) error: %v", tt.pattern, tt.name, err)
			}
			if got != tt.want {
				t.Errorf("compileGlob(%q).match(%q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
		})
	}
}

// benchEntries returns n entries to services svc-000 .. svc-(n-1).
func benchEntries(n int) []*pxperfv1.Entry {
	entries := make([]*pxperfv1.Entry, n)
	for i := range entries {
		host := fmt.Sprintf("svc-%03d.internal.example.com", i)
		e := testEntry()
		e.Host = host
		e.Url = fmt.Sprintf("https://%s/api/v1/users/%d", host, i)
		e.StatusCode = int32(200 + i%5*100)
		entries[i] = e
	}
	return entries
}

func BenchmarkMatch(b *testing.B) {
	entries := benchEntries(100)
	benchmarks := []struct {
		name    string
		filter  *pxperfv1.Filter
		matches int // out of the 100 entries
	}{
		{name: "empty", filter: nil, matches: 100},
		{name: "host_substring_1pct", filter: &pxperfv1.Filter{Host: "SVC-042."}, matches: 1},
		{name: "host_glob", filter: &pxperfv1.Filter{Host: "svc-04?.*.example.com"}, matches: 10},
		{name: "url_glob", filter: &pxperfv1.Filter{Url: "https://*.example.com/api/v?/users/4?"}, matches: 10},
		{name: "all_criteria", filter: &pxperfv1.Filter{
			Methods:      []string{"GET"},
			StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}},
			Host:         "example.com",
			Url:          "*/users/*",
			Route:        pxperfv1.Route_ROUTE_PROXY,
			MinDuration:  durationpb.New(100 * time.Millisecond),
			ContentType:  "json",
			Text:         "envoy",
		}, matches: 20},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			f := mustCompile(b, bm.filter)
			n := 0
			for _, e := range entries {
				if f.Match(e) {
					n++
				}
			}
			if n != bm.matches {
				b.Fatalf("filter %v matches %d of %d entries, want %d", bm.filter, n, len(entries), bm.matches)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f.Match(entries[i%len(entries)])
				i++
			}
		})
	}
}

// BenchmarkMatchWorstCase measures criteria built to be slow, on an entry
// at the proto's size limits: a 8192-byte url and 512 headers of 16384
// bytes, all "a".
func BenchmarkMatchWorstCase(b *testing.B) {
	value := strings.Repeat("a", 16384)
	headers := make([]*pxperfv1.Header, 256)
	for i := range headers {
		headers[i] = &pxperfv1.Header{Name: "a", Value: value}
	}
	e := &pxperfv1.Entry{Url: strings.Repeat("a", 8192), RequestHeaders: headers, ResponseHeaders: headers}
	benchmarks := []struct {
		name   string
		filter *pxperfv1.Filter
	}{
		{name: "text", filter: &pxperfv1.Filter{Text: strings.Repeat("a", 255) + "b"}},
		{name: "url_substring", filter: &pxperfv1.Filter{Url: strings.Repeat("a", 1023) + "b"}},
		{name: "url_glob", filter: &pxperfv1.Filter{Url: "*" + strings.Repeat("a", 1021) + "b*"}},
		{name: "url_glob_question_mark", filter: &pxperfv1.Filter{Url: "*" + strings.Repeat("a", 1020) + "?b*"}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			f := mustCompile(b, bm.filter)
			if f.Match(e) {
				b.Fatalf("filter %v matches the worst-case entry", bm.filter)
			}
			b.ReportAllocs()
			for b.Loop() {
				f.Match(e)
			}
		})
	}
}

// isMethodToken, and maxMethodLen with it, agree with the pattern the
// contract puts on Filter.methods.
func TestMethodLenMatchesPattern(t *testing.T) {
	pattern := contract.Rules(&pxperfv1.Filter{}, "methods").GetRepeated().GetItems().GetString().GetPattern()
	re := regexp.MustCompile(pattern)
	for _, m := range []string{
		"", "G", "GET", "get", "VERSION-CONTROL", "A_1", "1GET", "-A", "GE T", "GÉT",
		strings.Repeat("A", maxMethodLen-1), strings.Repeat("A", maxMethodLen), strings.Repeat("A", maxMethodLen+1),
	} {
		if got, want := isMethodToken(m), re.MatchString(m); got != want {
			t.Errorf("isMethodToken(%q) = %v, the contract's pattern %q says %v", m, got, pattern, want)
		}
	}
}
