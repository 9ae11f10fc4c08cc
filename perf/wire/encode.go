package wire

import (
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Encoder encodes an entry as the store caches it (see
// [github.com/pxperf/pxperf/perf/store.Encoder]): as one `entries` field of
// an EntryBatch, which a ListEntriesResponse and a ViewUpdate number the
// same, so that cached entries are sent in any of them as they are. The
// zero value is ready to use, and safe for concurrent use.
type Encoder struct{}

// FieldSize returns the size in bytes of e's field: its tag, its length
// and e's encoding.
func (Encoder) FieldSize(e *pxperfv1.Entry) int {
	n := 0
	if marshalable(e) {
		n = wireSize(e)
	} else {
		n = proto.Size(e)
	}
	return sizeMessage(entriesField, n)
}

// AppendField appends e's field to b and returns the extended slice. size
// is FieldSize(e), and e has not changed since.
func (Encoder) AppendField(b []byte, e *pxperfv1.Entry, size int) []byte {
	if marshalable(e) {
		b = appendTag(b, entriesField, wireSize(e))
		return appendWire(b, e)
	}
	b = appendTag(b, entriesField, proto.Size(e))
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, e)
	if err != nil {
		// Only invalid UTF-8 fails, which neither proto.Unmarshal nor the
		// store's check lets in.
		panic("wire: encoding an entry: " + err.Error())
	}
	return b
}

// The rest of this file encodes entries by hand: proto.Marshal walks each
// message by reflection tables and validates every string's UTF-8 again.
// The output is what proto.Marshal gives: fields in number order, zero
// values left out, so that any protobuf decoder reads the same entry.
//
// Entries whose messages carry unknown fields (a producer newer than this
// server, decoded by proto.Unmarshal) are left to proto.Marshal, which
// keeps those fields. TestMarshalEntryHandlesEveryField notices a field
// added to the contract that this file does not write.

// marshalable reports whether appendWire can encode e: none of its
// messages carries unknown fields.
func marshalable(e *pxperfv1.Entry) bool {
	if unknown(e) || e.StartTime != nil && unknown(e.StartTime) ||
		e.ProxyDecision != nil && unknown(e.ProxyDecision) || e.UpstreamAuth != nil && unknown(e.UpstreamAuth) ||
		e.Error != nil && unknown(e.Error) || e.ResponseBody != nil && unknown(e.ResponseBody) {
		return false
	}
	if t := e.Timings; t != nil {
		if unknown(t) {
			return false
		}
		for _, d := range timings(t) {
			if d != nil && unknown(d) {
				return false
			}
		}
	}
	for _, h := range e.RequestHeaders {
		if unknown(h) {
			return false
		}
	}
	for _, h := range e.ResponseHeaders {
		if unknown(h) {
			return false
		}
	}
	return true
}

// unknown reports whether m, not nil, carries unknown fields.
func unknown(m protoreflect.ProtoMessage) bool { return len(m.ProtoReflect().GetUnknown()) > 0 }

// wireSize returns the size of e's encoding.
func wireSize(e *pxperfv1.Entry) int {
	n := sizeUint(1, e.Id) + sizeString(2, e.RequestId)
	if e.StartTime != nil {
		n += sizeMessage(3, sizeSecondsNanos(e.StartTime.Seconds, e.StartTime.Nanos))
	}
	n += sizeString(4, e.Method) + sizeString(5, e.Url) + sizeString(6, e.Host) + sizeBool(7, e.Tunnel)
	if d := e.ProxyDecision; d != nil {
		n += sizeMessage(8, proxyDecisionSize(d))
	}
	if a := e.UpstreamAuth; a != nil {
		n += sizeMessage(9, sizeInt(1, int64(a.Method))+sizeInt(2, int64(a.Outcome)))
	}
	n += sizeInt(10, int64(e.State)) + sizeInt(11, int64(e.StatusCode))
	if x := e.Error; x != nil {
		n += sizeMessage(12, sizeInt(1, int64(x.Kind))+sizeString(2, x.Message))
	}
	for _, h := range e.RequestHeaders {
		n += sizeMessage(13, headerSize(h))
	}
	for _, h := range e.ResponseHeaders {
		n += sizeMessage(14, headerSize(h))
	}
	if b := e.ResponseBody; b != nil {
		n += sizeMessage(15, bodySize(b))
	}
	if t := e.Timings; t != nil {
		n += sizeMessage(16, timingsSize(t))
	}
	return n + sizeInt(17, e.BytesSent) + sizeInt(18, e.BytesReceived) + sizeInt(19, int64(e.Priority))
}

// appendWire appends e's encoding, of wireSize(e) bytes, to b. e must be
// marshalable.
func appendWire(b []byte, e *pxperfv1.Entry) []byte {
	b = appendUint(b, 1, e.Id)
	b = appendString(b, 2, e.RequestId)
	if t := e.StartTime; t != nil {
		b = appendTag(b, 3, sizeSecondsNanos(t.Seconds, t.Nanos))
		b = appendSecondsNanos(b, t.Seconds, t.Nanos)
	}
	b = appendString(b, 4, e.Method)
	b = appendString(b, 5, e.Url)
	b = appendString(b, 6, e.Host)
	b = appendBool(b, 7, e.Tunnel)
	if d := e.ProxyDecision; d != nil {
		b = appendTag(b, 8, proxyDecisionSize(d))
		b = appendInt(b, 1, int64(d.Route))
		b = appendString(b, 2, d.Upstream)
		for _, u := range d.FailedUpstreams {
			b = appendKey(b, 3, protowire.BytesType)
			b = appendVarint(b, uint64(len(u)))
			b = append(b, u...)
		}
		b = appendInt(b, 4, int64(d.Source))
	}
	if a := e.UpstreamAuth; a != nil {
		b = appendTag(b, 9, sizeInt(1, int64(a.Method))+sizeInt(2, int64(a.Outcome)))
		b = appendInt(b, 1, int64(a.Method))
		b = appendInt(b, 2, int64(a.Outcome))
	}
	b = appendInt(b, 10, int64(e.State))
	b = appendInt(b, 11, int64(e.StatusCode))
	if x := e.Error; x != nil {
		b = appendTag(b, 12, sizeInt(1, int64(x.Kind))+sizeString(2, x.Message))
		b = appendInt(b, 1, int64(x.Kind))
		b = appendString(b, 2, x.Message)
	}
	for _, h := range e.RequestHeaders {
		b = appendHeader(b, 13, h)
	}
	for _, h := range e.ResponseHeaders {
		b = appendHeader(b, 14, h)
	}
	if body := e.ResponseBody; body != nil {
		b = appendTag(b, 15, bodySize(body))
		if len(body.Data) > 0 {
			b = appendKey(b, 1, protowire.BytesType)
			b = appendVarint(b, uint64(len(body.Data)))
			b = append(b, body.Data...)
		}
		b = appendString(b, 2, body.ContentType)
		b = appendInt(b, 3, body.OriginalSize)
		b = appendBool(b, 4, body.Truncated)
	}
	if t := e.Timings; t != nil {
		b = appendTag(b, 16, timingsSize(t))
		for i, d := range timings(t) {
			if d != nil {
				b = appendTag(b, protowire.Number(i+1), sizeSecondsNanos(d.Seconds, d.Nanos))
				b = appendSecondsNanos(b, d.Seconds, d.Nanos)
			}
		}
	}
	b = appendInt(b, 17, e.BytesSent)
	b = appendInt(b, 18, e.BytesReceived)
	return appendInt(b, 19, int64(e.Priority))
}

// timings returns t's durations in field order, 1 to 5.
func timings(t *pxperfv1.Timings) [5]*durationpb.Duration {
	return [5]*durationpb.Duration{t.Dns, t.Connect, t.TlsHandshake, t.TimeToFirstByte, t.Total}
}

func timingsSize(t *pxperfv1.Timings) (n int) {
	for i, d := range timings(t) {
		if d != nil {
			n += sizeMessage(protowire.Number(i+1), sizeSecondsNanos(d.Seconds, d.Nanos))
		}
	}
	return n
}

func proxyDecisionSize(d *pxperfv1.ProxyDecision) int {
	n := sizeInt(1, int64(d.Route)) + sizeString(2, d.Upstream) + sizeInt(4, int64(d.Source))
	for _, u := range d.FailedUpstreams {
		n += protowire.SizeTag(3) + protowire.SizeBytes(len(u))
	}
	return n
}

func bodySize(b *pxperfv1.Body) int {
	n := sizeString(2, b.ContentType) + sizeInt(3, b.OriginalSize) + sizeBool(4, b.Truncated)
	if len(b.Data) > 0 {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(b.Data))
	}
	return n
}

