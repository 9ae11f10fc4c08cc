package store

import (
	"fmt"
	"math"
	"strings"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// col is what scans test of an entry before they look at the entry itself:
// 8 bytes, kept beside the entry's item (see seq). A filtered pass over a
// million entries then reads 8 MB in order instead of missing the cache
// once per entry on its way to the message.
type col struct {
	host     uint32 // Entry.host, as a symbol of Store.hosts
	status   int16  // Entry.status_code, unless wide
	priority uint8  // Entry.priority, unless wide
	// wide reports that status_code or priority did not fit (the service
	// refuses such entries, the store does not): the scans then read them
	// from the entry.
	wide bool
}

// colForLocked makes the column of e, interning its host. The caller
// releases the host with s.hosts.release when the entry goes.
func (s *Store) colForLocked(e *pxperfv1.Entry) col {
	c := col{host: s.hosts.intern(e.GetHost())}
	code, prio := e.GetStatusCode(), int32(e.GetPriority())
	if code < math.MinInt16 || code > math.MaxInt16 || prio < 0 || prio > math.MaxUint8 {
		c.wide = true
		return c
	}
	c.status, c.priority = int16(code), uint8(prio)
	return c
}

// symbols interns the hosts of held entries: each distinct host gets a
// small number, its symbol, for as long as some held entry has it. The
// table holds no more symbols than there are distinct hosts held, plus the
// free symbols left by hosts that went, which are reused first: it never
// grows beyond the most distinct hosts held at once.
//
// The zero value is an empty table. It is not safe for concurrent use: the
// store changes it under its write lock and reads it under its read lock.
type symbols struct {
	ids   map[string]uint32 // host → symbol, for live symbols only
	names []string          // by symbol; "" when free
	refs  []uint32          // held entries per symbol; 0 when free
	free  []uint32          // free symbols, reused last in first out
}

// intern returns the symbol of host, counting one more reference to it.
func (t *symbols) intern(host string) uint32 {
	if sym, ok := t.ids[host]; ok {
		t.refs[sym]++
		return sym
	}
	if t.ids == nil {
		t.ids = make(map[string]uint32)
	}
	// A copy: host may be a substring of the entry's url (see Normalize),
	// which the table would otherwise keep alive after the entry went.
	host = strings.Clone(host)
	var sym uint32
	if n := len(t.free); n > 0 {
		sym, t.free = t.free[n-1], t.free[:n-1]
		t.names[sym], t.refs[sym] = host, 1
	} else {
		sym = uint32(len(t.names))
		t.names = append(t.names, host)
		t.refs = append(t.refs, 1)
	}
	t.ids[host] = sym
	return sym
}

// release drops one reference to sym, freeing it with the last. Releasing
// a free symbol is a bug in the store: it panics rather than wrap the
// count and leak the symbol.
func (t *symbols) release(sym uint32) {
	if t.refs[sym] == 0 {
		panic(fmt.Sprintf("store: host symbol %d released more often than interned", sym))
	}
	if t.refs[sym]--; t.refs[sym] > 0 {
		return
	}
	delete(t.ids, t.names[sym])
	t.names[sym] = ""
	t.free = append(t.free, sym)
}

// live returns the number of symbols in use.
func (t *symbols) live() int { return len(t.ids) }

// scan applies a [Matcher] to held entries, testing the column first so
// that an entry the column rules out is never read. It lives for one pass
// under the store's read lock, during which the column and the symbols do
// not change, and it is not modified once made: the goroutines of a split
// pass share it.
type scan struct {
	s *Store
	m Matcher
	// hosts holds Host's verdict on each symbol, when the pass is long
	// enough to be worth it (see scanLocked), so that Host runs once per
	// distinct host rather than once per entry; else nil, and Host is
	// called for each entry, on the interned host.
	hosts []bool
}

// scanLocked returns a scan of m for a pass that examines at most n ids.
// It tests every symbol's host at once when n is at least the number of
// symbols, which bounds that work by the pass's. The caller holds s.mu.
func (s *Store) scanLocked(m Matcher, n int) *scan {
	sc := &scan{s: s, m: m}
	if t := &s.hosts; m.Host != nil && n >= len(t.names) {
		sc.hosts = make([]bool, len(t.names))
		for sym, name := range t.names {
			sc.hosts[sym] = t.refs[sym] > 0 && m.Host(name)
		}
	}
	return sc
}

// match reports whether the entry with id, which must be held, is
// selected.
func (sc *scan) match(id uint64) bool {
	return sc.selects(sc.s.itemLocked(id), *sc.s.colLocked(id))
}

// selects reports whether the entry of it, whose column is c, is
// selected. It reads the entry only when the column cannot decide.
func (sc *scan) selects(it *item, c col) bool {
	if sc.m.Host != nil {
		if sc.hosts != nil {
			if !sc.hosts[c.host] {
				return false
			}
		} else if !sc.m.Host(sc.s.hosts.names[c.host]) {
			return false
		}
	}
	if sc.m.Status != nil {
		code := int32(c.status)
		if c.wide {
			code = it.entry.GetStatusCode()
		}
		if !sc.m.Status(code) {
			return false
		}
	}
	return sc.m.rest(it.entry, it.bodies.request, it.bodies.response)
}

// matching appends to dst the ids from first to end (exclusive), all
// held, that are selected, ascending.
func (sc *scan) matching(first, end uint64, dst []uint64) []uint64 {
	lo := int(first - sc.s.firstID)
	sc.s.entries.segments(lo, lo+int(end-first), func(p int, sg segment) {
		id := sc.s.firstID + uint64(p)
		for j, c := range sg.cols {
			if sc.selects(&sg.items[j], c) {
				dst = append(dst, id+uint64(j))
			}
		}
	})
	return dst
}
