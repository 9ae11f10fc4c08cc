package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// houseLoop is the housekeeping goroutine: it compresses rotated files,
// applies retention, and rebuilds lost sidecars, one thing at a time, so
// that it never deletes a file it is compressing.
func (a *Archive) houseLoop(ctx context.Context) {
	defer a.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kickc:
			a.housekeep(ctx)
		case done := <-a.housec:
			a.housekeep(ctx)
			close(done)
		}
	}
}

// housekeep does all the work known now. Retention by count and age comes
// before each compression, so that no time is spent compressing files
// about to be deleted, not even files that rotations made while an earlier
// one was being compressed pushed past the limits; retention by bytes comes
// last, so that it counts compressed sizes.
func (a *Archive) housekeep(ctx context.Context) {
	for ctx.Err() == nil {
		a.retain(false)
		f := a.next(func(f *fileState) bool { return f.owesCompression() && !f.compressFailed })
		if f == nil {
			break
		}
		a.compress(ctx, f)
	}
	for ctx.Err() == nil {
		f := a.next(func(f *fileState) bool { return !f.known && !f.compressFailed })
		if f == nil {
			break
		}
		a.rebuild(ctx, f)
	}
	if ctx.Err() == nil {
		a.retain(true)
	}
}

// next returns the oldest rotated file for which want holds, or nil.
func (a *Archive) next(want func(*fileState) bool) *fileState {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.files {
		if !f.current && want(f) {
			return f
		}
	}
	return nil
}

// zstdLevel is the compression level, chosen by BenchmarkCompress (see the
// package doc).
const zstdLevel = zstd.SpeedFastest

// zstdOptions are the compressor's: its fastest level, one goroutine, and
// a 1 MiB window with its lower-memory mode. JSON lines repeat within a few
// lines, so the window costs no ratio (BenchmarkCompress: 5.700 against
// 5.698 with the default 8 MiB), and each file's encoder allocates 2.6 MB
// instead of 10: garbage that the memory budget would otherwise have to
// make room for at every rotation.
func zstdOptions() []zstd.EOption {
	return []zstd.EOption{
		zstd.WithEncoderLevel(zstdLevel),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1 << 20),
		zstd.WithLowerEncoderMem(true),
	}
}

