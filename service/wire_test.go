package service

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
)

// A batch built from cached fields is exactly the message the proto codec
// would have sent, whether the entries come as one run or field by field.
func TestEncodeBatchMatchesProto(t *testing.T) {
	e1 := &pxperfv1.Entry{Id: 7, Method: "GET", Url: "http://example.com/", StatusCode: 200}
	e2 := &pxperfv1.Entry{Id: 9, Method: "POST", Url: "http://example.com/x", RequestHeaders: []*pxperfv1.Header{{Name: "A", Value: "b"}}}
	u1 := &pxperfv1.Entry{Id: 3, Method: "GET", Url: "http://example.com/u", StatusCode: 502}
	// fields encodes es as store.Read gives them: as one run when together,
	// each field apart otherwise.
	fields := func(es []*pxperfv1.Entry, together bool) [][]byte {
		var fs [][]byte
		for _, e := range es {
			b, err := proto.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			f := protowire.AppendTag(nil, store.EntryField, protowire.BytesType)
			fs = append(fs, protowire.AppendBytes(f, b))
		}
		if together && len(fs) > 0 {
			return [][]byte{bytes.Join(fs, nil)}
		}
		return fs
	}
	for _, tt := range []struct {
		name     string
		want     *pxperfv1.EntryBatch
		together bool // entries given as one run
		wantBufs int  // slices in the message
	}{
		{"entries apart", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e1, e2}, NextId: 10}, false, 4},
		{"entries together", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e1, e2}, NextId: 10}, true, 3},
		{"updates", &pxperfv1.EntryBatch{Updates: []*pxperfv1.Entry{u1}, NextId: 10, UpdatesLost: 2}, false, 2},
		{"both", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e2, e1}, NextId: 10, Updates: []*pxperfv1.Entry{u1}}, true, 3},
		{"empty", &pxperfv1.EntryBatch{}, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ew := fields(tt.want.Entries, tt.together)
			uw := fields(tt.want.Updates, false)
			raw := encodeBatch(ew, uw, tt.want.NextId, tt.want.UpdatesLost)
			out, err := newRawCodec(nil, nil).Marshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Free()
			if len(out) != tt.wantBufs || out.Len() != int(messageSize(raw)) {
				t.Errorf("message of %d slices, %d bytes; want %d slices, %d bytes (messageSize)", len(out), out.Len(), tt.wantBufs, messageSize(raw))
			}
			var got pxperfv1.SubscribeResponse
			if err := proto.Unmarshal(out.Materialize(), &got); err != nil {
				t.Fatal(err)
			}
			want := &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: tt.want}}
			if diff := cmp.Diff(&got, want, protocmp.Transform()); diff != "" {
				t.Errorf("decoded batch (-got +want):\n%s", diff)
			}
		})
	}
}

// The field numbers encodeBatch writes are those of the contract, and the
// store frames its cached encodings as the entries of both EntryBatch and
// ListEntriesResponse.
func TestWireFieldNumbers(t *testing.T) {
	num := func(m proto.Message, name protoreflect.Name) protowire.Number {
		return m.ProtoReflect().Descriptor().Fields().ByName(name).Number()
	}
	for _, tt := range []struct {
		field string
		got   protowire.Number
		want  protowire.Number
	}{
		{"SubscribeResponse.batch", num(&pxperfv1.SubscribeResponse{}, "batch"), subscribeResponseBatch},
		{"EntryBatch.entries", num(&pxperfv1.EntryBatch{}, "entries"), store.EntryField},
		{"EntryBatch.next_id", num(&pxperfv1.EntryBatch{}, "next_id"), entryBatchNextID},
		{"EntryBatch.updates", num(&pxperfv1.EntryBatch{}, "updates"), entryBatchUpdates},
		{"EntryBatch.updates_lost", num(&pxperfv1.EntryBatch{}, "updates_lost"), entryBatchUpdatesLost},
		{"ListEntriesResponse.entries", num(&pxperfv1.ListEntriesResponse{}, "entries"), store.EntryField},
	} {
		if tt.got != tt.want {
			t.Errorf("%s is field %d in the contract, %d here", tt.field, tt.got, tt.want)
		}
	}
}

// A ListEntriesResponse sent from the store's cache is byte for byte what
// proto.Marshal makes of it: for a window without a filter (one buffer),
// for scattered entries, and for a copy the store does not hold (an entry
// with its body added), which is marshalled.
func TestEncodeListMatchesProto(t *testing.T) {
	s, err := store.New(store.Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30, MaxBodySize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	es := make([]*pxperfv1.Entry, 20)
	for i := range es {
		es[i] = testentry.Proxied(i)
	}
	es[3].ResponseBody = &pxperfv1.Body{Data: []byte("hello"), ContentType: "text/plain"}
	s.Append(es)
	window := s.List(store.Query{Limit: 10}).Entries // newest first: ids 20..11
	withBody, err := s.EntryWithBody(4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		entries []*pxperfv1.Entry
	}{
		{"window", window},
		{"scattered", []*pxperfv1.Entry{window[0], window[5], window[2]}},
		{"a copy with its body", []*pxperfv1.Entry{window[1], withBody}},
		{"none", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := &pxperfv1.ListEntriesResponse{Entries: tt.entries, NextPageToken: "tok", TotalSize: 20, OldestId: 1, NewestId: 20}
			out, err := newRawCodec(nil, s.Fields).Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Materialize(); !bytes.Equal(got, want) {
				t.Errorf("codec gives %d bytes, proto.Marshal %d", len(got), len(want))
			}
		})
	}
}