func headerSize(h *pxperfv1.Header) int { return sizeString(1, h.Name) + sizeString(2, h.Value) }

func appendHeader(b []byte, num protowire.Number, h *pxperfv1.Header) []byte {
	b = appendTag(b, num, headerSize(h))
	b = appendString(b, 1, h.Name)
	return appendString(b, 2, h.Value)
}

func sizeSecondsNanos(seconds int64, nanos int32) int {
	return sizeInt(1, seconds) + sizeInt(2, int64(nanos))
}

func appendSecondsNanos(b []byte, seconds int64, nanos int32) []byte {
	b = appendInt(b, 1, seconds)
	return appendInt(b, 2, int64(nanos))
}

// appendVarint is protowire.AppendVarint with the one- and two-byte cases,
// which are most tags, lengths and values here, inlined.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<7:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, byte(v)|0x80, byte(v>>7))
	}
	return protowire.AppendVarint(b, v)
}

// appendKey appends the tag of field num with wire type typ.
func appendKey(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return appendVarint(b, protowire.EncodeTag(num, typ))
}

// The helpers below write one field, or nothing for a zero value, as
// proto3 does for fields without presence. Signed values are written as
// proto writes int32, int64 and enums: as the varint of their 64-bit two's
// complement.

func sizeMessage(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

// appendTag appends the tag and length of a message field of size bytes.
func appendTag(b []byte, num protowire.Number, size int) []byte {
	b = appendKey(b, num, protowire.BytesType)
	return appendVarint(b, uint64(size))
}

func sizeUint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendKey(b, num, protowire.VarintType)
	return appendVarint(b, v)
}

func sizeInt(num protowire.Number, v int64) int { return sizeUint(num, uint64(v)) }

func appendInt(b []byte, num protowire.Number, v int64) []byte { return appendUint(b, num, uint64(v)) }

func sizeBool(num protowire.Number, v bool) int {
	if !v {
		return 0
	}
	return protowire.SizeTag(num) + 1
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = appendKey(b, num, protowire.VarintType)
	return append(b, 1)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = appendKey(b, num, protowire.BytesType)
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}
