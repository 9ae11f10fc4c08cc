package archive

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// firstIDs returns each file's first id, oldest first.
func (h *harness) firstIDs() []uint64 {
	var ids []uint64
	for _, f := range h.files() {
		ids = append(ids, f.FirstID)
	}
	return ids
}

func TestRetention(t *testing.T) {
	tests := []struct {
		name   string
		limits Config        // retention limits
		now    time.Duration // clock (after genBase) for the last rotation and the restart
		want   []uint64      // first ids of the files kept
	}{
		// Six files of five entries, ids 100..129, entry start times
		// genBase + id seconds.
		{name: "max files, the current slot counted", limits: Config{MaxFiles: 3}, want: []uint64{120, 125}},
		{name: "max age by the newest entry", limits: Config{MaxAge: time.Hour}, now: time.Hour + 115*time.Second,
			want: []uint64{115, 120, 125}},
		{name: "max total bytes", limits: Config{MaxTotalBytes: 3*5*lineSize + 10}, want: []uint64{115, 120, 125}},
		{name: "all three", limits: Config{MaxFiles: 5, MaxAge: time.Hour, MaxTotalBytes: 2*5*lineSize + 10},
			now: time.Hour + 108*time.Second, want: []uint64{120, 125}},
	}
	build := func(h *harness, now time.Duration) {
		for id := uint64(100); id < 130; id += 5 {
			if id == 125 && now != 0 {
				h.clock.Set(genBase.Add(now))
			}
			h.appendRange(id, id+4)
			h.rotate()
		}
		h.settle()
	}
	check := func(h *harness, want []uint64) {
		h.t.Helper()
		if diff := cmp.Diff(want, h.firstIDs()); diff != "" {
			h.t.Errorf("files kept (-want +got):\n%s", diff)
		}
		if got, want := uint64(6-len(want)), h.a.Stats().FilesDeleted; got != want {
			h.t.Errorf("FilesDeleted = %d, want %d", want, got)
		}
		// Sidecars go with their files.
		if n := len(dirNames(h.t, h.cfg.Dir)); n != 2*len(want) {
			h.t.Errorf("%d names in the directory, want %d: %v", n, 2*len(want), dirNames(h.t, h.cfg.Dir))
		}
	}
	for _, tt := range tests {
		t.Run(tt.name+"/at rotation", func(t *testing.T) {
			h := open(t, tt.limits)
			build(h, tt.now)
			check(h, tt.want)
		})
		t.Run(tt.name+"/at start-up", func(t *testing.T) {
			h := open(t, Config{})
			build(h, tt.now)
			h.close()
			// The files were written at the fake clock's times, not the
			// real ones the file system recorded.
			setModTimes(t, h.cfg.Dir, genBase)
			h.cfg.MaxFiles, h.cfg.MaxAge, h.cfg.MaxTotalBytes = tt.limits.MaxFiles, tt.limits.MaxAge, tt.limits.MaxTotalBytes
			h.reopen()
			// Open applied retention before it returned.
			check(h, tt.want)
		})
	}
}

func TestRetentionKeepsCurrent(t *testing.T) {
	h := open(t, Config{MaxTotalBytes: 1, MaxFiles: 1, MaxAge: time.Nanosecond})
	h.appendRange(1, 5)
	h.rotate()
	h.appendRange(6, 10)
	h.settle()
	files := h.files()
	if len(files) != 1 || !files[0].Current || files[0].FirstID != 6 {
		t.Errorf("files = %+v, want the current one only", files)
	}
	h.clock.Set(genBase.Add(24 * time.Hour))
	if err := h.a.SetConfig(h.a.Config()); err != nil { // a retention pass
		t.Fatal(err)
	}
	h.settle()
	if files := h.files(); len(files) != 1 || !files[0].Current {
		t.Errorf("files = %+v, want the current one kept", files)
	}
	if st := h.a.Stats(); st.WriteErrors != 0 || st.FilesDeleted != 1 {
		t.Errorf("WriteErrors %d (%s), FilesDeleted %d, want 0 and 1", st.WriteErrors, st.LastError, st.FilesDeleted)
	}
}

// setModTimes sets the modification time of every file in dir to mt.
func setModTimes(t *testing.T, dir string, mt time.Time) {
	t.Helper()
	for _, name := range dirNames(t, dir) {
		if err := os.Chtimes(filepath.Join(dir, name), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// A file of old entries written recently is kept: its age is that of its
// newest entry or its last write, whichever is later.
func TestRetentionAgeCountsTheWrite(t *testing.T) {
	h := open(t, Config{MaxAge: time.Hour})
	h.appendRange(100, 104) // entries start at genBase + id seconds
	h.clock.Set(genBase.Add(10 * time.Hour))
	h.rotate() // written now: ten hours after its entries
	h.appendRange(105, 109)
	h.rotate()
	h.settle()
	if diff := cmp.Diff([]uint64{100, 105}, h.firstIDs()); diff != "" {
		t.Errorf("files kept (-want +got):\n%s", diff)
	}
	h.clock.Set(genBase.Add(12 * time.Hour)) // now both are old
	h.appendRange(110, 114)
	h.rotate()
	h.settle()
	if diff := cmp.Diff([]uint64{110}, h.firstIDs()); diff != "" {
		t.Errorf("files kept two hours later (-want +got):\n%s", diff)
	}
}

// TestRetentionBeforeEachCompression: files rotated while housekeeping is
// busy compressing are not compressed once retention would delete them:
// retention by count is applied before each compression, not only when a
// pass begins.
func TestRetentionBeforeEachCompression(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failing test must not leave Close waiting
	var mu sync.Mutex
	var compressed []string // temporaries created, in order
	cfg := Config{Compress: true, MaxFiles: 2}
	cfg.test.createTemp = func(name string) (file, error) {
		mu.Lock()
		compressed = append(compressed, filepath.Base(name))
		first := len(compressed) == 1
		mu.Unlock()
		if first {
			close(started)
			<-release // hold the first compression while three more files rotate
		}
		return openAppendFile(name)
	}
	h := open(t, cfg)
	h.appendRange(1, 10)
	h.rotate()
	<-started
	for id := uint64(11); id <= 31; id += 10 {
		h.appendRange(id, id+9)
		h.rotate()
	}
	releaseOnce()
	h.settle()

	// max_files 2 keeps the newest rotated file beside the current slot.
	if got := h.firstIDs(); !cmp.Equal(got, []uint64{31}) {
		t.Errorf("files kept start at ids %v, want [31]", got)
	}
	// The first file, held, and the one kept: not the two retention
	// deleted in between.
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"pxperf-20261127T100000.000000000Z-000001.jsonl.zst.tmp",
		"pxperf-20261127T100000.000000003Z-000031.jsonl.zst.tmp",
	}
	if diff := cmp.Diff(want, compressed); diff != "" {
		t.Errorf("files compressed (-want +got):\n%s", diff)
	}
}
