package archive

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file is the archive's JSON encoder: one [pxperfv1.Entry] to one line
// that protojson.Unmarshal (with DiscardUnknown) reads back into an equal
// message. It is hand-written because it is on the path of every archived
// entry: it allocates nothing and runs several times faster than protojson
// (BenchmarkEncode).
//
// The output follows protojson with UseProtoNames: proto field names, enum
// value names (the number for a value with no name), 64-bit integers as
// decimal strings, Timestamps as RFC 3339 in UTC with 0, 3, 6 or 9 fraction
// digits, Durations as decimal seconds with an "s" suffix, bytes as padded
// standard base64, zero scalars and unset messages left out, set but empty
// messages written as {}. The id, when not zero, is always the first field,
// and request_id and start_time follow it, so readers can pick a line's id
// and start time without decoding the whole line (see lineKey).
//
// Two things cannot be written as they are, and are changed rather than
// making the line unreadable:
//   - Invalid UTF-8 in a string (protojson refuses it): each byte that is not
//     part of a valid UTF-8 sequence becomes U+FFFD, as string([]rune(s))
//     does.
//   - A Timestamp or Duration outside the range protobuf allows (protojson
//     refuses it): it is normalised (nanos carried into seconds) and clamped
//     to the nearest valid value.

// Range limits of the well-known types, from timestamp.proto and
// duration.proto.
const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationSeconds  = 315576000000 // 10000 years
)

// appendEntry appends e as one JSON line, with its trailing newline, to b.
// body and requestBody, when not nil, are written as response_body.data
// and request_body.data in place of the data in e's bodies (the store
// keeps the data of bodies beside the entry). e is not modified.
func appendEntry(b []byte, e *pxperfv1.Entry, body, requestBody []byte) []byte {
	b = append(b, '{')
	n := len(b) // a comma is needed before a field when len(b) > n
	if e.Id != 0 {
		b = appendKey(b, n, "id")
		b = appendUintString(b, e.Id)
	}
	if e.RequestId != "" {
		b = appendKey(b, n, "request_id")
		b = appendString(b, e.RequestId)
	}
	if e.StartTime != nil {
		b = appendKey(b, n, "start_time")
		b = appendTimestamp(b, e.StartTime)
	}
	if e.Method != "" {
		b = appendKey(b, n, "method")
		b = appendString(b, e.Method)
	}
	if e.Url != "" {
		b = appendKey(b, n, "url")
		b = appendString(b, e.Url)
	}
	if e.Host != "" {
		b = appendKey(b, n, "host")
		b = appendString(b, e.Host)
	}
	if e.Tunnel {
		b = appendKey(b, n, "tunnel")
		b = append(b, "true"...)
	}
	if d := e.ProxyDecision; d != nil {
		b = appendKey(b, n, "proxy_decision")
		b = appendProxyDecision(b, d)
	}
	if a := e.UpstreamAuth; a != nil {
		b = appendKey(b, n, "upstream_auth")
		b = append(b, '{')
		m := len(b)
		if a.Method != 0 {
			b = appendKey(b, m, "method")
			b = appendEnum(b, int32(a.Method), pxperfv1.AuthMethod_name)
		}
		if a.Outcome != 0 {
			b = appendKey(b, m, "outcome")
			b = appendEnum(b, int32(a.Outcome), pxperfv1.AuthOutcome_name)
		}
		b = append(b, '}')
	}
	if e.State != 0 {
		b = appendKey(b, n, "state")
		b = appendEnum(b, int32(e.State), pxperfv1.EntryState_name)
	}
	if e.StatusCode != 0 {
		b = appendKey(b, n, "status_code")
		b = strconv.AppendInt(b, int64(e.StatusCode), 10)
	}
	if x := e.Error; x != nil {
		b = appendKey(b, n, "error")
		b = append(b, '{')
		m := len(b)
		if x.Kind != 0 {
			b = appendKey(b, m, "kind")
			b = appendEnum(b, int32(x.Kind), pxperfv1.ErrorKind_name)
		}
		if x.Message != "" {
			b = appendKey(b, m, "message")
			b = appendString(b, x.Message)
		}
		b = append(b, '}')
	}
	if len(e.RequestHeaders) > 0 {
		b = appendKey(b, n, "request_headers")
		b = appendHeaders(b, e.RequestHeaders)
	}
	if len(e.ResponseHeaders) > 0 {
		b = appendKey(b, n, "response_headers")
		b = appendHeaders(b, e.ResponseHeaders)
	}
	b = appendBodyField(b, n, "response_body", e.ResponseBody, body)
	if t := e.Timings; t != nil {
		b = appendKey(b, n, "timings")
		b = appendTimings(b, t)
	}
	if e.BytesSent != 0 {
		b = appendKey(b, n, "bytes_sent")
		b = appendIntString(b, e.BytesSent)
	}
	if e.BytesReceived != 0 {
		b = appendKey(b, n, "bytes_received")
		b = appendIntString(b, e.BytesReceived)
	}
	if e.Priority != 0 {
		b = appendKey(b, n, "priority")
		b = appendEnum(b, int32(e.Priority), pxperfv1.Priority_name)
	}
	b = appendBodyField(b, n, "request_body", e.RequestBody, requestBody)
	if e.ReplayOf != 0 {
		b = appendKey(b, n, "replay_of")
		b = appendUintString(b, e.ReplayOf)
	}
	return append(b, '}', '\n')
}