// compress replaces the plain file f with its zstd-compressed form: it
// writes a temporary in the same directory, fsyncs it, renames it into
// place, fsyncs the directory, and only then removes the original. On
// failure the original stays and the temporary is removed; the file is
// tried again after the next rotation.
func (a *Archive) compress(ctx context.Context, f *fileState) {
	start := time.Now()
	in, out, err := a.compressFile(ctx, f.stem)
	elapsed := time.Since(start)
	a.mu.Lock()
	if err != nil {
		f.compressFailed = true
		if ctx.Err() == nil {
			a.recordErrorLocked(err)
		}
		a.mu.Unlock()
		return
	}
	f.kind, f.size, f.wantCompress = kindZstd, out, false
	a.stats.compressedIn += in
	a.stats.compressedOut += out
	a.stats.CompressionTime += elapsed
	a.mu.Unlock()
	// Readers that listed the plain file and open it now find the
	// compressed one instead (openData).
	if err := os.Remove(a.path(f.stem + plainExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.recordError(fmt.Errorf("archive: removing %s after compressing it: %w", f.stem+plainExt, err))
	}
	if err := a.syncDir(); err != nil {
		a.recordError(fmt.Errorf("archive: fsync of the directory: %w", err))
	}
}

// compressFile writes stem's compressed form and returns the sizes before
// and after.
func (a *Archive) compressFile(ctx context.Context, stem string) (in, out int64, err error) {
	src := a.path(stem + plainExt)
	dst := a.path(stem + zstdExt)
	tmp := dst + tempExt
	r, err := os.Open(src)
	if err != nil {
		return 0, 0, fmt.Errorf("archive: compressing %s: %w", stem+plainExt, err)
	}
	defer r.Close()
	_ = os.Remove(tmp) // a stale one would make the exclusive create fail
	w, err := a.hooks.createTemp(tmp)
	if err != nil {
		return 0, 0, fmt.Errorf("archive: compressing %s: %w", stem+plainExt, err)
	}
	done := false
	defer func() {
		if !done {
			w.Close()
			os.Remove(tmp)
		}
	}()
	if a.zw == nil {
		if a.zw, err = zstd.NewWriter(nil, zstdOptions()...); err != nil {
			return 0, 0, err
		}
	}
	zw := a.zw
	zw.Reset(w)
	in, err = copyCtx(ctx, zw, r)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("archive: compressing %s: %w", stem+plainExt, err)
	}
	done = true
	if err := a.syncDir(); err != nil {
		return 0, 0, fmt.Errorf("archive: fsync of the directory after compressing %s: %w", stem, err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		return 0, 0, err
	}
	return in, st.Size(), nil
}

// copyCtx copies r to w, checking ctx between chunks.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// rebuild reads a file whose sidecar was lost and writes a new one.
func (a *Archive) rebuild(ctx context.Context, f *fileState) {
	a.mu.Lock()
	snap := *f
	a.mu.Unlock()
	var m meta
	corrupt, err := a.scan(ctx, snap, func(line []byte) error {
		if id, t, hasTime, ok := keyOf(line); ok {
			m.add(id, t, hasTime, len(line)+1)
		} else {
			m.Bytes += int64(len(line)) + 1
		}
		return nil
	})
	a.countCorrupt(corrupt)
	if err == nil {
		m.Closed = true
		err = a.writeFileAtomic(snap.stem+metaExt, m.marshal())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		f.compressFailed = true // do not loop on it; tried again after the next rotation
		if ctx.Err() == nil {
			a.recordErrorLocked(fmt.Errorf("archive: rebuilding the sidecar of %s: %w", snap.stem, err))
		}
		return
	}
	f.meta, f.known = m, true
}

// writeFileAtomic replaces name in the archive directory with data: a
// temporary, fsync, rename, fsync of the directory.
func (a *Archive) writeFileAtomic(name string, data []byte) error {
	tmp := a.path(name + tempExt)
	err := os.WriteFile(tmp, data, 0o644)
	if err == nil {
		var f *os.File
		if f, err = os.OpenFile(tmp, os.O_RDWR, 0); err == nil {
			err = f.Sync()
			f.Close()
		}
	}
	if err == nil {
		err = os.Rename(tmp, a.path(name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return a.syncDir()
}

// retain deletes the files that retention says to, oldest first, never the
// current one: files whose newest entry and last write are both older than
// MaxAge; beyond
// MaxFiles (a slot is kept for the current file, there or to come); and,
// when byBytes, the oldest while all files together pass MaxTotalBytes.
func (a *Archive) retain(byBytes bool) {
	a.mu.Lock()
	cfg := a.cfg
	del := make([]bool, len(a.files))
	some := false
	if cfg.MaxAge > 0 {
		cutoff := a.now().Add(-cfg.MaxAge)
		// A file is old when its newest entry is, and when it was last
		// written long ago too: producers set entries' start times (a
		// replayed HAR file may be a month old), and a file written a
		// minute ago must not be deleted for holding old requests.
		for i, f := range a.files {
			newest := f.modTime
			if f.known && f.meta.MaxTime.After(newest) {
				newest = f.meta.MaxTime
			}
			if !f.current && newest.Before(cutoff) {
				del[i], some = true, true
			}
		}
	}
	if cfg.MaxFiles > 0 {
		kept := 1 // the current file's slot
		for i := len(a.files) - 1; i >= 0; i-- {
			if f := a.files[i]; f.current || del[i] {
				continue
			}
			if kept < cfg.MaxFiles {
				kept++
				continue
			}
			del[i], some = true, true
		}
	}
	if byBytes && cfg.MaxTotalBytes > 0 {
		var total int64
		for i, f := range a.files {
			if !del[i] {
				total += f.size
			}
		}
		for i, f := range a.files {
			if total <= cfg.MaxTotalBytes {
				break
			}
			if !f.current && !del[i] {
				del[i], some = true, true
				total -= f.size
			}
		}
	}
	if !some {
		a.mu.Unlock()
		return
	}
	var victims []*fileState
	kept := a.files[:0]
	for i, f := range a.files {
		if del[i] {
			victims = append(victims, f)
		} else {
			kept = append(kept, f)
		}
	}
	clear(a.files[len(kept):])
	a.files = kept
	a.mu.Unlock()

	// Readers that listed a victim and open it now find it gone and skip it;
	// one that has it open reads it to the end.
	var deleted uint64
	var failed []*fileState
	for _, f := range victims {
		err := os.Remove(a.path(f.name()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.recordError(fmt.Errorf("archive: retention: %w", err))
			failed = append(failed, f)
			continue
		}
		deleted++
		if err := os.Remove(a.path(f.stem + metaExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.recordError(fmt.Errorf("archive: retention: %w", err))
		}
	}
	if err := a.syncDir(); err != nil {
		a.recordError(fmt.Errorf("archive: fsync of the directory: %w", err))
	}
	a.mu.Lock()
	a.stats.FilesDeleted += deleted
	if len(failed) > 0 {
		// Still on disk: list them again, in order.
		a.files = append(a.files, failed...)
		slices.SortFunc(a.files, func(x, y *fileState) int { return strings.Compare(x.stem, y.stem) })
	}
	a.mu.Unlock()
}

// housekeepingDone waits until housekeeping has done all the work known
// when it is called. Tests use it instead of sleeping.
func (a *Archive) housekeepingDone(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case a.housec <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-a.closec:
		return ErrClosed
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
