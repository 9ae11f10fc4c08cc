package httpentry

import (
	"net/http"
	"slices"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
)

// headerBytes bounds the names and values of each of an entry's header
// lists: a quarter of what the store takes of an entry's strings and
// headers, so that the two lists stay well within it beside the url and
// the bodies.
const headerBytes = store.MaxEntryBytes / 4

// A HeaderList builds an entry's request_headers or response_headers
// within the contract's limits: names and values made valid UTF-8 and cut
// to their limits, empty names and names too long to keep left out, and
// no more headers, nor bytes, than a list may hold; the first header that
// does not fit ends the list. Make one with [NewHeaderList]. A HeaderList
// is not safe for concurrent use.
type HeaderList struct {
	lim    *Limits
	out    []*pxperfv1.Header
	budget int  // bytes of names and values left
	full   bool // a header did not fit
}

// NewHeaderList returns an empty list with room for n headers.
func NewHeaderList(n int) HeaderList {
	lim := contractLimits()
	return HeaderList{lim: lim, out: make([]*pxperfv1.Header, 0, min(n, lim.Headers)), budget: headerBytes}
}

// Add appends the header name: value, the value recorded as
// [store.Redacted] if redacted. It reports whether the list takes more:
// false once a header did not fit, after which Add adds nothing.
func (l *HeaderList) Add(name, value string, redacted bool) bool {
	if l.full {
		return false
	}
	if name == "" || len(name) > l.lim.HeaderName {
		return true
	}
	name = Clean(name, l.lim.HeaderName)
	if redacted {
		value = store.Redacted
	} else {
		value = Clean(value, l.lim.HeaderValue)
	}
	l.budget -= len(name) + len(value)
	if len(l.out) == l.lim.Headers || l.budget < 0 {
		l.full = true
		return false
	}
	l.out = append(l.out, &pxperfv1.Header{Name: name, Value: value})
	return true
}

// AddHeader appends h as [HeaderList.Add] does: sorted by name (a header
// map keeps no order), the values of a name in the order received, the
// values of the names in redact, which holds canonical names, recorded as
// [store.Redacted]. It reports what Add reports.
func (l *HeaderList) AddHeader(h http.Header, redact map[string]bool) bool {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		redacted := redact[http.CanonicalHeaderKey(k)]
		for _, v := range h[k] {
			if !l.Add(k, v, redacted) {
				return false
			}
		}
	}
	return !l.full
}

// Headers returns the list. The caller owns it; l is not to be used after.
func (l *HeaderList) Headers() []*pxperfv1.Header {
	return l.out
}

// HeaderSize estimates the bytes of h on the wire in HTTP/1.1: each value
// on a line of its own.
func HeaderSize(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4) // ": " and CRLF
		}
	}
	return n
}

// ResponseHeadSize estimates the bytes of res's status line, headers and
// the blank line after them on the wire in HTTP/1.1.
func ResponseHeadSize(res *http.Response) int64 {
	return int64(len(res.Proto)+len(res.Status)+3) + HeaderSize(res.Header) + 2
}
