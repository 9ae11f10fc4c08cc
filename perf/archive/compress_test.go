package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompression(t *testing.T) {
	h := open(t, Config{MaxCount: 10, Compress: true})
	h.appendRange(1, 25)
	h.settle()
	files := h.files()
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
		if f.Current == f.Compressed {
			t.Errorf("%s: current %v, compressed %v", f.Name, f.Current, f.Compressed)
		}
	}
	want := []string{
		"pxperf-20261127T100000.000000000Z-000001.jsonl.zst",
		"pxperf-20261127T100000.000000001Z-000011.jsonl.zst",
		"pxperf-20261127T100000.000000002Z-000021.jsonl",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	// No original, no temporary left; a sidecar for each file.
	wantDir := []string{
		"pxperf-20261127T100000.000000000Z-000001.jsonl.zst", "pxperf-20261127T100000.000000000Z-000001.meta",
		"pxperf-20261127T100000.000000001Z-000011.jsonl.zst", "pxperf-20261127T100000.000000001Z-000011.meta",
		"pxperf-20261127T100000.000000002Z-000021.jsonl", "pxperf-20261127T100000.000000002Z-000021.meta",
	}
	if diff := cmp.Diff(wantDir, dirNames(t, h.cfg.Dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	st := h.a.Stats()
	if st.CompressionRatio <= 0 || st.CompressionRatio >= 1 || st.CompressionTime <= 0 {
		t.Errorf("compression ratio %v, time %v", st.CompressionRatio, st.CompressionTime)
	}
	if st.WriteErrors != 0 {
		t.Errorf("WriteErrors = %d (%s)", st.WriteErrors, st.LastError)
	}
	// The current file is not owed a compression yet.
	if st.FilesAwaitingCompression != 0 {
		t.Errorf("FilesAwaitingCompression = %d, want 0", st.FilesAwaitingCompression)
	}
	if diff := cmp.Diff(seq(1, 25), h.ids(Query{})); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

// TestCompressedReadableByTools reads a compressed file with zstdcat and
// each line with jq, as a user without pxperf would.
func TestCompressedReadableByTools(t *testing.T) {
	zstdcat, err := exec.LookPath("zstdcat")
	if err != nil {
		t.Skip("zstdcat not installed")
	}
	h := open(t, Config{Compress: true})
	h.appendRange(1, 100)
	h.rotate()
	h.settle()
	out, err := exec.CommandContext(h.ctx, zstdcat, h.path(h.files()[0].Name)).Output()
	if err != nil {
		t.Fatalf("zstdcat: %v", err)
	}
	var ids []uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		e, err := decodeLine(sc.Bytes())
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, e.Id)
	}
	if diff := cmp.Diff(seq(1, 100), ids); diff != "" {
		t.Errorf("ids from zstdcat (-want +got):\n%s", diff)
	}
	if jq, err := exec.LookPath("jq"); err == nil {
		cmd := exec.CommandContext(h.ctx, jq, "-r", ".id")
		cmd.Stdin = bytes.NewReader(out)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("jq: %v", err)
		}
		if lines := strings.Fields(string(got)); len(lines) != 100 || lines[0] != "1" || lines[99] != "100" {
			t.Errorf("jq -r .id gave %d ids: %.40q…", len(lines), got)
		}
	}
}

// failingFile fails its writes after n bytes, or its fsync.
type failingFile struct {
	*os.File
	n        int
	failSync bool
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) > f.n {
		m, _ := f.File.Write(p[:f.n])
		f.n -= m
		return m, syscall.ENOSPC
	}
	f.n -= len(p)
	return f.File.Write(p)
}

func (f *failingFile) Sync() error {
	if f.failSync {
		return syscall.EIO
	}
	return f.File.Sync()
}

