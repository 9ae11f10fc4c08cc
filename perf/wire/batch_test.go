package wire

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// A batch built from cached fields is exactly the message proto.Marshal
// makes, whether the entries come as one run or field by field.
func TestBatchMatchesProto(t *testing.T) {
	e1 := &pxperfv1.Entry{Id: 7, Method: "GET", Url: "http://example.com/", StatusCode: 200}
	e2 := &pxperfv1.Entry{Id: 9, Method: "POST", Url: "http://example.com/x", RequestHeaders: []*pxperfv1.Header{{Name: "A", Value: "b"}}}
	u1 := &pxperfv1.Entry{Id: 3, Method: "GET", Url: "http://example.com/u", StatusCode: 502}
	// fields encodes es as store.Read gives them: as one run when together,
	// each field apart otherwise.
	fields := func(es []*pxperfv1.Entry, together bool) [][]byte {
		var fs [][]byte
		var enc Encoder
		for _, e := range es {
			fs = append(fs, enc.AppendField(nil, e, enc.FieldSize(e)))
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
		wantTail bool // whether Batch has bytes after the entries
	}{
		{"entries apart", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e1, e2}, NextId: 10}, false, true},
		{"entries together", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e1, e2}, NextId: 10}, true, true},
		{"updates", &pxperfv1.EntryBatch{Updates: []*pxperfv1.Entry{u1}, NextId: 10, UpdatesLost: 2}, false, true},
		{"both", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e2, e1}, NextId: 10, Updates: []*pxperfv1.Entry{u1}}, true, true},
		{"entries alone", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e1}}, false, false},
		{"empty", &pxperfv1.EntryBatch{}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ew := fields(tt.want.Entries, tt.together)
			uw := fields(tt.want.Updates, false)
			head, tail := Batch(ew, uw, tt.want.NextId, tt.want.UpdatesLost)
			if cap(head) != len(head) || (len(tail) > 0) != tt.wantTail {
				t.Errorf("head of %d bytes, capacity %d; tail of %d bytes: want head capped, tail %v", len(head), cap(head), len(tail), tt.wantTail)
			}
			msg := bytes.Join(append(append([][]byte{head}, ew...), tail), nil)
			var got pxperfv1.SubscribeResponse
			if err := proto.Unmarshal(msg, &got); err != nil {
				t.Fatal(err)
			}
			want := &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: tt.want}}
			if diff := cmp.Diff(&got, want, protocmp.Transform()); diff != "" {
				t.Errorf("decoded batch (-got +want):\n%s", diff)
			}
		})
	}
}

// The cached encodings are sent as the entries of EntryBatch,
// ListEntriesResponse and ViewUpdate: all three must number the field as
// EntryBatch does, and List relies on entries being the response's first
// field. The numbers read from the descriptors are those of the messages
// the package writes.
func TestFieldNumbers(t *testing.T) {
	for _, tt := range []struct {
		field string
		got   protowire.Number
		want  protowire.Number
	}{
		{"SubscribeResponse.batch", responseBatchField, fieldNumber(&pxperfv1.SubscribeResponse{}, "batch")},
		{"EntryBatch.next_id", nextIDField, fieldNumber(&pxperfv1.EntryBatch{}, "next_id")},
		{"EntryBatch.updates", updatesField, fieldNumber(&pxperfv1.EntryBatch{}, "updates")},
		{"EntryBatch.updates_lost", updatesLostField, fieldNumber(&pxperfv1.EntryBatch{}, "updates_lost")},
		{"EntryBatch.entries", entriesField, fieldNumber(&pxperfv1.EntryBatch{}, "entries")},
		{"ListEntriesResponse.entries", fieldNumber(&pxperfv1.ListEntriesResponse{}, "entries"), entriesField},
		{"ViewUpdate.entries", fieldNumber(&pxperfv1.ViewUpdate{}, "entries"), entriesField},
	} {
		if tt.got != tt.want {
			t.Errorf("%s is field %d, want %d", tt.field, tt.got, tt.want)
		}
	}
	list := (&pxperfv1.ListEntriesResponse{}).ProtoReflect().Descriptor().Fields()
	for i := range list.Len() {
		if fd := list.Get(i); fd.Number() < entriesField {
			t.Errorf("ListEntriesResponse.%s is numbered %d, before entries (%d): List would write it after them", fd.Name(), fd.Number(), entriesField)
		}
	}
}

// List gives the bytes proto.Marshal makes of a ListEntriesResponse,
// whether its entries' fields are given (adjacent in one buffer, as the
// store caches them), missing (nil: encoded here), or there are no
// entries.
func TestListMatchesProto(t *testing.T) {
	es := make([]*pxperfv1.Entry, 5)
	for i := range es {
		es[i] = testentry.Proxied(i)
	}
	es[3].ResponseBody = &pxperfv1.Body{Data: []byte("hello"), ContentType: "text/plain"}
	var enc Encoder
	var buf []byte // every entry's field, one after another
	var fields [][]byte
	for _, e := range es {
		start := len(buf)
		buf = enc.AppendField(buf, e, enc.FieldSize(e))
		fields = append(fields, buf[start:len(buf):len(buf)])
	}
	for _, tt := range []struct {
		name    string
		entries []*pxperfv1.Entry
		fields  [][]byte
	}{
		{"cached", es, fields},
		{"some missing", es, [][]byte{fields[0], nil, fields[2], nil, fields[4]}},
		{"all missing", es, make([][]byte, len(es))},
		{"none", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := &pxperfv1.ListEntriesResponse{Entries: tt.entries, NextPageToken: "tok", TotalSize: 20, OldestId: 1, NewestId: 20}
			parts, err := List(resp, tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Join(parts, nil); !bytes.Equal(got, want) {
				t.Errorf("List gives %d bytes, proto.Marshal %d", len(got), len(want))
			}
			if len(resp.Entries) != len(tt.entries) {
				t.Errorf("List left %d entries in the response, want %d", len(resp.Entries), len(tt.entries))
			}
		})
	}
}