func appendProxyDecision(b []byte, d *pxperfv1.ProxyDecision) []byte {
	b = append(b, '{')
	m := len(b)
	if d.Route != 0 {
		b = appendKey(b, m, "route")
		b = appendEnum(b, int32(d.Route), pxperfv1.Route_name)
	}
	if d.Upstream != "" {
		b = appendKey(b, m, "upstream")
		b = appendString(b, d.Upstream)
	}
	if len(d.FailedUpstreams) > 0 {
		b = appendKey(b, m, "failed_upstreams")
		b = append(b, '[')
		for i, u := range d.FailedUpstreams {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, u)
		}
		b = append(b, ']')
	}
	if d.Source != 0 {
		b = appendKey(b, m, "source")
		b = appendEnum(b, int32(d.Source), pxperfv1.DecisionSource_name)
	}
	return append(b, '}')
}

func appendHeaders(b []byte, hs []*pxperfv1.Header) []byte {
	b = append(b, '[')
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		m := len(b)
		if h.GetName() != "" {
			b = appendKey(b, m, "name")
			b = appendString(b, h.Name)
		}
		if h.GetValue() != "" {
			b = appendKey(b, m, "value")
			b = appendString(b, h.Value)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendBodyField writes the body field key of the object that starts at
// start: rb (which may be nil) with data as its data, or rb's own data
// when data is nil. It writes nothing when there is neither rb nor data.
func appendBodyField(b []byte, start int, key string, rb *pxperfv1.Body, data []byte) []byte {
	if rb == nil && len(data) == 0 {
		return b
	}
	if data == nil {
		data = rb.GetData()
	}
	b = appendKey(b, start, key)
	return appendBody(b, rb, data)
}

// appendBody writes rb (which may be nil) with data as its data.
func appendBody(b []byte, rb *pxperfv1.Body, data []byte) []byte {
	b = append(b, '{')
	m := len(b)
	if len(data) > 0 {
		b = appendKey(b, m, "data")
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	if rb.GetContentType() != "" {
		b = appendKey(b, m, "content_type")
		b = appendString(b, rb.ContentType)
	}
	if rb.GetOriginalSize() != 0 {
		b = appendKey(b, m, "original_size")
		b = appendIntString(b, rb.OriginalSize)
	}
	if rb.GetTruncated() {
		b = appendKey(b, m, "truncated")
		b = append(b, "true"...)
	}
	return append(b, '}')
}

func appendTimings(b []byte, t *pxperfv1.Timings) []byte {
	b = append(b, '{')
	m := len(b)
	if t.Dns != nil {
		b = appendKey(b, m, "dns")
		b = appendDuration(b, t.Dns)
	}
	if t.Connect != nil {
		b = appendKey(b, m, "connect")
		b = appendDuration(b, t.Connect)
	}
	if t.TlsHandshake != nil {
		b = appendKey(b, m, "tls_handshake")
		b = appendDuration(b, t.TlsHandshake)
	}
	if t.TimeToFirstByte != nil {
		b = appendKey(b, m, "time_to_first_byte")
		b = appendDuration(b, t.TimeToFirstByte)
	}
	if t.Total != nil {
		b = appendKey(b, m, "total")
		b = appendDuration(b, t.Total)
	}
	return append(b, '}')
}

// appendKey appends "key": preceded by a comma unless it is the first field
// of the object that starts at start.
func appendKey(b []byte, start int, key string) []byte {
	if len(b) > start {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendUintString(b []byte, v uint64) []byte {
	b = append(b, '"')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '"')
}

func appendIntString(b []byte, v int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

// appendEnum writes an enum value by name, or by number when it has none
// (as protojson does for values unknown to the descriptor).
func appendEnum(b []byte, v int32, names map[int32]string) []byte {
	if name, ok := names[v]; ok {
		b = append(b, '"')
		b = append(b, name...)
		return append(b, '"')
	}
	return strconv.AppendInt(b, int64(v), 10)
}

// safeASCII[c] is true for the ASCII bytes written as they are inside a JSON
// string.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Control characters are escaped,
// valid UTF-8 is written as it is, and each byte of invalid UTF-8 becomes
// U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, safe to copy as it is
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTimestamp writes ts as protojson does: RFC 3339 in UTC with 0, 3, 6
// or 9 fraction digits. An out-of-range ts is normalised and clamped.
func appendTimestamp(b []byte, ts *timestamppb.Timestamp) []byte {
	sec, nsec := ts.GetSeconds(), int64(ts.GetNanos())
	// Clamp far-out values first so that carrying nanos cannot overflow.
	sec = min(max(sec, minTimestampSeconds-10), maxTimestampSeconds+10)
	if nsec < 0 || nsec >= 1e9 {
		sec += nsec / 1e9
		nsec %= 1e9
		if nsec < 0 {
			sec--
			nsec += 1e9
		}
	}
	if sec < minTimestampSeconds {
		sec, nsec = minTimestampSeconds, 0
	} else if sec > maxTimestampSeconds {
		sec, nsec = maxTimestampSeconds, 999999999
	}
	t := time.Unix(sec, nsec).UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = append(b, '"')
	b = append4(b, year)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, minute)
	b = append(b, ':')
	b = append2(b, second)
	b = appendFraction(b, nsec)
	return append(b, 'Z', '"')
}

// appendDuration writes d as protojson does: decimal seconds with 0, 3, 6 or
// 9 fraction digits and an "s" suffix. An out-of-range d, or one whose
// seconds and nanos have different signs, is normalised and clamped.
func appendDuration(b []byte, d *durationpb.Duration) []byte {
	sec, nsec := d.GetSeconds(), int64(d.GetNanos())
	// Normalise so that nsec is within (-1e9, 1e9) and has the sign of sec.
	sec, nsec = normDuration(sec, nsec)
	neg := sec < 0 || nsec < 0
	if neg {
		sec, nsec = -sec, -nsec // sec >= -maxDurationSeconds, so no overflow
	}
	b = append(b, '"')
	if neg {
		b = append(b, '-')
	}
	b = strconv.AppendInt(b, sec, 10)
	b = appendFraction(b, nsec)
	return append(b, 's', '"')
}

// normDuration returns sec and nsec carried so they share a sign, with
// |nsec| < 1e9, clamped to ±maxDurationSeconds.
func normDuration(sec, nsec int64) (int64, int64) {
	if sec > math.MaxInt64/2 || sec < math.MinInt64/2 {
		// Far out of range: clamp before adding to avoid overflow.
		if sec > 0 {
			return maxDurationSeconds, 999999999
		}
		return -maxDurationSeconds, -999999999
	}
	sec += nsec / 1e9
	nsec %= 1e9
	if sec > 0 && nsec < 0 {
		sec--
		nsec += 1e9
	} else if sec < 0 && nsec > 0 {
		sec++
		nsec -= 1e9
	}
	if sec > maxDurationSeconds {
		return maxDurationSeconds, 999999999
	}
	if sec < -maxDurationSeconds {
		return -maxDurationSeconds, -999999999
	}
	return sec, nsec
}

// appendFraction writes nsec (0..999999999) as protojson does: nothing for
// 0, else a dot and 3, 6 or 9 digits.
func appendFraction(b []byte, nsec int64) []byte {
	if nsec == 0 {
		return b
	}
	var digits [9]byte
	v := nsec
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + v%10)
		v /= 10
	}
	n := 9
	switch {
	case nsec%1e6 == 0:
		n = 3
	case nsec%1e3 == 0:
		n = 6
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

func append2(b []byte, v int) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}

func append4(b []byte, v int) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
