package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// checkColumn checks that the column and the host symbols agree with the
// entries held: every column holds its entry's host, status and priority,
// and the symbols in use are exactly the hosts held, each counted once per
// entry.
func checkColumn(t *testing.T, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if got, want := s.lenLocked(), int(s.nextID-s.firstID); got != want {
		t.Fatalf("%d entries held for ids %d..%d", got, s.firstID, s.nextID-1)
	}
	refs := make(map[uint32]uint32)
	for id := s.firstID; id < s.nextID; id++ {
		e := s.itemLocked(id).entry
		c := *s.colLocked(id)
		if name := s.hosts.names[c.host]; name != e.GetHost() {
			t.Fatalf("id %d: column host %q, entry host %q", id, name, e.GetHost())
		}
		if !c.wide && (int32(c.status) != e.GetStatusCode() || pxperfv1.Priority(c.priority) != e.GetPriority()) {
			t.Fatalf("id %d: column status %d priority %d, entry %d %d", id, c.status, c.priority, e.GetStatusCode(), e.GetPriority())
		}
		refs[c.host]++
	}
	if got, want := s.hosts.live(), len(refs); got != want {
		t.Fatalf("%d live symbols, %d hosts held", got, want)
	}
	for sym, n := range refs {
		if s.hosts.refs[sym] != n {
			t.Fatalf("symbol %d (%q): %d references, %d entries", sym, s.hosts.names[sym], s.hosts.refs[sym], n)
		}
		if s.hosts.ids[s.hosts.names[sym]] != sym {
			t.Fatalf("symbol %d (%q) is not the table's symbol %d for it", sym, s.hosts.names[sym], s.hosts.ids[s.hosts.names[sym]])
		}
	}
	if got, want := len(s.hosts.free)+s.hosts.live(), len(s.hosts.names); got != want {
		t.Fatalf("%d free and %d live symbols, %d names", len(s.hosts.free), s.hosts.live(), want)
	}
}

// randomEntry returns an entry with a host from a small pool or, now and
// then, a new one; a status that is often in a filter's ranges, sometimes
// none, and rarely one that does not fit the column; and a request id that
// may be one of a few, so that PENDING entries get completed.
func randomEntry(rng *rand.Rand, seq int) *pxperfv1.Entry {
	host := fmt.Sprintf("h%d.example.com", rng.IntN(6))
	if rng.IntN(10) == 0 {
		host = fmt.Sprintf("once%d.example.org", seq) // soon evicted, its symbol freed
	}
	e := &pxperfv1.Entry{
		StartTime: timestamppb.Now(),
		Method:    []string{"GET", "POST"}[rng.IntN(2)],
		Url:       "http://" + host + "/p",
	}
	if rng.IntN(3) > 0 {
		e.Host = host // else Normalize derives it from the url
	}
	switch r := rng.IntN(20); {
	case r < 8:
		e.StatusCode = 200
	case r < 12:
		e.StatusCode = 404
	case r < 16:
		e.StatusCode = 503
	case r < 19:
		e.State = pxperfv1.EntryState_ENTRY_STATE_PENDING // status 0
	default:
		e.StatusCode = []int32{70_000, -40_000}[rng.IntN(2)] // wide
		e.Priority = pxperfv1.Priority(300)
	}
	if rng.IntN(2) == 0 {
		e.RequestId = fmt.Sprintf("req%d", rng.IntN(8))
	}
	return e
}

