package archive

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/testing/protocmp"
)

// TestRead reads ids 1..35 back from three compressed files and the plain
// current file (ten entries a file, entry id started at genBase + id s).
func TestRead(t *testing.T) {
	h := open(t, Config{MaxCount: 10, Compress: true})
	h.appendRange(1, 35)
	h.settle()
	if f := h.files(); len(f) != 4 || !f[0].Compressed || !f[2].Compressed || f[3].Compressed {
		t.Fatalf("files = %+v, want three compressed and the current one", f)
	}
	at := func(id int) time.Time { return genBase.Add(time.Duration(id) * time.Second) }
	even := func(e *pxperfv1.Entry) bool { return e.Id%2 == 0 }
	tests := []struct {
		name string
		q    Query
		want []uint64
	}{
		{"all", Query{}, seq(1, 35)},
		{"ids across files", Query{FirstID: 8, LastID: 23}, seq(8, 23)},
		{"one id", Query{FirstID: 12, LastID: 12}, []uint64{12}},
		{"open end", Query{FirstID: 33}, seq(33, 35)},
		{"open start", Query{LastID: 3}, seq(1, 3)},
		{"beyond", Query{FirstID: 36}, nil},
		{"times, end excluded", Query{Start: at(9), End: at(21)}, seq(9, 20)},
		{"times, open end", Query{Start: at(30)}, seq(30, 35)},
		{"times, open start", Query{End: at(3)}, seq(1, 2)},
		{"times and ids", Query{FirstID: 15, Start: at(9), End: at(21)}, seq(15, 20)},
		{"matcher", Query{FirstID: 5, LastID: 14, Match: even}, []uint64{6, 8, 10, 12, 14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, h.ids(tt.q)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	// Entries come back whole.
	var got *pxperfv1.Entry
	if err := h.a.Read(h.ctx, Query{FirstID: 7, LastID: 7}, func(e *pxperfv1.Entry) error { got = e; return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entry(7), got, protocmp.Transform()); diff != "" {
		t.Errorf("entry 7 (-want +got):\n%s", diff)
	}
	// fn's error stops the read.
	stop := errors.New("stop")
	n := 0
	err := h.a.Read(h.ctx, Query{}, func(*pxperfv1.Entry) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("Read = %v after %d entries, want stop after 1", err, n)
	}
	if st := h.a.Stats(); st.CorruptLines != 0 {
		t.Errorf("CorruptLines = %d", st.CorruptLines)
	}
}

func TestQuerySkipsFiles(t *testing.T) {
	at := func(s int) time.Time { return genBase.Add(time.Duration(s) * time.Second) }
	f := &fileState{known: true, meta: meta{Entries: 10, MinID: 11, MaxID: 20, MinTime: at(11), MaxTime: at(20)}}
	tests := []struct {
		q    Query
		want bool
	}{
		{Query{}, true},
		{Query{FirstID: 21}, false},
		{Query{FirstID: 20}, true},
		{Query{LastID: 10}, false},
		{Query{LastID: 11}, true},
		{Query{Start: at(21)}, false},
		{Query{Start: at(20)}, true},
		{Query{End: at(11)}, false},
		{Query{End: at(12)}, true},
	}
	for _, tt := range tests {
		if got := tt.q.mayContain(f); got != tt.want {
			t.Errorf("%+v.mayContain = %v, want %v", tt.q, got, tt.want)
		}
	}
	if !(&Query{FirstID: 99}).mayContain(&fileState{}) {
		t.Error("a file not described must not be skipped")
	}
	if (&Query{Start: at(1)}).mayContain(&fileState{known: true, meta: meta{Entries: 1, MaxID: 1}}) {
		t.Error("a file with no start times is skipped by a time range")
	}
}

// TestEntryLatest: an entry appended again later (a PENDING entry
// completed) is returned in its final state, from the later file.
func TestEntryLatest(t *testing.T) {
	h := open(t, Config{MaxCount: 10, Compress: true})
	pending := entry(5)
	pending.State, pending.StatusCode = pxperfv1.EntryState_ENTRY_STATE_PENDING, 0
	var items []Item
	for id := uint64(1); id <= 12; id++ {
		e := entry(id)
		if id == 5 {
			e = pending
		}
		items = append(items, Item{Entry: e})
	}
	if err := h.a.Append(items); err != nil {
		t.Fatal(err)
	}
	done := entry(5)
	done.StatusCode = 504
	done.RequestBody = &pxperfv1.Body{ContentType: "application/x-www-form-urlencoded", OriginalSize: 40000, Truncated: true}
	body, requestBody := []byte(`{"late":true}`), []byte("name=a&size=40000")
	if err := h.a.Append([]Item{{Entry: done, Body: body, RequestBody: requestBody}}); err != nil {
		t.Fatal(err)
	}
	h.settle()

	got, err := h.a.Entry(h.ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(done, body, requestBody), got, protocmp.Transform()); diff != "" {
		t.Errorf("Entry(5) (-want +got):\n%s", diff)
	}
	if files := h.files(); files[1].FirstID != 5 {
		t.Errorf("the later file's range = %+v, want it to start at 5", files[1])
	}
	// Read returns both lines, in file order.
	if diff := cmp.Diff([]uint64{4, 5, 6, 5}, h.ids(Query{FirstID: 4, LastID: 6})); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if got, err := h.a.Entry(h.ctx, 11); err != nil || got.Id != 11 {
		t.Errorf("Entry(11) = %v, %v", got, err)
	}
	if _, err := h.a.Entry(h.ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(99) = %v, want ErrNotFound", err)
	}
}

// TestReadSeesAppended: a read sees entries appended before it, before any
// flush tick.
func TestReadSeesAppended(t *testing.T) {
	h := open(t, Config{})
	h.appendRange(1, 3)
	got, err := h.a.Entry(h.ctx, 3)
	if err != nil || got.Id != 3 {
		t.Fatalf("Entry(3) = %v, %v", got, err)
	}
	h.appendRange(4, 5)
	if diff := cmp.Diff(seq(1, 5), h.ids(Query{})); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}

// TestOldestIDSeesAppended: OldestID counts entries appended before it,
// before any flush tick has written them (Files lists a file only from
// its first write).
func TestOldestIDSeesAppended(t *testing.T) {
	h := open(t, Config{})
	if got, err := h.a.OldestID(h.ctx); err != nil || got != 0 {
		t.Fatalf("OldestID of an empty archive = %d, %v; want 0", got, err)
	}
	h.appendRange(5, 9)
	if got, err := h.a.OldestID(h.ctx); err != nil || got != 5 {
		t.Fatalf("OldestID = %d, %v; want 5", got, err)
	}
	h.close()
	if _, err := h.a.OldestID(h.ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("OldestID after Close = %v, want ErrClosed", err)
	}
}

func TestClose(t *testing.T) {
	h := open(t, Config{})
	h.appendRange(1, 5)
	// No sync: Close writes what is queued.
	if err := h.a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.a.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := h.a.Append([]Item{{Entry: entry(6)}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if err := h.a.Read(h.ctx, Query{}, func(*pxperfv1.Entry) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if err := h.a.Rotate(h.ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Rotate after Close = %v", err)
	}
	if err := h.a.SetConfig(h.cfg); !errors.Is(err, ErrClosed) {
		t.Errorf("SetConfig after Close = %v", err)
	}
	h.reopen()
	if diff := cmp.Diff(seq(1, 5), h.ids(Query{})); diff != "" {
		t.Errorf("ids after reopen (-want +got):\n%s", diff)
	}
	if got := h.a.LastID(); got != 5 {
		t.Errorf("LastID = %d", got)
	}
	st := h.a.Stats()
	if st.Files != 1 || st.DiskBytes != uint64(5*lineSizeOf(1, 5)) {
		t.Errorf("Files %d, DiskBytes %d", st.Files, st.DiskBytes)
	}
}

// lineSizeOf returns the mean line size of entries from..to.
func lineSizeOf(from, to uint64) int64 {
	var n int
	for id := from; id <= to; id++ {
		n += len(appendEntry(nil, entry(id), nil, nil))
	}
	return int64(n) / int64(to-from+1)
}

func TestNilEntriesSkipped(t *testing.T) {
	h := open(t, Config{})
	if err := h.a.Append([]Item{{Entry: entry(1)}, {}, {Entry: entry(2)}}); err != nil {
		t.Fatal(err)
	}
	if err := h.a.Append(nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seq(1, 2), h.ids(Query{})); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}
