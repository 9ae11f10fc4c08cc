package store

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Matcher selects entries: an entry is selected when it passes every test
// that is not nil. The zero value selects all.
//
// Host and Status test single fields that the store keeps in a compact
// column beside each entry: a scan applies them first, without reading the
// entry, and evaluates Host once per distinct host rather than once per
// entry. Only entries that pass them are read, for Match. So a filter on
// the host or the status alone costs a pass over the column. Match may
// repeat the tests of Host and Status, to no effect but time.
//
// The functions must give the same answer for the same argument, and must
// be safe for concurrent use: a scan of a large store runs on several
// goroutines. [github.com/pxperf/pxperf/perf/filter.Filter.Parts] provides
// them all.
type Matcher struct {
	// Host tests Entry.host; nil accepts every host.
	Host func(host string) bool
	// Status tests Entry.status_code; nil accepts every code.
	Status func(code int32) bool
	// Match tests the whole entry; nil accepts every entry.
	Match func(*pxperfv1.Entry) bool
	// Bodies tests the whole entry with the data of its request and
	// response bodies, which the store holds apart from the entry (nil
	// when it has none); nil accepts every entry. A filter that reads
	// the bodies sets it in place of Match.
	Bodies func(e *pxperfv1.Entry, request, response []byte) bool
}

// All reports whether m selects every entry.
func (m Matcher) All() bool {
	return m.Host == nil && m.Status == nil && m.Match == nil && m.Bodies == nil
}

// Selects reports whether m selects e, which carries its bodies. It reads
// the entry; the store's scans test the column first.
func (m Matcher) Selects(e *pxperfv1.Entry) bool {
	return m.selects(e, e.GetRequestBody().GetData(), e.GetResponseBody().GetData())
}

// selects reports whether m selects e, whose bodies are given apart.
func (m Matcher) selects(e *pxperfv1.Entry, request, response []byte) bool {
	return (m.Host == nil || m.Host(e.GetHost())) &&
		(m.Status == nil || m.Status(e.GetStatusCode())) &&
		m.rest(e, request, response)
}

// rest applies Match and Bodies.
func (m Matcher) rest(e *pxperfv1.Entry, request, response []byte) bool {
	return (m.Match == nil || m.Match(e)) &&
		(m.Bodies == nil || m.Bodies(e, request, response))
}

// maxScan bounds the ids one call examines with a filter, so that a reader
// with a selective filter does not hold the lock across the whole store.
const maxScan = 4096

// Read is the result of [Store.ReadFrom].
type Read struct {
	// Entries that matched, in id order, without bodies; empty when the
	// read's Limit.RunsOnly asked for Runs alone.
	Entries []*pxperfv1.Entry
	// Fields holds each entry's encoding as [Config].Encoder frames it,
	// made once per entry and shared by all readers:
	// Fields[i] encodes Entries[i]. Not to be modified.
	Fields [][]byte
	// Runs is Fields joined wherever consecutive fields lie next to each
	// other in the buffer they were encoded into: the same bytes in a few
	// slices, which a sender of all of Entries can pass on without copying
	// (entries first read together are encoded together). Not to be
	// modified.
	Runs [][]byte
	// Next is the cursor to read from next time: one past the last id
	// returned or passed over, or, when the read stopped at its byte bound,
	// the id of the entry that did not fit.
	Next uint64
	// GapFirst and GapLast are the ids the cursor skipped because they were
	// evicted; both zero when nothing was skipped.
	GapFirst, GapLast uint64
	// Newest is the newest id assigned when the read was made.
	Newest uint64
	// Count is the number of entries read: len(Entries), unless the
	// read's Limit.RunsOnly left Entries empty.
	Count int
	// UpdateCursor is [Store.UpdateCursor] when the read was made: a
	// completion from it on came after the read, and may be of an entry
	// read in its earlier state.
	UpdateCursor uint64
	// Bytes is what the read's [Limit] counted of the entries read.
	Bytes int
	// Full reports that the read stopped at its Limit.Bytes: the entry
	// after the last returned did not fit.
	Full bool
}

