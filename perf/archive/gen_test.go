package archive

import (
	"fmt"
	"math/rand/v2"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// genBase is the start time of generated entries.
var genBase = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

var (
	genHosts = []string{"example.com", "api.example.com", "cdn.example.net", "login.corp.example", "updates.vendor.example.org", "intranet.local:8443"}
	genTypes = []string{"text/html; charset=utf-8", "application/json", "application/javascript", "text/css", "image/png"}
	genUAs   = []string{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", "curl/8.5.0", "Go-http-client/1.1"}
)

// words feed generated paths and bodies.
var genWords = []string{"account", "orders", "items", "search", "profile", "settings", "cart", "checkout", "product",
	"category", "review", "images", "thumbnail", "assets", "bundle", "vendor", "release", "notes", "status", "health",
	"metrics", "events", "session", "token", "refresh", "login", "logout", "users", "groups", "members", "invoice",
	"payment", "shipping", "address", "country", "language", "currency", "price", "discount", "coupon", "wishlist"}

// realEntry returns a plausible proxied request with id id: a URL with
// varied path segments and query tokens, browser-like headers with dates,
// ETags and sizes, timings, and, for withBody, an HTML or JSON body of
// 0.2–4 KiB. Its start time is genBase plus about id milliseconds.
func realEntry(r *rand.Rand, id uint64, withBody bool) (*pxperfv1.Entry, []byte) {
	host := genHosts[r.IntN(len(genHosts))]
	w := func() string { return genWords[r.IntN(len(genWords))] }
	path := fmt.Sprintf("/%s/%s/%d", w(), w(), r.IntN(1_000_000))
	if r.IntN(3) == 0 {
		path += "/" + w() + []string{".json", ".js", ".css", ".png", ".html"}[r.IntN(5)]
	}
	query := fmt.Sprintf("?%s=%d&%s=%s&ts=%d", w(), r.IntN(1000), w(), w(), 1764237600000+int64(id)*7)
	if r.IntN(2) == 0 {
		query += fmt.Sprintf("&token=%016x%08x", r.Uint64(), r.Uint32())
	}
	ct := genTypes[r.IntN(len(genTypes))]
	status := []int32{200, 200, 200, 200, 204, 301, 304, 404, 407, 500, 502}[r.IntN(11)]
	total := time.Duration(r.IntN(900_000)+5000) * time.Microsecond
	start := genBase.Add(time.Duration(id)*time.Millisecond + time.Duration(r.IntN(1_000_000)))
	e := &pxperfv1.Entry{
		Id:        id,
		RequestId: fmt.Sprintf("%08x-%04x-%04x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff),
		StartTime: timestamppb.New(start),
		Method:    []string{"GET", "GET", "GET", "POST", "PUT", "CONNECT"}[r.IntN(6)],
		Url:       "https://" + host + path + query,
		Host:      host,
		ProxyDecision: &pxperfv1.ProxyDecision{
			Route:    pxperfv1.Route(1 + r.IntN(2)),
			Upstream: fmt.Sprintf("proxy%d.corp.example:8080", r.IntN(4)),
			Source:   pxperfv1.DecisionSource(1 + r.IntN(4)),
		},
		State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		StatusCode: status,
		RequestHeaders: []*pxperfv1.Header{
			{Name: "Host", Value: host},
			{Name: "User-Agent", Value: genUAs[r.IntN(len(genUAs))]},
			{Name: "Accept", Value: []string{"*/*", "text/html,application/xhtml+xml", "application/json"}[r.IntN(3)]},
			{Name: "Accept-Language", Value: []string{"en-US,en;q=0.9", "de-DE,de;q=0.8", "fr-FR"}[r.IntN(3)]},
			{Name: "Proxy-Authorization", Value: "[REDACTED]"},
			{Name: "X-Request-Id", Value: fmt.Sprintf("%016x", r.Uint64())},
		},
		ResponseHeaders: []*pxperfv1.Header{
			{Name: "Content-Type", Value: ct},
			{Name: "Content-Length", Value: fmt.Sprint(r.IntN(100000))},
			{Name: "Date", Value: start.Format(time.RFC1123)},
			{Name: "ETag", Value: fmt.Sprintf(`"%016x"`, r.Uint64())},
			{Name: "Cache-Control", Value: []string{"no-store", "max-age=3600", "private, max-age=0"}[r.IntN(3)]},
			{Name: "Set-Cookie", Value: "[REDACTED]"},
			{Name: "Server", Value: []string{"nginx", "envoy", "cloudflare"}[r.IntN(3)]},
		},
		ResponseBody: &pxperfv1.Body{ContentType: ct, OriginalSize: int64(r.IntN(100000))},
		Timings: &pxperfv1.Timings{
			Dns:             durationpb.New(time.Duration(r.IntN(20000)) * time.Microsecond),
			Connect:         durationpb.New(time.Duration(r.IntN(50000)) * time.Microsecond),
			TlsHandshake:    durationpb.New(time.Duration(r.IntN(80000)) * time.Microsecond),
			TimeToFirstByte: durationpb.New(total / 2),
			Total:           durationpb.New(total),
		},
		BytesSent:     int64(r.IntN(2000)),
		BytesReceived: int64(r.IntN(200000)),
		Priority:      pxperfv1.Priority_PRIORITY_NORMAL,
	}
	var body []byte
	if withBody {
		n := 200 + r.IntN(4000)
		if r.IntN(2) == 0 {
			body = append(body, "<!doctype html><html><head><title>"...)
			for len(body) < n {
				body = fmt.Appendf(body, "<div class=\"%s\"><a href=\"/%s/%d\">%s %s</a></div>\n", w(), w(), r.IntN(10000), w(), w())
			}
			body = append(body, "</html>"...)
		} else {
			body = append(body, '[')
			for len(body) < n {
				body = fmt.Appendf(body, `{"id":%d,"%s":"%s","%s":%d.%02d,"ok":%t},`, r.IntN(1_000_000), w(), w(), w(), r.IntN(1000), r.IntN(100), r.IntN(2) == 0)
			}
			body[len(body)-1] = ']'
		}
	}
	return e, body
}

// smallEntry returns an entry of about 300 bytes once encoded (325 for a
// six-digit id): the size the throughput figure is quoted for.
func smallEntry(id uint64) *pxperfv1.Entry {
	return &pxperfv1.Entry{
		Id:         id,
		RequestId:  fmt.Sprintf("req-%010d", id),
		StartTime:  timestamppb.New(genBase.Add(time.Duration(id) * time.Millisecond)),
		Method:     "GET",
		Url:        fmt.Sprintf("https://api.example.com/v1/items/%d?fields=name,price", id),
		Host:       "api.example.com",
		State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		StatusCode: 200,
		Timings: &pxperfv1.Timings{
			TimeToFirstByte: durationpb.New(12 * time.Millisecond),
			Total:           durationpb.New(42 * time.Millisecond),
		},
		BytesReceived: 4096,
	}
}

// realJSONL returns about n bytes of archive lines made of realEntry
// entries, a third of them with a body, ids from 1.
func realJSONL(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, n+4096)
	for id := uint64(1); len(b) < n; id++ {
		e, body := realEntry(r, id, id%3 == 0)
		b = appendEntry(b, e, body, nil)
	}
	return b
}
