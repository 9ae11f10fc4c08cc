package service

import (
	"sync"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// rawMessage is a message already in protobuf wire form. [rawCodec] sends
// it as it is.
type rawMessage struct{ buf *[]byte }

// rawCodec is the server's codec: the standard protobuf codec, except that
// a [rawMessage] is sent as it is. Subscribe uses it to send batches built
// from each entry's cached encoding, so that an entry is encoded once
// however many subscribers get it.
type rawCodec struct{ proto encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2("proto")} }

// Marshal implements encoding.CodecV2. gRPC frees the buffer of a
// rawMessage, returning it to batchPool, once it is written.
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.NewBuffer(r.buf, batchPool)}, nil
	}
	return c.proto.Marshal(v)
}

// batchPool recycles batch buffers. Unlike gRPC's default pool it does not
// clear a buffer it hands out: encodeBatch overwrites every byte it sends.
var batchPool mem.BufferPool = &uncleared{}

// uncleared is a mem.BufferPool over a sync.Pool that returns buffers as
// they were put back, resized.
type uncleared struct{ pool sync.Pool }

func (p *uncleared) Get(n int) *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

func (p *uncleared) Put(b *[]byte) { p.pool.Put(b) }

// Unmarshal implements encoding.CodecV2. The publish requests take
// [unmarshalPublish]'s fast path, which allocates far less per entry than
// proto.Unmarshal; other messages go to the proto codec. gRPC frees data
// once this returns: nothing decoded aliases it.
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *pxperfv1.PublishStreamRequest, *pxperfv1.PublishRequest:
		// One buffer is used as it is; several are copied into one from
		// the pool, as the proto codec does.
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		_, err := unmarshalPublish(buf.ReadOnlyData(), m.(proto.Message))
		return err
	}
	return c.proto.Unmarshal(data, v)
}

// Name implements encoding.CodecV2: the codec stands in for "proto".
func (rawCodec) Name() string { return "proto" }

// Field numbers used to build a SubscribeResponse holding an EntryBatch;
// see service.proto.
const (
	subscribeResponseBatch = 1
	entryBatchEntries      = 1
	entryBatchNextID       = 2
	entryBatchUpdates      = 3
	entryBatchUpdatesLost  = 4
)

// encodeBatch returns SubscribeResponse{batch: EntryBatch{entries, next_id,
// updates, updates_lost}} in wire form, from the entries' and updates'
// encodings, in a buffer from batchPool.
func encodeBatch(entries, updates [][]byte, nextID, updatesLost uint64) *rawMessage {
	inner := 0
	for _, w := range entries {
		inner += protowire.SizeTag(entryBatchEntries) + protowire.SizeBytes(len(w))
	}
	for _, w := range updates {
		inner += protowire.SizeTag(entryBatchUpdates) + protowire.SizeBytes(len(w))
	}
	if nextID != 0 {
		inner += protowire.SizeTag(entryBatchNextID) + protowire.SizeVarint(nextID)
	}
	if updatesLost != 0 {
		inner += protowire.SizeTag(entryBatchUpdatesLost) + protowire.SizeVarint(updatesLost)
	}
	total := protowire.SizeTag(subscribeResponseBatch) + protowire.SizeBytes(inner)
	buf := batchPool.Get(total)
	b := (*buf)[:0]
	b = protowire.AppendTag(b, subscribeResponseBatch, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	for _, w := range entries {
		b = protowire.AppendTag(b, entryBatchEntries, protowire.BytesType)
		b = protowire.AppendBytes(b, w)
	}
	if nextID != 0 {
		b = protowire.AppendTag(b, entryBatchNextID, protowire.VarintType)
		b = protowire.AppendVarint(b, nextID)
	}
	for _, w := range updates {
		b = protowire.AppendTag(b, entryBatchUpdates, protowire.BytesType)
		b = protowire.AppendBytes(b, w)
	}
	if updatesLost != 0 {
		b = protowire.AppendTag(b, entryBatchUpdatesLost, protowire.VarintType)
		b = protowire.AppendVarint(b, updatesLost)
	}
	*buf = b
	return &rawMessage{buf: buf}
}

// messageSize is the encoded size of a message sent on a stream, for
// resource accounting: exact for a [rawMessage], 0 for others (heartbeats
// and gaps, a few bytes each; batches with bodies, which are rare). Call it
// before the message is sent: gRPC recycles a raw message's buffer once it
// is written.
func messageSize(m any) uint64 {
	if r, ok := m.(*rawMessage); ok && r.buf != nil {
		return uint64(len(*r.buf))
	}
	return 0
}
