package wire

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
)

// publishMessages makes an empty message of each type UnmarshalPublish
// decodes on its fast path.
var publishMessages = []struct {
	name string
	new  func() proto.Message
}{
	{"PublishStreamRequest", func() proto.Message { return new(pxperfv1.PublishStreamRequest) }},
	{"PublishRequest", func() proto.Message { return new(pxperfv1.PublishRequest) }},
}

// decodeBoth decodes b with UnmarshalPublish and with proto.Unmarshal, into
// each publish message, and fails tb unless both fail or both succeed with
// equal messages. It decodes from a copy of b that it then overwrites, so
// that anything decoded that aliases the input shows. It returns whether
// the fast path was taken, which must be the same for both types.
func decodeBoth(tb testing.TB, b []byte) (fast bool) {
	tb.Helper()
	for i, pm := range publishMessages {
		in := bytes.Clone(b)
		got := pm.new()
		f, gotErr := UnmarshalPublish(in, got, Redaction{})
		for j := range in {
			in[j] = 0xa5
		}
		want, wantErr := referenceDecode(b, pm.new())
		if (gotErr != nil) != (wantErr != nil) {
			tb.Fatalf("%s: UnmarshalPublish (fast %v) error %v, proto.Unmarshal error %v", pm.name, f, gotErr, wantErr)
		}
		if fails := Failures(got); gotErr == nil && len(fails) > 0 {
			// The failures travel as got's unknown fields: compare the
			// entries without them.
			got = proto.Clone(got)
			got.ProtoReflect().SetUnknown(nil)
			if proto.Equal(want, pm.new()) || proto.Unmarshal(b, pm.new()) == nil {
				tb.Fatalf("%s: failures %v where proto.Unmarshal decodes every entry", pm.name, fails)
			}
		}
		if gotErr == nil && !proto.Equal(got, want) {
			tb.Fatalf("%s: UnmarshalPublish (fast %v) differs from proto.Unmarshal (-got +want):\n%s", pm.name, f, cmp.Diff(got, want, protocmp.Transform()))
		}
		if f && gotErr != nil {
			tb.Fatalf("%s: the fast path returned an error: %v", pm.name, gotErr)
		}
		if i > 0 && f != fast {
			tb.Fatalf("%s: fast path %v, %s: %v", pm.name, f, publishMessages[0].name, fast)
		}
		fast = f
	}
	return fast
}

// referenceDecode decodes b into m, a publish request, as UnmarshalPublish
// must: as proto.Unmarshal does when it can; otherwise, when b is made of
// entries fields alone, each entry as proto.Unmarshal decodes it alone,
// an entry it refuses left empty. It fails when proto.Unmarshal fails on
// the framing of b itself.
func referenceDecode(b []byte, m proto.Message) (proto.Message, error) {
	err := proto.Unmarshal(b, m)
	if err == nil {
		return m, nil
	}
	var entries []*pxperfv1.Entry
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, err
		}
		v, k := protowire.ConsumeBytes(b[n:])
		if k < 0 {
			return nil, err
		}
		e := &pxperfv1.Entry{}
		if proto.Unmarshal(v, e) != nil {
			e = &pxperfv1.Entry{}
		}
		entries = append(entries, e)
		b = b[n+k:]
	}
	proto.Reset(m)
	switch m := m.(type) {
	case *pxperfv1.PublishStreamRequest:
		m.Entries = entries
	case *pxperfv1.PublishRequest:
		m.Entries = entries
	}
	return m, nil
}

// populate sets every field of m (see testentry.Populate).
func populate(t *testing.T, m protoreflect.Message) {
	t.Helper()
	if err := testentry.Populate(m); err != nil {
		t.Fatal(err)
	}
}

