package engine

import (
	"testing"

	"github.com/pxperf/pxperf/cluster"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
)

// A PENDING entry this node published is found by its request id before
// the follower applies it, so that its completion completes it; once
// completed, or never PENDING, it is not.
func TestPublishedPending(t *testing.T) {
	st, err := store.New(storeConfig(config.Default().GetMemory()))
	if err != nil {
		t.Fatal(err)
	}
	// A follower that has applied nothing: the store holds none of these.
	e := &Engine{store: st, cluster: &clusterNode{follower: new(cluster.Follower)}}
	msg := func(rid string, state pxperfv1.EntryState) cluster.Message {
		return cluster.Message{Entry: &pxperfv1.Entry{RequestId: rid, State: state}}
	}
	pending, done := pxperfv1.EntryState_ENTRY_STATE_PENDING, pxperfv1.EntryState_ENTRY_STATE_COMPLETED
	e.cluster.published([]cluster.Message{msg("a", pending), msg("b", done), msg("", pending)}, []uint64{7, 8, 9})
	for _, tc := range []struct {
		rid  string
		want uint64 // 0: not found
	}{{"a", 7}, {"b", 0}, {"", 0}, {"c", 0}} {
		if id, ok := e.pendingID(tc.rid); id != tc.want || ok != (tc.want != 0) {
			t.Errorf("pendingID(%q) = %d, %v; want %d", tc.rid, id, ok, tc.want)
		}
	}
	// Its completion, published, forgets it.
	e.cluster.published([]cluster.Message{{Entry: &pxperfv1.Entry{RequestId: "a", State: done}, Completes: 7}}, []uint64{7})
	if id, ok := e.pendingID("a"); ok {
		t.Errorf("pendingID(a) = %d after its completion; want none", id)
	}
}
