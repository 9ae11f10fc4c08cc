package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// fakeView is a store of entries with contiguous ids first..last, of which
// those that match form the view, served as ListEntries serves it.
type fakeView struct {
	first, last uint64
	match       func(id uint64) bool // nil: every entry
	calls       int
}

func (v *fakeView) ids() []uint64 { // the view, newest first
	var ids []uint64
	for id := v.last; id >= v.first && id > 0; id-- {
		if v.match == nil || v.match(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (v *fakeView) list(_ context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
	v.calls++
	ids := v.ids()
	if req.GetOrder() == pxperfv1.Order_ORDER_OLDEST_FIRST {
		slices.Reverse(ids)
	}
	resp := &pxperfv1.ListEntriesResponse{TotalSize: int64(len(ids))}
	if v.last >= v.first && v.last > 0 {
		resp.OldestId, resp.NewestId = v.first, v.last
	}
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = 50
	}
	for i := req.GetOffset(); i < uint64(len(ids)) && len(resp.Entries) < limit; i++ {
		resp.Entries = append(resp.Entries, &pxperfv1.Entry{Id: ids[i]})
	}
	return resp, nil
}

// want is the window of rows whose bottom row is at offset in the view.
func (v *fakeView) want(offset uint64, rows int) []uint64 {
	ids := v.ids()
	lo := min(offset, uint64(len(ids)))
	return ids[lo:min(lo+uint64(rows), uint64(len(ids)))]
}

func entryIDs(es []*pxperfv1.Entry) []uint64 {
	ids := make([]uint64, len(es))
	for i, e := range es {
		ids[i] = e.GetId()
	}
	return ids
}

func everyThird(id uint64) bool { return id%3 == 0 }

func TestWatchWindow(t *testing.T) {
	const rows = 20
	tests := []struct {
		name string
		view fakeView
		q    windowQuery
		// then: the view changes before the fetch
		grow, evict uint64
		wantOffset  uint64
		wantFirst   uint64 // id of the bottom row; 0: no rows
		wantTotal   uint64
		maxCalls    int
	}{
		{name: "tail", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows},
			wantOffset: 0, wantFirst: 1000, wantTotal: 1000, maxCalls: 1},
		{name: "empty view", view: fakeView{first: 1, last: 0}, q: windowQuery{rows: rows},
			wantTotal: 0, maxCalls: 1},
		{name: "offset past the end shows the oldest rows", view: fakeView{first: 1, last: 100}, q: windowQuery{rows: rows, offset: 500},
			wantOffset: 80, wantFirst: 20, wantTotal: 100, maxCalls: 2},
		{name: "fewer than a window", view: fakeView{first: 1, last: 5}, q: windowQuery{rows: rows, offset: 3},
			wantOffset: 0, wantFirst: 5, wantTotal: 5, maxCalls: 2},
		{name: "hold after a few new entries", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, offset: 100, anchor: 900},
			grow: 7, wantOffset: 107, wantFirst: 900, wantTotal: 1007, maxCalls: 1},
		{name: "hold after many new entries", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, offset: 100, anchor: 900},
			grow: 50000, wantOffset: 50100, wantFirst: 900, wantTotal: 51000, maxCalls: 2},
		{name: "hold after new entries and evictions", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, offset: 100, anchor: 900},
			grow: 5000, evict: 500, wantOffset: 5100, wantFirst: 900, wantTotal: 5500, maxCalls: 2},
		{name: "hold with a filter after many new entries", view: fakeView{first: 1, last: 3000, match: everyThird},
			q:    windowQuery{rows: rows, offset: 100, anchor: 2700},
			grow: 30000, wantOffset: 10100, wantFirst: 2700, wantTotal: 11000, maxCalls: maxLocateCalls + 1},
		{name: "hold on an entry that stopped matching takes the next older", view: fakeView{first: 1, last: 3000, match: everyThird},
			q: windowQuery{rows: rows, offset: 100, anchor: 2701}, wantOffset: 100, wantFirst: 2700, wantTotal: 1000, maxCalls: 1},
		{name: "the anchor was evicted: the oldest rows", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, offset: 900, anchor: 100},
			grow: 100, evict: 500, wantOffset: 580, wantFirst: 520, wantTotal: 600, maxCalls: maxLocateCalls + 1},
		{name: "page up from a held place", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, offset: 100, anchor: 900, shift: rows},
			grow: 3, wantOffset: 123, wantFirst: 880, wantTotal: 1003, maxCalls: 1},
		{name: "page down to the tail", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, offset: 10, anchor: 990, shift: -rows},
			wantOffset: 0, wantFirst: 1000, wantTotal: 1000, maxCalls: 2},
		{name: "page up past the oldest stops at the oldest rows", view: fakeView{first: 1, last: 100}, q: windowQuery{rows: rows, offset: 70, anchor: 30, shift: rows},
			wantOffset: 80, wantFirst: 20, wantTotal: 100, maxCalls: 2},
		{name: "oldest", view: fakeView{first: 1, last: 1000}, q: windowQuery{rows: rows, oldest: true},
			wantOffset: 980, wantFirst: 20, wantTotal: 1000, maxCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.view
			v.last += tt.grow
			v.first += tt.evict
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w, err := fetchWindow(ctx, v.list, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			got := entryIDs(w.entries)
			if w.offset != tt.wantOffset || w.total != tt.wantTotal {
				t.Errorf("offset %d, total %d; want %d, %d", w.offset, w.total, tt.wantOffset, tt.wantTotal)
			}
			if want := v.want(tt.wantOffset, rows); !slices.Equal(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			if (len(got) == 0) != (tt.wantFirst == 0) || (len(got) > 0 && got[0] != tt.wantFirst) {
				t.Errorf("bottom row %v, want id %d", got, tt.wantFirst)
			}
			if w.calls != v.calls || w.calls > tt.maxCalls {
				t.Errorf("%d ListEntries calls (counted %d), want at most %d", v.calls, w.calls, tt.maxCalls)
			}
		})
	}
}