// The fast path takes an entry with every field of Entry and of the
// messages in it set, and decodes it as proto does. A field added to the
// contract that the decoder does not know fails this test: the decoder
// falls back to proto.Unmarshal for it.
func TestDecodeHandlesEveryField(t *testing.T) {
	full := new(pxperfv1.Entry)
	populate(t, full.ProtoReflect())
	b := testentry.MarshalRequest(t, full, full)
	if !decodeBoth(t, b) {
		t.Fatal("a fully populated entry took the slow path: the decoder does not know one of its fields (see decode.go)")
	}
	// Each field alone, so that every field is also decoded without the
	// others measured alongside.
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		t.Run(string(fd.Name()), func(t *testing.T) {
			e := new(pxperfv1.Entry)
			if err := testentry.SetField(e.ProtoReflect(), fd); err != nil {
				t.Fatal(err)
			}
			if !decodeBoth(t, testentry.MarshalRequest(t, e)) {
				t.Errorf("an entry with only %s set took the slow path", fd.Name())
			}
		})
	}
}

// Wire-building helpers for hand-made inputs.

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func bytesField(num protowire.Number, parts ...[]byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), bytes.Join(parts, nil))
}

func stringField(num protowire.Number, s string) []byte { return bytesField(num, []byte(s)) }

// request returns a publish request whose entries are the given entries in
// wire form.
func request(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, bytesField(1, e)...)
	}
	return b
}

func entry(fields ...[]byte) []byte { return bytes.Join(fields, nil) }

