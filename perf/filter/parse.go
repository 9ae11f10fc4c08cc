package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SyntaxError reports the token of a filter string that [Parse] rejects.
type SyntaxError struct {
	// Input is the whole filter string, for showing where the error is.
	Input string
	// Pos is the byte offset of Token in Input.
	Pos int
	// Token is the offending token as written, quotes included; "" when
	// the input ended where a token was needed.
	Token string
	// Reason says what is wrong and what to write instead.
	Reason string
}

// Error returns the token and the reason, then the input on a line of its
// own with carets under the token:
//
//	filter token "status:>=700": status 700 is outside 100..599
//	  method:GET status:>=700
//	             ^^^^^^^^^^^^
func (e *SyntaxError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "filter token %q: %s", e.Token, e.Reason)
	if e.Input == "" {
		return b.String()
	}
	// Tabs and newlines would break the alignment of the caret line.
	shown := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, e.Input)
	pos := min(max(e.Pos, 0), len(e.Input))
	col := utf8.RuneCountInString(e.Input[:pos])
	width := max(utf8.RuneCountInString(e.Token), 1)
	fmt.Fprintf(&b, "\n  %s\n  %s%s", shown, strings.Repeat(" ", col), strings.Repeat("^", width))
	return b.String()
}

// Parse compiles a filter string, in the style of the browser DevTools
// network filter, into a [pxperfv1.Filter]:
//
//	status:>=400 method:POST,PUT host:*.example.com slower-than:200ms "connection refused"
//
// Tokens are separated by white space; double quotes keep spaces in a value
// (host:"a b", or "free text"), and inside quotes \" and \\ stand for " and
// \. Keys are case-insensitive:
//
//	method:GET,POST          methods (repeatable; comma lists)
//	status:404               a status code; also status:>=400, >400, <=399,
//	                         <400, 4xx, 40x, 500-599 (repeatable; comma
//	                         lists; an entry matches any of them). Alias
//	                         status-code:
//	host:*.example.com       host glob (with *, ? or [...]: whole host);
//	host:example             otherwise a substring. Alias domain:
//	url:/api/                url, substring or glob as host
//	is:error                 failed, or status 400 or more (also is:errors)
//	proxy:direct             route: direct, or proxy:upstream (also proxy:proxy)
//	slower-than:200ms        timings.total at least this (Go duration;
//	                         a bare number is milliseconds)
//	mime:json                response content type substring (aliases
//	                         mime-type:, content-type:)
//	word or "some words"     free text in the url, error and headers
//
// Every criterion must match (AND). Each of host, url, proxy, slower-than,
// mime, is and free text may be given once, since the filter holds one of
// each. The structured filter cannot express exclusion, so -key:value is an
// error, as is larger-than: (it has no size criterion); neither is ignored.
// To search for text that looks like a key, quote it: "status:500".
//
// An empty or blank string gives an empty filter, which matches every
// entry. A filter Parse returns always passes [Compile]; an error is a
// [*SyntaxError] naming the first bad token.
func Parse(s string) (*pxperfv1.Filter, error) {
	p := &parser{input: s, f: &pxperfv1.Filter{}}
	if !utf8.ValidString(s) {
		i := 0
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return nil, &SyntaxError{Input: s, Pos: i, Token: s[i : i+1], Reason: "not valid UTF-8"}
	}
	for pos := 0; ; {
		t, next, err := p.next(pos)
		if err != nil {
			return nil, err
		}
		if t.raw == "" {
			return p.f, nil
		}
		if err := p.apply(t); err != nil {
			return nil, err
		}
		// Each token is checked as it is added, so that a limit (too many
		// methods, a bad glob) is reported at the token that broke it.
		if _, err := Compile(p.f); err != nil {
			reason := err.Error()
			if fe, ok := errors.AsType[*FieldError](err); ok {
				reason = fe.Field + ": " + fe.Reason
			}
			return nil, p.errorf(t, "%s", reason)
		}
		pos = next
	}
}

// parser holds the state of one [Parse].
type parser struct {
	input string
	f     *pxperfv1.Filter
	seen  map[string]token // single-valued keys already given
}

// token is one white-space separated token of the input.
type token struct {
	raw    string // as written
	pos    int    // byte offset of raw in the input
	negate bool   // written with a leading '-'
	key    string // lower-cased key; "" for free text
	value  string // unquoted value
}

