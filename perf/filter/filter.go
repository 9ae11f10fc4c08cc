// Package filter is the filter language of pxperf: [Parse] reads its text
// form into a [pxperfv1.Filter], and [Compile] compiles one into a [Filter]
// that selects entries.
//
// [Compile] checks the filter once and pre-computes everything Match needs
// (upper-cased methods, lower-cased substrings, validated globs, compiled
// regular expressions, the query parsed), so that [Filter.Match] runs on
// the hot path of every published entry and every subscriber without
// allocating.
//
// Every set criterion must match (AND); a filter's any_of adds alternatives
// (OR) and its exclude exclusions (NOT). String matching is case-insensitive
// for ASCII letters only: other bytes, including every byte of a non-ASCII
// UTF-8 character, are compared exactly, so "É" does not match "é".
//
// # Host and URL patterns
//
// The host and url criteria are a case-insensitive substring, or, when the
// pattern contains any of '*', '?' or '[', a glob that must match the whole
// string. Globs use the syntax of [path.Match], with one difference so that a
// URL can be matched: '*' matches any sequence of characters including '/',
// and '?' matches any single character including '/'. A '?' or a '[...]'
// class matches one UTF-8 character (or one byte that is not valid UTF-8), as
// in [path.Match]. The same matcher serves host and url.
//
// Match costs time linear in the size of the entry, except for a glob chunk
// (the terms between two stars) that holds a '?' or a class: that costs up
// to the product of the chunk's length and the string's, at most
// 1024 × 8192 byte comparisons for a url (about 13ms). There is no
// backtracking blow-up.
package filter

import (
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/contract"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Limits of the rules on pxperf.v1.Filter and StatusRange
// (proto/pxperf/v1/entry.proto), read from the descriptors when the package
// is initialised: the contract is their one home. Protovalidate checks them
// at the RPC edge too; Compile checks them again so that it stands alone.
var (
	maxMethods        = maxItems("methods")
	maxStatusRanges   = maxItems("status_ranges")
	minStatus         = contract.Rules(&pxperfv1.StatusRange{}, "min").GetInt32().GetGte()
	maxStatus         = contract.Rules(&pxperfv1.StatusRange{}, "max").GetInt32().GetLte()
	maxHostLen        = maxBytes("host")
	maxURLLen         = maxBytes("url")
	maxContentTypeLen = maxBytes("content_type")
	maxTextLen        = maxBytes("text")
	maxStates         = maxItems("states")
	maxURLRegexLen    = maxBytes("url_regex")
	maxBodyTextLen    = maxBytes("body_text")
	maxAnyOf          = maxItems("any_of")
	maxExclude        = maxItems("exclude")
	maxQueryLen       = maxBytes("query")
)

// Limits no rule expresses.
const (
	// maxMethodLen is the longest method that the pattern on Filter.methods
	// takes (TestMethodLenMatchesPattern holds the two together).
	maxMethodLen = 32
	// maxRegexInsts bounds url_regex once compiled, as the comment on
	// Filter.url_regex says.
	maxRegexInsts = 2000
)

// maxBytes is the max_bytes rule of Filter's string field name.
func maxBytes(name protoreflect.Name) int {
	return int(contract.Rules(&pxperfv1.Filter{}, name).GetString().GetMaxBytes())
}

// maxItems is the max_items rule of Filter's repeated field name.
func maxItems(name protoreflect.Name) int {
	return int(contract.Rules(&pxperfv1.Filter{}, name).GetRepeated().GetMaxItems())
}

// ErrInvalid is wrapped by every error [Compile] returns: test for it with
// [errors.Is]. The error is a [*FieldError] that names the offending field.
var ErrInvalid = errors.New("invalid filter")

// FieldError reports a field of a [pxperfv1.Filter] that [Compile] rejects.
// It wraps [ErrInvalid], and the [*SyntaxError] of a query that does not
// parse.
type FieldError struct {
	// Field is the proto field path of the offending value, for example
	// "host", "methods[0]", "status_ranges[1].min", "any_of[2].url_regex"
	// or "query".
	Field string
	// Reason says what is wrong and what to change, for example
	// "bad glob: syntax error in pattern; ...".
	Reason string
	// Syntax is the query's syntax error when Field is "query" and the
	// query does not parse; nil otherwise.
	Syntax *SyntaxError
}

// Error returns "invalid filter: FIELD: REASON".
func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrInvalid, e.Field, e.Reason)
}