func TestDecodeEdgeCases(t *testing.T) {
	minimal := entry(stringField(4, "GET"), stringField(5, "http://example.com/"))
	for _, tc := range []struct {
		name string
		in   []byte
		fast bool // whether the fast path takes it; decodeBoth checks the rest
	}{
		{"empty message", nil, true},
		{"one empty entry", request(nil), true},
		{"empty and minimal entries", request(nil, minimal, nil), true},
		{"empty strings", request(entry(stringField(2, ""), stringField(4, ""), bytesField(13, stringField(1, ""), stringField(2, "")))), true},
		{"empty sub-messages", request(entry(bytesField(3), bytesField(8), bytesField(9), bytesField(12), bytesField(15), bytesField(16, bytesField(5)), bytesField(20))), true},
		{"empty body data", request(entry(bytesField(15, bytesField(1)), bytesField(20, bytesField(1)))), true},
		{"body data not UTF-8", request(entry(bytesField(15, bytesField(1, []byte{0xff, 0xfe})))), true},
		{"request body data not UTF-8", request(entry(bytesField(20, bytesField(1, []byte{0xff, 0xfe}), stringField(2, "application/octet-stream")))), true},
		{"both bodies", request(entry(
			bytesField(20, bytesField(1, []byte("name=a")), stringField(2, "application/x-www-form-urlencoded"), varintField(3, 6)),
			bytesField(15, bytesField(1, []byte("ok")), stringField(2, "text/plain"), varintField(4, 1)),
		)), true},
		{"content type not UTF-8 in request body", request(entry(bytesField(20, bytesField(2, []byte{0xc3})))), false},
		{"replay_of", request(entry(varintField(21, 7), varintField(21, math.MaxUint64))), true},
		{"largest varints", request(entry(
			varintField(1, math.MaxUint64),
			varintField(11, math.MaxUint64), // status_code -1
			varintField(17, 1<<63),          // bytes_sent MinInt64
			varintField(19, math.MaxUint64), // priority -1
			bytesField(3, varintField(1, math.MaxUint64), varintField(2, math.MaxUint64)),
		)), true},
		{"int32 past 32 bits", request(entry(varintField(11, 1<<40+200), varintField(10, 1<<33+2))), true},
		{"bool above 1", request(entry(varintField(7, 300), bytesField(15, varintField(4, 2)))), true},
		{"non-minimal varint", request(entry([]byte{11 << 3, 0xc8, 0x81, 0x80, 0x80, 0x00})), true},
		{"non-minimal tag", request(entry(append([]byte{4<<3 | 2 | 0x80, 0x80, 0x00}, protowire.AppendString(nil, "GET")...))), true},
		{"varint of 11 bytes", request(entry(append([]byte{1 << 3}, bytes.Repeat([]byte{0x80}, 10)...), []byte{0x01})), false},
		{"varint overflowing 64 bits", request(entry(append([]byte{1 << 3}, bytes.Repeat([]byte{0xff}, 9)...), []byte{0x02})), false},
		{"scalars given twice", request(entry(
			stringField(4, "GET"), varintField(11, 200), stringField(4, "POST"), varintField(11, 404),
			bytesField(15, bytesField(1, []byte("first")), stringField(2, "a"), bytesField(1, []byte("second")), bytesField(1)),
			bytesField(20, bytesField(1, []byte("up")), varintField(3, 9), varintField(3, 2)),
			bytesField(3, varintField(1, 5), varintField(1, 6)),
		)), true},
		{"message field given twice", request(entry(bytesField(3, varintField(1, 5)), bytesField(3, varintField(2, 7)))), false},
		{"request body given twice", request(entry(bytesField(20, bytesField(1, []byte("a"))), bytesField(20, varintField(3, 7)))), false},
		{"request body sent as varint", request(entry(varintField(20, 3))), false},
		{"replay_of sent as bytes", request(entry(bytesField(21, []byte{1}))), false},
		{"duration given twice", request(entry(bytesField(16, bytesField(5, varintField(1, 1)), bytesField(5, varintField(2, 2))))), false},
		{"headers interleaved", request(entry(
			bytesField(13, stringField(1, "A"), stringField(2, "1")),
			bytesField(14, stringField(1, "B"), stringField(2, "2")),
			bytesField(13, stringField(2, "3"), stringField(1, "C"), stringField(1, "D")),
			bytesField(14),
		)), true},
		{"failed upstreams", request(entry(bytesField(8, stringField(3, "a:1"), varintField(1, 2), stringField(3, ""), stringField(3, "c:3")))), true},
		{"packed singular scalar", request(entry(bytesField(11, protowire.AppendVarint(protowire.AppendVarint(nil, 200), 404)))), false},
		{"string sent as varint", request(entry(varintField(5, 3))), false},
		{"message sent as varint", request(entry(varintField(16, 3))), false},
		{"unknown field in entry", request(minimal, entry(minimal, varintField(99, 1))), false},
		{"unknown field in request", append(request(minimal), varintField(2, 1)...), false},
		{"unknown field in header", request(entry(bytesField(13, stringField(1, "A"), stringField(3, "x")))), false},
		{"unknown field in timestamp", request(entry(bytesField(3, varintField(3, 1)))), false},
		{"fixed64 field", request(entry(protowire.AppendFixed64(protowire.AppendTag(nil, 1, protowire.Fixed64Type), 1))), false},
		{"group", request(entry(protowire.AppendTag(nil, 20, protowire.StartGroupType), varintField(1, 1), protowire.AppendTag(nil, 20, protowire.EndGroupType))), false},
		{"stray end group", request(entry(protowire.AppendTag(nil, 20, protowire.EndGroupType))), false},
		{"field number 0", request(entry(varintField(0, 1))), false},
		{"invalid UTF-8 in url", request(entry(bytesField(5, []byte("http://\xff/")))), false},
		{"invalid UTF-8 in header value", request(entry(bytesField(14, stringField(1, "A"), bytesField(2, []byte{0xc3})))), false},
		{"invalid UTF-8 in failed upstream", request(entry(bytesField(8, bytesField(3, []byte{0xed, 0xa0, 0x80})))), false},
		{"length past the end", append(request(minimal), 1<<3|2, 5, 0), false},
		{"truncated entry", request(minimal)[:10], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodeBoth(t, tc.in); got != tc.fast {
				t.Errorf("fast path taken: %v, want %v", got, tc.fast)
			}
		})
	}
}

