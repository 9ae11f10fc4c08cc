package filter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParse(t *testing.T) {
	rng := func(lo, hi int32) *pxperfv1.StatusRange { return &pxperfv1.StatusRange{Min: lo, Max: hi} }
	tests := []struct {
		in   string
		want *pxperfv1.Filter
	}{
		{in: "", want: &pxperfv1.Filter{}},
		{in: " \t\n ", want: &pxperfv1.Filter{}},
		{in: "method:GET", want: &pxperfv1.Filter{Methods: []string{"GET"}}},
		{in: "method:get,Post method:PUT", want: &pxperfv1.Filter{Methods: []string{"GET", "POST", "PUT"}}},
		{in: "METHOD:GET", want: &pxperfv1.Filter{Methods: []string{"GET"}}},
		{in: "status:404", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(404, 404)}}},
		{in: "status:=404", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(404, 404)}}},
		{in: "status:>=400", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(400, 599)}}},
		{in: "status:>400", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(401, 599)}}},
		{in: "status:<=399", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(100, 399)}}},
		{in: "status:<400", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(100, 399)}}},
		{in: "status:4xx", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(400, 499)}}},
		{in: "status:50X", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(500, 509)}}},
		{in: "status:1xx", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(100, 199)}}},
		{in: "status:500-599", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(500, 599)}}},
		{in: "status:404,5xx status-code:401", want: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{rng(404, 404), rng(500, 599), rng(401, 401)}}},
		{in: "host:*.example.com", want: &pxperfv1.Filter{Host: "*.example.com"}},
		{in: "domain:example", want: &pxperfv1.Filter{Host: "example"}},
		{in: `host:"a b"`, want: &pxperfv1.Filter{Host: "a b"}},
		{in: "url:https://example.com/api/*", want: &pxperfv1.Filter{Url: "https://example.com/api/*"}},
		{in: "is:error", want: &pxperfv1.Filter{ErrorsOnly: true}},
		{in: "is:Errors", want: &pxperfv1.Filter{ErrorsOnly: true}},
		{in: "proxy:direct", want: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_DIRECT}},
		{in: "proxy:UPSTREAM", want: &pxperfv1.Filter{Route: pxperfv1.Route_ROUTE_PROXY}},
		{in: "slower-than:200ms", want: &pxperfv1.Filter{MinDuration: durationpb.New(200 * time.Millisecond)}},
		{in: "slower-than:1.5s", want: &pxperfv1.Filter{MinDuration: durationpb.New(1500 * time.Millisecond)}},
		{in: "slower-than:250", want: &pxperfv1.Filter{MinDuration: durationpb.New(250 * time.Millisecond)}},
		{in: "mime:application/json", want: &pxperfv1.Filter{ContentType: "application/json"}},
		{in: "mime-type:json", want: &pxperfv1.Filter{ContentType: "json"}},
		{in: "content-type:html", want: &pxperfv1.Filter{ContentType: "html"}},
		{in: "timeout", want: &pxperfv1.Filter{Text: "timeout"}},
		{in: `"connection refused"`, want: &pxperfv1.Filter{Text: "connection refused"}},
		{in: `"say \"hi\" \\o/"`, want: &pxperfv1.Filter{Text: `say "hi" \o/`}},
		{in: `"status:500"`, want: &pxperfv1.Filter{Text: "status:500"}},
		{in: "https://example.com/", want: &pxperfv1.Filter{Text: "https://example.com/"}},
		{in: "example.com:8080", want: &pxperfv1.Filter{Text: "example.com:8080"}},
		{in: "-", want: &pxperfv1.Filter{Text: "-"}},
		{in: `"-webkit"`, want: &pxperfv1.Filter{Text: "-webkit"}},
		{in: "-host:cdn.example.com", want: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Host: "cdn.example.com"}}}},
		{in: "status:5xx -status:503 -status:504", want: &pxperfv1.Filter{
			StatusRanges: []*pxperfv1.StatusRange{rng(500, 599)},
			Exclude:      []*pxperfv1.Filter{{StatusRanges: []*pxperfv1.StatusRange{rng(503, 503)}}, {StatusRanges: []*pxperfv1.StatusRange{rng(504, 504)}}},
		}},
		{in: `-"health check" -is:tunnel`, want: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{Text: "health check"}, {Tunnel: proto.Bool(true)}}}},
		{in: "host:a -host:b", want: &pxperfv1.Filter{Host: "a", Exclude: []*pxperfv1.Filter{{Host: "b"}}}},
		{in: "larger-than:10k", want: &pxperfv1.Filter{MinSize: proto.Int64(10241)}},
		{in: "larger-than:0", want: &pxperfv1.Filter{MinSize: proto.Int64(1)}},
		{in: "larger-than:1.5M", want: &pxperfv1.Filter{MinSize: proto.Int64(1572865)}},
		{in: "larger-than:2KiB smaller-than:1gb", want: &pxperfv1.Filter{MinSize: proto.Int64(2049), MaxSize: proto.Int64(1<<30 - 1)}},
		{in: "smaller-than:1", want: &pxperfv1.Filter{MaxSize: proto.Int64(0)}},
		{in: "smaller-than:100b", want: &pxperfv1.Filter{MaxSize: proto.Int64(99)}},
		{in: "is:pending", want: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_PENDING}}},
		{in: "is:Completed,FAILED", want: &pxperfv1.Filter{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_COMPLETED, pxperfv1.EntryState_ENTRY_STATE_FAILED}}},
		{in: "is:tunnel is:failed is:error", want: &pxperfv1.Filter{Tunnel: proto.Bool(true), States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_FAILED}, ErrorsOnly: true}},
		{in: `regex:^https://[a-z]+\.example\.com/`, want: &pxperfv1.Filter{UrlRegex: `^https://[a-z]+\.example\.com/`}},
		{in: `url-regex:v[0-9]+`, want: &pxperfv1.Filter{UrlRegex: `v[0-9]+`}},
		{in: `/api\/v[12]/`, want: &pxperfv1.Filter{UrlRegex: `api\/v[12]`}},
		{in: `-/\.png$/`, want: &pxperfv1.Filter{Exclude: []*pxperfv1.Filter{{UrlRegex: `\.png$`}}}},
		{in: `"/api/"`, want: &pxperfv1.Filter{Text: "/api/"}},
		{in: "//", want: &pxperfv1.Filter{Text: "//"}},
		{in: "body:order_id", want: &pxperfv1.Filter{BodyText: "order_id"}},
		{in: `body:"\"order_id\""`, want: &pxperfv1.Filter{BodyText: `"order_id"`}},
		{in: "host:a.com OR status:5xx", want: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{
			{Host: "a.com"},
			{StatusRanges: []*pxperfv1.StatusRange{rng(500, 599)}},
		}}},
		{in: "method:POST host:a -url:/health OR is:failed OR or", want: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{
			{Methods: []string{"POST"}, Host: "a", Exclude: []*pxperfv1.Filter{{Url: "/health"}}},
			{States: []pxperfv1.EntryState{pxperfv1.EntryState_ENTRY_STATE_FAILED}},
			{Text: "or"},
		}}},
		{in: `host:a "OR" `, want: &pxperfv1.Filter{Host: "a", Text: "OR"}},
		{in: "host:a OR host:b", want: &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{Host: "a"}, {Host: "b"}}}},
		{
			in: `status:>=400 method:POST host:*.example.com slower-than:1s mime:json proxy:upstream is:error url:/v1/ "bad gateway"`,
			want: &pxperfv1.Filter{
				StatusRanges: []*pxperfv1.StatusRange{rng(400, 599)},
				Methods:      []string{"POST"},
				Host:         "*.example.com",
				MinDuration:  durationpb.New(time.Second),
				ContentType:  "json",
				Route:        pxperfv1.Route_ROUTE_PROXY,
				ErrorsOnly:   true,
				Url:          "/v1/",
				Text:         "bad gateway",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("Parse(%q) mismatch (-got +want):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in         string
		wantToken  string
		wantReason string
	}{
		{in: "stauts:500", wantToken: "stauts:500", wantReason: `unknown key "stauts"`},
		{in: "host:", wantToken: "host:", wantReason: "needs a value"},
		{in: `host:""`, wantToken: `host:""`, wantReason: "needs a value"},
		{in: `""`, wantToken: `""`, wantReason: "empty text"},
		{in: "host:a host:b", wantToken: "host:b", wantReason: "given twice (first as host:a)"},
		{in: "foo bar", wantToken: "bar", wantReason: "free text is given twice"},
		{in: "status:700", wantToken: "status:700", wantReason: "outside 100..599"},
		{in: "status:>599", wantToken: "status:>599", wantReason: "matches no code"},
		{in: "status:6xx", wantToken: "status:6xx", wantReason: "matches no code"},
		{in: "status:599-500", wantToken: "status:599-500", wantReason: "runs backwards"},
		{in: "status:abc", wantToken: "status:abc", wantReason: "not a three-digit code"},
		{in: "status:404,", wantToken: "status:404,", wantReason: "not a three-digit code"},
		{in: "method:GET,", wantToken: "method:GET,", wantReason: "empty method"},
		{in: "method:G/T", wantToken: "method:G/T", wantReason: "methods[0]"},
		{in: strings.Repeat("method:GET ", 16) + "method:PUT", wantToken: "method:PUT", wantReason: "at most 16 methods"},
		{in: "host:[a-", wantToken: "host:[a-", wantReason: "host"},
		{in: "is:slow", wantToken: "is:slow", wantReason: "is:error"},
		{in: "is:pending,slow", wantToken: "is:pending,slow", wantReason: `unknown is: value "slow"`},
		{in: "is:pending,tunnel", wantToken: "is:pending,tunnel", wantReason: "only states make a list"},
		{in: "is:error,pending", wantToken: "is:error,pending", wantReason: "only states make a list"},
		{in: "is:pending is:failed", wantToken: "is:failed", wantReason: "list states as is:pending,failed"},
		{in: "is:tunnel is:tunnel", wantToken: "is:tunnel", wantReason: "tunnel: is given twice"},
		{in: "is:pending,failed,completed,pending", wantToken: "is:pending,failed,completed,pending", wantReason: "at most 3 states"},
		{in: "OR host:a", wantToken: "OR", wantReason: "OR needs a filter before it"},
		{in: "host:a OR", wantToken: "OR", wantReason: "OR needs a filter after it"},
		{in: "host:a OR OR host:b", wantToken: "OR", wantReason: "OR needs a filter before it"},
		{in: strings.Repeat("x OR ", 16) + "x", wantToken: "OR", wantReason: "at most 16 alternatives"},
		{in: strings.Repeat("-x ", 17), wantToken: "-x", wantReason: "exclude: at most 16"},
		{in: "-host:[a-", wantToken: "-host:[a-", wantReason: "host: bad glob"},
		{in: "larger-than:10q", wantToken: "larger-than:10q", wantReason: "not a size"},
		{in: "larger-than:-1", wantToken: "larger-than:-1", wantReason: "not a size"},
		{in: "larger-than:1e3", wantToken: "larger-than:1e3", wantReason: "not a size"},
		{in: "larger-than:99999999999G", wantToken: "larger-than:99999999999G", wantReason: "too large"},
		{in: "smaller-than:0", wantToken: "smaller-than:0", wantReason: "no size is smaller than 0"},
		{in: "larger-than:10k smaller-than:5k", wantToken: "smaller-than:5k", wantReason: "min_size: must not be greater than max_size"},
		{in: "larger-than:1 larger-than:2", wantToken: "larger-than:2", wantReason: "given twice"},
		{in: "regex:(a", wantToken: "regex:(a", wantReason: "url_regex: error parsing regexp: missing closing ): `(a`"},
		{in: "/(a/", wantToken: "/(a/", wantReason: "missing closing )"},
		{in: "regex:a{1000}b{1000}", wantToken: "regex:a{1000}b{1000}", wantReason: "instructions"},
		{in: "regex:" + strings.Repeat("a", 513), wantToken: "regex:" + strings.Repeat("a", 513), wantReason: "at most 512 bytes"},
		{in: "body:", wantToken: "body:", wantReason: "needs a value"},
		{in: "body:a body:b", wantToken: "body:b", wantReason: "given twice"},
		{in: "proxy:pac", wantToken: "proxy:pac", wantReason: "proxy:direct or proxy:upstream"},
		{in: "slower-than:fast", wantToken: "slower-than:fast", wantReason: "not a duration"},
		{in: "slower-than:-1s", wantToken: "slower-than:-1s", wantReason: "negative"},
		{in: "slower-than:-5", wantToken: "slower-than:-5", wantReason: "negative"},
		{in: `method:GET "unclosed text`, wantToken: `"unclosed text`, wantReason: "not closed"},
		{in: "text:" + strings.Repeat("x", 300), wantToken: "text:" + strings.Repeat("x", 300), wantReason: "unknown key"},
		{in: strings.Repeat("x", 300), wantToken: strings.Repeat("x", 300), wantReason: "text: must be at most 256 bytes"},
		{in: "ok \xff", wantToken: "\xff", wantReason: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := Parse(tt.in)
			se, ok := errors.AsType[*SyntaxError](err)
			if !ok {
				t.Fatalf("Parse(%q) = %v, %v; want a *SyntaxError", tt.in, f, err)
			}
			if se.Token != tt.wantToken || !strings.Contains(se.Reason, tt.wantReason) {
				t.Errorf("Parse(%q) error token %q, reason %q; want token %q, reason containing %q", tt.in, se.Token, se.Reason, tt.wantToken, tt.wantReason)
			}
			if got := tt.in[se.Pos : se.Pos+len(se.Token)]; got != se.Token {
				t.Errorf("Parse(%q): input at Pos %d is %q, not the token %q", tt.in, se.Pos, got, se.Token)
			}
		})
	}
}

