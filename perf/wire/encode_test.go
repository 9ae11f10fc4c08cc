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
	"google.golang.org/protobuf/types/known/durationpb"
)

// checkWire checks that appendWire encodes e, of wireSize bytes, exactly
// as proto.Marshal does (deterministic marshalling orders fields by number,
// as appendWire does).
func checkWire(t *testing.T, name string, e *pxperfv1.Entry) {
	t.Helper()
	if !marshalable(e) {
		t.Fatalf("%s: not marshalable", name)
	}
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got := appendWire(nil, e)
	if string(got) != string(want) || wireSize(e) != len(want) {
		t.Errorf("%s: appendWire gives %d bytes (wireSize %d), proto.Marshal %d:\n got  %x\n want %x", name, len(got), wireSize(e), len(want), got, want)
	}
}

// Every field of Entry and of the messages in it is written, alone and all
// together: a field added to the contract and not to appendWire fails
// here.
func TestMarshalEntryHandlesEveryField(t *testing.T) {
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	checkWire(t, "every field", full)
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		e := new(pxperfv1.Entry)
		if err := testentry.SetField(e.ProtoReflect(), fd); err != nil {
			t.Fatal(err)
		}
		checkWire(t, string(fd.Name()), e)
	}
	checkWire(t, "empty", new(pxperfv1.Entry))
	checkWire(t, "empty sub-messages", &pxperfv1.Entry{
		StartTime: nil, Timings: &pxperfv1.Timings{}, ResponseBody: &pxperfv1.Body{}, ProxyDecision: &pxperfv1.ProxyDecision{},
		UpstreamAuth: &pxperfv1.UpstreamAuth{}, Error: &pxperfv1.EntryError{}, RequestHeaders: []*pxperfv1.Header{{}},
	})
}

// Random entries, as producers send them, encode as proto.Marshal does.
func TestMarshalRandomEntries(t *testing.T) {
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
		checkWire(t, fmt.Sprint("entry ", i), e)
	}
}

// An entry carrying unknown fields (from a producer newer than the
// server) is left to proto.Marshal, which keeps them; the cached field then
// holds them too.
func TestMarshalLeavesUnknownFieldsToProto(t *testing.T) {
	unknown := protowire.AppendTag(nil, 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 5)
	for _, tt := range []struct {
		name string
		set  func(e *pxperfv1.Entry)
	}{
		{"entry", func(e *pxperfv1.Entry) { e.ProtoReflect().SetUnknown(unknown) }},
		{"header", func(e *pxperfv1.Entry) { e.RequestHeaders[0].ProtoReflect().SetUnknown(unknown) }},
		{"duration", func(e *pxperfv1.Entry) { e.Timings.Total.ProtoReflect().SetUnknown(unknown) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := testentry.Proxied(1)
			tt.set(e)
			if marshalable(e) {
				t.Fatal("marshalable with unknown fields")
			}
			want, err := proto.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var enc Encoder
			if got := entryBytes(enc.AppendField(nil, e, enc.FieldSize(e))); string(got) != string(want) {
				t.Errorf("encoded field holds %x, want proto's %x", got, want)
			}
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

// FuzzAppendWire: any entry proto.Unmarshal makes, appendWire encodes as
// proto.Marshal does, or leaves to it when it carries unknown fields.
func FuzzAppendWire(f *testing.F) {
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		f.Fatal(err)
	}
	for _, e := range []*pxperfv1.Entry{full, testentry.Proxied(1), {}} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e pxperfv1.Entry
		if proto.Unmarshal(b, &e) != nil || !marshalable(&e) {
			return
		}
		checkWire(t, "fuzzed entry", &e)
	})
}
