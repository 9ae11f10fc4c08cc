package filter

import (
	"strings"
	"testing"
	"time"

	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// queryTerm is a term of the filter language with what it means, written
// plainly, for FuzzQuery's reference.
type queryTerm struct {
	text string
	// key is counted once per alternative when not negated; for method:
	// and status:, which add to lists, items is the number added.
	key   string
	items int
	pred  func(e *pxperfv1.Entry) bool
}

// queryTerms covers every key and form of the language.
var queryTerms = []queryTerm{
	{"host:api", "host", 0, func(e *pxperfv1.Entry) bool { return strings.Contains(strings.ToLower(e.GetHost()), "api") }},
	{"domain:*.example.com", "host", 0, func(e *pxperfv1.Entry) bool { return strings.HasSuffix(strings.ToLower(e.GetHost()), ".example.com") }},
	{"url:/v1/", "url", 0, func(e *pxperfv1.Entry) bool { return strings.Contains(e.GetUrl(), "/v1/") }},
	{"regex:^https://", "regex", 0, func(e *pxperfv1.Entry) bool { return strings.HasPrefix(strings.ToLower(e.GetUrl()), "https://") }},
	{`/v[0-9]\/u/`, "regex", 0, func(e *pxperfv1.Entry) bool {
		u := e.GetUrl()
		for i := 0; i+3 < len(u); i++ {
			if (u[i] == 'v' || u[i] == 'V') && '0' <= u[i+1] && u[i+1] <= '9' && u[i+2] == '/' && (u[i+3] == 'u' || u[i+3] == 'U') {
				return true
			}
		}
		return false
	}},
	{"method:GET,post", "method", 2, func(e *pxperfv1.Entry) bool { return e.GetMethod() == "GET" || e.GetMethod() == "POST" }},
	{"method:PUT", "method", 1, func(e *pxperfv1.Entry) bool { return e.GetMethod() == "PUT" }},
	{"status:4xx", "status", 1, func(e *pxperfv1.Entry) bool { return 400 <= e.GetStatusCode() && e.GetStatusCode() <= 499 }},
	{"status:>=500,204", "status", 2, func(e *pxperfv1.Entry) bool { return e.GetStatusCode() >= 500 || e.GetStatusCode() == 204 }},
	{"is:pending", "is:state", 0, func(e *pxperfv1.Entry) bool { return e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING }},
	{"is:failed,completed", "is:state", 0, func(e *pxperfv1.Entry) bool {
		return e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetState() == pxperfv1.EntryState_ENTRY_STATE_COMPLETED
	}},
	{"is:tunnel", "is:tunnel", 0, func(e *pxperfv1.Entry) bool { return e.GetTunnel() }},
	{"is:error", "is:error", 0, func(e *pxperfv1.Entry) bool {
		return e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetError().GetKind() != 0 || e.GetStatusCode() >= 400
	}},
	{"larger-than:1k", "larger-than", 0, func(e *pxperfv1.Entry) bool { return refSize(e) > 1024 }},
	{"smaller-than:2k", "smaller-than", 0, func(e *pxperfv1.Entry) bool { return refSize(e) < 2048 }},
	{"proxy:direct", "proxy", 0, func(e *pxperfv1.Entry) bool { return e.GetProxyDecision().GetRoute() == pxperfv1.Route_ROUTE_DIRECT }},
	{"slower-than:100ms", "slower-than", 0, func(e *pxperfv1.Entry) bool {
		return e.GetTimings().GetTotal() != nil && e.GetTimings().GetTotal().AsDuration() >= 100*time.Millisecond
	}},
	{"mime:json", "mime", 0, func(e *pxperfv1.Entry) bool { return strings.Contains(e.GetResponseBody().GetContentType(), "json") }},
	{"body:token", "body", 0, func(e *pxperfv1.Entry) bool {
		return strings.Contains(strings.ToLower(string(e.GetRequestBody().GetData())+"\x00"+string(e.GetResponseBody().GetData())), "token")
	}},
	{`"refused"`, "text", 0, func(e *pxperfv1.Entry) bool {
		return strings.Contains(strings.ToLower(e.GetError().GetMessage()), "refused")
	}},
}

// refSize is an entry's size, as the language defines it.
func refSize(e *pxperfv1.Entry) int64 {
	if n := e.GetBytesReceived(); n > 0 {
		return n
	}
	return e.GetResponseBody().GetOriginalSize()
}

// queryEntries gives every term entries that pass and entries that fail it.
func queryEntries() []*pxperfv1.Entry {
	ms := func(n int) *pxperfv1.Timings {
		return &pxperfv1.Timings{Total: durationpb.New(time.Duration(n) * time.Millisecond)}
	}
	return []*pxperfv1.Entry{
		{Method: "GET", Url: "https://api.example.com/v1/users", Host: "api.example.com", State: 2, StatusCode: 200,
			ProxyDecision: &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_DIRECT}, BytesReceived: 5000,
			ResponseBody: &pxperfv1.Body{ContentType: "application/json", Data: []byte(`{"token": 1}`)}, Timings: ms(250)},
		{Method: "POST", Url: "http://web.example.org/V2/Upload", Host: "web.example.org", State: 2, StatusCode: 404,
			ProxyDecision: &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_PROXY},
			RequestBody:   &pxperfv1.Body{Data: []byte("TOKEN=abc")}, ResponseBody: &pxperfv1.Body{ContentType: "text/html", OriginalSize: 50}, Timings: ms(20)},
		{Method: "PUT", Url: "https://cdn.example.com/v1/u", Host: "cdn.example.com", State: 1},
		{Method: "GET", Url: "https://API.internal/v3/UsErs", Host: "API.internal", State: 3,
			Error: &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_CONNECT, Message: "connection Refused"}, Timings: ms(100)},
		{Method: "CONNECT", Url: "db.example.com:443", Host: "db.example.com:443", Tunnel: true, State: 2, StatusCode: 200, BytesReceived: 1025,
			ProxyDecision: &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_DIRECT}},
		{Method: "DELETE", Url: "https://x.test/", Host: "x.test", State: 2, StatusCode: 503, BytesReceived: 99,
			ResponseBody: &pxperfv1.Body{ContentType: "application/problem+json", OriginalSize: 4000}},
		{Method: "GET", Url: "https://x.test/", Host: "x.test", State: 2, StatusCode: 204},
	}
}

