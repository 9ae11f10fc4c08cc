package wire

import (
	"unicode/utf8"
	"unsafe"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file decodes the two publish requests, PublishStreamRequest and
// PublishRequest (both `repeated Entry entries = 1`), by hand: on the
// ingest path proto.Unmarshal of a batch spends most of its time
// allocating (a struct per sub-message, a string per string field, a slice
// per repeated field), and the store keeps every entry, so each of those
// small objects is also paid for again by the garbage collector.
//
// decodeEntry makes, per entry:
//   - one entryBlock: the Entry and its start time, which every valid
//     entry has, in one allocation where proto makes two;
//   - one arena holding all of the entry's string data, with every string
//     an unsafe.String over it, sized by a quick first pass over the
//     entry's top-level fields so that it never grows (a few bytes per
//     header over, their tags and lengths);
//   - for its headers, one []Header and one []*Header, shared by the
//     request and response headers (each slice capped at its own part);
//   - for timings, the Timings and one []Duration holding every duration;
//   - for failed upstreams, one []string;
//   - each other sub-message (ProxyDecision, UpstreamAuth, EntryError,
//     and the two Bodies) and each body's data on its own, when present.
//
// A header whose value the caller's [Redaction] redacts is redacted here,
// as it is read: its value is wiped from the arena, so that no credential
// stays in the memory the entry keeps.
//
// The entry owns all of it: nothing is shared with another entry or with
// the input, which gRPC recycles once its codec returns. The store changes
// entries in place (store.Normalize, and the store's complete, which gives
// an entry the Timings of the one it completes, and copies of its request
// headers and bodies); Timings is a separate object so that moving it does
// not keep the whole entry it came from alive.
//
// The fast path takes only input whose outcome it is sure of: known
// fields with the wire type protoc-gen-go writes, valid UTF-8 in strings,
// and each singular message field at most once (proto merges repeats). On
// anything else (an unknown field, an unexpected wire type, a group, a
// malformed varint or length, invalid UTF-8, a repeated sub-message) it
// gives up on that entry and proto.Unmarshal decodes it, so unknown fields
// are exactly proto's; an entry proto.Unmarshal refuses is refused alone
// (see [Failures]). TestDecodeHandlesEveryField notices a field added to
// the contract that the fast path does not know.

// Redaction names the header values that [UnmarshalPublish] redacts as it
// reads them, and what it puts in their place. The zero value redacts
// nothing.
type Redaction struct {
	// Redacts reports whether the value of a header named name is
	// redacted. It is called for every header with a value, from the
	// goroutine decoding. Nil redacts none.
	Redacts func(name string) bool
	// Value replaces a redacted value: the store's marker, so that the
	// store finds the header already redacted.
	Value string
}

// UnmarshalPublish decodes b into m as proto.Unmarshal does, redacting
// header values as r says. For a *pxperfv1.PublishStreamRequest or
// *pxperfv1.PublishRequest it takes the fast path for each entry it can,
// and proto.Unmarshal for the others; fast reports whether every entry
// took the fast path. An entry that does not decode at all (invalid UTF-8,
// malformed bytes inside it) does not fail the request: its place holds
// an empty entry, and [Failures] of m says which field was wrong. Nothing
// in m aliases b.
func UnmarshalPublish(b []byte, m proto.Message, r Redaction) (fast bool, err error) {
	var entries *[]*pxperfv1.Entry
	var batchID *string
	switch m := m.(type) {
	case *pxperfv1.PublishStreamRequest:
		entries, batchID = &m.Entries, &m.BatchId
	case *pxperfv1.PublishRequest:
		entries, batchID = &m.Entries, &m.BatchId
	default:
		return false, proto.Unmarshal(b, m)
	}
	es, id, fails, fast, ok := decodeEntries(b, r)
	if !ok {
		return false, proto.Unmarshal(b, m)
	}
	proto.Reset(m)
	*entries, *batchID = es, id
	if len(fails) > 0 {
		m.ProtoReflect().SetUnknown(appendFailures(nil, fails))
	}
	return fast, nil
}

// decodeEntries decodes b, a publish request (`repeated Entry entries =
// 1` and `string batch_id = 2`), and returns its entries (nil for none),
// each on the fast path when it can (fast is whether all were) and with
// proto.Unmarshal otherwise, and its batch id; an entry that does not
// decode is an empty entry, with its failure in fails. ok is false when b
// has other fields, or a batch id that is not UTF-8.
func decodeEntries(b []byte, r Redaction) (entries []*pxperfv1.Entry, batchID string, fails []Failure, fast, ok bool) {
	n := 0
	for rest := b; len(rest) > 0; {
		f, size := nextField(rest)
		switch {
		case size < 0 || f.typ != protowire.BytesType:
			return nil, "", nil, false, false
		case f.num == 1:
			n++
		case f.num == 2:
			if !utf8.Valid(f.b) {
				return nil, "", nil, false, false
			}
			batchID = string(f.b) // the last one wins, as in proto.Unmarshal
		default:
			return nil, "", nil, false, false
		}
		rest = rest[size:]
	}
	if n == 0 {
		return nil, batchID, nil, true, true
	}
	fast = true
	entries = make([]*pxperfv1.Entry, 0, n)
	for len(b) > 0 {
		f, size := nextField(b) // read above
		b = b[size:]
		if f.num != 1 {
			continue
		}
		e, ok := decodeEntry(f.b, r)
		if !ok {
			fast = false
			e = &pxperfv1.Entry{}
			if err := proto.Unmarshal(f.b, e); err != nil {
				e = &pxperfv1.Entry{}
				fails = append(fails, locateFailure(len(entries), f.b, err))
			}
		}
		entries = append(entries, e)
	}
	return entries, batchID, fails, fast, true
}

// field is one field as read from the wire.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // the value of a varint
	b   []byte // the value of a length-delimited field, within the input
}

