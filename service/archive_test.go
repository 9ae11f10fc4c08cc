package service_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// archived waits until the archive has written n entries (it flushes on
// its own clock).
func (h *harness) archived(t *testing.T, n uint64) {
	t.Helper()
	h.waitStats(t, fmt.Sprintf("the archive to write %d entries", n), func(st *pxperfv1.Stats) bool {
		return st.GetArchive().GetEntriesWritten() >= n
	})
}

func archiveHarness(t *testing.T, edit func(*pxperfv1.Config)) *harness {
	return newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 3
		c.Logs.MaxCount = 4 // rotate by count: several files
		c.Logs.FlushInterval = durationpb.New(10 * time.Millisecond)
		if edit != nil {
			edit(c)
		}
	})
}

func TestArchiveFilesReadAndGetEntry(t *testing.T) {
	h := archiveHarness(t, nil)
	ctx := testContext(t)
	for i := 1; i <= 10; i++ {
		status := int32(200)
		if i%5 == 0 {
			status = 503
		}
		e := entry("GET", fmt.Sprintf("http://example.com/%d", i), status)
		e.ResponseBody = &pxperfv1.Body{Data: []byte(fmt.Sprintf("body %d", i))}
		h.publish(t, ctx, e)
	}
	h.archived(t, 10)

	files, err := h.client.Service().ListLogFiles(ctx, &pxperfv1.ListLogFilesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(files.GetFiles()); n < 3 {
		t.Fatalf("%d files, want at least 3 (rotation every 4 entries)", n)
	}
	if f := files.GetFiles()[0]; f.GetFirstId() != 1 || f.GetLastId() != 4 {
		t.Errorf("first file holds ids %d..%d, want 1..4", f.GetFirstId(), f.GetLastId())
	}

	read := func(req *pxperfv1.ReadArchiveRequest) []uint64 {
		t.Helper()
		stream, err := h.client.Service().ReadArchive(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return ids
			}
			if err != nil {
				t.Fatalf("ReadArchive: %v", err)
			}
			for _, e := range resp.GetEntries() {
				if e.GetResponseBody().GetData() != nil && !req.GetIncludeBodies() {
					t.Errorf("entry %d has a body without include_bodies", e.GetId())
				}
				ids = append(ids, e.GetId())
			}
		}
	}
	if got := read(&pxperfv1.ReadArchiveRequest{Range: &pxperfv1.ReadArchiveRequest_Ids{Ids: &pxperfv1.IdRange{FirstId: 3, LastId: 8}}}); !cmp.Equal(got, []uint64{3, 4, 5, 6, 7, 8}) {
		t.Errorf("ids 3..8 = %v", got)
	}
	filtered := read(&pxperfv1.ReadArchiveRequest{
		Range:  &pxperfv1.ReadArchiveRequest_Ids{Ids: &pxperfv1.IdRange{FirstId: 1}},
		Filter: &pxperfv1.Filter{StatusRanges: []*pxperfv1.StatusRange{{Min: 500, Max: 599}}},
	})
	if !cmp.Equal(filtered, []uint64{5, 10}) {
		t.Errorf("5xx = %v, want [5 10]", filtered)
	}

	// Id 2 left memory (3 kept): GetEntry reads it back, body and all.
	e, err := h.client.GetEntry(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if e.GetUrl() != "http://example.com/2" || string(e.GetResponseBody().GetData()) != "body 2" {
		t.Errorf("archived entry 2 = %v", e)
	}
	if _, err := h.client.GetEntry(ctx, 99); status.Code(err) != codes.NotFound {
		t.Errorf("GetEntry(99) = %v, want NOT_FOUND", err)
	}
}

// A subscriber resuming from ids that left memory is fed from the archive
// first, then from memory: every id once, no gap.
func TestSubscribeFedFromArchive(t *testing.T) {
	h := archiveHarness(t, nil)
	ctx := testContext(t)
	for i := 1; i <= 10; i++ {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	h.archived(t, 10)
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}})
	var got []uint64
	for len(got) < 10 {
		m := sub.recv(t)
		if g := m.GetGap(); g != nil {
			t.Fatalf("gap %d..%d, although the archive holds those ids", g.GetFirstMissedId(), g.GetLastMissedId())
		}
		got = append(got, batchIDs(m)...)
	}
	if !cmp.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Errorf("ids = %v, want 1..10 once each", got)
	}
}

// A subscriber may start at ids that left memory but that the archive's
// writer has not written yet (it writes a file on its own clock): they
// are still the archive's, not gone, and are read back like the others.
func TestSubscribeFromIDsNotYetWritten(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		c.Memory.MaxEntries = 3
		c.Logs.FlushInterval = durationpb.New(time.Minute) // nothing written during the test but on demand
	})
	ctx := testContext(t)
	for i := 1; i <= 10; i++ {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}})
	var got []uint64
	for len(got) < 10 {
		m := sub.recv(t)
		if g := m.GetGap(); g != nil {
			t.Fatalf("gap %d..%d, although the archive holds those ids", g.GetFirstMissedId(), g.GetLastMissedId())
		}
		got = append(got, batchIDs(m)...)
	}
	if !cmp.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Errorf("ids = %v, want 1..10 once each", got)
	}
}

// Ids continue after a restart: the new server starts after the last id
// archived.
func TestIDsContinueAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	first := newHarness(t, func(c *pxperfv1.Config) { c.Logs.Directory = dir })
	ids := first.publish(t, ctx, entry("GET", "http://example.com/a", 200), entry("GET", "http://example.com/b", 200))
	first.srv.Shutdown() // writes out and closes the archive

	second := newHarness(t, func(c *pxperfv1.Config) { c.Logs.Directory = dir })
	if got := second.publish(t, ctx, entry("GET", "http://example.com/c", 200)); got[0] != ids[1]+1 {
		t.Errorf("id after restart = %d, want %d", got[0], ids[1]+1)
	}
	if e, err := second.client.GetEntry(ctx, ids[0]); err != nil || e.GetUrl() != "http://example.com/a" {
		t.Errorf("entry %d from before the restart = %v, %v", ids[0], e, err)
	}
}

func TestArchiveOffAnswersFailedPrecondition(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Logs.Enabled = false })
	_, err := h.client.Service().ListLogFiles(testContext(t), &pxperfv1.ListLogFilesRequest{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ListLogFiles with the archive off = %v, want FAILED_PRECONDITION", err)
	}
}