// Limit bounds what one read returns.
type Limit struct {
	// Entries is the most entries returned.
	Entries int
	// Bytes, when positive, bounds the bytes of the entries returned: their
	// encodings (their [Read.Fields]), and the data of their bodies,
	// response and request, when Bodies is set, each counted as
	// [BodyBytes] gives. A read with Used zero returns at least one entry
	// whatever its size, so that a reader always moves on. Zero means no
	// bound.
	Bytes int
	// Used is what the caller already holds against Bytes, from an earlier
	// read for the same message: with Used, the first entry must fit too.
	Used int
	// Bodies counts each entry's bodies towards Bytes, for a reader that
	// sends entries with their bodies.
	Bodies bool
	// RunsOnly leaves Entries and Fields empty: the read gives Runs and
	// Count, all that a sender of the encodings needs, without a step per
	// entry for the other two.
	RunsOnly bool
}

// BodyBytes is what a body of n bytes adds to an entry's encoding, at most:
// the bytes, their field's tag and length, and the growth of the length
// prefixes of the Body message and of the entry. [Limit.Bytes] counts
// bodies so.
func BodyBytes(n int) int {
	if n == 0 {
		return 0
	}
	return n + 16
}

// fits reports whether an entry of size bytes may join a read that holds
// n entries of used bytes.
func (l Limit) fits(n, used, size int) bool {
	return l.Bytes <= 0 || l.Used+used+size <= l.Bytes || (n == 0 && l.Used == 0)
}

// size is what lim counts for the entry whose encoding is f.
func (l Limit) size(f []byte, it *item) int {
	if l.Bodies {
		return len(f) + BodyBytes(len(it.bodies.response)) + BodyBytes(len(it.bodies.request))
	}
	return len(f)
}

// ReadFrom returns the entries matching m with ids from next on, up to
// lim, examining a bounded number of ids. A cursor older than the oldest
// entry held skips to it and reports the gap. A cursor beyond the next id
// to be assigned is an error wrapping [ErrFuture]. The slices of reuse, a
// previous result that the caller is done with (or the zero Read), are
// reused.
func (s *Store) ReadFrom(next uint64, lim Limit, m Matcher, reuse Read) (Read, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := Read{Entries: reuse.Entries[:0], Fields: reuse.Fields[:0], Runs: reuse.Runs[:0], Newest: s.nextID - 1, UpdateCursor: s.updateNext}
	if next > s.nextID {
		return r, fmt.Errorf("%w: id %d is beyond the next id %d", ErrFuture, next, s.nextID)
	}
	if next < s.firstID {
		r.GapFirst, r.GapLast = next, s.firstID-1
		next = s.firstID
	}
	if m.All() {
		end := next
		if lim.Entries > 0 {
			end = min(s.nextID, next+uint64(lim.Entries))
		}
		s.readAllLocked(&r, next, end, lim)
		return r, nil
	}
	end := min(s.nextID, next+maxScan)
	sc := s.scanLocked(m, int(end-next))
	id := next
	for ; id < end && r.Count < lim.Entries; id++ {
		if !sc.match(id) {
			continue
		}
		it := s.itemLocked(id)
		f := s.fieldLocked(id)
		size := lim.size(f, it)
		if r.Full = !lim.fits(r.Count, r.Bytes, size); r.Full {
			break
		}
		r.add(it.entry, f, size, lim.RunsOnly)
	}
	r.Next = id
	capRuns(r.Runs)
	return r, nil
}

// add adds an entry read, its field and the bytes its Limit counted for
// it; with runsOnly, to Runs alone.
func (r *Read) add(e *pxperfv1.Entry, f []byte, size int, runsOnly bool) {
	if !runsOnly {
		r.Entries = append(r.Entries, e)
		r.Fields = append(r.Fields, f[:len(f):len(f)])
	}
	r.Runs = joinRun(r.Runs, f)
	r.Count++
	r.Bytes += size
}