// nextField reads the field at the start of b and returns it with its size
// in bytes. The size is negative when b is malformed, or when the field is
// neither a varint nor length-delimited, the only two types the fast path
// takes.
func nextField(b []byte) (f field, size int) {
	// Most fields have a one-byte tag and a one-byte value or length: read
	// those inline, as proto does, and the rest with protowire.
	if len(b) >= 2 && b[0] >= 1<<3 && b[0] < 0x80 && b[1] < 0x80 {
		f.num, f.typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		switch n := int(b[1]); {
		case f.typ == protowire.VarintType:
			f.v = uint64(n)
			return f, 2
		case f.typ == protowire.BytesType && n <= len(b)-2:
			f.b = b[2 : 2+n]
			return f, 2 + n
		}
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, -1
	}
	f.num, f.typ = num, typ
	switch typ {
	case protowire.VarintType:
		v, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return f, -1
		}
		f.v, size = v, n+m
	case protowire.BytesType:
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return f, -1
		}
		f.b, size = v, n+m
	default:
		return f, -1
	}
	return f, size
}

// entryShape is what one entry needs allocated, measured by a quick first
// pass over its top-level fields.
type entryShape struct {
	// arena bounds the entry's string data: the string fields, and the
	// sub-messages holding strings whole (their tags and lengths too, a
	// few bytes each), but not the body's data.
	arena       int
	reqHeaders  int
	respHeaders int
	failed      int // failed upstreams
	durations   int // fields of timings
}

// measure fills s from b, an Entry. It refuses b early on an unknown
// field, but checks little else: decodeEntry does.
func (s *entryShape) measure(b []byte) bool {
	for len(b) > 0 {
		f, size := nextField(b)
		if size < 0 || f.num < 1 || f.num > 21 {
			return false
		}
		b = b[size:]
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 2, 4, 5, 6, 12: // request_id, method, url, host; error
			s.arena += len(f.b)
		case 8: // proxy_decision
			s.arena += len(f.b)
			s.failed, _ = countFields(f.b, 3, 3)
		case 13: // request_headers
			s.arena += len(f.b)
			s.reqHeaders++
		case 14: // response_headers
			s.arena += len(f.b)
			s.respHeaders++
		case 15, 20: // response_body, request_body
			_, data := countFields(f.b, 1, 1)
			s.arena += len(f.b) - data
		case 16: // timings
			s.durations, _ = countFields(f.b, 1, 5)
		}
	}
	return true
}

