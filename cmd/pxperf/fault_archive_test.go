package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// This file reads an archive directory the way an operator's tools would
// (plain files and zstdcat, line by line, any JSON parser), independently
// of perf/archive, so that the fault tests check the files themselves and
// not the archive's own view of them. Names and sidecars are as documented
// in perf/archive/doc.go: pxperf-<start>-<first id>.jsonl, .jsonl.zst once
// compressed, and the sidecar <stem>.meta.

// Archive file name parts (perf/archive/name.go).
const (
	archivePrefix = "pxperf-"
	archivePlain  = ".jsonl"
	archiveZstd   = ".jsonl.zst"
	archiveGzip   = ".jsonl.gz"
	archiveMeta   = ".meta"
	archiveTemp   = ".tmp"
)

// archiveLine is what the fault tests keep of one archive line.
type archiveLine struct {
	id        uint64
	requestID string
	size      int // with its newline
}

// archiveSidecar is a .meta sidecar, as perf/archive writes it.
type archiveSidecar struct {
	Entries uint64    `json:"entries"`
	Bytes   int64     `json:"bytes"`
	MinID   uint64    `json:"min_id"`
	MaxID   uint64    `json:"max_id"`
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
	Closed  bool      `json:"closed"`
}

// archiveFile is one data file of the archive as read from disk.
type archiveFile struct {
	stem  string
	ext   string // archivePlain or archiveZstd
	size  int64  // on disk
	lines []archiveLine
	bytes int64 // of the whole lines, uncompressed
	// torn is the length of a final fragment without a newline: a write a
	// crash cut short. 0 when the file ends with a whole line.
	torn int
	sum  []byte // SHA-256 of the whole lines
	// meta is the sidecar; nil when it is missing, metaErr says why it
	// could not be read.
	meta    *archiveSidecar
	metaErr error
}

func (f *archiveFile) name() string { return f.stem + f.ext }

// archiveReader reads archive directories, remembering each data file it
// has read, so that a file is read again only when it changed on disk
// (compressed, or cut by recovery). Then its whole lines must be the same
// as before: a file's lines never change once written.
type archiveReader struct {
	dir  string
	seen map[string]*archiveFile // by stem
}

func newArchiveReader(dir string) *archiveReader {
	return &archiveReader{dir: dir, seen: map[string]*archiveFile{}}
}