// readAllLocked reads the entries from next to end (exclusive), all held,
// into r, up to lim's bytes, for [Store.ReadFrom] without a filter: every id
// read is sent, so the entries are encoded as runs, which a sender can pass
// on without copying. The loop runs a chunk at a time, over the items and
// encodings side by side, as it does for every entry of every subscriber's
// read.
func (s *Store) readAllLocked(r *Read, next, end uint64, lim Limit) {
	s.encodeRunLocked(next, end)
	if lim.RunsOnly && !lim.Bodies {
		s.readRunsLocked(r, next, end, lim)
		return
	}
	lo := int(next - s.firstID)
	s.entries.segments(lo, lo+int(end-next), func(_ int, sg segment) {
		for j := 0; j < len(sg.items) && !r.Full; j++ {
			f := sg.wires[j].get()
			size := lim.size(f, &sg.items[j])
			if r.Full = !lim.fits(r.Count, r.Bytes, size); !r.Full {
				r.add(sg.items[j].entry, f, size, lim.RunsOnly)
			}
		}
	})
	r.Next = next + uint64(r.Count)
	capRuns(r.Runs)
}

// readRunsLocked is readAllLocked for a reader of Runs alone, bodies not
// counted: it passes on each run of entries encoded together (see
// encodedRun) as one slice, in a step per run rather than per entry, and
// finds where the byte limit falls in a run by bisection. The entries from
// next to end are all held and encoded.
func (s *Store) readRunsLocked(r *Read, next, end uint64, lim Limit) {
	id := next
	for id < end && !r.Full {
		w := s.wireLocked(id)
		f := w.get()
		if run := w.run; run != nil && !run.broken && run.end > id+1 {
			// span is the bytes of the fields from id to id+n-1, which lie
			// one after another from f on.
			span := func(n int) int {
				g := s.wireLocked(id + uint64(n) - 1).get()
				return cap(f) - cap(g) + len(g)
			}
			n := int(min(run.end, end) - id)
			if lim.Bytes > 0 {
				left := lim.Bytes - lim.Used - r.Bytes
				if span(n) > left {
					// The most entries that fit; none leaves id to the
					// step below, which takes one entry whatever its size.
					n = sort.Search(n, func(i int) bool { return span(i+1) > left })
				}
			}
			if n > 0 {
				b := span(n)
				r.Runs = joinRun(r.Runs, f[:b])
				r.Count += n
				r.Bytes += b
				id += uint64(n)
				continue
			}
		}
		if r.Full = !lim.fits(r.Count, r.Bytes, len(f)); !r.Full {
			r.add(nil, f, len(f), true)
			id++
		}
	}
	r.Next = id
	capRuns(r.Runs)
}

// capRuns caps each run at its length: slices given out of the store
// must not let a caller append into a neighbour's encoding.
func capRuns(runs [][]byte) {
	for i, run := range runs {
		runs[i] = run[:len(run):len(run)]
	}
}

// Matching appends to dst the ids from from on that m selects, examining
// at most maxScan ids, and returns them with first, the first id examined
// (from, or the oldest held when from has left memory), and next, the id
// after the last one examined: a reader that keeps up with new entries
// calls it again from next. A cursor beyond the next id to be assigned
// examines nothing.
func (s *Store) Matching(from uint64, m Matcher, dst []uint64) (ids []uint64, first, next uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	first = max(from, s.firstID)
	if first >= s.nextID {
		return dst, first, max(first, from)
	}
	end := min(s.nextID, first+maxScan)
	return s.scanLocked(m, int(end-first)).matching(first, end, dst), first, end
}

// UpdatesMatching reports whether a completion from the update cursor
// since on (see [Store.ReadUpdates]) is of an entry still held that m
// selects in its latest state, or was lost to the cursor falling behind,
// and returns the update cursor after the last one examined.
func (s *Store) UpdatesMatching(since uint64, m Matcher) (found bool, next uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if oldest := s.updateNext - min(s.updateNext, uint64(len(s.updates))); since < oldest {
		return true, s.updateNext
	}
	sc := s.scanLocked(m, int(s.updateNext-since))
	for seq := since; seq < s.updateNext; seq++ {
		id := s.updates[seq%uint64(len(s.updates))]
		if s.heldLocked(id) && sc.match(id) {
			return true, s.updateNext
		}
	}
	return false, max(since, s.updateNext)
}

