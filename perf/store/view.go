package store

import (
	"slices"
	"sync"
)

// maxViews bounds the filtered views a store keeps for [Query.Key]. Each
// holds 8 bytes per matching entry, so at most 64 bytes per held entry in
// all, against at least 512 accounted per entry.
const maxViews = 8

// views caches filtered views for List.
type views struct {
	mu    sync.Mutex // guards the fields below; taken inside Store.mu
	byKey map[string]*view
	clock uint64 // ticks on every use, for least-recently-used eviction
}

// view is the ids of held entries that match a query's matcher, ascending,
// as of scanned and the update cursor updates.
type view struct {
	match   Matcher
	ids     []uint64
	scanned uint64 // ids below this have been examined
	updates uint64 // completions before this have been applied
	used    uint64 // views.clock at the last use
}

// viewLocked returns the view for key brought up to date with the store.
// The caller holds s.mu (read) and s.views.mu.
func (s *Store) viewLocked(key string, m Matcher) *view {
	vs := &s.views
	vs.clock++
	v := vs.byKey[key]
	if v == nil || s.updateNext-v.updates > uint64(len(s.updates)) {
		// New, or too many completions missed to apply one by one.
		v = &view{match: m, scanned: s.firstID, updates: s.updateNext, used: vs.clock}
		if vs.byKey == nil {
			vs.byKey = make(map[string]*view)
		}
		vs.byKey[key] = v
		s.evictViewsLocked()
	}
	v.used = vs.clock

	// Drop what was evicted from the store.
	i, _ := slices.BinarySearch(v.ids, s.firstID)
	v.ids = v.ids[i:]
	if cap(v.ids) > 2*len(v.ids)+64 {
		v.ids = slices.Clone(v.ids) // let the dropped prefix go
	}
	// Completions may have changed whether entries already scanned match.
	for seq := v.updates; seq < s.updateNext; seq++ {
		id := s.updates[seq%uint64(len(s.updates))]
		if id >= v.scanned || !s.heldLocked(id) {
			continue
		}
		i, found := slices.BinarySearch(v.ids, id)
		switch matches := s.itemLocked(id).selectedBy(v.match); {
		case matches && !found:
			v.ids = slices.Insert(v.ids, i, id)
		case !matches && found:
			v.ids = slices.Delete(v.ids, i, i+1)
		}
	}
	v.updates = s.updateNext
	// Examine what was appended.
	v.ids = s.matchingLocked(v.match, max(v.scanned, s.firstID), s.nextID, v.ids)
	v.scanned = s.nextID
	return v
}

// evictViewsLocked drops the least recently used views beyond maxViews.
func (s *Store) evictViewsLocked() {
	vs := &s.views
	for len(vs.byKey) > maxViews {
		var oldest string
		for k, v := range vs.byKey {
			if oldest == "" || v.used < vs.byKey[oldest].used {
				oldest = k
			}
		}
		delete(vs.byKey, oldest)
	}
}

// windowLocked fills p with the window q asks for from ids, the view's ids
// ascending.
func (s *Store) windowLocked(ids []uint64, q Query, p *Page) {
	n := len(ids)
	p.Total = n
	start := min(q.Offset, n)
	if q.After != 0 {
		i, found := slices.BinarySearch(ids, q.After)
		if q.OldestFirst {
			if found {
				i++
			}
			start = i // ids[i:] are above After
		} else {
			start = n - i // ids[:i] are below After
		}
	}
	end := min(start+q.Limit, n)
	for pos := start; pos < end; pos++ {
		id := ids[pos]
		if !q.OldestFirst {
			id = ids[n-1-pos]
		}
		p.Entries = append(p.Entries, s.itemLocked(id).entry)
	}
	p.More = end < n
}
