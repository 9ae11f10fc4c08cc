package service

import (
	"context"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errNoArchive answers the archive RPCs when logs.enabled is off.
var errNoArchive = status.Error(codes.FailedPrecondition, "the archive is off (logs.enabled is false); start the server with it on to read archived entries")

// defaultFilesPage is the ListLogFiles page size when the request gives
// none.
const defaultFilesPage = 100

// ListLogFiles implements pxperfv1.PerformanceServiceServer.
func (s *Service) ListLogFiles(_ context.Context, req *pxperfv1.ListLogFilesRequest) (*pxperfv1.ListLogFilesResponse, error) {
	if s.engine.Archive() == nil {
		return nil, errNoArchive
	}
	files, err := s.engine.Archive().Files()
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
	if s.engine.Archive() == nil {
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
	err = s.engine.Archive().Read(stream.Context(), q, func(e *pxperfv1.Entry) error {
		if !req.GetIncludeBodies() {
			store.StripBodies(e) // a fresh copy: ours to change
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
