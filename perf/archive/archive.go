package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Archive writes entries to rotating JSON Lines files and reads them back.
// Open one with [Open]; it is safe for concurrent use; the caller must call
// [Archive.Close], which stops the goroutines it started.
type Archive struct {
	dir   string
	now   func() time.Time
	hooks testHooks
	q     *queue
	lease *lease // ids handed out, fsynced ahead: see ReserveIDs

	mu       sync.Mutex
	cfg      Config       // the live config
	files    []*fileState // oldest first; the current file, if any, is last
	stats    Stats        // counters kept here; see Stats for the others
	lastID   uint64
	lastTime time.Time // start time in the newest file name; names only go up
	closed   bool

	failing  atomic.Bool   // the writer's last write failed: Append drops rather than waits
	appended atomic.Uint64 // greatest id appended since Open

	writec chan writeReq      // requests to writeLoop
	cfgc   chan struct{}      // 1-buffered: the config changed
	kickc  chan struct{}      // 1-buffered: housekeeping has work
	housec chan chan struct{} // a housekeeping pass, answered when done
	closec chan struct{}      // closed by Close
	stop   context.CancelFunc // cancels housekeeping (a compression in progress)
	// zw compresses rotated files, reset for each: one encoder for all
	// saves the allocation of its tables per file (1.8 MB), which made a
	// file of 1000 entries compress at 245 MB/s where a reset one gives
	// 395 (BenchmarkCompressFile). Only houseLoop uses it; nil until the
	// first file.
	zw     *zstd.Encoder
	wg     sync.WaitGroup // writeLoop and houseLoop
	once   sync.Once      // Close
	doneWr chan error     // writeLoop's result, for Close
}

// fileState is what the archive knows of one data file. Guarded by
// Archive.mu.
type fileState struct {
	stem    string
	kind    fileKind // kindPlain, kindZstd or kindGzip
	size    int64    // bytes on disk; for the current file, bytes written
	firstID uint64   // from the name
	started time.Time
	modTime time.Time
	meta    meta // valid when known
	known   bool // meta describes the whole file
	current bool

	wantCompress   bool // to be compressed by housekeeping
	compressFailed bool // the last try failed; retried after the next rotation
}

func (f *fileState) name() string { return f.stem + extFor(f.kind) }

// owesCompression reports whether f is a rotated file still plain that
// housekeeping is to compress (again, if its last try failed).
func (f *fileState) owesCompression() bool {
	return f.wantCompress && f.kind == kindPlain && !f.current
}

// reason is why a file was rotated.
type reason int

// Reasons for a rotation.
const (
	reasonCount  reason = iota + 1 // Config.MaxCount entries
	reasonSize                     // Config.MaxSize bytes
	reasonTime                     // Config.Interval
	reasonManual                   // Archive.Rotate
)

// Stats are the archive's counters since Open, and its files now. They map
// one to one onto pxperfv1.ArchiveStats, but for QueuedBytes, which it has
// no field for.
type Stats struct {
	// EntriesWritten and BytesWritten count lines written to files, and
	// their bytes before compression. An entry appended again (a completed
	// PENDING entry) counts again.
	EntriesWritten uint64
	BytesWritten   uint64
	// Files and DiskBytes are the data files on disk now (the current one
	// included; sidecars not counted) and their size.
	Files     uint64
	DiskBytes uint64
	// FilesAwaitingCompression and BytesAwaitingCompression are the
	// rotated files still plain that housekeeping is to compress, and
	// their size: the backlog. It grows while lines come in faster than
	// housekeeping compresses them. The current file is not in it, nor is
	// any file while Config.Compress is off; a file whose compression
	// failed stays in it until a later rotation has it tried again.
	FilesAwaitingCompression uint64
	BytesAwaitingCompression uint64
	// Rotations by reason.
	RotationsByCount uint64
	RotationsBySize  uint64
	RotationsByTime  uint64
	RotationsManual  uint64
	// CompressionRatio is the compressed size over the uncompressed size of
	// the files compressed since Open; 0 before the first.
	CompressionRatio float64
	// CompressionTime is the time spent compressing.
	CompressionTime time.Duration
	// FilesDeleted counts files deleted by retention.
	FilesDeleted uint64
	// WriteErrors counts failed writes, fsyncs, file creations, sidecar
	// writes, compressions and deletions. A failed write is retried every
	// FlushInterval and counts each time.
	WriteErrors uint64
	// QueueFullWaits counts Append calls that waited because the queue was
	// full.
	QueueFullWaits uint64
	// EntriesDropped counts entries Append dropped because the queue was
	// full while writes were failing (see Append).
	EntriesDropped uint64
	// CorruptLines counts lines skipped by reads and recovery: torn,
	// unparsable or too long.
	CorruptLines uint64
	// Queued is the number of entries waiting for the writer now.
	Queued int
	// QueuedBytes is the bytes of their bodies (see Config.QueueBytes).
	QueuedBytes int64
	// LastError is the last write, compression or deletion error, empty if
	// there was none.
	LastError string

	// Sums behind CompressionRatio.
	compressedIn, compressedOut int64
}

