package archive

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File names. A file's stem is pxperf-<time>-<first id>: time is when the
// file was started, UTC, to the nanosecond, and the writer makes every stem
// later than the one before (see Archive.newStem), so names sort by time and
// never collide. The stem takes one of the data extensions, and its sidecar
// is the stem with metaExt.
const (
	namePrefix = "pxperf-"
	nameTime   = "20060102T150405.000000000Z"
	plainExt   = ".jsonl"
	zstdExt    = ".jsonl.zst"
	gzipExt    = ".jsonl.gz"
	metaExt    = ".meta"
	tempExt    = ".tmp"
)

// stemFor returns the stem of a file started at t whose first line has id
// firstID.
func stemFor(t time.Time, firstID uint64) string {
	return namePrefix + t.UTC().Format(nameTime) + "-" + fmt.Sprintf("%06d", firstID)
}

// fileKind is what a name in the directory is.
type fileKind int

const (
	kindOther fileKind = iota // not the archive's
	kindPlain                 // uncompressed data
	kindZstd                  // zstd-compressed data
	kindGzip                  // gzip-compressed data (read, never written)
	kindMeta                  // sidecar
	kindTemp                  // a temporary left by a crash
)

// parseName splits a directory entry's name into its stem and kind, and
// reads the start time and first id from the stem.
func parseName(name string) (stem string, kind fileKind, start time.Time, firstID uint64) {
	if !strings.HasPrefix(name, namePrefix) {
		return "", kindOther, time.Time{}, 0
	}
	if strings.HasSuffix(name, tempExt) {
		return "", kindTemp, time.Time{}, 0
	}
	for _, k := range []struct {
		ext  string
		kind fileKind
	}{{zstdExt, kindZstd}, {gzipExt, kindGzip}, {plainExt, kindPlain}, {metaExt, kindMeta}} {
		if s, ok := strings.CutSuffix(name, k.ext); ok {
			stem, kind = s, k.kind
			break
		}
	}
	if stem == "" {
		return "", kindOther, time.Time{}, 0
	}
	ts, id, ok := strings.Cut(strings.TrimPrefix(stem, namePrefix), "-")
	if !ok {
		return "", kindOther, time.Time{}, 0
	}
	t, err := time.Parse(nameTime, ts)
	if err != nil {
		return "", kindOther, time.Time{}, 0
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return "", kindOther, time.Time{}, 0
	}
	return stem, kind, t, n
}

// extFor returns the data extension of kind.
func extFor(kind fileKind) string {
	switch kind {
	case kindZstd:
		return zstdExt
	case kindGzip:
		return gzipExt
	}
	return plainExt
}

// meta describes the lines of one data file. It is kept in memory for every
// file and in the file's sidecar on disk, so that listing and skipping files
// never reads them.
//
// The sidecar of the file being written is rewritten after every flush,
// without fsync; it describes only lines that were fsynced before it was
// written, so after a crash it describes a prefix of the file and recovery
// reads the file only from there (see recoverTail). When a file is rotated
// its sidecar is written with Closed set and fsynced.
type meta struct {
	// Entries is the number of lines.
	Entries uint64 `json:"entries"`
	// Bytes is the size of those lines, uncompressed.
	Bytes int64 `json:"bytes"`
	// MinID and MaxID are the least and greatest id of the lines. An id
	// appended again later (a completed PENDING entry) can make MinID lower
	// than the first line's id.
	MinID uint64 `json:"min_id"`
	MaxID uint64 `json:"max_id"`
	// MinTime and MaxTime are the earliest and latest entry start time; zero
	// when no line has one.
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
	// Closed is set once the file will get no more lines.
	Closed bool `json:"closed"`
}

// add accounts one line of n bytes for an entry with id and start time t
// (hasTime false when it has none).
func (m *meta) add(id uint64, t time.Time, hasTime bool, n int) {
	if m.Entries == 0 || id < m.MinID {
		m.MinID = id
	}
	m.MaxID = max(m.MaxID, id)
	if hasTime {
		if m.MinTime.IsZero() || t.Before(m.MinTime) {
			m.MinTime = t
		}
		if t.After(m.MaxTime) {
			m.MaxTime = t
		}
	}
	m.Entries++
	m.Bytes += int64(n)
}

// merge accounts the lines of o after those of m.
func (m *meta) merge(o meta) {
	if o.Entries == 0 {
		m.Bytes += o.Bytes
		return
	}
	if m.Entries == 0 || o.MinID < m.MinID {
		m.MinID = o.MinID
	}
	m.MaxID = max(m.MaxID, o.MaxID)
	if !o.MinTime.IsZero() && (m.MinTime.IsZero() || o.MinTime.Before(m.MinTime)) {
		m.MinTime = o.MinTime
	}
	if o.MaxTime.After(m.MaxTime) {
		m.MaxTime = o.MaxTime
	}
	m.Entries += o.Entries
	m.Bytes += o.Bytes
}

func (m meta) marshal() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// Times are clamped to years 1..9999 (entryTime), which always
		// marshal.
		panic(err)
	}
	return append(b, '\n')
}

// parseMeta reads a sidecar. A torn or foreign sidecar is an error, and the
// file's lines are read instead.
func parseMeta(b []byte) (meta, error) {
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, err
	}
	if m.Bytes < 0 || m.MinID > m.MaxID || (m.Entries == 0 && m.MaxID != 0) {
		return meta{}, fmt.Errorf("inconsistent sidecar %q", b)
	}
	return m, nil
}
