package hub

import (
	"slices"
	"sync"

	"github.com/pxperf/pxperf/perf/store"
)

// A filtered subscription does not read the store on every append: its
// filter's watch does, once for every subscription with the same filter,
// and wakes them only when there is something for them (a matching entry
// or completion). The watch remembers which of the ids it examined match,
// so that a subscription that wakes moves its cursors past the others
// without reading them. A subscription whose filter matches nothing costs
// its heartbeat and no more, however fast entries arrive.

// maxWatchIDs bounds the matching ids a watch remembers. A subscription
// further behind than that many matches has entries to read anyway.
const maxWatchIDs = 256

// watch follows the store's new entries and completions for one filter.
// Only the hub's dispatch goroutine scans; subscriptions read the result.
type watch struct {
	key   string
	match store.Matcher
	refs  int // subscriptions using it; under Hub.mu

	mu sync.Mutex
	// Every id from from to scanned (exclusive) that the filter selected
	// when it was examined is in ids, ascending.
	from, scanned uint64
	ids           []uint64
	// No completion from the update cursor updFrom to updScanned
	// (exclusive) was of an entry the filter selected.
	updFrom, updScanned uint64
	// wake is closed, and replaced, when a scan finds something.
	wake chan struct{}

	buf []uint64 // the dispatch goroutine's scratch for new matches
}

func newWatch(key string, m store.Matcher, st *store.Store) *watch {
	_, next := st.Bounds()
	upd := st.UpdateCursor()
	return &watch{key: key, match: m, from: next, scanned: next, updFrom: upd, updScanned: upd, wake: make(chan struct{})}
}

// waker returns the channel closed when the watch next finds something.
// Take it before reading, as [store.Store.Changed].
func (w *watch) waker() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wake
}

// skip returns where cursors at next (ids) and updates (completions) can
// move without missing anything the filter selects: to the first matching
// id from next on, or past all the watch has examined; and past the
// completions it has examined, when none of them matched.
func (w *watch) skip(next, updates uint64) (uint64, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if next >= w.from && next < w.scanned {
		if i, _ := slices.BinarySearch(w.ids, next); i < len(w.ids) {
			next = w.ids[i]
		} else {
			next = w.scanned
		}
	}
	if updates >= w.updFrom && updates < w.updScanned {
		updates = w.updScanned
	}
	return next, updates
}

// scan examines what the store got since the last scan, and wakes the
// watch's subscriptions when a new entry or completion matches, or when
// entries left memory before they were examined (their subscriptions may
// owe a gap).
func (w *watch) scan(st *store.Store) {
	w.mu.Lock()
	from, upd := w.scanned, w.updScanned
	w.mu.Unlock()
	found := false
	for {
		ids, first, next := st.Matching(from, w.match, w.buf[:0])
		w.buf = ids
		w.mu.Lock()
		if first > from {
			// Evicted unexamined: nothing is known before first.
			w.from, w.ids = first, w.ids[:0]
			found = true
		}
		w.ids = append(w.ids, ids...)
		if extra := len(w.ids) - maxWatchIDs; extra > 0 {
			w.from = w.ids[extra-1] + 1
			w.ids = append(w.ids[:0], w.ids[extra:]...)
		}
		w.scanned = next
		w.mu.Unlock()
		found = found || len(ids) > 0
		if next == first {
			break // nothing more to examine
		}
		from = next
	}
	updFound, updNext := st.UpdatesMatching(upd, w.match)
	w.mu.Lock()
	defer w.mu.Unlock()
	if updFound {
		w.updFrom = updNext
	}
	w.updScanned = updNext
	if found || updFound {
		close(w.wake)
		w.wake = make(chan struct{})
	}
}

// watchForLocked returns the watch of the filter key, making it if need
// be, and counts one more user of it. The caller holds h.mu.
func (h *Hub) watchForLocked(key string, m store.Matcher) *watch {
	w := h.watches[key]
	if w == nil {
		w = newWatch(key, m, h.store)
		h.watches[key] = w
		if !h.dispatching {
			h.dispatching = true
			h.workers.Go(h.dispatch)
		}
	}
	w.refs++
	return w
}

// releaseWatchLocked drops a user of w, and w with its last. The caller
// holds h.mu.
func (h *Hub) releaseWatchLocked(w *watch) {
	if w.refs--; w.refs == 0 {
		delete(h.watches, w.key)
	}
}

// dispatch scans every watch each time entries are appended, until the hub
// closes.
func (h *Hub) dispatch() {
	var ws []*watch
	for {
		changed := h.store.Changed()
		h.mu.Lock()
		ws = ws[:0]
		for _, w := range h.watches {
			ws = append(ws, w)
		}
		h.mu.Unlock()
		for _, w := range ws {
			w.scan(h.store)
		}
		clear(ws) // let released watches go
		select {
		case <-changed:
		case <-h.closed:
			return
		}
	}
}
