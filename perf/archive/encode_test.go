package archive

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// randString returns a string mixing ASCII, JSON specials, control
// characters, multi-byte UTF-8 and, with invalid, bytes that are not UTF-8.
func randString(r *rand.Rand, invalid bool) string {
	if r.IntN(4) == 0 {
		return ""
	}
	parts := []string{"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x00", "\x01", "\x1f", "\x7f",
		"é", "ß", "€", "日本", "😀", "\u2028", "\u2029", "\ufeff", "<", ">", "&", "http://example.com/?q=1&r=2"}
	if invalid {
		parts = append(parts, "\xff", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\xaf")
	}
	var b strings.Builder
	for n := r.IntN(12); n >= 0; n-- {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

func randInt64(r *rand.Rand) int64 {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return math.MinInt64
	case 3:
		return -r.Int64N(1 << 40)
	}
	return r.Int64()
}

// randDuration returns a valid Duration: seconds within ±10000 years,
// nanos of the same sign.
func randDuration(r *rand.Rand) *durationpb.Duration {
	switch r.IntN(6) {
	case 0:
		return nil
	case 1:
		return &durationpb.Duration{}
	case 2:
		return &durationpb.Duration{Nanos: -r.Int32N(1e9)} // -0.xxx s
	case 3:
		return &durationpb.Duration{Seconds: -maxDurationSeconds, Nanos: -999999999}
	}
	s := r.Int64N(maxDurationSeconds + 1)
	n := r.Int32N(1e9)
	if r.IntN(3) == 0 {
		n = n / 1e6 * 1e6 // millisecond precision: three digits
	}
	if r.IntN(2) == 0 {
		s, n = -s, -n
	}
	return &durationpb.Duration{Seconds: s, Nanos: n}
}

func randTimestamp(r *rand.Rand) *timestamppb.Timestamp {
	switch r.IntN(5) {
	case 0:
		return nil
	case 1:
		return &timestamppb.Timestamp{Seconds: minTimestampSeconds}
	case 2:
		return &timestamppb.Timestamp{Seconds: maxTimestampSeconds, Nanos: 999999999}
	}
	n := r.Int32N(1e9)
	if r.IntN(2) == 0 {
		n = n / 1e3 * 1e3
	}
	return &timestamppb.Timestamp{Seconds: minTimestampSeconds + r.Int64N(maxTimestampSeconds-minTimestampSeconds), Nanos: n}
}

// randEnum returns 0, a named value, or (rarely) a number with no name.
func randEnum(r *rand.Rand, names int) int32 {
	if r.IntN(10) == 0 {
		return 100 + r.Int32N(100)
	}
	return r.Int32N(int32(names))
}

func randHeaders(r *rand.Rand, invalid bool) []*pxperfv1.Header {
	if r.IntN(3) == 0 {
		return nil
	}
	hs := make([]*pxperfv1.Header, r.IntN(5))
	for i := range hs {
		hs[i] = &pxperfv1.Header{Name: randString(r, invalid), Value: randString(r, invalid)}
	}
	return hs
}

// randEntry returns an entry using every field of Entry, each set or not
// at random, and the data of a response and a request body (each nil or
// not) to store beside it.
func randEntry(r *rand.Rand, invalid bool) (e *pxperfv1.Entry, body, requestBody []byte) {
	e = &pxperfv1.Entry{
		RequestId:       randString(r, invalid),
		StartTime:       randTimestamp(r),
		Method:          randString(r, invalid),
		Url:             randString(r, invalid),
		Host:            randString(r, invalid),
		Tunnel:          r.IntN(2) == 0,
		State:           pxperfv1.EntryState(randEnum(r, 4)),
		StatusCode:      r.Int32N(1000) - 100,
		RequestHeaders:  randHeaders(r, invalid),
		ResponseHeaders: randHeaders(r, invalid),
		BytesSent:       randInt64(r),
		BytesReceived:   randInt64(r),
		Priority:        pxperfv1.Priority(randEnum(r, 5)),
	}
	if r.IntN(4) > 0 {
		e.Id = r.Uint64()
		if r.IntN(3) == 0 {
			e.Id = math.MaxUint64
		}
	}
	if r.IntN(2) == 0 {
		e.ProxyDecision = &pxperfv1.ProxyDecision{
			Route:    pxperfv1.Route(randEnum(r, 3)),
			Upstream: randString(r, invalid),
			Source:   pxperfv1.DecisionSource(randEnum(r, 5)),
		}
		for n := r.IntN(3); n > 0; n-- {
			e.ProxyDecision.FailedUpstreams = append(e.ProxyDecision.FailedUpstreams, randString(r, invalid))
		}
	}
	if r.IntN(2) == 0 {
		e.UpstreamAuth = &pxperfv1.UpstreamAuth{Method: pxperfv1.AuthMethod(randEnum(r, 6)), Outcome: pxperfv1.AuthOutcome(randEnum(r, 4))}
	}
	if r.IntN(2) == 0 {
		e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind(randEnum(r, 8)), Message: randString(r, invalid)}
	}
	if r.IntN(2) == 0 {
		e.Timings = &pxperfv1.Timings{Dns: randDuration(r), Connect: randDuration(r), TlsHandshake: randDuration(r),
			TimeToFirstByte: randDuration(r), Total: randDuration(r)}
	}
	e.ResponseBody, body = randBody(r, invalid)
	e.RequestBody, requestBody = randBody(r, invalid)
	if r.IntN(3) == 0 {
		e.ReplayOf = r.Uint64()
	}
	return e, body, requestBody
}

// randBody returns one of an entry's bodies, nil or not, and data to store
// beside it, nil or not.
func randBody(r *rand.Rand, invalid bool) (b *pxperfv1.Body, data []byte) {
	switch r.IntN(4) {
	case 0:
		b = &pxperfv1.Body{ContentType: randString(r, invalid), OriginalSize: randInt64(r), Truncated: r.IntN(2) == 0}
		data = make([]byte, r.IntN(40))
		for i := range data {
			data[i] = byte(r.UintN(256))
		}
	case 1:
		// The data in the message itself, as a producer sends it.
		b = &pxperfv1.Body{Data: []byte{0, 1, 2, 0xff}}
	case 2:
		// Data beside an entry without a Body message.
		data = []byte("hello")
	}
	return b, data
}

// want returns what reading back the line for e with the data of its
// bodies should give: the data in place, each invalid UTF-8 byte as U+FFFD.
func want(e *pxperfv1.Entry, body, requestBody []byte) *pxperfv1.Entry {
	w := proto.CloneOf(e)
	place := func(b **pxperfv1.Body, data []byte) {
		if len(data) > 0 {
			if *b == nil {
				*b = &pxperfv1.Body{}
			}
			(*b).Data = data
		}
	}
	place(&w.ResponseBody, body)
	place(&w.RequestBody, requestBody)
	fix := func(s *string) { *s = string([]rune(*s)) }
	fix(&w.RequestId)
	fix(&w.Method)
	fix(&w.Url)
	fix(&w.Host)
	for _, h := range append(w.RequestHeaders, w.ResponseHeaders...) {
		fix(&h.Name)
		fix(&h.Value)
	}
	if d := w.ProxyDecision; d != nil {
		fix(&d.Upstream)
		for i := range d.FailedUpstreams {
			fix(&d.FailedUpstreams[i])
		}
	}
	if x := w.Error; x != nil {
		fix(&x.Message)
	}
	for _, b := range []*pxperfv1.Body{w.ResponseBody, w.RequestBody} {
		if b != nil {
			fix(&b.ContentType)
		}
	}
	return w
}

// TestEncodeRoundTrip is the encoder's property: for random entries using
// every field, protojson reads the line back into the entry written (with
// invalid UTF-8 replaced), and for valid entries the line is the same JSON
// as protojson's own.
func TestEncodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 2000 {
		invalid := i%2 == 1
		e, body, requestBody := randEntry(r, invalid)
		before := proto.CloneOf(e)
		line := appendEntry(nil, e, body, requestBody)
		if !proto.Equal(e, before) {
			t.Fatalf("appendEntry modified the entry")
		}
		if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("line %q is not one line", line)
		}
		if !utf8.Valid(line) || !json.Valid(line) {
			t.Fatalf("line %q is not valid UTF-8 JSON", line)
		}
		got := new(pxperfv1.Entry)
		if err := protojson.Unmarshal(line, got); err != nil {
			t.Fatalf("protojson.Unmarshal(%s): %v", line, err)
		}
		w := want(e, body, requestBody)
		if diff := cmp.Diff(w, got, protocmp.Transform()); diff != "" {
			t.Fatalf("round trip of %s (-want +got):\n%s", line, diff)
		}
		if invalid {
			continue
		}
		// Same JSON as protojson writes for the entry with its body.
		pj, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(w)
		if err != nil {
			t.Fatalf("protojson.Marshal: %v", err)
		}
		var a, b any
		if err := json.Unmarshal(line, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(pj, &b); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(b, a); diff != "" {
			t.Fatalf("line differs from protojson's (-protojson +ours):\n%s", diff)
		}
	}
}

