package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// chunkBytes is how many encoded bytes the writer gathers before writing
// them out between flushes: the bufio-style buffer size.
const chunkBytes = 256 << 10

// maxPendingBytes bounds what the writer holds while writes fail, besides
// the bound of QueueSize entries.
const maxPendingBytes = 64 << 20

// reqKind is what a writeReq asks.
type reqKind int

const (
	// reqSync: take everything queued and write it out (no fsync), so that a
	// read sees every entry appended before it started.
	reqSync reqKind = iota
	// reqRotate: the same, then rotate (Archive.Rotate).
	reqRotate
)

// writeReq is a request to writeLoop, answered on reply.
type writeReq struct {
	kind  reqKind
	reply chan error
}

// ask sends req to the writer and waits for its answer.
func (a *Archive) ask(ctx context.Context, req writeReq) error {
	req.reply = make(chan error, 1)
	select {
	case a.writec <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-a.closec:
		return ErrClosed
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer is writeLoop's state; only that goroutine touches it.
type writer struct {
	a     *Archive
	cur   *segment // the current file; nil until the next entry
	pend  []byte   // encoded lines for cur not yet written
	pmeta meta     // the lines in pend
	line  []byte   // scratch for one line
	batch []Item   // scratch for one batch
	err   error    // why the last write failed; nil when healthy
	due   reason   // a rotation waiting for the writes to succeed

	// Counted here, published to Archive.stats once per batch.
	written, writtenBytes uint64
	lastID                uint64
}

// segment is the current file.
type segment struct {
	stem    string
	firstID uint64
	started time.Time // by the archive's clock, for time rotation
	state   *fileState
	f       file     // nil until the first write
	mf      *os.File // its sidecar
	size    int64    // bytes written
	meta    meta     // the lines written
	dirty   bool     // written since the last fsync
}

// writeLoop is the writer goroutine: it encodes and writes queued entries,
// flushes and fsyncs on every tick, and rotates.
func (a *Archive) writeLoop() {
	defer a.wg.Done()
	w := &writer{a: a, lastID: a.LastID()}
	tick := a.hooks.tick
	var ticker *time.Ticker
	if tick == nil {
		ticker = time.NewTicker(a.Config().FlushInterval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-a.q.ready:
			w.drain()
		case <-tick:
			w.onTick()
		case req := <-a.writec:
			req.reply <- w.serve(req)
		case <-a.cfgc:
			if ticker != nil {
				ticker.Reset(a.Config().FlushInterval)
			}
		case <-a.closec:
			a.doneWr <- w.shutdown()
			return
		}
	}
}

// drain takes one batch from the queue (everything waiting) and encodes
// it. The clock is read once per batch.
func (w *writer) drain() {
	cfg, now := w.a.Config(), w.a.now()
	w.checkTime(cfg, now)
	limit := -1
	if w.err != nil {
		// Failing: hold at most QueueSize entries; the rest wait in the
		// queue, and Append drops what does not fit there.
		limit = cfg.QueueSize - int(w.pmeta.Entries)
		if limit <= 0 || len(w.pend) >= maxPendingBytes {
			return
		}
	}
	w.batch = w.a.q.take(w.batch, limit)
	for i := range w.batch {
		w.add(&w.batch[i], cfg, now)
	}
	clear(w.batch) // let the entries go
	w.publish()
}

// add encodes one item into the current file, rotating by size before it
// and by count after it.
func (w *writer) add(it *Item, cfg Config, now time.Time) {
	e := it.Entry
	w.line = appendEntry(w.line[:0], e, it.Body, it.RequestBody)
	if cfg.MaxSize > 0 && w.cur != nil && w.entries() > 0 && w.bytes()+int64(len(w.line)) > cfg.MaxSize {
		w.rotate(reasonSize)
	}
	if w.cur == nil {
		w.start(e.Id, now)
	}
	w.pend = append(w.pend, w.line...)
	t, hasTime := entryTime(e.StartTime)
	w.pmeta.add(e.Id, t, hasTime, len(w.line))
	w.lastID = max(w.lastID, e.Id)
	if cfg.MaxCount > 0 && w.entries() >= uint64(cfg.MaxCount) {
		w.rotate(reasonCount)
	} else if len(w.pend) >= chunkBytes && w.err == nil {
		w.write()
	}
}

// entries and bytes count the current file's lines, written or not.
func (w *writer) entries() uint64 { return w.cur.meta.Entries + w.pmeta.Entries }
func (w *writer) bytes() int64    { return w.cur.size + int64(len(w.pend)) }

// start begins a new current file whose first line has id firstID. The
// file itself is created by the first write.
func (w *writer) start(firstID uint64, now time.Time) {
	w.cur = &segment{stem: w.a.newStem(now, firstID), firstID: firstID, started: now}
}

// newStem returns a stem for a file started at now, later than every stem
// before it: when the clock has not moved on (or went back), the time in
// the name is the previous one plus a nanosecond.
func (a *Archive) newStem(now time.Time, firstID uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := now.UTC().Round(0)
	if !t.After(a.lastTime) {
		t = a.lastTime.Add(time.Nanosecond)
	}
	a.lastTime = t
	return stemFor(t, firstID)
}

// open creates the current file and its sidecar, and lists it.
func (w *writer) open() error {
	c := w.cur
	f, err := w.a.hooks.openFile(w.a.path(c.stem + plainExt))
	if errors.Is(err, fs.ErrExist) {
		// Someone else's file has our name: take the next one.
		c.stem = w.a.newStem(c.started, c.firstID)
		f, err = w.a.hooks.openFile(w.a.path(c.stem + plainExt))
	}
	if err != nil {
		return fmt.Errorf("archive: creating the current file: %w", err)
	}
	mf, err := os.OpenFile(w.a.path(c.stem+metaExt), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		f.Close()
		os.Remove(w.a.path(c.stem + plainExt))
		return fmt.Errorf("archive: creating the current file's sidecar: %w", err)
	}
	if err := w.a.syncDir(); err != nil {
		w.a.recordError(fmt.Errorf("archive: fsync of the directory: %w", err))
	}
	c.f, c.mf = f, mf
	c.state = &fileState{stem: c.stem, kind: kindPlain, firstID: c.firstID, started: c.started,
		modTime: c.started, known: true, current: true}
	w.a.mu.Lock()
	w.a.files = append(w.a.files, c.state)
	w.a.mu.Unlock()
	return nil
}

// write writes the pending lines to the current file, without fsync. On
// failure the lines stay pending, and the file is cut back so that the
// retry continues after the last whole line.
func (w *writer) write() error {
	if len(w.pend) == 0 {
		return nil
	}
	c := w.cur
	if c.f == nil {
		if err := w.open(); err != nil {
			return w.fail(err)
		}
	}
	// WriteAt at the size written so far: a retry after a partial write
	// overwrites the part, so no line is torn or written twice.
	if _, err := c.f.WriteAt(w.pend, c.size); err != nil {
		_ = c.f.Truncate(c.size)
		return w.fail(fmt.Errorf("archive: writing %s: %w", c.stem+plainExt, err))
	}
	c.size += int64(len(w.pend))
	c.meta.merge(w.pmeta)
	c.dirty = true
	w.written += w.pmeta.Entries
	w.writtenBytes += uint64(len(w.pend))
	w.pend, w.pmeta = w.pend[:0], meta{}
	if cap(w.pend) > 4*chunkBytes {
		w.pend = nil // give back what a long failure made grow
	}
	w.healthy()
	return nil
}

// flush writes the pending lines, fsyncs the current file and updates its
// sidecar.
func (w *writer) flush() error {
	if w.cur == nil {
		return nil
	}
	if err := w.write(); err != nil {
		return err
	}
	c := w.cur
	if c.f == nil || !c.dirty {
		return nil
	}
	if err := c.f.Sync(); err != nil {
		return w.fail(fmt.Errorf("archive: fsync of %s: %w", c.stem+plainExt, err))
	}
	c.dirty = false
	// The sidecar describes only fsynced lines; it is not fsynced itself
	// (see meta).
	if err := writeMeta(c.mf, c.meta); err != nil {
		w.a.recordError(fmt.Errorf("archive: writing the sidecar of %s: %w", c.stem, err))
	}
	return nil
}

// writeMeta replaces the content of a sidecar.
func writeMeta(mf *os.File, m meta) error {
	b := m.marshal()
	if _, err := mf.WriteAt(b, 0); err != nil {
		return err
	}
	return mf.Truncate(int64(len(b)))
}

// rotate closes the current file for reason r and hands it to
// housekeeping. While writes fail it only notes that a rotation is due.
func (w *writer) rotate(r reason) error {
	if w.cur == nil {
		return nil
	}
	if w.err == nil {
		w.flush()
	}
	if w.err != nil {
		if w.due == 0 {
			w.due = r
		}
		return w.err
	}
	w.closeCurrent(r)
	return nil
}

// closeCurrent closes the flushed current file: its sidecar is marked
// closed and fsynced. r is the rotation's reason, 0 at shutdown.
func (w *writer) closeCurrent(r reason) {
	c := w.cur
	w.cur, w.due = nil, 0
	if c.f == nil {
		return
	}
	m := c.meta
	m.Closed = true
	err := writeMeta(c.mf, m)
	if err == nil {
		err = c.mf.Sync()
	}
	if err != nil {
		w.a.recordError(fmt.Errorf("archive: writing the sidecar of %s: %w", c.stem, err))
	}
	if err := c.f.Close(); err != nil {
		w.a.recordError(fmt.Errorf("archive: closing %s: %w", c.stem+plainExt, err))
	}
	c.mf.Close()

	a := w.a
	a.mu.Lock()
	defer a.mu.Unlock()
	s := c.state
	s.current, s.size, s.meta, s.known = false, c.size, m, true
	s.modTime = a.now()
	if r == 0 {
		return
	}
	switch r {
	case reasonCount:
		a.stats.RotationsByCount++
	case reasonSize:
		a.stats.RotationsBySize++
	case reasonTime:
		a.stats.RotationsByTime++
	case reasonManual:
		a.stats.RotationsManual++
	}
	s.wantCompress = a.cfg.Compress
	for _, f := range a.files {
		f.compressFailed = false // try the failed ones again
	}
	a.kick()
}

// checkTime rotates the current file if its time is up.
func (w *writer) checkTime(cfg Config, now time.Time) {
	if w.cur == nil || cfg.Interval <= 0 {
		return
	}
	deadline := w.cur.started.Add(cfg.Interval)
	if cfg.AlignToClock {
		deadline = w.cur.started.Truncate(cfg.Interval).Add(cfg.Interval)
	}
	if !now.Before(deadline) {
		w.rotate(reasonTime)
	}
}

// onTick flushes and fsyncs, retries failed writes, does a rotation that
// was waiting for them, and checks the time and any limit lowered by
// SetConfig.
func (w *writer) onTick() {
	cfg, now := w.a.Config(), w.a.now()
	w.flush()
	if w.err == nil {
		if w.due != 0 {
			w.rotate(w.due)
		}
		w.checkTime(cfg, now)
		if w.cur != nil && cfg.MaxCount > 0 && w.entries() >= uint64(cfg.MaxCount) {
			w.rotate(reasonCount)
		}
		if w.cur != nil && cfg.MaxSize > 0 && w.bytes() > cfg.MaxSize {
			w.rotate(reasonSize)
		}
		// Entries left waiting while the writes failed.
		w.drain()
	}
	w.publish()
}

// serve answers a request from a reader or Rotate.
func (w *writer) serve(req writeReq) error {
	w.drain()
	var err error
	switch req.kind {
	case reqSync:
		// A failed write leaves the lines pending; the read sees what is on
		// disk.
		w.write()
	case reqRotate:
		err = w.rotate(reasonManual)
	}
	w.publish()
	return err
}

// shutdown writes everything queued, fsyncs and closes the current file.
func (w *writer) shutdown() error {
	cfg, now := w.a.Config(), w.a.now()
	for {
		w.batch = w.a.q.take(w.batch, -1)
		if len(w.batch) == 0 {
			break
		}
		for i := range w.batch {
			w.add(&w.batch[i], cfg, now)
		}
		clear(w.batch)
	}
	err := w.flush()
	if w.cur != nil {
		if err != nil {
			err = fmt.Errorf("archive: %d entries could not be written: %w", w.pmeta.Entries, err)
			if w.cur.f != nil {
				w.cur.f.Close()
				w.cur.mf.Close()
				w.a.mu.Lock()
				w.cur.state.current = false
				w.a.mu.Unlock()
			}
			w.cur = nil
		} else {
			w.closeCurrent(0)
		}
	}
	w.publish()
	return err
}

// fail records a failed write; Append drops instead of waiting from now
// on, until a write succeeds.
func (w *writer) fail(err error) error {
	first := w.err == nil
	w.err = err
	w.a.recordError(err)
	if first {
		w.a.failing.Store(true)
		w.a.q.wake()
	}
	return err
}

// healthy records that a write succeeded.
func (w *writer) healthy() {
	if w.err != nil {
		w.err = nil
		w.a.failing.Store(false)
	}
}

// publish makes the writer's counters and the current file's figures
// visible to Stats, Files and reads.
func (w *writer) publish() {
	a := w.a
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.EntriesWritten += w.written
	a.stats.BytesWritten += w.writtenBytes
	w.written, w.writtenBytes = 0, 0
	a.lastID = max(a.lastID, w.lastID)
	if c := w.cur; c != nil && c.state != nil {
		c.state.size, c.state.meta = c.size, c.meta
	}
}
