package filter

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
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
//	status:>=400 method:POST,PUT host:*.example.com -host:cdn.* slower-than:200ms "connection refused"
//	host:api.example.com OR is:failed OR larger-than:1M
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
//	regex:^https://a\.       url regular expression (RE2, case-insensitive
//	/^https://a\./           unless it starts with (?-i)); unquoted free
//	                         text between slashes is one too, as in
//	                         DevTools. Alias url-regex:
//	is:pending               state: pending, completed or failed (comma
//	                         lists: is:pending,failed); is:tunnel for
//	                         CONNECT tunnels; is:error for failed or status
//	                         400 or more (also is:errors)
//	proxy:direct             route: direct, or proxy:upstream (also proxy:proxy)
//	slower-than:200ms        timings.total at least this (Go duration;
//	                         a bare number is milliseconds)
//	larger-than:10k          size more than this many bytes (k, M, G are
//	smaller-than:1M          1024-based; kb, KiB, MB… are accepted); size is
//	                         the bytes received, or the response body's
//	                         size when those were not counted
//	mime:json                response content type substring (aliases
//	                         mime-type:, content-type:)
//	body:token               text in the request or response body (slower:
//	                         it reads the bodies)
//	word or "some words"     free text in the url, error and headers
//
// Every criterion must match (AND). A '-' before a token excludes what it
// matches: -host:cdn.example.com, -status:304, -"health check", -is:tunnel.
// OR, in capitals and alone, separates alternatives: an entry matches when
// it matches every criterion of any one of them. OR binds loosest, so
// "a b OR c" is (a and b) or c; there are no parentheses.
//
// Within one alternative, each of host, url, regex, proxy, slower-than,
// larger-than, smaller-than, mime, body, free text and each kind of is:
// (state, tunnel, error) may be given once, since the filter holds one of
// each; method: and status: add to their lists. To search for text that
// looks like a key or like OR, quote it: "status:500", "OR".
//
// An empty or blank string gives an empty filter, which matches every
// entry. One alternative gives a filter of its criteria, with one filter in
// exclude per excluded token; several give a filter whose any_of holds one
// such filter per alternative. A filter Parse returns always passes
// [Compile]; an error is a [*SyntaxError] naming the first bad token.
func Parse(s string) (*pxperfv1.Filter, error) {
	p := &parser{input: s}
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
	cur := &alternative{f: &pxperfv1.Filter{}}
	var alts []*pxperfv1.Filter
	var or token // the last OR, while no term has followed it
	for pos := 0; ; {
		t, next, err := p.next(pos)
		if err != nil {
			return nil, err
		}
		pos = next
		switch {
		case t.raw == "":
			if or.raw != "" {
				return nil, p.errorf(or, "OR needs a filter after it; remove it or add one")
			}
			if len(alts) == 0 {
				return cur.f, nil
			}
			return &pxperfv1.Filter{AnyOf: append(alts, cur.f)}, nil
		case t.raw == "OR":
			if cur.terms == 0 {
				return nil, p.errorf(t, "OR needs a filter before it; remove it or add one")
			}
			if len(alts)+1 == maxAnyOf {
				return nil, p.errorf(t, "at most %d alternatives are allowed; remove an OR", maxAnyOf)
			}
			alts = append(alts, cur.f)
			cur, or = &alternative{f: &pxperfv1.Filter{}}, t
			continue
		}
		if err := p.add(cur, t); err != nil {
			return nil, err
		}
		or = token{}
	}
}

// parser holds the state of one [Parse].
type parser struct {
	input string
}

// alternative is one alternative of a filter string being parsed: the
// criteria between two ORs.
type alternative struct {
	f     *pxperfv1.Filter
	seen  map[string]token // single-valued keys already given
	terms int
}

// token is one white-space separated token of the input.
type token struct {
	raw    string // as written
	pos    int    // byte offset of raw in the input
	negate bool   // written with a leading '-'
	quoted bool   // holds a quote (after the '-')
	key    string // lower-cased key; "" for free text
	value  string // unquoted value
}