// Every prefix of a request agrees with proto.Unmarshal: an error, or the
// same message.
func TestDecodeTruncated(t *testing.T) {
	full := new(pxperfv1.Entry)
	populate(t, full.ProtoReflect())
	b := testentry.MarshalRequest(t, testentry.Proxied(1), full)
	for n := range len(b) {
		decodeBoth(t, b[:n])
	}
}

// Random entries (testentry.Random) all take the fast path.
func TestDecodeRandomEntries(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		if !decodeBoth(t, testentry.MarshalRequest(t, testentry.Random(r), testentry.Random(r))) {
			t.Fatal("a random entry took the slow path")
		}
	}
}

// Entries decoded from one request share no memory: changing one in every
// way the store does leaves the others as they were.
func TestDecodedEntriesAreIndependent(t *testing.T) {
	full := new(pxperfv1.Entry)
	populate(t, full.ProtoReflect())
	var got pxperfv1.PublishStreamRequest
	if fast, err := UnmarshalPublish(testentry.MarshalRequest(t, full, full, full), &got, Redaction{}); err != nil || !fast {
		t.Fatalf("UnmarshalPublish: fast %v, error %v", fast, err)
	}
	a, b, c := got.Entries[0], got.Entries[1], got.Entries[2]
	// What store.Normalize and complete do, and more.
	a.Host = "changed"
	a.RequestHeaders[0].Value = "[REDACTED]"
	a.RequestHeaders = append(a.RequestHeaders, &pxperfv1.Header{Name: "X"})
	a.ResponseHeaders[1].Name = "changed"
	a.ResponseBody.Data[0]++
	a.ResponseBody.Data = append(a.ResponseBody.Data, 1)
	a.RequestBody.Data[0]++
	a.RequestBody.Data = append(a.RequestBody.Data, 1)
	a.RequestBody.ContentType = "changed"
	a.Timings.Total.Seconds++
	a.StartTime.Nanos++
	a.ProxyDecision.FailedUpstreams[0] = "changed"
	a.ProxyDecision.FailedUpstreams = append(a.ProxyDecision.FailedUpstreams, "more")
	a.Error.Message = "changed"
	a.UpstreamAuth.Outcome = 0
	b.Timings, c.Timings = c.Timings, nil
	b.RequestHeaders = nil
	b.Timings.Dns.Nanos++
	for i, e := range []*pxperfv1.Entry{b, c} {
		want := proto.CloneOf(full)
		if i == 0 {
			want.RequestHeaders = nil
			want.Timings.Dns.Nanos++
		} else {
			want.Timings = nil
		}
		if diff := cmp.Diff(e, want, protocmp.Transform()); diff != "" {
			t.Errorf("entry %d after entry 0 changed (-got +want):\n%s", i+1, diff)
		}
	}
	if len(a.ResponseHeaders) != 2 {
		t.Errorf("appending to request_headers changed response_headers: %d of them, want 2", len(a.ResponseHeaders))
	}
}

// FuzzDecodePublish holds the fast path to proto.Unmarshal: for any input,
// it fails iff proto.Unmarshal fails, and otherwise decodes the same
// message, owning all of its memory.
func FuzzDecodePublish(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		f.Add(testentry.MarshalRequest(f, testentry.Random(r), testentry.Random(r)))
	}
	f.Add(testentry.MarshalRequest(f, testentry.Proxied(1), testentry.Proxied(2)))
	f.Add(request(entry(bytesField(3, varintField(1, 5)), bytesField(3, varintField(2, 7)))))
	f.Add(request(entry(bytesField(13, stringField(1, "A")), varintField(99, 1))))
	f.Add(request(entry(bytesField(5, []byte("http://\xff/")))))
	f.Add(request(entry(bytesField(20, bytesField(1, []byte{0xff}), stringField(2, "a")), varintField(21, 3), bytesField(15, bytesField(1, []byte("b"))))))
	f.Add(append(testentry.MarshalRequest(f, testentry.Proxied(1)), stringField(2, "batch-1")...))
	f.Add(append(stringField(2, "a"), append(testentry.MarshalRequest(f, testentry.Proxied(1)), stringField(2, "\xff")...)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeBoth(t, b)
	})
}