// FileInfo describes one archive file.
type FileInfo struct {
	// Name is the file name within Config.Dir.
	Name string
	// Size is its size on disk in bytes; for the current file, the bytes
	// written so far.
	Size int64
	// Compressed is whether it is compressed (zstd; gzip files put there by
	// hand are read too).
	Compressed bool
	// Current is whether it is the file being written.
	Current bool
	// Known is whether the fields below describe the whole file. It is false
	// only for a file whose sidecar was lost, until housekeeping has read the
	// file again; FirstID is then the first line's id, from the name.
	Known bool
	// Entries is the number of lines.
	Entries uint64
	// FirstID and LastID are the least and greatest id in the file.
	FirstID uint64
	LastID  uint64
	// StartTime and EndTime are the earliest and latest entry start time in
	// the file; zero when no entry has one.
	StartTime time.Time
	EndTime   time.Time
}

func (f *fileState) info() FileInfo {
	fi := FileInfo{
		Name:       f.name(),
		Size:       f.size,
		Compressed: f.kind != kindPlain,
		Current:    f.current,
		Known:      f.known,
		FirstID:    f.firstID,
	}
	if f.known {
		fi.Entries, fi.FirstID, fi.LastID = f.meta.Entries, f.meta.MinID, f.meta.MaxID
		fi.StartTime, fi.EndTime = f.meta.MinTime, f.meta.MaxTime
	}
	return fi
}

// Open opens the archive in cfg.Dir, creating the directory if needed, and
// starts its writer and housekeeping goroutines. It recovers what a crash
// left (see the package doc), applies retention, and returns once the
// archive is ready: compressing files left uncompressed continues in the
// background.
func Open(cfg Config) (*Archive, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	a := &Archive{
		dir:    cfg.Dir,
		now:    cfg.Now,
		hooks:  cfg.test,
		q:      newQueue(cfg.QueueSize, cfg.QueueBytes),
		cfg:    cfg,
		writec: make(chan writeReq),
		cfgc:   make(chan struct{}, 1),
		kickc:  make(chan struct{}, 1),
		housec: make(chan chan struct{}),
		closec: make(chan struct{}),
		stop:   stop,
		doneWr: make(chan error, 1),
	}
	if err := a.recover(); err != nil {
		stop()
		return nil, err
	}
	var err error
	if a.lease, err = loadLease(a); err != nil {
		stop()
		return nil, err
	}
	a.retain(true)
	a.wg.Add(2)
	go a.writeLoop()
	go a.houseLoop(ctx)
	a.kick()
	return a, nil
}

// Append queues items to be written, in order, and returns without waiting
// for the disk. Items with a nil Entry are skipped.
//
// When the queue (Config.QueueSize entries, or Config.QueueBytes of
// bodies) is full, Append waits for the writer to make room; each call that
// waits counts once in Stats.QueueFullWaits. The wait lasts as long as the disk is slower than
// the producers. While writes are failing (disk full, permissions), the
// writer keeps up to QueueSize entries that failed and retries them every
// FlushInterval; once the queue is full too, Append does not wait for a
// disk that may never come back: it drops the entries that do not fit and
// counts them in Stats.EntriesDropped, so the service keeps running from
// memory.
//
// It returns [ErrClosed] after Close, and then queues nothing more.
func (a *Archive) Append(items []Item) error {
	for i := 0; i < len(items); i++ {
		if items[i].Entry == nil {
			// Rare: copy once, without the nil entries.
			kept := make([]Item, 0, len(items))
			for _, it := range items {
				if it.Entry != nil {
					kept = append(kept, it)
				}
			}
			items = kept
			break
		}
	}
	if len(items) == 0 {
		return nil
	}
	var top uint64
	for i := range items {
		top = max(top, items[i].Entry.Id)
	}
	for old := a.appended.Load(); top > old && !a.appended.CompareAndSwap(old, top); old = a.appended.Load() {
	}
	if _, ok := a.q.put(items, a.failing.Load); !ok {
		return ErrClosed
	}
	return nil
}

