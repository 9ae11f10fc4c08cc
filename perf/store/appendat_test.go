package store

import (
	"slices"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// AppendAt gives the ids it is told, never takes an entry as a completion,
// and drops what it holds when the ids jump ahead.
func TestAppendAt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		first     uint64 // the store's first id
		batches   []uint64
		sizes     []int
		wantIDs   []uint64 // held at the end
		wantErr   bool     // the last batch is refused
		wantCount uint64   // evicted by count
	}{
		{name: "consecutive", first: 10, batches: []uint64{10, 12}, sizes: []int{2, 3}, wantIDs: []uint64{10, 11, 12, 13, 14}},
		{name: "jump drops what is held", first: 1, batches: []uint64{1, 100}, sizes: []int{3, 2}, wantIDs: []uint64{100, 101}, wantCount: 3},
		{name: "jump on an empty store", first: 1, batches: []uint64{50}, sizes: []int{1}, wantIDs: []uint64{50}},
		{name: "behind is refused", first: 1, batches: []uint64{1, 2}, sizes: []int{3, 1}, wantIDs: []uint64{1, 2, 3}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30, FirstID: tc.first})
			var err error
			for i, at := range tc.batches {
				var got []Stored
				got, err = s.AppendAt(at, entries(tc.sizes[i]))
				if err == nil && (len(got) != tc.sizes[i] || got[0].ID != at) {
					t.Fatalf("AppendAt(%d, %d entries) stored %v", at, tc.sizes[i], storedIDs(got))
				}
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("last AppendAt error = %v, want error %v", err, tc.wantErr)
			}
			var held []uint64
			oldest, next := s.Bounds()
			for id := oldest; id < next; id++ {
				if _, err := s.Entry(id); err != nil {
					t.Fatalf("Entry(%d) within bounds: %v", id, err)
				}
				held = append(held, id)
			}
			if !slices.Equal(held, tc.wantIDs) {
				t.Errorf("held ids %v, want %v", held, tc.wantIDs)
			}
			if st := s.Stats(); st.EvictedByCount != tc.wantCount || st.Entries != len(tc.wantIDs) {
				t.Errorf("stats: %d entries, %d evicted by count; want %d and %d", st.Entries, st.EvictedByCount, len(tc.wantIDs), tc.wantCount)
			}
		})
	}
}

// An entry appended at an id with the request id of a PENDING entry is a
// new entry: only Complete completes, by id.
func TestAppendAtAndComplete(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30})
	if _, err := s.AppendAt(1, []*pxperfv1.Entry{pendingEntry("r1", "http://example.com/a")}); err != nil {
		t.Fatal(err)
	}
	if id, ok := s.PendingID("r1"); !ok || id != 1 {
		t.Fatalf("PendingID(r1) = %d, %v; want 1", id, ok)
	}
	again := pendingEntry("r1", "http://example.com/b")
	again.State = pxperfv1.EntryState_ENTRY_STATE_COMPLETED
	again.StatusCode = 204
	if _, err := s.AppendAt(2, []*pxperfv1.Entry{again}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Entry(1); got.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
		t.Fatalf("entry 1 after AppendAt of the same request id: %v; want it still PENDING", got.GetState())
	}

	done := newEntry("GET", "http://example.com/a", 200)
	done.RequestId = "r1"
	st, ok := s.Complete(1, done)
	if !ok || st.ID != 1 {
		t.Fatalf("Complete(1) = %v, %v; want entry 1 completed", st.ID, ok)
	}
	got, _ := s.Entry(1)
	if got.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || got.GetStatusCode() != 200 {
		t.Errorf("entry 1 after Complete: %v %d; want COMPLETED 200", got.GetState(), got.GetStatusCode())
	}
	if _, ok := s.PendingID("r1"); ok {
		t.Error("PendingID(r1) still answers after the entry completed")
	}
	if _, ok := s.Complete(1, newEntry("GET", "http://example.com/a", 500)); ok {
		t.Error("Complete of an entry no longer PENDING succeeded")
	}
	if _, ok := s.Complete(99, newEntry("GET", "http://example.com/a", 500)); ok {
		t.Error("Complete of an id not held succeeded")
	}
	if n := s.Stats().Completed; n != 1 {
		t.Errorf("Completed = %d, want 1", n)
	}
}
