package store

import (
	"sync/atomic"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
)

// wireCache holds an entry's protobuf encoding (without its body), made
// on first use and shared by every reader after: each entry is encoded
// once however many subscribers send it. Safe for concurrent use.
type wireCache struct {
	p atomic.Pointer[[]byte]
}

// bytes returns e's encoding, making it if no reader has yet. e must be
// the stored entry, which is never modified.
func (c *wireCache) bytes(e *pxperfv1.Entry) []byte {
	if b := c.p.Load(); b != nil {
		return *b
	}
	b, err := proto.Marshal(e)
	if err != nil {
		// A stored entry passed validation; Marshal cannot fail on it.
		panic("store: encoding a stored entry: " + err.Error())
	}
	if !c.p.CompareAndSwap(nil, &b) {
		return *c.p.Load() // another reader made it first
	}
	return b
}
