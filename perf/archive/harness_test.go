package archive

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// harness is an open archive with a fake clock and a tick the test drives.
type harness struct {
	t     *testing.T
	ctx   context.Context
	a     *Archive
	cfg   Config
	clock *fakeClock
	tick  chan time.Time
}

// testCtx returns a context that ends with the test or after 30 s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens an archive on cfg (in a new temporary directory if cfg.Dir is
// empty) with a fake clock at genBase and a driven tick. It is closed at
// the end of the test.
func open(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	h := &harness{t: t, ctx: testCtx(t), clock: &fakeClock{t: genBase}, tick: make(chan time.Time)}
	cfg.Now = h.clock.Now
	cfg.test.tick = h.tick
	h.cfg = cfg
	h.reopen()
	return h
}

// reopen opens the archive again on the same directory and clock.
func (h *harness) reopen() {
	h.t.Helper()
	a, err := Open(h.cfg)
	if err != nil {
		h.t.Fatalf("Open: %v", err)
	}
	h.a = a
	h.t.Cleanup(func() { a.Close() })
}

// close closes the archive, failing the test on an error.
func (h *harness) close() {
	h.t.Helper()
	if err := h.a.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
}

// entry returns the test entry for id: start time genBase + id seconds.
func entry(id uint64) *pxperfv1.Entry {
	e := smallEntry(id)
	e.StartTime = timestamppb.New(genBase.Add(time.Duration(id) * time.Second))
	return e
}

// append appends entries with ids.
func (h *harness) append(ids ...uint64) {
	h.t.Helper()
	items := make([]Item, len(ids))
	for i, id := range ids {
		items[i] = Item{Entry: entry(id)}
	}
	if err := h.a.Append(items); err != nil {
		h.t.Fatalf("Append: %v", err)
	}
}

// appendRange appends ids from..to.
func (h *harness) appendRange(from, to uint64) {
	h.t.Helper()
	var ids []uint64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	h.append(ids...)
}

// sync waits until the writer has written everything appended so far.
func (h *harness) sync() {
	h.t.Helper()
	if err := h.a.ask(h.ctx, writeReq{kind: reqSync}); err != nil {
		h.t.Fatalf("sync: %v", err)
	}
}

// tickAt sets the clock to at and makes the writer handle a flush tick,
// then waits until it has.
func (h *harness) tickAt(at time.Time) {
	h.t.Helper()
	h.clock.Set(at)
	select {
	case h.tick <- at:
	case <-h.ctx.Done():
		h.t.Fatal("tick not taken")
	}
	h.sync() // the writer handles requests in order: the tick is done
}

// settle waits for the writer and then for housekeeping.
func (h *harness) settle() {
	h.t.Helper()
	h.sync()
	if err := h.a.housekeepingDone(h.ctx); err != nil {
		h.t.Fatalf("housekeeping: %v", err)
	}
}

func (h *harness) rotate() {
	h.t.Helper()
	if err := h.a.Rotate(h.ctx); err != nil {
		h.t.Fatalf("Rotate: %v", err)
	}
}

func (h *harness) files() []FileInfo {
	h.t.Helper()
	fs, err := h.a.Files()
	if err != nil {
		h.t.Fatalf("Files: %v", err)
	}
	return fs
}

// counts returns the entry count of each file, oldest first.
func (h *harness) counts() []uint64 {
	var n []uint64
	for _, f := range h.files() {
		n = append(n, f.Entries)
	}
	return n
}

// ids reads back the ids q selects.
func (h *harness) ids(q Query) []uint64 {
	h.t.Helper()
	var ids []uint64
	err := h.a.Read(h.ctx, q, func(e *pxperfv1.Entry) error {
		ids = append(ids, e.Id)
		return nil
	})
	if err != nil {
		h.t.Fatalf("Read: %v", err)
	}
	return ids
}

// dirNames lists the directory, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// seq returns from..to.
func seq(from, to uint64) []uint64 {
	var s []uint64
	for id := from; id <= to; id++ {
		s = append(s, id)
	}
	return s
}

func (h *harness) path(name string) string { return filepath.Join(h.cfg.Dir, name) }