// Unwrap returns [ErrInvalid], and Syntax when it is set.
func (e *FieldError) Unwrap() []error {
	if e.Syntax != nil {
		return []error{ErrInvalid, e.Syntax}
	}
	return []error{ErrInvalid}
}

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Filter is a compiled [pxperfv1.Filter]. Create one with [Compile].
//
// A Filter is immutable, so it is safe for concurrent use. A nil *Filter
// matches everything.
type Filter struct {
	methods     []string // upper-cased; empty: any method
	ranges      []statusRange
	errorsOnly  bool
	host        pattern
	url         pattern
	route       pxperfv1.Route // ROUTE_UNSPECIFIED: any route
	minDuration time.Duration  // 0: no criterion
	contentType string         // ASCII lower-cased; "": no criterion
	text        string         // ASCII lower-cased; "": no criterion
	minSize     int64          // 0: no criterion
	maxSize     int64          // -1: no criterion
	states      uint8          // bit 1<<state for each state kept; 0: any state
	tunnel      int8           // 1: tunnels only, -1: plain requests only, 0: both
	urlRegex    *regexp.Regexp // nil: no criterion
	bodyText    string         // ASCII lower-cased; "": no criterion
	anyOf       []*Filter      // at least one must match; empty: no criterion
	exclude     []*Filter      // none may match
	empty       bool
}

// statusRange is an inclusive range of HTTP status codes.
type statusRange struct{ lo, hi int32 }

// pattern is a compiled host or url criterion. The zero value is unset.
type pattern struct {
	// s is the pattern: the glob as given (glob.match folds case itself,
	// because lowering a class such as [Z-a] would change what it matches),
	// or the substring ASCII lower-cased, as containsFold needs.
	s string
	// glob is s compiled when s is a glob, else nil.
	glob glob
}

// Compile checks f and returns a [Filter] for it. A nil or empty filter
// matches everything. f's query, if any, is parsed and combined with the
// other fields as [Resolve] says.
//
// Compile copies what it needs, so f may be changed or reused afterwards.
// The limits are those documented on pxperf.v1.Filter. On the first field it
// rejects, Compile returns a [*FieldError] that wraps [ErrInvalid].
func Compile(f *pxperfv1.Filter) (*Filter, error) {
	r, err := Resolve(f)
	if err != nil {
		return nil, err
	}
	return compile(r, top)
}

// level is where a filter sits in another: what it may hold.
type level int

const (
	top     level = iota // the filter itself: anything
	anyOf                // in any_of: exclude, but not any_of
	exclude              // in exclude: neither any_of nor exclude
)

// compile compiles f, which sits at lv, and what it holds.
func compile(f *pxperfv1.Filter, lv level) (*Filter, error) {
	c := &Filter{
		errorsOnly: f.GetErrorsOnly(),
		maxSize:    -1,
	}
	var err error
	if f.GetQuery() != "" {
		// Resolve took the top filter's query; a nested one is refused.
		return nil, fieldError("query", "only the outermost filter may hold a query; move it there")
	}
	if c.methods, err = compileMethods(f.GetMethods()); err != nil {
		return nil, err
	}
	if c.ranges, err = compileStatusRanges(f.GetStatusRanges()); err != nil {
		return nil, err
	}
	if c.host, err = compilePattern("host", f.GetHost(), maxHostLen); err != nil {
		return nil, err
	}
	if c.url, err = compilePattern("url", f.GetUrl(), maxURLLen); err != nil {
		return nil, err
	}
	if c.route, err = compileRoute(f.GetRoute()); err != nil {
		return nil, err
	}
	if c.minDuration, err = compileMinDuration(f); err != nil {
		return nil, err
	}
	if c.contentType, err = compileSubstring("content_type", f.GetContentType(), maxContentTypeLen); err != nil {
		return nil, err
	}
	if c.text, err = compileSubstring("text", f.GetText(), maxTextLen); err != nil {
		return nil, err
	}
	if c.minSize, c.maxSize, err = compileSizes(f); err != nil {
		return nil, err
	}
	if c.states, err = compileStates(f.GetStates()); err != nil {
		return nil, err
	}
	if f != nil && f.Tunnel != nil {
		c.tunnel = -1
		if f.GetTunnel() {
			c.tunnel = 1
		}
	}
	if c.urlRegex, err = compileRegex("url_regex", f.GetUrlRegex()); err != nil {
		return nil, err
	}
	if c.bodyText, err = compileSubstring("body_text", f.GetBodyText(), maxBodyTextLen); err != nil {
		return nil, err
	}
	if c.anyOf, err = compileNested(f.GetAnyOf(), lv, anyOf, maxAnyOf); err != nil {
		return nil, err
	}
	if c.exclude, err = compileNested(f.GetExclude(), lv, exclude, maxExclude); err != nil {
		return nil, err
	}
	c.empty = c.isEmpty()
	return c, nil
}

// isEmpty reports whether f sets no criterion.
func (f *Filter) isEmpty() bool {
	return f.ownEmpty() && len(f.anyOf) == 0 && len(f.exclude) == 0
}

// ownEmpty reports whether f sets no criterion of its own, leaving aside
// the filters it holds.
func (f *Filter) ownEmpty() bool {
	return len(f.methods) == 0 && len(f.ranges) == 0 && !f.errorsOnly &&
		f.host.s == "" && f.url.s == "" && f.route == pxperfv1.Route_ROUTE_UNSPECIFIED &&
		f.minDuration == 0 && f.contentType == "" && f.text == "" &&
		f.minSize == 0 && f.maxSize < 0 && f.states == 0 && f.tunnel == 0 &&
		f.urlRegex == nil && f.bodyText == ""
}

