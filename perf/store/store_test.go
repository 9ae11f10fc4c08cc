package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/wire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func newEntry(method, url string, status int32) *pxperfv1.Entry {
	return &pxperfv1.Entry{
		StartTime:  timestamppb.Now(),
		Method:     method,
		Url:        url,
		StatusCode: status,
	}
}

func entries(n int) []*pxperfv1.Entry {
	es := make([]*pxperfv1.Entry, n)
	for i := range es {
		es[i] = newEntry("GET", fmt.Sprintf("http://example.com/%04d", i), 200)
	}
	return es
}

// entrySize is the accounted size of each entry that entries makes, once
// stored.
func entrySize(t testing.TB) int64 {
	t.Helper()
	s := mustNew(t, Config{MaxEntries: 1, MaxMemoryBytes: 1 << 30})
	s.Append(entries(1))
	return s.Stats().Bytes
}

// mustNew returns a new store for cfg, failing t if New does. cfg gets
// package wire's Encoder, the one the server uses, unless it names one.
func mustNew(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Encoder == nil {
		cfg.Encoder = wire.Encoder{}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

func storedIDs(ss []Stored) []uint64 {
	out := make([]uint64, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func ids(es []*pxperfv1.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Id
	}
	return out
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{MaxEntries: 0, MaxMemoryBytes: 1},
		{MaxEntries: 1, MaxMemoryBytes: 0},
		{MaxEntries: 1, MaxMemoryBytes: 1, MaxBodySize: -1},
		{MaxEntries: 1, MaxMemoryBytes: 1}, // no Encoder
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestAppendAssignsIncreasingIDsAndEvictsByCount(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 3, MaxMemoryBytes: 1 << 30})
	if got := storedIDs(s.Append(entries(2))); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("first Append = %v, want [1 2]", got)
	}
	if got := storedIDs(s.Append(entries(3))); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("second Append = %v, want [3 4 5]", got)
	}
	oldest, next := s.Bounds()
	if oldest != 3 || next != 6 {
		t.Fatalf("Bounds = %d, %d; want 3, 6", oldest, next)
	}
	if _, err := s.Entry(2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(2) err = %v, want ErrNotFound", err)
	}
	if e, err := s.Entry(5); err != nil || e.Id != 5 {
		t.Errorf("Entry(5) = %v, %v", e, err)
	}
	st := s.Stats()
	if st.Entries != 3 || st.EvictedByCount != 2 || st.Accepted != 5 || st.OldestID != 3 || st.NewestID != 5 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestFirstIDContinues(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 3, MaxMemoryBytes: 1 << 30, FirstID: 100})
	if got := storedIDs(s.Append(entries(1))); got[0] != 100 {
		t.Fatalf("Append = %v, want [100]", got)
	}
}

func TestAppendEvictsByBytes(t *testing.T) {
	one := entrySize(t)
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 3*one + one/2})
	s.Append(entries(10))
	st := s.Stats()
	if st.Entries != 3 || st.EvictedByBytes != 7 || st.Bytes > st.BudgetBytes {
		t.Fatalf("Stats = %+v, want 3 entries within %d bytes", st, st.BudgetBytes)
	}
}

func TestSetConfigShrinkEvictsNow(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append(entries(10))
	if err := s.SetConfig(Config{MaxEntries: 4, MaxMemoryBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if oldest, _ := s.Bounds(); oldest != 7 {
		t.Errorf("oldest after shrink = %d, want 7", oldest)
	}
	if err := s.SetConfig(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetConfig(zero) = %v, want ErrInvalidConfig", err)
	}
}

func TestIngestRules(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: 4, RedactHeaders: []string{"X-Api-Key"}})
	e := newEntry("GET", "http://example.com:8080/a", 503)
	e.RequestHeaders = []*pxperfv1.Header{
		{Name: "Authorization", Value: "Basic c2VjcmV0"},
		{Name: "x-api-key", Value: "k"},
		{Name: "Accept", Value: "*/*"},
	}
	e.ResponseHeaders = []*pxperfv1.Header{{Name: "Set-Cookie", Value: "s=1"}}
	e.ResponseBody = &pxperfv1.Body{Data: []byte("0123456789"), ContentType: "text/plain"}
	st := s.Append([]*pxperfv1.Entry{e})[0]
	id := st.ID
	if string(st.Body) != "0123" || st.Entry.GetResponseBody().GetData() != nil || st.Entry.GetId() != id {
		t.Errorf("Stored = id %d, body %q, entry body %q; want the truncated body beside the entry", id, st.Body, st.Entry.GetResponseBody().GetData())
	}

	got, err := s.EntryWithBody(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "example.com:8080" {
		t.Errorf("host = %q", got.Host)
	}
	if got.State != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || got.Priority != pxperfv1.Priority_PRIORITY_HIGH {
		t.Errorf("state, priority = %v, %v; want COMPLETED, HIGH", got.State, got.Priority)
	}
	for _, h := range append(got.RequestHeaders[:2:2], got.ResponseHeaders...) {
		if h.Value != Redacted {
			t.Errorf("header %s = %q, want redacted", h.Name, h.Value)
		}
	}
	if got.RequestHeaders[2].Value != "*/*" {
		t.Errorf("Accept = %q, want kept", got.RequestHeaders[2].Value)
	}
	b := got.ResponseBody
	if string(b.Data) != "0123" || !b.Truncated || b.OriginalSize != 10 {
		t.Errorf("body = %q truncated=%v original=%d; want 0123, true, 10", b.Data, b.Truncated, b.OriginalSize)
	}
	if s.Stats().TruncatedBodies != 1 {
		t.Errorf("TruncatedBodies = %d, want 1", s.Stats().TruncatedBodies)
	}
	// The stored entry itself carries no body; readers get it on request.
	plain, _ := s.Entry(id)
	if plain.ResponseBody.Data != nil || plain.ResponseBody.ContentType != "text/plain" {
		t.Errorf("stored entry body = %v", plain.ResponseBody)
	}
}

// TestBodyCountsByCapacity: the budget counts what a body, response or
// request, holds, its capacity, not its length.
func TestBodyCountsByCapacity(t *testing.T) {
	bare := entrySize(t)
	// What a copy of n bytes holds: n rounded up to its size class.
	copied := func(n int) int64 { return int64(cap(bytes.Clone(make([]byte, n)))) }
	tests := []struct {
		name     string
		len, cap int
		want     int64 // accounted bytes beyond the entry without its body
	}{
		{"exact", 1000, 1000, 1000},
		{"a little room to spare: kept as it is", 1000, 4000, 4000},
		{"short slice of a large buffer: copied", 1000, 64 << 10, copied(1000)},
		{"truncated: the copy kept", 10000, 64 << 10, copied(4000)},
	}
	for _, k := range bodyKinds {
		for _, tt := range tests {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				s := mustNew(t, Config{MaxEntries: 1, MaxMemoryBytes: 1 << 30, MaxBodySize: 4000})
				e := entries(1)[0]
				k.set(e, &pxperfv1.Body{Data: make([]byte, tt.len, tt.cap)})
				s.Append([]*pxperfv1.Entry{e})
				if got := s.Stats().Bytes - bare; got != tt.want {
					t.Errorf("body accounted as %d bytes, want %d", got, tt.want)
				}
			})
		}
	}
	// Both bodies of an entry count, and one that takes the store past
	// its budget evicts the oldest entry.
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 3*bare + 3000, MaxBodySize: 4000})
	s.Append(entries(1))
	e := entries(1)[0]
	e.RequestBody = &pxperfv1.Body{Data: make([]byte, 2000)}
	e.ResponseBody = &pxperfv1.Body{Data: make([]byte, 1000)}
	s.Append([]*pxperfv1.Entry{e})
	if st := s.Stats(); st.Bytes != 2*bare+3000 || st.Entries != 2 {
		t.Errorf("two entries, one with bodies of 2000 and 1000 bytes: %d entries of %d bytes; want 2 of %d", st.Entries, st.Bytes, 2*bare+3000)
	}
	e = entries(1)[0]
	e.RequestBody = &pxperfv1.Body{Data: make([]byte, 1)}
	s.Append([]*pxperfv1.Entry{e})
	if st := s.Stats(); st.Entries != 2 || st.EvictedByBytes != 1 || st.OldestID != 2 {
		t.Errorf("after a request body of 1 byte past the budget: %d entries, %d evicted for bytes, oldest %d; want 2, 1, 2", st.Entries, st.EvictedByBytes, st.OldestID)
	}
}

