package engine

import (
	"slices"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/resources"
	"google.golang.org/protobuf/types/known/durationpb"
)

// archiveConfig is the log rotator's view of the logs config: a limit
// whose policy is not listed is off.
func archiveConfig(lc *pxperfv1.LogsConfig) archive.Config {
	policy := func(p pxperfv1.RotationPolicy) bool { return slices.Contains(lc.GetPolicies(), p) }
	cfg := archive.Config{
		Dir:           lc.GetDirectory(),
		MaxFiles:      int(lc.GetMaxFiles()),
		MaxAge:        lc.GetMaxAge().AsDuration(),
		MaxTotalBytes: int64(lc.GetMaxTotalMb()) << 20,
		Compress:      lc.GetCompress(),
		FlushInterval: lc.GetFlushInterval().AsDuration(),
		QueueSize:     int(lc.GetQueueSize()),
	}
	if policy(pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT) {
		cfg.MaxCount = int(lc.GetMaxCount())
	}
	if policy(pxperfv1.RotationPolicy_ROTATION_POLICY_SIZE) {
		cfg.MaxSize = int64(lc.GetMaxSizeMb()) << 20
	}
	if policy(pxperfv1.RotationPolicy_ROTATION_POLICY_TIME) {
		cfg.Interval = lc.GetInterval().AsDuration()
		cfg.AlignToClock = lc.GetAlignToClock()
	}
	return cfg
}

// trackArchive registers the archive's open file as a resource, whose
// cleanup is closing the archive: writing out, fsyncing and closing the
// current file.
func (e *Engine) trackArchive() {
	if e.archive == nil {
		return
	}
	arch := e.archive
	h, err := e.resources.Track(resources.File, "archive in "+e.Config().GetLogs().GetDirectory(), func(error) error {
		return arch.Close()
	})
	if err != nil { // not expected: files have no limit
		e.log.Warn("cannot track the archive", "err", err)
		return
	}
	e.archiveFile = h
}

// closeArchive writes out, fsyncs and closes the archive, once, counted
// as the cleanup of its file resource (unless the registry ended it
// first, at shutdown).
func (e *Engine) closeArchive() {
	if e.archive == nil {
		return
	}
	var err error
	if e.archiveFile != nil {
		err = e.archiveFile.Release()
	} else {
		err = e.archive.Close()
	}
	if err != nil {
		e.log.Error("closing the archive", "err", err)
	}
}

// archiveStats reports the archive for GetStats; nil when it is off.
func (e *Engine) archiveStats() *pxperfv1.ArchiveStats {
	if e.archive == nil {
		return nil
	}
	st := e.archive.Stats()
	return &pxperfv1.ArchiveStats{
		EntriesWritten:   st.EntriesWritten,
		BytesWritten:     st.BytesWritten,
		Files:            st.Files,
		DiskBytes:        st.DiskBytes,
		RotationsByCount: st.RotationsByCount,
		RotationsBySize:  st.RotationsBySize,
		RotationsByTime:  st.RotationsByTime,
		RotationsManual:  st.RotationsManual,
		CompressionRatio: st.CompressionRatio,
		CompressionTime:  durationpb.New(st.CompressionTime),
		FilesDeleted:     st.FilesDeleted,
		WriteErrors:      st.WriteErrors,
		QueueFullWaits:   st.QueueFullWaits,
		EntriesDropped:   st.EntriesDropped,
		CorruptLines:     st.CorruptLines,
		Queued:           uint64(st.Queued),
		LastError:        st.LastError,

		FilesAwaitingCompression: st.FilesAwaitingCompression,
		BytesAwaitingCompression: st.BytesAwaitingCompression,
	}
}