// isSpace reports whether c separates tokens.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// next reads the token starting at or after pos. At the end of the input
// it returns a token with an empty raw.
func (p *parser) next(pos int) (token, int, error) {
	s := p.input
	for pos < len(s) && isSpace(s[pos]) {
		pos++
	}
	start := pos
	quote := -1 // offset of an open quote
	for pos < len(s) && (quote >= 0 || !isSpace(s[pos])) {
		switch {
		case s[pos] == '"':
			if quote < 0 {
				quote = pos
			} else {
				quote = -1
			}
		case s[pos] == '\\' && quote >= 0 && pos+1 < len(s):
			pos++
		}
		pos++
	}
	t := token{raw: s[start:pos], pos: start}
	if quote >= 0 {
		return t, pos, p.errorf(t, "the quote at column %d is not closed; add a closing \"", utf8.RuneCountInString(s[:quote])+1)
	}
	if t.raw == "" {
		return t, pos, nil
	}
	body := t.raw
	if len(body) > 1 && body[0] == '-' {
		t.negate, body = true, body[1:]
	}
	// A key is letters and dashes before the first colon, unquoted. A
	// URL's "scheme://" is not a key: https://example.com is free text.
	if i := strings.IndexByte(body, ':'); i > 0 && isKey(body[:i]) && !strings.HasPrefix(body[i+1:], "//") {
		t.key, body = strings.ToLower(body[:i]), body[i+1:]
	}
	t.value = unquote(body)
	return t, pos, nil
}

// isKey reports whether s could be a key: ASCII letters and '-', starting
// with a letter.
func isKey(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c != '-' || i == 0) {
			return false
		}
	}
	return s != ""
}