// countFields returns how many fields of b are numbered from lo to hi,
// and the bytes of their values when length-delimited. It stops at a
// malformed field, which decodeEntry then refuses.
func countFields(b []byte, lo, hi protowire.Number) (n, size int) {
	for len(b) > 0 {
		f, fsize := nextField(b)
		if fsize < 0 {
			break
		}
		b = b[fsize:]
		if lo <= f.num && f.num <= hi {
			n++
			size += len(f.b)
		}
	}
	return n, size
}

// entryBlock holds an entry together with its start time, which every
// valid entry has, so that both take one allocation.
type entryBlock struct {
	entry pxperfv1.Entry
	start timestamppb.Timestamp
}

// entryAlloc hands out the memory measured for one entry, in the order its
// fields come.
type entryAlloc struct {
	redact    Redaction
	arena     []byte // string data; appended to, never past its capacity
	headers   []pxperfv1.Header
	durations []durationpb.Duration
	failed    []string // empty, with room for the failed upstreams
}

// decodeEntry decodes one Entry. ok is false when the fast path does not
// take b; what it made so far is then garbage.
func decodeEntry(b []byte, r Redaction) (e *pxperfv1.Entry, ok bool) {
	var s entryShape
	if !s.measure(b) {
		return nil, false
	}
	a := entryAlloc{redact: r}
	if s.arena > 0 {
		a.arena = make([]byte, 0, s.arena)
	}
	blk := new(entryBlock)
	e = &blk.entry
	if n := s.reqHeaders + s.respHeaders; n > 0 {
		a.headers = make([]pxperfv1.Header, n)
		ptrs := make([]*pxperfv1.Header, n)
		// Capped, so that appending to one list never writes into the
		// other.
		if s.reqHeaders > 0 {
			e.RequestHeaders = ptrs[:0:s.reqHeaders]
		}
		if s.respHeaders > 0 {
			e.ResponseHeaders = ptrs[s.reqHeaders:s.reqHeaders:n]
		}
	}
	if s.durations > 0 {
		a.durations = make([]durationpb.Duration, s.durations)
	}
	if s.failed > 0 {
		a.failed = make([]string, 0, s.failed)
	}
	var seen uint32 // singular message fields met, a bit per field number
	for len(b) > 0 {
		f, size := nextField(b)
		if size < 0 {
			return nil, false
		}
		b = b[size:]
		switch f.num {
		case 1: // id
			ok = isVarint(f)
			e.Id = f.v
		case 2: // request_id
			e.RequestId, ok = a.str(f)
		case 3: // start_time
			e.StartTime = &blk.start
			ok = once(&seen, f) && secondsNanos(f.b, &blk.start.Seconds, &blk.start.Nanos)
		case 4: // method
			e.Method, ok = a.str(f)
		case 5: // url
			e.Url, ok = a.str(f)
		case 6: // host
			e.Host, ok = a.str(f)
		case 7: // tunnel
			ok = isVarint(f)
			e.Tunnel = protowire.DecodeBool(f.v)
		case 8: // proxy_decision
			if ok = once(&seen, f); ok {
				e.ProxyDecision, ok = a.proxyDecision(f.b)
			}
		case 9: // upstream_auth
			if ok = once(&seen, f); ok {
				e.UpstreamAuth, ok = upstreamAuth(f.b)
			}
		case 10: // state
			ok = isVarint(f)
			e.State = pxperfv1.EntryState(int32(f.v))
		case 11: // status_code
			ok = isVarint(f)
			e.StatusCode = int32(f.v)
		case 12: // error
			if ok = once(&seen, f); ok {
				e.Error, ok = a.entryError(f.b)
			}
		case 13: // request_headers
			var h *pxperfv1.Header
			h, ok = a.header(f)
			e.RequestHeaders = append(e.RequestHeaders, h)
		case 14: // response_headers
			var h *pxperfv1.Header
			h, ok = a.header(f)
			e.ResponseHeaders = append(e.ResponseHeaders, h)
		case 15: // response_body
			if ok = once(&seen, f); ok {
				e.ResponseBody, ok = a.body(f.b)
			}
		case 16: // timings
			if ok = once(&seen, f); ok {
				e.Timings, ok = a.timings(f.b)
			}
		case 17: // bytes_sent
			ok = isVarint(f)
			e.BytesSent = int64(f.v)
		case 18: // bytes_received
			ok = isVarint(f)
			e.BytesReceived = int64(f.v)
		case 19: // priority
			ok = isVarint(f)
			e.Priority = pxperfv1.Priority(int32(f.v))
		case 20: // request_body
			if ok = once(&seen, f); ok {
				e.RequestBody, ok = a.body(f.b)
			}
		case 21: // replay_of
			ok = isVarint(f)
			e.ReplayOf = f.v
		default:
			ok = false
		}
		if !ok {
			return nil, false
		}
	}
	return e, true
}

