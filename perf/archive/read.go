package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	kpgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Query selects entries to read back. The zero Query selects everything.
type Query struct {
	// FirstID and LastID bound the ids, inclusive; 0 leaves that end open.
	FirstID, LastID uint64
	// Start and End bound the entries' start times, [Start, End); a zero
	// time leaves that end open. When either is set, entries without a
	// start time are not selected.
	Start, End time.Time
	// Match, when not nil, selects among the entries in range.
	Match func(*pxperfv1.Entry) bool
}

// Selects reports whether q selects e: its id and start time in range,
// and Match, if any, true.
func (q *Query) Selects(e *pxperfv1.Entry) bool {
	if !q.idIn(e.GetId()) {
		return false
	}
	if q.hasTime() {
		if t, ok := entryTime(e.GetStartTime()); !ok || !q.timeIn(t) {
			return false
		}
	}
	return q.Match == nil || q.Match(e)
}

func (q *Query) hasTime() bool { return !q.Start.IsZero() || !q.End.IsZero() }

func (q *Query) idIn(id uint64) bool {
	return (q.FirstID == 0 || id >= q.FirstID) && (q.LastID == 0 || id <= q.LastID)
}

func (q *Query) timeIn(t time.Time) bool {
	return (q.Start.IsZero() || !t.Before(q.Start)) && (q.End.IsZero() || t.Before(q.End))
}

// mayContain reports whether f can hold entries in range; files whose
// ranges are not known may.
func (q *Query) mayContain(f *fileState) bool {
	if !f.known {
		return true
	}
	m := f.meta
	if m.Entries == 0 {
		return false
	}
	if (q.FirstID != 0 && m.MaxID < q.FirstID) || (q.LastID != 0 && m.MinID > q.LastID) {
		return false
	}
	if q.hasTime() {
		if m.MaxTime.IsZero() {
			return false // no entry has a start time
		}
		if (!q.Start.IsZero() && m.MaxTime.Before(q.Start)) || (!q.End.IsZero() && !m.MinTime.Before(q.End)) {
			return false
		}
	}
	return true
}

// Read calls fn with each archived entry that q selects, file by file,
// oldest file first, in the order the lines were written: by id, except
// that an entry appended again (a PENDING entry completed later) appears
// again where it was appended, and that later line is its final state.
// Files outside q's ranges are skipped unopened. It sees every entry
// appended before the call (it asks the writer to write them first) unless
// writes are failing. Corrupt lines are skipped and counted in
// Stats.CorruptLines; a file deleted by retention while Read runs is
// skipped. Each entry passed to fn is new and the caller's to keep. Read
// stops at the first error from fn, or when ctx is done, and returns it.
func (a *Archive) Read(ctx context.Context, q Query, fn func(*pxperfv1.Entry) error) error {
	files, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, f := range files {
		if !q.mayContain(&f) {
			continue
		}
		corrupt, err := a.scan(ctx, f, func(line []byte) error {
			k := lineKey(line)
			if k.idOK && !q.idIn(k.id) {
				return nil
			}
			if k.startOK && q.hasTime() && !q.timeIn(k.start) {
				return nil
			}
			e, err := decodeLine(line)
			if err != nil {
				return errCorruptLine
			}
			if !q.Selects(e) {
				return nil
			}
			return fn(e)
		})
		a.countCorrupt(corrupt)
		if err != nil {
			return err
		}
	}
	return nil
}

// Entry returns the archived entry with id, in its final state (its last
// line), or an error wrapping [ErrNotFound]. Like Read, it sees every entry
// appended before the call.
func (a *Archive) Entry(ctx context.Context, id uint64) (*pxperfv1.Entry, error) {
	files, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	q := Query{FirstID: id, LastID: id}
	// Newest file first: the first file holding id holds its last line.
	for i := len(files) - 1; i >= 0; i-- {
		if !q.mayContain(&files[i]) {
			continue
		}
		var last *pxperfv1.Entry
		corrupt, err := a.scan(ctx, files[i], func(line []byte) error {
			if k := lineKey(line); k.idOK && k.id != id {
				return nil
			}
			e, err := decodeLine(line)
			if err != nil {
				return errCorruptLine
			}
			if e.Id == id {
				last = e
			}
			return nil
		})
		a.countCorrupt(corrupt)
		if err != nil {
			return nil, err
		}
		if last != nil {
			return last, nil
		}
	}
	return nil, fmt.Errorf("archive: entry %d: %w", id, ErrNotFound)
}