// bigHeaders returns an entry whose response headers make it larger than
// MaxEntryBytes, each header within the proto's limits.
func bigHeaders() *pxperfv1.Entry {
	e := newEntry("GET", "http://example.com/", 200)
	for range 80 {
		e.ResponseHeaders = append(e.ResponseHeaders, &pxperfv1.Header{Name: "X-Big", Value: strings.Repeat("v", 16384)})
	}
	return e
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		e       *pxperfv1.Entry
		wantErr bool
	}{
		{"absolute url", newEntry("GET", "https://example.com/x?y=1", 0), false},
		{"connect host:port", newEntry("CONNECT", "example.com:443", 0), false},
		{"connect without port", newEntry("CONNECT", "example.com", 0), true},
		{"relative url", newEntry("GET", "/path", 0), true},
		{"unparsable url", newEntry("GET", "http://[::1", 0), true},
		{"no scheme", newEntry("GET", "example.com/x", 0), true},
		{"headers over the entry limit", bigHeaders(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.e)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check = %v, wantErr %v", err, tt.wantErr)
			}
			wantField := "url"
			if strings.HasPrefix(tt.name, "headers") {
				wantField = "response_headers"
			}
			var ee *EntryError
			if err != nil && (!errors.As(err, &ee) || ee.Field != wantField || !errors.Is(err, ErrInvalidEntry)) {
				t.Errorf("Check error %v does not name the %s field", err, wantField)
			}
		})
	}
}

func TestReadFrom(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 5, MaxMemoryBytes: 1 << 30})
	s.Append(entries(8)) // holds 4..8

	r, err := s.ReadFrom(2, Limit{Entries: 2}, Matcher{}, Read{})
	if err != nil {
		t.Fatal(err)
	}
	if r.GapFirst != 2 || r.GapLast != 3 || fmt.Sprint(ids(r.Entries)) != "[4 5]" || r.Next != 6 || r.Newest != 8 {
		t.Errorf("ReadFrom(2) = gap %d-%d ids %v next %d newest %d", r.GapFirst, r.GapLast, ids(r.Entries), r.Next, r.Newest)
	}

	even := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.Id%2 == 0 }}
	r, _ = s.ReadFrom(6, Limit{Entries: 10}, even, Read{})
	if fmt.Sprint(ids(r.Entries)) != "[6 8]" || r.Next != 9 || r.GapFirst != 0 {
		t.Errorf("ReadFrom(6, even) = ids %v next %d gap %d", ids(r.Entries), r.Next, r.GapFirst)
	}

	r, _ = s.ReadFrom(9, Limit{Entries: 10}, Matcher{}, Read{})
	if len(r.Entries) != 0 || r.Next != 9 {
		t.Errorf("ReadFrom(9) = %v next %d, want nothing, 9", ids(r.Entries), r.Next)
	}
	if _, err := s.ReadFrom(10, Limit{Entries: 10}, Matcher{}, Read{}); !errors.Is(err, ErrFuture) {
		t.Errorf("ReadFrom(10) err = %v, want ErrFuture", err)
	}
}

func TestReadFromBoundsScan(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 3 * maxScan, MaxMemoryBytes: 1 << 30})
	s.Append(entries(3 * maxScan))
	none := Matcher{Match: func(*pxperfv1.Entry) bool { return false }}
	r, _ := s.ReadFrom(1, Limit{Entries: 10}, none, Read{})
	if r.Next != 1+maxScan {
		t.Errorf("Next = %d, want %d", r.Next, 1+maxScan)
	}
}

func TestChangedClosesOnAppend(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 5, MaxMemoryBytes: 1 << 30})
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any append")
	default:
	}
	s.Append(entries(1))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after append")
	}
}

func TestTailStart(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append(entries(10)) // 1..10
	even := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.Id%2 == 0 }}
	tests := []struct {
		n         int
		m         Matcher
		wantStart uint64
	}{
		{3, Matcher{}, 8},
		{3, even, 6},
		{100, Matcher{}, 1},
		{0, Matcher{}, 11},
	}
	for _, tt := range tests {
		start, end := s.TailStart(tt.n, tt.m)
		if start != tt.wantStart || end != 11 {
			t.Errorf("TailStart(%d) = %d, %d; want %d, 11", tt.n, start, end, tt.wantStart)
		}
	}
}