// scan reads every data file of the directory, oldest name first. It must
// run while no server writes to the directory. It fails on a line that is
// not a JSON object starting with its id, and on a file whose whole lines
// differ from those an earlier scan read from it.
func (r *archiveReader) scan() ([]*archiveFile, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	type kinds struct{ plain, zst, gz, meta bool }
	stems := map[string]*kinds{}
	for _, de := range ents {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasPrefix(name, archivePrefix) || strings.HasSuffix(name, archiveTemp) {
			continue
		}
		for _, x := range []struct {
			ext string
			set func(*kinds)
		}{
			{archiveZstd, func(k *kinds) { k.zst = true }},
			{archiveGzip, func(k *kinds) { k.gz = true }},
			{archivePlain, func(k *kinds) { k.plain = true }},
			{archiveMeta, func(k *kinds) { k.meta = true }},
		} {
			if stem, ok := strings.CutSuffix(name, x.ext); ok {
				if stems[stem] == nil {
					stems[stem] = &kinds{}
				}
				x.set(stems[stem])
				break
			}
		}
	}
	names := make([]string, 0, len(stems))
	for s := range stems {
		names = append(names, s)
	}
	slices.Sort(names)

	// Settle each stem on its data file, and read those that are new or
	// changed, in parallel: checking every line is what takes the time.
	type job struct {
		stem, ext string
		size      int64
		old       *archiveFile // read before; nil if new
		got       *archiveFile
		err       error
	}
	var jobs []*job
	var files []*archiveFile
	for _, stem := range names {
		k := stems[stem]
		if k.gz {
			return nil, fmt.Errorf("%s%s: the archive writes no gzip files", stem, archiveGzip)
		}
		// A compressed file is whole (renamed into place after an fsync);
		// a plain one beside it is an original a crash left, which
		// recovery removes. A sidecar alone is one whose file retention
		// deleted.
		ext := archivePlain
		switch {
		case k.zst:
			ext = archiveZstd
		case !k.plain:
			continue
		}
		st, err := os.Stat(filepath.Join(r.dir, stem+ext))
		if err != nil {
			return nil, err
		}
		f := r.seen[stem]
		if f == nil || f.ext != ext || f.size != st.Size() {
			jobs = append(jobs, &job{stem: stem, ext: ext, size: st.Size(), old: f})
		}
	}
	var wg sync.WaitGroup
	next := make(chan *job)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range next {
				j.got, j.err = readArchiveFile(r.dir, j.stem, j.ext, j.size, j.old)
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, j := range jobs {
		if j.err != nil {
			return nil, j.err
		}
		r.seen[j.stem] = j.got
	}

	for _, stem := range names {
		f := r.seen[stem]
		if f == nil || !(stems[stem].plain || stems[stem].zst) {
			continue
		}
		// The sidecar changes on its own (recovery closes it): read it
		// every time.
		f.meta, f.metaErr = nil, nil
		if stems[stem].meta {
			b, err := os.ReadFile(filepath.Join(r.dir, stem+archiveMeta))
			if err == nil {
				var m archiveSidecar
				if err = json.Unmarshal(b, &m); err == nil {
					f.meta = &m
				}
			}
			f.metaErr = err
		} else {
			f.metaErr = errors.New("no sidecar")
		}
		files = append(files, f)
	}
	return files, nil
}

// readArchiveFile reads one data file. Each line is checked once: when old
// (the same file read before, under another extension or size) is given,
// the file's whole lines must be exactly old's, and are only compared.
func readArchiveFile(dir, stem, ext string, size int64, old *archiveFile) (*archiveFile, error) {
	f := &archiveFile{stem: stem, ext: ext, size: size}
	h, err := os.Open(filepath.Join(dir, stem+ext))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var src io.Reader = h
	if ext == archiveZstd {
		zr, err := zstd.NewReader(h, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name(), err)
		}
		defer zr.Close()
		src = zr
	}
	sum := sha256.New()
	br := bufio.NewReaderSize(src, 1<<20)
	var n uint64
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%s line %d: longer than 1 MiB", f.name(), n+1)
		}
		if err == io.EOF {
			f.torn = len(line)
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", f.name(), n+1, err)
		}
		n++
		sum.Write(line)
		f.bytes += int64(len(line))
		if old != nil {
			continue
		}
		l, err := parseArchiveLine(line[:len(line)-1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", f.name(), n, err)
		}
		l.size = len(line)
		f.lines = append(f.lines, l)
	}
	f.sum = sum.Sum(nil)
	if f.torn > 0 && ext == archiveZstd {
		return nil, fmt.Errorf("%s: the compressed file ends with a torn line of %d bytes", f.name(), f.torn)
	}
	if old != nil {
		if n != uint64(len(old.lines)) || f.bytes != old.bytes || !bytes.Equal(f.sum, old.sum) {
			return nil, fmt.Errorf("%s: its whole lines (%d, %d bytes) differ from those read from %s before (%d, %d bytes): a file's lines must never change",
				f.name(), n, f.bytes, old.name(), len(old.lines), old.bytes)
		}
		f.lines = old.lines
	}
	return f, nil
}

// parseArchiveLine checks that line is one JSON object whose first field
// is its id, and returns its id and request id.
func parseArchiveLine(line []byte) (archiveLine, error) {
	// json.Valid is several times faster than decoding, which matters
	// under the race detector; the encoder writes the id first and the
	// request id right after it (perf/archive/encode.go), so they are read
	// from the front, and decoded only when that does not work.
	if !json.Valid(line) {
		return archiveLine{}, fmt.Errorf("not valid JSON: %.120q", line)
	}
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !ok {
		return archiveLine{}, fmt.Errorf("does not start with its id: %.80q", line)
	}
	digits, rest, ok := bytes.Cut(rest, []byte(`"`))
	id, err := strconv.ParseUint(string(digits), 10, 64)
	if !ok || err != nil || id == 0 {
		return archiveLine{}, fmt.Errorf("id %q is not a decimal id: %.80q", digits, line)
	}
	l := archiveLine{id: id}
	if rest, ok := bytes.CutPrefix(rest, []byte(`,"request_id":"`)); ok {
		if s, _, ok := bytes.Cut(rest, []byte(`"`)); ok && bytes.IndexByte(s, '\\') < 0 {
			l.requestID = string(s)
			return l, nil
		}
		var v struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			return archiveLine{}, err
		}
		l.requestID = v.RequestID
	}
	return l, nil
}

