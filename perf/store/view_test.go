package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// A cached view (Query.Key) answers exactly as a full pass does, through
// appends, evictions and completions that change what matches.
func TestCachedViewMatchesFullPass(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := mustNew(t, Config{MaxEntries: 300, MaxMemoryBytes: 1 << 30})
	serverErrors := Matcher{Match: func(e *pxperfv1.Entry) bool { return e.GetStatusCode() >= 500 }}
	nextReq := 0
	var pending []string
	for step := range 400 {
		var batch []*pxperfv1.Entry
		for range rng.IntN(20) {
			switch {
			case len(pending) > 0 && rng.IntN(3) == 0:
				// Complete a pending request, often as a server error.
				i := rng.IntN(len(pending))
				e := newEntry("GET", "http://example.com/", int32(200+100*rng.IntN(4)))
				e.RequestId = pending[i]
				pending = slices.Delete(pending, i, i+1)
				batch = append(batch, e)
			case rng.IntN(4) == 0:
				nextReq++
				id := fmt.Sprint(nextReq)
				pending = append(pending, id)
				batch = append(batch, pendingEntry(id, "http://example.com/"))
			default:
				batch = append(batch, newEntry("GET", "http://example.com/", int32(200+100*rng.IntN(4))))
			}
		}
		s.Append(batch)
		if step%50 == 49 {
			// Shrink and grow again: evicts a block at once.
			s.SetConfig(Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30})
			s.SetConfig(Config{MaxEntries: 300, MaxMemoryBytes: 1 << 30})
		}
		oldest, next := s.Bounds()
		for _, q := range []Query{
			{Limit: 10},
			{Limit: 7, Offset: rng.IntN(40)},
			{Limit: 5, OldestFirst: true, Offset: rng.IntN(40)},
			{Limit: 5, After: oldest + uint64(rng.IntN(int(next-oldest)+1))},
			{Limit: 5, OldestFirst: true, After: oldest + uint64(rng.IntN(int(next-oldest)+1))},
		} {
			q.Match = serverErrors
			want := s.List(q)
			q.Key = "5xx"
			got := s.List(q)
			if fmt.Sprint(ids(got.Entries), got.Total, got.More) != fmt.Sprint(ids(want.Entries), want.Total, want.More) {
				t.Fatalf("step %d, query %+v: cached %v total %d more %v; full pass %v total %d more %v",
					step, q, ids(got.Entries), got.Total, got.More, ids(want.Entries), want.Total, want.More)
			}
		}
	}
}

func TestViewsAreBounded(t *testing.T) {
	s := mustNew(t, Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30})
	s.Append(entries(10))
	all := Matcher{Match: func(*pxperfv1.Entry) bool { return true }}
	for i := range 3 * maxViews {
		s.List(Query{Limit: 1, Match: all, Key: fmt.Sprint(i)})
	}
	if n := len(s.views.byKey); n != maxViews {
		t.Errorf("%d views kept, want %d", n, maxViews)
	}
	// The most recently used survive.
	if _, ok := s.views.byKey[fmt.Sprint(3*maxViews-1)]; !ok {
		t.Error("the last view used was evicted")
	}
}
