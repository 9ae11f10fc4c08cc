package filter

import (
	"errors"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// FuzzCompile checks that Compile never panics, that every error it returns
// is a *FieldError wrapping ErrInvalid, and that it rejects a host glob
// exactly when path.Match does.
func FuzzCompile(f *testing.F) {
	f.Add("GET", int32(200), int32(299), "*.example.com", "https://*/v1/*", int32(1), int64(1), int32(0), "json", "error")
	f.Add("", int32(0), int32(0), "", "", int32(0), int64(0), int32(0), "", "")
	f.Add("G ET", int32(500), int32(400), "[a-", `*\`, int32(9), int64(-1), int32(-5), "", "")
	f.Add("get", int32(99), int32(600), "[]", "[^", int32(2), int64(1), int32(2e9), strings.Repeat("c", 257), "")
	f.Fuzz(func(t *testing.T, method string, lo, hi int32, host, url string, route int32, seconds int64, nanos int32, contentType, text string) {
		pf := &pxperfv1.Filter{
			Methods:      []string{method},
			StatusRanges: []*pxperfv1.StatusRange{{Min: lo, Max: hi}},
			Host:         host,
			Url:          url,
			Route:        pxperfv1.Route(route),
			MinDuration:  &durationpb.Duration{Seconds: seconds, Nanos: nanos},
			ContentType:  contentType,
			Text:         text,
		}
		c, err := Compile(pf)
		checkCompileResult(t, pf, c, err)

		hostOnly := &pxperfv1.Filter{Host: host}
		c, err = Compile(hostOnly)
		checkCompileResult(t, hostOnly, c, err)
		if len(host) <= maxHostLen && strings.ContainsAny(host, "*?[") {
			_, perr := path.Match(host, "")
			if (err == nil) != (perr == nil) {
				t.Errorf("Compile(host %q) error = %v, but path.Match error = %v", host, err, perr)
			}
		}
	})
}

func checkCompileResult(t *testing.T, pf *pxperfv1.Filter, c *Filter, err error) {
	t.Helper()
	if err == nil {
		if c == nil {
			t.Fatalf("Compile(%v) = nil, nil", pf)
		}
		return
	}
	if c != nil {
		t.Errorf("Compile(%v) returned a Filter with error %v", pf, err)
	}
	var fe *FieldError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field == "" || fe.Reason == "" {
		t.Errorf("Compile(%v) error = %#v, want a *FieldError with field and reason wrapping ErrInvalid", pf, err)
	}
}

// FuzzMatch builds a filter and an entry from the fuzz inputs and checks
// that Match never panics and agrees with a slow reference built on the
// standard library; it also checks the matching helpers against simpler
// oracles (strings.Index, path.Match, refGlob).
func FuzzMatch(f *testing.F) {
	f.Add("GET", "*.example.com", "", "", "", int32(0), int32(0), false, int32(0), int64(0),
		"GET", "https://api.example.com/v1", "api.example.com", "", "Server", "Envoy", "application/json",
		int32(200), int32(2), int32(0), int32(2), true, int64(250e6), `v[0-9]/`, "users", int64(1), int64(1<<20), int32(2), int8(-1), `{"users":[]}`, int64(5000), false)
	f.Add("", "EXAMPLE", "https://*/v1/*", "envoy", "JSON", int32(200), int32(299), false, int32(2), int64(1e8),
		"get", "https://API.example.com/v1/users", "API.EXAMPLE.COM", "", "server", "envoy", "Application/JSON",
		int32(204), int32(2), int32(0), int32(2), true, int64(1e9), `^HTTPS://`, "", int64(0), int64(-1), int32(0), int8(0), "", int64(0), false)
	f.Add("POST", "", "*id=4?", "refused", "", int32(400), int32(599), true, int32(0), int64(0),
		"POST", "http://x/?id=42", "x", "connection refused", "", "", "",
		int32(0), int32(3), int32(2), int32(1), false, int64(0), "", "refused", int64(0), int64(0), int32(3), int8(1), "Connection REFUSED", int64(0), true)
	f.Add("", "[a-c]pi.*", "*[\uFFFD]", "ü", "", int32(0), int32(0), false, int32(0), int64(0),
		"", "é", "Api.x", "Ü", "\xff", "ü", "",
		int32(0), int32(0), int32(0), int32(0), false, int64(0), "(?-i)é", "Ü", int64(-1), int64(0), int32(9), int8(5), "ü", int64(-1), true)
	f.Add("", "[a-", `*\`, "", "", int32(0), int32(0), false, int32(7), int64(-1),
		"", "", "", "", "", "", "", int32(-1), int32(9), int32(99), int32(-3), true, int64(-5), "(", `\xff`, int64(7), int64(3), int32(-1), int8(-3), "\xff", int64(-5), false)
	f.Fuzz(func(t *testing.T,
		fMethod, fHost, fURL, fText, fContentType string, fLo, fHi int32, fErrorsOnly bool, fRoute int32, fMinNanos int64,
		eMethod, eURL, eHost, eErrMsg, eHeaderName, eHeaderValue, eContentType string,
		eStatus, eState, eKind, eRoute int32, eHasTotal bool, eTotalNanos int64,
		fRegex, fBody string, fMinSize, fMaxSize int64, fState int32, fTunnel int8,
		eBody string, eBytes int64, eTunnel bool,
	) {
		pf := &pxperfv1.Filter{
			ErrorsOnly:  fErrorsOnly,
			Host:        fHost,
			Url:         fURL,
			Route:       pxperfv1.Route(fRoute),
			ContentType: fContentType,
			Text:        fText,
		}
		if fMethod != "" {
			pf.Methods = []string{fMethod, "PATCH"}
		}
		if fLo != 0 || fHi != 0 {
			pf.StatusRanges = []*pxperfv1.StatusRange{{Min: 100, Max: 100}, {Min: fLo, Max: fHi}}
		}
		if fMinNanos != 0 {
			pf.MinDuration = durationpb.New(time.Duration(fMinNanos))
		}
		pf.UrlRegex, pf.BodyText = fRegex, fBody
		if fMinSize != 0 {
			pf.MinSize = proto.Int64(fMinSize)
		}
		if fMaxSize >= 0 {
			pf.MaxSize = proto.Int64(fMaxSize)
		}
		if fState != 0 {
			pf.States = []pxperfv1.EntryState{pxperfv1.EntryState(fState)}
		}
		if fTunnel != 0 {
			pf.Tunnel = proto.Bool(fTunnel > 0)
		}
		e := &pxperfv1.Entry{
			Method:        eMethod,
			Url:           eURL,
			Host:          eHost,
			ProxyDecision: &pxperfv1.ProxyDecision{Route: pxperfv1.Route(eRoute)},
			State:         pxperfv1.EntryState(eState),
			StatusCode:    eStatus,
			Error:         &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind(eKind), Message: eErrMsg},
			RequestHeaders: []*pxperfv1.Header{
				nil,
				{Name: eHeaderName, Value: eHeaderValue},
			},
			ResponseHeaders: []*pxperfv1.Header{{Name: eHeaderValue, Value: eHeaderName}},
			ResponseBody:    &pxperfv1.Body{ContentType: eContentType, Data: []byte(eBody), OriginalSize: eBytes},
			RequestBody:     &pxperfv1.Body{Data: []byte(eErrMsg)},
			BytesReceived:   eBytes / 2,
			Tunnel:          eTunnel,
			Timings:         &pxperfv1.Timings{},
		}
		if eHasTotal {
			e.Timings.Total = durationpb.New(time.Duration(eTotalNanos))
		}

		checkHelpers(t, fHost, eHost)
		checkHelpers(t, fURL, eURL)

		c, err := Compile(pf)
		if err != nil {
			checkCompileResult(t, pf, c, err)
			return
		}
		got := c.Match(e)
		if want := refMatch(pf, e); got != want {
			t.Errorf("Compile(%v).Match(%v) = %v, reference says %v", pf, e, got, want)
		}
		if c.Empty() && !got {
			t.Errorf("Compile(%v) is Empty but Match(%v) = false", pf, e)
		}
		if parts := partsMatch(c.Parts(), e); parts != got {
			t.Errorf("Compile(%v).Parts() on %v = %v, Match says %v", pf, e, parts, got)
		}
		if got, want := c.Match(nil), refMatch(pf, nil); got != want {
			t.Errorf("Compile(%v).Match(nil) = %v, reference says %v", pf, got, want)
		}
		// Held apart, the bodies give the same answer.
		req, resp := e.RequestBody.Data, e.ResponseBody.Data
		e.RequestBody.Data, e.ResponseBody.Data = nil, nil
		if apart := c.MatchBodies(e, req, resp); apart != got {
			t.Errorf("Compile(%v).MatchBodies with the bodies apart = %v, Match = %v", pf, apart, got)
		}
		e.RequestBody.Data, e.ResponseBody.Data = req, resp

		// The same filter as an alternative and beside an exclusion.
		nested := &pxperfv1.Filter{
			AnyOf:   []*pxperfv1.Filter{{Host: eHost, Tunnel: proto.Bool(true)}, pf},
			Exclude: []*pxperfv1.Filter{{Text: fText, Methods: []string{"PATCH"}}},
		}
		c, err = Compile(nested)
		if err != nil {
			checkCompileResult(t, nested, c, err)
			return
		}
		got = c.Match(e)
		if want := refMatch(nested, e); got != want {
			t.Errorf("Compile(%v).Match(%v) = %v, reference says %v", nested, e, got, want)
		}
		if parts := partsMatch(c.Parts(), e); parts != got {
			t.Errorf("Compile(%v).Parts() on %v = %v, Match says %v", nested, e, parts, got)
		}
	})
}

// FuzzGlob checks the substring and glob matchers on their own, against
// strings.Index, path.Match and refGlob.
func FuzzGlob(f *testing.F) {
	f.Add("*.example.com", "api.example.com")
	f.Add("https://*/v?/*", "https://x/v1/users")
	f.Add("[^a-c]*[Z-a]?", "D/x_\xff")
	f.Add("*[\uFFFD]", "é")
	f.Add(`a\*b*\[`, "A*bxx[")
	f.Add("**?*?", "é\xe2\x82")
	f.Add("aab", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		checkHelpers(t, pattern, name)
	})
}

// checkHelpers checks indexFold, rabinKarpFold and glob.match on a pattern
// and a string against oracles.
func checkHelpers(t *testing.T, pattern, s string) {
	t.Helper()
	sub := lowerASCII(pattern)
	want := strings.Index(lowerASCII(s), sub)
	if got := indexFold(s, sub); got != want {
		t.Errorf("indexFold(%q, %q) = %d, strings.Index on lower-cased strings says %d", s, sub, got, want)
	}
	if got := rabinKarpFold(s, sub); got != want {
		t.Errorf("rabinKarpFold(%q, %q) = %d, strings.Index on lower-cased strings says %d", s, sub, got, want)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return
	}
	g := compileGlob(pattern)
	got, err := g.match(s)
	if err != nil {
		t.Fatalf("compileGlob(%q).match(%q) error %v for a pattern path.Match accepts", pattern, s, err)
	}
	if len(pattern)*len(s) <= 1<<16 {
		if want := refGlob(pattern, s); got != want {
			t.Errorf("compileGlob(%q).match(%q) = %v, refGlob says %v", pattern, s, got, want)
		}
	}
	// Case-insensitive: folding the name changes nothing.
	for _, folded := range []string{lowerASCII(s), upperASCII(s)} {
		if gotFolded, _ := g.match(folded); gotFolded != got {
			t.Errorf("compileGlob(%q).match(%q) = %v but .match(%q) = %v", pattern, s, got, folded, gotFolded)
		}
	}
	// Where folding, '/' and multi-byte characters play no part, glob.match
	// is path.Match.
	if isPlainASCII(s) {
		if want, _ := path.Match(pattern, s); got != want {
			t.Errorf("compileGlob(%q).match(%q) = %v, path.Match says %v", pattern, s, got, want)
		}
	}
}

// isPlainASCII reports whether s is ASCII without letters or '/'.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || c == '/' || isLetter(c) {
			return false
		}
	}
	return true
}

// refMatch is a slow, obvious implementation of the filter semantics for
// a filter that Compile accepted. It allocates freely; only the glob comes
// from the package (checkHelpers checks it against path.Match).
func refMatch(pf *pxperfv1.Filter, e *pxperfv1.Entry) bool {
	contains := func(s, sub string) bool {
		return strings.Contains(lowerASCII(s), lowerASCII(sub))
	}
	like := func(s, p string) bool {
		if p == "" {
			return true
		}
		if strings.ContainsAny(p, "*?[") {
			ok, err := compileGlob(p).match(s)
			return ok && err == nil
		}
		return contains(s, p)
	}
	if ms := pf.GetMethods(); len(ms) > 0 {
		found := false
		for _, m := range ms {
			found = found || upperASCII(m) == upperASCII(e.GetMethod())
		}
		if !found {
			return false
		}
	}
	if rs := pf.GetStatusRanges(); len(rs) > 0 {
		found := false
		for _, r := range rs {
			found = found || r.GetMin() <= e.GetStatusCode() && e.GetStatusCode() <= r.GetMax()
		}
		if !found {
			return false
		}
	}
	if pf.GetErrorsOnly() && e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED &&
		(e.GetError() == nil || e.GetError().GetKind() == pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED) &&
		e.GetStatusCode() < 400 {
		return false
	}
	if !like(e.GetHost(), pf.GetHost()) || !like(e.GetUrl(), pf.GetUrl()) {
		return false
	}
	if pf.GetRoute() != pxperfv1.Route_ROUTE_UNSPECIFIED && e.GetProxyDecision().GetRoute() != pf.GetRoute() {
		return false
	}
	if minTotal := pf.GetMinDuration().AsDuration(); minTotal > 0 {
		total := e.GetTimings().GetTotal()
		if total == nil || total.AsDuration() < minTotal {
			return false
		}
	}
	if ct := pf.GetContentType(); ct != "" && !contains(e.GetResponseBody().GetContentType(), ct) {
		return false
	}
	size := e.GetBytesReceived()
	if size <= 0 {
		size = max(e.GetResponseBody().GetOriginalSize(), int64(len(e.GetResponseBody().GetData())))
	}
	if pf.MinSize != nil && size < pf.GetMinSize() || pf.MaxSize != nil && size > pf.GetMaxSize() {
		return false
	}
	if len(pf.GetStates()) > 0 && !slices.Contains(pf.GetStates(), e.GetState()) {
		return false
	}
	if pf.Tunnel != nil && pf.GetTunnel() != e.GetTunnel() {
		return false
	}
	if re := pf.GetUrlRegex(); re != "" && !regexp.MustCompile("(?i)"+re).MatchString(e.GetUrl()) {
		return false
	}
	if bt := pf.GetBodyText(); bt != "" && !contains(string(e.GetRequestBody().GetData()), bt) && !contains(string(e.GetResponseBody().GetData()), bt) {
		return false
	}
	if alts := pf.GetAnyOf(); len(alts) > 0 && !slices.ContainsFunc(alts, func(a *pxperfv1.Filter) bool { return refMatch(a, e) }) {
		return false
	}
	if slices.ContainsFunc(pf.GetExclude(), func(x *pxperfv1.Filter) bool { return refMatch(x, e) }) {
		return false
	}
	if text := pf.GetText(); text != "" {
		haystack := []string{e.GetUrl(), e.GetError().GetMessage()}
		for _, hs := range [][]*pxperfv1.Header{e.GetRequestHeaders(), e.GetResponseHeaders()} {
			for _, h := range hs {
				haystack = append(haystack, h.GetName(), h.GetValue())
			}
		}
		found := false
		for _, s := range haystack {
			found = found || contains(s, text)
		}
		if !found {
			return false
		}
	}
	return true
}

// globTerm is one term of a pattern for refGlob.
type globTerm struct {
	kind   byte // '*', '?', '[' or 0 for a literal byte
	lit    byte
	neg    bool
	ranges [][2]rune
}

// refGlob is a slow, obvious glob matcher to check glob.match against: it
// parses the pattern into terms and tries every split at every star
// (memoised). The pattern must be one path.Match accepts.
func refGlob(pattern, name string) bool {
	classChar := func(p string) (rune, string) {
		if p[0] == '\\' {
			p = p[1:]
		}
		r, n := utf8.DecodeRuneInString(p)
		return r, p[n:]
	}
	var terms []globTerm
	for len(pattern) > 0 {
		c := pattern[0]
		pattern = pattern[1:]
		switch c {
		case '*', '?':
			terms = append(terms, globTerm{kind: c})
		case '\\':
			terms = append(terms, globTerm{lit: pattern[0]})
			pattern = pattern[1:]
		case '[':
			t := globTerm{kind: '['}
			if pattern[0] == '^' {
				t.neg = true
				pattern = pattern[1:]
			}
			for len(t.ranges) == 0 || pattern[0] != ']' {
				var lo, hi rune
				lo, pattern = classChar(pattern)
				hi = lo
				if pattern[0] == '-' {
					hi, pattern = classChar(pattern[1:])
				}
				t.ranges = append(t.ranges, [2]rune{lo, hi})
			}
			pattern = pattern[1:]
			terms = append(terms, t)
		default:
			terms = append(terms, globTerm{lit: c})
		}
	}
	inClass := func(t globTerm, r rune) bool {
		variants := []rune{r}
		if 'a' <= r && r <= 'z' {
			variants = append(variants, r-'a'+'A')
		} else if 'A' <= r && r <= 'Z' {
			variants = append(variants, r-'A'+'a')
		}
		for _, v := range variants {
			for _, rg := range t.ranges {
				if rg[0] <= v && v <= rg[1] {
					return true
				}
			}
		}
		return false
	}
	memo := map[[2]int]bool{}
	var match func(ti, ni int) bool
	match = func(ti, ni int) bool {
		if ti == len(terms) {
			return ni == len(name)
		}
		key := [2]int{ti, ni}
		if v, ok := memo[key]; ok {
			return v
		}
		var ok bool
		t := terms[ti]
		switch {
		case t.kind == '*':
			ok = match(ti+1, ni)
			for j := ni; !ok && j < len(name); {
				_, n := utf8.DecodeRuneInString(name[j:])
				j += n
				ok = match(ti+1, j)
			}
		case ni == len(name):
			ok = false
		case t.kind == '?':
			_, n := utf8.DecodeRuneInString(name[ni:])
			ok = match(ti+1, ni+n)
		case t.kind == '[':
			r, n := utf8.DecodeRuneInString(name[ni:])
			ok = inClass(t, r) != t.neg && match(ti+1, ni+n)
		default:
			ok = lowerASCII(name[ni:ni+1]) == lowerASCII(string([]byte{t.lit})) && match(ti+1, ni+1)
		}
		memo[key] = ok
		return ok
	}
	return match(0, 0)
}