// TailStart returns the id from which the last n entries matching m start,
// or the oldest id held when fewer match, and the next id to be assigned
// (where the tail ends).
func (s *Store) TailStart(n int, m Matcher) (start, end uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	start, end = s.nextID, s.nextID
	// The tail may be found after a few ids: do not let many distinct
	// hosts make the scan test them all up front.
	sc := s.scanLocked(m, min(s.lenLocked(), maxScan))
	for found := 0; found < n && start > s.firstID; {
		start--
		if sc.match(start) {
			found++
		}
	}
	return start, end
}

// Query selects a window of the filtered view for [Store.List].
type Query struct {
	// Match selects the view; nil selects all entries.
	Match Matcher
	// OldestFirst orders the view by ascending id; the default is newest
	// first.
	OldestFirst bool
	// Offset skips this many entries of the view, in its order. Ignored when
	// After is set.
	Offset int
	// After, when not zero, starts the window right after this id in the
	// view's order (for page tokens); the window holds entries with smaller
	// ids when newest first, larger when oldest first.
	After uint64
	// Limit is the most entries returned. Required: at least 1.
	Limit int
	// Key, when not empty, names Match so that the store can keep the view
	// it selects between calls and bring it up to date incrementally: a UI
	// scrolling through a filtered view pays the full pass once. Queries with
	// the same Key must have equivalent matchers (the service uses the
	// filter's deterministic encoding).
	Key string
}

// Page is a window of a view.
type Page struct {
	// Entries of the window, in the view's order, without bodies.
	Entries []*pxperfv1.Entry
	// Total is the number of entries in the whole view.
	Total int
	// More reports whether the view has entries after the window.
	More bool
	// OldestID and NewestID are the ids held; both zero when empty.
	OldestID, NewestID uint64
}

// List returns a window of the view of held entries selected by q. Without
// a matcher the window is found in O(Limit); with one, the view is counted
// in one pass over the held entries (split across the processors when the
// store is large), or, with a Key, brought up to date from the last call
// with that key in O(new entries + completions).
func (s *Store) List(q Query) Page {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var p Page
	n := s.lenLocked()
	if n == 0 {
		return p
	}
	p.OldestID, p.NewestID = s.firstID, s.nextID-1
	if !q.Match.All() {
		if q.Key == "" {
			s.windowLocked(s.matchingLocked(q.Match, s.firstID, s.nextID, nil), q, &p)
			return p
		}
		s.views.mu.Lock()
		defer s.views.mu.Unlock()
		s.windowLocked(s.viewLocked(q.Key, q.Match).ids, q, &p)
		return p
	}

	// Without a matcher, window positions map straight to ids.
	at := func(pos int) *pxperfv1.Entry {
		if q.OldestFirst {
			return s.entries.item(pos).entry
		}
		return s.entries.item(n - 1 - pos).entry
	}
	start := min(q.Offset, n)
	if q.After != 0 {
		start = 0
		switch {
		case q.OldestFirst && q.After >= s.firstID:
			start = int(min(q.After-s.firstID+1, uint64(n)))
		case !q.OldestFirst && q.After < s.nextID:
			start = n - int(max(q.After, s.firstID)-s.firstID)
		}
	}
	p.Total = n
	end := min(start+q.Limit, n)
	for pos := start; pos < end; pos++ {
		p.Entries = append(p.Entries, at(pos))
	}
	p.More = end < n
	return p
}

// parallelScan is the number of held entries above which matchingLocked
// splits its pass across the processors: the entries that pass the column
// are bound by memory latency (one cache miss each), which more cores hide.
const parallelScan = 64 << 10

// matchingLocked appends to dst the ids from first to end (exclusive),
// all held, whose entries match m, ascending. The caller holds s.mu.
func (s *Store) matchingLocked(m Matcher, first, end uint64, dst []uint64) []uint64 {
	n := int(end - first)
	sc := s.scanLocked(m, n)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/parallelScan))
	if workers == 1 {
		return sc.matching(first, end, dst)
	}
	parts := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := first+uint64(n*w/workers), first+uint64(n*(w+1)/workers)
		wg.Go(func() { parts[w] = sc.matching(lo, hi, nil) })
	}
	wg.Wait()
	total := 0
	for _, ids := range parts {
		total += len(ids)
	}
	dst = slices.Grow(dst, total)
	for _, ids := range parts {
		dst = append(dst, ids...)
	}
	return dst
}

