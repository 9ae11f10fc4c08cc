package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The clients of the benchmarks share two cores with the server under
// test, so they must cost as little as possible: otherwise the figures
// measure the clients. Decoding 300-byte entries into Go messages costs
// more than relaying them, so the clients use wireCodec: the publisher
// sends PublishStream messages encoded once, and subscribers read
// SubscribeResponse messages in place, counting entries and checking ids
// without building a message. The bytes on the wire are exactly what the
// generated client would send and receive.

// encoded is a message already in wire format, sent as it is.
type encoded []byte

// wireCodec is the benchmark clients' codec (see above). It marshals
// [encoded] as it is and other messages with proto; it reads into a
// [*subscribeScan] in place and into other messages with proto. Its name
// is the standard "proto", so servers see an ordinary client.
type wireCodec struct{}

var wireCodecOption = grpc.ForceCodecV2(wireCodec{})

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case encoded:
		// SliceBuffer's Free does nothing: the bytes can be sent again.
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return nil, fmt.Errorf("wireCodec cannot marshal %T", v)
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*subscribeScan); ok {
		return m.scanBuffers(data)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("wireCodec cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// Field numbers read by subscribeScan, from the generated descriptors.
var (
	fieldBatch    = fieldNumber(&pxperfv1.SubscribeResponse{}, "batch")
	fieldGap      = fieldNumber(&pxperfv1.SubscribeResponse{}, "gap")
	fieldProgress = fieldNumber(&pxperfv1.SubscribeResponse{}, "progress")
	fieldEntries  = fieldNumber(&pxperfv1.EntryBatch{}, "entries")
	fieldUpdates  = fieldNumber(&pxperfv1.EntryBatch{}, "updates")
	fieldID       = fieldNumber(&pxperfv1.Entry{}, "id")
	fieldFirst    = fieldNumber(&pxperfv1.Gap{}, "first_missed_id")
	fieldLast     = fieldNumber(&pxperfv1.Gap{}, "last_missed_id")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if f == nil {
		panic(fmt.Sprintf("%s has no field %s", m.ProtoReflect().Descriptor().FullName(), name))
	}
	return f.Number()
}

// subscribeScan is what a subscriber reads of one SubscribeResponse. With
// checkIDs, it also checks that entries carry consecutive ids from nextID
// on, and advances nextID.
type subscribeScan struct {
	checkIDs bool
	nextID   uint64

	// Of the last message scanned:
	batch    bool
	entries  int
	updates  int
	gap      bool
	gapFirst uint64
	gapLast  uint64
	progress bool
	badID    error // the first id out of sequence, kept across messages
}

// scanBuffers reads one SubscribeResponse from the buffers gRPC received it
// in, without copying them into one: entries are skipped but for their id.
func (s *subscribeScan) scanBuffers(data mem.BufferSlice) error {
	w := &wireReader{bufs: data, left: data.Len()}
	s.batch, s.entries, s.updates, s.gap, s.progress = false, 0, 0, false, false
	for w.remaining() > 0 {
		num, end, err := w.field(0)
		if err != nil {
			return err
		}
		if end < 0 {
			continue // not length-delimited: skipped
		}
		switch num {
		case fieldBatch:
			s.batch = true
			err = s.scanBatch(w, end)
		case fieldGap:
			s.gap = true
			s.gapFirst, s.gapLast = 0, 0
			err = w.varints(end, func(num protowire.Number, x uint64) {
				switch num {
				case fieldFirst:
					s.gapFirst = x
				case fieldLast:
					s.gapLast = x
				}
			})
		case fieldProgress:
			s.progress = true
			err = w.skipTo(end)
		default:
			err = w.skipTo(end)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *subscribeScan) scanBatch(w *wireReader, end int) error {
	for w.remaining() > end {
		num, fend, err := w.field(end)
		if err != nil {
			return err
		}
		if fend < 0 {
			continue // not length-delimited: skipped
		}
		switch num {
		case fieldEntries:
			s.entries++
			if s.checkIDs {
				err = s.checkID(w, fend)
			} else {
				err = w.skipTo(fend)
			}
		case fieldUpdates:
			s.updates++
			err = w.skipTo(fend)
		default:
			err = w.skipTo(fend)
		}
		if err != nil {
			return err
		}
	}
	return w.at(end)
}

// checkID reads the id of the entry that ends at end and skips the rest.
func (s *subscribeScan) checkID(w *wireReader, end int) error {
	var id uint64
	for w.remaining() > end {
		num, typ, err := w.tag()
		if err != nil {
			return err
		}
		if num == fieldID && typ == protowire.VarintType {
			if id, err = w.varint(); err != nil {
				return err
			}
			break // the id comes first in proto's field order
		}
		if err := w.skip(typ); err != nil {
			return err
		}
	}
	if id != s.nextID && s.badID == nil {
		s.badID = fmt.Errorf("received id %d, want %d: entries lost, repeated or out of order", id, s.nextID)
	}
	s.nextID = id + 1
	return w.skipTo(end)
}

// wireReader reads protobuf wire format from the buffers of a
// [mem.BufferSlice], in place: gRPC holds them while the codec runs.
// Positions are counted as bytes left, so a message that ends at end is
// done when remaining() == end.
type wireReader struct {
	bufs mem.BufferSlice
	next int    // index in bufs of the buffer after cur
	cur  []byte // unread part of the current buffer
	left int    // bytes unread in all
}

var errMalformed = errors.New("malformed protobuf message")

func (w *wireReader) remaining() int { return w.left }

// fill makes cur non-empty, unless everything has been read.
func (w *wireReader) fill() bool {
	for len(w.cur) == 0 {
		if w.next == len(w.bufs) {
			return false
		}
		w.cur = w.bufs[w.next].ReadOnlyData()
		w.next++
	}
	return true
}

func (w *wireReader) varint() (uint64, error) {
	if len(w.cur) >= binary.MaxVarintLen64 { // fast path: within one buffer
		x, n := protowire.ConsumeVarint(w.cur)
		if n < 0 {
			return 0, errMalformed
		}
		w.cur, w.left = w.cur[n:], w.left-n
		return x, nil
	}
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		if !w.fill() {
			return 0, errMalformed
		}
		b := w.cur[0]
		w.cur, w.left = w.cur[1:], w.left-1
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, errMalformed
}

func (w *wireReader) tag() (protowire.Number, protowire.Type, error) {
	x, err := w.varint()
	return protowire.Number(x >> 3), protowire.Type(x & 7), err
}

// field reads the next field of a message that ends at end. For a
// length-delimited field it returns its number and where its value ends,
// leaving the value to be read; any other field it skips, returning
// fend -1.
func (w *wireReader) field(end int) (num protowire.Number, fend int, err error) {
	num, typ, err := w.tag()
	if err != nil {
		return 0, 0, err
	}
	if typ != protowire.BytesType {
		return num, -1, w.skip(typ)
	}
	n, err := w.varint()
	if err != nil {
		return 0, 0, err
	}
	if fend = w.remaining() - int(n); n > uint64(w.remaining()) || fend < end {
		return 0, 0, errMalformed
	}
	return num, fend, nil
}

// skip skips a value of type typ.
func (w *wireReader) skip(typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := w.varint()
		return err
	case protowire.Fixed32Type:
		return w.skipTo(w.remaining() - 4)
	case protowire.Fixed64Type:
		return w.skipTo(w.remaining() - 8)
	case protowire.BytesType:
		n, err := w.varint()
		if err != nil || n > uint64(w.remaining()) {
			return errMalformed
		}
		return w.skipTo(w.remaining() - int(n))
	}
	return errMalformed
}

// skipTo skips to where remaining() == end.
func (w *wireReader) skipTo(end int) error {
	if end < 0 || end > w.left {
		return errMalformed
	}
	for n := w.left - end; n > 0; {
		if !w.fill() {
			return errMalformed
		}
		k := min(n, len(w.cur))
		w.cur, w.left, n = w.cur[k:], w.left-k, n-k
	}
	return nil
}

// at reports an error unless remaining() == end: a field crossed the end of
// its message.
func (w *wireReader) at(end int) error {
	if w.remaining() != end {
		return errMalformed
	}
	return nil
}

// varints calls f with each varint field of the message that ends at end,
// skipping the others.
func (w *wireReader) varints(end int, f func(protowire.Number, uint64)) error {
	for w.remaining() > end {
		num, typ, err := w.tag()
		if err != nil {
			return err
		}
		if typ != protowire.VarintType {
			if err := w.skip(typ); err != nil {
				return err
			}
			continue
		}
		x, err := w.varint()
		if err != nil {
			return err
		}
		f(num, x)
	}
	return w.at(end)
}

// TestSubscribeScan checks the in-place reader against messages encoded by
// proto.
func TestSubscribeScan(t *testing.T) {
	pool := entryPool()
	withID := func(e *pxperfv1.Entry, id uint64) *pxperfv1.Entry {
		e = proto.CloneOf(e)
		e.Id = id
		return e
	}
	batch := func(ids ...uint64) *pxperfv1.SubscribeResponse {
		b := &pxperfv1.EntryBatch{NextId: 99, Updates: []*pxperfv1.Entry{withID(pool[0], 1)}}
		for i, id := range ids {
			b.Entries = append(b.Entries, withID(pool[i], id))
		}
		return &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: b}}
	}
	for _, tc := range []struct {
		name string
		msg  *pxperfv1.SubscribeResponse
		want subscribeScan // checkIDs set, nextID 7 before the scan
		bad  bool          // badID set
	}{
		{"batch", batch(7, 8, 9), subscribeScan{batch: true, entries: 3, updates: 1, nextID: 10}, false},
		{"lost", batch(7, 9), subscribeScan{batch: true, entries: 2, updates: 1, nextID: 10}, true},
		{"repeated", batch(6, 7), subscribeScan{batch: true, entries: 2, updates: 1, nextID: 8}, true},
		{"gap", &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Gap{Gap: &pxperfv1.Gap{FirstMissedId: 7, LastMissedId: 300}}},
			subscribeScan{gap: true, gapFirst: 7, gapLast: 300, nextID: 7}, false},
		{"progress", &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Progress{Progress: &pxperfv1.Progress{NewestId: 5, NextId: 7}}},
			subscribeScan{progress: true, nextID: 7}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			// Whole, and in buffers of 7 bytes so that fields cross buffers.
			for _, size := range []int{len(b), 7} {
				var data mem.BufferSlice
				for rest := b; len(rest) > 0; {
					n := min(size, len(rest))
					data = append(data, mem.SliceBuffer(rest[:n]))
					rest = rest[n:]
				}
				got := &subscribeScan{checkIDs: true, nextID: 7}
				if err := got.scanBuffers(data); err != nil {
					t.Fatalf("buffers of %d bytes: %v", size, err)
				}
				if (got.badID != nil) != tc.bad {
					t.Errorf("buffers of %d bytes: badID = %v, want set: %v", size, got.badID, tc.bad)
				}
				got.badID, got.checkIDs = nil, false
				if *got != tc.want {
					t.Errorf("buffers of %d bytes: scan = %+v, want %+v", size, got, &tc.want)
				}
			}
		})
	}
}
