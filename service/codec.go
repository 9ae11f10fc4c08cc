package service

import (
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/wire"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
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

// encodeBatch returns b as a SubscribeResponse in wire form (see
// [wire.Batch]): the entries' cached fields are not copied, the message
// refers to them.
func encodeBatch(b *hub.WireBatch) *rawMessage {
	head, tail := wire.Batch(b.Entries, b.Updates, b.NextID, b.UpdatesLost)
	bufs := make(mem.BufferSlice, 0, len(b.Entries)+2)
	bufs = append(bufs, mem.SliceBuffer(head))
	size := len(head) + len(tail)
	for _, r := range b.Entries {
		bufs = append(bufs, mem.SliceBuffer(r))
		size += len(r)
	}
	if len(tail) > 0 {
		bufs = append(bufs, mem.SliceBuffer(tail))
	}
	return &rawMessage{bufs: bufs, size: size}
}

// encodeList returns r in wire form, taking each entry's encoding from
// fields (see [wire.List]): the window a UI scrolls through is sent from
// the store's cache, usually made already for the subscribers, without
// encoding or copying it again. r is the handler's response, which only
// the codec reads now.
func encodeList(r *pxperfv1.ListEntriesResponse, fields [][]byte) (mem.BufferSlice, error) {
	parts, err := wire.List(r, fields)
	if err != nil {
		return nil, err
	}
	bufs := make(mem.BufferSlice, len(parts))
	for i, p := range parts {
		bufs[i] = mem.SliceBuffer(p)
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
