package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/pxperf/pxperf/auth"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/resources"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Why a tracked stream was ended by someone other than its client.
var (
	// errClosedByRequest is wrapped by the reason CloseResource gives.
	errClosedByRequest = errors.New("closed by CloseResource")
	// errShuttingDown ends what is still tracked when the server stops.
	errShuttingDown = errors.New("server is shutting down")
)

// trackStream registers a stream of type typ for ctx's caller. The
// returned context is ctx, cancelled with the reason when the registry
// ends the stream; release must be called when the handler returns. A
// stream beyond cleanup.max_resources gets RESOURCE_EXHAUSTED.
func (s *Service) trackStream(ctx context.Context, typ resources.Type) (context.Context, *resources.Handle, func(), error) {
	ctx, cancel := context.WithCancelCause(ctx)
	h, err := s.engine.Resources().Track(typ, auth.Owner(ctx), func(reason error) error {
		cancel(reason)
		return nil
	})
	if err != nil {
		cancel(nil)
		if le, ok := errors.AsType[*resources.LimitError](err); ok {
			return nil, nil, nil, status.Errorf(codes.ResourceExhausted,
				"%v (cleanup.max_resources): try again when a stream ends, or ask an administrator to raise the limit", le)
		}
		if errors.Is(err, resources.ErrClosed) {
			return nil, nil, nil, status.Error(codes.Unavailable, "server is shutting down")
		}
		return nil, nil, nil, toStatus(err)
	}
	release := func() {
		if err := h.Release(); err != nil {
			s.log.Warn("stream cleanup failed", "resource", h.ID(), "err", err)
		}
		cancel(nil)
	}
	return ctx, h, release, nil
}

// endedStatus is the status a tracked stream ends with when ctx, from
// trackStream, is done: the client's own cancellation or deadline as it
// is, else why the server ended it. resume says where to pick up.
func endedStatus(ctx context.Context, resume string) error {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, resources.ErrIdle):
		return status.Errorf(codes.Aborted, "ended by the server: %v (cleanup.resource_timeout)%s", cause, resume)
	case errors.Is(cause, errClosedByRequest):
		return status.Errorf(codes.Aborted, "ended by the server: %v%s", cause, resume)
	case errors.Is(cause, errShuttingDown), errors.Is(cause, resources.ErrClosed):
		return status.Errorf(codes.Unavailable, "server is shutting down%s", resume)
	}
	return toStatus(ctx.Err())
}

// defaultResourcePage is the ListResources page size when none is given.
const defaultResourcePage = 100

// ListResources implements pxperfv1.PerformanceServiceServer. Pages are
// windows of the list at the time of each call, oldest first.
func (s *Service) ListResources(_ context.Context, req *pxperfv1.ListResourcesRequest) (*pxperfv1.ListResourcesResponse, error) {
	list := s.engine.Resources().List(resources.Type(req.GetType()))
	offset := 0
	if tok := req.GetPageToken(); tok != "" {
		n, err := decodePageToken(tok)
		if err != nil {
			return nil, invalidField("page_token", err.Error())
		}
		offset = int(min(n, uint64(len(list))))
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultResourcePage
	}
	resp := &pxperfv1.ListResourcesResponse{}
	end := min(offset+size, len(list))
	for _, in := range list[offset:end] {
		resp.Resources = append(resp.Resources, resourceProto(in))
	}
	if end < len(list) {
		resp.NextPageToken = encodePageToken(uint64(end))
	}
	return resp, nil
}

// CloseResource implements pxperfv1.PerformanceServiceServer. Streams end
// with ABORTED and the reason; a connection is closed. Workers and the
// archive's file end only with the server.
func (s *Service) CloseResource(ctx context.Context, req *pxperfv1.CloseResourceRequest) (*pxperfv1.CloseResourceResponse, error) {
	if in, ok := s.engine.Resources().Lookup(req.GetId()); ok {
		switch in.Type {
		case resources.Worker:
			return nil, status.Errorf(codes.FailedPrecondition, "%s is a background worker of the server (%s): it ends only when the server stops", in.ID, in.Owner)
		case resources.File:
			return nil, status.Errorf(codes.FailedPrecondition, "%s is the archive's open file (%s): it closes when the server stops; to start a new file now, Optimize with OPTIMIZE_ACTION_ROTATE", in.ID, in.Owner)
		}
	}
	why := req.GetReason()
	if why == "" {
		why = "no reason given"
	}
	reason := fmt.Errorf("%w by %s: %s", errClosedByRequest, auth.Owner(ctx), why)
	in, err := s.engine.Resources().Close(req.GetId(), reason)
	if errors.Is(err, resources.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no resource %q is open; ListResources shows those that are", req.GetId())
	}
	if err != nil && in.ID == "" {
		return nil, toStatus(err)
	}
	if err != nil {
		s.log.Warn("resource cleanup failed", "resource", in.ID, "err", err)
	}
	s.log.Info("resource closed on request", "resource", in.ID, "owner", in.Owner, "by", auth.Owner(ctx), "reason", why)
	return &pxperfv1.CloseResourceResponse{Resource: resourceProto(in)}, nil
}

func resourceProto(in resources.Info) *pxperfv1.Resource {
	return &pxperfv1.Resource{
		Id:             in.ID,
		Type:           pxperfv1.ResourceType(in.Type),
		Owner:          in.Owner,
		CreateTime:     timestamppb.New(in.Created),
		LastActiveTime: timestamppb.New(in.LastActive),
		Bytes:          in.Bytes,
		Entries:        in.Entries,
	}
}

// trackedListener tracks each connection it accepts as a resource: bytes
// read and written are its activity, and ending it closes it.
type trackedListener struct {
	net.Listener
	reg *resources.Registry
}

// Accept implements net.Listener.
func (l trackedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c}
		h, err := l.reg.Track(resources.Connection, c.RemoteAddr().String(), func(error) error {
			return tc.Conn.Close()
		})
		if err != nil {
			// Shutting down (or a limit): refuse the connection, keep
			// accepting until the listener closes.
			c.Close()
			continue
		}
		tc.h = h
		return tc, nil
	}
}

// trackedConn is a connection whose traffic is counted on its handle.
type trackedConn struct {
	net.Conn
	h    *resources.Handle
	once sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.h.Touch(uint64(n), 0)
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.h.Touch(uint64(n), 0)
	}
	return n, err
}

// Close closes the connection once, through its handle so that the
// registry counts the cleanup.
func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() { err = c.h.Release() })
	return err
}