// The error shows the input with carets under the bad token.
func TestSyntaxErrorCaret(t *testing.T) {
	_, err := Parse("method:GET\tstatus:>=700 host:x")
	if err == nil {
		t.Fatal("Parse accepted status:>=700")
	}
	want := `filter token "status:>=700": status 700 is outside 100..599
  method:GET status:>=700 host:x
             ^^^^^^^^^^^^`
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

// FuzzParse checks that Parse never panics, that a filter it returns passes
// Compile and can be sent (marshals), and that an error is a *SyntaxError
// whose Token is the input at Pos.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"status:>=400 method:POST host:*.example.com -host:cdn.example.com larger-than:10k",
		`method:get,post status:4xx,500-599 url:"/a b/*" is:error proxy:direct slower-than:200ms mime:json "free text"`,
		`"unclosed \"`,
		"status:<100 status:>599 status:0xx",
		"slower-than:1e308 slower-than:NaN",
		"host:[ host:\\",
		"a\xffb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pf, err := Parse(s)
		if err != nil {
			se, ok := errors.AsType[*SyntaxError](err)
			if !ok {
				t.Fatalf("Parse(%q) error %v is not a *SyntaxError", s, err)
			}
			if pf != nil {
				t.Errorf("Parse(%q) returned a filter with error %v", s, err)
			}
			if se.Pos < 0 || se.Pos+len(se.Token) > len(s) || s[se.Pos:se.Pos+len(se.Token)] != se.Token {
				t.Errorf("Parse(%q): Token %q is not the input at Pos %d", s, se.Token, se.Pos)
			}
			_ = se.Error()
			return
		}
		if _, err := Compile(pf); err != nil {
			t.Errorf("Parse(%q) = %v, which Compile rejects: %v", s, pf, err)
		}
		if _, err := proto.Marshal(pf); err != nil {
			t.Errorf("Parse(%q) = %v, which does not marshal: %v", s, pf, err)
		}
	})
}
