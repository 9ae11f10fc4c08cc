package replay

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/proxy"
)

// CurlOptions configures [Curl]. The zero value writes the request as
// recorded, sent directly.
type CurlOptions struct {
	// Header holds headers to send besides or instead of the recorded
	// ones, as [Options.Header].
	Header http.Header
	// TruncatedBody sends the part of a request body that was recorded
	// when the whole was not, as [Options.TruncatedBody]; the command then
	// says so in a comment.
	TruncatedBody bool
	// Proxy, if set, is the proxy the command sends the request through
	// (--proxy), such as pxperf's recording proxy, with
	// [proxy.ReplayOfHeader] as a --proxy-header so that a recording proxy
	// links the entry it records to the original. Nil: no --proxy (curl's
	// environment, http_proxy say, still applies).
	Proxy *url.URL
}

// maxArgBody is the longest body written as an argument of curl: Linux
// refuses a single argument of 128 KiB or more, and the printf form's
// argument goes to a builtin, which has no such limit.
const maxArgBody = 64 << 10

// Curl returns a POSIX shell command line that sends the request recorded
// in e with curl, by the rules of the package (see its doc): e's method,
// url, headers and body. Every argument is single-quoted, so that nothing
// in it is expanded. A text body goes as --data-binary 'TEXT'; one that
// is not UTF-8 text without control characters (tab and newline aside),
// starts with @ or is long is piped in from printf, which writes the exact
// bytes from octal escapes, as --data-binary @-. curl's own headers are
// kept out where they would change the request: its form Content-Type
// when a body has none. Redacted headers that are left out are named in a
// comment line before the command, which runs as written without them.
// The command spans lines joined by backslash-newline.
//
// The error wraps [ErrTunnel], [ErrTruncatedBody] or [ErrInvalidRequest].
func Curl(e *pxperfv1.Entry, opts CurlOptions) (string, error) {
	p, err := prepare(e, opts.Header, opts.TruncatedBody)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if len(p.leftOut) > 0 {
		fmt.Fprintf(&b, "# Left out, redacted when recorded: %s. Give them with -H 'Name: value'.\n", strings.Join(p.leftOut, ", "))
	}
	if p.partial != "" {
		fmt.Fprintf(&b, "# The request body was not recorded whole (%s): this sends the part that was.\n", p.partial)
	}
	u := p.url.String()
	stdin := p.body != nil && !textBody(p.body)
	head := "curl " + quote(u)
	if stdin {
		head = "printf " + quote(printfFormat(p.body)) + " | " + head
	}
	args := []string{head}
	if strings.ContainsAny(u, "[]{}") {
		args = append(args, "--globoff") // else curl reads them as a URL glob
	}
	if dotSegments(p.url.EscapedPath()) {
		args = append(args, "--path-as-is") // else curl resolves them
	}
	switch {
	case p.method == http.MethodHead && p.body == nil:
		// -X HEAD would wait for a body the response does not have.
		args = append(args, "--head")
	case p.method == http.MethodGet && p.body == nil, p.method == http.MethodPost && p.body != nil:
		// curl's default for the request.
	default:
		args = append(args, "-X "+word(p.method))
	}
	if opts.Proxy != nil {
		args = append(args, "--proxy "+quote(opts.Proxy.String()))
		if id := e.GetId(); id != 0 {
			args = append(args, "--proxy-header "+quote(proxy.ReplayOfHeader+": "+strconv.FormatUint(id, 10)))
		}
	}
	if p.host != "" {
		args = append(args, "-H "+quote("Host: "+p.host))
	}
	typed := false
	for _, f := range p.header {
		typed = typed || strings.EqualFold(f.name, "Content-Type")
		if f.value == "" {
			// "Name:" would remove the header; "Name;" sends it empty.
			args = append(args, "-H "+quote(f.name+";"))
			continue
		}
		args = append(args, "-H "+quote(f.name+": "+f.value))
	}
	if p.body != nil {
		if !typed {
			args = append(args, "-H "+quote("Content-Type:"))
		}
		if stdin {
			args = append(args, "--data-binary @-")
		} else {
			args = append(args, "--data-binary "+quote(string(p.body)))
		}
	}
	b.WriteString(strings.Join(args, " \\\n  "))
	b.WriteByte('\n')
	return b.String(), nil
}

// quote single-quotes s for a POSIX shell: every byte stands for itself,
// and a single quote is written as '\” (end the quoting, an escaped
// quote, quote again).
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// word returns s as it is when the shell gives it no special meaning,
// else quoted.
func word(s string) string {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.", c) >= 0) {
			return quote(s)
		}
	}
	if s == "" {
		return "''"
	}
	return s
}

// textBody reports whether body can be written as a single-quoted
// argument that shows what it is: UTF-8 text without control or bidi
// control characters but tab and newline, that does not start with @
// (which makes --data-binary read a file), short enough for an argument.
func textBody(body []byte) bool {
	if len(body) > maxArgBody || body[0] == '@' || !utf8.Valid(body) {
		return false
	}
	for _, r := range string(body) {
		if r != '\t' && r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
			return false
		}
	}
	return true
}

// printfFormat returns a printf format that writes exactly body: printable
// ASCII as itself ('%' and '\' doubled), every other byte, the single
// quote, and a leading '-' (which printf could take for an option) as a
// three-digit octal escape, which POSIX printf reads in its format.
func printfFormat(body []byte) string {
	var b strings.Builder
	b.Grow(len(body) * 2)
	for i, c := range body {
		switch {
		case i == 0 && c == '-':
			fmt.Fprintf(&b, `\%03o`, c)
		case c == '%':
			b.WriteString("%%")
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'' || c < ' ' || c > '~':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dotSegments reports whether path has a "." or ".." segment.
func dotSegments(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