// eachField calls take for each field of b, a message's encoding, in
// order, and reports whether every field was well formed and taken.
func eachField(b []byte, take func(f field) bool) bool {
	for len(b) > 0 {
		f, size := nextField(b)
		if size < 0 || !take(f) {
			return false
		}
		b = b[size:]
	}
	return true
}

func isVarint(f field) bool { return f.typ == protowire.VarintType }

// once reports whether f is length-delimited and the first of its number
// in seen, and marks it seen. The fast path takes each singular message
// field once: proto merges a second occurrence into the first, and that is
// left to proto.Unmarshal. f.num must be below 32.
func once(seen *uint32, f field) bool {
	bit := uint32(1) << f.num
	if f.typ != protowire.BytesType || *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// str returns f as a string in the arena. ok is false unless f is a
// string as proto3 requires: length-delimited and valid UTF-8.
func (a *entryAlloc) str(f field) (s string, ok bool) {
	if f.typ != protowire.BytesType || !utf8.Valid(f.b) {
		return "", false
	}
	if len(f.b) == 0 {
		return "", true
	}
	off := len(a.arena)
	// Measured, so this does not grow the arena. If it did, the strings
	// made so far would keep the old one alive: still correct.
	a.arena = append(a.arena, f.b...)
	return unsafe.String(&a.arena[off], len(f.b)), true
}

// secondsNanos reads b, a Timestamp or a Duration, into seconds and
// nanos, the last value of each field winning as in proto.
func secondsNanos(b []byte, seconds *int64, nanos *int32) bool {
	for len(b) > 0 {
		f, size := nextField(b)
		if size < 0 || !isVarint(f) {
			return false
		}
		b = b[size:]
		switch f.num {
		case 1:
			*seconds = int64(f.v)
		case 2:
			*nanos = int32(f.v)
		default:
			return false
		}
	}
	return true
}

// upstreamAuth decodes an UpstreamAuth: method = 1, outcome = 2, enums.
func upstreamAuth(b []byte) (*pxperfv1.UpstreamAuth, bool) {
	u := new(pxperfv1.UpstreamAuth)
	for len(b) > 0 {
		f, size := nextField(b)
		if size < 0 || !isVarint(f) {
			return nil, false
		}
		b = b[size:]
		switch f.num {
		case 1:
			u.Method = pxperfv1.AuthMethod(int32(f.v))
		case 2:
			u.Outcome = pxperfv1.AuthOutcome(int32(f.v))
		default:
			return nil, false
		}
	}
	return u, true
}

// header decodes a Header: name = 1, value = 2, strings.
func (a *entryAlloc) header(hf field) (*pxperfv1.Header, bool) {
	if hf.typ != protowire.BytesType || len(a.headers) == 0 {
		return nil, false
	}
	h := &a.headers[0]
	a.headers = a.headers[1:]
	if !eachField(hf.b, func(f field) (ok bool) {
		switch f.num {
		case 1:
			h.Name, ok = a.str(f)
		case 2:
			h.Value, ok = a.str(f)
		}
		return ok
	}) {
		return nil, false
	}
	if h.Value != "" && a.redact.Redacts != nil && a.redact.Redacts(h.Name) {
		a.forget(h.Value)
		h.Value = a.redact.Value
	}
	return h, true
}

// forget wipes s, a string of the arena, and gives its room back when it
// is the last thing in it: a redacted value must not outlive its decoding
// in the memory the entry keeps.
func (a *entryAlloc) forget(s string) {
	off := int(uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.SliceData(a.arena))))
	if off < 0 || off+len(s) > len(a.arena) {
		return // not in the arena: the measure pass keeps this from happening
	}
	clear(a.arena[off : off+len(s)])
	if off+len(s) == len(a.arena) {
		a.arena = a.arena[:off]
	}
}