// updateLog is how many completions the store remembers for
// [Store.ReadUpdates]: 64 Ki ids, 512 KiB.
const updateLog = 1 << 16

// Updates is the result of [Store.ReadUpdates].
type Updates struct {
	// Entries that changed, in their latest state, in the order they
	// changed, without bodies.
	Entries []*pxperfv1.Entry
	// Fields holds each entry's encoding, as [Read.Fields] does.
	Fields [][]byte
	// Next is the update cursor to read from next time.
	Next uint64
	// Lost counts updates the cursor fell too far behind to see.
	Lost uint64
	// Bytes is what the read's [Limit] counted of Entries.
	Bytes int
	// Full reports that the read stopped at its Limit.Bytes: the update
	// at Next did not fit.
	Full bool
}

// UpdateCursor returns the cursor of the next update, from which a new
// reader of [Store.ReadUpdates] starts.
func (s *Store) UpdateCursor() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.updateNext
}

// ReadUpdates returns the entries completed (see [Store.Append]) from the
// update cursor since until the cursor until, up to lim, that have ids
// below below (those a subscriber's cursor has passed; it reads the others
// in their latest state anyway), are still held and match m. An update
// that does not fit in lim is left for the next read: Next stops before
// it. A subscriber passes the [Read.UpdateCursor] of the read that moved
// its cursor to below: a completion after that read, of an entry the read
// returned in its earlier state, is left for the next time.
func (s *Store) ReadUpdates(since, until, below uint64, lim Limit, m Matcher, dst []*pxperfv1.Entry, wdst [][]byte) Updates {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := Updates{Entries: dst[:0], Fields: wdst[:0]}
	if oldest := s.updateNext - min(s.updateNext, uint64(len(s.updates))); since < oldest {
		u.Lost, since = oldest-since, oldest
	}
	until = min(until, s.updateNext)
	seq := since
	for ; seq < until && len(u.Entries) < lim.Entries; seq++ {
		id := s.updates[seq%uint64(len(s.updates))]
		if id >= below || !s.heldLocked(id) {
			continue
		}
		if it := s.itemLocked(id); it.selectedBy(m) {
			f := s.fieldLocked(id)
			size := lim.size(f, it)
			if u.Full = !lim.fits(len(u.Entries), u.Bytes, size); u.Full {
				break
			}
			u.Entries = append(u.Entries, it.entry)
			u.Fields = append(u.Fields, f[:len(f):len(f)])
			u.Bytes += size
		}
	}
	u.Next = seq
	return u
}

// PriorityFrom reports whether an entry held with an id from from on has a
// priority at or above threshold, and returns the id after the last one it
// looked at. A subscriber waiting for its batch to fill uses it to look at
// new entries only, instead of reading the batch again.
func (s *Store) PriorityFrom(from uint64, threshold pxperfv1.Priority) (found bool, next uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.priorityLocked(from, s.nextID, threshold)
}

// PriorityIn reports whether an entry held with an id from from to end
// (exclusive) has a priority at or above threshold: for a reader of runs
// alone (see [Limit.RunsOnly]), which has no entries to look at.
func (s *Store) PriorityIn(from, end uint64, threshold pxperfv1.Priority) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	found, _ := s.priorityLocked(from, min(end, s.nextID), threshold)
	return found
}

// priorityLocked is PriorityFrom's search, from from to end (exclusive, at
// most s.nextID), in the column.
func (s *Store) priorityLocked(from, end uint64, threshold pxperfv1.Priority) (found bool, next uint64) {
	for id := max(from, s.firstID); id < end; id++ {
		c := s.colLocked(id)
		prio := pxperfv1.Priority(c.priority)
		if c.wide {
			prio = s.itemLocked(id).entry.GetPriority()
		}
		if prio >= threshold {
			return true, id + 1
		}
	}
	return false, end
}
