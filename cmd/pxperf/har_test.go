package main

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func msd(v float64) *durationpb.Duration { return durationpb.New(msDuration(v)) }

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

// The fixture, saved as a browser saves HAR, maps entry by entry.
func TestEntryFromHAR(t *testing.T) {
	f, err := os.Open("testdata/session.har")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := readHAR(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []*pxperfv1.Entry{
		{
			StartTime: ts("2026-11-27T10:00:00.123Z"),
			Method:    "GET",
			Url:       "https://har.example.com/api/items?page=2&q=a%20b",
			RequestHeaders: []*pxperfv1.Header{
				{Name: "accept", Value: "application/json"},
				{Name: "user-agent", Value: "Mozilla/5.0"},
			},
			ResponseHeaders: []*pxperfv1.Header{
				{Name: "content-type", Value: "application/json; charset=utf-8"},
				{Name: "cache-control", Value: "no-store"},
			},
			StatusCode:    200,
			BytesReceived: 412,
			ResponseBody:  &pxperfv1.Body{ContentType: "application/json", OriginalSize: 26, Data: []byte(`{"items":[1,2,3],"page":2}`)},
			Timings: &pxperfv1.Timings{
				Dns: msd(4), Connect: msd(15), TlsHandshake: msd(10),
				TimeToFirstByte: msd(1.5 + 4 + 25 + 0.25 + 50), Total: msd(85.25),
			},
		},
		{
			StartTime:       ts("2026-11-27T10:00:00.300Z"),
			Method:          "POST",
			Url:             "https://har.example.com/upload",
			RequestHeaders:  []*pxperfv1.Header{{Name: "Content-Type", Value: "application/octet-stream"}},
			RequestBody:     &pxperfv1.Body{ContentType: "application/octet-stream", OriginalSize: 4, Data: []byte("ping")},
			ResponseHeaders: []*pxperfv1.Header{{Name: "Content-Type", Value: "image/png"}},
			StatusCode:      404,
			BytesSent:       124,
			BytesReceived:   94,
			ResponseBody:    &pxperfv1.Body{ContentType: "image/png", OriginalSize: 4, Data: []byte{0x89, 'P', 'N', 'G'}},
			Timings:         &pxperfv1.Timings{TimeToFirstByte: msd(26), Total: msd(30)},
		},
		{
			StartTime: ts("2026-11-27T09:00:01Z"),
			Method:    "GET",
			Url:       "https://down.example.com/",
			State:     pxperfv1.EntryState_ENTRY_STATE_FAILED,
			Error:     &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_OTHER, Message: "net::ERR_CONNECTION_REFUSED"},
			Timings:   &pxperfv1.Timings{Dns: msd(10), TimeToFirstByte: msd(12), Total: msd(12)},
		},
	}
	var got []*pxperfv1.Entry
	for in := range harInputs(doc) {
		if in.err != nil {
			t.Fatalf("log.entries[%d]: %v", in.pos, in.err)
		}
		got = append(got, in.entry)
	}
	if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
		t.Errorf("entries mismatch (-got +want):\n%s", diff)
	}
}

