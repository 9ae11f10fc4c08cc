package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/), the parts
// pxperf reads and writes. Fields starting with an underscore are custom,
// as the spec allows: _error and _transferSize as Chrome writes them,
// _bytesSent and _id for what pxperf keeps and HAR has no field for, and
// postData._encoding, since HAR 1.2 has no way to mark a request body as
// base64 (see [entryToHAR]).

type harDocument struct {
	Log harLog `json:"log"`
}

type harLog struct {
	Version string     `json:"version"`
	Creator harCreator `json:"creator"`
	Entries []harEntry `json:"entries"`
}

type harCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type harEntry struct {
	StartedDateTime string      `json:"startedDateTime"`
	Time            float64     `json:"time"`
	Request         harRequest  `json:"request"`
	Response        harResponse `json:"response"`
	Cache           struct{}    `json:"cache"`
	Timings         *harTimings `json:"timings"`
	ID              uint64      `json:"_id,omitempty"`
}

type harRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Cookies     []harCookie  `json:"cookies"`
	Headers     []harPair    `json:"headers"`
	QueryString []harPair    `json:"queryString"`
	HeadersSize int64        `json:"headersSize"`
	BodySize    int64        `json:"bodySize"`
	PostData    *harPostData `json:"postData,omitempty"`
	BytesSent   *int64       `json:"_bytesSent,omitempty"`
}

// harPostData is a request body. pxperf writes mimeType, text and, for a
// body that is not UTF-8, _encoding "base64"; it reads encoding as well,
// which some tools write as for a response, and params, which tools write
// in place of text for a form.
type harPostData struct {
	MimeType string     `json:"mimeType"`
	Params   []harParam `json:"params,omitempty"`
	Text     string     `json:"text"`
	Encoding string     `json:"_encoding,omitempty"`
	Encoded  string     `json:"encoding,omitempty"` // read, never written
}

// harParam is a posted parameter; pxperf reads name and value.
type harParam struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

type harResponse struct {
	Status       int32       `json:"status"`
	StatusText   string      `json:"statusText"`
	HTTPVersion  string      `json:"httpVersion"`
	Cookies      []harCookie `json:"cookies"`
	Headers      []harPair   `json:"headers"`
	Content      harContent  `json:"content"`
	RedirectURL  string      `json:"redirectURL"`
	HeadersSize  int64       `json:"headersSize"`
	BodySize     int64       `json:"bodySize"`
	TransferSize *int64      `json:"_transferSize,omitempty"`
	Error        string      `json:"_error,omitempty"`
}

