package service

import (
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/wire"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// rawMessage is a message already in protobuf wire form, as the slices of
// bufs in order. [rawCodec] sends it as it is.
type rawMessage struct {
	bufs mem.BufferSlice
	size int // bytes in bufs
}

// rawCodec is the server's codec: the standard protobuf codec, except that
// a [rawMessage] is sent as it is. Subscribe uses it to send batches made of
// the store's cached encodings of entries, without copying them: an entry is
// encoded once however many subscribers get it, and gRPC's transport copies
// it straight into its write buffer.
type rawCodec struct {
	proto encoding.CodecV2
	// redact names the headers whose values the store redacts: the
	// publish decoder redacts them as it reads them, so that no secret is
	// copied into the memory an entry keeps.
	redact wire.Redaction
	// fields gives the store's cached encodings of entries (see
	// store.Store.Fields), from which a ListEntriesResponse is sent. Nil:
	// responses are marshalled.
	fields func(es []*pxperfv1.Entry, dst [][]byte) [][]byte
}

// newRawCodec returns the codec for a store whose Redacts is redacts (nil
// redacts nothing) and whose Fields is fields (nil marshals responses).
func newRawCodec(redacts func(name string) bool, fields func([]*pxperfv1.Entry, [][]byte) [][]byte) rawCodec {
	return rawCodec{
		proto:  encoding.GetCodecV2("proto"),
		redact: wire.Redaction{Redacts: redacts, Value: store.Redacted},
		fields: fields,
	}
}

// Marshal implements encoding.CodecV2.
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *rawMessage:
		return m.bufs, nil
	case *pxperfv1.ListEntriesResponse:
		if c.fields != nil {
			return encodeList(m, c.fields(m.GetEntries(), nil))
		}
	}
	return c.proto.Marshal(v)
}

// Unmarshal implements encoding.CodecV2. The publish requests take
// [wire.UnmarshalPublish]'s fast path, which allocates far less per entry than
// proto.Unmarshal; other messages go to the proto codec. gRPC frees data
// once this returns: nothing decoded aliases it.
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *pxperfv1.PublishStreamRequest, *pxperfv1.PublishRequest:
		// One buffer is used as it is; several are copied into one from
		// the pool, as the proto codec does.
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		_, err := wire.UnmarshalPublish(buf.ReadOnlyData(), m.(proto.Message), c.redact)
		return err
	}
	return c.proto.Unmarshal(data, v)
}

// Name implements encoding.CodecV2: the codec stands in for "proto".
func (rawCodec) Name() string { return "proto" }

// Field numbers used to build a SubscribeResponse holding an EntryBatch;
// see service.proto. EntryBatch.entries is store.EntryField, the field the
// store's cached encodings are framed as. TestWireFieldNumbers checks them
// against the descriptors.
const (
	subscribeResponseBatch = 1
	entryBatchNextID       = 2
	entryBatchUpdates      = 3
	entryBatchUpdatesLost  = 4
)

// encodeBatch returns SubscribeResponse{batch: EntryBatch{entries, next_id,
// updates, updates_lost}} in wire form, from the entries' and updates'
// cached fields: entries holds the entries' fields in order, in any number
// of slices (store.Read.Runs, or Fields), and updates one field each
// (store.Updates.Fields). The entries' slices are not copied: the message
// refers to them. The updates', few, are copied under their own field
// number.
func encodeBatch(entries, updates [][]byte, nextID, updatesLost uint64) *rawMessage {
	inner := 0
	for _, f := range entries {
		inner += len(f)
	}
	tail := 0
	if nextID != 0 {
		tail += protowire.SizeTag(entryBatchNextID) + protowire.SizeVarint(nextID)
	}
	for _, f := range updates {
		tail += protowire.SizeTag(entryBatchUpdates) + protowire.SizeBytes(len(store.EntryBytes(f)))
	}
	if updatesLost != 0 {
		tail += protowire.SizeTag(entryBatchUpdatesLost) + protowire.SizeVarint(updatesLost)
	}
	inner += tail
	head := protowire.SizeTag(subscribeResponseBatch) + protowire.SizeVarint(uint64(inner))

	// One allocation for the bytes written here: head, then tail.
	b := make([]byte, 0, head+tail)
	b = protowire.AppendTag(b, subscribeResponseBatch, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	if nextID != 0 {
		b = protowire.AppendTag(b, entryBatchNextID, protowire.VarintType)
		b = protowire.AppendVarint(b, nextID)
	}
	for _, f := range updates {
		b = protowire.AppendTag(b, entryBatchUpdates, protowire.BytesType)
		b = protowire.AppendBytes(b, store.EntryBytes(f))
	}
	if updatesLost != 0 {
		b = protowire.AppendTag(b, entryBatchUpdatesLost, protowire.VarintType)
		b = protowire.AppendVarint(b, updatesLost)
	}

	bufs := make(mem.BufferSlice, 0, len(entries)+2)
	bufs = append(bufs, mem.SliceBuffer(b[:head]))
	for _, r := range entries {
		bufs = append(bufs, mem.SliceBuffer(r))
	}
	if tail > 0 {
		bufs = append(bufs, mem.SliceBuffer(b[head:]))
	}
	return &rawMessage{bufs: bufs, size: head + inner}
}

// encodeList returns r in wire form, as proto.Marshal would, taking each
// entry's encoding from fields (fields[i] is that of r.Entries[i], or nil
// to marshal it here): the window a UI scrolls through is sent from the
// store's cache, usually made already for the subscribers, without
// encoding or copying it again. The other fields of r are marshalled as
// they are: entries is field 1, so its fields come first, as proto.Marshal
// writes them.
func encodeList(r *pxperfv1.ListEntriesResponse, fields [][]byte) (mem.BufferSlice, error) {
	bufs := make(mem.BufferSlice, 0, len(fields)+1)
	for i, f := range fields {
		if f == nil {
			b, err := proto.Marshal(r.Entries[i])
			if err != nil {
				return nil, err
			}
			f = protowire.AppendTag(nil, store.EntryField, protowire.BytesType)
			f = protowire.AppendBytes(f, b)
		}
		bufs = append(bufs, mem.SliceBuffer(f))
	}
	// The rest of r: r is the handler's response, which only the codec
	// reads now; its entries are put back at once.
	entries := r.Entries
	r.Entries = nil
	rest, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	r.Entries = entries
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		bufs = append(bufs, mem.SliceBuffer(rest))
	}
	return bufs, nil
}

// messageSize is the encoded size of a message sent on a stream, for
// resource accounting: exact for a [rawMessage], 0 for others (heartbeats
// and gaps, a few bytes each; batches with bodies, which are rare).
func messageSize(m any) uint64 {
	if r, ok := m.(*rawMessage); ok {
		return uint64(r.size)
	}
	return 0
}
