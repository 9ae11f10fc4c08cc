package wire

import (
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The field numbers this package writes, read from the contract's
// descriptors when the package is initialised and never changed: the
// contract is their one home. An entry's cached field is an
// EntryBatch.entries field; TestFieldNumbers checks that
// ListEntriesResponse.entries and ViewUpdate.entries have its number.
var (
	entriesField       = fieldNumber(&pxperfv1.EntryBatch{}, "entries")
	nextIDField        = fieldNumber(&pxperfv1.EntryBatch{}, "next_id")
	updatesField       = fieldNumber(&pxperfv1.EntryBatch{}, "updates")
	updatesLostField   = fieldNumber(&pxperfv1.EntryBatch{}, "updates_lost")
	responseBatchField = fieldNumber(&pxperfv1.SubscribeResponse{}, "batch")
)

// fieldNumber returns the number of m's field called name, and panics if m
// has none: a field renamed in the contract without this package.
func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic("wire: " + string(m.ProtoReflect().Descriptor().FullName()) + " has no field " + string(name))
	}
	return fd.Number()
}

// Batch returns the bytes around the entries of a SubscribeResponse
// holding EntryBatch{entries, next_id, updates, updates_lost}: the message
// in wire form is head, then the entries' fields in order, then tail.
// entries holds the entries' cached fields (see [Encoder]) in any number
// of slices, and updates one field each. The entries' bytes are not copied:
// the caller sends them between head and tail. The updates', few, are
// copied into tail under their own field number. Head and tail share one
// allocation; tail is empty when next_id, updates and updates_lost are.
func Batch(entries, updates [][]byte, nextID, updatesLost uint64) (head, tail []byte) {
	inner := 0
	for _, f := range entries {
		inner += len(f)
	}
	tailSize := 0
	if nextID != 0 {
		tailSize += protowire.SizeTag(nextIDField) + protowire.SizeVarint(nextID)
	}
	for _, f := range updates {
		tailSize += protowire.SizeTag(updatesField) + protowire.SizeBytes(len(entryBytes(f)))
	}
	if updatesLost != 0 {
		tailSize += protowire.SizeTag(updatesLostField) + protowire.SizeVarint(updatesLost)
	}
	inner += tailSize
	headSize := protowire.SizeTag(responseBatchField) + protowire.SizeVarint(uint64(inner))

	b := make([]byte, 0, headSize+tailSize)
	b = protowire.AppendTag(b, responseBatchField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	if nextID != 0 {
		b = protowire.AppendTag(b, nextIDField, protowire.VarintType)
		b = protowire.AppendVarint(b, nextID)
	}
	for _, f := range updates {
		b = protowire.AppendTag(b, updatesField, protowire.BytesType)
		b = protowire.AppendBytes(b, entryBytes(f))
	}
	if updatesLost != 0 {
		b = protowire.AppendTag(b, updatesLostField, protowire.VarintType)
		b = protowire.AppendVarint(b, updatesLost)
	}
	return b[:headSize:headSize], b[headSize:]
}

// List returns r in wire form, as proto.Marshal would, as slices to send
// in order, taking each entry's encoding from fields: fields[i] is the
// cached field of r.Entries[i] (see [Encoder]), or nil to encode it here.
// The cached bytes are not copied. The other fields of r are marshalled as
// they are: entries is r's first field, so its fields come first, as
// proto.Marshal writes them. r must not be used concurrently: List takes
// its entries out for a moment.
func List(r *pxperfv1.ListEntriesResponse, fields [][]byte) ([][]byte, error) {
	out := make([][]byte, 0, len(fields)+1)
	var enc Encoder
	for i, f := range fields {
		if f == nil {
			e := r.Entries[i]
			f = enc.AppendField(nil, e, enc.FieldSize(e))
		}
		out = append(out, f)
	}
	entries := r.Entries
	r.Entries = nil
	rest, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	r.Entries = entries
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		out = append(out, rest)
	}
	return out, nil
}

// entryBytes returns the entry's encoding inside field, a cached field
// (see [Encoder]), or nil if field is not one.
func entryBytes(field []byte) []byte {
	_, _, n := protowire.ConsumeTag(field)
	if n < 0 {
		return nil
	}
	b, m := protowire.ConsumeBytes(field[n:])
	if m < 0 {
		return nil
	}
	return b
}
