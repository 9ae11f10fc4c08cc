package wire

import (
	"fmt"
	"slices"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Encoder encodes an entry as the store caches it (see
// [github.com/pxperf/pxperf/perf/store.Encoder]): as one `entries` field of
// an EntryBatch, which a ListEntriesResponse and a ViewUpdate number the
// same, so that cached entries are sent in any of them as they are. The
// entry's bytes are those proto.Marshal writes, unknown fields included.
// The zero value is ready to use, and safe for concurrent use.
//
// The code protoc-gen-go-vtproto generates for Entry (gen/pxperf/v1)
// writes them, but for one case: it encodes the well-known types (the
// start time, the timings) with code of its own that leaves their unknown
// fields out. An entry whose Timestamp or Durations carry unknown fields
// (only a producer that sends fields those types do not define makes one)
// is left to proto.Marshal.
type Encoder struct{}

// FieldSize returns the size in bytes of e's field: its tag, its length
// and e's encoding.
func (Encoder) FieldSize(e *pxperfv1.Entry) int {
	n := 0
	if wellKnownUnknown(e) {
		n = proto.Size(e)
	} else {
		n = e.SizeVT()
	}
	return protowire.SizeTag(entriesField) + protowire.SizeBytes(n)
}

// AppendField appends e's field, of size bytes, to b and returns the
// extended slice. size is FieldSize(e), and e has not changed since.
// AppendField panics if size is not FieldSize(e).
func (Encoder) AppendField(b []byte, e *pxperfv1.Entry, size int) []byte {
	start := len(b)
	b = slices.Grow(b, size)[:start+size]
	field := b[start:]
	// The generated code writes the entry at the end of field, back to
	// front; its tag and length must fill what is left. They fall short
	// when FieldSize measured proto.Marshal's encoding, which is longer
	// (see Encoder): that case is checked only then.
	n, err := e.MarshalToSizedBufferVT(field)
	if err == nil && !fillsHead(field, n) && wellKnownUnknown(e) {
		if n = proto.Size(e); n <= size {
			_, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(field[size-n:size-n], e)
		}
	}
	if err != nil {
		// Only invalid UTF-8 fails, which neither proto.Unmarshal nor the
		// store's check lets in; the generated code does not fail.
		panic("wire: encoding an entry: " + err.Error())
	}
	if !fillsHead(field, n) {
		panic(fmt.Sprintf("wire: AppendField of a %d-byte entry given size %d, not its FieldSize", n, size))
	}
	return b
}

// fillsHead writes the tag and length of an entry of n bytes at the start
// of field, no further than where the entry starts at the end of field,
// and reports whether they end right there.
func fillsHead(field []byte, n int) bool {
	if n > len(field) {
		return false
	}
	room := len(field) - n
	head := protowire.AppendTag(field[:0:room], entriesField, protowire.BytesType)
	return len(protowire.AppendVarint(head, uint64(n))) == room
}

// wellKnownUnknown reports whether e's Timestamp or Durations carry unknown
// fields.
func wellKnownUnknown(e *pxperfv1.Entry) bool {
	if e.StartTime != nil && len(e.StartTime.ProtoReflect().GetUnknown()) > 0 {
		return true
	}
	if t := e.Timings; t != nil {
		for _, d := range [...]*durationpb.Duration{t.Dns, t.Connect, t.TlsHandshake, t.TimeToFirstByte, t.Total} {
			if d != nil && len(d.ProtoReflect().GetUnknown()) > 0 {
				return true
			}
		}
	}
	return false
}
