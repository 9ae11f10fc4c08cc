package store

// chunkSize is the number of entries in one chunk of a [seq]: 4096 items,
// their columns and encodings, about 350 KiB.
const chunkSize = 4096

// chunk holds chunkSize consecutive entries' items, columns and cached
// encodings.
type chunk struct {
	items [chunkSize]item
	cols  [chunkSize]col
	wires [chunkSize]wireSlot
}

// seq is the store's entries in id order, oldest first: a queue of
// fixed-size chunks. Appending fills the last chunk and adds a new one when
// it is full; dropping the oldest entry frees its chunk once the chunk is
// empty. So neither ever copies entries, however large the store: a slice
// that grew by doubling and was compacted after evictions copied every
// entry about once more per append, pointers and all, which the garbage
// collector's write barriers made dearer still. The chunks also give back
// memory as the store shrinks.
//
// Positions count from the oldest entry held, 0. The zero value is empty.
type seq struct {
	chunks []*chunk
	head   int // position of the oldest entry in chunks[0]
	n      int // entries held
}

// len returns the number of entries held.
func (q *seq) len() int { return q.n }

// at returns the chunk and the index in it of position p, which must be
// held.
func (q *seq) at(p int) (*chunk, int) {
	abs := q.head + p
	return q.chunks[abs/chunkSize], abs % chunkSize
}

// item returns the item at position p, which must be held.
func (q *seq) item(p int) *item {
	c, i := q.at(p)
	return &c.items[i]
}

// col returns the column at position p, which must be held.
func (q *seq) col(p int) *col {
	c, i := q.at(p)
	return &c.cols[i]
}

// wire returns the encoding slot at position p, which must be held.
func (q *seq) wire(p int) *wireSlot {
	c, i := q.at(p)
	return &c.wires[i]
}

// push appends an entry's item and column; its encoding slot is empty.
func (q *seq) push(it item, c col) {
	abs := q.head + q.n
	if abs/chunkSize == len(q.chunks) {
		q.chunks = append(q.chunks, new(chunk))
	}
	ch := q.chunks[abs/chunkSize]
	ch.items[abs%chunkSize], ch.cols[abs%chunkSize] = it, c
	q.n++
}

// pop drops the oldest entry, which must exist, and returns its item and
// column.
func (q *seq) pop() (item, col) {
	ch := q.chunks[0]
	it, c := ch.items[q.head], ch.cols[q.head]
	ch.items[q.head], ch.cols[q.head] = item{}, col{}
	ch.wires[q.head].reset(false)
	q.head++
	q.n--
	if q.head == chunkSize {
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.head = 0
	}
	return it, c
}

// segment is a run of consecutive entries within one chunk: their items,
// columns and encoding slots, in the same order.
type segment struct {
	items []item
	cols  []col
	wires []wireSlot
}

// segments calls f for the positions from lo to hi (exclusive), all held,
// a chunk at a time: with the position of the first, and the chunk's
// segment for the run.
func (q *seq) segments(lo, hi int, f func(p int, sg segment)) {
	for p := lo; p < hi; {
		c, i := q.at(p)
		j := min(chunkSize, i+hi-p)
		f(p, segment{c.items[i:j], c.cols[i:j], c.wires[i:j]})
		p += j - i
	}
}