// TestWatchWindowHolds holds a place through random arrivals and
// evictions, with and without a filter: the bottom row stays the anchor,
// or the next older entry, until it leaves memory.
func TestWatchWindowHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, match := range []func(uint64) bool{nil, everyThird, func(id uint64) bool { return id%97 < 5 }} {
		r := rand.New(rand.NewPCG(1, 2))
		v := &fakeView{first: 1, last: 5000, match: match}
		rows := 25
		w, err := fetchWindow(ctx, v.list, windowQuery{rows: rows, offset: 40})
		if err != nil {
			t.Fatal(err)
		}
		for step := range 100 {
			if len(w.entries) == 0 {
				break
			}
			anchor := w.entries[0].GetId()
			v.last += uint64(r.IntN(4000))
			v.first = max(v.first, v.last-min(v.last, uint64(r.IntN(20000)+2000)))
			v.calls = 0
			if w, err = fetchWindow(ctx, v.list, windowQuery{rows: rows, offset: w.offset, anchor: anchor}); err != nil {
				t.Fatal(err)
			}
			ids := v.ids()
			// Where the window should be: the newest entry at most the
			// anchor, pulled back to keep the window full.
			i := slices.IndexFunc(ids, func(id uint64) bool { return id <= anchor })
			if i < 0 {
				i = len(ids) // the anchor left memory
			}
			at := uint64(min(i, max(len(ids)-rows, 0)))
			if got, want := entryIDs(w.entries), v.want(at, rows); !slices.Equal(got, want) || w.offset != at {
				t.Fatalf("step %d (anchor %d, ids %d..%d): offset %d rows %v; want offset %d rows %v", step, anchor, v.first, v.last, w.offset, got, at, want)
			}
			if w.calls > maxLocateCalls+1 {
				t.Errorf("step %d: %d calls", step, w.calls)
			}
		}
	}
}

// The limits the monitor keeps to are read from the contract.
func TestContractLimits(t *testing.T) {
	if maxPageSize != 1000 || maxViewWindow != 1000 {
		t.Errorf("page_size up to %d, window up to %d; want the contract's 1000 and 1000", maxPageSize, maxViewWindow)
	}
}
