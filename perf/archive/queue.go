package archive

import (
	"sync"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Item is one entry to archive.
type Item struct {
	// Entry is the entry as stored. It must not be nil, and neither it nor
	// Body nor RequestBody may be modified after [Archive.Append]: the
	// writer encodes them later, on its own goroutine.
	Entry *pxperfv1.Entry
	// Body is the data of the response body, which the store keeps beside
	// the entry. It is written as response_body.data in place of
	// Entry.ResponseBody.Data; when nil, Entry.ResponseBody.Data (if any)
	// is written.
	Body []byte
	// RequestBody is the data of the request body, written as
	// request_body.data as Body is as response_body.data.
	RequestBody []byte
}

// queue is the bounded hand-off from Append to the writer, bounded by
// entries and by the bytes of their bodies. Puts and takes move whole
// slices under one short lock, so the cost per entry is a copy of an Item.
type queue struct {
	mu         sync.Mutex
	room       sync.Cond // signalled when items are taken or the queue closes
	items      []Item
	bytes      int64 // body bytes of items
	limit      int   // items
	limitBytes int64 // body bytes; one item is let in whatever its size
	closed     bool

	ready chan struct{} // 1-buffered: items are waiting

	// Counters, guarded by mu.
	waits   uint64 // Append calls that waited for room
	dropped uint64 // entries dropped while the writer was failing
}

func newQueue(limit int, limitBytes int64) *queue {
	q := &queue{limit: limit, limitBytes: limitBytes, ready: make(chan struct{}, 1)}
	q.room.L = &q.mu
	return q
}

// put queues items, waiting for room when the queue is full, unless drop
// reports true (the writer is failing): then the items that do not fit are
// dropped and counted. It returns how many were queued, and false if the
// queue was closed before all were.
func (q *queue) put(items []Item, drop func() bool) (queued int, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	waited := false
	for len(items) > 0 {
		if q.closed {
			return queued, false
		}
		n, bytes := q.fit(items)
		if n > 0 {
			q.items = append(q.items, items[:n]...)
			q.bytes += bytes
			items = items[n:]
			queued += n
			select {
			case q.ready <- struct{}{}:
			default:
			}
			continue
		}
		if drop() {
			q.dropped += uint64(len(items))
			return queued, true
		}
		if !waited {
			waited = true
			q.waits++
		}
		q.room.Wait()
	}
	return queued, true
}

// fit returns how many of items, from the first, there is room for, and
// their body bytes. The caller holds q.mu.
func (q *queue) fit(items []Item) (n int, bytes int64) {
	for ; n < len(items) && len(q.items)+n < q.limit; n++ {
		b := itemBytes(items[n])
		if q.bytes+bytes+b > q.limitBytes && len(q.items)+n > 0 {
			break
		}
		bytes += b
	}
	return n, bytes
}

// itemBytes is what an item counts against Config.QueueBytes: the data of
// its bodies.
func itemBytes(it Item) int64 {
	return int64(len(it.Body) + len(it.Entry.GetResponseBody().GetData()) +
		len(it.RequestBody) + len(it.Entry.GetRequestBody().GetData()))
}

// take moves up to max waiting items (all when max < 0) into buf[:0] and
// returns it.
func (q *queue) take(buf []Item, max int) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items)
	if max >= 0 && max < n {
		n = max
	}
	if n == 0 {
		return buf[:0]
	}
	if n == len(q.items) {
		// Swap the slices: no copy.
		buf, q.items = q.items, buf[:0]
		q.bytes = 0
	} else {
		buf = append(buf[:0], q.items[:n]...)
		for _, it := range buf {
			q.bytes -= itemBytes(it)
		}
		rest := copy(q.items, q.items[n:])
		clear(q.items[rest:])
		q.items = q.items[:rest]
		if rest > 0 {
			select {
			case q.ready <- struct{}{}:
			default:
			}
		}
	}
	q.room.Broadcast()
	return buf
}

// wake makes waiting puts check again whether to drop.
func (q *queue) wake() {
	q.mu.Lock()
	q.room.Broadcast()
	q.mu.Unlock()
}

// close makes puts fail from now on, waiting ones included.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.room.Broadcast()
	q.mu.Unlock()
}

// counts returns the waiting items and the counters.
func (q *queue) counts() (waiting int, waitingBytes int64, waits, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.bytes, q.waits, q.dropped
}
