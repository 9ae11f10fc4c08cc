package service

import (
	"context"
	"errors"
	"strconv"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/resources"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// maxBatchBytes bounds the entries of one Subscribe message: 2 MiB, half
// the 4 MiB that gRPC clients accept by default, so that any client left at
// its defaults (grpcurl, any language's) receives every message whatever
// max_batch_size, unless a single entry is larger (it then goes alone). A
// batch that reaches it goes out as full. It is what a subscriber behind
// gets in each message, so with the message cap it bounds how fast one
// catches up: BENCHMARKS.md (freshness) gives the runs that chose 2 MiB
// over 1.
const maxBatchBytes = 2 << 20

// batchEnvelope is room, in a Subscribe message, for what it holds besides
// its entries: the event's tag and length, next_id and updates_lost.
const batchEnvelope = 64

// batchBytes is the byte bound of a batch's entries on a server that sends
// messages of at most maxSend bytes (server.max_send_message_bytes).
func batchBytes(maxSend uint32) int {
	return max(1, min(maxBatchBytes, int(maxSend)-batchEnvelope))
}

// Subscribe implements pxperfv1.PerformanceServiceServer: the hub decides
// what to send and when (see package hub); the handler encodes each
// message and sends it. A batch of the store's cached encodings goes out
// as those bytes, without copying them (encodeBatch). The stream is a
// tracked resource; every status that ends it says where to resume, in
// its message and as an ErrorInfo detail (see resumeStatus).
func (s *Service) Subscribe(req *pxperfv1.SubscribeRequest, stream grpc.ServerStreamingServer[pxperfv1.SubscribeResponse]) error {
	match, err := compileFilter(req.GetFilter())
	if err != nil {
		return err
	}
	s.subscribers.Add(1)
	defer s.subscribers.Done()
	ctx, h, release, err := s.trackStream(stream.Context(), resources.Subscriber)
	if err != nil {
		return err
	}
	defer release()

	hr := hub.Request{
		Match:               match,
		Key:                 filterKey(req.GetFilter()),
		MaxUpdatesPerSecond: int(req.GetMaxUpdatesPerSecond()),
		MaxBatchSize:        int(req.GetMaxBatchSize()),
		Bodies:              req.GetIncludeBodies(),
		LiveView:            int(req.GetLiveView().GetWindow()),
	}
	switch start := req.GetStart().(type) {
	case *pxperfv1.SubscribeRequest_StartId:
		hr.Start, hr.StartID = hub.FromID, start.StartId
	case *pxperfv1.SubscribeRequest_Tail:
		hr.Start, hr.Tail = hub.FromTail, int(start.Tail)
	}
	if p, ok := peer.FromContext(stream.Context()); ok {
		hr.Peer = p.Addr.String()
	}
	sub, err := s.engine.Hub().Subscribe(ctx, hr)
	if err != nil {
		return subscribeStatus(ctx, err)
	}
	defer sub.Close()
	err = sub.Run(func(m hub.Message) error {
		var msg any = m.Response
		var size uint64
		if b := m.Batch; b != nil {
			raw := encodeBatch(b)
			msg, size = raw, uint64(raw.size)
		}
		if err := stream.SendMsg(msg); err != nil {
			return err
		}
		h.Touch(size, uint64(m.Entries))
		return nil
	})
	if errors.Is(err, hub.ErrStuck) {
		s.log.Warn("subscriber ended: Send blocked too long", "subscriber", sub.ID(), "peer", hr.Peer, "err", err)
	}
	return s.resumeStatus(ctx, err)
}

// subscribeStatus is the status of a Subscribe that could not start.
func subscribeStatus(ctx context.Context, err error) error {
	var re *hub.RangeError
	switch {
	case errors.As(err, &re) && re.Future:
		return status.Error(codes.OutOfRange, re.Error())
	case errors.As(err, &re):
		return outOfRange(re.Error(), re.Oldest)
	case errors.Is(err, hub.ErrClosed):
		return status.Error(codes.Unavailable, "server is shutting down")
	case ctx.Err() != nil:
		return endedStatus(ctx, "")
	}
	return toStatus(err)
}

// resumeStatus is the status that ends a Subscribe stream (err is the
// hub's *hub.EndError): why, and the start_id to resume from, in the
// message and as an ErrorInfo detail with reason STREAM_ENDED and metadata
// "start_id", so that a client need not read the message.
func (s *Service) resumeStatus(ctx context.Context, err error) error {
	var end *hub.EndError
	if !errors.As(err, &end) {
		return toStatus(err)
	}
	resume := "; resume with start_id " + strconv.FormatUint(end.NextID, 10)
	var st *status.Status
	switch {
	case errors.Is(end.Err, hub.ErrStuck):
		st = status.Newf(codes.ResourceExhausted, "this subscriber did not take a message for %v (throttle.send_timeout)%s, reading faster or asking for fewer updates (max_updates_per_second)",
			s.engine.Hub().Settings().SendTimeout, resume)
	case errors.Is(end.Err, hub.ErrClosed):
		st = status.New(codes.Unavailable, "server is shutting down"+resume)
	case ctx.Err() != nil:
		st = status.Convert(endedStatus(ctx, resume))
	default:
		cause := status.Convert(toStatus(end.Err))
		st = status.New(cause.Code(), cause.Message()+resume)
	}
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   "STREAM_ENDED",
		Domain:   "pxperf.v1",
		Metadata: map[string]string{"start_id": strconv.FormatUint(end.NextID, 10)},
	}); derr == nil {
		st = d
	}
	return st.Err()
}
