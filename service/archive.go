package service

import (
	"context"
	"errors"
	"fmt"
	"slices"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/resources"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// archiveStored queues what the store just stored for the archive. The
// caller holds s.ingestMu, so that entries reach the archive in id order.
func (s *Service) archiveStored(stored []store.Stored) {
	if s.archive == nil || len(stored) == 0 {
		return
	}
	items := make([]archive.Item, len(stored))
	for i, st := range stored {
		items[i] = archive.Item{Entry: st.Entry, Body: st.Body}
	}
	if err := s.archive.Append(items); err != nil {
		// Only after Close, at shutdown: the entries are in memory still.
		s.log.Warn("entries not archived", "entries", len(items), "err", err)
		return
	}
	if s.archiveFile != nil {
		s.archiveFile.Touch(0, uint64(len(items)))
	}
}

// reserveIDs has the archive's id lease cover the ids the next n new
// entries may take, so that they are never given again after a crash. The
// caller holds ingestMu, so the store's next id does not move meanwhile.
// When the lease cannot be written (the disk is full), ingest goes on: the
// entries are served from memory, and only a crash before the disk
// recovers could give one of their ids again; the archive counts the
// error and the monitor alerts on it.
func (s *Service) reserveIDs(n int) {
	if s.archive == nil || n == 0 {
		return
	}
	_, next := s.store.Bounds()
	if err := s.archive.ReserveIDs(next + uint64(n) - 1); err != nil {
		s.log.Warn("cannot reserve ids ahead in the archive's lease", "err", err)
	}
}

// trackArchive registers the archive's open file as a resource, whose
// cleanup is closing the archive: writing out, fsyncing and closing the
// current file.
func (s *Service) trackArchive() {
	if s.archive == nil {
		return
	}
	arch := s.archive
	h, err := s.resources.Track(resources.File, "archive in "+s.config().GetLogs().GetDirectory(), func(error) error {
		return arch.Close()
	})
	if err != nil { // not expected: files have no limit
		s.log.Warn("cannot track the archive", "err", err)
		return
	}
	s.archiveFile = h
}

// closeArchive writes out, fsyncs and closes the archive, once, counted
// as the cleanup of its file resource (unless the registry ended it
// first, at shutdown).
func (s *Service) closeArchive() {
	if s.archive == nil {
		return
	}
	var err error
	if s.archiveFile != nil {
		err = s.archiveFile.Release()
	} else {
		err = s.archive.Close()
	}
	if err != nil {
		s.log.Error("closing the archive", "err", err)
	}
}

// archiveStats reports the archive for GetStats; nil when it is off.
func (s *Service) archiveStats() *pxperfv1.ArchiveStats {
	if s.archive == nil {
		return nil
	}
	st := s.archive.Stats()
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

// errNoArchive answers the archive RPCs when logs.enabled is off.
var errNoArchive = status.Error(codes.FailedPrecondition, "the archive is off (logs.enabled is false); start the server with it on to read archived entries")

// defaultFilesPage is the ListLogFiles page size when the request gives
// none.
const defaultFilesPage = 100

// ListLogFiles implements pxperfv1.PerformanceServiceServer.
func (s *Service) ListLogFiles(_ context.Context, req *pxperfv1.ListLogFilesRequest) (*pxperfv1.ListLogFilesResponse, error) {
	if s.archive == nil {
		return nil, errNoArchive
	}
	files, err := s.archive.Files()
	if err != nil {
		return nil, toStatus(err)
	}
	start := 0
	if t := req.GetPageToken(); t != "" {
		after, err := decodePageToken(t)
		if err != nil {
			return nil, invalidField("page_token", err.Error())
		}
		start = int(min(after, uint64(len(files))))
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultFilesPage
	}
	end := min(start+size, len(files))
	resp := &pxperfv1.ListLogFilesResponse{}
	for _, f := range files[start:end] {
		lf := &pxperfv1.LogFile{
			Name:       f.Name,
			SizeBytes:  uint64(max(f.Size, 0)),
			Compressed: f.Compressed,
			Current:    f.Current,
			FirstId:    f.FirstID,
			LastId:     f.LastID,
		}
		if !f.StartTime.IsZero() {
			lf.StartTime, lf.EndTime = timestamppb.New(f.StartTime), timestamppb.New(f.EndTime)
		}
		resp.Files = append(resp.Files, lf)
	}
	if end < len(files) {
		resp.NextPageToken = encodePageToken(uint64(end))
	}
	return resp, nil
}

// archiveBatch is how many entries a ReadArchive message carries.
const archiveBatch = 500

// ReadArchive implements pxperfv1.PerformanceServiceServer.
func (s *Service) ReadArchive(req *pxperfv1.ReadArchiveRequest, stream grpc.ServerStreamingServer[pxperfv1.ReadArchiveResponse]) error {
	if s.archive == nil {
		return errNoArchive
	}
	match, err := compileFilter(req.GetFilter())
	if err != nil {
		return err
	}
	q := archive.Query{}
	if !match.All() {
		q.Match = match.Selects
	}
	if ids := req.GetIds(); ids != nil {
		q.FirstID, q.LastID = ids.GetFirstId(), ids.GetLastId()
	}
	if tr := req.GetTimes(); tr != nil {
		q.Start = tr.GetStartTime().AsTime()
		if tr.GetEndTime() != nil {
			q.End = tr.GetEndTime().AsTime()
		}
	}
	batch := make([]*pxperfv1.Entry, 0, archiveBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&pxperfv1.ReadArchiveResponse{Entries: batch})
		batch = make([]*pxperfv1.Entry, 0, archiveBatch)
		return err
	}
	err = s.archive.Read(stream.Context(), q, func(e *pxperfv1.Entry) error {
		if !req.GetIncludeBodies() && e.GetResponseBody() != nil {
			e.ResponseBody.Data = nil // a fresh copy: ours to change
		}
		batch = append(batch, e)
		if len(batch) == archiveBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return toStatus(err)
	}
	return flush()
}

// archiveEntry returns entry id from the archive, for GetEntry when it has
// left memory.
func (s *Service) archiveEntry(ctx context.Context, id uint64, memErr error) (*pxperfv1.Entry, error) {
	if s.archive == nil {
		return nil, toStatus(fmt.Errorf("%w; the archive is off, so entries that left memory cannot be read back", memErr))
	}
	e, err := s.archive.Entry(ctx, id)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, toStatus(fmt.Errorf("%w, and not in the archive either", memErr))
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return e, nil
}
