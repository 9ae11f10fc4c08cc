package engine

import (
	"slices"
	"sync"
	"time"

	"github.com/pxperf/pxperf/cluster"
)

// Bounds of the batches a [batchLog] remembers: the most recent, for as
// long as the cluster's stream remembers a message id, so that a named
// batch is kept once in embedded mode as in cluster mode.
const (
	batchLogSize = 4096
	batchLogAge  = cluster.DedupWindow
)

// batchLog remembers the ids given to the valid entries of recent named
// batches (PublishRequest.batch_id) in embedded mode, so that a producer
// that sends one again, after a failure or a timeout, gets the same ids
// and nothing is stored twice. It forgets at a restart. The zero value is
// ready to use; it is safe for concurrent use.
type batchLog struct {
	mu    sync.Mutex
	ids   map[string]batchRecord
	order []string // names, oldest first
	now   func() time.Time
}

type batchRecord struct {
	at  time.Time
	ids []uint64
}

// get returns the ids given to the n valid entries of batch name, when it
// was stored recently with n valid entries; "" is no name.
func (b *batchLog) get(name string, n int) ([]uint64, bool) {
	if name == "" {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.ids[name]
	if !ok || len(r.ids) != n || b.clock().Sub(r.at) > batchLogAge {
		return nil, false
	}
	return slices.Clone(r.ids), true
}

// put records the ids given to batch name's valid entries, forgetting the
// oldest batches beyond batchLogSize; "" records nothing.
func (b *batchLog) put(name string, ids []uint64) {
	if name == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ids == nil {
		b.ids = make(map[string]batchRecord)
	}
	if _, again := b.ids[name]; !again {
		b.order = append(b.order, name)
	}
	b.ids[name] = batchRecord{at: b.clock(), ids: slices.Clone(ids)}
	for len(b.order) > batchLogSize {
		delete(b.ids, b.order[0])
		b.order = b.order[1:]
	}
}

func (b *batchLog) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}