func TestList(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append(entries(12)) // holds 3..12
	odd := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.Id%2 == 1 }}
	tests := []struct {
		name      string
		q         Query
		wantIDs   string
		wantTotal int
		wantMore  bool
	}{
		{"newest first", Query{Limit: 3}, "[12 11 10]", 10, true},
		{"oldest first", Query{Limit: 3, OldestFirst: true}, "[3 4 5]", 10, true},
		{"offset", Query{Limit: 3, Offset: 8}, "[4 3]", 10, false},
		{"offset past end", Query{Limit: 3, Offset: 20}, "[]", 10, false},
		{"after newest first", Query{Limit: 3, After: 10}, "[9 8 7]", 10, true},
		{"after oldest first", Query{Limit: 3, After: 10, OldestFirst: true}, "[11 12]", 10, false},
		{"after evicted id", Query{Limit: 3, After: 1, OldestFirst: true}, "[3 4 5]", 10, true},
		{"filtered", Query{Limit: 2, Match: odd}, "[11 9]", 5, true},
		{"filtered offset", Query{Limit: 2, Match: odd, Offset: 4}, "[3]", 5, false},
		{"filtered after", Query{Limit: 2, Match: odd, After: 9}, "[7 5]", 5, true},
		{"filtered oldest first after", Query{Limit: 10, Match: odd, After: 8, OldestFirst: true}, "[9 11]", 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := s.List(tt.q)
			if got := fmt.Sprint(ids(p.Entries)); got != tt.wantIDs || p.Total != tt.wantTotal || p.More != tt.wantMore {
				t.Errorf("List = %s total %d more %v; want %s total %d more %v", got, p.Total, p.More, tt.wantIDs, tt.wantTotal, tt.wantMore)
			}
			if p.OldestID != 3 || p.NewestID != 12 {
				t.Errorf("ids held = %d..%d, want 3..12", p.OldestID, p.NewestID)
			}
		})
	}
}

func TestListEmpty(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	if p := s.List(Query{Limit: 5}); len(p.Entries) != 0 || p.Total != 0 || p.More {
		t.Errorf("List on empty store = %+v", p)
	}
}

// BenchmarkAppend measures single-threaded ingest of ~300-byte entries
// without bodies, in batches of 100.
func BenchmarkAppend(b *testing.B) {
	s := mustNew(b, Config{MaxEntries: 100_000, MaxMemoryBytes: 1 << 30})
	batch := make([]*pxperfv1.Entry, 100)
	url := "http://example.com/" + strings.Repeat("p", 200)
	ts := timestamppb.Now()
	hdrs := []*pxperfv1.Header{{Name: "Accept", Value: "*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			batch[i] = &pxperfv1.Entry{StartTime: ts, Method: "GET", Url: url, StatusCode: 200, RequestHeaders: hdrs}
		}
		b.StartTimer()
		s.Append(batch)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "entries/s")
}

func pendingEntry(requestID, url string) *pxperfv1.Entry {
	e := newEntry("GET", url, 0)
	e.RequestId = requestID
	return e
}

// A completion that keeps the pending entry's request headers or body
// copies their strings, so that it does not keep the pending entry's
// memory alive.
func TestCompleteCopiesWhatItKeeps(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: 100})
	p := pendingEntry("r1", "http://example.com/a")
	p.RequestHeaders = []*pxperfv1.Header{{Name: "Accept", Value: "*/*"}}
	p.ResponseBody = &pxperfv1.Body{Data: []byte("partial"), ContentType: "text/plain", OriginalSize: 100}
	old := s.Append([]*pxperfv1.Entry{p})[0].Entry
	done := newEntry("GET", "http://example.com/a", 200)
	done.RequestId = "r1"
	got := s.Append([]*pxperfv1.Entry{done})[0].Entry
	oh, nh := old.GetRequestHeaders()[0], got.GetRequestHeaders()[0]
	if nh.GetName() != "Accept" || nh.GetValue() != "*/*" || got.GetResponseBody().GetContentType() != "text/plain" {
		t.Fatalf("completed entry lost what it keeps: %v", got)
	}
	if nh == oh || unsafe.StringData(nh.GetName()) == unsafe.StringData(oh.GetName()) ||
		unsafe.StringData(nh.GetValue()) == unsafe.StringData(oh.GetValue()) {
		t.Error("completed entry shares its request header with the pending one")
	}
	if got.GetResponseBody() == old.GetResponseBody() ||
		unsafe.StringData(got.GetResponseBody().GetContentType()) == unsafe.StringData(old.GetResponseBody().GetContentType()) {
		t.Error("completed entry shares its body with the pending one")
	}
	if e, err := s.EntryWithBody(got.GetId()); err != nil || string(e.GetResponseBody().GetData()) != "partial" {
		t.Errorf("completed entry's body = %q, %v; want the pending one's", e.GetResponseBody().GetData(), err)
	}
}

func TestCompleteByRequestID(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	p := pendingEntry("r1", "http://example.com/a")
	p.RequestHeaders = []*pxperfv1.Header{{Name: "Accept", Value: "*/*"}}
	ids := storedIDs(s.Append([]*pxperfv1.Entry{p, newEntry("GET", "http://example.com/other", 200)}))
	if got, _ := s.Entry(ids[0]); got.State != pxperfv1.EntryState_ENTRY_STATE_PENDING {
		t.Fatalf("state = %v, want PENDING", got.State)
	}
	before := s.Stats().Bytes

	done := newEntry("GET", "http://example.com/a", 200)
	done.RequestId = "r1"
	done.ResponseHeaders = []*pxperfv1.Header{{Name: "Content-Type", Value: "text/html"}}
	got := storedIDs(s.Append([]*pxperfv1.Entry{done}))
	if got[0] != ids[0] {
		t.Fatalf("completion got id %d, want the pending entry's %d", got[0], ids[0])
	}
	e, _ := s.Entry(ids[0])
	if e.State != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.StatusCode != 200 ||
		len(e.RequestHeaders) != 1 || len(e.ResponseHeaders) != 1 {
		t.Errorf("completed entry = %v", e)
	}
	st := s.Stats()
	if st.Accepted != 2 || st.Completed != 1 || st.Entries != 2 || st.Bytes <= before {
		t.Errorf("stats = %+v (bytes before %d)", st, before)
	}

	// A completed entry is not completed again: the same request id now
	// starts a new entry.
	again := pendingEntry("r1", "http://example.com/a")
	if id := s.Append([]*pxperfv1.Entry{again})[0].ID; id != 3 {
		t.Errorf("second use of r1 got id %d, want a new id 3", id)
	}
}