func TestEntryFromHARErrors(t *testing.T) {
	tests := []struct {
		name string
		h    harEntry
		want string
	}{
		{name: "bad date", h: harEntry{StartedDateTime: "yesterday"}, want: "startedDateTime"},
		{name: "bad base64", h: harEntry{StartedDateTime: "2026-11-27T10:00:00Z",
			Response: harResponse{Status: 200, Content: harContent{Text: "!!", Encoding: "base64"}}}, want: "base64"},
		{name: "bad base64 in postData", h: harEntry{StartedDateTime: "2026-11-27T10:00:00Z",
			Request: harRequest{PostData: &harPostData{Text: "!!", Encoding: "base64"}}, Response: harResponse{Status: 200}}, want: "request.postData.text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := entryFromHAR(&tt.h); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("entryFromHAR = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// A request body is read from postData as the tools that write HAR write
// it, with request.bodySize as its original size.
func TestRequestBodyFromHAR(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    harRequest
		want *pxperfv1.Body
	}{
		{"none", harRequest{BodySize: 0}, nil},
		{"size unknown", harRequest{BodySize: -1}, nil},
		{"not recorded", harRequest{BodySize: 12}, &pxperfv1.Body{OriginalSize: 12}},
		{"text", harRequest{BodySize: 7, PostData: &harPostData{MimeType: "application/json", Text: `{"a":1}`}},
			&pxperfv1.Body{ContentType: "application/json", OriginalSize: 7, Data: []byte(`{"a":1}`)}},
		{"text, size unknown", harRequest{BodySize: -1, PostData: &harPostData{MimeType: "text/plain", Text: "hi"}},
			&pxperfv1.Body{ContentType: "text/plain", Data: []byte("hi")}},
		{"base64 as pxperf writes it", harRequest{BodySize: 3, PostData: &harPostData{MimeType: "image/png", Text: "/wD+", Encoding: "base64"}},
			&pxperfv1.Body{ContentType: "image/png", OriginalSize: 3, Data: []byte{0xff, 0x00, 0xfe}}},
		{"base64 as a response's", harRequest{BodySize: 3, PostData: &harPostData{Text: "/wD+", Encoded: "base64"}},
			&pxperfv1.Body{OriginalSize: 3, Data: []byte{0xff, 0x00, 0xfe}}},
		{"form params without text", harRequest{BodySize: 17, PostData: &harPostData{MimeType: "application/x-www-form-urlencoded; charset=UTF-8",
			Params: []harParam{{Name: "q", Value: "a b&c"}, {Name: "empty"}}}},
			&pxperfv1.Body{ContentType: "application/x-www-form-urlencoded; charset=UTF-8", OriginalSize: 17, Data: []byte("q=a+b%26c&empty=")}},
		{"multipart params without text", harRequest{BodySize: 5000, PostData: &harPostData{MimeType: "multipart/form-data; boundary=x",
			Params: []harParam{{Name: "file"}}}},
			&pxperfv1.Body{ContentType: "multipart/form-data; boundary=x", OriginalSize: 5000}},
		{"text wins over params", harRequest{BodySize: 3, PostData: &harPostData{MimeType: "application/x-www-form-urlencoded",
			Text: "a=1", Params: []harParam{{Name: "b", Value: "2"}}}},
			&pxperfv1.Body{ContentType: "application/x-www-form-urlencoded", OriginalSize: 3, Data: []byte("a=1")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestBodyFromHAR(&tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("request body (-got +want):\n%s", diff)
			}
		})
	}
}

// What pxperf writes as HAR reads back as the same entry, to the
// millisecond, less what HAR has no place for.
func TestHARRoundTrip(t *testing.T) {
	entries := []*pxperfv1.Entry{
		{
			Id:              7,
			StartTime:       ts("2026-11-27T10:00:00.250Z"),
			Method:          "GET",
			Url:             "https://example.com/a?x=1",
			RequestHeaders:  []*pxperfv1.Header{{Name: "Accept", Value: "*/*"}},
			ResponseHeaders: []*pxperfv1.Header{{Name: "Location", Value: "/b"}},
			StatusCode:      302,
			BytesSent:       300,
			BytesReceived:   1200,
			ResponseBody:    &pxperfv1.Body{ContentType: "text/plain", OriginalSize: 5000, Data: []byte("hello")},
			Timings: &pxperfv1.Timings{
				Dns: msd(3), Connect: msd(7), TlsHandshake: msd(11), TimeToFirstByte: msd(40), Total: msd(55),
			},
		},
		{
			StartTime:    ts("2026-11-27T10:00:01Z"),
			Method:       "GET",
			Url:          "https://example.com/bin",
			StatusCode:   200,
			ResponseBody: &pxperfv1.Body{ContentType: "application/octet-stream", OriginalSize: 3, Data: []byte{0xff, 0x00, 0xfe}},
			Timings:      &pxperfv1.Timings{TimeToFirstByte: msd(0), Total: msd(9)},
		},
		{
			StartTime: ts("2026-11-27T10:00:02Z"),
			Method:    "GET",
			Url:       "https://example.com/down",
			State:     pxperfv1.EntryState_ENTRY_STATE_FAILED,
			Error:     &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_OTHER, Message: "connection refused"},
			Timings:   &pxperfv1.Timings{TimeToFirstByte: msd(0), Total: msd(0)},
		},
		{
			StartTime:  ts("2026-11-27T10:00:03Z"),
			Method:     "CONNECT",
			Url:        "example.com:443",
			Tunnel:     true,
			StatusCode: 200,
			Timings:    &pxperfv1.Timings{TimeToFirstByte: msd(20), Total: msd(900)},
		},
		{
			StartTime:  ts("2026-11-27T10:00:04Z"),
			Method:     "CONNECT",
			Url:        "[2001:db8::1]:80",
			Tunnel:     true,
			StatusCode: 200,
			Timings:    &pxperfv1.Timings{TimeToFirstByte: msd(20), Total: msd(90)},
		},
		{
			StartTime:    ts("2026-11-27T10:00:05Z"),
			Method:       "POST",
			Url:          "https://example.com/items",
			StatusCode:   201,
			RequestBody:  &pxperfv1.Body{ContentType: "application/json", OriginalSize: 20000, Data: []byte(`{"name":"a`)},
			ResponseBody: &pxperfv1.Body{ContentType: "application/json", OriginalSize: 8, Data: []byte(`{"id":9}`)},
			Timings:      &pxperfv1.Timings{TimeToFirstByte: msd(5), Total: msd(6)},
		},
		{
			StartTime:   ts("2026-11-27T10:00:06Z"),
			Method:      "PUT",
			Url:         "https://example.com/blob",
			StatusCode:  204,
			RequestBody: &pxperfv1.Body{ContentType: "application/octet-stream", OriginalSize: 3, Data: []byte{0xff, 0x00, 0xfe}},
			Timings:     &pxperfv1.Timings{TimeToFirstByte: msd(5), Total: msd(6)},
		},
		{
			StartTime:   ts("2026-11-27T10:00:07Z"),
			Method:      "POST",
			Url:         "https://example.com/empty",
			StatusCode:  200,
			RequestBody: &pxperfv1.Body{ContentType: "text/plain"},
			Timings:     &pxperfv1.Timings{TimeToFirstByte: msd(5), Total: msd(6)},
		},
	}
	var buf bytes.Buffer
	hw := newHARWriter(&buf)
	for _, e := range entries {
		hw.write(e)
	}
	if err := hw.close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("the document is not JSON: %v\n%s", err, raw)
	}
	doc, err := readHAR(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if doc.Log.Version != "1.2" || len(doc.Log.Entries) != len(entries) {
		t.Fatalf("version %q with %d entries, want 1.2 with %d", doc.Log.Version, len(doc.Log.Entries), len(entries))
	}
	if h := doc.Log.Entries[0]; h.ID != 7 || h.Response.RedirectURL != "/b" || len(h.Request.QueryString) != 1 {
		t.Errorf("first HAR entry: _id %d, redirectURL %q, queryString %v; want 7, /b, [x=1]", h.ID, h.Response.RedirectURL, h.Request.QueryString)
	}
	// A request body in postData, in base64 marked by _encoding when it is
	// not UTF-8, its original size in bodySize; none, and a bodySize of -1,
	// for an entry without one. (postData as encoding/json writes a map
	// back: its keys sorted.)
	for i, want := range []struct {
		postData string
		bodySize int64
	}{
		0: {"", -1}, 1: {"", -1}, 2: {"", -1}, 3: {"", -1}, 4: {"", -1},
		5: {`{"mimeType":"application/json","text":"{\"name\":\"a"}`, 20000},
		6: {`{"_encoding":"base64","mimeType":"application/octet-stream","text":"/wD+"}`, 3},
		7: {`{"mimeType":"text/plain","text":""}`, 0},
	} {
		req := generic["log"].(map[string]any)["entries"].([]any)[i].(map[string]any)["request"].(map[string]any)
		got := ""
		if pd, ok := req["postData"]; ok {
			b, _ := json.Marshal(pd)
			got = string(b)
		}
		if got != want.postData || req["bodySize"] != float64(want.bodySize) {
			t.Errorf("entry %d: request.postData %s, bodySize %v; want %s, %d", i, got, req["bodySize"], want.postData, want.bodySize)
		}
	}
	// HAR 1.2 wants absolute URLs, tunnels' too.
	if got := []string{doc.Log.Entries[3].Request.URL, doc.Log.Entries[4].Request.URL}; got[0] != "https://example.com:443/" || got[1] != "http://[2001:db8::1]:80/" {
		t.Errorf("tunnels' request.url %q; want https://example.com:443/ and http://[2001:db8::1]:80/", got)
	}
	for i, want := range entries {
		h := doc.Log.Entries[i]
		if sum := max(ms(h.Timings.Blocked), 0) + max(ms(h.Timings.DNS), 0) + max(ms(h.Timings.Connect), 0) + h.Timings.Send + h.Timings.Wait + h.Timings.Receive; sum != h.Time {
			t.Errorf("entry %d: time %v is not the sum of its timings %v", i, h.Time, sum)
		}
		got, err := entryFromHAR(&h)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want.Id = 0 // output only; HAR keeps it in _id
		if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
			t.Errorf("entry %d mismatch (-got +want):\n%s", i, diff)
		}
	}
}
