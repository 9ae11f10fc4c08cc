package store

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrInvalidEntry is wrapped by [Check] errors. See [EntryError].
var ErrInvalidEntry = errors.New("invalid entry")

// EntryError names the entry field that [Check] refused and why.
type EntryError struct {
	Field  string // proto field path, such as "url"
	Reason string // what to fix
}

func (e *EntryError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns [ErrInvalidEntry].
func (e *EntryError) Unwrap() error { return ErrInvalidEntry }

// AlwaysRedacted are the header names whose values are never stored,
// whatever the config says. Lower case.
var AlwaysRedacted = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// Redacted replaces the value of a redacted header.
const Redacted = "[REDACTED]"

// MaxEntryBytes bounds the strings and headers of one entry (everything
// but the data of its bodies): 1 MiB. Bodies are truncated to the
// configured size instead.
const MaxEntryBytes = 1 << 20

// Check applies the rules that the proto annotations cannot express. The
// annotations themselves are checked at the service edge.
func Check(e *pxperfv1.Entry) error {
	// Valid protobuf values, which the archive's JSON needs: protovalidate
	// reads {seconds: 1, nanos: -1} as a duration without complaint.
	if err := e.GetStartTime().CheckValid(); err != nil && e.StartTime != nil {
		return &EntryError{Field: "start_time", Reason: fmt.Sprintf("not a valid timestamp: %v", err)}
	}
	if t := e.GetTimings(); t != nil {
		for _, d := range []struct {
			field string
			d     *durationpb.Duration
		}{
			{"timings.dns", t.Dns}, {"timings.connect", t.Connect}, {"timings.tls_handshake", t.TlsHandshake},
			{"timings.time_to_first_byte", t.TimeToFirstByte}, {"timings.total", t.Total},
		} {
			if d.d != nil && d.d.CheckValid() != nil {
				return &EntryError{Field: d.field, Reason: fmt.Sprintf("not a valid duration: %v", d.d.CheckValid())}
			}
		}
	}
	if _, n := sizes(e); n > MaxEntryBytes {
		field := largestPart(e)
		return &EntryError{Field: field, Reason: fmt.Sprintf("the entry has %d bytes of strings and headers, over the limit of %d; trim %s", n, MaxEntryBytes, field)}
	}
	if e.GetTunnel() || e.GetMethod() == "CONNECT" {
		if _, _, err := net.SplitHostPort(e.GetUrl()); err != nil {
			return &EntryError{Field: "url", Reason: fmt.Sprintf("a CONNECT or tunnel entry needs host:port, got %q", e.GetUrl())}
		}
		return nil
	}
	if plainAbsoluteURL(e.GetUrl()) {
		return nil
	}
	u, err := url.Parse(e.GetUrl())
	if err != nil {
		return &EntryError{Field: "url", Reason: fmt.Sprintf("not a URL: %v", errors.Unwrap(err))}
	}
	if u.Scheme == "" || u.Host == "" {
		return &EntryError{Field: "url", Reason: fmt.Sprintf("need an absolute URL with scheme and host, such as http://example.com/path, got %q", e.GetUrl())}
	}
	return nil
}

// plainAbsoluteURL reports whether s is certainly an absolute URL that
// url.Parse accepts with a scheme and a host: scheme://host[:port][rest],
// with a host of letters, digits and ".-_~", a port of digits, and only
// printable ASCII without '%' after it. It is the fast path of [Check]:
// url.Parse allocates and costs about a sixth of an entry's ingest. A
// false answer decides nothing; url.Parse then does.
func plainAbsoluteURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for j := 0; j < i; j++ { // scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
		c := s[j]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host, port, hasPort := strings.Cut(rest[:end], ":")
	if host == "" {
		return false
	}
	for j := 0; j < len(host); j++ {
		c := host[j]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '~') {
			return false
		}
	}
	if hasPort {
		for j := 0; j < len(port); j++ {
			if port[j] < '0' || port[j] > '9' {
				return false
			}
		}
	}
	for j := end; j < len(rest); j++ {
		if c := rest[j]; c <= ' ' || c >= 0x7f || c == '%' {
			return false
		}
	}
	return true
}

// Normalize applies the ingest rules to e in place: it derives host, state
// and priority when the producer left them unset, redacts credential
// headers (those named in redact, compared case-insensitively), and
// applies the body rules to the response and the request body (see
// [normalizeBody]). It reports how many bodies it truncated: 0, 1 or 2.
func Normalize(e *pxperfv1.Entry, maxBody int, redact []string) (truncated int) {
	if e.Host == "" {
		e.Host = hostOf(e)
	}
	if e.State == pxperfv1.EntryState_ENTRY_STATE_UNSPECIFIED {
		switch {
		case e.StatusCode != 0:
			e.State = pxperfv1.EntryState_ENTRY_STATE_COMPLETED
		case e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED:
			e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		default:
			e.State = pxperfv1.EntryState_ENTRY_STATE_PENDING
		}
	}
	if e.Priority == pxperfv1.Priority_PRIORITY_UNSPECIFIED {
		e.Priority = derivePriority(e)
	}
	redactHeaders(e.RequestHeaders, redact)
	redactHeaders(e.ResponseHeaders, redact)
	if normalizeBody(e.ResponseBody, maxBody) {
		truncated++
	}
	if normalizeBody(e.RequestBody, maxBody) {
		truncated++
	}
	return truncated
}

