package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// A request body follows the response body's rules end to end: cut once
// at ingest to memory.max_body_size with its original size and content
// type kept; its data sent by every reader asked for bodies, and by none
// that was not, from memory and from the archive alike.
func TestRequestBodyEverywhere(t *testing.T) {
	const maxBody = 16
	h := archiveHarness(t, func(c *pxperfv1.Config) { c.Memory.MaxBodySize = maxBody })
	ctx := testContext(t)
	e := entry("POST", "http://example.com/upload", 201)
	e.RequestBody = &pxperfv1.Body{Data: bytes.Repeat([]byte("u"), 2*maxBody), ContentType: "application/octet-stream"}
	e.ResponseBody = &pxperfv1.Body{Data: []byte("ok"), ContentType: "text/plain"}
	id := h.publish(t, ctx, e)[0]
	whole := &pxperfv1.Body{Data: bytes.Repeat([]byte("u"), maxBody), ContentType: "application/octet-stream", OriginalSize: 2 * maxBody, Truncated: true}

	// Each reader returns the entry id as it sends it, with bodies or
	// without.
	get := func(t *testing.T, ctx context.Context, _ bool) *pxperfv1.Entry {
		got, err := h.client.GetEntry(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	list := func(t *testing.T, ctx context.Context, bodies bool) *pxperfv1.Entry {
		resp, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{IncludeBodies: bodies, Order: pxperfv1.Order_ORDER_OLDEST_FIRST})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetEntries(); len(got) == 0 || got[0].GetId() != id {
			t.Fatalf("ListEntries: %d entries, the first not %d", len(got), id)
		}
		return resp.GetEntries()[0]
	}
	subscribe := func(t *testing.T, ctx context.Context, bodies bool) *pxperfv1.Entry {
		sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: id}, IncludeBodies: bodies})
		defer sub.stop()
		for {
			for _, got := range sub.recv(t).GetBatch().GetEntries() {
				if got.GetId() == id {
					return got
				}
			}
		}
	}
	readArchive := func(t *testing.T, ctx context.Context, bodies bool) *pxperfv1.Entry {
		stream, err := h.client.Service().ReadArchive(ctx, &pxperfv1.ReadArchiveRequest{
			Range:         &pxperfv1.ReadArchiveRequest_Ids{Ids: &pxperfv1.IdRange{FirstId: id, LastId: id}},
			IncludeBodies: bodies,
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) || len(resp.GetEntries()) != 1 {
			t.Fatalf("ReadArchive of id %d: %v, %v", id, resp, err)
		}
		return resp.GetEntries()[0]
	}
	type reader struct {
		name   string
		read   func(t *testing.T, ctx context.Context, bodies bool) *pxperfv1.Entry
		bodies []bool // the include_bodies it takes
	}
	both := []bool{false, true}
	check := func(t *testing.T, readers []reader) {
		for _, r := range readers {
			for _, bodies := range r.bodies {
				t.Run(fmt.Sprintf("%s/bodies=%v", r.name, bodies), func(t *testing.T) {
					got := r.read(t, testContext(t), bodies)
					want := proto.CloneOf(whole)
					if !bodies {
						want.Data = nil
					}
					if diff := cmp.Diff(got.GetRequestBody(), want, protocmp.Transform()); diff != "" {
						t.Errorf("request body (-got +want):\n%s", diff)
					}
					if (got.GetResponseBody().GetData() != nil) != bodies {
						t.Errorf("response body data %q, with bodies %v", got.GetResponseBody().GetData(), bodies)
					}
				})
			}
		}
	}

	t.Run("memory", func(t *testing.T) {
		check(t, []reader{{"GetEntry", get, []bool{true}}, {"ListEntries", list, both}, {"Subscribe", subscribe, both}})
	})
	// Out of memory (it keeps 3 entries), into the archive.
	h.publish(t, ctx, entry("GET", "http://example.com/1", 200), entry("GET", "http://example.com/2", 200), entry("GET", "http://example.com/3", 200))
	h.archived(t, 4)
	t.Run("archive", func(t *testing.T) {
		check(t, []reader{{"GetEntry", get, []bool{true}}, {"Subscribe", subscribe, both}, {"ReadArchive", readArchive, both}})
	})
}