// An error that arrives after a status keeps the status.
func TestErrorNeverOverwritesStatus(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	id := s.Append([]*pxperfv1.Entry{pendingEntry("r", "http://example.com/big")})[0].ID

	headers := pendingEntry("r", "http://example.com/big")
	headers.StatusCode = 200
	headers.State = pxperfv1.EntryState_ENTRY_STATE_PENDING // body still streaming
	s.Append([]*pxperfv1.Entry{headers})

	failed := pendingEntry("r", "http://example.com/big")
	failed.State = pxperfv1.EntryState_ENTRY_STATE_FAILED
	failed.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED, Message: "client went away"}
	if got := s.Append([]*pxperfv1.Entry{failed})[0].ID; got != id {
		t.Fatalf("error update got id %d, want %d", got, id)
	}
	e, _ := s.Entry(id)
	if e.StatusCode != 200 || e.State != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_CLIENT_CLOSED {
		t.Errorf("entry = status %d state %v error %v; want 200, FAILED, CLIENT_CLOSED", e.StatusCode, e.State, e.Error)
	}
	if s.Stats().Completed != 2 {
		t.Errorf("Completed = %d, want 2", s.Stats().Completed)
	}
}

// A completion whose pending entry was evicted is stored as a new entry.
func TestCompletionAfterEviction(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 2, MaxMemoryBytes: 1 << 30})
	s.Append([]*pxperfv1.Entry{pendingEntry("r", "http://example.com/x")})
	s.Append(entries(2)) // evicts the pending entry
	done := newEntry("GET", "http://example.com/x", 204)
	done.RequestId = "r"
	if id := s.Append([]*pxperfv1.Entry{done})[0].ID; id != 4 {
		t.Errorf("completion of an evicted entry got id %d, want new id 4", id)
	}
	if s.Stats().Completed != 0 {
		t.Errorf("Completed = %d, want 0", s.Stats().Completed)
	}
}

func TestReadUpdates(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	cursor := s.UpdateCursor()
	s.Append([]*pxperfv1.Entry{
		pendingEntry("a", "http://example.com/a"), // 1
		pendingEntry("b", "http://example.com/b"), // 2
		pendingEntry("c", "http://example.com/c"), // 3
	})
	complete := func(rid string, status int32) {
		e := newEntry("GET", "http://example.com/"+rid, status)
		e.RequestId = rid
		s.Append([]*pxperfv1.Entry{e})
	}
	complete("c", 500)
	complete("a", 200)
	complete("b", 404)

	u := s.ReadUpdates(cursor, math.MaxUint64, 3, Limit{Entries: 10}, Matcher{}, nil, nil)
	if fmt.Sprint(ids(u.Entries)) != "[1 2]" || u.Next != cursor+3 || u.Lost != 0 {
		t.Errorf("below 3: ids %v next %d lost %d; want [1 2], %d, 0", ids(u.Entries), u.Next, u.Lost, cursor+3)
	}
	if u.Entries[0].StatusCode != 200 {
		t.Errorf("update carries status %d, want the latest, 200", u.Entries[0].StatusCode)
	}
	clientErrors := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.StatusCode >= 400 }}
	u = s.ReadUpdates(cursor, math.MaxUint64, 10, Limit{Entries: 10}, clientErrors, nil, nil)
	if fmt.Sprint(ids(u.Entries)) != "[3 2]" {
		t.Errorf("filtered: ids %v, want [3 2] in the order they changed", ids(u.Entries))
	}
	u = s.ReadUpdates(cursor, math.MaxUint64, 10, Limit{Entries: 1}, Matcher{}, nil, nil)
	if len(u.Entries) != 1 || u.Next != cursor+1 {
		t.Errorf("max 1: %d entries, next %d", len(u.Entries), u.Next)
	}
}

// completedPastLog returns a store in which 5 more entries were completed
// than it remembers completions of, and the update cursor from before
// them: ids 1..updateLog+5, each completed once, in id order.
func completedPastLog(t *testing.T) (*Store, uint64) {
	t.Helper()
	const n = updateLog + 5
	s := mustNew(t, Config{MaxEntries: n, MaxMemoryBytes: 1 << 40})
	cursor := s.UpdateCursor()
	batch := make([]*pxperfv1.Entry, n)
	for i := range batch {
		batch[i] = pendingEntry(fmt.Sprint(i), "http://example.com/")
	}
	s.Append(batch)
	for i := range batch {
		e := newEntry("GET", "http://example.com/", 200)
		e.RequestId = fmt.Sprint(i)
		batch[i] = e
	}
	s.Append(batch)
	return s, cursor
}

func TestReadUpdatesReportsLost(t *testing.T) {
	s, cursor := completedPastLog(t)
	const n = updateLog + 5
	u := s.ReadUpdates(cursor, math.MaxUint64, n+1, Limit{Entries: 1}, Matcher{}, nil, nil)
	if u.Lost != 5 || len(u.Entries) != 1 || u.Entries[0].Id != 6 {
		t.Errorf("lost %d, first id %v; want 5 lost and id 6 next", u.Lost, ids(u.Entries))
	}
}

// Each entry is encoded once: readers get the same bytes, and they decode
// to the stored entry, id included.
func TestReadFromFieldsAreEncodedOnce(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append(entries(3))
	r1, _ := s.ReadFrom(1, Limit{Entries: 10}, Matcher{}, Read{})
	r2, _ := s.ReadFrom(1, Limit{Entries: 10}, Matcher{}, Read{})
	for i, e := range r1.Entries {
		if &r1.Fields[i][0] != &r2.Fields[i][0] {
			t.Errorf("entry %d encoded twice", e.Id)
		}
		if got := decodeField(t, r1.Fields[i]); !proto.Equal(got, e) {
			t.Errorf("field of entry %d decodes to %v, want %v", e.Id, got, e)
		}
	}
}

// An entry carrying unknown fields (from a producer newer than the
// server) is cached with them.
func TestFieldsKeepUnknownFields(t *testing.T) {
	unknown := []byte{0x98, 0x06, 5} // field 99, varint 5
	e := newEntry("GET", "http://example.com/", 200)
	e.ProtoReflect().SetUnknown(unknown)
	e.StartTime.ProtoReflect().SetUnknown(unknown)
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append([]*pxperfv1.Entry{e})
	r, err := s.ReadFrom(1, Limit{Entries: 1}, Matcher{}, Read{})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeField(t, r.Fields[0])
	if string(got.ProtoReflect().GetUnknown()) != string(unknown) || string(got.StartTime.ProtoReflect().GetUnknown()) != string(unknown) {
		t.Errorf("cached entry's unknown fields %x, start time's %x; want %x", got.ProtoReflect().GetUnknown(), got.StartTime.ProtoReflect().GetUnknown(), unknown)
	}
	if !proto.Equal(got, r.Entries[0]) {
		t.Errorf("cached entry %v, want %v", got, r.Entries[0])
	}
}