// Rotate closes the current file, after writing everything appended
// before the call, and hands it to compression; the next entry starts a new
// file. It does nothing when there is no current file (nothing was
// appended since the last rotation). It fails if the lines cannot be
// written; the rotation then happens when they can.
func (a *Archive) Rotate(ctx context.Context) error {
	return a.ask(ctx, writeReq{kind: reqRotate})
}

// LastID returns the greatest id appended since Open (written or still
// queued) or found in the files at Open; 0 for an empty archive. A server
// that continues ids across restarts starts after it.
func (a *Archive) LastID() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(a.lastID, a.appended.Load())
}

// SetConfig changes the config while running. Rotation policies, limits,
// compression and the flush interval may change: a lowered MaxCount or
// MaxSize rotates at the next flush tick, retention runs at once with the
// new limits, and Compress applies to files rotated afterwards. Dir,
// QueueSize and QueueBytes may not change ([ErrNotLive]); Now is kept from
// Open.
func (a *Archive) SetConfig(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if filepath.Clean(cfg.Dir) != filepath.Clean(a.cfg.Dir) {
		return fmt.Errorf("%w: Dir (from %q to %q)", ErrNotLive, a.cfg.Dir, cfg.Dir)
	}
	if cfg.QueueSize != a.cfg.QueueSize {
		return fmt.Errorf("%w: QueueSize (from %d to %d)", ErrNotLive, a.cfg.QueueSize, cfg.QueueSize)
	}
	if cfg.QueueBytes != a.cfg.QueueBytes {
		return fmt.Errorf("%w: QueueBytes (from %d to %d)", ErrNotLive, a.cfg.QueueBytes, cfg.QueueBytes)
	}
	cfg.Dir, cfg.Now, cfg.test = a.cfg.Dir, a.cfg.Now, a.cfg.test
	a.cfg = cfg
	select {
	case a.cfgc <- struct{}{}:
	default:
	}
	a.kick()
	return nil
}

// Config returns the config in force.
func (a *Archive) Config() Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Stats returns the counters and the files now.
func (a *Archive) Stats() Stats {
	queued, queuedBytes, waits, dropped := a.q.counts()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Queued, s.QueuedBytes, s.QueueFullWaits, s.EntriesDropped = queued, queuedBytes, waits, dropped
	s.Files = uint64(len(a.files))
	for _, f := range a.files {
		s.DiskBytes += uint64(f.size)
		if f.owesCompression() {
			s.FilesAwaitingCompression++
			s.BytesAwaitingCompression += uint64(f.size)
		}
	}
	if s.compressedIn > 0 {
		s.CompressionRatio = float64(s.compressedOut) / float64(s.compressedIn)
	}
	return s
}

// Files returns the archive files, oldest first, the current one last. The
// current file's figures cover the lines written to it so far, which may
// be up to a FlushInterval behind Append.
func (a *Archive) Files() ([]FileInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	out := make([]FileInfo, len(a.files))
	for i, f := range a.files {
		out[i] = f.info()
	}
	return out, nil
}

// Close writes out and fsyncs everything appended, closes the current file
// (the next Open starts a new one and compresses this one), stops the
// goroutines Open started, and returns the last write error if the
// entries could not all be written. A compression in progress is abandoned
// (its temporary removed) and done again after the next Open. Close is
// idempotent: later calls return nil.
func (a *Archive) Close() error {
	var err error
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.q.close()
		a.stop() // abandon a compression in progress
		close(a.closec)
		err = <-a.doneWr
		a.wg.Wait()
		if err == nil {
			err = a.trimLease()
		}
	})
	return err
}

// recordErrorLocked counts a failed operation and keeps it as the last
// error. Callers hold a.mu.
func (a *Archive) recordErrorLocked(err error) {
	a.stats.WriteErrors++
	a.stats.LastError = err.Error()
}

// recordError is recordErrorLocked for callers that do not hold a.mu.
func (a *Archive) recordError(err error) {
	a.mu.Lock()
	a.recordErrorLocked(err)
	a.mu.Unlock()
}

func (a *Archive) countCorrupt(n uint64) {
	if n == 0 {
		return
	}
	a.mu.Lock()
	a.stats.CorruptLines += n
	a.mu.Unlock()
}

// kick asks housekeeping for a pass.
func (a *Archive) kick() {
	select {
	case a.kickc <- struct{}{}:
	default:
	}
}

// path returns the path of name in the archive directory.
func (a *Archive) path(name string) string { return filepath.Join(a.dir, name) }

// syncDir fsyncs the archive directory, so that creations, renames and
// removals in it survive a crash.
func (a *Archive) syncDir() error {
	d, err := os.Open(a.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
