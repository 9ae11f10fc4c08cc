// Package archive is pxperf's log rotator: it appends every accepted entry
// to rotating JSON Lines files, compresses rotated files in the background,
// applies retention, recovers after a crash, and reads entries back by id
// or time range.
//
// # Format
//
// One JSON object per line, one line per entry, as protojson writes a
// [pxperfv1.Entry] with UseProtoNames: snake_case field names, enums by
// name, int64 and uint64 as decimal strings, Timestamps as RFC 3339 UTC
// strings, Durations as "1.5s", bytes (the bodies' data) as standard
// base64, zero fields left out. The id comes first. Any JSON tool reads
// the files (jq, or zstdcat | jq for compressed ones), and
// protojson.Unmarshal reads a line back into an equal Entry. The encoder is
// this package's own (several times faster than protojson and
// encoding/json, allocation-free: BenchmarkEncode). Two values cannot be
// written as they are and are changed instead of making the line
// unreadable: invalid UTF-8 in a string becomes U+FFFD, one per bad byte
// (protojson refuses invalid UTF-8); a Timestamp or Duration outside
// protobuf's range is clamped into it.
//
// An entry appended again with the same id (a PENDING entry completed
// later) gets a new line where it was appended; the later line is the
// entry's final state. [Archive.Entry] returns it; [Archive.Read] returns
// both lines, in file order.
//
// # Writing, flush and fsync
//
// [Archive.Append] puts entries on a bounded queue ([Config].QueueSize
// entries) and returns; it waits only while the queue is full, and each
// call that waits is counted (Stats.QueueFullWaits). A single writer
// goroutine takes everything queued at once, encodes it into a 256 KiB
// buffer, and writes the buffer out when it fills. Every FlushInterval
// (default 1 s) it writes out what is buffered and fsyncs the file; it does
// the same on every rotation and at [Archive.Close]. So a crash loses at
// most the last FlushInterval of entries (and what the queue held).
// Reads ask the writer to write out what was appended before them first,
// without an fsync.
//
// A failed write (disk full, permissions) does not stop anything: it is
// counted (Stats.WriteErrors, Stats.LastError), the lines stay in memory,
// and the writer retries every FlushInterval, writing at the offset after
// the last whole line so that nothing is torn, lost or written twice.
// While writes fail the writer holds at most QueueSize entries, and Append
// drops entries that do not fit in the queue rather than block the service
// on a disk that may not come back (Stats.EntriesDropped). A rotation due
// meanwhile happens after the first successful write, so a file can pass
// its limits during an outage.
//
// # Rotation and names
//
// The current file is rotated by count (MaxCount entries), by size (before
// a line would take it past MaxSize bytes), by time (Interval after it was
// started, or with AlignToClock at the next multiple of Interval of the UTC
// wall clock, e.g. on the hour), whichever comes first, and by
// [Archive.Rotate]. Time is checked on every batch and every flush tick, so
// a time rotation happens within FlushInterval of its deadline. A file is
// started by the first entry after a rotation, so an idle archive makes no
// empty files.
//
// Files are named pxperf-<start>-<first id>.jsonl, for example
// pxperf-20261127T101500.123456789Z-000042.jsonl: the UTC time the file was
// started, to the nanosecond, and the id of its first line. Each name's
// time is later than the one before (by a nanosecond if the clock has not
// moved on or went back), so names sort in the order files were written and
// never collide, even for many rotations in one second or across restarts.
// Next to each file is a small sidecar, the same stem with .meta, holding
// its entry count, id range, start-time range and bytes; it lets listing,
// retention and reads skip files without opening them, and lets recovery
// read only the tail of the newest file.
//
// # Compression
//
// With Compress, rotated files are compressed in the background with zstd
// at its fastest level, with a 1 MiB window (klauspost/compress), into
// pxperf-….jsonl.zst, readable with zstdcat (or zstd -dc; zcat does not
// read zstd). On
// realistic entries (BenchmarkCompress: 16 MiB of lines with headers,
// varied URLs, a third with a body) it is 3.5× as fast as the standard
// library's gzip at its default level (about 400 against 113 MB/s on the
// 2-core machines here) and its output is 3 % larger. gzip from
// klauspost/compress is either not fast enough (2× at its default level,
// output 6 % larger) or compresses much worse (3.2× at its fastest, output
// 26 % larger); zstd's default level compresses 1 % better than gzip but
// is only 2.5× as fast.
//
// The compressor writes a temporary in the same directory, fsyncs it,
// renames it into place, fsyncs the directory, and only then removes the
// original; on failure it removes the temporary, keeps the original, counts
// the error, and tries again after the next rotation. gzip files
// (.jsonl.gz) put there by hand are read too.
//
// # Retention
//
// After each rotation (and its compression), after [Archive.SetConfig] and
// at Open, files are deleted oldest first, never the current one: those
// whose newest entry started more than MaxAge ago; those beyond MaxFiles
// (counting the current file, or a slot for the next one); and the oldest
// while all files together pass MaxTotalBytes. The limits by age and count
// are applied again before each compression, so that housekeeping that
// falls behind a fast rotation does not compress files it then deletes.
//
// # Recovery
//
// [Open] lists the directory and reads the sidecars: it does not open the
// data files, so it is ready in milliseconds whatever the archive's size
// (BenchmarkOpen1GB). It removes temporaries left by a crash, and an
// original left beside its finished compressed file. The newest file, if
// it was being written, is read from where its sidecar says the fsynced
// lines end (all of it if the sidecar is missing): a torn last line is cut
// off and counted (Stats.CorruptLines), and the file is closed with an
// exact sidecar; if it has no whole line it is removed and the one before
// is the newest. [Archive.LastID] is then the greatest id in any file. The
// next entry starts a new file: a possibly torn file is never appended to.
//
// Ids given to entries that were still queued at a crash are in no file,
// yet clients may hold them. So that they are never given again, the
// service reserves ids ahead with [Archive.ReserveIDs] before it hands
// them out: the lease (file ids.lease, written and fsynced a million ids
// at a time) is what [Archive.NextID] continues after, as well as the last
// id archived. A clean [Archive.Close] trims the lease to the last id
// appended, so ids then continue without a jump; after a crash they skip
// what was reserved and not used, at most a million. Files left uncompressed
// are compressed in the background; files whose sidecar was lost are read
// once in the background to describe them again.
//
// # Reads
//
// [Archive.Files] lists the files; [Archive.Read] streams entries by id
// range and start-time range, with a matcher, across plain and compressed
// files; [Archive.Entry] returns one entry by id. Corrupt lines are skipped
// and counted, never fatal.
package archive
