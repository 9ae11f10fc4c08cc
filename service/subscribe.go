package service

import (
	"fmt"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/throttle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Subscribe implements pxperfv1.PerformanceServiceServer.
//
// A subscriber is a cursor into the store (the next id it needs), not a
// queue: publishing never waits on it, and its memory does not grow with
// its lag. This handler's goroutine is the only one that calls Send.
func (s *Service) Subscribe(req *pxperfv1.SubscribeRequest, stream grpc.ServerStreamingServer[pxperfv1.SubscribeResponse]) error {
	match, err := compileFilter(req.GetFilter())
	if err != nil {
		return err
	}
	s.subscribers.Add(1)
	defer s.subscribers.Done()
	s.subCount.Add(1)
	defer s.subCount.Add(-1)

	sub := &subscription{
		svc:    s,
		stream: stream,
		req:    req,
		match:  match,
		bodies: req.GetIncludeBodies(),
		pacer:  &throttle.Pacer{},
	}
	if err := sub.refresh(); err != nil {
		return err
	}
	if err := sub.position(req); err != nil {
		return err
	}
	return sub.run()
}

// limit returns asked, or server when asked is 0 or above it.
func limit(asked, server uint32) uint32 {
	if asked == 0 || asked > server {
		return server
	}
	return asked
}

type subscription struct {
	svc    *Service
	stream grpc.ServerStreamingServer[pxperfv1.SubscribeResponse]
	req    *pxperfv1.SubscribeRequest
	match  store.Matcher
	bodies bool

	// From the server's throttle config, which may change live: see refresh.
	tc        *pxperfv1.ThrottleConfig
	pacer     *throttle.Pacer
	batch     int
	heartbeat time.Duration

	next        uint64 // cursor: the next id to examine
	updates     uint64 // cursor into the store's completions
	snapshotEnd uint64 // while not zero, the id at which the snapshot ends
	buf, ubuf   []*pxperfv1.Entry
}

// refresh applies the server's throttle config when it has changed: an
// open stream follows UpdateConfig from its next message on.
func (sub *subscription) refresh() error {
	tc := sub.svc.config().GetThrottle()
	if tc == sub.tc { // configs are replaced, never modified
		return nil
	}
	sub.tc = tc
	if err := sub.pacer.SetRate(int(limit(sub.req.GetMaxUpdatesPerSecond(), tc.GetMaxUpdatesPerSecond()))); err != nil {
		return toStatus(err)
	}
	sub.batch = int(limit(sub.req.GetMaxBatchSize(), tc.GetMaxBatchSize()))
	sub.heartbeat = tc.GetHeartbeatInterval().AsDuration()
	return nil
}

// position sets the cursor from the request's start.
func (sub *subscription) position(req *pxperfv1.SubscribeRequest) error {
	st := sub.svc.store
	oldest, next := st.Bounds()
	switch start := req.GetStart().(type) {
	case *pxperfv1.SubscribeRequest_StartId:
		id := start.StartId
		switch {
		case id < oldest:
			return outOfRange(fmt.Sprintf("start_id %d is older than anything kept; the oldest id available is %d", id, oldest), oldest)
		case id > next:
			return status.Errorf(codes.OutOfRange, "start_id %d is beyond the next id to be assigned (%d)", id, next)
		}
		sub.next = id
	case *pxperfv1.SubscribeRequest_Tail:
		// The snapshot ends at the next id to be assigned, never 0.
		sub.next, sub.snapshotEnd = st.TailStart(int(start.Tail), sub.match)
	default:
		sub.next = next
	}
	sub.updates = st.UpdateCursor()
	return nil
}

// run sends until the client leaves, the server shuts down, or Send fails.
func (sub *subscription) run() error {
	ctx := sub.stream.Context()
	st := sub.svc.store
	heartbeat := time.NewTimer(sub.heartbeat)
	defer heartbeat.Stop()
	for {
		if err := sub.refresh(); err != nil {
			return err
		}
		changed := st.Changed() // before reading, so no append is missed
		r, err := st.ReadFrom(sub.next, sub.batch, sub.match, sub.buf)
		if err != nil {
			return toStatus(err)
		}
		sub.buf = r.Entries[:0]
		if r.GapFirst != 0 {
			if err := sub.stream.Send(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Gap{Gap: &pxperfv1.Gap{
				FirstMissedId: r.GapFirst, LastMissedId: r.GapLast,
			}}}); err != nil {
				return err
			}
		}
		// Completions of entries this stream has passed. Read after the
		// entries, so none falls between the two reads unseen.
		u := st.ReadUpdates(sub.updates, sub.next, sub.batch, sub.match, sub.ubuf)
		sub.ubuf = u.Entries[:0]
		sub.updates = u.Next
		entries, next := sub.cutSnapshot(r.Entries, r.Next)
		sub.next = next
		if len(entries) > 0 || len(u.Entries) > 0 || u.Lost > 0 {
			if err := sub.sendBatch(entries, u); err != nil {
				return err
			}
			heartbeat.Reset(sub.heartbeat)
		}
		if sub.snapshotEnd != 0 && sub.next >= sub.snapshotEnd {
			sub.snapshotEnd = 0
			if err := sub.stream.Send(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_SnapshotEnd{SnapshotEnd: &pxperfv1.SnapshotEnd{NextId: sub.next}}}); err != nil {
				return err
			}
		}
		if len(entries) > 0 || len(u.Entries) > 0 || sub.next <= r.Newest || sub.updates < st.UpdateCursor() {
			// More may be waiting: read again once the pacer allows.
			if err := sub.wait(sub.pacer.DelayAt(time.Now())); err != nil {
				return err
			}
			continue
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			heartbeat.Reset(sub.heartbeat)
			if err := sub.stream.Send(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Progress{Progress: &pxperfv1.Progress{
				NewestId: r.Newest, NextId: sub.next,
			}}}); err != nil {
				return err
			}
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case <-sub.svc.shutdown:
			return sub.shutdownErr()
		}
	}
}

