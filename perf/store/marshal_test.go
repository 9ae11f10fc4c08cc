package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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
// server) is left to proto.Marshal, which keeps them; the cache then holds
// them too.
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
			s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
			s.Append([]*pxperfv1.Entry{e})
			r, _ := s.ReadFrom(1, Limit{Entries: 1}, Matcher{}, Read{})
			want, err := proto.Marshal(r.Entries[0])
			if err != nil {
				t.Fatal(err)
			}
			if got := EntryBytes(r.Fields[0]); string(got) != string(want) {
				t.Errorf("cached encoding %x, want proto's %x", got, want)
			}
		})
	}
}

// BenchmarkMarshalEntry compares appendWire with proto.Marshal on the
// benchmarks' entry, as stored (id, host, state and priority set).
func BenchmarkMarshalEntry(b *testing.B) {
	e := testentry.Proxied(1)
	e.Id = 123456789
	buf := make([]byte, 0, 1024)
	b.Run("proto", func(b *testing.B) {
		for b.Loop() {
			n := proto.Size(e)
			var err error
			if buf, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(buf[:0], e); err != nil || len(buf) != n {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendWire", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if marshalable(e) {
				n = wireSize(e)
			}
			if buf = appendWire(buf[:0], e); len(buf) != n {
				b.Fatal("size mismatch")
			}
		}
	})
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