// add adds t's criterion to a, or, for a negated t, one exclusion. Each
// token is checked as it is added, so that a limit (too many methods, a
// bad glob) is reported at the token that broke it.
func (p *parser) add(a *alternative, t token) error {
	a.terms++
	dst, seen := a.f, a.seen
	if t.negate {
		dst, seen = &pxperfv1.Filter{}, nil
	}
	seen, err := p.apply(dst, seen, t)
	if err != nil {
		return err
	}
	if t.negate {
		// Checked alone first, so that the reason names its field, not
		// exclude[i]'s.
		if err := p.check(t, dst); err != nil {
			return err
		}
		a.f.Exclude = append(a.f.Exclude, dst)
	} else {
		a.seen = seen
	}
	return p.check(t, a.f)
}

// check compiles f, as an alternative of an any_of, and reports why it
// does not compile at t.
func (p *parser) check(t token, f *pxperfv1.Filter) error {
	if _, err := compile(f, anyOf); err != nil {
		reason := err.Error()
		if fe, ok := errors.AsType[*FieldError](err); ok {
			reason = fe.Field + ": " + fe.Reason
		}
		return p.errorf(t, "%s", reason)
	}
	return nil
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
	t.quoted = strings.ContainsRune(body, '"')
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
const keys = "method, status, host (domain), url, regex (url-regex), is, proxy, slower-than, larger-than, smaller-than, mime (mime-type, content-type), body"

// apply adds t's criterion to f, whose single-valued keys already given are
// in seen, and returns seen with t's key added.
func (p *parser) apply(f *pxperfv1.Filter, seen map[string]token, t token) (map[string]token, error) {
	key := t.key
	switch key {
	case "domain":
		key = "host"
	case "status-code":
		key = "status"
	case "mime-type", "content-type":
		key = "mime"
	case "url-regex":
		key = "regex"
	case "":
		body := t.raw
		if t.negate {
			body = body[1:]
		}
		if !t.quoted && len(body) > 2 && body[0] == '/' && body[len(body)-1] == '/' {
			key, t.value = "regex", body[1:len(body)-1]
		}
	}
	if key != "" && t.value == "" {
		return nil, p.errorf(t, "%s needs a value after the colon", key)
	}
	once := key // the key a single-valued criterion is counted under
	switch key {
	case "":
		once = "text"
	case "method", "status":
		once = ""
	case "is":
		once = "is:" + isKind(t.value)
	}
	if once != "" {
		if prev, ok := seen[once]; ok {
			return nil, p.errorf(t, "%s", twice(once, prev))
		}
		if seen == nil {
			seen = map[string]token{}
		}
		seen[once] = t
	}
	switch key {
	case "":
		if t.value == "" {
			return nil, p.errorf(t, "empty text; remove the quotes or put words in them")
		}
		f.Text = t.value
	case "method":
		for m := range strings.SplitSeq(t.value, ",") {
			if m == "" {
				return nil, p.errorf(t, "empty method in the list; write method:GET,POST")
			}
			f.Methods = append(f.Methods, strings.ToUpper(m))
		}
	case "status":
		for v := range strings.SplitSeq(t.value, ",") {
			r, err := parseStatus(v)
			if err != nil {
				return nil, p.errorf(t, "%v", err)
			}
			f.StatusRanges = append(f.StatusRanges, r)
		}
	case "host":
		f.Host = t.value
	case "url":
		f.Url = t.value
	case "regex":
		f.UrlRegex = t.value
	case "is":
		if err := applyIs(f, t.value); err != nil {
			return nil, p.errorf(t, "%v", err)
		}
	case "proxy":
		switch strings.ToLower(t.value) {
		case "direct":
			f.Route = pxperfv1.Route_ROUTE_DIRECT
		case "upstream", "proxy":
			f.Route = pxperfv1.Route_ROUTE_PROXY
		default:
			return nil, p.errorf(t, "unknown proxy: value %q; write proxy:direct or proxy:upstream", t.value)
		}
	case "slower-than":
		d, err := parseDuration(t.value)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		f.MinDuration = durationpb.New(d)
	case "larger-than":
		n, err := parseSize(t.value)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		f.MinSize = proto.Int64(n + 1) // parseSize stays below MaxInt64
	case "smaller-than":
		n, err := parseSize(t.value)
		switch {
		case err != nil:
			return nil, p.errorf(t, "%v", err)
		case n == 0:
			return nil, p.errorf(t, "no size is smaller than 0; write smaller-than:1 for empty responses")
		}
		f.MaxSize = proto.Int64(n - 1)
	case "mime":
		f.ContentType = t.value
	case "body":
		f.BodyText = t.value
	default:
		return nil, p.errorf(t, "unknown key %q; the keys are %s (quote the token to search for it as text)", t.key, keys)
	}
	return seen, nil
}

// twice says that the single-valued criterion counted under key was given
// twice, first as prev.
func twice(key string, prev token) string {
	switch key {
	case "text":
		return fmt.Sprintf(`free text is given twice (first as %s): the filter holds one; put a phrase in quotes, "like this"`, prev.raw)
	case "is:state":
		return fmt.Sprintf("a state is given twice (first as %s): an entry has one; list states as is:pending,failed", prev.raw)
	}
	return fmt.Sprintf("%s: is given twice (first as %s): the filter holds one; use OR for either", strings.TrimPrefix(key, "is:"), prev.raw)
}

// isKind returns the kind of criterion an is: value sets: "state",
// "tunnel", "error", or "" when it is none of them (apply reports it).
func isKind(value string) string {
	first, _, _ := strings.Cut(value, ",")
	switch strings.ToLower(first) {
	case "pending", "completed", "failed":
		return "state"
	case "tunnel":
		return "tunnel"
	case "error", "errors":
		return "error"
	}
	return ""
}

// applyIs sets the criterion of an is: value in f: a comma list of states,
// or one of tunnel and error.
func applyIs(f *pxperfv1.Filter, value string) error {
	const known = "is:pending, is:completed, is:failed (or a list: is:pending,failed), is:tunnel or is:error"
	kind := isKind(value)
	for v := range strings.SplitSeq(value, ",") {
		lv := strings.ToLower(v)
		if isKind(lv) != kind || kind == "" {
			if kind != "" && isKind(lv) != "" {
				return fmt.Errorf("%s cannot share a list with %s; only states make a list, so write is:%s as a term of its own", v, strings.Split(value, ",")[0], lv)
			}
			return fmt.Errorf("unknown is: value %q; write %s", v, known)
		}
		switch lv {
		case "pending":
			f.States = append(f.States, pxperfv1.EntryState_ENTRY_STATE_PENDING)
		case "completed":
			f.States = append(f.States, pxperfv1.EntryState_ENTRY_STATE_COMPLETED)
		case "failed":
			f.States = append(f.States, pxperfv1.EntryState_ENTRY_STATE_FAILED)
		case "tunnel":
			if f.Tunnel != nil {
				return fmt.Errorf("is:tunnel is given twice")
			}
			f.Tunnel = proto.Bool(true)
		default:
			if f.ErrorsOnly {
				return fmt.Errorf("is:%s is given twice", v)
			}
			f.ErrorsOnly = true
		}
	}
	return nil
}

// parseSize parses a size in bytes: a number, optionally with a
// fraction, and a unit: none or b for bytes, k, kb or kib for 1024, m, mb
// or mib for 1024², g, gb or gib for 1024³ (case-insensitive).
func parseSize(v string) (int64, error) {
	i := strings.IndexFunc(v, func(r rune) bool { return !('0' <= r && r <= '9' || r == '.') })
	if i < 0 {
		i = len(v)
	}
	num, unit := v[:i], strings.ToLower(v[i:])
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30, "gib": 30}
	sh, ok := shift[unit]
	n, err := strconv.ParseFloat(num, 64)
	switch {
	case !ok || err != nil || num == "":
		return 0, fmt.Errorf("%q is not a size; write 1000, 10k, 1.5M or 2G (k = 1024 bytes)", v)
	case n*float64(uint64(1)<<sh) >= math.MaxInt64:
		return 0, fmt.Errorf("%q is too large", v)
	}
	return int64(n * float64(uint64(1)<<sh)), nil
}

// parseStatus parses one status criterion: 404, >=400, >400, <=399, <400,
// =404, 4xx, 40x or 500-599.
func parseStatus(v string) (*pxperfv1.StatusRange, error) {
	num := func(s string) (int32, error) {
		n, err := strconv.Atoi(s)
		if err != nil || len(s) != 3 {
			return 0, fmt.Errorf("status %q is not a three-digit code; write 404, >=400, 4xx or 500-599", v)
		}
		if n < int(minStatus) || n > int(maxStatus) {
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