// harCookie is a cookie; pxperf neither reads nor writes them (the
// Cookie and Set-Cookie headers are redacted).
type harCookie struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harPair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harContent struct {
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
	Text     string `json:"text,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

// harTimings are in milliseconds; -1 (or, when reading, absent) means not
// measured. connect includes ssl, as the spec says.
type harTimings struct {
	Blocked *float64 `json:"blocked,omitempty"`
	DNS     *float64 `json:"dns,omitempty"`
	Connect *float64 `json:"connect,omitempty"`
	Send    float64  `json:"send"`
	Wait    float64  `json:"wait"`
	Receive float64  `json:"receive"`
	SSL     *float64 `json:"ssl,omitempty"`
}

// readHAR reads a HAR document.
func readHAR(r io.Reader) (*harDocument, error) {
	var doc harDocument
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a HAR document: %w", err)
	}
	if doc.Log.Version == "" && doc.Log.Entries == nil {
		return nil, fmt.Errorf("not a HAR document: no log.entries")
	}
	return &doc, nil
}

// entryFromHAR maps a HAR entry to an Entry:
//
//	startedDateTime              start_time
//	time (ms)                    timings.total
//	request.method, url          method, url (CONNECT: tunnel, url host:port)
//	request.headers              request_headers (HTTP/2 pseudo-headers such as :authority left out)
//	request headersSize+bodySize bytes_sent (or _bytesSent)
//	request.postData, bodySize   request_body: mimeType, text (base64 when _encoding or encoding says so;
//	                             a form's params when there is no text), bodySize as original_size
//	response.status             status_code; 0 is a failed request: error OTHER with response._error
//	response.headers             response_headers
//	response.content             response_body: mimeType, text (base64 when encoding says so), size
//	response _transferSize       bytes_received (else headersSize+bodySize)
//	timings dns, ssl             timings.dns, timings.tls_handshake
//	timings connect              timings.connect (without ssl)
//	blocked+dns+connect+send+wait timings.time_to_first_byte
func entryFromHAR(h *harEntry) (*pxperfv1.Entry, error) {
	start, err := time.Parse(time.RFC3339Nano, h.StartedDateTime)
	if err != nil {
		return nil, fmt.Errorf("startedDateTime %q: want an ISO 8601 date and time such as 2026-11-27T10:00:00.000Z", h.StartedDateTime)
	}
	e := &pxperfv1.Entry{
		StartTime:       timestamppb.New(start),
		Method:          h.Request.Method,
		Url:             h.Request.URL,
		Tunnel:          strings.EqualFold(h.Request.Method, "CONNECT"),
		RequestHeaders:  headersFromHAR(h.Request.Headers),
		ResponseHeaders: headersFromHAR(h.Response.Headers),
		BytesSent:       nonNegative(h.Request.HeadersSize) + nonNegative(h.Request.BodySize),
		BytesReceived:   nonNegative(h.Response.HeadersSize) + nonNegative(h.Response.BodySize),
	}
	if u, err := url.Parse(e.Url); e.Tunnel && err == nil && u.Scheme != "" && u.Host != "" {
		e.Url = u.Host // as pxperf records a tunnel; see tunnelURL
	}
	if h.Request.BytesSent != nil {
		e.BytesSent = nonNegative(*h.Request.BytesSent)
	}
	if h.Response.TransferSize != nil && *h.Response.TransferSize > 0 {
		e.BytesReceived = *h.Response.TransferSize
	}
	if h.Response.Status > 0 {
		e.StatusCode = h.Response.Status
	} else {
		msg := h.Response.Error
		if msg == "" {
			msg = "no response (status 0 in the HAR file)"
		}
		e.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
		e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_OTHER, Message: msg}
	}
	if e.RequestBody, err = requestBodyFromHAR(&h.Request); err != nil {
		return nil, err
	}
	c := h.Response.Content
	if c.MimeType == "x-unknown" { // Chrome's word for none
		c.MimeType = ""
	}
	if c.MimeType != "" || c.Text != "" || c.Size > 0 {
		body := &pxperfv1.Body{ContentType: c.MimeType, OriginalSize: nonNegative(c.Size)}
		if c.Encoding == "base64" {
			if body.Data, err = base64.StdEncoding.DecodeString(c.Text); err != nil {
				return nil, fmt.Errorf("response.content.text: encoding is base64 but %w", err)
			}
		} else if c.Text != "" {
			body.Data = []byte(c.Text)
		}
		e.ResponseBody = body
	}
	if t := h.Timings; t != nil {
		tm := &pxperfv1.Timings{}
		ssl := ms(t.SSL)
		if ssl >= 0 {
			tm.TlsHandshake = durationpb.New(msDuration(ssl))
		}
		if dns := ms(t.DNS); dns >= 0 {
			tm.Dns = durationpb.New(msDuration(dns))
		}
		if conn := ms(t.Connect); conn >= 0 {
			tm.Connect = durationpb.New(msDuration(max(conn-max(ssl, 0), 0)))
		}
		ttfb := max(ms(t.Blocked), 0) + max(ms(t.DNS), 0) + max(ms(t.Connect), 0) + max(t.Send, 0) + max(t.Wait, 0)
		tm.TimeToFirstByte = durationpb.New(msDuration(ttfb))
		e.Timings = tm
	}
	if h.Time >= 0 && (h.Time > 0 || h.Timings != nil) {
		if e.Timings == nil {
			e.Timings = &pxperfv1.Timings{}
		}
		e.Timings.Total = durationpb.New(msDuration(h.Time))
	}
	return e, nil
}

// requestBodyFromHAR is the request body of r: its postData, with bodySize
// as its original size; or, without postData, a body of bodySize bytes
// whose data was not recorded; nil when there is neither.
func requestBodyFromHAR(r *harRequest) (*pxperfv1.Body, error) {
	pd := r.PostData
	if pd == nil {
		if r.BodySize <= 0 {
			return nil, nil
		}
		return &pxperfv1.Body{OriginalSize: r.BodySize}, nil
	}
	body := &pxperfv1.Body{ContentType: pd.MimeType, OriginalSize: nonNegative(r.BodySize)}
	switch {
	case pd.Encoding == "base64" || pd.Encoded == "base64":
		data, err := base64.StdEncoding.DecodeString(pd.Text)
		if err != nil {
			return nil, fmt.Errorf("request.postData.text: encoding is base64 but %w", err)
		}
		body.Data = data
	case pd.Text != "":
		body.Data = []byte(pd.Text)
	case len(pd.Params) > 0 && strings.HasPrefix(strings.ToLower(pd.MimeType), "application/x-www-form-urlencoded"):
		// The form as the browser encoded it.
		var b strings.Builder
		for i, p := range pd.Params {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(p.Name))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(p.Value))
		}
		body.Data = []byte(b.String())
	}
	return body, nil
}

func headersFromHAR(hs []harPair) []*pxperfv1.Header {
	var out []*pxperfv1.Header
	for _, h := range hs {
		if strings.HasPrefix(h.Name, ":") {
			continue
		}
		out = append(out, &pxperfv1.Header{Name: h.Name, Value: h.Value})
	}
	return out
}

func nonNegative(n int64) int64 { return max(n, 0) }

// ms returns a HAR timing in milliseconds, or -1 when it is absent.
func ms(v *float64) float64 {
	if v == nil {
		return -1
	}
	return *v
}

// msDuration converts milliseconds to a duration, saturating.
func msDuration(v float64) time.Duration {
	ns := v * float64(time.Millisecond)
	if ns >= math.MaxInt64 || ns != ns {
		return math.MaxInt64
	}
	return time.Duration(math.Round(ns))
}

// durationMs converts a duration to milliseconds.
func durationMs(d *durationpb.Duration) float64 {
	return float64(d.AsDuration()) / float64(time.Millisecond)
}

// entryToHAR maps an Entry to a HAR entry, the reverse of
// [entryFromHAR]: connect is written with the TLS handshake included,
// wait is time_to_first_byte less dns and connect, receive is total less
// time_to_first_byte, and time is their sum, as the spec wants. A
// response body that is not UTF-8 is written in base64, as the spec
// allows. A request body goes in request.postData, its original size in
// request.bodySize; HAR 1.2 has no encoding for postData, so one that is
// not UTF-8 is written in base64 with the custom field _encoding set to
// "base64", which pxperf reads back (other tools see base64 text). The
// entry's id goes in _id. A tunnel's url, host:port, is written absolute
// (see [tunnelURL]).
func entryToHAR(e *pxperfv1.Entry) harEntry {
	u := e.GetUrl()
	if e.GetTunnel() {
		u = tunnelURL(u)
	}
	h := harEntry{
		StartedDateTime: e.GetStartTime().AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		ID:              e.GetId(),
		Request: harRequest{
			Method:      e.GetMethod(),
			URL:         u,
			Cookies:     []harCookie{},
			Headers:     headersToHAR(e.GetRequestHeaders()),
			QueryString: queryString(e.GetUrl()),
			HeadersSize: -1,
			BodySize:    -1,
			BytesSent:   new(e.GetBytesSent()),
		},
		Response: harResponse{
			Status:       e.GetStatusCode(),
			StatusText:   http.StatusText(int(e.GetStatusCode())),
			Cookies:      []harCookie{},
			Headers:      headersToHAR(e.GetResponseHeaders()),
			HeadersSize:  -1,
			BodySize:     -1,
			TransferSize: new(e.GetBytesReceived()),
			Error:        e.GetError().GetMessage(),
		},
	}
	if b := e.GetRequestBody(); b != nil {
		h.Request.BodySize = max(b.GetOriginalSize(), int64(len(b.GetData())))
		h.Request.PostData = &harPostData{MimeType: b.GetContentType()}
		if utf8.Valid(b.GetData()) {
			h.Request.PostData.Text = string(b.GetData())
		} else {
			h.Request.PostData.Text = base64.StdEncoding.EncodeToString(b.GetData())
			h.Request.PostData.Encoding = "base64"
		}
	}
	for _, hd := range e.GetResponseHeaders() {
		if strings.EqualFold(hd.GetName(), "Location") {
			h.Response.RedirectURL = hd.GetValue()
		}
	}
	if b := e.GetResponseBody(); b != nil {
		h.Response.Content = harContent{Size: max(b.GetOriginalSize(), int64(len(b.GetData()))), MimeType: b.GetContentType()}
		if utf8.Valid(b.GetData()) {
			h.Response.Content.Text = string(b.GetData())
		} else {
			h.Response.Content.Text = base64.StdEncoding.EncodeToString(b.GetData())
			h.Response.Content.Encoding = "base64"
		}
	}
	t := e.GetTimings()
	tm := &harTimings{Blocked: new(-1.0), DNS: new(-1.0), Connect: new(-1.0), SSL: new(-1.0)}
	before := 0.0 // dns and connect, which come before the request is sent
	if t.GetDns() != nil {
		*tm.DNS = durationMs(t.GetDns())
		before += *tm.DNS
	}
	if t.GetTlsHandshake() != nil {
		*tm.SSL = durationMs(t.GetTlsHandshake())
	}
	if t.GetConnect() != nil {
		*tm.Connect = durationMs(t.GetConnect()) + max(*tm.SSL, 0)
		before += *tm.Connect
	}
	switch {
	case t.GetTimeToFirstByte() != nil:
		ttfb := durationMs(t.GetTimeToFirstByte())
		tm.Wait = max(ttfb-before, 0)
		if t.GetTotal() != nil {
			tm.Receive = max(durationMs(t.GetTotal())-ttfb, 0)
		}
	case t.GetTotal() != nil:
		tm.Wait = max(durationMs(t.GetTotal())-before, 0)
	}
	h.Timings = tm
	h.Time = before + tm.Send + tm.Wait + tm.Receive
	return h
}

func headersToHAR(hs []*pxperfv1.Header) []harPair {
	out := make([]harPair, 0, len(hs))
	for _, h := range hs {
		out = append(out, harPair{Name: h.GetName(), Value: h.GetValue()})
	}
	return out
}

// queryString returns the query parameters of u in order, decoded where
// they can be.
// tunnelURL is the absolute URL HAR 1.2 wants for a CONNECT tunnel to
// hostport: https://host:port/, or http:// for port 80, the scheme the
// port implies (pxperf never sees inside a tunnel). hostport is returned
// as it is when it is not host:port.
func tunnelURL(hostport string) string {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	scheme := "https"
	if port == "80" {
		scheme = "http"
	}
	return scheme + "://" + hostport + "/"
}

func queryString(u string) []harPair {
	out := []harPair{}
	parsed, err := url.Parse(u)
	if err != nil || parsed.RawQuery == "" {
		return out
	}
	for kv := range strings.SplitSeq(parsed.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		out = append(out, harPair{Name: k, Value: v})
	}
	return out
}

// harWriter writes a HAR document entry by entry, so that an export
// need not hold the encoded document in memory.
type harWriter struct {
	w   io.Writer
	n   int
	err error
}

// newHARWriter writes the start of a HAR document to w.
func newHARWriter(w io.Writer) *harWriter {
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	creator, _ := json.Marshal(harCreator{Name: "pxperf", Version: version})
	hw := &harWriter{w: w}
	_, hw.err = fmt.Fprintf(w, "{\"log\": {\"version\": \"1.2\", \"creator\": %s, \"entries\": [", creator)
	return hw
}

// write appends one entry.
func (hw *harWriter) write(e *pxperfv1.Entry) {
	if hw.err != nil {
		return
	}
	b, err := json.Marshal(entryToHAR(e))
	if err != nil {
		hw.err = err
		return
	}
	sep := ",\n"
	if hw.n == 0 {
		sep = "\n"
	}
	hw.n++
	_, hw.err = fmt.Fprintf(hw.w, "%s%s", sep, b)
}

// close ends the document and returns the first error.
func (hw *harWriter) close() error {
	if hw.err == nil {
		_, hw.err = io.WriteString(hw.w, "\n]}}\n")
	}
	return hw.err
}