// checkArchive checks the invariants of a scanned archive: ids strictly
// increase across files in name order (so each id is archived once); only
// tornOK's file may end with a torn line (empty: none may); every file but
// the newest has a closed sidecar that describes it exactly, and the
// newest one's sidecar, if readable and not closed, describes a prefix of
// its lines (those fsynced before the sidecar was written). It returns
// every problem found.
func checkArchive(files []*archiveFile, tornOK string) []error {
	var errs []error
	var last uint64
	var lastFile string
	for i, f := range files {
		if f.torn > 0 && f.stem+f.ext != tornOK {
			errs = append(errs, fmt.Errorf("%s ends with a torn line of %d bytes; only the file being written at a crash may, until the next start cuts it off", f.name(), f.torn))
		}
		for j, l := range f.lines {
			if l.id <= last {
				errs = append(errs, fmt.Errorf("%s line %d has id %d, not above the previous line's id %d (in %s): ids must strictly increase across files in name order",
					f.name(), j+1, l.id, last, lastFile))
				break
			}
			last, lastFile = l.id, f.name()
		}
		newest := i == len(files)-1
		m := f.meta
		switch {
		case m == nil && newest:
			// The file being written at a crash: recovery reads it all.
		case m == nil:
			errs = append(errs, fmt.Errorf("%s: sidecar %s unreadable: %v", f.name(), f.stem+archiveMeta, f.metaErr))
		case m.Closed || !newest:
			if !m.Closed {
				errs = append(errs, fmt.Errorf("%s: sidecar not closed, though a newer file exists", f.name()))
			}
			if want := describe(f.lines, f.bytes); !sameFigures(*m, want) {
				errs = append(errs, fmt.Errorf("%s: sidecar says %s, the file holds %s", f.name(), figures(*m), figures(want)))
			}
		default:
			// Open: it describes the lines fsynced when it was written,
			// a prefix of the file.
			if m.Entries > uint64(len(f.lines)) {
				errs = append(errs, fmt.Errorf("%s: open sidecar says %s, more than the file's %d whole lines", f.name(), figures(*m), len(f.lines)))
				break
			}
			prefix := f.lines[:m.Entries]
			var n int64
			for _, l := range prefix {
				n += int64(l.size)
			}
			if want := describe(prefix, n); !sameFigures(*m, want) {
				errs = append(errs, fmt.Errorf("%s: open sidecar says %s, its first %d lines hold %s", f.name(), figures(*m), len(prefix), figures(want)))
			}
		}
	}
	return errs
}

// describe returns the sidecar figures of lines (times left out: the
// tests do not read them) holding n bytes.
func describe(lines []archiveLine, n int64) archiveSidecar {
	m := archiveSidecar{Entries: uint64(len(lines)), Bytes: n}
	for i, l := range lines {
		if i == 0 || l.id < m.MinID {
			m.MinID = l.id
		}
		m.MaxID = max(m.MaxID, l.id)
	}
	return m
}

func sameFigures(a, b archiveSidecar) bool {
	return a.Entries == b.Entries && a.Bytes == b.Bytes && a.MinID == b.MinID && a.MaxID == b.MaxID
}

func figures(m archiveSidecar) string {
	return fmt.Sprintf("%d entries, %d bytes, ids %d..%d", m.Entries, m.Bytes, m.MinID, m.MaxID)
}

// newestPlain returns the name of the newest file if it is uncompressed:
// the one that may have been being written at a crash.
func newestPlain(files []*archiveFile) string {
	if len(files) == 0 || files[len(files)-1].ext != archivePlain {
		return ""
	}
	return files[len(files)-1].name()
}

