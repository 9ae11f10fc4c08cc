package service

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/wire"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// The codec decodes publish requests on the fast path from buffers that
// gRPC recycles afterwards, and other messages as the proto codec does.
func TestRawCodecUnmarshal(t *testing.T) {
	full := new(pxperfv1.Entry)
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	sub := &pxperfv1.SubscribeRequest{Filter: &pxperfv1.Filter{Host: "example.com", Methods: []string{"GET"}}}
	subWire, err := proto.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wire []byte
		into proto.Message
		want proto.Message
	}{
		{"stream", testentry.MarshalRequest(t, full, testentry.Proxied(2)), new(pxperfv1.PublishStreamRequest), &pxperfv1.PublishStreamRequest{Entries: []*pxperfv1.Entry{full, testentry.Proxied(2)}}},
		{"unary", testentry.MarshalRequest(t, full), new(pxperfv1.PublishRequest), &pxperfv1.PublishRequest{Entries: []*pxperfv1.Entry{full}}},
		{"other", subWire, new(pxperfv1.SubscribeRequest), sub},
	} {
		for _, size := range []int{len(tc.wire), 7} {
			t.Run(fmt.Sprintf("%s/buffers of %d", tc.name, size), func(t *testing.T) {
				// Pooled buffers, as gRPC receives into, overwritten once
				// freed.
				var data mem.BufferSlice
				var raw []*[]byte
				for b := tc.wire; len(b) > 0; {
					n := min(size, len(b))
					buf := mem.DefaultBufferPool().Get(n)
					copy(*buf, b[:n])
					raw = append(raw, buf)
					data = append(data, mem.SliceBuffer(*buf))
					b = b[n:]
				}
				into := proto.Clone(tc.into)
				if err := newRawCodec(nil, nil).Unmarshal(data, into); err != nil {
					t.Fatal(err)
				}
				data.Free()
				for _, buf := range raw {
					for i := range *buf {
						(*buf)[i] = 0xa5
					}
				}
				if diff := cmp.Diff(into, tc.want, protocmp.Transform()); diff != "" {
					t.Errorf("decoded (-got +want):\n%s", diff)
				}
			})
		}
	}
}

// Through the codec, a published entry's credentials are redacted before
// the store sees them, and the store's own redaction finds nothing left to
// do.
func TestCodecRedactsPublishedCredentials(t *testing.T) {
	s, err := store.New(store.Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, RedactHeaders: []string{"X-Api-Key"}, Encoder: wire.Encoder{}})
	if err != nil {
		t.Fatal(err)
	}
	e := testentry.Proxied(1)
	e.RequestHeaders = append(e.RequestHeaders,
		&pxperfv1.Header{Name: "Authorization", Value: "Basic dXNlcjpwYXNz"},
		&pxperfv1.Header{Name: "x-api-key", Value: "k-123"})
	var req pxperfv1.PublishStreamRequest
	if err := newRawCodec(s.Redacts, nil).Unmarshal(mem.BufferSlice{mem.SliceBuffer(testentry.MarshalRequest(t, e))}, &req); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range req.GetEntries()[0].GetRequestHeaders() {
		got[h.GetName()] = h.GetValue()
	}
	want := map[string]string{"User-Agent": e.RequestHeaders[0].Value, "Accept": "*/*", "Authorization": store.Redacted, "x-api-key": store.Redacted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded request headers (-want +got):\n%s", diff)
	}
}

// A ListEntriesResponse the codec sends from the store's cache is byte for
// byte what proto.Marshal makes of it: for a window without a filter (one buffer),
// for scattered entries, and for a copy the store does not hold (an entry
// with its body added), which is marshalled.
func TestCodecMarshalsListFromCache(t *testing.T) {
	s, err := store.New(store.Config{MaxEntries: 100, MaxMemoryBytes: 1 << 30, MaxBodySize: 1 << 10, Encoder: wire.Encoder{}})
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

// A batch of cached fields goes out as a few slices, the entries' own
// between the head and the tail that wire.Batch makes, and the codec
// passes them on as they are; messageSize counts their bytes.
func TestEncodeBatch(t *testing.T) {
	var enc wire.Encoder
	field := func(id uint64) []byte {
		e := &pxperfv1.Entry{Id: id, Method: "GET", Url: "http://example.com/"}
		return enc.AppendField(nil, e, enc.FieldSize(e))
	}
	for _, tt := range []struct {
		name     string
		batch    hub.WireBatch
		wantBufs int      // slices in the message
		wantIDs  []uint64 // of the entries, then the updates
	}{
		{"entries apart", hub.WireBatch{Entries: [][]byte{field(7), field(9)}, NextID: 10}, 4, []uint64{7, 9}},
		{"entries together", hub.WireBatch{Entries: [][]byte{bytes.Join([][]byte{field(7), field(9)}, nil)}, NextID: 10}, 3, []uint64{7, 9}},
		{"updates", hub.WireBatch{Updates: [][]byte{field(3)}, NextID: 10, UpdatesLost: 2}, 2, []uint64{3}},
		{"entries alone", hub.WireBatch{Entries: [][]byte{field(7)}}, 2, []uint64{7}},
		{"empty", hub.WireBatch{}, 1, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := encodeBatch(&tt.batch)
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
			var ids []uint64
			for _, e := range append(got.GetBatch().GetEntries(), got.GetBatch().GetUpdates()...) {
				ids = append(ids, e.GetId())
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" || got.GetBatch().GetNextId() != tt.batch.NextID || got.GetBatch().GetUpdatesLost() != tt.batch.UpdatesLost {
				t.Errorf("decoded %v: ids (-want +got):\n%s", &got, diff)
			}
		})
	}
}
