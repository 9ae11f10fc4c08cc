package main

// Virtual scrolling for pxperf watch: the table asks ListEntries for the
// rows on screen and nothing more, and finds its place again after new
// entries arrive.

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/pxperf/pxperf/internal/contract"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// listFunc is ListEntries: [client.Client.ListEntries], or a fake in tests.
type listFunc func(context.Context, *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error)

// maxPageSize is the largest page_size ListEntries accepts.
var maxPageSize = contractMax(&pxperfv1.ListEntriesRequest{}, "page_size")

// contractMax returns the largest value the contract accepts for msg's
// integer field name: its buf.validate lte rule. It panics when the field
// has none, which a test catches.
func contractMax(msg proto.Message, name protoreflect.Name) int {
	rules := contract.Rules(msg, name)
	switch {
	case rules.GetInt32().HasLte():
		return int(rules.GetInt32().GetLte())
	case rules.GetUint32().HasLte():
		return int(rules.GetUint32().GetLte())
	}
	panic(fmt.Sprintf("%s.%s has no lte rule", msg.ProtoReflect().Descriptor().FullName(), name))
}

// windowQuery says which window of the filtered view to fetch. The view is
// counted newest first: offset 0 is the newest matching entry. The window's
// bottom row on screen is its newest entry, so offset is how many matching
// entries are newer than the bottom row (0: the window is at the tail).
type windowQuery struct {
	filter *pxperfv1.Filter
	// rows is the height of the window, 1..maxPageSize.
	rows int
	// offset places the window when anchor is 0.
	offset uint64
	// anchor, when not 0, is the id of the entry to keep as the bottom
	// row: the window is found again around it however many entries
	// arrived since (offset is then only the first guess). If that entry
	// left the view, the next older one takes its place.
	anchor uint64
	// shift then moves the window by this many rows: positive towards
	// older entries (scrolling up on screen), negative towards newer.
	shift int64
	// oldest asks for the oldest rows of the view instead (Home).
	oldest bool
}

// watchWindow is a window of the filtered view.
type watchWindow struct {
	// entries are the window's entries, newest first: entries[0] is the
	// bottom row on screen. Fewer than the rows asked for only when the
	// whole view is shorter.
	entries []*pxperfv1.Entry
	// offset is how many matching entries are newer than entries[0].
	offset uint64
	// total is the number of entries in the whole filtered view.
	total uint64
	// calls is the number of ListEntries calls the fetch took.
	calls int
}

// maxLocateCalls bounds the ListEntries calls spent finding an anchor
// again. Each call after the first estimates the anchor's position from
// the ids and the density of matching entries it saw, so the view without
// a filter (contiguous ids) needs at most two.
const maxLocateCalls = 4