func TestEncodeCases(t *testing.T) {
	ts := func(s int64, n int32) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: s, Nanos: n} }
	d := func(s int64, n int32) *durationpb.Duration { return &durationpb.Duration{Seconds: s, Nanos: n} }
	tests := []struct {
		name        string
		e           *pxperfv1.Entry
		body        []byte
		requestBody []byte
		line        string
		// back is what reading the line gives, when not the entry itself.
		back *pxperfv1.Entry
	}{
		{name: "empty", e: &pxperfv1.Entry{}, line: `{}`},
		{name: "id first", e: &pxperfv1.Entry{Id: 42, Method: "GET"}, line: `{"id":"42","method":"GET"}`},
		{name: "empty messages are written", e: &pxperfv1.Entry{Error: &pxperfv1.EntryError{}, Timings: &pxperfv1.Timings{}},
			line: `{"error":{},"timings":{}}`},
		{name: "escapes", e: &pxperfv1.Entry{Url: "a\"b\\c\n\t\x00\x1f\u2028é"}, line: `{"url":"a\"b\\c\n\t\u0000\u001f` + "\u2028é" + `"}`},
		{name: "invalid UTF-8 becomes U+FFFD per byte", e: &pxperfv1.Entry{Host: "a\xff\xe2\x82b"},
			line: `{"host":"a` + "\ufffd\ufffd\ufffd" + `b"}`, back: &pxperfv1.Entry{Host: "a\ufffd\ufffd\ufffdb"}},
		{name: "timestamp fractions", e: &pxperfv1.Entry{StartTime: ts(1795773600, 120000000)},
			line: `{"start_time":"2026-11-27T10:00:00.120Z"}`},
		{name: "timestamp micro and nano", e: &pxperfv1.Entry{StartTime: ts(0, 1000)}, line: `{"start_time":"1970-01-01T00:00:00.000001Z"}`},
		{name: "timestamp before 1970", e: &pxperfv1.Entry{StartTime: ts(-1, 999999999)}, line: `{"start_time":"1969-12-31T23:59:59.999999999Z"}`},
		{name: "timestamp out of range is clamped", e: &pxperfv1.Entry{StartTime: ts(math.MaxInt64, 0)},
			line: `{"start_time":"9999-12-31T23:59:59.999999999Z"}`, back: &pxperfv1.Entry{StartTime: ts(maxTimestampSeconds, 999999999)}},
		{name: "timestamp nanos carried", e: &pxperfv1.Entry{StartTime: ts(10, -1)},
			line: `{"start_time":"1970-01-01T00:00:09.999999999Z"}`, back: &pxperfv1.Entry{StartTime: ts(9, 999999999)}},
		{name: "durations", e: &pxperfv1.Entry{Timings: &pxperfv1.Timings{Dns: d(1, 500000000), Connect: d(0, -1), Total: d(-3, 0), TlsHandshake: d(0, 0)}},
			line: `{"timings":{"dns":"1.500s","connect":"-0.000000001s","tls_handshake":"0s","total":"-3s"}}`},
		{name: "duration mixed signs is normalised", e: &pxperfv1.Entry{Timings: &pxperfv1.Timings{Total: d(1, -1)}},
			line: `{"timings":{"total":"0.999999999s"}}`, back: &pxperfv1.Entry{Timings: &pxperfv1.Timings{Total: d(0, 999999999)}}},
		{name: "duration out of range is clamped", e: &pxperfv1.Entry{Timings: &pxperfv1.Timings{Total: d(math.MinInt64, 0)}},
			line: `{"timings":{"total":"-315576000000.999999999s"}}`, back: &pxperfv1.Entry{Timings: &pxperfv1.Timings{Total: d(-maxDurationSeconds, -999999999)}}},
		{name: "int64 as strings", e: &pxperfv1.Entry{BytesSent: -5, BytesReceived: math.MaxInt64}, line: `{"bytes_sent":"-5","bytes_received":"9223372036854775807"}`},
		{name: "enum names and unknown numbers", e: &pxperfv1.Entry{State: 2, Priority: 77}, line: `{"state":"ENTRY_STATE_COMPLETED","priority":77}`},
		{name: "body beside the entry", e: &pxperfv1.Entry{ResponseBody: &pxperfv1.Body{ContentType: "text/plain"}}, body: []byte("hi"),
			line: `{"response_body":{"data":"aGk=","content_type":"text/plain"}}`, back: &pxperfv1.Entry{ResponseBody: &pxperfv1.Body{Data: []byte("hi"), ContentType: "text/plain"}}},
		{name: "body without a Body message", e: &pxperfv1.Entry{}, body: []byte{0xff},
			line: `{"response_body":{"data":"/w=="}}`, back: &pxperfv1.Entry{ResponseBody: &pxperfv1.Body{Data: []byte{0xff}}}},
		{name: "request body beside the entry",
			e:           &pxperfv1.Entry{RequestBody: &pxperfv1.Body{ContentType: "application/json", OriginalSize: 20000, Truncated: true}},
			requestBody: []byte(`{"a":1}`),
			line:        `{"request_body":{"data":"eyJhIjoxfQ==","content_type":"application/json","original_size":"20000","truncated":true}}`,
			back:        &pxperfv1.Entry{RequestBody: &pxperfv1.Body{Data: []byte(`{"a":1}`), ContentType: "application/json", OriginalSize: 20000, Truncated: true}}},
		{name: "request body in the message", e: &pxperfv1.Entry{RequestBody: &pxperfv1.Body{Data: []byte("up")}},
			line: `{"request_body":{"data":"dXA="}}`},
		{name: "empty request body", e: &pxperfv1.Entry{RequestBody: &pxperfv1.Body{}}, line: `{"request_body":{}}`},
		{name: "replay_of as a string", e: &pxperfv1.Entry{ReplayOf: math.MaxUint64}, line: `{"replay_of":"18446744073709551615"}`},
		{name: "both bodies", e: &pxperfv1.Entry{Method: "POST", ResponseBody: &pxperfv1.Body{ContentType: "text/plain"}, RequestBody: &pxperfv1.Body{ContentType: "text/csv"}, Priority: 1},
			body: []byte("down"), requestBody: []byte("up"),
			line: `{"method":"POST","response_body":{"data":"ZG93bg==","content_type":"text/plain"},"priority":"PRIORITY_LOW","request_body":{"data":"dXA=","content_type":"text/csv"}}`,
			back: &pxperfv1.Entry{Method: "POST", ResponseBody: &pxperfv1.Body{Data: []byte("down"), ContentType: "text/plain"},
				RequestBody: &pxperfv1.Body{Data: []byte("up"), ContentType: "text/csv"}, Priority: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := appendEntry(nil, tt.e, tt.body, tt.requestBody)
			if got := string(line); got != tt.line+"\n" {
				t.Errorf("line = %s, want %s", got, tt.line)
			}
			got := new(pxperfv1.Entry)
			if err := protojson.Unmarshal(line, got); err != nil {
				t.Fatalf("protojson.Unmarshal: %v", err)
			}
			back := tt.back
			if back == nil {
				back = tt.e
			}
			if diff := cmp.Diff(back, got, protocmp.Transform()); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeAllocs(t *testing.T) {
	e := smallEntry(1)
	buf := make([]byte, 0, 4096)
	e.RequestBody = &pxperfv1.Body{ContentType: "application/json", OriginalSize: 7}
	body, requestBody := []byte("response"), []byte(`{"a":1}`)
	if n := testing.AllocsPerRun(100, func() { buf = appendEntry(buf[:0], e, body, requestBody) }); n != 0 {
		t.Errorf("appendEntry allocates %v times per entry, want 0", n)
	}
}

// FuzzEncode: whatever the strings, numbers and times, the line decodes to
// the entry (with invalid UTF-8 replaced, out-of-range times clamped).
func FuzzEncode(f *testing.F) {
	f.Add(uint64(1), "GET", "http://x/", "h", "v", int64(0), int32(0), int64(0), int32(0), []byte("b"), []byte("q=1"))
	f.Add(uint64(0), "\xff", "\x00\"\\", "\u2028", "😀", int64(-1), int32(-1), int64(1), int32(-1), []byte(nil), []byte{0xff})
	f.Fuzz(func(t *testing.T, id uint64, method, url, name, value string, tsec int64, tnano int32, dsec int64, dnano int32, body, requestBody []byte) {
		e := &pxperfv1.Entry{
			Id: id, Method: method, Url: url,
			StartTime:      &timestamppb.Timestamp{Seconds: tsec, Nanos: tnano},
			Timings:        &pxperfv1.Timings{Total: &durationpb.Duration{Seconds: dsec, Nanos: dnano}},
			RequestHeaders: []*pxperfv1.Header{{Name: name, Value: value}},
			ResponseBody:   &pxperfv1.Body{ContentType: value},
			RequestBody:    &pxperfv1.Body{ContentType: name, OriginalSize: tsec},
		}
		line := appendEntry(nil, e, body, requestBody)
		got, err := decodeLine(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			t.Fatalf("decodeLine(%s): %v", line, err)
		}
		w := want(e, body, requestBody)
		// Times as written: normalised and clamped.
		st, _ := entryTime(e.StartTime)
		w.StartTime = timestamppb.New(st)
		s, n := normDuration(dsec, int64(dnano))
		w.Timings.Total = &durationpb.Duration{Seconds: s, Nanos: int32(n)}
		if diff := cmp.Diff(w, got, protocmp.Transform()); diff != "" {
			t.Fatalf("round trip of %s (-want +got):\n%s", line, diff)
		}
		if k := lineKey(bytes.TrimSuffix(line, []byte("\n"))); id != 0 && (!k.idOK || k.id != id || !k.startOK || !k.start.Equal(st)) {
			t.Fatalf("lineKey(%s) = %+v, want id %d and start %v", line, k, id, st)
		}
	})
}

// FuzzLineKey: the fast path never reads an id or a start time that
// protojson would read differently.
func FuzzLineKey(f *testing.F) {
	f.Add([]byte(`{"id":"5","request_id":"r\"x","start_time":"2026-11-27T10:00:00.123Z","method":"GET"}`))
	f.Add([]byte(`{"id":"007"}`))
	f.Add([]byte(`{"id":"18446744073709551616"}`))
	f.Add([]byte(`{"id":"5","start_time":"2026-11-27T10:00:00+01:00"}`))
	f.Add([]byte(`{"id":"5","start_time":"2026-11-27T10:00:00.1234567891Z"}`))
	f.Add([]byte(`{"id":"5","id":"6"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		k := lineKey(line)
		e, err := decodeLine(line)
		if err != nil {
			return // a corrupt line: readers count it whatever the fast path said
		}
		if k.idOK && k.id != e.Id {
			t.Fatalf("lineKey id %d, protojson id %d for %s", k.id, e.Id, line)
		}
		if k.startOK {
			st, ok := entryTime(e.StartTime)
			if !ok || !st.Equal(k.start) {
				t.Fatalf("lineKey start %v, protojson start %v for %s", k.start, e.StartTime, line)
			}
		}
	})
}
