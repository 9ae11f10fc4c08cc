package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Errors returned by the archive. Callers test them with [errors.Is].
var (
	// ErrInvalidConfig is wrapped by errors about a bad [Config]; the message
	// names the field.
	ErrInvalidConfig = errors.New("invalid archive config")
	// ErrNotLive is wrapped by [Archive.SetConfig] when a field that is set
	// only at [Open] (Dir, QueueSize, QueueBytes) would change; the message
	// names it.
	ErrNotLive = errors.New("archive config field cannot change while running")
	// ErrNotFound is wrapped when an id is in no archive file.
	ErrNotFound = errors.New("entry not in the archive")
	// ErrClosed is returned by calls on an archive after [Archive.Close].
	ErrClosed = errors.New("archive closed")
)

// Defaults for the zero values of [Config].
const (
	DefaultFlushInterval = time.Second
	DefaultQueueSize     = 65536
	maxQueueSize         = 1 << 24
	DefaultQueueBytes    = 8 << 20
	minQueueBytes        = 64 << 10
)

// Config sets up an [Archive]. A zero limit turns its policy off. Every
// field but Dir, QueueSize and QueueBytes can be changed while running with
// [Archive.SetConfig].
type Config struct {
	// Dir is the directory the files are written to; created if missing.
	// Required. Not live.
	Dir string

	// MaxCount rotates the current file once it holds this many entries.
	// Zero: no count rotation. Not negative.
	MaxCount int
	// MaxSize rotates the current file before a line would take it past
	// this many bytes (uncompressed); a single longer line gets a file of
	// its own. Zero: no size rotation. Not negative.
	MaxSize int64
	// Interval rotates the current file this long after it was started, or
	// with AlignToClock at the next multiple of Interval of the wall clock.
	// Zero: no time rotation. Not negative.
	Interval time.Duration
	// AlignToClock makes time rotation happen at multiples of Interval since
	// the zero time, UTC: on the hour for 1h, at UTC midnight for 24h.
	// Needs Interval.
	AlignToClock bool

	// MaxFiles is the most files kept, the current one included; the oldest
	// are deleted first. Zero: no limit. Not negative.
	MaxFiles int
	// MaxAge deletes files whose newest entry (by start time) is older than
	// this. Zero: files are kept whatever their age. Not negative.
	MaxAge time.Duration
	// MaxTotalBytes caps the bytes of all files on disk; the oldest are
	// deleted to stay under it (never the current file). Zero: no cap. Not
	// negative.
	MaxTotalBytes int64

	// Compress compresses rotated files with zstd in the background.
	Compress bool

	// FlushInterval is how often buffered lines are written out and the
	// current file fsynced; also the period of the time-rotation and retry
	// checks. Zero means [DefaultFlushInterval]; otherwise 1ms..1h.
	FlushInterval time.Duration

	// QueueSize is the most entries waiting for the writer; [Archive.Append]
	// waits for room beyond it (see there). Zero means [DefaultQueueSize];
	// otherwise 1..16777216. Not live.
	QueueSize int
	// QueueBytes bounds the body bytes, request and response, of the
	// entries waiting for the writer, as QueueSize bounds their number (one
	// entry is let in whatever its bodies). The queue may hold entries that the store has
	// already evicted, so this is memory outside the store's budget: with
	// large bodies and a slow disk, the entry count alone would let it
	// grow to QueueSize bodies. Zero means [DefaultQueueBytes]; otherwise
	// at least 64 KiB. Not live.
	QueueBytes int64

	// Now is the clock, for file names, time rotation and retention; nil
	// means time.Now. It is called from several goroutines. Not changed by
	// SetConfig.
	Now func() time.Time

	// test holds hooks set only by the package's tests.
	test testHooks
}

// testHooks let the package's tests drive time and inject faults, with no
// global state. The zero value is the real thing.
type testHooks struct {
	// tick replaces the flush ticker.
	tick <-chan time.Time
	// openFile opens the current file for writing.
	openFile func(name string) (file, error)
	// createTemp creates a compression temporary.
	createTemp func(name string) (file, error)
}

// file is what the writer and compressor need of an *os.File.
type file interface {
	io.Writer
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
}

func openAppendFile(name string) (file, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// withDefaults fills in the zero values that have defaults.
func (c Config) withDefaults() Config {
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.test.openFile == nil {
		c.test.openFile = openAppendFile
	}
	if c.test.createTemp == nil {
		c.test.createTemp = openAppendFile
	}
	return c
}

// validate checks a config with its defaults filled in.
func (c Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Dir == "":
		return bad("Dir", "is required")
	case c.MaxCount < 0:
		return bad("MaxCount", "must not be negative, got %d", c.MaxCount)
	case c.MaxSize < 0:
		return bad("MaxSize", "must not be negative, got %d", c.MaxSize)
	case c.Interval < 0:
		return bad("Interval", "must not be negative, got %v", c.Interval)
	case c.AlignToClock && c.Interval == 0:
		return bad("AlignToClock", "needs an Interval")
	case c.MaxFiles < 0:
		return bad("MaxFiles", "must not be negative, got %d", c.MaxFiles)
	case c.MaxAge < 0:
		return bad("MaxAge", "must not be negative, got %v", c.MaxAge)
	case c.MaxTotalBytes < 0:
		return bad("MaxTotalBytes", "must not be negative, got %d", c.MaxTotalBytes)
	case c.FlushInterval < time.Millisecond || c.FlushInterval > time.Hour:
		return bad("FlushInterval", "must be within 1ms..1h, got %v", c.FlushInterval)
	case c.QueueSize < 1 || c.QueueSize > maxQueueSize:
		return bad("QueueSize", "must be within 1..%d, got %d", maxQueueSize, c.QueueSize)
	case c.QueueBytes < minQueueBytes:
		return bad("QueueBytes", "must be at least %d, got %d", minQueueBytes, c.QueueBytes)
	}
	return nil
}
