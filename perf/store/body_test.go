package store

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/testing/protocmp"
)

// bodyKind is one of an entry's two bodies, for tests that hold the
// response and the request body to the same rules.
type bodyKind struct {
	name   string
	get    func(*pxperfv1.Entry) *pxperfv1.Body
	set    func(*pxperfv1.Entry, *pxperfv1.Body)
	stored func(Stored) []byte // its data, as Append returns it
}

var bodyKinds = []bodyKind{
	{
		name:   "response",
		get:    (*pxperfv1.Entry).GetResponseBody,
		set:    func(e *pxperfv1.Entry, b *pxperfv1.Body) { e.ResponseBody = b },
		stored: func(st Stored) []byte { return st.Body },
	},
	{
		name:   "request",
		get:    (*pxperfv1.Entry).GetRequestBody,
		set:    func(e *pxperfv1.Entry, b *pxperfv1.Body) { e.RequestBody = b },
		stored: func(st Stored) []byte { return st.RequestBody },
	},
}

// other is the body that is not k.
func (k bodyKind) other() bodyKind {
	if k.name == bodyKinds[0].name {
		return bodyKinds[1]
	}
	return bodyKinds[0]
}

// Each body, response or request, is cut once at ingest to MaxBodySize,
// with its original size, content type and truncated flag, and its data
// is held beside the entry: the stored entry carries none, EntryWithBody
// a copy with it.
func TestBodyIngestRules(t *testing.T) {
	const maxBody = 8
	for _, k := range bodyKinds {
		for _, tt := range []struct {
			name    string
			body    *pxperfv1.Body
			want    *pxperfv1.Body // as EntryWithBody gives it
			wantCut uint64         // Stats.TruncatedBodies
		}{
			{"twice the limit", &pxperfv1.Body{Data: []byte("0123456789abcdef"), ContentType: "application/json"},
				&pxperfv1.Body{Data: []byte("01234567"), ContentType: "application/json", OriginalSize: 16, Truncated: true}, 1},
			{"within the limit", &pxperfv1.Body{Data: []byte("0123"), Truncated: true},
				&pxperfv1.Body{Data: []byte("0123"), OriginalSize: 4}, 0},
			{"captured in part by the producer", &pxperfv1.Body{Data: []byte("0123"), OriginalSize: 1000},
				&pxperfv1.Body{Data: []byte("0123"), OriginalSize: 1000, Truncated: true}, 0},
			{"no data", &pxperfv1.Body{ContentType: "text/plain", OriginalSize: 30},
				&pxperfv1.Body{ContentType: "text/plain", OriginalSize: 30, Truncated: true}, 0},
		} {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: maxBody})
				e := newEntry("POST", "http://example.com/", 200)
				k.set(e, tt.body)
				st := s.Append([]*pxperfv1.Entry{e})[0]
				if got := k.stored(st); string(got) != string(tt.want.GetData()) || k.get(st.Entry).GetData() != nil {
					t.Errorf("Stored: data %q beside the entry, %q in it; want %q beside it", got, k.get(st.Entry).GetData(), tt.want.GetData())
				}
				if got := k.other().stored(st); got != nil {
					t.Errorf("Stored: %s body data %q; want none", k.other().name, got)
				}
				got, err := s.EntryWithBody(st.ID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(k.get(got), tt.want, protocmp.Transform()); diff != "" {
					t.Errorf("EntryWithBody's %s body (-got +want):\n%s", k.name, diff)
				}
				if b := k.other().get(got); b != nil {
					t.Errorf("EntryWithBody made a %s body: %v", k.other().name, b)
				}
				plain, _ := s.Entry(st.ID)
				if b := k.get(plain); b.GetData() != nil || b.GetContentType() != tt.want.GetContentType() || b.GetOriginalSize() != tt.want.GetOriginalSize() {
					t.Errorf("stored entry's %s body = %v; want %v without its data", k.name, b, tt.want)
				}
				if n := s.Stats().TruncatedBodies; n != tt.wantCut {
					t.Errorf("TruncatedBodies = %d, want %d", n, tt.wantCut)
				}
			})
		}
	}
}

// Both bodies of one entry are cut, and counted, apart.
func TestBothBodiesTruncated(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: 4})
	e := newEntry("POST", "http://example.com/", 200)
	e.RequestBody = &pxperfv1.Body{Data: []byte("request body")}
	e.ResponseBody = &pxperfv1.Body{Data: []byte("response body")}
	st := s.Append([]*pxperfv1.Entry{e})[0]
	if string(st.RequestBody) != "requ" || string(st.Body) != "resp" {
		t.Errorf("Stored bodies: request %q, response %q; want requ, resp", st.RequestBody, st.Body)
	}
	if n := s.Stats().TruncatedBodies; n != 2 {
		t.Errorf("TruncatedBodies = %d, want 2", n)
	}
}

