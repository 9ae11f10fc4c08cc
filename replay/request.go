package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/proxy"
	"golang.org/x/net/http/httpguts"
)

var (
	// ErrTunnel is returned for a CONNECT tunnel: the proxy carried its
	// bytes without seeing the requests inside, so there is nothing to
	// re-send.
	ErrTunnel = errors.New("a CONNECT tunnel cannot be replayed: the requests inside it were never seen")
	// ErrTruncatedBody is wrapped by the error for an entry whose request
	// body was not recorded whole: cut to memory.max_body_size, or not
	// recorded at all although the request had one. Sending the part that
	// was recorded would be another request; the options' TruncatedBody
	// asks for it all the same.
	ErrTruncatedBody = errors.New("the request body was not recorded whole")
	// ErrInvalidRequest is wrapped by the error for an entry, or a header
	// given in the options, that HTTP cannot send: a url that is not
	// absolute http or https, a method that is not a token, a header name
	// or value with characters HTTP does not allow.
	ErrInvalidRequest = errors.New("not a request HTTP can send")
)

// hopHeaders are the headers of one connection (RFC 9110 §7.6.1, and those
// older proxies use), and the others a recorded request's headers do not
// carry over to a new one: the body sets Content-Length, and the recording
// proxy takes its link header out of what it records.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding", "Te", "Trailer", "Upgrade",
	"Proxy-Authorization", "Proxy-Authenticate", "Content-Length", proxy.ReplayOfHeader,
}

// field is one header line as re-sent.
type field struct{ name, value string }

// prepared is a recorded request as it is re-sent, the rules of the
// package applied: what [Curl] writes and [Request] builds.
type prepared struct {
	method string
	url    *url.URL
	host   string  // the Host header, when it differs from url.Host
	header []field // in the order sent
	body   []byte  // nil: none
	// typed says whether header has a Content-Type, or the options
	// removed it.
	typed   bool
	leftOut []string // names of redacted headers not given again
	partial string   // when only part of the body is sent, what part
}

// prepare applies the rules to e's request, with the headers given and
// whether a truncated body may be sent.
func prepare(e *pxperfv1.Entry, given http.Header, truncatedOK bool) (*prepared, error) {
	if e.GetTunnel() || e.GetMethod() == http.MethodConnect {
		return nil, ErrTunnel
	}
	if !httpguts.ValidHeaderFieldName(e.GetMethod()) {
		return nil, fmt.Errorf("%w: method %q is not a token", ErrInvalidRequest, e.GetMethod())
	}
	u, err := url.Parse(e.GetUrl())
	if err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrInvalidRequest, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: url %q is not an absolute http or https URL", ErrInvalidRequest, e.GetUrl())
	}
	p := &prepared{method: e.GetMethod(), url: u}
	give, err := canonical(given)
	if err != nil {
		return nil, err
	}
	recorded := e.GetRequestHeaders()
	skip := map[string]bool{}
	for _, h := range hopHeaders {
		skip[h] = true
	}
	for _, h := range recorded {
		if strings.EqualFold(h.GetName(), "Connection") {
			for name := range strings.SplitSeq(h.GetValue(), ",") {
				skip[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))] = true
			}
		}
	}
	placed := map[string]bool{}
	for _, h := range recorded {
		name := h.GetName()
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case strings.HasPrefix(name, ":"), skip[key], placed[key]:
			continue
		case give[key] != nil:
			p.give(key, give[key])
			placed[key] = true
			continue
		case h.GetValue() == store.Redacted:
			if !slices.Contains(p.leftOut, name) {
				p.leftOut = append(p.leftOut, name)
			}
			continue
		case !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(h.GetValue()):
			return nil, fmt.Errorf("%w: the recorded header %q has characters HTTP does not allow", ErrInvalidRequest, name)
		case key == "Host":
			p.place(key, []string{h.GetValue()})
			placed[key] = true
			continue
		}
		p.place(name, []string{h.GetValue()})
	}
	var added []string
	for key := range give {
		if !placed[key] {
			added = append(added, key)
		}
	}
	slices.Sort(added)
	for _, key := range added {
		p.give(key, give[key])
	}
	if p.host != "" && !httpguts.ValidHostHeader(p.host) {
		return nil, fmt.Errorf("%w: Host %q", ErrInvalidRequest, p.host)
	}
	if err := p.setBody(e.GetRequestBody(), recorded, truncatedOK); err != nil {
		return nil, err
	}
	return p, nil
}