// TestScanAgreesWithMatch checks that every scan of the store gives what
// testing every entry with the whole filter gives, through appends,
// completions that change host and status, evictions by count, bytes and
// pressure, chunks emptied and freed, and the reuse of freed host symbols.
func TestScanAgreesWithMatch(t *testing.T) {
	filters := []struct {
		name string
		f    *pxperfv1.Filter
	}{
		{"host", &pxperfv1.Filter{Host: "h1.example"}},
		{"host glob", &pxperfv1.Filter{Host: "h[2-3].*"}},
		{"host derived from url", &pxperfv1.Filter{Host: "once"}},
		{"status", &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 400, Max: 599}}}},
		{"host and status", &pxperfv1.Filter{Host: "h4", StatusRanges: []*pxperfv1.StatusRange{{Min: 200, Max: 299}}}},
		{"host and method", &pxperfv1.Filter{Host: "h0", Methods: []string{"POST"}}},
		{"errors only", &pxperfv1.Filter{ErrorsOnly: true}},
		{"no host", &pxperfv1.Filter{Host: "nowhere"}},
	}
	type step struct {
		name string
		do   func(s *Store, rng *rand.Rand, seq *int)
	}
	appendN := func(n int) func(*Store, *rand.Rand, *int) {
		return func(s *Store, rng *rand.Rand, seq *int) {
			es := make([]*pxperfv1.Entry, n)
			for i := range es {
				es[i] = randomEntry(rng, *seq)
				*seq++
			}
			s.Append(es)
		}
	}
	steps := []step{
		{"append", appendN(1)},
		{"append batch", appendN(40)},
		{"evict bytes", func(s *Store, rng *rand.Rand, _ *int) { s.EvictBytes(int64(rng.IntN(4000))) }},
		{"pressure", func(s *Store, _ *rand.Rand, _ *int) { s.RelievePressure(1 << 40) }},
		{"shrink", func(s *Store, rng *rand.Rand, _ *int) {
			if err := s.SetConfig(Config{MaxEntries: 20 + rng.IntN(200), MaxMemoryBytes: 30_000 + int64(rng.IntN(60_000))}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			s := mustNew(t, Config{MaxEntries: 150, MaxMemoryBytes: 60_000})
			seq := 0
			for i := range 300 {
				st := steps[0]
				switch r := rng.IntN(40); {
				case r < 24:
				case r < 36:
					st = steps[1]
				default:
					st = steps[2+rng.IntN(len(steps)-2)]
				}
				st.do(s, rng, &seq)
				checkColumn(t, s)
				for _, f := range filters {
					checkScans(t, fmt.Sprintf("step %d (%s), filter %s", i, st.name, f.name), s, f.f)
				}
			}
			if st := s.Stats(); st.EvictedByCount == 0 || st.EvictedByBytes == 0 || st.Completed == 0 {
				t.Errorf("the steps did not cover evictions and completions: %+v", st)
			}
		})
	}
}