// A completion keeps each body of the PENDING entry it completes where it
// has none of its own, its data included, and copies the strings it keeps;
// a body of its own replaces the pending entry's.
func TestCompleteKeepsBodies(t *testing.T) {
	for _, k := range bodyKinds {
		for _, tt := range []struct {
			name string
			own  *pxperfv1.Body // the completion's body
			want *pxperfv1.Body
		}{
			{"none of its own", nil, &pxperfv1.Body{Data: []byte("partial"), ContentType: "text/plain", OriginalSize: 100, Truncated: true}},
			{"its own", &pxperfv1.Body{Data: []byte("whole"), ContentType: "application/json"},
				&pxperfv1.Body{Data: []byte("whole"), ContentType: "application/json", OriginalSize: 5}},
			{"its own without data", &pxperfv1.Body{ContentType: "application/json", OriginalSize: 7},
				&pxperfv1.Body{Data: []byte("partial"), ContentType: "application/json", OriginalSize: 7}},
		} {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: 100})
				p := pendingEntry("r1", "http://example.com/a")
				k.set(p, &pxperfv1.Body{Data: []byte("partial"), ContentType: "text/plain", OriginalSize: 100})
				old := s.Append([]*pxperfv1.Entry{p})[0].Entry
				done := newEntry("GET", "http://example.com/a", 200)
				done.RequestId = "r1"
				k.set(done, tt.own)
				st := s.Append([]*pxperfv1.Entry{done})[0]
				if string(k.stored(st)) != string(tt.want.GetData()) {
					t.Errorf("Stored: %s body data %q, want %q", k.name, k.stored(st), tt.want.GetData())
				}
				got, err := s.EntryWithBody(st.ID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(k.get(got), tt.want, protocmp.Transform()); diff != "" {
					t.Errorf("completed entry's %s body (-got +want):\n%s", k.name, diff)
				}
				if got, was := k.get(st.Entry), k.get(old); got == was ||
					got.GetContentType() != "" && unsafe.StringData(got.GetContentType()) == unsafe.StringData(was.GetContentType()) {
					t.Errorf("completed entry shares its %s body, or its content type, with the pending one", k.name)
				}
			})
		}
	}
}

// WithBody gives a copy carrying the data of whichever bodies the entry
// has, and the entry itself when it has none.
func TestWithBodyCarriesBoth(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: 1 << 10})
	req := newEntry("POST", "http://example.com/a", 201)
	req.RequestBody = &pxperfv1.Body{Data: []byte(`{"a":1}`), ContentType: "application/json"}
	both := newEntry("POST", "http://example.com/b", 200)
	both.RequestBody = &pxperfv1.Body{Data: []byte("up")}
	both.ResponseBody = &pxperfv1.Body{Data: []byte("down")}
	none := newEntry("GET", "http://example.com/c", 200)
	stored := s.Append([]*pxperfv1.Entry{req, both, none})
	for _, tt := range []struct {
		name          string
		e             *pxperfv1.Entry
		wantReq       string
		wantResp      string
		wantSameEntry bool
	}{
		{"request body alone", stored[0].Entry, `{"a":1}`, "", false},
		{"both bodies", stored[1].Entry, "up", "down", false},
		{"no body", stored[2].Entry, "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := s.WithBody(tt.e)
			if string(got.GetRequestBody().GetData()) != tt.wantReq || string(got.GetResponseBody().GetData()) != tt.wantResp || (got == tt.e) != tt.wantSameEntry {
				t.Errorf("WithBody: request %q, response %q, the entry itself %v; want %q, %q, %v",
					got.GetRequestBody().GetData(), got.GetResponseBody().GetData(), got == tt.e, tt.wantReq, tt.wantResp, tt.wantSameEntry)
			}
			if tt.e.GetRequestBody().GetData() != nil || tt.e.GetResponseBody().GetData() != nil {
				t.Error("WithBody changed the stored entry")
			}
		})
	}
}

// StripBodies leaves both bodies as the store hands them out: without
// their data, the rest kept.
func TestStripBodies(t *testing.T) {
	for _, tt := range []struct {
		name string
		e    *pxperfv1.Entry
		want *pxperfv1.Entry
	}{
		{"none", &pxperfv1.Entry{Method: "GET"}, &pxperfv1.Entry{Method: "GET"}},
		{"both", &pxperfv1.Entry{
			RequestBody:  &pxperfv1.Body{Data: []byte("up"), ContentType: "text/plain", OriginalSize: 20, Truncated: true},
			ResponseBody: &pxperfv1.Body{Data: []byte("down"), OriginalSize: 4},
		}, &pxperfv1.Entry{
			RequestBody:  &pxperfv1.Body{ContentType: "text/plain", OriginalSize: 20, Truncated: true},
			ResponseBody: &pxperfv1.Body{OriginalSize: 4},
		}},
		{"request body alone", &pxperfv1.Entry{RequestBody: &pxperfv1.Body{Data: []byte("up")}}, &pxperfv1.Entry{RequestBody: &pxperfv1.Body{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			StripBodies(tt.e)
			if diff := cmp.Diff(tt.e, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("StripBodies (-got +want):\n%s", diff)
			}
		})
	}
}