// proxyDecision decodes a ProxyDecision: route = 1 and source = 4, enums;
// upstream = 2, a string; failed_upstreams = 3, repeated strings.
func (a *entryAlloc) proxyDecision(b []byte) (*pxperfv1.ProxyDecision, bool) {
	// a.failed is nil, as proto leaves it, when there are none.
	d := &pxperfv1.ProxyDecision{FailedUpstreams: a.failed}
	ok := eachField(b, func(f field) (ok bool) {
		switch f.num {
		case 1:
			ok = isVarint(f)
			d.Route = pxperfv1.Route(int32(f.v))
		case 2:
			d.Upstream, ok = a.str(f)
		case 3:
			var s string
			s, ok = a.str(f)
			d.FailedUpstreams = append(d.FailedUpstreams, s)
		case 4:
			ok = isVarint(f)
			d.Source = pxperfv1.DecisionSource(int32(f.v))
		}
		return ok
	})
	if !ok {
		return nil, false
	}
	return d, true
}

// entryError decodes an EntryError: kind = 1, an enum; message = 2, a
// string.
func (a *entryAlloc) entryError(b []byte) (*pxperfv1.EntryError, bool) {
	er := new(pxperfv1.EntryError)
	ok := eachField(b, func(f field) (ok bool) {
		switch f.num {
		case 1:
			ok = isVarint(f)
			er.Kind = pxperfv1.ErrorKind(int32(f.v))
		case 2:
			er.Message, ok = a.str(f)
		}
		return ok
	})
	if !ok {
		return nil, false
	}
	return er, true
}

// body decodes a Body: data = 1, bytes; content_type = 2, a string;
// original_size = 3 and truncated = 4, varints.
func (a *entryAlloc) body(b []byte) (*pxperfv1.Body, bool) {
	body := new(pxperfv1.Body)
	ok := eachField(b, func(f field) (ok bool) {
		switch f.num {
		case 1:
			// Its own allocation, as proto makes it (nil when empty): the
			// store keeps or cuts the body apart from the entry.
			ok = f.typ == protowire.BytesType
			body.Data = append([]byte(nil), f.b...)
		case 2:
			body.ContentType, ok = a.str(f)
		case 3:
			ok = isVarint(f)
			body.OriginalSize = int64(f.v)
		case 4:
			ok = isVarint(f)
			body.Truncated = protowire.DecodeBool(f.v)
		}
		return ok
	})
	if !ok {
		return nil, false
	}
	return body, true
}

// timings decodes a Timings: fields 1 to 5, Durations, each at most once.
func (a *entryAlloc) timings(b []byte) (*pxperfv1.Timings, bool) {
	t := new(pxperfv1.Timings)
	var seen uint32
	for len(b) > 0 {
		f, size := nextField(b)
		if size < 0 || f.num < 1 || f.num > 5 || !once(&seen, f) || len(a.durations) == 0 {
			return nil, false
		}
		b = b[size:]
		d := &a.durations[0]
		a.durations = a.durations[1:]
		if !secondsNanos(f.b, &d.Seconds, &d.Nanos) {
			return nil, false
		}
		switch f.num {
		case 1:
			t.Dns = d
		case 2:
			t.Connect = d
		case 3:
			t.TlsHandshake = d
		case 4:
			t.TimeToFirstByte = d
		case 5:
			t.Total = d
		}
	}
	return t, true
}