// decodeField decodes a field of Read.Fields, which wire.Encoder frames as
// an EntryBatch.entries field: the field alone is an EntryBatch of one
// entry.
func decodeField(t *testing.T, f []byte) *pxperfv1.Entry {
	t.Helper()
	var b pxperfv1.EntryBatch
	if err := proto.Unmarshal(f, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != 1 || len(b.ProtoReflect().GetUnknown()) > 0 || b.NextId != 0 || len(b.Updates) != 0 {
		t.Fatalf("field decodes as %v, want one entry alone", &b)
	}
	return b.Entries[0]
}

// Entries read together are encoded together, and a read joins their
// fields into runs; an entry completed since is encoded again, and splits
// the run it was in. Nothing handed out can be appended to in place.
func TestReadRunsJoinEntriesEncodedTogether(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30})
	batch := entries(5)
	batch[2] = pendingEntry("r", "http://example.com/p")
	s.Append(batch)
	r, _ := s.ReadFrom(1, Limit{Entries: 3}, Matcher{}, Read{}) // encodes 1..3 as one run
	if len(r.Runs) != 1 || len(r.Runs[0]) != totalLen(r.Fields) {
		t.Fatalf("ids 1..3 form %d runs, want 1 of %d bytes", len(r.Runs), totalLen(r.Fields))
	}
	done := newEntry("GET", "http://example.com/p", 200)
	done.RequestId = "r"
	s.Append([]*pxperfv1.Entry{done}) // completes id 3
	r, _ = s.ReadFrom(1, Limit{Entries: 10}, Matcher{}, r)
	// 1..2 from the first read; 3 (completed since) to 5 from this one.
	if len(r.Runs) != 2 || len(r.Runs[0]) != totalLen(r.Fields[:2]) {
		t.Fatalf("got %d runs, want 2, the first of ids 1..2", len(r.Runs))
	}
	if got, want := bytes.Join(r.Runs, nil), bytes.Join(r.Fields, nil); !bytes.Equal(got, want) {
		t.Error("runs do not concatenate to the fields")
	}
	for i, e := range r.Entries {
		if got := decodeField(t, r.Fields[i]); !proto.Equal(got, e) {
			t.Errorf("field of entry %d decodes to %v, want %v", e.Id, got, e)
		}
	}
	if got := decodeField(t, r.Fields[2]); got.GetStatusCode() != 200 {
		t.Errorf("completed entry 3 encoded with status %d, want 200", got.GetStatusCode())
	}
	for _, b := range append(slices.Clone(r.Fields), r.Runs...) {
		if cap(b) != len(b) {
			t.Fatalf("a slice of %d bytes has capacity %d: appending to it would write into another entry's encoding", len(b), cap(b))
		}
	}
}

func totalLen(bs [][]byte) (n int) {
	for _, b := range bs {
		n += len(b)
	}
	return n
}

func TestJoinRunKeepsFieldsThatAreNotAdjacent(t *testing.T) {
	buf := []byte("aabbcc")
	a, b, c := buf[0:2:6], buf[2:4:6], buf[4:6:6]
	other := []byte("dd")
	for _, tt := range []struct {
		name   string
		fields [][]byte
		want   []string
	}{
		{"none", nil, nil},
		{"adjacent", [][]byte{a, b, c}, []string{"aabbcc"}},
		{"gap", [][]byte{a, c}, []string{"aa", "cc"}},
		{"out of order", [][]byte{b, a}, []string{"bb", "aa"}},
		{"other buffer", [][]byte{a, other, b}, []string{"aa", "dd", "bb"}},
		{"capacity ends", [][]byte{buf[0:2:2], b}, []string{"aa", "bb"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var runs [][]byte
			for _, f := range tt.fields {
				runs = joinRun(runs, f)
			}
			var got []string
			for _, r := range runs {
				got = append(got, string(r))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("runs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPriorityFrom(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append([]*pxperfv1.Entry{
		newEntry("GET", "http://example.com/1", 200), // 1, NORMAL
		newEntry("GET", "http://example.com/2", 503), // 2, HIGH
		newEntry("GET", "http://example.com/3", 200), // 3, NORMAL
	})
	high := pxperfv1.Priority_PRIORITY_HIGH
	for _, tt := range []struct {
		from      uint64
		wantFound bool
		wantNext  uint64
	}{
		{1, true, 3},
		{3, false, 4},
		{9, false, 4},
	} {
		if found, next := s.PriorityFrom(tt.from, high); found != tt.wantFound || next != tt.wantNext {
			t.Errorf("PriorityFrom(%d) = %v, %d; want %v, %d", tt.from, found, next, tt.wantFound, tt.wantNext)
		}
	}
}

// A body the producer captured only in part (fewer bytes than its
// original size) is marked truncated, though the store cut nothing; a
// producer's own truncated flag is not trusted either way.
func TestNormalizeTruncatedByProducer(t *testing.T) {
	tests := []struct {
		name          string
		data          string
		original      int64
		claim         bool
		wantTruncated bool
	}{
		{"captured in part", "0123", 100, false, true},
		{"whole body", "0123", 4, true, false},
		{"size left to pxperf", "0123", 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &pxperfv1.Entry{ResponseBody: &pxperfv1.Body{Data: []byte(tt.data), OriginalSize: tt.original, Truncated: tt.claim}}
			if cut := Normalize(e, 1024, nil); cut != 0 {
				t.Error("Normalize reported cutting a body within the limit")
			}
			if e.ResponseBody.Truncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", e.ResponseBody.Truncated, tt.wantTruncated)
			}
		})
	}
}

func TestPlainAbsoluteURL(t *testing.T) {
	tests := []struct {
		url  string
		want bool // the fast path decides; false leaves it to url.Parse
	}{
		{"http://example.com/", true},
		{"https://api.example.com:8443/v1/items?id=3&x=y#top", true},
		{"http://127.0.0.1:8080", true},
		{"svn+ssh://host/repo", true},
		{"http://host/a b", false},        // a space: url.Parse decides
		{"http://host/%zz", false},        // escapes: url.Parse decides
		{"http://[::1]:80/", false},       // IPv6 literal
		{"http://user@host/", false},      // userinfo
		{"http://host:8x/", false},        // not a port
		{"http://:80/", false},            // no host name
		{"1http://host/", false},          // scheme starts with a digit
		{"host/path", false},              // not absolute
		{"http://héllo.example/", false},  // not ASCII
		{"http://host/\x7f", false},       // DEL
		{"://host/", false},               // no scheme
		{"http://host/é", false},          // non-ASCII path
		{"http://ex_ample.com/~a", true},  // _ and ~ in host
		{"mailto:someone@example", false}, // no //
	}
	for _, tt := range tests {
		if got := plainAbsoluteURL(tt.url); got != tt.want {
			t.Errorf("plainAbsoluteURL(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

// FuzzPlainAbsoluteURL: whatever the fast path accepts, url.Parse accepts
// too, with a scheme and a host, so Check's verdict does not depend on
// which path decided.
func FuzzPlainAbsoluteURL(f *testing.F) {
	for _, s := range []string{"http://example.com/", "https://a:1/b?c#d", "http://[::1]/", "http://h/%41", "x://y", "http://h:/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainAbsoluteURL(s) {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" {
			t.Fatalf("plainAbsoluteURL(%q) = true, but url.Parse gives %v, %v", s, u, err)
		}
	})
}

// Redacts follows the config, live, and ignores case.
func TestRedacts(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, RedactHeaders: []string{"X-Api-Key"}})
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"Cookie", true}, {"AUTHORIZATION", true}, {"proxy-authorization", true}, {"Set-Cookie", true},
		{"x-api-key", true}, {"Accept", false}, {"", false},
	} {
		if got := s.Redacts(tt.name); got != tt.want {
			t.Errorf("Redacts(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := s.SetConfig(Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, RedactHeaders: []string{"X-Token"}}); err != nil {
		t.Fatal(err)
	}
	if s.Redacts("X-Api-Key") || !s.Redacts("x-token") {
		t.Error("Redacts does not follow SetConfig")
	}
}

// Fields gives the cached encodings of entries the store holds, the same
// bytes a read gets, and nil for an entry it no longer holds or does not
// hold as given.
func TestFieldsOfEntries(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 3, MaxMemoryBytes: 1 << 30})
	s.Append(entries(3))
	held, _ := s.Entry(3)
	gone, _ := s.Entry(1)
	s.Append(entries(1)) // evicts 1
	copied := proto.CloneOf(held)
	got := s.Fields([]*pxperfv1.Entry{held, gone, copied}, nil)
	r, _ := s.ReadFrom(3, Limit{Entries: 1}, Matcher{}, Read{})
	if len(got) != 3 || !bytes.Equal(got[0], r.Fields[0]) || got[1] != nil || got[2] != nil {
		t.Fatalf("Fields = %d fields (held %x, evicted %x, copy %x); want the held one's and two nils", len(got), got[0], got[1], got[2])
	}
	if cap(got[0]) != len(got[0]) {
		t.Error("a field is handed out with spare capacity")
	}
}