// TestCheckArchive checks the checker the fault tests rely on: it passes
// a whole archive and catches each kind of damage.
func TestCheckArchive(t *testing.T) {
	line := func(id uint64) string {
		return fmt.Sprintf(`{"id":"%d","request_id":"r-%d","method":"GET"}`+"\n", id, id)
	}
	lines := func(ids ...uint64) string {
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(line(id))
		}
		return b.String()
	}
	closed := func(entries uint64, data string, minID, maxID uint64) string {
		return fmt.Sprintf(`{"entries":%d,"bytes":%d,"min_id":%d,"max_id":%d,"closed":true}`, entries, len(data), minID, maxID)
	}
	const (
		older = "pxperf-20261127T101500.000000000Z-000001"
		newer = "pxperf-20261127T101600.000000000Z-000004"
	)
	tests := []struct {
		name    string
		files   map[string]string
		tornOK  bool   // the newest file may be torn
		wantErr string // from scan or checkArchive; empty: none
	}{
		{name: "whole", files: map[string]string{
			older + archivePlain: lines(1, 2, 3), older + archiveMeta: closed(3, lines(1, 2, 3), 1, 3),
			newer + archivePlain: lines(4, 5), newer + archiveMeta: closed(2, lines(4, 5), 4, 5),
		}},
		{name: "newest torn and open", tornOK: true, files: map[string]string{
			older + archivePlain: lines(1, 2, 3), older + archiveMeta: closed(3, lines(1, 2, 3), 1, 3),
			newer + archivePlain: lines(4, 5) + `{"id":"6","req`,
			newer + archiveMeta:  `{"entries":1,"bytes":` + strconv.Itoa(len(line(4))) + `,"min_id":4,"max_id":4}`,
		}},
		{name: "newest torn after a graceful stop", wantErr: "torn line", files: map[string]string{
			newer + archivePlain: lines(4, 5) + `{"id":"6"`,
		}},
		{name: "older torn", tornOK: true, wantErr: "torn line", files: map[string]string{
			older + archivePlain: lines(1, 2) + `{"id":"3"`, older + archiveMeta: closed(2, lines(1, 2), 1, 2),
			newer + archivePlain: lines(4, 5),
		}},
		{name: "not JSON", wantErr: "not valid JSON", files: map[string]string{
			older + archivePlain: lines(1) + `{"id":"2","method":"GET"` + "\n",
		}},
		{name: "id not first", wantErr: "does not start with its id", files: map[string]string{
			older + archivePlain: `{"method":"GET","id":"1"}` + "\n",
		}},
		{name: "ids repeat across files", wantErr: "strictly increase", files: map[string]string{
			older + archivePlain: lines(1, 2, 3), older + archiveMeta: closed(3, lines(1, 2, 3), 1, 3),
			newer + archivePlain: lines(3, 4),
		}},
		{name: "sidecar wrong", wantErr: "sidecar says 2 entries", files: map[string]string{
			older + archivePlain: lines(1, 2, 3), older + archiveMeta: closed(2, lines(1, 2), 1, 2),
			newer + archivePlain: lines(4),
		}},
		{name: "older sidecar open", wantErr: "not closed", files: map[string]string{
			older + archivePlain: lines(1, 2), older + archiveMeta: `{"entries":2,"bytes":` + strconv.Itoa(len(lines(1, 2))) + `,"min_id":1,"max_id":2}`,
			newer + archivePlain: lines(4),
		}},
		{name: "zstd file", files: map[string]string{
			older + archiveZstd: zstdOf(t, lines(1, 2)), older + archiveMeta: closed(2, lines(1, 2), 1, 2),
			older + archivePlain + ".zst" + archiveTemp: "half a temporary",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			files, err := newArchiveReader(dir).scan()
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				tornOK := ""
				if tt.tornOK {
					tornOK = newestPlain(files)
				}
				errs = checkArchive(files, tornOK)
			}
			got := errors.Join(errs...)
			switch {
			case tt.wantErr == "" && got != nil:
				t.Errorf("got %v, want no error", got)
			case tt.wantErr != "" && (got == nil || !strings.Contains(got.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", got, tt.wantErr)
			}
		})
	}

	t.Run("lines changed", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, older+archivePlain)
		if err := os.WriteFile(path, []byte(lines(1, 2)+`{"id":"3"`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := newArchiveReader(dir)
		if _, err := r.scan(); err != nil {
			t.Fatal(err)
		}
		// Cut at the last whole line, as recovery does: the same lines.
		if err := os.WriteFile(path, []byte(lines(1, 2)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := r.scan(); err != nil {
			t.Fatalf("after cutting the torn line: %v", err)
		}
		// Compressed: the same lines.
		if err := os.WriteFile(filepath.Join(dir, older+archiveZstd), []byte(zstdOf(t, lines(1, 2))), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := r.scan(); err != nil {
			t.Fatalf("after compressing: %v", err)
		}
		// A line lost.
		if err := os.WriteFile(filepath.Join(dir, older+archiveZstd), []byte(zstdOf(t, lines(1))), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := r.scan(); err == nil || !strings.Contains(err.Error(), "must never change") {
			t.Errorf("after losing a line: %v, want an error saying lines must never change", err)
		}
	})
}

// zstdOf returns s compressed with zstd.
func zstdOf(t *testing.T, s string) string {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return string(enc.EncodeAll([]byte(s), nil))
}
