package service

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// A batch built from cached encodings is exactly the message the proto
// codec would have sent.
func TestEncodeBatchMatchesProto(t *testing.T) {
	e1 := &pxperfv1.Entry{Id: 7, Method: "GET", Url: "http://example.com/", StatusCode: 200}
	e2 := &pxperfv1.Entry{Id: 9, Method: "POST", Url: "http://example.com/x", RequestHeaders: []*pxperfv1.Header{{Name: "A", Value: "b"}}}
	u1 := &pxperfv1.Entry{Id: 3, Method: "GET", Url: "http://example.com/u", StatusCode: 502}
	wire := func(e *pxperfv1.Entry) []byte {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tt := range []struct {
		name string
		want *pxperfv1.EntryBatch
	}{
		{"entries", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e1, e2}, NextId: 10}},
		{"updates", &pxperfv1.EntryBatch{Updates: []*pxperfv1.Entry{u1}, NextId: 10, UpdatesLost: 2}},
		{"both", &pxperfv1.EntryBatch{Entries: []*pxperfv1.Entry{e2}, NextId: 10, Updates: []*pxperfv1.Entry{u1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ew, uw [][]byte
			for _, e := range tt.want.Entries {
				ew = append(ew, wire(e))
			}
			for _, e := range tt.want.Updates {
				uw = append(uw, wire(e))
			}
			raw := encodeBatch(ew, uw, tt.want.NextId, tt.want.UpdatesLost)
			out, err := newRawCodec().Marshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Free()
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