// compileNested compiles fs, the filters a filter at lv holds in its any_of
// (inner is anyOf) or its exclude (inner is exclude), at most maxItems.
func compileNested(fs []*pxperfv1.Filter, lv, inner level, maxItems int) ([]*Filter, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	field := "any_of"
	if inner == exclude {
		field = "exclude"
	}
	switch {
	case lv == exclude:
		return nil, fieldError(field, "a filter in exclude may not hold %s; write the criteria of one exclusion in one filter", field)
	case lv == anyOf && inner == anyOf:
		return nil, fieldError(field, "a filter in any_of may not hold any_of; list every alternative in the outermost any_of")
	case len(fs) > maxItems:
		return nil, fieldError(field, "at most %d filters are allowed, got %d; remove some", maxItems, len(fs))
	}
	out := make([]*Filter, len(fs))
	for i, f := range fs {
		c, err := compile(f, inner)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Field = fmt.Sprintf("%s[%d].%s", field, i, fe.Field)
			}
			return nil, err
		}
		if inner == exclude && c.isEmpty() {
			return nil, fieldError(fmt.Sprintf("%s[%d]", field, i), "sets no criterion, so it would exclude every entry; set one or remove it")
		}
		out[i] = c
	}
	return out, nil
}

// compileSizes returns the size bounds of f: min_size (0 when unset) and
// max_size (-1 when unset).
func compileSizes(f *pxperfv1.Filter) (lo, hi int64, err error) {
	lo, hi = f.GetMinSize(), -1
	hasMax := f != nil && f.MaxSize != nil
	if hasMax {
		hi = f.GetMaxSize()
	}
	switch {
	case lo < 0:
		return 0, 0, fieldError("min_size", "must not be negative, got %d", lo)
	case hasMax && hi < 0:
		return 0, 0, fieldError("max_size", "must not be negative, got %d", hi)
	case hi >= 0 && lo > hi:
		return 0, 0, fieldError("min_size", "must not be greater than max_size (%d), got %d; swap them", hi, lo)
	}
	return lo, hi, nil
}

// compileStates returns the bit set of the states kept.
func compileStates(states []pxperfv1.EntryState) (uint8, error) {
	if len(states) > maxStates {
		return 0, fieldError("states", "at most %d states are allowed, got %d; remove some", maxStates, len(states))
	}
	var set uint8
	for i, st := range states {
		switch st {
		case pxperfv1.EntryState_ENTRY_STATE_PENDING, pxperfv1.EntryState_ENTRY_STATE_COMPLETED, pxperfv1.EntryState_ENTRY_STATE_FAILED:
			set |= 1 << st
		default:
			return 0, fieldError(fmt.Sprintf("states[%d]", i), "must be ENTRY_STATE_PENDING, ENTRY_STATE_COMPLETED or ENTRY_STATE_FAILED, got %v", st)
		}
	}
	return set, nil
}

