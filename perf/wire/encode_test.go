package wire

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// checkField checks that the Encoder frames e, in FieldSize bytes, as the
// entries field proto.Marshal would write: tag, length, and exactly
// proto.Marshal's encoding of e (deterministic marshalling orders fields
// by number, as the generated code does, and puts unknown fields last).
func checkField(t *testing.T, name string, e *pxperfv1.Entry) {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := protowire.AppendBytes(protowire.AppendTag(nil, entriesField, protowire.BytesType), b)
	var enc Encoder
	size := enc.FieldSize(e)
	if got := enc.AppendField(nil, e, size); string(got) != string(want) || size != len(want) {
		t.Errorf("%s: Encoder gives %d bytes (FieldSize %d), proto.Marshal %d:\n got  %x\n want %x", name, len(got), size, len(want), got, want)
	}
}

// unknownField is a field that no message of the contract has: field 99,
// the varint 5.
var unknownField = protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)

// setUnknown gives m and every message set in it unknownField.
func setUnknown(m protoreflect.Message) {
	m.SetUnknown(unknownField)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := range v.List().Len() {
				setUnknown(v.List().Get(i).Message())
			}
		default:
			setUnknown(v.Message())
		}
		return true
	})
}

// Every field of Entry and of the messages in it is written, alone and all
// together, with and without unknown fields in every message: a field
// added to the contract and missing from the generated code (not
// regenerated) fails here.
func TestEncoderHandlesEveryField(t *testing.T) {
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	checkField(t, "every field", full)
	withUnknown := proto.CloneOf(full)
	setUnknown(withUnknown.ProtoReflect())
	checkField(t, "every field, unknown fields in every message", withUnknown)
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		e := new(pxperfv1.Entry)
		if err := testentry.SetField(e.ProtoReflect(), fd); err != nil {
			t.Fatal(err)
		}
		checkField(t, string(fd.Name()), e)
		setUnknown(e.ProtoReflect())
		checkField(t, string(fd.Name())+" with unknown fields", e)
	}
	checkField(t, "empty", new(pxperfv1.Entry))
	checkField(t, "empty sub-messages", &pxperfv1.Entry{
		StartTime: nil, Timings: &pxperfv1.Timings{}, ResponseBody: &pxperfv1.Body{}, RequestBody: &pxperfv1.Body{}, ProxyDecision: &pxperfv1.ProxyDecision{},
		UpstreamAuth: &pxperfv1.UpstreamAuth{}, Error: &pxperfv1.EntryError{}, RequestHeaders: []*pxperfv1.Header{{}},
	})
}

// Random entries, as producers send them, encode as proto.Marshal does.
func TestEncoderRandomEntries(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 500 {
		e := testentry.Proxied(rng.IntN(1 << 20))
		if rng.IntN(2) == 0 {
			e.StatusCode = int32(rng.IntN(600)) - 50 // negative codes too: the store does not refuse them
		}
		if rng.IntN(3) == 0 {
			e.Timings = nil
		}
		if rng.IntN(4) == 0 {
			e.ResponseBody = &pxperfv1.Body{ContentType: "text/html", OriginalSize: int64(rng.IntN(1 << 30)), Truncated: rng.IntN(2) == 0}
		}
		checkField(t, fmt.Sprint("entry ", i), e)
		checkField(t, fmt.Sprint("random entry ", i), testentry.Random(rng))
	}
}

// An entry carrying unknown fields (from a producer newer than the
// server) is encoded with them, as proto.Marshal keeps them, wherever they
// are: the generated code keeps them in the contract's messages, and the
// Encoder leaves those in a Timestamp or Duration to proto.Marshal.
func TestEncoderKeepsUnknownFields(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(e *pxperfv1.Entry) protoreflect.Message
	}{
		{"entry", func(e *pxperfv1.Entry) protoreflect.Message { return e.ProtoReflect() }},
		{"header", func(e *pxperfv1.Entry) protoreflect.Message { return e.RequestHeaders[0].ProtoReflect() }},
		{"timings", func(e *pxperfv1.Entry) protoreflect.Message { return e.Timings.ProtoReflect() }},
		{"start time", func(e *pxperfv1.Entry) protoreflect.Message { return e.StartTime.ProtoReflect() }},
		{"duration", func(e *pxperfv1.Entry) protoreflect.Message { return e.Timings.Total.ProtoReflect() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := testentry.Proxied(1)
			tt.set(e).SetUnknown(unknownField)
			checkField(t, tt.name, e)
		})
	}
}