// A read stops before the entry that would take it past Limit.Bytes,
// counting bodies when asked, and bytes already used; it returns one entry
// whatever its size when nothing is used yet.
func TestReadFromBytes(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30, MaxBodySize: 1 << 20})
	es := entries(10)
	for _, e := range es {
		e.ResponseBody = &pxperfv1.Body{Data: make([]byte, 1000)}
		e.RequestBody = &pxperfv1.Body{Data: make([]byte, 300)}
	}
	s.Append(es) // ids 1..10
	all, _ := s.ReadFrom(1, Limit{Entries: 10}, Matcher{}, Read{})
	// sum returns what n fields from id first count, with bodies or not.
	sum := func(first uint64, n int, bodies bool) int {
		total := 0
		for _, f := range all.Fields[first-1 : int(first-1)+n] {
			total += len(f)
			if bodies {
				total += BodyBytes(1000) + BodyBytes(300)
			}
		}
		return total
	}
	even := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.Id%2 == 0 }}
	for _, tt := range []struct {
		name      string
		lim       Limit
		m         Matcher
		wantIDs   string
		wantNext  uint64
		wantBytes int
		wantFull  bool
	}{
		{"no byte bound", Limit{Entries: 4}, Matcher{}, "[1 2 3 4]", 5, sum(1, 4, false), false},
		{"entries bound first", Limit{Entries: 2, Bytes: sum(1, 3, false)}, Matcher{}, "[1 2]", 3, sum(1, 2, false), false},
		{"three fit", Limit{Entries: 10, Bytes: sum(1, 3, false) + 1}, Matcher{}, "[1 2 3]", 4, sum(1, 3, false), true},
		{"exactly three", Limit{Entries: 10, Bytes: sum(1, 3, false)}, Matcher{}, "[1 2 3]", 4, sum(1, 3, false), true},
		{"all fit", Limit{Entries: 10, Bytes: sum(1, 10, false)}, Matcher{}, "[1 2 3 4 5 6 7 8 9 10]", 11, sum(1, 10, false), false},
		{"one too large", Limit{Entries: 10, Bytes: 1}, Matcher{}, "[1]", 2, sum(1, 1, false), true},
		{"bodies count", Limit{Entries: 10, Bytes: sum(1, 2, true), Bodies: true}, Matcher{}, "[1 2]", 3, sum(1, 2, true), true},
		{"both bodies count", Limit{Entries: 10, Bytes: sum(1, 2, true) - 1, Bodies: true}, Matcher{}, "[1]", 2, sum(1, 1, true), true},
		{"used counts", Limit{Entries: 10, Bytes: sum(1, 3, false), Used: sum(1, 2, false)}, Matcher{}, "[1]", 2, sum(1, 1, false), true},
		{"used leaves no room", Limit{Entries: 10, Bytes: sum(1, 2, false), Used: sum(1, 2, false)}, Matcher{}, "[]", 1, 0, true},
		{"filtered", Limit{Entries: 10, Bytes: 2*len(all.Fields[1]) + 1}, even, "[2 4]", 6, len(all.Fields[1]) + len(all.Fields[3]), true},
		{"filtered, used leaves no room", Limit{Entries: 10, Bytes: 10, Used: 10}, even, "[]", 2, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.ReadFrom(1, tt.lim, tt.m, Read{})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(ids(r.Entries)); got != tt.wantIDs || r.Next != tt.wantNext || r.Bytes != tt.wantBytes ||
				r.Full != tt.wantFull || r.Count != len(r.Entries) {
				t.Errorf("ids %s next %d bytes %d full %v count %d; want %s, %d, %d, %v, %d",
					got, r.Next, r.Bytes, r.Full, r.Count, tt.wantIDs, tt.wantNext, tt.wantBytes, tt.wantFull, len(r.Entries))
			}
			joined := 0
			for _, run := range r.Runs {
				joined += len(run)
			}
			if want := tt.wantBytes; !tt.lim.Bodies && joined != want {
				t.Errorf("runs hold %d bytes, want %d", joined, want)
			}
		})
	}
}