// checkScans compares List, ReadFrom, TailStart and ReadUpdates with f split
// for the column against the same calls with f.Match alone, and against
// f.Match applied to every entry held.
func checkScans(t *testing.T, step string, s *Store, pf *pxperfv1.Filter) {
	t.Helper()
	c, err := filter.Compile(pf)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Parts()
	split := Matcher{Host: p.Host, Status: p.Status, Match: p.Rest}
	whole := Matcher{Match: c.Match}

	oldest, next := s.Bounds()
	var want []uint64
	for id := oldest; id < next; id++ {
		e, err := s.Entry(id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Match(e) {
			want = append(want, id)
		}
	}
	n := int(next - oldest)

	for _, key := range []string{"", fmt.Sprint(pf)} { // no view, a kept view
		page := s.List(Query{Match: split, Key: key, OldestFirst: true, Limit: n + 1})
		if got := ids(page.Entries); !slices.Equal(got, want) || page.Total != len(want) {
			t.Fatalf("%s: List(key %q) = %v (total %d), want %v", step, key, got, page.Total, want)
		}
	}
	for _, m := range []Matcher{split, whole} {
		r, err := s.ReadFrom(oldest, Limit{Entries: n + 1}, m, Read{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(r.Entries); !slices.Equal(got, want) {
			t.Fatalf("%s: ReadFrom = %v, want %v", step, got, want)
		}
	}
	for _, tail := range []int{0, 1, 3, len(want), n + 1} {
		gotStart, _ := s.TailStart(tail, split)
		wantStart, _ := s.TailStart(tail, whole)
		if gotStart != wantStart {
			t.Fatalf("%s: TailStart(%d) = %d, with Match alone %d", step, tail, gotStart, wantStart)
		}
	}
	cursor := s.UpdateCursor() - min(s.UpdateCursor(), 64)
	gotU := s.ReadUpdates(cursor, math.MaxUint64, next, Limit{Entries: 1000}, split, nil, nil)
	wantU := s.ReadUpdates(cursor, math.MaxUint64, next, Limit{Entries: 1000}, whole, nil, nil)
	if got, want := ids(gotU.Entries), ids(wantU.Entries); !slices.Equal(got, want) {
		t.Fatalf("%s: ReadUpdates = %v, with Match alone %v", step, got, want)
	}
	for from := oldest; from <= next; from += max(1, uint64(n/5)) {
		for _, threshold := range []pxperfv1.Priority{pxperfv1.Priority_PRIORITY_HIGH, 200} {
			gotFound, gotNext := s.PriorityFrom(from, threshold)
			wantFound, wantNext := false, next
			for id := from; id < next; id++ {
				if e, _ := s.Entry(id); e.GetPriority() >= threshold {
					wantFound, wantNext = true, id+1
					break
				}
			}
			if gotFound != wantFound || gotNext != wantNext {
				t.Fatalf("%s: PriorityFrom(%d, %v) = %v, %d; want %v, %d", step, from, threshold, gotFound, gotNext, wantFound, wantNext)
			}
		}
	}
}

// At scale, List's pass is split across the processors and crosses chunk
// boundaries, with the oldest entry in the middle of a chunk: its views
// must still be exactly the entries the whole filter accepts.
func TestListAgreesWithMatchAtScale(t *testing.T) {
	const held = parallelScan*2 + 1000
	s := mustNew(t, Config{MaxEntries: held, MaxMemoryBytes: 1 << 40})
	rng := rand.New(rand.NewPCG(3, 5))
	// Some entries complete others (randomEntry): append until enough ids
	// were given that the oldest held is inside a chunk.
	for seq := 0; s.Stats().NewestID < held+chunkSize/2; {
		es := make([]*pxperfv1.Entry, 1000)
		for i := range es {
			es[i] = randomEntry(rng, seq)
			seq++
		}
		s.Append(es)
	}
	oldest, next := s.Bounds()
	if int(oldest-1)%chunkSize == 0 {
		t.Fatalf("the oldest entry, %d, starts a chunk; want it inside one", oldest)
	}
	for _, pf := range []*pxperfv1.Filter{
		{Host: "h1.example"},
		{StatusRanges: []*pxperfv1.StatusRange{{Min: 400, Max: 599}}},
		{Host: "h4", Methods: []string{"POST"}},
	} {
		c, err := filter.Compile(pf)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for id := oldest; id < next; id++ {
			if e, _ := s.Entry(id); c.Match(e) {
				want = append(want, id)
			}
		}
		p := c.Parts()
		for _, key := range []string{"", fmt.Sprint(pf)} {
			page := s.List(Query{Match: Matcher{Host: p.Host, Status: p.Status, Match: p.Rest}, Key: key, OldestFirst: true, Limit: len(want) + 1})
			if got := ids(page.Entries); !slices.Equal(got, want) {
				t.Errorf("%v, key %q: List gives %d entries, the filter accepts %d", pf, key, len(got), len(want))
			}
		}
	}
}

// TestHostSymbolsAreBounded appends entries with 100 000 distinct hosts to
// a store that holds 1000: the symbols of evicted hosts must be freed and
// reused, not accumulate.
func TestHostSymbolsAreBounded(t *testing.T) {
	const maxEntries, batch = 1000, 100
	s := mustNew(t, Config{MaxEntries: maxEntries, MaxMemoryBytes: 1 << 30})
	es := make([]*pxperfv1.Entry, 0, batch)
	for i := range 100_000 {
		host := fmt.Sprintf("host%d.example.com", i)
		es = append(es, newEntry("GET", "http://"+host+"/", 200))
		if len(es) == batch {
			s.Append(es)
			es = make([]*pxperfv1.Entry, 0, batch)
		}
	}
	checkColumn(t, s)
	s.mu.RLock()
	live, names, ids := s.hosts.live(), len(s.hosts.names), len(s.hosts.ids)
	s.mu.RUnlock()
	// Append evicts after adding its batch, so up to a batch more than
	// maxEntries hosts were held at once.
	if live > maxEntries || names > maxEntries+batch || ids > maxEntries {
		t.Errorf("after 100000 hosts through a store of %d: %d live symbols, %d in all, %d in the map; want at most %d, %d, %d",
			maxEntries, live, names, ids, maxEntries, maxEntries+batch, maxEntries)
	}
}

// TestCompletionMovesSymbol checks that a completion that keeps the host
// keeps its symbol, and one that changes it moves the entry to the new
// host's symbol and frees the old one.
func TestCompletionMovesSymbol(t *testing.T) {
	pending := func(host string) *pxperfv1.Entry {
		e := newEntry("GET", "http://"+host+"/", 0)
		e.RequestId, e.State = "r", pxperfv1.EntryState_ENTRY_STATE_PENDING
		return e
	}
	done := func(host string, code int32) *pxperfv1.Entry {
		e := newEntry("GET", "http://"+host+"/", code)
		e.RequestId = "r"
		return e
	}
	onlyHost := func(host string) Matcher {
		return Matcher{Host: func(h string) bool { return h == host }}
	}
	tests := []struct {
		name    string
		entries []*pxperfv1.Entry
		host    string // the host of entry 1 at the end
		live    int
	}{
		{"same host", []*pxperfv1.Entry{pending("a.test"), done("a.test", 200)}, "a.test", 1},
		{"new host", []*pxperfv1.Entry{pending("a.test"), done("b.test", 502)}, "b.test", 1},
		{"host of another entry", []*pxperfv1.Entry{pending("a.test"), newEntry("GET", "http://b.test/", 200), done("b.test", 200)}, "b.test", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
			for _, e := range tt.entries {
				s.Append([]*pxperfv1.Entry{e})
			}
			checkColumn(t, s)
			if got := s.hosts.live(); got != tt.live {
				t.Errorf("%d live symbols, want %d", got, tt.live)
			}
			if p := s.List(Query{Match: onlyHost(tt.host), Limit: 10, OldestFirst: true}); len(p.Entries) == 0 || p.Entries[0].GetId() != 1 {
				t.Errorf("List(host %s) = %v, want entry 1 first", tt.host, ids(p.Entries))
			}
		})
	}
}