// The Encoder frames an entry as one EntryBatch.entries field of
// FieldSize bytes, appended after what b holds.
func TestEncoderFramesEntriesField(t *testing.T) {
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	var enc Encoder
	for _, e := range []*pxperfv1.Entry{full, testentry.Proxied(1), {}} {
		prefix := []byte("prefix")
		b := enc.AppendField(prefix, e, enc.FieldSize(e))
		if string(b[:len(prefix)]) != string(prefix) || len(b)-len(prefix) != enc.FieldSize(e) {
			t.Fatalf("AppendField wrote %d bytes after the prefix, FieldSize says %d", len(b)-len(prefix), enc.FieldSize(e))
		}
		var got pxperfv1.EntryBatch
		if err := proto.Unmarshal(b[len(prefix):], &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Entries) != 1 || !proto.Equal(got.Entries[0], e) {
			t.Errorf("field decodes as %v, want one entry %v", &got, e)
		}
	}
}

// AppendField given a size that is not the entry's FieldSize panics rather
// than write a field whose length does not match its bytes.
func TestAppendFieldPanicsOnWrongSize(t *testing.T) {
	e := testentry.Proxied(1)
	var enc Encoder
	size := enc.FieldSize(e)
	for _, tt := range []struct {
		name string
		e    *pxperfv1.Entry
		size int
	}{
		{"one byte over", e, size + 1},
		{"many bytes over", e, size + 200},
		{"one byte short", e, size - 1},
		{"unknown fields, one byte over", withUnknownStart(e), enc.FieldSize(withUnknownStart(e)) + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendField with size %d did not panic", tt.size)
				}
			}()
			enc.AppendField(nil, tt.e, tt.size)
		})
	}
}

// withUnknownStart returns a copy of e whose start time carries an unknown
// field.
func withUnknownStart(e *pxperfv1.Entry) *pxperfv1.Entry {
	c := proto.CloneOf(e)
	c.StartTime.ProtoReflect().SetUnknown(unknownField)
	return c
}

// benchEntries are entries as the store encodes them (ids set, bodies
// taken out): the benchmarks' entry; one with 43 headers, every timing, a
// proxy decision and a body's metadata; and one with every field set.
func benchEntries(tb testing.TB) []struct {
	name  string
	entry *pxperfv1.Entry
} {
	proxied := testentry.Proxied(1)
	proxied.Id = 123456789
	rich := testentry.Proxied(2)
	rich.Id = 123456790
	for i := range 20 {
		rich.RequestHeaders = append(rich.RequestHeaders, &pxperfv1.Header{Name: fmt.Sprintf("X-Request-Header-%d", i), Value: fmt.Sprintf("value-%d-abcdefghijklmnopqrstuvwxyz", i)})
		rich.ResponseHeaders = append(rich.ResponseHeaders, &pxperfv1.Header{Name: fmt.Sprintf("X-Response-Header-%d", i), Value: fmt.Sprint(i)})
	}
	rich.Timings = &pxperfv1.Timings{Dns: durationpb.New(time.Millisecond), Connect: durationpb.New(3 * time.Millisecond), TlsHandshake: durationpb.New(9 * time.Millisecond), TimeToFirstByte: durationpb.New(30 * time.Millisecond), Total: durationpb.New(42 * time.Millisecond)}
	rich.ProxyDecision = &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_PROXY, Upstream: "proxy-a.internal:3128", FailedUpstreams: []string{"proxy-b.internal:3128"}, Source: pxperfv1.DecisionSource_DECISION_SOURCE_PAC}
	rich.ResponseBody = &pxperfv1.Body{ContentType: "application/javascript", OriginalSize: 48213}
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		tb.Fatal(err)
	}
	full.ResponseBody.Data = nil
	return []struct {
		name  string
		entry *pxperfv1.Entry
	}{{"proxied", proxied}, {"rich", rich}, {"full", full}}
}

// BenchmarkEncoder compares the Encoder with proto.Marshal framing the
// same field, as the store encodes entries into a buffer of their total
// size.
func BenchmarkEncoder(b *testing.B) {
	for _, be := range benchEntries(b) {
		e := be.entry
		buf := make([]byte, 0, 1<<14)
		b.Run(be.name+"/proto", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := proto.Size(e)
				buf = protowire.AppendVarint(protowire.AppendTag(buf[:0], entriesField, protowire.BytesType), uint64(n))
				var err error
				if buf, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(buf, e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(be.name+"/Encoder", func(b *testing.B) {
			b.ReportAllocs()
			var enc Encoder
			for b.Loop() {
				n := enc.FieldSize(e)
				if buf = enc.AppendField(buf[:0], e, n); len(buf) != n {
					b.Fatal("size mismatch")
				}
			}
		})
	}
}

// FuzzEncoder: any entry proto.Unmarshal makes, unknown fields and all,
// the Encoder encodes as proto.Marshal does.
func FuzzEncoder(f *testing.F) {
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		f.Fatal(err)
	}
	withUnknown := proto.CloneOf(full)
	setUnknown(withUnknown.ProtoReflect())
	for _, e := range []*pxperfv1.Entry{full, withUnknown, testentry.Proxied(1), {}} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e pxperfv1.Entry
		if proto.Unmarshal(b, &e) != nil {
			return
		}
		checkField(t, "fuzzed entry", &e)
	})
}