// OldestID returns the least id the archive holds, or 0 when it holds
// none. Like Read, it counts every entry appended before the call (it asks
// the writer to write them first) unless writes are failing; where
// [Archive.Files] lists a file only from its first write, up to a
// FlushInterval after Append.
func (a *Archive) OldestID(ctx context.Context) (uint64, error) {
	files, err := a.snapshot(ctx)
	if err != nil {
		return 0, err
	}
	var oldest uint64
	for i := range files {
		if id := files[i].info().FirstID; id != 0 && (oldest == 0 || id < oldest) {
			oldest = id
		}
	}
	return oldest, nil
}

// snapshot has the writer write out what was appended so far, then copies
// the file list.
func (a *Archive) snapshot(ctx context.Context) ([]fileState, error) {
	if err := a.ask(ctx, writeReq{kind: reqSync}); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	files := make([]fileState, len(a.files))
	for i, f := range a.files {
		files[i] = *f
	}
	return files, nil
}

// errCorruptLine, returned by a scan callback, counts the line as corrupt
// and goes on.
var errCorruptLine = errors.New("corrupt line")

// scan calls each with every complete line of f, plain or compressed; a
// plain file is read up to the size listed (the current file's bytes
// written when listed). It returns how many lines were skipped as corrupt:
// torn, too long, or refused by each with errCorruptLine. A stream that
// cannot be decompressed further counts as one corrupt line and ends the
// file. A file gone since it was listed is skipped.
func (a *Archive) scan(ctx context.Context, f fileState, each func(line []byte) error) (corrupt uint64, err error) {
	r, closeFn, err := a.openData(f)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 1, nil // unreadable: counted, and the other files are read
	}
	defer closeFn()
	lr := newLineReader(r)
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return corrupt, err
			}
		}
		line, err := lr.next()
		switch {
		case err == nil:
			if err := each(line); err == errCorruptLine {
				corrupt++
			} else if err != nil {
				return corrupt, err
			}
		case err == io.EOF:
			return corrupt, nil
		case err == errTooLong:
			corrupt++
		default: // torn, or the stream is broken
			return corrupt + 1, nil
		}
	}
}

// openData opens f's data for reading. If the file was compressed since f
// was listed, it opens the compressed one.
func (a *Archive) openData(f fileState) (io.Reader, func(), error) {
	kinds := []fileKind{f.kind}
	if f.kind == kindPlain {
		kinds = append(kinds, kindZstd)
	}
	var (
		h   *os.File
		err error
	)
	kind := f.kind
	for _, kind = range kinds {
		h, err = os.Open(a.path(f.stem + extFor(kind)))
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	switch kind {
	case kindZstd:
		zr, err := zstd.NewReader(h, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			h.Close()
			return nil, nil, err
		}
		return zr, func() { zr.Close(); h.Close() }, nil
	case kindGzip:
		gr, err := kpgzip.NewReader(h)
		if err != nil {
			h.Close()
			// Not even a gzip header: one corrupt "line".
			return nil, nil, fmt.Errorf("archive: reading %s: %w", f.stem+gzipExt, err)
		}
		return gr, func() { gr.Close(); h.Close() }, nil
	}
	if kind == kindPlain {
		// Up to the size listed: the current file may be longer by now.
		return io.NewSectionReader(h, 0, f.size), func() { h.Close() }, nil
	}
	return h, func() { h.Close() }, nil
}

// keyOf returns a line's id and start time, decoding the line if the fast
// path cannot read them; ok is false for a line that does not decode.
func keyOf(line []byte) (id uint64, t time.Time, hasTime, ok bool) {
	if k := lineKey(line); k.idOK && k.startOK {
		return k.id, k.start, true, true
	}
	e, err := decodeLine(line)
	if err != nil {
		return 0, time.Time{}, false, false
	}
	t, hasTime = entryTime(e.StartTime)
	return e.Id, t, hasTime, true
}