// Updates stop at the byte bound too, and leave the one that did not fit
// for the next read.
func TestReadUpdatesBytes(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	cursor := s.UpdateCursor()
	s.Append([]*pxperfv1.Entry{pendingEntry("a", "http://example.com/a"), pendingEntry("b", "http://example.com/b")})
	for _, rid := range []string{"a", "b"} {
		e := newEntry("GET", "http://example.com/"+rid, 200)
		e.RequestId = rid
		s.Append([]*pxperfv1.Entry{e})
	}
	u := s.ReadUpdates(cursor, math.MaxUint64, 10, Limit{Entries: 10}, Matcher{}, nil, nil)
	if len(u.Fields) != 2 {
		t.Fatalf("%d updates, want 2", len(u.Fields))
	}
	one := len(u.Fields[0])
	u = s.ReadUpdates(cursor, math.MaxUint64, 10, Limit{Entries: 10, Bytes: one + 1}, Matcher{}, nil, nil)
	if fmt.Sprint(ids(u.Entries)) != "[1]" || u.Next != cursor+1 || u.Bytes != one || !u.Full {
		t.Errorf("one fits: ids %v next %d bytes %d full %v; want [1], %d, %d, true", ids(u.Entries), u.Next, u.Bytes, u.Full, cursor+1, one)
	}
	u = s.ReadUpdates(cursor, math.MaxUint64, 10, Limit{Entries: 10, Bytes: one, Used: 1}, Matcher{}, nil, nil)
	if len(u.Entries) != 0 || u.Next != cursor || !u.Full {
		t.Errorf("no room: ids %v next %d full %v; want none, %d, true", ids(u.Entries), u.Next, u.Full, cursor)
	}
}

// A subscriber's updates stop at the update cursor of its read of entries:
// a completion after that read, of an entry the read returned as PENDING,
// is left for its next read of updates, not passed over.
func TestReadUpdatesUntil(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	cursor := s.UpdateCursor()
	s.Append([]*pxperfv1.Entry{pendingEntry("a", "http://example.com/a")}) // id 1
	r, _ := s.ReadFrom(1, Limit{Entries: 10}, Matcher{}, Read{})
	if len(r.Entries) != 1 || r.Entries[0].GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
		t.Fatalf("read %v, want id 1 PENDING", r.Entries)
	}
	done := newEntry("GET", "http://example.com/a", 200)
	done.RequestId = "a"
	s.Append([]*pxperfv1.Entry{done}) // completes id 1 after the read

	// The batch of id 1 goes out with updates below id 1: none, and the
	// cursor must not pass the completion.
	u := s.ReadUpdates(cursor, r.UpdateCursor, 1, Limit{Entries: 10}, Matcher{}, nil, nil)
	if len(u.Entries) != 0 || u.Next != cursor {
		t.Fatalf("updates %v next %d; want none and the cursor left at %d", ids(u.Entries), u.Next, cursor)
	}
	// The next round, past id 1, gets it.
	r, _ = s.ReadFrom(2, Limit{Entries: 10}, Matcher{}, r)
	u = s.ReadUpdates(u.Next, r.UpdateCursor, 2, Limit{Entries: 10}, Matcher{}, nil, nil)
	if fmt.Sprint(ids(u.Entries)) != "[1]" || u.Entries[0].GetStatusCode() != 200 {
		t.Errorf("next updates %v, want id 1 completed", u.Entries)
	}
}

// WithBody gives a copy carrying the body of the entry the store holds,
// and the entry itself once the store holds another in its place.
func TestWithBody(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, MaxBodySize: 1 << 10})
	p := pendingEntry("a", "http://example.com/a")
	p.ResponseBody = &pxperfv1.Body{Data: []byte("partial")}
	held := s.Append([]*pxperfv1.Entry{p})[0].Entry
	if got := s.WithBody(held); got == held || string(got.GetResponseBody().GetData()) != "partial" {
		t.Errorf("WithBody of the held entry: body %q, a copy %v; want \"partial\", true", got.GetResponseBody().GetData(), got != held)
	}
	if held.GetResponseBody().GetData() != nil {
		t.Error("WithBody changed the stored entry")
	}
	done := newEntry("GET", "http://example.com/a", 200)
	done.RequestId = "a"
	done.ResponseBody = &pxperfv1.Body{Data: []byte("the whole body")}
	s.Append([]*pxperfv1.Entry{done})
	if got := s.WithBody(held); got != held {
		t.Errorf("WithBody of a replaced entry = %v, want the entry itself", got)
	}
}

// A read of runs alone (Limit.RunsOnly) gives exactly the bytes, count,
// cursor and fullness of the same read with entries, whatever runs the
// entries were encoded in, whatever was completed since (a completion must
// never let a run's stale bytes out), evicted, or cut by a byte limit.
func TestReadRunsOnlyAgreesWithEntries(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			s := mustNew(t, Config{MaxEntries: 300, MaxMemoryBytes: 1 << 30})
			pending := map[string]bool{}
			var rids []string
			for step := range 400 {
				switch op := rng.IntN(10); {
				case op < 4: // append, some pending
					batch := make([]*pxperfv1.Entry, 1+rng.IntN(40))
					for i := range batch {
						batch[i] = newEntry("GET", fmt.Sprintf("http://example.com/%d/%d", step, i), 200)
						if rng.IntN(4) == 0 {
							rid := fmt.Sprintf("%d-%d", step, i)
							batch[i] = pendingEntry(rid, batch[i].Url)
							pending[rid] = true
							rids = append(rids, rid)
						}
					}
					s.Append(batch)
				case op < 6 && len(rids) > 0: // complete one
					rid := rids[rng.IntN(len(rids))]
					if pending[rid] {
						e := newEntry("GET", "http://example.com/done", int32(200+rng.IntN(300)))
						e.RequestId = rid
						s.Append([]*pxperfv1.Entry{e})
						delete(pending, rid)
					}
				default: // read a random range both ways
					oldest, next := s.Bounds()
					if next <= oldest {
						continue
					}
					from := oldest + rng.Uint64N(next-oldest)
					lim := Limit{Entries: 1 + rng.IntN(120)}
					if rng.IntN(2) == 0 {
						lim.Bytes = 1 + rng.IntN(20_000)
					}
					if rng.IntN(4) == 0 {
						lim.Used = rng.IntN(2_000)
					}
					runsLim := lim
					runsLim.RunsOnly = true
					// Which read goes first decides who encodes: both orders.
					var want, got Read
					if rng.IntN(2) == 0 {
						want, _ = s.ReadFrom(from, lim, Matcher{}, Read{})
						got, _ = s.ReadFrom(from, runsLim, Matcher{}, Read{})
					} else {
						got, _ = s.ReadFrom(from, runsLim, Matcher{}, Read{})
						want, _ = s.ReadFrom(from, lim, Matcher{}, Read{})
					}
					if len(got.Entries) != 0 || len(got.Fields) != 0 {
						t.Fatalf("step %d: a runs-only read returned %d entries and %d fields", step, len(got.Entries), len(got.Fields))
					}
					if got.Count != len(want.Entries) || got.Next != want.Next || got.Bytes != want.Bytes || got.Full != want.Full {
						t.Fatalf("step %d, read from %d with %+v: runs-only count %d next %d bytes %d full %v; with entries %d, %d, %d, %v",
							step, from, lim, got.Count, got.Next, got.Bytes, got.Full, len(want.Entries), want.Next, want.Bytes, want.Full)
					}
					if !bytes.Equal(bytes.Join(got.Runs, nil), bytes.Join(want.Fields, nil)) {
						t.Fatalf("step %d, read from %d with %+v: runs-only bytes differ from the entries' fields", step, from, lim)
					}
					for _, run := range got.Runs {
						if cap(run) != len(run) {
							t.Fatalf("step %d: a run has room to append into", step)
						}
					}
				}
			}
		})
	}
}