// canonical returns the headers given, keyed by canonical name, checked.
func canonical(given http.Header) (map[string][]string, error) {
	give := make(map[string][]string, len(given))
	for name, vs := range given {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("%w: header name %q", ErrInvalidRequest, name)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("%w: the value of header %s has characters HTTP does not allow", ErrInvalidRequest, name)
			}
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		give[key] = append(give[key], vs...)
		if len(give[key]) == 0 {
			give[key] = []string{""} // given without a value: removed
		}
	}
	return give, nil
}

// place adds the header name with values to p, or sets p's host for
// Host.
func (p *prepared) place(name string, values []string) {
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Host":
		if p.host = ""; values[0] != p.url.Host {
			p.host = values[0]
		}
		return
	case "Content-Type":
		p.typed = true
	}
	for _, v := range values {
		p.header = append(p.header, field{name, v})
	}
}

// give places a header given in the options: as place does, but one
// empty value removes it.
func (p *prepared) give(key string, values []string) {
	if len(values) == 1 && values[0] == "" {
		switch key {
		case "Host":
			p.host = ""
		case "Content-Type":
			p.typed = true // and not taken from the body
		}
		return
	}
	p.place(key, values)
}

// setBody sets p's body from the recorded one, b, refusing one that was
// not recorded whole unless truncatedOK. recorded are the request's
// headers as recorded, which tell whether it had a body.
func (p *prepared) setBody(b *pxperfv1.Body, recorded []*pxperfv1.Header, truncatedOK bool) error {
	data, size := b.GetData(), b.GetOriginalSize()
	var missing string
	switch {
	case size > int64(len(data)):
		missing = fmt.Sprintf("%d of its %d bytes were recorded", len(data), size)
	case b.GetTruncated():
		missing = fmt.Sprintf("only its first %d bytes were recorded", len(data))
	case len(data) == 0:
		if had := announced(recorded); had != "" {
			missing = "the request had one (" + had + ") but it was not recorded"
		}
	}
	if missing != "" {
		if !truncatedOK {
			return fmt.Errorf("%w: %s", ErrTruncatedBody, missing)
		}
		p.partial = missing
	}
	if len(data) == 0 {
		return nil
	}
	p.body = data
	if !p.typed && b.GetContentType() != "" && httpguts.ValidHeaderFieldValue(b.GetContentType()) {
		p.header = append(p.header, field{"Content-Type", b.GetContentType()})
		p.typed = true
	}
	return nil
}

// announced returns the recorded header that says a request had a body,
// as "Name: value", or "" when none does.
func announced(recorded []*pxperfv1.Header) string {
	for _, h := range recorded {
		switch textproto.CanonicalMIMEHeaderKey(h.GetName()) {
		case "Content-Length":
			if n, err := strconv.ParseInt(strings.TrimSpace(h.GetValue()), 10, 64); err == nil && n > 0 {
				return "Content-Length: " + h.GetValue()
			}
		case "Transfer-Encoding":
			if !strings.EqualFold(strings.TrimSpace(h.GetValue()), "identity") {
				return "Transfer-Encoding: " + h.GetValue()
			}
		}
	}
	return ""
}

// LeftOut returns the names of e's request headers that were redacted when
// recorded and are not in given, in the order recorded: the headers a
// re-sent request goes without. It returns nil when there are none, or
// when e cannot be re-sent at all (see [Request]).
func LeftOut(e *pxperfv1.Entry, given http.Header) []string {
	p, err := prepare(e, given, true)
	if err != nil {
		return nil
	}
	return p.leftOut
}

// Request returns the request recorded in e as a new request with ctx, by
// the rules of the package (see its doc): e's method, url, headers and
// body, with opts.Header given again or instead, and a truncated body
// only if opts.TruncatedBody. Only opts.Header and opts.TruncatedBody are
// used. Its body, if any, can be read again (GetBody is set). The error
// wraps [ErrTunnel], [ErrTruncatedBody] or [ErrInvalidRequest].
func Request(ctx context.Context, e *pxperfv1.Entry, opts Options) (*http.Request, error) {
	p, err := prepare(e, opts.Header, opts.TruncatedBody)
	if err != nil {
		return nil, err
	}
	return p.request(ctx)
}

func (p *prepared) request(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if p.body != nil {
		body = bytes.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	for _, f := range p.header {
		req.Header.Add(f.name, f.value)
	}
	if p.host != "" {
		req.Host = p.host
	}
	return req, nil
}
