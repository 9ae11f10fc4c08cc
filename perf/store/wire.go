package store

import (
	"sync/atomic"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Encoder makes the encoding the store caches of each entry, which
// [Read.Fields] and [Store.Fields] give out: the entry framed as one field
// of the message it is sent in, so that entries encoded one after another
// are sent as they are. The store never looks inside those bytes.
// Package wire's Encoder is the one pxperf uses. An Encoder must be safe
// for concurrent use.
type Encoder interface {
	// FieldSize returns the size in bytes of e's field.
	FieldSize(e *pxperfv1.Entry) int
	// AppendField appends e's field, of size bytes, to b and returns the
	// extended slice. size is what FieldSize returned for e, which has not
	// changed since.
	AppendField(b []byte, e *pxperfv1.Entry, size int) []byte
}

// FieldSize is the size of e's encoding as the store caches it (see
// [Config].Encoder), for a reader that sends e beside cached encodings.
func (s *Store) FieldSize(e *pxperfv1.Entry) int { return s.encoder.FieldSize(e) }

// wireSlot holds an entry's encoding (without its bodies' data), as
// [Config].Encoder frames it, made on first use and shared by every reader
// after: each entry is encoded once however many subscribers send it.
// Slots lie in their chunk beside the items, so that a reader of many
// entries finds their encodings one after another rather than each behind
// its own pointers.
//
// field and run are written once, by encodeRunLocked under Store.encoding,
// before made is set; readers holding s.mu for reading see them once they
// see made. Only a holder of s.mu for writing clears a slot.
type wireSlot struct {
	field []byte
	run   *encodedRun // the run the field was encoded in; nil for a run of one
	made  atomic.Bool
}

// encodedRun is a run of consecutive entries that encodeRunLocked encoded
// together: their fields lie one after another in one buffer, in id order,
// so that a reader of all of them can pass the run on as one slice without
// a step per entry (see readRunsLocked).
type encodedRun struct {
	end uint64 // one past the run's last id
	// broken is set when an entry of the run is completed: its new
	// encoding lies elsewhere, and the run's bytes are no longer all the
	// entries' latest. Written under Store.mu held for writing, read under
	// it held for reading.
	broken bool
}

// get returns the cached field, or nil when no reader has made it yet.
func (w *wireSlot) get() []byte {
	if w.made.Load() {
		return w.field
	}
	return nil
}

// set caches f, encoded in run. Only encodeRunLocked calls it, under
// Store.encoding, for an entry it found without a field: nobody else sets
// one meanwhile.
func (w *wireSlot) set(f []byte, run *encodedRun) {
	w.field, w.run = f, run
	w.made.Store(true)
}

// reset empties the slot, for an entry replaced or dropped. A replaced
// entry breaks the run it was encoded in. The caller holds Store.mu for
// writing.
func (w *wireSlot) reset(replaced bool) {
	if replaced && w.run != nil {
		w.run.broken = true
	}
	w.made.Store(false)
	w.field, w.run = nil, nil
}

// wireLocked returns the encoding slot of the entry with id, which must be
// held.
func (s *Store) wireLocked(id uint64) *wireSlot {
	return s.entries.wire(int(id - s.firstID))
}

// fieldLocked returns the cached field of the item with id, making it if
// no reader has yet. The caller holds s.mu, at least for reading.
func (s *Store) fieldLocked(id uint64) []byte {
	if f := s.wireLocked(id).get(); f != nil {
		return f
	}
	s.encodeRunLocked(id, id+1)
	return s.wireLocked(id).get()
}

// Fields appends to dst the cached encoding of each of es, as
// [Read.Fields] gives them, making those not made yet: the entries of a
// window that [Store.List] returned, say, so that a response can be sent
// from the cache. An entry that is not the one the store holds under its
// id (evicted since, or a copy, such as one carrying its body) gets nil.
func (s *Store) Fields(es []*pxperfv1.Entry, dst [][]byte) [][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(es) == 0 {
		return dst
	}
	lo, hi := es[0].GetId(), es[0].GetId()
	for _, e := range es {
		lo, hi = min(lo, e.GetId()), max(hi, e.GetId())
	}
	if lo >= s.firstID && hi < s.nextID && hi-lo+1 == uint64(len(es)) {
		s.encodeRunLocked(lo, hi+1) // a window without a filter: one buffer
	}
	for _, e := range es {
		id := e.GetId()
		if !s.heldLocked(id) || s.itemLocked(id).entry != e {
			dst = append(dst, nil)
			continue
		}
		f := s.fieldLocked(id)
		dst = append(dst, f[:len(f):len(f)])
	}
	return dst
}

// encodeRunLocked makes the missing fields of the items with ids from first
// to end (exclusive), all held, in one buffer per run of consecutive
// items that lack theirs. Fields encoded together are adjacent in that
// buffer, and each keeps the capacity up to the end of it, so that a read
// can join them again (see [Read.Runs]) and a sender pass a run of entries
// on as one slice, without copying it. The caller holds s.mu, at least for reading, so
// stored entries do not change meanwhile.
//
// Encoding is serialised by s.encoding: subscribers woken by the same
// append would otherwise each encode the same entries, and keep several
// part-used buffers alive. Reads that find every field made do not wait.
func (s *Store) encodeRunLocked(first, end uint64) {
	id := s.firstUnmadeLocked(first, end)
	if id == end {
		return
	}
	s.encoding.Lock()
	defer s.encoding.Unlock()
	for id < end {
		if s.wireLocked(id).get() != nil {
			id++
			continue
		}
		run := id
		var sizes []encodedSize
		total := 0
		for ; id < end && s.wireLocked(id).get() == nil; id++ {
			n := s.encoder.FieldSize(s.itemLocked(id).entry)
			sizes = append(sizes, encodedSize{n: n})
			total += n
		}
		buf := make([]byte, 0, total)
		for i, sz := range sizes {
			e := s.itemLocked(run + uint64(i)).entry
			sizes[i].start = len(buf)
			buf = s.encoder.AppendField(buf, e, sz.n)
		}
		// Set once the buffer is whole, so that every field lies in its
		// final array, and last to first: a reader that sees a run's field
		// made knows that the run's later fields are too.
		var desc *encodedRun
		if len(sizes) > 1 {
			desc = &encodedRun{end: id}
		}
		stop := len(buf) // where field i ends
		for i := len(sizes) - 1; i >= 0; i-- {
			start := sizes[i].start
			s.wireLocked(run+uint64(i)).set(buf[start:stop:cap(buf)], desc)
			stop = start
		}
	}
}

// firstUnmadeLocked returns the first id from first to end (exclusive), all
// held, whose field is not made yet, or end when all are. It steps over a
// run whose first field it finds made at once: encodeRunLocked makes a
// run's fields last to first.
func (s *Store) firstUnmadeLocked(first, end uint64) uint64 {
	for id := first; id < end; {
		w := s.wireLocked(id)
		if !w.made.Load() {
			return id
		}
		if run := w.run; run != nil && !run.broken && run.end > id+1 {
			id = run.end
		} else {
			id++
		}
	}
	return end
}

// encodedSize is the size of an entry's field, and where it starts in its
// buffer once encoded.
type encodedSize struct {
	n     int
	start int
}

// joinRun appends field, as the cache holds it, to runs: onto the last
// run when field lies right after it in the same buffer, else as a new run.
// The cache's fields keep the capacity up to the end of their buffer, which
// is what makes the join safe: it extends a slice within its own
// allocation. Slices given out of the store are capped at their length, so
// that no caller can append into a neighbour's encoding.
func joinRun(runs [][]byte, field []byte) [][]byte {
	if n := len(runs); n > 0 && adjacent(runs[n-1], field) {
		runs[n-1] = runs[n-1][:len(runs[n-1])+len(field)]
		return runs
	}
	return append(runs, field)
}

// adjacent reports whether b starts right where a ends, in a's backing
// array.
func adjacent(a, b []byte) bool {
	return len(b) > 0 && cap(a)-len(a) >= len(b) && &a[:len(a)+1][len(a)] == &b[0]
}
