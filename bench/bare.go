package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// bareQueueBatches is how many PublishStream messages may wait for one bare
// subscriber before the relay blocks: enough to keep the subscriber's Send
// busy while the publisher's next Recv is decoded, small enough that the
// relay's memory stays bounded.
const bareQueueBatches = 64

// bareServer is the baseline the benchmarks compare pxperf with: the same
// service and wire messages, with no processing at all. PublishStream counts
// the entries of each message and hands the message's entries, as decoded,
// to every Subscribe stream open at that moment; each Subscribe stream sends
// each such batch as one SubscribeResponse. There is no validation,
// redaction, storage, id, filter, throttle or gap: a subscriber's queue is a
// bounded channel, and the relay blocks the publisher while any queue is
// full, so nothing is dropped and nothing is coalesced. ListEntries returns
// unfiltered windows of entries given to it beforehand (window).
//
// It is safe for concurrent use. Serve it with [newBareGRPCServer].
type bareServer struct {
	pxperfv1.UnimplementedPerformanceServiceServer

	accepted atomic.Uint64 // entries received on every PublishStream

	// subs is the current subscribers, copied on write so that the relay
	// reads it without a lock.
	subs atomic.Pointer[[]*bareSubscriber]

	mu      sync.Mutex    // serialises changes to subs
	changed chan struct{} // closed and replaced whenever subs changes

	// window is what ListEntries lists, oldest first. Set before the
	// server serves; cleared only once it has stopped.
	window []*pxperfv1.Entry
}

// bareSubscriber is one Subscribe stream's queue.
type bareSubscriber struct {
	batchc chan []*pxperfv1.Entry
	done   chan struct{} // closed when its Subscribe returns
}

func newBareServer() *bareServer {
	s := &bareServer{changed: make(chan struct{})}
	s.subs.Store(new([]*bareSubscriber))
	return s
}

// newBareGRPCServer returns a gRPC server serving s with pxperf's default
// message size limits (16 MiB each way) and no other option: no
// interceptors, health, reflection or keepalive.
func newBareGRPCServer(s *bareServer) *grpc.Server {
	sc := config.Default().GetServer()
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(int(sc.GetMaxRecvMessageBytes())),
		grpc.MaxSendMsgSize(int(sc.GetMaxSendMessageBytes())),
	)
	pxperfv1.RegisterPerformanceServiceServer(gs, s)
	return gs
}

// PublishStream counts each message's entries and relays them to every
// current subscriber, blocking while a subscriber's queue is full. The
// summary carries only the count accepted.
func (s *bareServer) PublishStream(stream grpc.ClientStreamingServer[pxperfv1.PublishStreamRequest, pxperfv1.PublishStreamResponse]) error {
	ctx := stream.Context()
	var n uint64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&pxperfv1.PublishStreamResponse{Accepted: n})
		}
		if err != nil {
			return err
		}
		es := req.GetEntries()
		n += uint64(len(es))
		s.accepted.Add(uint64(len(es)))
		// Every Recv decodes into new messages, so the slice can be shared
		// by all subscribers: they only read it (marshal it).
		for _, sub := range *s.subs.Load() {
			select {
			case sub.batchc <- es:
			case <-sub.done:
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
	}
}

// Subscribe sends each relayed batch as one message until the client
// leaves. The request is ignored: a bare subscriber always starts with the
// next message published. This handler's goroutine is the only one that
// calls Send.
func (s *bareServer) Subscribe(_ *pxperfv1.SubscribeRequest, stream grpc.ServerStreamingServer[pxperfv1.SubscribeResponse]) error {
	sub := &bareSubscriber{batchc: make(chan []*pxperfv1.Entry, bareQueueBatches), done: make(chan struct{})}
	s.update(func(subs []*bareSubscriber) []*bareSubscriber { return append(subs, sub) })
	defer func() {
		s.update(func(subs []*bareSubscriber) []*bareSubscriber {
			for i, x := range subs {
				if x == sub {
					return append(subs[:i], subs[i+1:]...)
				}
			}
			return subs
		})
		close(sub.done)
	}()
	ctx := stream.Context()
	for {
		select {
		case es := <-sub.batchc:
			msg := &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: &pxperfv1.EntryBatch{Entries: es}}}
			if err := stream.Send(msg); err != nil {
				return err
			}
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// ListEntries returns a window of s.window, newest first, at the request's
// offset: what a server that keeps its entries in a slice of messages
// does, with the generated code marshalling them on every call. It lists
// only what the window scenario's unfiltered calls ask for; anything else
// is Unimplemented.
func (s *bareServer) ListEntries(_ context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
	if req.GetFilter() != nil || req.GetPageToken() != "" || req.GetOrder() == pxperfv1.Order_ORDER_OLDEST_FIRST {
		return nil, status.Error(codes.Unimplemented, "the bare server lists only unfiltered windows, newest first, by offset")
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	total := uint64(len(s.window))
	resp := &pxperfv1.ListEntriesResponse{TotalSize: int64(total)}
	for p := req.GetOffset(); p < total && len(resp.Entries) < size; p++ {
		resp.Entries = append(resp.Entries, s.window[total-1-p])
	}
	return resp, nil
}

// update replaces the subscriber list by edit's result, applied to a copy.
func (s *bareServer) update(edit func([]*bareSubscriber) []*bareSubscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := edit(append([]*bareSubscriber(nil), *s.subs.Load()...))
	s.subs.Store(&subs)
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitSubscribers returns once at least n Subscribe streams are open, so
// that none misses the next message published; or when ctx ends.
func (s *bareServer) waitSubscribers(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		have, changed := len(*s.subs.Load()), s.changed
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d bare subscribers open: %w", have, n, ctx.Err())
		}
	}
}
