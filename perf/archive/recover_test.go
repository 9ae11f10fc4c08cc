package archive

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// crashSetup writes file A (ids 1..10, rotated) and file B (ids 11..20,
// the last current one), closes the archive, and returns B's stem.
func crashSetup(h *harness) (stemA, stemB string) {
	h.t.Helper()
	h.appendRange(1, 10)
	h.rotate()
	h.appendRange(11, 20)
	h.sync()
	files := h.files()
	h.close()
	// With Compress, the rotated file may be compressed already.
	stem := func(name string) string { s, _, _, _ := parseName(name); return s }
	return stem(files[0].Name), stem(files[1].Name)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// prefixMeta returns an unclosed sidecar for the first n lines of data, as
// the writer leaves it after a flush.
func prefixMeta(t *testing.T, data []byte, n int) []byte {
	t.Helper()
	var m meta
	off := 0
	for range n {
		i := bytes.IndexByte(data[off:], '\n')
		line := data[off : off+i]
		id, ts, has, ok := keyOf(line)
		if !ok {
			t.Fatalf("line %q", line)
		}
		m.add(id, ts, has, i+1)
		off += i + 1
	}
	return m.marshal()
}

func TestRecovery(t *testing.T) {
	const torn = `{"id":"21","request_id":"req-00000000`
	tests := []struct {
		name     string
		compress bool
		// crash changes the files as a crash would have left them.
		crash       func(t *testing.T, h *harness, a, b string)
		lastID      uint64
		corrupt     uint64
		ids         []uint64 // read back
		files       []string // stems kept
		wantEntries uint64   // entries of the newest file kept
	}{
		{
			name: "torn last line after the fsynced prefix",
			crash: func(t *testing.T, h *harness, a, b string) {
				data := mustRead(t, h.path(b+plainExt))
				mustWrite(t, h.path(b+metaExt), prefixMeta(t, data, 5))
				// Spoil a line inside the prefix: recovery must not read it
				// (it would count it), only the tail.
				i := bytes.Index(data, []byte(`{"id":"12"`))
				copy(data[i+1:], "XXXX")
				mustWrite(t, h.path(b+plainExt), append(data, torn...))
			},
			lastID: 20, corrupt: 1, ids: append(seq(1, 11), seq(13, 20)...), files: []string{"a", "b"}, wantEntries: 10,
		},
		{
			name: "no sidecar: the whole file is read",
			crash: func(t *testing.T, h *harness, a, b string) {
				os.Remove(h.path(b + metaExt))
				f, _ := os.OpenFile(h.path(b+plainExt), os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString(torn)
				f.Close()
			},
			lastID: 20, corrupt: 1, ids: seq(1, 20), files: []string{"a", "b"}, wantEntries: 10,
		},
		{
			name: "torn sidecar",
			crash: func(t *testing.T, h *harness, a, b string) {
				mustWrite(t, h.path(b+metaExt), []byte(`{"entries":3,"by`))
			},
			lastID: 20, ids: seq(1, 20), files: []string{"a", "b"}, wantEntries: 10,
		},
		{
			name: "sidecar longer than the file",
			crash: func(t *testing.T, h *harness, a, b string) {
				data := mustRead(t, h.path(b+plainExt))
				mustWrite(t, h.path(b+metaExt), prefixMeta(t, data, 10))
				mustWrite(t, h.path(b+plainExt), data[:len(data)-50]) // the last line torn
			},
			lastID: 19, corrupt: 1, ids: seq(1, 19), files: []string{"a", "b"}, wantEntries: 9,
		},
		{
			name: "all torn newest falls back to the previous file",
			crash: func(t *testing.T, h *harness, a, b string) {
				os.Remove(h.path(b + metaExt))
				mustWrite(t, h.path(b+plainExt), []byte(torn))
			},
			lastID: 10, corrupt: 1, ids: seq(1, 10), files: []string{"a"}, wantEntries: 10,
		},
		{
			name: "empty newest falls back to the previous file",
			crash: func(t *testing.T, h *harness, a, b string) {
				mustWrite(t, h.path(b+metaExt), meta{}.marshal())
				mustWrite(t, h.path(b+plainExt), nil)
			},
			lastID: 10, ids: seq(1, 10), files: []string{"a"}, wantEntries: 10,
		},
		{
			name: "an id appended again last does not hide the greatest",
			crash: func(t *testing.T, h *harness, a, b string) {
				data := mustRead(t, h.path(b+plainExt))
				mustWrite(t, h.path(b+metaExt), prefixMeta(t, data, 10))
				again := appendEntry(nil, entry(3), nil, nil)
				mustWrite(t, h.path(b+plainExt), append(append(data, again...), torn...))
			},
			lastID: 20, corrupt: 1, ids: append(seq(1, 20), 3), files: []string{"a", "b"}, wantEntries: 11,
		},
		{
			name:     "compression interrupted: temporary removed, file compressed again",
			compress: true,
			crash: func(t *testing.T, h *harness, a, b string) {
				mustWrite(t, h.path(a+zstdExt+tempExt), []byte("partial"))
				mustWrite(t, h.path(b+metaExt+tempExt), []byte("partial"))
			},
			lastID: 20, ids: seq(1, 20), files: []string{"a", "b"}, wantEntries: 10,
		},
		{
			name:     "compressed but the original not yet removed",
			compress: true,
			crash: func(t *testing.T, h *harness, a, b string) {
				h2 := open(t, Config{Dir: t.TempDir(), Compress: true})
				h2.appendRange(1, 10)
				h2.rotate()
				h2.settle()
				z := mustRead(t, h2.path(h2.files()[0].Name))
				mustWrite(t, h.path(a+zstdExt), z) // beside a+plainExt
			},
			lastID: 20, ids: seq(1, 20), files: []string{"a", "b"}, wantEntries: 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := open(t, Config{})
			a, b := crashSetup(h)
			tt.crash(t, h, a, b)
			h.cfg.Compress = tt.compress
			h.reopen()
			if got := h.a.LastID(); got != tt.lastID {
				t.Errorf("LastID = %d, want %d", got, tt.lastID)
			}
			if got := h.a.Stats().CorruptLines; got != tt.corrupt {
				t.Errorf("CorruptLines after Open = %d, want %d", got, tt.corrupt)
			}
			h.settle()
			files := h.files()
			var stems []string
			for _, f := range files {
				stem := strings.TrimSuffix(strings.TrimSuffix(f.Name, zstdExt), plainExt)
				switch stem {
				case a:
					stems = append(stems, "a")
				case b:
					stems = append(stems, "b")
				default:
					stems = append(stems, f.Name)
				}
				if !f.Known || f.Current {
					t.Errorf("%+v: want known, not current", f)
				}
				if f.Compressed != tt.compress {
					t.Errorf("%s: compressed %v", f.Name, f.Compressed)
				}
			}
			if diff := cmp.Diff(tt.files, stems); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if got := files[len(files)-1].Entries; got != tt.wantEntries {
				t.Errorf("newest file has %d entries, want %d", got, tt.wantEntries)
			}
			for _, name := range dirNames(t, h.cfg.Dir) {
				if strings.HasSuffix(name, tempExt) {
					t.Errorf("%s left", name)
				}
				if tt.compress && strings.HasSuffix(name, plainExt) {
					t.Errorf("%s left beside its compressed file", name)
				}
			}
			if diff := cmp.Diff(tt.ids, h.ids(Query{})); diff != "" {
				t.Errorf("entries read back (-want +got):\n%s", diff)
			}
			// The next entry goes to a new file: the crashed one is never
			// appended to.
			before := len(files)
			h.append(tt.lastID + 1)
			h.sync()
			files = h.files()
			if len(files) != before+1 || !files[before].Current || files[before].FirstID != tt.lastID+1 {
				t.Errorf("after a new entry, files = %+v", files)
			}
		})
	}
}

// TestRecoveryOfAFileWithoutSidecar: a rotated file whose sidecar was lost
// is described again by housekeeping; until then reads do not skip it.
func TestRecoveryOfAFileWithoutSidecar(t *testing.T) {
	h := open(t, Config{Compress: true})
	a, _ := crashSetup(h)
	h.reopen()
	h.settle()
	h.close()
	os.Remove(h.path(a + metaExt))
	h.reopen()
	h.settle()
	files := h.files()
	if !files[0].Known || files[0].FirstID != 1 || files[0].LastID != 10 || files[0].Entries != 10 {
		t.Errorf("file without sidecar described as %+v", files[0])
	}
	if _, err := os.Stat(h.path(a + metaExt)); err != nil {
		t.Errorf("sidecar not written again: %v", err)
	}
	if diff := cmp.Diff(seq(3, 12), h.ids(Query{FirstID: 3, LastID: 12})); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}
