// Package testentry makes entries for pxperf's tests and benchmarks: the
// one every benchmark publishes, so that all measure the same ~300-byte
// entry, random ones at and past the contract's limits, and publish
// requests holding entries.
package testentry

import (
	"fmt"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Proxied returns entry i as a busy proxy would record it: a completed GET
// of a versioned static file, about 300 bytes marshalled. Host, state and
// priority are set as pxperf would derive them, so that the only field
// pxperf adds before relaying is the id. Entries differ in request id,
// URL, start time (entry 0 starts at 2026-11-27 10:00 UTC, entry i i ms
// later), total time and bytes received.
func Proxied(i int) *pxperfv1.Entry {
	return &pxperfv1.Entry{
		RequestId:  fmt.Sprintf("px-%08d", i),
		StartTime:  timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)),
		Method:     "GET",
		Url:        fmt.Sprintf("https://cdn.shop-example.com/static/js/chunk-vendors.%08x.min.js?v=2026.11.27", i*2654435761%(1<<32)),
		Host:       "cdn.shop-example.com",
		State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		StatusCode: 200,
		RequestHeaders: []*pxperfv1.Header{
			{Name: "User-Agent", Value: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
			{Name: "Accept", Value: "*/*"},
		},
		ResponseHeaders: []*pxperfv1.Header{
			{Name: "Content-Type", Value: "application/javascript"},
		},
		Timings:       &pxperfv1.Timings{Total: durationpb.New(42*time.Millisecond + time.Duration(i%1000)*time.Microsecond)},
		BytesSent:     412,
		BytesReceived: 48213 + int64(i%4096),
		Priority:      pxperfv1.Priority_PRIORITY_NORMAL,
	}
}

// MarshalRequest returns a PublishStreamRequest holding entries in wire
// form, failing tb if they do not marshal.
func MarshalRequest(tb testing.TB, entries ...*pxperfv1.Entry) []byte {
	tb.Helper()
	b, err := proto.Marshal(&pxperfv1.PublishStreamRequest{Entries: entries})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