// normalizeBody applies the body rules to b, a response or request body
// (nil for none), in place: original_size is set from the data when the
// producer left it 0, the data is cut to maxBody bytes, and truncated says
// whether the data holds less than original_size. It reports whether it
// cut the data.
func normalizeBody(b *pxperfv1.Body, maxBody int) (cut bool) {
	if b == nil {
		return false
	}
	if b.OriginalSize == 0 {
		b.OriginalSize = int64(len(b.Data))
	}
	switch {
	case len(b.Data) > maxBody:
		// Copy, so the rest of the request buffer can be freed.
		b.Data = bytes.Clone(b.Data[:maxBody])
		cut = true
	case cap(b.Data) > 2*len(b.Data)+4096:
		// A short slice of a larger buffer (given in process: gRPC's
		// decoders copy each body into its own allocation): copy it, so
		// that the store holds, and counts, only the body.
		b.Data = bytes.Clone(b.Data)
	}
	// Also when the producer sent only the start of the body (a proxy
	// captures the first bytes while the body streams on); a producer's
	// own flag is not trusted either way.
	b.Truncated = int64(len(b.Data)) < b.OriginalSize
	return cut
}

// largestPart names the field that makes up most of e's size without its
// bodies.
func largestPart(e *pxperfv1.Entry) string {
	headers := func(hs []*pxperfv1.Header) (n int) {
		for _, h := range hs {
			n += headerOverhead + len(h.Name) + len(h.Value)
		}
		return n
	}
	parts := []struct {
		field string
		size  int
	}{
		{"url", len(e.GetUrl())},
		{"request_headers", headers(e.GetRequestHeaders())},
		{"response_headers", headers(e.GetResponseHeaders())},
	}
	biggest := parts[0]
	for _, p := range parts[1:] {
		if p.size > biggest.size {
			biggest = p
		}
	}
	return biggest.field
}

func derivePriority(e *pxperfv1.Entry) pxperfv1.Priority {
	switch s := e.StatusCode; {
	case e.State == pxperfv1.EntryState_ENTRY_STATE_FAILED,
		s >= 500, s == 401, s == 407:
		return pxperfv1.Priority_PRIORITY_HIGH
	}
	return pxperfv1.Priority_PRIORITY_NORMAL
}

// hostOf derives the host[:port] of e from its URL without parsing it
// fully, so that ingest does not allocate: the result is a substring of the
// URL. Check has already refused URLs without a host.
func hostOf(e *pxperfv1.Entry) string {
	if e.Tunnel || e.Method == "CONNECT" {
		return e.Url
	}
	_, rest, ok := strings.Cut(e.Url, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:] // drop userinfo
	}
	return rest
}

// redactList returns the header names to redact: [AlwaysRedacted] and
// extra, without duplicates.
func redactList(extra []string) []string {
	list := slices.Clone(AlwaysRedacted)
	for _, n := range extra {
		if !slices.ContainsFunc(list, func(m string) bool { return strings.EqualFold(m, n) }) {
			list = append(list, n)
		}
	}
	return list
}

func redactHeaders(hs []*pxperfv1.Header, redact []string) {
	for _, h := range hs {
		if h.Value == Redacted {
			continue
		}
		for _, n := range redact {
			if strings.EqualFold(h.Name, n) {
				h.Value = Redacted
				break
			}
		}
	}
}

// entryOverhead approximates the memory of an entry's structs (the Entry and
// its sub-messages, slice headers and pointers) beyond its variable-length
// data, in bytes.
const entryOverhead = 512

// headerOverhead approximates the memory of one Header struct and its
// pointer, in bytes.
const headerOverhead = 80

// Size is the accounted size of e in bytes: a fixed overhead for its
// structs, and its strings and header data twice, once in the message and
// once in its cached encoding (see [Read.Fields]). The data of its bodies
// is accounted separately by the store, and not here.
func Size(e *pxperfv1.Entry) int64 {
	structs, data := sizes(e)
	return int64(structs + 2*data)
}

// sizes returns the bytes of e's structs (estimated) and of its strings and
// headers, the data of its bodies excepted.
func sizes(e *pxperfv1.Entry) (structs, data int) {
	structs = entryOverhead + headerOverhead*(len(e.RequestHeaders)+len(e.ResponseHeaders))
	data = len(e.RequestId) + len(e.Method) + len(e.Url) + len(e.Host) +
		len(e.GetError().GetMessage()) + len(e.GetResponseBody().GetContentType()) +
		len(e.GetRequestBody().GetContentType()) + len(e.GetProxyDecision().GetUpstream())
	for _, u := range e.GetProxyDecision().GetFailedUpstreams() {
		structs += 16
		data += len(u)
	}
	for _, h := range e.RequestHeaders {
		data += len(h.Name) + len(h.Value)
	}
	for _, h := range e.ResponseHeaders {
		data += len(h.Name) + len(h.Value)
	}
	return structs, data
}

// withBodies returns a copy of e carrying the data of its bodies, or e
// itself when it has neither body. e is not modified.
func withBodies(e *pxperfv1.Entry, b bodies) *pxperfv1.Entry {
	if e.GetResponseBody() == nil && e.GetRequestBody() == nil {
		return e
	}
	c := proto.CloneOf(e)
	if c.ResponseBody != nil {
		c.ResponseBody.Data = b.response
	}
	if c.RequestBody != nil {
		c.RequestBody.Data = b.request
	}
	return c
}

// StripBodies drops the data of e's bodies in place, keeping their content
// type, original size and truncated flag, as the store hands entries out:
// for an entry read back whole (from the archive) that goes to a reader
// who did not ask for bodies. e must be the caller's to change.
func StripBodies(e *pxperfv1.Entry) {
	if b := e.GetResponseBody(); b != nil {
		b.Data = nil
	}
	if b := e.GetRequestBody(); b != nil {
		b.Data = nil
	}
}