// BenchmarkDecodePublish decodes a PublishStreamRequest of 100 entries as
// bench publishes them, with proto.Unmarshal and with UnmarshalPublish.
// "discard" drops each message, as the bare server does; "keep" keeps the
// last 10 000 messages (a million entries) alive, as the store does, so
// that the garbage collector's share of the cost shows.
func BenchmarkDecodePublish(b *testing.B) {
	entries := make([]*pxperfv1.Entry, 100)
	for i := range entries {
		entries[i] = testentry.Proxied(i)
	}
	wire := testentry.MarshalRequest(b, entries...)
	for _, dec := range []struct {
		name      string
		unmarshal func([]byte, proto.Message) error
	}{
		{"proto", proto.Unmarshal},
		{"fast", func(b []byte, m proto.Message) error { _, err := UnmarshalPublish(b, m, Redaction{}); return err }},
	} {
		for _, keep := range []bool{false, true} {
			name := dec.name + "/discard"
			if keep {
				name = dec.name + "/keep"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(wire)))
				var kept []*pxperfv1.PublishStreamRequest
				for b.Loop() {
					m := new(pxperfv1.PublishStreamRequest)
					if err := dec.unmarshal(wire, m); err != nil {
						b.Fatal(err)
					}
					if keep {
						if len(kept) == 10000 {
							clear(kept)
							kept = kept[:0]
						}
						kept = append(kept, m)
					}
				}
			})
		}
	}
}

// A batch id, anywhere among the entries, keeps the fast path and is
// decoded as proto.Unmarshal decodes it; one that is not UTF-8 is refused
// as proto.Unmarshal refuses it.
func TestDecodeBatchID(t *testing.T) {
	entries := testentry.MarshalRequest(t, testentry.Proxied(1), testentry.Proxied(2))
	for _, tc := range []struct {
		name string
		b    []byte
		fast bool
	}{
		{"after the entries", append(slices.Clone(entries), stringField(2, "batch-7")...), true},
		{"before the entries", append(stringField(2, "batch-7"), entries...), true},
		{"twice: the last wins", append(append(stringField(2, "first"), entries...), stringField(2, "last")...), true},
		{"alone", stringField(2, "batch-7"), true},
		{"not UTF-8", append(slices.Clone(entries), stringField(2, "\xff")...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fast := decodeBoth(t, tc.b); fast != tc.fast {
				t.Errorf("fast path = %v, want %v", fast, tc.fast)
			}
		})
	}
}

// Header values the store redacts are redacted by the decoder as it reads
// them, and their bytes are wiped from the entry's arena, whichever of name
// and value comes first; other headers are kept as sent.
func TestDecodeRedactsAsItReads(t *testing.T) {
	redact := Redaction{
		Redacts: func(name string) bool {
			return strings.EqualFold(name, "cookie") || strings.EqualFold(name, "x-api-key")
		},
		Value: "[REDACTED]",
	}
	secret := strings.Repeat("s3cr3t", 700)
	header := func(nameFirst bool, name, value string) field {
		var b []byte
		if nameFirst {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, name)
		}
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, value)
		if !nameFirst {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, name)
		}
		return field{num: 13, typ: protowire.BytesType, b: b}
	}
	for _, tt := range []struct {
		name      string
		nameFirst bool
		header    string
		value     string
		want      string
		wantArena int // bytes of the arena in use after the header
	}{
		{"redacted, name first", true, "Cookie", secret, redact.Value, len("Cookie")},
		{"redacted, value first", false, "X-Api-Key", secret, redact.Value, len(secret) + len("X-Api-Key")},
		{"kept", true, "Accept", "*/*", "*/*", len("Accept") + len("*/*")},
		{"empty value", true, "Cookie", "", "", len("Cookie")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := entryAlloc{redact: redact, arena: make([]byte, 0, 1<<16), headers: make([]pxperfv1.Header, 1)}
			h, ok := a.header(header(tt.nameFirst, tt.header, tt.value))
			if !ok || h.Name != tt.header || h.Value != tt.want {
				t.Fatalf("header = %v, %v; want %s: %q", h, ok, tt.header, tt.want)
			}
			if len(a.arena) != tt.wantArena {
				t.Errorf("arena holds %d bytes, want %d", len(a.arena), tt.wantArena)
			}
			if tt.want == redact.Value && bytes.Contains(a.arena[:cap(a.arena)], []byte(tt.value)) {
				t.Error("the redacted value is still in the arena")
			}
		})
	}
}