func TestCompressionFailure(t *testing.T) {
	tests := []struct {
		name   string
		create func(string) (file, error)
	}{
		{"create", func(string) (file, error) { return nil, syscall.EACCES }},
		{"write", func(name string) (file, error) {
			f, err := openAppendFile(name)
			if err != nil {
				return nil, err
			}
			return &failingFile{File: f.(*os.File), n: 100}, nil
		}},
		{"fsync", func(name string) (file, error) {
			f, err := openAppendFile(name)
			if err != nil {
				return nil, err
			}
			return &failingFile{File: f.(*os.File), n: 1 << 30, failSync: true}, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			fail := true
			cfg := Config{Compress: true}
			cfg.test.createTemp = func(name string) (file, error) {
				mu.Lock()
				defer mu.Unlock()
				if fail {
					return tt.create(name)
				}
				return openAppendFile(name)
			}
			h := open(t, cfg)
			h.appendRange(1, 50)
			h.rotate()
			h.settle()
			files := h.files()
			if len(files) != 1 || files[0].Compressed || files[0].Name != "pxperf-20261127T100000.000000000Z-000001.jsonl" {
				t.Fatalf("files after a failed compression = %+v, want the original", files)
			}
			for _, name := range dirNames(t, h.cfg.Dir) {
				if strings.HasSuffix(name, tempExt) || strings.HasSuffix(name, zstdExt) {
					t.Errorf("%s left behind", name)
				}
			}
			st := h.a.Stats()
			if st.WriteErrors == 0 || !strings.Contains(st.LastError, "compressing") {
				t.Errorf("WriteErrors %d, LastError %q", st.WriteErrors, st.LastError)
			}
			// Still owed a compression: the backlog counts it.
			if st.FilesAwaitingCompression != 1 || st.BytesAwaitingCompression != uint64(files[0].Size) {
				t.Errorf("awaiting compression: %d files, %d bytes; want 1, %d",
					st.FilesAwaitingCompression, st.BytesAwaitingCompression, files[0].Size)
			}
			if diff := cmp.Diff(seq(1, 50), h.ids(Query{})); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}

			// Tried again after the next rotation, and succeeds.
			mu.Lock()
			fail = false
			mu.Unlock()
			h.appendRange(51, 60)
			h.rotate()
			h.settle()
			for _, f := range h.files() {
				if !f.Compressed {
					t.Errorf("%s still not compressed", f.Name)
				}
			}
			if st := h.a.Stats(); st.FilesAwaitingCompression != 0 || st.BytesAwaitingCompression != 0 {
				t.Errorf("awaiting compression after it succeeded: %d files, %d bytes", st.FilesAwaitingCompression, st.BytesAwaitingCompression)
			}
			if diff := cmp.Diff(seq(1, 60), h.ids(Query{})); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCompressionBacklog: the stats count the rotated files owed a
// compression, and their bytes, until housekeeping has compressed them;
// with compression off, none is owed one.
func TestCompressionBacklog(t *testing.T) {
	for _, compress := range []bool{true, false} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			started := make(chan struct{})
			release := make(chan struct{})
			// Deferred too, so that a failing test does not leave Close
			// waiting for the held compression.
			releaseOnce := sync.OnceFunc(func() { close(release) })
			defer releaseOnce()
			cfg := Config{Compress: compress}
			var once sync.Once
			cfg.test.createTemp = func(name string) (file, error) {
				once.Do(func() {
					close(started)
					<-release // hold the first compression
				})
				return openAppendFile(name)
			}
			h := open(t, cfg)
			h.appendRange(1, 10)
			h.rotate()
			h.appendRange(11, 20)
			h.rotate()
			if compress {
				<-started
			}
			h.sync()
			// Two rotated files; the next line would start a current one.
			files := h.files()
			if len(files) != 2 || files[0].Current || files[1].Current {
				t.Fatalf("files = %+v, want two rotated", files)
			}
			var wantFiles, wantBytes uint64
			if compress {
				wantFiles, wantBytes = 2, uint64(files[0].Size+files[1].Size)
			}
			st := h.a.Stats()
			if st.FilesAwaitingCompression != wantFiles || st.BytesAwaitingCompression != wantBytes {
				t.Errorf("while held: %d files, %d bytes awaiting compression; want %d, %d",
					st.FilesAwaitingCompression, st.BytesAwaitingCompression, wantFiles, wantBytes)
			}
			releaseOnce()
			h.settle()
			if st := h.a.Stats(); st.FilesAwaitingCompression != 0 || st.BytesAwaitingCompression != 0 {
				t.Errorf("after housekeeping: %d files, %d bytes awaiting compression; want none",
					st.FilesAwaitingCompression, st.BytesAwaitingCompression)
			}
		})
	}
}

// TestCloseDuringCompression: Close stops a compression in progress; the
// next Open compresses the file.
func TestCloseDuringCompression(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	cfg := Config{Compress: true}
	var once sync.Once
	cfg.test.createTemp = func(name string) (file, error) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			<-release // hold the compression until Close has begun
		}
		return openAppendFile(name)
	}
	h := open(t, cfg)
	h.appendRange(1, 10)
	h.rotate()
	<-started
	closed := make(chan error)
	go func() { closed <- h.a.Close() }()
	// Close cancels housekeeping's context before it closes closec; the
	// compression sees it at its first chunk.
	<-h.a.closec
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, name := range dirNames(t, h.cfg.Dir) {
		if strings.HasSuffix(name, tempExt) || strings.HasSuffix(name, zstdExt) {
			t.Errorf("%s: the compression was not abandoned", name)
		}
	}
	h.reopen()
	h.settle()
	if f := h.files(); len(f) != 1 || !f[0].Compressed {
		t.Errorf("files after reopen = %+v, want one compressed", f)
	}
	if diff := cmp.Diff(seq(1, 10), h.ids(Query{})); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}
