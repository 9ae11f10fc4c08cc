package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"
)

// recover builds the file list from the directory, as Open's first step:
// it removes temporaries and what a crash left half done, reads the
// sidecars, and repairs the newest file if it was being written (see
// recoverTail). It reads no other file: files whose sidecar is missing or
// torn are left to housekeeping to describe.
func (a *Archive) recover() error {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	type group struct {
		start   time.Time
		firstID uint64
		kinds   [kindTemp]bool // which kinds are on disk
	}
	groups := map[string]*group{}
	var stems []string
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		stem, kind, start, firstID := parseName(de.Name())
		switch kind {
		case kindOther:
			continue
		case kindTemp:
			// A compression or sidecar interrupted by a crash: its original
			// is still there.
			a.remove(de.Name())
			continue
		}
		g := groups[stem]
		if g == nil {
			g = &group{start: start, firstID: firstID}
			groups[stem] = g
			stems = append(stems, stem)
		}
		g.kinds[kind] = true
	}
	slices.Sort(stems)

	// Settle each stem on one data file.
	var kept []string
	for _, stem := range stems {
		g := groups[stem]
		switch {
		case g.kinds[kindZstd] || g.kinds[kindGzip]:
			if g.kinds[kindPlain] {
				// The compressed file was renamed into place after an
				// fsync, so it is whole: the crash came before the
				// original was removed.
				a.remove(stem + plainExt)
				g.kinds[kindPlain] = false
			}
			if g.kinds[kindZstd] && g.kinds[kindGzip] {
				g.kinds[kindGzip] = false // both whole; read the zstd one
			}
		case !g.kinds[kindPlain]:
			// A sidecar whose file retention deleted.
			a.remove(stem + metaExt)
			continue
		}
		kept = append(kept, stem)
	}

	for i, stem := range kept {
		g := groups[stem]
		kind := kindPlain
		if g.kinds[kindZstd] {
			kind = kindZstd
		} else if g.kinds[kindGzip] {
			kind = kindGzip
		}
		st, err := os.Stat(a.path(stem + extFor(kind)))
		if err != nil {
			a.recordError(fmt.Errorf("archive: recovery: %w", err))
			continue
		}
		f := &fileState{stem: stem, kind: kind, size: st.Size(), firstID: g.firstID, started: g.start, modTime: st.ModTime()}
		var m meta
		var metaErr error = fs.ErrNotExist
		if g.kinds[kindMeta] {
			var b []byte
			if b, metaErr = os.ReadFile(a.path(stem + metaExt)); metaErr == nil {
				m, metaErr = parseMeta(b)
			}
		}
		switch {
		case metaErr == nil && m.Closed:
			f.meta, f.known = m, true
		case kind == kindPlain && i == len(kept)-1:
			// The newest file, being written when the process stopped.
			if !a.recoverTail(f, m, metaErr == nil) {
				continue // no whole line in it: removed
			}
		}
		f.wantCompress = kind == kindPlain && a.cfg.Compress
		a.files = append(a.files, f)
	}

	for _, f := range a.files {
		a.lastID = max(a.lastID, f.firstID)
		if f.known {
			a.lastID = max(a.lastID, f.meta.MaxID)
		}
	}
	if n := len(a.files); n > 0 {
		a.lastTime = a.files[n-1].started
	}
	return nil
}

// recoverTail repairs the newest file after a crash. Its sidecar, if
// readable, describes a prefix of it that was fsynced; only the bytes after
// that prefix are read (all of it without a sidecar). A torn last line is
// cut off and counted as corrupt. The file then gets a closed sidecar: it
// is never appended to again. It returns false if the file held no whole
// line and was removed.
func (a *Archive) recoverTail(f *fileState, m meta, metaOK bool) bool {
	path := a.path(f.stem + plainExt)
	h, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		// Left undescribed: housekeeping reads it, and reads skip nothing.
		a.recordError(fmt.Errorf("archive: recovery: %w", err))
		return true
	}
	defer h.Close()
	from := int64(0)
	if metaOK && m.Bytes <= f.size {
		from = m.Bytes
	} else {
		m = meta{}
	}
	m.Closed = false
	lr := newLineReader(io.NewSectionReader(h, from, f.size-from))
	var corrupt uint64
	torn := false
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err == errTooLong {
			corrupt++
			continue
		}
		if err != nil {
			// A torn last line, or the file cannot be read further: the
			// rest is cut off.
			corrupt++
			torn = true
			break
		}
		if id, t, hasTime, ok := keyOf(line); ok {
			m.add(id, t, hasTime, 0)
		} else {
			corrupt++
		}
	}
	a.countCorrupt(corrupt)
	m.Bytes = from + lr.off
	if torn {
		if err := h.Truncate(m.Bytes); err != nil {
			a.recordError(fmt.Errorf("archive: recovery: cutting the torn line off %s: %w", f.stem+plainExt, err))
		}
	}
	f.size = m.Bytes
	if m.Entries == 0 {
		a.remove(f.stem + plainExt)
		a.remove(f.stem + metaExt)
		return false
	}
	m.Closed = true
	f.meta, f.known = m, true
	if err := a.writeFileAtomic(f.stem+metaExt, m.marshal()); err != nil {
		a.recordError(fmt.Errorf("archive: recovery: writing the sidecar of %s: %w", f.stem, err))
	}
	return true
}

// remove deletes name from the archive directory; one already gone is not
// an error.
func (a *Archive) remove(name string) {
	if err := os.Remove(a.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.recordError(fmt.Errorf("archive: recovery: %w", err))
	}
}