// unquote removes the double quotes of s and resolves \" and \\ inside
// them. The quotes are balanced: [parser.next] checked.
func unquote(s string) string {
	if !strings.ContainsRune(s, '"') {
		return s
	}
	var b strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			in = !in
		case c == '\\' && in && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// keys lists the keys Parse knows, for error messages.
const keys = "method, status, host (domain), url, is, proxy, slower-than, mime (mime-type, content-type)"

// apply adds t's criterion to the filter.
func (p *parser) apply(t token) error {
	key := t.key
	switch key {
	case "domain":
		key = "host"
	case "status-code":
		key = "status"
	case "mime-type", "content-type":
		key = "mime"
	}
	if t.negate {
		what := key
		if what == "" {
			what = "free text"
		}
		return p.errorf(t, "negation is not supported for %s: the structured filter cannot exclude; remove the '-' (or quote the token to search for it as text)", what)
	}
	if key == "larger-than" || key == "smaller-than" {
		return p.errorf(t, "%s is not supported: the structured filter has no size criterion", key)
	}
	if key != "" && t.value == "" {
		return p.errorf(t, "%s needs a value after the colon", key)
	}
	switch key {
	case "", "host", "url", "is", "proxy", "slower-than", "mime":
		if prev, ok := p.seen[key]; ok {
			what := key + ":"
			if key == "" {
				what = "free text"
			}
			hint := ""
			if key == "" {
				hint = `; put a phrase in quotes, "like this"`
			}
			return p.errorf(t, "%s is given twice (first as %s): the filter holds one%s", what, prev.raw, hint)
		}
		if p.seen == nil {
			p.seen = map[string]token{}
		}
		p.seen[key] = t
	}
	switch key {
	case "":
		if t.value == "" {
			return p.errorf(t, "empty text; remove the quotes or put words in them")
		}
		p.f.Text = t.value
	case "method":
		for m := range strings.SplitSeq(t.value, ",") {
			if m == "" {
				return p.errorf(t, "empty method in the list; write method:GET,POST")
			}
			p.f.Methods = append(p.f.Methods, strings.ToUpper(m))
		}
	case "status":
		for v := range strings.SplitSeq(t.value, ",") {
			r, err := parseStatus(v)
			if err != nil {
				return p.errorf(t, "%v", err)
			}
			p.f.StatusRanges = append(p.f.StatusRanges, r)
		}
	case "host":
		p.f.Host = t.value
	case "url":
		p.f.Url = t.value
	case "is":
		switch strings.ToLower(t.value) {
		case "error", "errors", "failed":
			p.f.ErrorsOnly = true
		default:
			return p.errorf(t, "unknown is: value %q; the filter knows is:error", t.value)
		}
	case "proxy":
		switch strings.ToLower(t.value) {
		case "direct":
			p.f.Route = pxperfv1.Route_ROUTE_DIRECT
		case "upstream", "proxy":
			p.f.Route = pxperfv1.Route_ROUTE_PROXY
		default:
			return p.errorf(t, "unknown proxy: value %q; write proxy:direct or proxy:upstream", t.value)
		}
	case "slower-than":
		d, err := parseDuration(t.value)
		if err != nil {
			return p.errorf(t, "%v", err)
		}
		p.f.MinDuration = durationpb.New(d)
	case "mime":
		p.f.ContentType = t.value
	default:
		return p.errorf(t, "unknown key %q; the keys are %s (quote the token to search for it as text)", t.key, keys)
	}
	return nil
}

// parseStatus parses one status criterion: 404, >=400, >400, <=399, <400,
// =404, 4xx, 40x or 500-599.
func parseStatus(v string) (*pxperfv1.StatusRange, error) {
	num := func(s string) (int32, error) {
		n, err := strconv.Atoi(s)
		if err != nil || len(s) != 3 {
			return 0, fmt.Errorf("status %q is not a three-digit code; write 404, >=400, 4xx or 500-599", v)
		}
		if n < minStatus || n > maxStatus {
			return 0, fmt.Errorf("status %d is outside %d..%d", n, minStatus, maxStatus)
		}
		return int32(n), nil
	}
	rng := func(lo, hi int32) (*pxperfv1.StatusRange, error) {
		lo, hi = max(lo, minStatus), min(hi, maxStatus)
		if lo > hi {
			return nil, fmt.Errorf("status %q matches no code in %d..%d", v, minStatus, maxStatus)
		}
		return &pxperfv1.StatusRange{Min: lo, Max: hi}, nil
	}
	for _, op := range []string{">=", "<=", ">", "<", "="} {
		rest, ok := strings.CutPrefix(v, op)
		if !ok {
			continue
		}
		n, err := num(rest)
		if err != nil {
			return nil, err
		}
		switch op {
		case ">=":
			return rng(n, maxStatus)
		case "<=":
			return rng(minStatus, n)
		case ">":
			return rng(n+1, maxStatus)
		case "<":
			return rng(minStatus, n-1)
		default:
			return rng(n, n)
		}
	}
	if lo, hi, ok := strings.Cut(v, "-"); ok {
		a, err := num(lo)
		if err != nil {
			return nil, err
		}
		b, err := num(hi)
		if err != nil {
			return nil, err
		}
		if a > b {
			return nil, fmt.Errorf("status range %q runs backwards; write %d-%d", v, b, a)
		}
		return rng(a, b)
	}
	if prefix, ok := strings.CutSuffix(strings.ToLower(v), "x"); ok && len(v) == 3 {
		// 4xx or 40x: the digits given, any digits after.
		prefix = strings.TrimRight(prefix, "x")
		if _, err := strconv.Atoi(prefix); err != nil || prefix[0] == '-' || prefix[0] == '+' {
			return nil, fmt.Errorf("status %q: write a class as 4xx or 40x", v)
		}
		width := int32(1)
		for range 3 - len(prefix) {
			width *= 10
		}
		n, _ := strconv.Atoi(prefix)
		lo := int32(n) * width
		return rng(lo, lo+width-1)
	}
	n, err := num(v)
	if err != nil {
		return nil, err
	}
	return rng(n, n)
}

// parseDuration parses a Go duration ("200ms", "1.5s"), or a bare number
// of milliseconds.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		ms, ferr := strconv.ParseFloat(v, 64)
		switch {
		case ferr != nil || ms != ms:
			return 0, fmt.Errorf("%q is not a duration; write 200ms, 1.5s or 200 (milliseconds)", v)
		case ms < 0:
			return 0, fmt.Errorf("%q is negative; a duration is 0 or more", v)
		case ms > float64(time.Duration(1<<63-1)/time.Millisecond):
			return 0, fmt.Errorf("%q is too long", v)
		}
		d = time.Duration(ms * float64(time.Millisecond))
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative; a duration is 0 or more", v)
	}
	return d, nil
}

// errorf returns a [*SyntaxError] at t.
func (p *parser) errorf(t token, format string, args ...any) *SyntaxError {
	return &SyntaxError{Input: p.input, Pos: t.pos, Token: t.raw, Reason: fmt.Sprintf(format, args...)}
}