// compileRegex compiles the RE2 expression re, case-insensitive unless it
// says otherwise, or returns nil for an empty one.
func compileRegex(field, re string) (*regexp.Regexp, error) {
	if re == "" {
		return nil, nil
	}
	if len(re) > maxURLRegexLen {
		return nil, fieldError(field, "must be at most %d bytes, got %d; shorten it", maxURLRegexLen, len(re))
	}
	// Parsed here rather than by regexp.Compile so that an error quotes
	// the expression as given, without the (?i) added below.
	parsed, err := syntax.Parse(re, syntax.Perl|syntax.FoldCase)
	if err != nil {
		return nil, fieldError(field, "%v; write it in RE2 syntax (github.com/google/re2/wiki/Syntax)", err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, fieldError(field, "%v; simplify it", err)
	}
	if n := len(prog.Inst); n > maxRegexInsts {
		return nil, fieldError(field, "compiles to %d instructions, more than %d; use fewer or smaller repetitions", n, maxRegexInsts)
	}
	return regexp.Compile("(?i)" + re)
}

func compileMethods(methods []string) ([]string, error) {
	if len(methods) == 0 {
		return nil, nil
	}
	if len(methods) > maxMethods {
		return nil, fieldError("methods", "at most %d methods are allowed, got %d; remove some", maxMethods, len(methods))
	}
	out := make([]string, len(methods))
	for i, m := range methods {
		if !isMethodToken(m) {
			return nil, fieldError(fmt.Sprintf("methods[%d]", i),
				"must be an HTTP method: a letter followed by at most %d letters, digits, '-' or '_', for example GET",
				maxMethodLen-1)
		}
		out[i] = upperASCII(m)
	}
	return out, nil
}

// isMethodToken reports whether m matches ^[A-Za-z][A-Za-z0-9_-]{0,31}$, the
// pattern on pxperf.v1.Filter.methods.
func isMethodToken(m string) bool {
	if m == "" || len(m) > maxMethodLen || !isLetter(m[0]) {
		return false
	}
	for i := 1; i < len(m); i++ {
		c := m[i]
		if !isLetter(c) && !('0' <= c && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func compileStatusRanges(ranges []*pxperfv1.StatusRange) ([]statusRange, error) {
	if len(ranges) == 0 {
		return nil, nil
	}
	if len(ranges) > maxStatusRanges {
		return nil, fieldError("status_ranges", "at most %d ranges are allowed, got %d; merge or remove some", maxStatusRanges, len(ranges))
	}
	out := make([]statusRange, len(ranges))
	for i, r := range ranges {
		field := fmt.Sprintf("status_ranges[%d]", i)
		switch {
		case r == nil:
			return nil, fieldError(field, "must be set; give min and max (%d..%d)", minStatus, maxStatus)
		case r.GetMin() < minStatus || r.GetMin() > maxStatus:
			return nil, fieldError(field+".min", "must be between %d and %d, got %d", minStatus, maxStatus, r.GetMin())
		case r.GetMax() < minStatus || r.GetMax() > maxStatus:
			return nil, fieldError(field+".max", "must be between %d and %d, got %d", minStatus, maxStatus, r.GetMax())
		case r.GetMin() > r.GetMax():
			return nil, fieldError(field, "min (%d) must not be greater than max (%d); swap them", r.GetMin(), r.GetMax())
		}
		out[i] = statusRange{lo: r.GetMin(), hi: r.GetMax()}
	}
	return out, nil
}

func compilePattern(field, p string, maxLen int) (pattern, error) {
	if len(p) > maxLen {
		return pattern{}, fieldError(field, "must be at most %d bytes, got %d; shorten it", maxLen, len(p))
	}
	if !strings.ContainsAny(p, "*?[") {
		return pattern{s: lowerASCII(p)}, nil
	}
	// glob.match accepts exactly the syntax of path.Match, and path.Match
	// checks the whole pattern even when the name does not match.
	if _, err := path.Match(p, ""); err != nil {
		return pattern{}, fieldError(field,
			"bad glob: %v; close every '[' with ']' after at least one character, "+
				"do not start a range with '-' or ']', and do not end the pattern with '\\'", err)
	}
	return pattern{s: p, glob: compileGlob(p)}, nil
}

func compileRoute(r pxperfv1.Route) (pxperfv1.Route, error) {
	if r.Descriptor().Values().ByNumber(r.Number()) == nil {
		return 0, fieldError("route", "unknown value %d; use ROUTE_DIRECT, ROUTE_PROXY, or leave it unset for any route", int32(r))
	}
	return r, nil
}

func compileMinDuration(f *pxperfv1.Filter) (time.Duration, error) {
	d := f.GetMinDuration()
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fieldError("min_duration", "%v; give seconds within ±315576000000 (10000 years) and nanos within ±999999999, both of the same sign", err)
	}
	if d.GetSeconds() < 0 || d.GetNanos() < 0 {
		return 0, fieldError("min_duration", "must not be negative, got %v; use 0 or leave it unset for any duration", d.AsDuration())
	}
	// AsDuration saturates at about 292 years; a longer min_duration then
	// matches entries whose total also saturates, which is harmless.
	return d.AsDuration(), nil
}

func compileSubstring(field, s string, maxLen int) (string, error) {
	if len(s) > maxLen {
		return "", fieldError(field, "must be at most %d bytes, got %d; shorten it", maxLen, len(s))
	}
	return lowerASCII(s), nil
}

// Empty reports whether f matches every entry, so that callers can skip
// calling [Filter.Match]. A nil *Filter is empty.
func (f *Filter) Empty() bool {
	return f == nil || f.empty
}

// Match reports whether e passes every criterion set in f. A nil e is taken
// as an empty [pxperfv1.Entry].
//
// The host criterion reads Entry.host as stored; pxperf fills it from the
// url at ingest when a producer leaves it empty, as it resolves an
// unspecified state. An entry without timings.total does not match a
// min_duration above zero. The body text is searched in the bodies' data in
// e; see [Filter.MatchBodies] for bodies held apart.
//
// Match does not allocate (a url_regex takes its matcher from the regexp
// package's pool) and is safe for concurrent use.
func (f *Filter) Match(e *pxperfv1.Entry) bool {
	return f.MatchBodies(e, nil, nil)
}

// MatchBodies is [Filter.Match] for an entry whose bodies are held apart
// from it: request and response, when not nil, are the data of its request
// and response bodies, read in place of those in e.
func (f *Filter) MatchBodies(e *pxperfv1.Entry, request, response []byte) bool {
	if f.Empty() {
		return true
	}
	if !f.matchOwn(e, request, response) {
		return false
	}
	if len(f.anyOf) > 0 {
		found := false
		for _, a := range f.anyOf {
			if found = a.MatchBodies(e, request, response); found {
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, x := range f.exclude {
		if x.MatchBodies(e, request, response) {
			return false
		}
	}
	return true
}

// NeedsBodies reports whether f reads the bodies' data, so that a caller
// that holds them apart must pass them to [Filter.MatchBodies].
func (f *Filter) NeedsBodies() bool {
	if f.Empty() {
		return false
	}
	if f.bodyText != "" {
		return true
	}
	for _, fs := range [][]*Filter{f.anyOf, f.exclude} {
		for _, g := range fs {
			if g.NeedsBodies() {
				return true
			}
		}
	}
	return false
}

// Size returns the size of an entry as filters and listings use it: the
// bytes received from the target, or, when the producer did not count
// them, the response body's size before truncation.
func Size(e *pxperfv1.Entry) int64 {
	if n := e.GetBytesReceived(); n > 0 {
		return n
	}
	b := e.GetResponseBody()
	return max(b.GetOriginalSize(), int64(len(b.GetData())))
}

// matchOwn reports whether e passes f's own criteria, leaving aside the
// filters f holds.
func (f *Filter) matchOwn(e *pxperfv1.Entry, request, response []byte) bool {
	// Cheap integer criteria first, strings last.
	if st := e.GetState(); f.states != 0 && (st < 0 || st > 7 || f.states&(1<<st) == 0) {
		return false
	}
	if f.tunnel != 0 && e.GetTunnel() != (f.tunnel > 0) {
		return false
	}
	if f.minSize > 0 || f.maxSize >= 0 {
		if n := Size(e); n < f.minSize || f.maxSize >= 0 && n > f.maxSize {
			return false
		}
	}
	if f.route != pxperfv1.Route_ROUTE_UNSPECIFIED && e.GetProxyDecision().GetRoute() != f.route {
		return false
	}
	if f.errorsOnly && !failed(e) {
		return false
	}
	if len(f.ranges) > 0 && !f.statusIn(e.GetStatusCode()) {
		return false
	}
	if len(f.methods) > 0 && !f.methodIn(e.GetMethod()) {
		return false
	}
	if f.minDuration > 0 {
		total := e.GetTimings().GetTotal()
		if total == nil || total.AsDuration() < f.minDuration {
			return false
		}
	}
	if f.host.s != "" && !f.host.match(e.GetHost()) {
		return false
	}
	if f.contentType != "" && !containsFold(e.GetResponseBody().GetContentType(), f.contentType) {
		return false
	}
	if f.url.s != "" && !f.url.match(e.GetUrl()) {
		return false
	}
	if f.text != "" && !textIn(e, f.text) {
		return false
	}
	if f.urlRegex != nil && !f.urlRegex.MatchString(e.GetUrl()) {
		return false
	}
	if f.bodyText != "" {
		if request == nil {
			request = e.GetRequestBody().GetData()
		}
		if response == nil {
			response = e.GetResponseBody().GetData()
		}
		if !containsFold(request, f.bodyText) && !containsFold(response, f.bodyText) {
			return false
		}
	}
	return true
}

// Parts is a [Filter] split so that a caller can test the host and the
// status code apart from the entry: one that holds many entries with few
// distinct hosts can then test each distinct host once, and read only the
// entries that pass. An entry matches the filter exactly when it passes
// every part that is not nil. The parts do not allocate and are safe for
// concurrent use.
//
// Host and Status test the outermost filter's host and status_ranges, or,
// when it has none and every filter of its any_of has one, whether any of
// those accepts: "host:a OR host:b" is still tested on the column.
type Parts struct {
	// Host tests Entry.host; nil when the filter sets no host criterion.
	Host func(host string) bool
	// Status tests Entry.status_code against status_ranges; nil when the
	// filter sets none. errors_only is not part of it: it reads more than
	// the status.
	Status func(code int32) bool
	// Rest tests the other criteria, without repeating Host and Status;
	// nil when there are none, or when they read the bodies.
	Rest func(*pxperfv1.Entry) bool
	// RestBodies is Rest for a filter that reads the bodies (see
	// [Filter.NeedsBodies]), as [Filter.MatchBodies] takes them; nil
	// otherwise.
	RestBodies func(e *pxperfv1.Entry, request, response []byte) bool
}

// Parts splits f as [Parts] says. All parts of an empty or nil f are nil.
func (f *Filter) Parts() Parts {
	if f.Empty() {
		return Parts{}
	}
	var p Parts
	switch {
	case f.host.s != "":
		p.Host = f.host.match
	case len(f.anyOf) > 0 && allAlternatives(f.anyOf, func(a *Filter) bool { return a.host.s != "" }):
		// Every alternative tests the host: an entry whose host none of
		// them accepts matches none. Rest still tests the alternatives
		// whole.
		p.Host = func(host string) bool {
			for _, a := range f.anyOf {
				if a.host.match(host) {
					return true
				}
			}
			return false
		}
	}
	switch {
	case len(f.ranges) > 0:
		p.Status = f.statusIn
	case len(f.anyOf) > 0 && allAlternatives(f.anyOf, func(a *Filter) bool { return len(a.ranges) > 0 }):
		p.Status = func(code int32) bool {
			for _, a := range f.anyOf {
				if a.statusIn(code) {
					return true
				}
			}
			return false
		}
	}
	rest := *f
	rest.host, rest.ranges = pattern{}, nil
	rest.empty = rest.isEmpty()
	switch {
	case rest.empty:
	case rest.NeedsBodies():
		p.RestBodies = rest.MatchBodies
	default:
		p.Rest = rest.Match
	}
	return p
}

// allAlternatives reports whether every filter of alts passes test.
func allAlternatives(alts []*Filter, test func(*Filter) bool) bool {
	for _, a := range alts {
		if !test(a) {
			return false
		}
	}
	return true
}

// failed reports whether e counts as an error for errors_only: it failed,
// carries an error, or has a status of 400 or more.
func failed(e *pxperfv1.Entry) bool {
	return e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED ||
		e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED ||
		e.GetStatusCode() >= 400
}

func (f *Filter) statusIn(code int32) bool {
	for _, r := range f.ranges {
		if r.lo <= code && code <= r.hi {
			return true
		}
	}
	return false
}

func (f *Filter) methodIn(method string) bool {
	for _, m := range f.methods {
		if equalFoldASCII(method, m) {
			return true
		}
	}
	return false
}

// textIn reports whether the lower-cased text occurs in e's url, error
// message, or any request or response header name or value.
func textIn(e *pxperfv1.Entry, text string) bool {
	if containsFold(e.GetUrl(), text) || containsFold(e.GetError().GetMessage(), text) {
		return true
	}
	for _, h := range e.GetRequestHeaders() {
		if containsFold(h.GetName(), text) || containsFold(h.GetValue(), text) {
			return true
		}
	}
	for _, h := range e.GetResponseHeaders() {
		if containsFold(h.GetName(), text) || containsFold(h.GetValue(), text) {
			return true
		}
	}
	return false
}

func (p pattern) match(s string) bool {
	if p.glob == nil {
		return containsFold(s, p.s)
	}
	// Compile validated the glob, so err is always nil here; a malformed
	// pattern would simply not match.
	ok, err := p.glob.match(s)
	return ok && err == nil
}

func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// foldByte lower-cases an ASCII letter and returns any other byte unchanged.
func foldByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// lowerASCII lower-cases the ASCII letters of s, leaving every other byte
// alone (strings.ToLower would also change non-ASCII letters and replace
// invalid UTF-8).
func lowerASCII(s string) string {
	return mapASCII(s, 'A', 'Z', 'a')
}

// upperASCII upper-cases the ASCII letters of s, leaving every other byte
// alone.
func upperASCII(s string) string {
	return mapASCII(s, 'a', 'z', 'A')
}

// mapASCII moves every byte of s in the letter range lo..hi to the range
// that starts at to. It returns s itself when there is nothing to change.
func mapASCII(s string, lo, hi, to byte) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if lo <= b[i] && b[i] <= hi {
			b[i] = b[i] - lo + to
		}
	}
	return string(b)
}

// equalFoldASCII reports whether s and t are equal when ASCII letters are
// folded. Unlike [strings.EqualFold] it compares other bytes exactly.
func equalFoldASCII(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if foldByte(s[i]) != foldByte(t[i]) {
			return false
		}
	}
	return true
}

// containsFold reports whether sub occurs in s when ASCII letters are folded.
// sub must already be ASCII lower-cased (see lowerASCII); s is folded byte by
// byte as it is read, so nothing is allocated. Other bytes compare exactly.
func containsFold[T string | []byte](s T, sub string) bool {
	return indexFold(s, sub) >= 0
}

// indexFold returns the index of the first place where sub occurs in s when
// ASCII letters are folded, or -1; sub must be ASCII lower-cased.
//
// Like [strings.Index], it compares at each place where the first byte
// matches, and switches to Rabin-Karp once that has failed too often, so
// that a pattern such as "aaa…ab" in a long run of "a" costs O(len(s)), not
// O(len(s) × len(sub)).
func indexFold[T string | []byte](s T, sub string) int {
	n := len(sub)
	switch {
	case n == 0:
		return 0
	case n > len(s):
		return -1
	}
	first, firstUpper := sub[0], sub[0]
	if 'a' <= first && first <= 'z' {
		firstUpper = first - ('a' - 'A')
	}
	rest := sub[1:]
	fails := 0
	for i := 0; i <= len(s)-n; i++ {
		if c := s[i]; c != first && c != firstUpper {
			continue
		}
		if hasPrefixFold(s[i+1:], rest) {
			return i
		}
		// The cut-over of strings.Index: more than one false start in 16
		// bytes, plus a few.
		if fails++; fails > 4+i>>4 {
			if j := rabinKarpFold(s[i+1:], sub); j >= 0 {
				return i + 1 + j
			}
			return -1
		}
	}
	return -1
}

// primeRK is the prime base used by Rabin-Karp, as in package strings.
const primeRK = 16777619

// rabinKarpFold is indexFold by Rabin-Karp over the folded bytes of s:
// O(len(s) + len(sub)) unless hashes collide.
func rabinKarpFold[T string | []byte](s T, sub string) int {
	n := len(sub)
	if n > len(s) {
		return -1
	}
	var want, pow uint32 = 0, 1
	for i := 0; i < n; i++ {
		want = want*primeRK + uint32(sub[i])
		pow *= primeRK
	}
	var h uint32
	for i := 0; i < n; i++ {
		h = h*primeRK + uint32(foldByte(s[i]))
	}
	if h == want && hasPrefixFold(s, sub) {
		return 0
	}
	for i := n; i < len(s); i++ {
		h = h*primeRK + uint32(foldByte(s[i])) - pow*uint32(foldByte(s[i-n]))
		if h == want && hasPrefixFold(s[i-n+1:], sub) {
			return i - n + 1
		}
	}
	return -1
}

// hasPrefixFold reports whether s starts with prefix when ASCII letters are
// folded; prefix is ASCII lower-cased and no longer than s.
func hasPrefixFold[T string | []byte](s T, prefix string) bool {
	for i := 0; i < len(prefix); i++ {
		if foldByte(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// glob is a compiled shell pattern: its chunks in order. Match it with
// [glob.match].
type glob []globChunk

// globChunk is a run of single-character terms (literals, '?' and classes),
// possibly preceded by stars.
type globChunk struct {
	star       bool   // one or more '*' came before terms
	terms      string // as written in the pattern
	minW, maxW int    // the bytes of a name that terms can span; see chunkWidth
	// lit is terms unescaped and ASCII lower-cased, when terms are all
	// literals and start a character (see literalChunk); else "".
	lit string
}

// compileGlob splits pattern into chunks. It accepts any pattern; a
// malformed one is reported by glob.match, or, in Compile, by path.Match.
func compileGlob(pattern string) glob {
	var g glob
	for len(pattern) > 0 {
		var c globChunk
		c.star, c.terms, pattern = scanChunk(pattern)
		c.minW, c.maxW = chunkWidth(c.terms)
		c.lit = literalChunk(c.terms)
		g = append(g, c)
	}
	return g
}

// literalChunk returns terms unescaped and ASCII lower-cased when they are
// all literal bytes, so that glob.match can find them with indexFold in
// linear time, or "" when they hold a '?' or a class or are malformed.
//
// It also returns "" when the first byte is a UTF-8 continuation byte:
// glob.match tries chunks only where a character starts, which indexFold
// would not respect. Any other byte starts a character wherever glob.match
// could reach it.
func literalChunk(terms string) string {
	b := make([]byte, 0, len(terms))
	for i := 0; i < len(terms); i++ {
		switch terms[i] {
		case '?', '[':
			return ""
		case '\\':
			i++
			if i == len(terms) {
				return ""
			}
		}
		b = append(b, foldByte(terms[i]))
	}
	if len(b) == 0 || !utf8.RuneStart(b[0]) {
		return ""
	}
	return string(b)
}

// match reports whether name as a whole matches the glob, with ASCII letters
// folded. The syntax is [path.Match]'s and so is the only error,
// [path.ErrBadPattern]; unlike path.Match, '*' and '?' also match '/'.
//
// The algorithm is path.Match's: each star is followed by a chunk of
// single-character terms, and the leftmost place where a chunk matches is
// always good enough, except for the last chunk, which must end the name.
// Unlike path.Match it steps over name one UTF-8 character at a time, so a
// chunk never starts inside a multi-byte character, and it tries a chunk
// only where its width lets it fit (and, if it is the last, end the name).
func (g glob) match(name string) (bool, error) {
Chunks:
	for ci, c := range g {
		last := ci == len(g)-1
		if c.star && c.terms == "" {
			// A trailing star matches the rest, '/' included.
			return true, nil
		}
		if c.star && c.lit != "" && !last {
			// The leftmost place, found in linear time rather than by
			// trying matchChunk everywhere.
			j := indexFold(name, c.lit)
			if j < 0 {
				return false, nil
			}
			name = name[j+len(c.lit):]
			continue
		}
		t, ok, err := matchChunk(c.terms, name)
		if ok && (len(t) == 0 || !last) {
			name = t
			continue
		}
		if err != nil {
			return false, err
		}
		if c.star {
			for i := 0; i < len(name); {
				if name[i] < utf8.RuneSelf {
					i++
				} else {
					_, n := utf8.DecodeRuneInString(name[i:])
					i += n
				}
				if len(name)-i < c.minW {
					break
				}
				if last && len(name)-i > c.maxW {
					continue
				}
				t, ok, err := matchChunk(c.terms, name[i:])
				if ok {
					if last && len(t) > 0 {
						continue
					}
					name = t
					continue Chunks
				}
				if err != nil {
					return false, err
				}
			}
		}
		// Unlike path.Match, do not check the rest of the pattern here:
		// Compile did, once.
		return false, nil
	}
	return len(name) == 0, nil
}

// chunkWidth returns the fewest and the most bytes of a name that chunk can
// match: a literal byte matches one byte, a '?' or a class one character of
// 1 to [utf8.UTFMax] bytes (or one byte that is not valid UTF-8). For a
// malformed chunk it returns bounds that exclude nothing, and matchChunk
// reports the error.
func chunkWidth(chunk string) (minW, maxW int) {
	for len(chunk) > 0 {
		switch chunk[0] {
		case '[':
			chunk = chunk[1:]
			if len(chunk) > 0 && chunk[0] == '^' {
				chunk = chunk[1:]
			}
			for nrange := 0; ; nrange++ {
				if len(chunk) > 0 && chunk[0] == ']' && nrange > 0 {
					chunk = chunk[1:]
					break
				}
				var err error
				if _, chunk, err = classChar(chunk); err != nil {
					return 0, math.MaxInt
				}
				if chunk[0] == '-' {
					if _, chunk, err = classChar(chunk[1:]); err != nil {
						return 0, math.MaxInt
					}
				}
			}
			minW, maxW = minW+1, maxW+utf8.UTFMax
		case '?':
			chunk = chunk[1:]
			minW, maxW = minW+1, maxW+utf8.UTFMax
		case '\\':
			chunk = chunk[1:]
			if len(chunk) == 0 {
				return 0, math.MaxInt
			}
			fallthrough
		default:
			chunk = chunk[1:]
			minW, maxW = minW+1, maxW+1
		}
	}
	return minW, maxW
}

// scanChunk splits off the next chunk of pattern: a run of non-star terms,
// and whether one or more stars preceded it. It is path's scanChunk.
func scanChunk(pattern string) (star bool, chunk, rest string) {
	for len(pattern) > 0 && pattern[0] == '*' {
		pattern = pattern[1:]
		star = true
	}
	inRange := false
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			// A trailing backslash is reported by matchChunk.
			if i+1 < len(pattern) {
				i++
			}
		case '[':
			inRange = true
		case ']':
			inRange = false
		case '*':
			if !inRange {
				return star, pattern[:i], pattern[i:]
			}
		}
	}
	return star, pattern, ""
}

// matchChunk reports whether chunk matches the beginning of s and, if so,
// returns the rest of s. It is path's matchChunk with ASCII case folding,
// with '?' matching '/' too, and returning at the first mismatch: path's
// parses the rest of the chunk to report a malformed pattern whatever s is,
// which Compile has already checked, and which made a url glob several times
// slower.
func matchChunk(chunk, s string) (rest string, ok bool, err error) {
	for len(chunk) > 0 {
		if len(s) == 0 {
			return "", false, nil
		}
		switch chunk[0] {
		case '[':
			r, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			chunk = chunk[1:]
			negated := false
			if len(chunk) > 0 && chunk[0] == '^' {
				negated = true
				chunk = chunk[1:]
			}
			match := false
			nrange := 0
			for {
				if len(chunk) > 0 && chunk[0] == ']' && nrange > 0 {
					chunk = chunk[1:]
					break
				}
				var lo, hi rune
				if lo, chunk, err = classChar(chunk); err != nil {
					return "", false, err
				}
				hi = lo
				if chunk[0] == '-' {
					if hi, chunk, err = classChar(chunk[1:]); err != nil {
						return "", false, err
					}
				}
				match = match || inRangeFold(r, lo, hi)
				nrange++
			}
			if match == negated {
				return "", false, nil
			}

		case '?':
			_, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			chunk = chunk[1:]

		case '\\':
			chunk = chunk[1:]
			if len(chunk) == 0 {
				return "", false, path.ErrBadPattern
			}
			fallthrough

		default:
			if foldByte(chunk[0]) != foldByte(s[0]) {
				return "", false, nil
			}
			s = s[1:]
			chunk = chunk[1:]
		}
	}
	return s, true, nil
}

// classChar reads a possibly escaped character of a '[...]' class from chunk.
// It is path's getEsc.
func classChar(chunk string) (r rune, rest string, err error) {
	if len(chunk) == 0 || chunk[0] == '-' || chunk[0] == ']' {
		return 0, "", path.ErrBadPattern
	}
	if chunk[0] == '\\' {
		chunk = chunk[1:]
		if len(chunk) == 0 {
			return 0, "", path.ErrBadPattern
		}
	}
	r, n := utf8.DecodeRuneInString(chunk)
	if r == utf8.RuneError && n == 1 {
		return 0, "", path.ErrBadPattern
	}
	rest = chunk[n:]
	if len(rest) == 0 {
		return 0, "", path.ErrBadPattern
	}
	return r, rest, nil
}

// inRangeFold reports whether r, or r with the case of an ASCII letter
// swapped, lies in lo..hi.
func inRangeFold(r, lo, hi rune) bool {
	if lo <= r && r <= hi {
		return true
	}
	switch {
	case 'a' <= r && r <= 'z':
		r -= 'a' - 'A'
	case 'A' <= r && r <= 'Z':
		r += 'a' - 'A'
	default:
		return false
	}
	return lo <= r && r <= hi
}