// cutSnapshot keeps a batch from crossing the end of the snapshot, so that
// the snapshot_end marker falls exactly between snapshot and live entries.
func (sub *subscription) cutSnapshot(es []*pxperfv1.Entry, next uint64) ([]*pxperfv1.Entry, uint64) {
	if sub.snapshotEnd == 0 || next <= sub.snapshotEnd {
		return es, next
	}
	for i, e := range es {
		if e.GetId() >= sub.snapshotEnd {
			return es[:i], sub.snapshotEnd
		}
	}
	return es, sub.snapshotEnd
}

func (sub *subscription) sendBatch(es []*pxperfv1.Entry, u store.Updates) error {
	batch := &pxperfv1.EntryBatch{Entries: es, NextId: sub.next, Updates: u.Entries, UpdatesLost: u.Lost}
	if sub.bodies {
		batch.Entries = append([]*pxperfv1.Entry(nil), es...)
		sub.svc.addBodies(batch.Entries)
		batch.Updates = append([]*pxperfv1.Entry(nil), u.Entries...)
		sub.svc.addBodies(batch.Updates)
	}
	err := sub.stream.Send(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: batch}})
	sub.pacer.SentAt(time.Now())
	return err
}

// wait blocks for d, or until the stream or the server ends.
func (sub *subscription) wait(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-sub.stream.Context().Done():
		return toStatus(sub.stream.Context().Err())
	case <-sub.svc.shutdown:
		return sub.shutdownErr()
	}
}

// shutdownErr ends a stream when the server stops, telling the client
// where to resume on another server or after a restart.
func (sub *subscription) shutdownErr() error {
	return status.Errorf(codes.Unavailable, "server is shutting down; resume with start_id %d", sub.next)
}
