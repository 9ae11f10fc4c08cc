package httpentry

import (
	"mime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pxperf/pxperf/internal/contract"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Limits are the limits of the contract (proto/pxperf/v1/entry.proto) that
// an entry describing an HTTP exchange is fitted to, so that the server
// never rejects it. [Contract] reads them from the contract's rules.
type Limits struct {
	// URL is the most bytes of an entry's url.
	URL int
	// Host is the most bytes of an entry's host.
	Host int
	// Upstream is the most bytes of proxy_decision.upstream.
	Upstream int
	// Headers is the most headers in request_headers, and in
	// response_headers.
	Headers int
	// HeaderName and HeaderValue are the most bytes of a header's name and
	// of its value.
	HeaderName, HeaderValue int
	// ErrorMessage is the most bytes of error.message.
	ErrorMessage int
	// ContentType is the most bytes of a body's content_type.
	ContentType int

	methods []string // the methods the contract takes
}

// Recordable reports whether an entry may carry method: the contract takes
// only the methods of the IANA registry, upper case. It is false for every
// method on Limits not from [Contract].
func (l Limits) Recordable(method string) bool {
	return slices.Contains(l.methods, method)
}

// contractLimits holds the limits, read from the contract's rules on first use
// and never changed after.
var contractLimits = sync.OnceValue(func() *Limits {
	entry, header, decision := &pxperfv1.Entry{}, &pxperfv1.Header{}, &pxperfv1.ProxyDecision{}
	errs, body := &pxperfv1.EntryError{}, &pxperfv1.Body{}
	rules := contract.Rules
	return &Limits{
		URL:      int(rules(entry, "url").GetString().GetMaxBytes()),
		Host:     int(rules(entry, "host").GetString().GetMaxBytes()),
		Upstream: int(rules(decision, "upstream").GetString().GetMaxBytes()),
		Headers: int(min(
			rules(entry, "request_headers").GetRepeated().GetMaxItems(),
			rules(entry, "response_headers").GetRepeated().GetMaxItems(),
		)),
		HeaderName:   int(rules(header, "name").GetString().GetMaxBytes()),
		HeaderValue:  int(rules(header, "value").GetString().GetMaxBytes()),
		ErrorMessage: int(rules(errs, "message").GetString().GetMaxBytes()),
		ContentType:  int(rules(body, "content_type").GetString().GetMaxBytes()),
		methods:      rules(entry, "method").GetString().GetIn(),
	}
})

// Contract returns the limits of the contract on an entry. It is safe for
// concurrent use; the contract is read once.
func Contract() Limits {
	return *contractLimits()
}

// Clean makes s valid UTF-8 (protobuf strings must be), invalid bytes
// replaced by U+FFFD, of at most max bytes, cut at a character boundary.
func Clean(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// MediaType is the media type of a Content-Type value, lower case, without
// parameters, fitted to the contract's limit; "" for "". A value that does
// not parse gives what precedes its first ';', trimmed.
func MediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return Clean(mt, contractLimits().ContentType)
}
