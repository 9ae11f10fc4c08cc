package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
)

// A named batch sent again is kept once in embedded mode: the retry gets
// the first try's ids and stores nothing; an unnamed batch, or another
// name, is new entries.
func TestIngestNamedBatchOnce(t *testing.T) {
	e := newEngine(t, nil)
	publish := func(name string) []uint64 {
		t.Helper()
		es := []*pxperfv1.Entry{testentry.Proxied(1), {Method: "GET"}, testentry.Proxied(2)} // the second is rejected
		ids := make([]uint64, len(es))
		if _, err := e.Ingest(t.Context(), name, es, nil, func(i int, id uint64, _ *pxperfv1.Rejection) { ids[i] = id }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	first := publish("b1")
	if again := publish("b1"); !slices.Equal(again, first) {
		t.Errorf("batch b1 sent again got ids %v, first %v", again, first)
	}
	if n := e.Store().Stats().Entries; n != 2 {
		t.Errorf("store holds %d entries after a retry, want 2", n)
	}
	if other := publish("b2"); other[0] == first[0] || other[1] != 0 {
		t.Errorf("batch b2 got ids %v: want new ids, and 0 for the rejected entry", other)
	}
	if unnamed := publish(""); unnamed[0] == first[0] {
		t.Errorf("an unnamed batch got ids %v, the same as b1's", unnamed)
	}
}

func TestBatchLog(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &batchLog{now: func() time.Time { return now }}
	b.put("a", []uint64{1, 2})
	for _, tc := range []struct {
		name  string
		batch string
		n     int
		after time.Duration
		want  []uint64
	}{
		{"remembered", "a", 2, 0, []uint64{1, 2}},
		{"another count is another batch", "a", 3, 0, nil},
		{"unknown", "b", 2, 0, nil},
		{"no name", "", 0, 0, nil},
		{"within the window", "a", 2, batchLogAge, []uint64{1, 2}},
		{"past the window", "a", 2, batchLogAge + time.Second, nil},
	} {
		now = time.Unix(1000, 0).Add(tc.after)
		got, ok := b.get(tc.batch, tc.n)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: get(%q, %d) = %v, %v; want %v", tc.name, tc.batch, tc.n, got, ok, tc.want)
		}
	}
	for i := range batchLogSize {
		b.put(fmt.Sprint(i), []uint64{uint64(i)})
	}
	if _, ok := b.get("a", 2); ok {
		t.Error("the oldest batch is still remembered past batchLogSize")
	}
	if len(b.ids) != batchLogSize || len(b.order) != batchLogSize {
		t.Errorf("remembers %d batches (%d in order), want %d", len(b.ids), len(b.order), batchLogSize)
	}
}