// fetchWindow fetches the window q asks for. It holds a place by id rather
// than by offset, because offsets counted from the newest entry move with
// every entry published, while the oldest entries may be evicted at the
// same time, so no count from the response tells how far the window moved.
func fetchWindow(ctx context.Context, list listFunc, q windowQuery) (watchWindow, error) {
	rows := min(max(q.rows, 1), maxPageSize)
	var w watchWindow
	call := func(offset uint64, limit int, order pxperfv1.Order) ([]*pxperfv1.Entry, error) {
		w.calls++
		resp, err := list(ctx, &pxperfv1.ListEntriesRequest{
			Filter:   q.filter,
			Offset:   offset,
			PageSize: int32(limit),
			Order:    order,
		})
		if err != nil {
			return nil, err
		}
		w.total = uint64(max(resp.GetTotalSize(), 0))
		return resp.GetEntries(), nil
	}
	newest := func(offset uint64, limit int) ([]*pxperfv1.Entry, error) {
		return call(offset, limit, pxperfv1.Order_ORDER_NEWEST_FIRST)
	}

	if q.oldest {
		es, err := call(0, rows, pxperfv1.Order_ORDER_OLDEST_FIRST)
		if err != nil {
			return w, err
		}
		slices.Reverse(es)
		w.entries = es
		w.offset = w.total - min(w.total, uint64(len(es)))
		return w, nil
	}

	// Where the bottom row is now, and a page already fetched around it.
	at := q.offset
	var page []*pxperfv1.Entry
	var pageStart uint64
	var pageAtEnd bool
	if q.anchor != 0 {
		var err error
		at, page, pageStart, pageAtEnd, err = locate(q.anchor, q.offset, rows, q.shift, newest, func() uint64 { return w.total })
		if err != nil {
			return w, err
		}
	}

	// Move, and keep the window full where the view allows: a window past
	// the oldest entry is pulled back. The total is known here only after
	// a call; without one (a plain offset query) the first call checks it.
	off := at
	switch {
	case q.shift > 0:
		off += uint64(q.shift)
	case q.shift < 0:
		off -= min(off, uint64(-q.shift))
	}
	if w.calls > 0 {
		off = min(off, w.total-min(w.total, uint64(rows)))
	}
	if page != nil && off >= pageStart {
		if off+uint64(rows) <= pageStart+uint64(len(page)) || pageAtEnd {
			lo := min(off-pageStart, uint64(len(page)))
			w.entries = page[lo:min(lo+uint64(rows), uint64(len(page)))]
			w.offset = off
			return w, nil
		}
	}
	es, err := newest(off, rows)
	if err != nil {
		return w, err
	}
	if full := w.total - min(w.total, uint64(rows)); off > full {
		// Past the oldest entries (they were evicted, or a plain offset
		// was too large): show the oldest full window instead.
		off = full
		if es, err = newest(off, rows); err != nil {
			return w, err
		}
	}
	w.entries, w.offset = es, off
	return w, nil
}

// locate finds the position (offset, newest first) of the newest entry
// whose id is at most anchor, starting from the guess; newest makes one
// ListEntries call, after which total returns the view's size. It returns
// the page it found the anchor in, which starts at pageStart, so that the
// caller can often cut the window from it without another call. When the
// anchor is older than every entry in the view (it was evicted), the
// position is the view's total. The page reaches rows rows and shift
// beyond the anchor where it can, and atEnd reports that it reaches the
// view's end. After maxLocateCalls calls it settles for its last guess and
// returns no page.
func locate(anchor, guess uint64, rows int, shift int64, newest func(offset uint64, limit int) ([]*pxperfv1.Entry, error), total func() uint64) (at uint64, page []*pxperfv1.Entry, pageStart uint64, atEnd bool, err error) {
	margin := uint64(rows)
	before := margin + uint64(max(-shift, 0)) // newer than the anchor
	limit := int(min(uint64(rows)+2*margin+uint64(max(shift, -shift)), uint64(maxPageSize)))
	for range maxLocateCalls {
		start := guess - min(guess, before)
		es, err := newest(start, limit)
		if err != nil {
			return 0, nil, 0, false, err
		}
		atEnd := len(es) < limit
		if len(es) == 0 {
			if start == 0 {
				return 0, es, 0, true, nil // the view is empty
			}
			// Past the end of the view: it shrank (evictions), or the
			// guess was too far. Look at its oldest part.
			guess = total()
			continue
		}
		// es is in descending id order: find the first entry at or
		// below the anchor.
		i := sort.Search(len(es), func(i int) bool { return es[i].GetId() <= anchor })
		first, last := es[0].GetId(), es[len(es)-1].GetId()
		// Matching entries per id in this page: 1 without a filter,
		// since ids in memory are contiguous.
		density := float64(len(es)) / float64(first-last+1)
		switch {
		case i == len(es) && atEnd:
			// Every entry down to the view's end is newer: the anchor
			// is gone, and so is everything older than it.
			return start + uint64(len(es)), es, start, true, nil
		case i == len(es):
			// The anchor is further down (older): skip about as many
			// matching entries as lie between this page and it.
			guess = start + uint64(len(es)) + uint64(float64(last-anchor-1)*density)
		case i == 0 && start > 0 && first < anchor:
			// The anchor is above this page (newer), or stopped
			// matching: come back about as far.
			back := 1 + uint64(float64(anchor-first-1)*density)
			guess = start - min(start, back)
		default:
			return start + uint64(i), es, start, atEnd, nil
		}
	}
	return guess, nil, 0, false, nil
}