// Readers of runs alone, racing each other to encode, and an appender
// completing entries meanwhile: every read is whole consecutive entries, in
// id order, each in a state the store held (run with -race).
func TestReadRunsOnlyConcurrent(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 2000, MaxMemoryBytes: 1 << 30})
	const rounds = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rounds {
			batch := make([]*pxperfv1.Entry, 20)
			for j := range batch {
				batch[j] = pendingEntry(fmt.Sprintf("%d-%d", i, j), "http://example.com/p")
			}
			s.Append(batch)
			if i > 0 { // complete half the previous round's
				for j := 0; j < 20; j += 2 {
					e := newEntry("GET", "http://example.com/p", 200)
					e.RequestId = fmt.Sprintf("%d-%d", i-1, j)
					s.Append([]*pxperfv1.Entry{e})
				}
			}
		}
	})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			next := uint64(1)
			var r Read
			for next <= rounds*20 {
				var err error
				if r, err = s.ReadFrom(next, Limit{Entries: 1 + int(next%97), Bytes: 4096, RunsOnly: true}, Matcher{}, r); err != nil {
					errs <- err
					return
				}
				if r.GapFirst != 0 { // fell behind the oldest held
					next = r.GapLast + 1
				}
				// The runs are entries fields one after another: an
				// EntryBatch of the entries read, in id order.
				var b pxperfv1.EntryBatch
				if err := proto.Unmarshal(bytes.Join(r.Runs, nil), &b); err != nil {
					errs <- fmt.Errorf("read from %d: %v", next, err)
					return
				}
				if len(b.ProtoReflect().GetUnknown()) > 0 || b.NextId != 0 || len(b.Updates) != 0 {
					errs <- fmt.Errorf("read from %d: runs hold more than entries fields", next)
					return
				}
				if uint64(len(b.Entries)) != r.Next-next {
					errs <- fmt.Errorf("read from %d to %d: runs hold %d entries", next, r.Next, len(b.Entries))
					return
				}
				for i, e := range b.Entries {
					if id := next + uint64(i); e.Id != id {
						errs <- fmt.Errorf("read from %d: field for id %d holds id %d", next, id, e.Id)
						return
					}
				}
				next = r.Next
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Matching examines a bounded stretch of ids from its cursor, starting at
// the oldest held when the cursor has left memory.
func TestMatching(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 2 * maxScan, MaxMemoryBytes: 1 << 30})
	s.Append(entries(2*maxScan + 10)) // holds 11..2*maxScan+10
	fives := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.Id%5 == 0 }}
	oldest, next := uint64(11), uint64(2*maxScan+11)
	for _, tc := range []struct {
		name              string
		from              uint64
		wantFirst, wantTo uint64 // the ids examined: wantFirst..wantTo-1
	}{
		{"evicted cursor starts at the oldest", 3, oldest, oldest + maxScan},
		{"one stretch at most", 20, 20, 20 + maxScan},
		{"up to the newest", next - 7, next - 7, next},
		{"nothing new", next, next, next},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, first, to := s.Matching(tc.from, fives, nil)
			var want []uint64
			for id := tc.wantFirst; id < tc.wantTo; id++ {
				if id%5 == 0 {
					want = append(want, id)
				}
			}
			if first != tc.wantFirst || to != tc.wantTo || !slices.Equal(got, want) {
				t.Errorf("Matching(%d) = %v, %d, %d; want %v, %d, %d", tc.from, got, first, to, want, tc.wantFirst, tc.wantTo)
			}
		})
	}
}

// UpdatesMatching finds completions of selected entries in their latest
// state, and reports completions lost to a cursor that fell behind.
func TestUpdatesMatching(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	cursor := s.UpdateCursor()
	s.Append([]*pxperfv1.Entry{pendingEntry("a", "http://example.com/a"), pendingEntry("b", "http://example.com/b")})
	complete := func(rid string, status int32) {
		e := newEntry("GET", "http://example.com/"+rid, status)
		e.RequestId = rid
		s.Append([]*pxperfv1.Entry{e})
	}
	complete("a", 200)
	complete("b", 502)
	failed := Matcher{Status: func(code int32) bool { return code >= 500 }}
	for _, tc := range []struct {
		name  string
		since uint64
		m     Matcher
		want  bool
	}{
		{"both completions, one failed", cursor, failed, true},
		{"the success only", cursor, Matcher{Status: func(code int32) bool { return code == 404 }}, false},
		{"past both", cursor + 2, Matcher{}, false},
	} {
		found, next := s.UpdatesMatching(tc.since, tc.m)
		if found != tc.want || next != max(tc.since, cursor+2) {
			t.Errorf("%s: UpdatesMatching(%d) = %v, %d; want %v, %d", tc.name, tc.since, found, next, tc.want, cursor+2)
		}
	}
}

// A cursor further behind than the completions remembered is told so.
func TestUpdatesMatchingReportsLost(t *testing.T) {
	s, cursor := completedPastLog(t)
	const n = updateLog + 5
	none := Matcher{Match: func(*pxperfv1.Entry) bool { return false }}
	if found, next := s.UpdatesMatching(cursor, none); !found || next != cursor+n {
		t.Errorf("UpdatesMatching from a lost cursor = %v, %d; want true, %d", found, next, cursor+n)
	}
}