// An entry that does not decode is refused alone: its place holds an empty
// entry, Failures names its field, and the entries around it decode.
func TestUnmarshalPublishRefusesOneEntry(t *testing.T) {
	fieldNum := func(m proto.Message, name string) protowire.Number {
		return m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name)).Number()
	}
	good := func(i int) []byte {
		b, err := proto.Marshal(testentry.Proxied(i))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withField := func(num protowire.Number, v []byte) []byte {
		b := protowire.AppendTag(good(2), num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	header := protowire.AppendTag(nil, fieldNum(&pxperfv1.Header{}, "value"), protowire.BytesType)
	header = protowire.AppendBytes(header, []byte("bad \xff value"))
	requestBody := protowire.AppendTag(nil, fieldNum(&pxperfv1.Body{}, "content_type"), protowire.BytesType)
	requestBody = protowire.AppendBytes(requestBody, []byte("text/\xff"))
	for _, tc := range []struct {
		name       string
		bad        []byte
		wantField  string
		wantReason string
	}{
		{"url not UTF-8", withField(fieldNum(&pxperfv1.Entry{}, "url"), []byte("https://example.com/\xff")), "url", "not valid UTF-8"},
		{"header value not UTF-8", withField(fieldNum(&pxperfv1.Entry{}, "response_headers"), header), "response_headers[1].value", "not valid UTF-8"},
		{"request body content type not UTF-8", withField(fieldNum(&pxperfv1.Entry{}, "request_body"), requestBody), "request_body.content_type", "not valid UTF-8"},
		{"malformed inside", append(good(2), byte(fieldNum(&pxperfv1.Entry{}, "status_code"))<<3, 0xff), "status_code", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			for _, e := range [][]byte{good(1), tc.bad, good(3)} {
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				b = protowire.AppendBytes(b, e)
			}
			for _, pm := range publishMessages {
				m := pm.new()
				if _, err := UnmarshalPublish(b, m, Redaction{}); err != nil {
					t.Fatalf("%s: %v; want the request decoded", pm.name, err)
				}
				entries := m.ProtoReflect().Get(m.ProtoReflect().Descriptor().Fields().ByName("entries")).List()
				first := entries.Get(0).Message().Interface().(*pxperfv1.Entry)
				last := entries.Get(2).Message().Interface().(*pxperfv1.Entry)
				if entries.Len() != 3 || first.GetUrl() != testentry.Proxied(1).GetUrl() || last.GetUrl() != testentry.Proxied(3).GetUrl() ||
					!proto.Equal(entries.Get(1).Message().Interface(), &pxperfv1.Entry{}) {
					t.Errorf("%s: entries %v; want entries 1 and 3 around an empty one", pm.name, entries)
				}
				fails := Failures(m)
				if len(fails) != 1 || fails[0].Index != 1 || fails[0].Field != tc.wantField || !strings.Contains(fails[0].Reason, tc.wantReason) {
					t.Errorf("%s: failures %+v; want entry 1's, naming %s (%s)", pm.name, fails, tc.wantField, tc.wantReason)
				}
			}
		})
	}
}