// FuzzQuery holds the language to a plain reference: it builds a filter
// string from queryTerms, negations and ORs, and checks that what Parse
// makes of it, compiled, matches each of queryEntries exactly when the
// reference does: the OR of the alternatives, each the AND of its terms,
// a negated term inverted, and the method: (or status:) terms of an
// alternative ORed together, as they add to one list.
func FuzzQuery(f *testing.F) {
	f.Add([]byte{0, 5, 9})
	f.Add([]byte{0x80, 0x41, 0x0c, 0x13, 0x8e})
	f.Add([]byte{1, 0x43, 2, 0x83, 0x0b, 0x46, 0x90, 0xd2})
	f.Add([]byte{3, 4, 0x84, 0x49, 0x8a, 0x4d, 0x0e, 0x92, 0x50, 0x11})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Each byte: the term (low 5 bits), negated (0x80), OR before it
		// (0x40). Terms that would repeat a single-valued key in their
		// alternative, or overfill a list, are skipped: Parse rejects
		// those, as TestParseErrors shows.
		if len(data) > 16 {
			data = data[:16] // within the limit on exclusions
		}
		var b strings.Builder
		type term struct {
			q   queryTerm
			neg bool
		}
		var alts [][]term
		var seen map[string]int
		for i, c := range data {
			q := queryTerms[int(c&0x1f)%len(queryTerms)]
			neg := c&0x80 != 0
			if i == 0 || c&0x40 != 0 && len(alts[len(alts)-1]) > 0 {
				if i > 0 {
					b.WriteString(" OR")
				}
				alts, seen = append(alts, nil), map[string]int{}
			}
			switch {
			case neg:
			case q.items > 0:
				// The lists hold at most 16.
				if seen[q.key]+q.items > 16 {
					continue
				}
				seen[q.key] += q.items
			case seen[q.key] > 0:
				continue
			default:
				seen[q.key] = 1
			}
			b.WriteByte(' ')
			if neg {
				b.WriteByte('-')
			}
			b.WriteString(q.text)
			alts[len(alts)-1] = append(alts[len(alts)-1], term{q, neg})
		}
		s := b.String()
		pf, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", s, err)
		}
		c, err := Compile(pf)
		if err != nil {
			t.Fatalf("Compile(Parse(%q)) error: %v", s, err)
		}
		for _, e := range queryEntries() {
			want := len(alts) == 0
			for _, alt := range alts {
				ok := true
				lists := map[string]bool{} // method: and status: terms add to one list: any of them
				for _, tm := range alt {
					switch {
					case tm.q.items > 0 && !tm.neg:
						lists[tm.q.key] = lists[tm.q.key] || tm.q.pred(e)
					default:
						ok = ok && tm.q.pred(e) != tm.neg
					}
				}
				for _, matched := range lists {
					ok = ok && matched
				}
				want = want || ok
			}
			if got := c.Match(e); got != want {
				t.Errorf("filter %q (%v) on %v: Match = %v, reference says %v", s, pf, e, got, want)
			}
		}
	})
}
