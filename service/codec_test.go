package service

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// marshalRequest returns a PublishStreamRequest holding entries in wire
// form.
func marshalRequest(tb testing.TB, entries ...*pxperfv1.Entry) []byte {
	tb.Helper()
	b, err := proto.Marshal(&pxperfv1.PublishStreamRequest{Entries: entries})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

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
		{"stream", marshalRequest(t, full, testentry.Proxied(2)), new(pxperfv1.PublishStreamRequest), &pxperfv1.PublishStreamRequest{Entries: []*pxperfv1.Entry{full, testentry.Proxied(2)}}},
		{"unary", marshalRequest(t, full), new(pxperfv1.PublishRequest), &pxperfv1.PublishRequest{Entries: []*pxperfv1.Entry{full}}},
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
	s, err := store.New(store.Config{MaxEntries: 10, MaxMemoryBytes: 1 << 30, RedactHeaders: []string{"X-Api-Key"}})
	if err != nil {
		t.Fatal(err)
	}
	e := testentry.Proxied(1)
	e.RequestHeaders = append(e.RequestHeaders,
		&pxperfv1.Header{Name: "Authorization", Value: "Basic dXNlcjpwYXNz"},
		&pxperfv1.Header{Name: "x-api-key", Value: "k-123"})
	var req pxperfv1.PublishStreamRequest
	if err := newRawCodec(s.Redacts, nil).Unmarshal(mem.BufferSlice{mem.SliceBuffer(marshalRequest(t, e))}, &req); err != nil {
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
