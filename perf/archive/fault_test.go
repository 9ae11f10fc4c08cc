package archive

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// diskFull is a current file whose writes fail with ENOSPC, after writing
// part of what they were given, while full is set.
type diskFull struct {
	*os.File
	mu     *sync.Mutex
	full   *bool
	writes *int // failed writes
}

func (f *diskFull) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *f.full {
		*f.writes++
		n, _ := f.File.WriteAt(p[:len(p)/2], off) // a partial write, as a real one can be
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

// TestDiskFull: writes fail with ENOSPC for a while; nothing is lost or
// written twice once space returns, including across a rotation due
// meanwhile and a restart.
func TestDiskFull(t *testing.T) {
	var mu sync.Mutex
	full := false
	writes := 0
	setFull := func(v bool) { mu.Lock(); full = v; mu.Unlock() }
	cfg := Config{MaxCount: 30}
	cfg.test.openFile = func(name string) (file, error) {
		f, err := openAppendFile(name)
		if err != nil {
			return nil, err
		}
		return &diskFull{File: f.(*os.File), mu: &mu, full: &full, writes: &writes}, nil
	}
	h := open(t, cfg)
	h.appendRange(1, 10)
	h.tickAt(genBase.Add(time.Second)) // file created, lines written
	setFull(true)
	h.appendRange(11, 40) // passes MaxCount: the rotation waits for the disk
	h.tickAt(genBase.Add(2 * time.Second))
	st := h.a.Stats()
	if st.WriteErrors == 0 || !strings.Contains(st.LastError, "no space left") {
		t.Fatalf("WriteErrors %d, LastError %q", st.WriteErrors, st.LastError)
	}
	// A read meanwhile sees what is on disk.
	if diff := cmp.Diff(seq(1, 10), h.ids(Query{})); diff != "" {
		t.Errorf("ids while the disk is full (-want +got):\n%s", diff)
	}
	h.appendRange(41, 50)
	h.tickAt(genBase.Add(3 * time.Second))
	if n := h.a.Stats().WriteErrors; n < 2 {
		t.Errorf("WriteErrors = %d: the write was not retried on the tick", n)
	}

	setFull(false)
	h.tickAt(genBase.Add(4 * time.Second))
	h.appendRange(51, 55)
	h.sync()
	if diff := cmp.Diff(seq(1, 55), h.ids(Query{})); diff != "" {
		t.Errorf("ids after the disk came back (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{50, 5}, h.counts()); diff != "" {
		t.Errorf("entries per file (-want +got):\n%s", diff)
	}
	if got := h.a.Stats(); got.EntriesWritten != 55 || got.RotationsByCount != 1 || got.EntriesDropped != 0 {
		t.Errorf("EntriesWritten %d, RotationsByCount %d, EntriesDropped %d", got.EntriesWritten, got.RotationsByCount, got.EntriesDropped)
	}
	// The files themselves hold each entry once: read them again from disk.
	h.close()
	h.reopen()
	if diff := cmp.Diff(seq(1, 55), h.ids(Query{})); diff != "" {
		t.Errorf("ids after restart (-want +got):\n%s", diff)
	}
	if got := h.a.Stats().CorruptLines; got != 0 {
		t.Errorf("CorruptLines = %d", got)
	}
}

// TestDiskFullDropsWhenQueueFull: while writes fail, Append does not block
// on a full queue: it drops and counts.
func TestDiskFullDropsWhenQueueFull(t *testing.T) {
	var mu sync.Mutex
	full, writes := true, 0
	cfg := Config{QueueSize: 10}
	cfg.test.openFile = func(name string) (file, error) {
		f, err := openAppendFile(name)
		if err != nil {
			return nil, err
		}
		return &diskFull{File: f.(*os.File), mu: &mu, full: &full, writes: &writes}, nil
	}
	h := open(t, cfg)
	h.appendRange(1, 5)
	h.tickAt(genBase.Add(time.Second)) // the write fails: failing from now on
	h.appendRange(6, 100)              // returns: the writer holds 10, the queue 10
	h.sync()
	st := h.a.Stats()
	if st.EntriesDropped == 0 {
		t.Fatalf("EntriesDropped = 0; stats %+v", st)
	}
	mu.Lock()
	full = false
	mu.Unlock()
	h.tickAt(genBase.Add(2 * time.Second))
	h.sync()
	got := h.ids(Query{})
	if uint64(len(got))+h.a.Stats().EntriesDropped != 100 {
		t.Errorf("%d entries written + %d dropped, want 100", len(got), h.a.Stats().EntriesDropped)
	}
	if len(got) < 10 || got[0] != 1 {
		t.Errorf("written %v", got)
	}
}

// TestQueueFullWaits: with a healthy but slow disk, Append waits for room,
// by entries or by body bytes, and counts the wait.
func TestQueueFullWaits(t *testing.T) {
	withBody := func(id uint64, n int) Item { return Item{Entry: entry(id), Body: make([]byte, n)} }
	withRequestBody := func(id uint64, n int) Item { return Item{Entry: entry(id), RequestBody: make([]byte, n)} }
	for _, tt := range []struct {
		name string
		cfg  Config
		fill []Item // queued while the writer is blocked: fills the queue
		next Item   // then waits
	}{
		{"entries", Config{QueueSize: 2}, []Item{{Entry: entry(2)}, {Entry: entry(3)}}, Item{Entry: entry(4)}},
		{"body bytes", Config{QueueBytes: 64 << 10}, []Item{withBody(2, 32<<10), withBody(3, 32<<10)}, withBody(4, 1)},
		{"request body bytes", Config{QueueBytes: 64 << 10}, []Item{withRequestBody(2, 32<<10), withBody(3, 32<<10)}, withRequestBody(4, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entered := make(chan struct{})
			release := make(chan struct{})
			cfg := tt.cfg
			cfg.test.openFile = func(name string) (file, error) {
				close(entered)
				<-release // a slow disk
				return openAppendFile(name)
			}
			h := open(t, cfg)
			h.append(1)
			synced := make(chan error)
			go func() { synced <- h.a.ask(h.ctx, writeReq{kind: reqSync}) }() // the writer blocks creating the file
			<-entered
			if err := h.a.Append(tt.fill); err != nil {
				t.Fatal(err)
			}
			appended := make(chan error)
			go func() { appended <- h.a.Append([]Item{tt.next}) }()
			// Wait, without sleeping, until that Append is waiting.
			deadline := time.Now().Add(10 * time.Second)
			for h.a.Stats().QueueFullWaits == 0 {
				if time.Now().After(deadline) {
					t.Fatal("Append did not wait")
				}
				runtime.Gosched()
			}
			close(release)
			if err := <-appended; err != nil {
				t.Fatal(err)
			}
			if err := <-synced; err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(seq(1, 4), h.ids(Query{})); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if st := h.a.Stats(); st.QueueFullWaits != 1 || st.EntriesDropped != 0 {
				t.Errorf("QueueFullWaits %d, EntriesDropped %d", st.QueueFullWaits, st.EntriesDropped)
			}
		})
	}
}

// A single entry whose body is larger than QueueBytes is still queued, on
// its own, rather than waiting forever.
func TestQueueTakesOneLargeBody(t *testing.T) {
	q := newQueue(10, 100)
	big := Item{Entry: entry(1), Body: make([]byte, 1000)}
	if n, ok := q.put([]Item{big}, func() bool { return false }); n != 1 || !ok {
		t.Fatalf("put = %d, %v; want 1, true", n, ok)
	}
	if got := q.take(nil, -1); len(got) != 1 || q.bytes != 0 {
		t.Errorf("took %d items, %d bytes left; want 1 and 0", len(got), q.bytes)
	}
}
