package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/resources"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/throttle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxBatchBytes bounds the entries of one Subscribe message: 1 MiB, a
// quarter of the 4 MiB that gRPC clients accept by default, so that any
// client left at its defaults (grpcurl, any language's) receives every
// message whatever max_batch_size, unless a single entry is larger (it then
// goes alone). A batch that reaches it goes out as full. Fan-out to 100
// subscribers measured a few percent faster with it than with batches of
// up to 10 000 entries (3 MB): BENCHMARKS.md gives the runs.
const maxBatchBytes = 1 << 20

// batchEnvelope is room, in a Subscribe message, for what it holds besides
// its entries: the event's tag and length, next_id and updates_lost.
const batchEnvelope = 64

// batchBytes is the byte bound of a batch's entries on a server that sends
// messages of at most maxSend bytes (server.max_send_message_bytes).
func batchBytes(maxSend uint32) int {
	return max(1, min(maxBatchBytes, int(maxSend)-batchEnvelope))
}

// Subscribe implements pxperfv1.PerformanceServiceServer.
//
// A subscriber is a cursor into the store (the next id it needs), not a
// queue: publishing never waits on it, and its memory does not grow with
// its lag. Its handler goroutine decides what to send and when; one sender
// goroutine per stream calls Send, so that a Send blocked by a client that
// does not read can be timed out (throttle.send_timeout).
//
// When a message goes out: as soon as the batch holds throttle.batch_size
// entries or 1 MiB of them (see maxBatchBytes), or its first entry has
// waited throttle.batch_timeout, but never sooner than the throttle's
// interval after the previous message. The interval is at least
// max(throttle.min_update_interval, 1s / max_updates_per_second) — the hard
// cap — and grows in adaptive and burst modes. A batch holding an entry at
// or above throttle.priority_threshold goes out at once, keeping only the
// hard cap.
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

	sub := &subscription{
		svc:    s,
		ctx:    ctx,
		handle: h,
		stream: stream,
		req:    req,
		match:  match,
		bodies: req.GetIncludeBodies(),
		id:     s.subSeq.Add(1),
		start:  time.Now(),
		pacer:  &throttle.Pacer{},
	}
	if p, ok := peer.FromContext(stream.Context()); ok {
		sub.peer = p.Addr.String()
	}
	if err := sub.refresh(); err != nil {
		return err
	}
	if err := sub.position(req); err != nil {
		return err
	}
	s.addSubscription(sub)
	defer s.removeSubscription(sub)

	sub.sender = s.startSender(stream)
	defer sub.sender.stop()
	err = sub.run()
	// A stream ended by its client or by CloseResource is not counted as
	// stuck, even if a Send was blocked when it ended.
	if errors.Is(err, errStuck) && sub.ctx.Err() == nil {
		s.hub.stuck.Add(1)
		s.log.Warn("subscriber ended: Send blocked too long", "subscriber", sub.id, "peer", sub.peer, "send_timeout", sub.sendTimeout)
		return status.Errorf(codes.ResourceExhausted, "this subscriber did not take a message for %v (throttle.send_timeout); resume with start_id %d, reading faster or asking for fewer updates (max_updates_per_second)", sub.sendTimeout, sub.next)
	}
	return err
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
	ctx    context.Context // the stream's, also ended by the resource registry
	handle *resources.Handle
	stream grpc.ServerStreamingServer[pxperfv1.SubscribeResponse]
	req    *pxperfv1.SubscribeRequest
	match  store.Matcher
	bodies bool
	id     uint64
	peer   string
	start  time.Time
	sender *sender

	// From the server's throttle config, which may change live: see refresh.
	tc           *pxperfv1.ThrottleConfig
	ctl          *throttle.Controller
	pacer        *throttle.Pacer // spaces messages by the controller's interval
	batch        int             // most entries in a message
	batchSize    int             // entries that make a message worth sending at once
	batchTimeout time.Duration
	heartbeat    time.Duration
	sendTimeout  time.Duration
	priority     pxperfv1.Priority

	next        uint64     // cursor: the next id to examine; where to resume
	updates     uint64     // cursor into the store's completions
	snapshotEnd uint64     // while not zero, the id at which the snapshot ends
	slow        bool       // the last Send was blocked longer than the floor interval
	read        store.Read // the last read, whose slices the next reuses
	ubuf        []*pxperfv1.Entry
	uwbuf       [][]byte

	stats subscriptionStats
}

// subscriptionStats are read by GetStats while the stream runs.
type subscriptionStats struct {
	next, messages, entries   atomic.Uint64
	throttled, priority, gaps atomic.Uint64
	blocked, interval         atomic.Int64  // nanoseconds
	rate                      atomic.Uint64 // float64 bits: messages/s over the last sample
	lastMessages              uint64        // for rate; only the sampler uses it
}

// refresh applies the server's throttle config when it has changed: an
// open stream follows UpdateConfig from its next message on.
func (sub *subscription) refresh() error {
	tc := sub.svc.config().GetThrottle()
	if tc == sub.tc { // configs are replaced, never modified
		return nil
	}
	own := throttle.Every(int(limit(sub.req.GetMaxUpdatesPerSecond(), tc.GetMaxUpdatesPerSecond())))
	cfg := throttleConfig(tc)
	var err error
	if sub.ctl == nil {
		sub.ctl, err = throttle.NewController(cfg, own)
	} else {
		err = sub.ctl.SetConfig(cfg, own)
	}
	if err != nil {
		return toStatus(err)
	}
	sub.tc = tc
	sub.pacer.SetInterval(sub.ctl.Floor())
	sub.batch = int(limit(sub.req.GetMaxBatchSize(), tc.GetMaxBatchSize()))
	sub.batchSize = min(int(tc.GetBatchSize()), sub.batch)
	sub.batchTimeout = tc.GetBatchTimeout().AsDuration()
	sub.heartbeat = tc.GetHeartbeatInterval().AsDuration()
	sub.sendTimeout = tc.GetSendTimeout().AsDuration()
	sub.priority = tc.GetPriorityThreshold()
	return nil
}

// throttleConfig is the controller's view of the throttle config.
func throttleConfig(tc *pxperfv1.ThrottleConfig) throttle.Config {
	mode := map[pxperfv1.ThrottleMode]throttle.Mode{
		pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED:    throttle.Fixed,
		pxperfv1.ThrottleMode_THROTTLE_MODE_ADAPTIVE: throttle.Adaptive,
		pxperfv1.ThrottleMode_THROTTLE_MODE_BURST:    throttle.Burst,
	}[tc.GetMode()]
	floor := max(tc.GetMinUpdateInterval().AsDuration(), throttle.Every(int(tc.GetMaxUpdatesPerSecond())))
	return throttle.Config{
		Mode:           mode,
		MinInterval:    floor,
		MaxInterval:    max(throttle.Every(int(tc.GetAdaptiveMinUpdatesPerSecond())), floor),
		Growth:         tc.GetAdaptiveGrowth(),
		Shrink:         tc.GetAdaptiveShrink(),
		BurstThreshold: float64(tc.GetBurstThreshold()),
		BurstCooldown:  tc.GetBurstCooldown().AsDuration(),
	}
}

// position sets the cursor from the request's start.
func (sub *subscription) position(req *pxperfv1.SubscribeRequest) error {
	st := sub.svc.store
	oldest, next := st.Bounds()
	switch start := req.GetStart().(type) {
	case *pxperfv1.SubscribeRequest_StartId:
		id := start.StartId
		if id < oldest {
			// The archive feeds what left memory.
			a, err := sub.svc.archiveOldest(sub.ctx)
			if err != nil {
				if sub.ctx.Err() != nil {
					return endedStatus(sub.ctx, "")
				}
				return toStatus(err)
			}
			if a != 0 && a < oldest {
				oldest = a
			}
		}
		switch {
		case id < oldest:
			return outOfRange(fmt.Sprintf("start_id %d is older than anything kept in memory or the archive; the oldest id available is %d", id, oldest), oldest)
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
	sub.stats.next.Store(sub.next)
	return nil
}

// run sends until the client leaves, the server shuts down, or a Send
// fails or stays blocked too long.
func (sub *subscription) run() error {
	ctx := sub.ctx
	st := sub.svc.store
	heartbeat := time.NewTimer(sub.heartbeat)
	defer heartbeat.Stop()
	var ready time.Time         // when the pending batch had its first entry; zero when none
	var throttled bool          // the pending batch has waited for the interval
	var prioritySeen bool       // the pending batch holds a priority entry
	var priorityChecked uint64  // entries below this id were looked at for priority
	interval := sub.ctl.Floor() // the interval before the next message
	for {
		if err := sub.refresh(); err != nil {
			return err
		}
		// A cursor moved to the snapshot's end or past it (by a gap) ends
		// the snapshot before anything after it is read.
		if _, err := sub.endSnapshot(); err != nil {
			return err
		}
		changed := st.Changed() // before reading, so no append is missed
		r, err := st.ReadFrom(sub.next, sub.limit(), sub.match, sub.read)
		if err != nil {
			return toStatus(err)
		}
		sub.read = r
		if r.GapFirst != 0 {
			last := r.GapLast
			if end := sub.snapshotEnd; end != 0 && end <= last {
				last = end - 1 // the marker goes between snapshot and live ids
			}
			if err := sub.fillGap(r.GapFirst, last); err != nil {
				return err
			}
			continue // read again from the oldest entry held
		}
		entries, next := sub.cutSnapshot(r.Entries, r.Next)
		count := len(entries) // entries read, to send
		// The entries' encodings, as few slices as the store can give.
		wire := r.Runs
		switch {
		case sub.runsOnly():
			count = r.Count // nothing to cut: limit() ended the read at the snapshot's end
		case len(entries) < len(r.Entries):
			wire = r.Fields[:len(entries)] // cut at the snapshot's end
		}
		// Completions of entries this stream has passed, made before the
		// entries were read: a later one, of an entry in this batch, is
		// read next time, once the cursor has passed it.
		u := st.ReadUpdates(sub.updates, r.UpdateCursor, sub.next, store.Limit{
			Entries: sub.batch - count, Bytes: sub.svc.batchBytes, Used: r.Bytes, Bodies: sub.bodies,
		}, sub.match, sub.ubuf, sub.uwbuf)
		sub.ubuf, sub.uwbuf = u.Entries[:0], u.Fields[:0]
		n := count + len(u.Entries)

		if n == 0 && u.Lost == 0 {
			// Nothing to send in what was examined: move past it.
			ready, throttled, prioritySeen, priorityChecked = time.Time{}, false, false, 0
			sub.advance(next, u.Next)
			if done, err := sub.endSnapshot(); err != nil {
				return err
			} else if done {
				continue
			}
			if sub.next <= r.Newest || sub.updates < st.UpdateCursor() {
				continue // more to examine
			}
			select {
			case <-changed:
			case <-heartbeat.C:
				heartbeat.Reset(sub.heartbeat)
				if err := sub.sendMsg(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Progress{Progress: &pxperfv1.Progress{
					NewestId: r.Newest, NextId: sub.next,
				}}}); err != nil {
					return err
				}
			case <-ctx.Done():
				return sub.endedErr()
			case <-sub.svc.shutdown:
				return sub.shutdownErr()
			}
			continue
		}

		now := time.Now()
		if ready.IsZero() {
			ready = now
		}
		// Entries are read again on each wake while the batch fills: look for
		// priority only among those not looked at yet.
		if !prioritySeen {
			if sub.runsOnly() {
				prioritySeen = st.PriorityIn(max(priorityChecked, sub.next), next, sub.priority)
			} else {
				prioritySeen = hasPriority(entries, sub.priority, priorityChecked)
			}
			prioritySeen = prioritySeen || hasAnyPriority(u.Entries, sub.priority)
			priorityChecked = next
		}
		priority := prioritySeen
		full := n >= sub.batchSize || count == sub.batch || r.Full || u.Full
		wait := interval
		if priority {
			wait = sub.ctl.Floor()
		}
		sub.pacer.SetInterval(wait)
		sendAt := now.Add(sub.pacer.DelayAt(now))
		byInterval := sendAt.After(now)
		if !full && !priority {
			if fill := ready.Add(sub.batchTimeout); fill.After(sendAt) {
				sendAt, byInterval = fill, false
			}
		}
		if sendAt.After(now) {
			throttled = throttled || byInterval
			// Until then, only a fuller batch or a priority entry could
			// change the decision: wake on appends only while neither holds.
			var wake <-chan struct{}
			if !full && !priority {
				wake = changed
			}
			for {
				woke, err := sub.waitUntil(sendAt, wake)
				if err != nil {
					return err
				}
				if !woke || !sub.match.All() {
					break
				}
				// Unfiltered, the batch's size is known from the ids: read it
				// again only once it is full (in entries, or in bytes at the
				// last read's size per entry), a new entry has priority, an
				// entry has been completed, or entries were evicted.
				wake = st.Changed()
				oldest, nextID := st.Bounds()
				found, checked := st.PriorityFrom(max(priorityChecked, next), sub.priority)
				pending := nextID - sub.next
				if found || oldest > sub.next || pending >= uint64(sub.batchSize) || sub.mayFill(pending, r) ||
					st.UpdateCursor() != sub.updates {
					break
				}
				priorityChecked = checked
			}
			continue // read again: entries may have been completed or added
		}

		if priority && (!full || interval > sub.ctl.Floor()) {
			sub.stats.priority.Add(1)
			sub.svc.hub.priority.Add(1)
		}
		if throttled {
			sub.stats.throttled.Add(1)
			sub.svc.hub.throttled.Add(1)
		}
		// The interval after this message, chosen before it goes out so that
		// stats agree with what the client has seen.
		interval = sub.ctl.Interval(sub.svc.hub.loadNow(), sub.slow, sub.svc.hub.burst.ActiveAt(now))
		sub.stats.interval.Store(int64(interval))
		if err := sub.sendBatch(count, entries, wire, u, next); err != nil {
			return err
		}
		sub.advance(next, u.Next)
		heartbeat.Reset(sub.heartbeat)
		ready, throttled, prioritySeen, priorityChecked = time.Time{}, false, false, 0
		if _, err := sub.endSnapshot(); err != nil {
			return err
		}
	}
}

// runsOnly reports whether the stream reads the store's runs of encodings
// alone (store.Limit.RunsOnly): without a filter, every entry is sent, and
// without bodies, as encoded.
func (sub *subscription) runsOnly() bool { return sub.match.All() && !sub.bodies }

// limit bounds the next read of entries. Without a filter the ids read are
// consecutive, so that the read stops at the snapshot's end rather than
// being cut there after: a read of runs alone could not be cut.
func (sub *subscription) limit() store.Limit {
	lim := store.Limit{Entries: sub.batch, Bytes: sub.svc.batchBytes, Bodies: sub.bodies, RunsOnly: sub.runsOnly()}
	if sub.match.All() && sub.snapshotEnd > sub.next {
		lim.Entries = int(min(uint64(lim.Entries), sub.snapshotEnd-sub.next))
	}
	return lim
}

// mayFill reports whether n entries from the cursor may reach the byte
// bound of a batch, at the size per entry of the read r.
func (sub *subscription) mayFill(n uint64, r store.Read) bool {
	return r.Count > 0 && n*uint64(r.Bytes/r.Count) >= uint64(sub.svc.batchBytes)
}

// advance moves the cursors past what was examined. Where a message
// carries it, the caller advances once Send has taken the message, so that
// the resume id of a stream that ends (sub.next) never skips what its
// client was not sent: a message still blocked in Send when the stream
// ends is lost with it.
func (sub *subscription) advance(next, updates uint64) {
	sub.next, sub.updates = next, updates
	sub.stats.next.Store(next)
}

// endSnapshot sends the snapshot_end marker once the cursor reaches the end
// of the snapshot. It reports whether it sent it.
func (sub *subscription) endSnapshot() (bool, error) {
	if sub.snapshotEnd == 0 || sub.next < sub.snapshotEnd {
		return false, nil
	}
	sub.snapshotEnd = 0
	return true, sub.sendMsg(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_SnapshotEnd{SnapshotEnd: &pxperfv1.SnapshotEnd{NextId: sub.next}}})
}

// hasPriority reports whether an entry of es, which are in id order, with
// an id from from on has a priority at or above threshold. Those before
// from are skipped by a binary search, without touching them.
func hasPriority(es []*pxperfv1.Entry, threshold pxperfv1.Priority, from uint64) bool {
	i, _ := slices.BinarySearchFunc(es, from, func(e *pxperfv1.Entry, id uint64) int { return cmp.Compare(e.GetId(), id) })
	for _, e := range es[i:] {
		if e.GetPriority() >= threshold {
			return true
		}
	}
	return false
}

// hasAnyPriority reports whether an entry of es, in any order, has a
// priority at or above threshold.
func hasAnyPriority(es []*pxperfv1.Entry, threshold pxperfv1.Priority) bool {
	return slices.ContainsFunc(es, func(e *pxperfv1.Entry) bool { return e.GetPriority() >= threshold })
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

// fillGap deals with ids first..last, which left memory before the stream
// got to them: what the archive holds of them is sent, read back from the
// files, and the rest is reported in gap messages. A line for an id
// already sent (an entry completed after it was archived) goes out as an
// update.
func (sub *subscription) fillGap(first, last uint64) error {
	arch := sub.svc.archive
	if arch == nil {
		return sub.sendGap(first, last)
	}
	expect := first // the next id not yet sent or reported
	var batch, updates []*pxperfv1.Entry
	size := 0 // bytes of batch and updates, encoded
	flush := func() error {
		if len(batch)+len(updates) == 0 {
			return nil
		}
		size = 0
		n := uint64(len(batch) + len(updates))
		sub.stats.entries.Add(n)
		sub.svc.hub.entries.Add(n)
		m := &pxperfv1.EntryBatch{Entries: batch, Updates: updates, NextId: expect}
		batch, updates = nil, nil
		if err := sub.sendMsg(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: m}}); err != nil {
			return err
		}
		sub.advance(expect, sub.updates)
		return nil
	}
	err := arch.Read(sub.ctx, archive.Query{FirstID: first, LastID: last}, func(e *pxperfv1.Entry) error {
		if !sub.bodies && e.GetResponseBody() != nil {
			e.ResponseBody.Data = nil // a fresh copy: ours to change
		}
		matches := sub.match.Selects(e)
		n := 0 // e's size in the batch
		if matches {
			n = protowire.SizeTag(store.EntryField) + protowire.SizeBytes(proto.Size(e))
			if size > 0 && size+n > sub.svc.batchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		switch id := e.GetId(); {
		case id < expect:
			if matches {
				updates = append(updates, e)
				size += n
			}
		default:
			if id > expect {
				if err := flush(); err != nil {
					return err
				}
				if err := sub.sendGap(expect, id-1); err != nil {
					return err
				}
			}
			if matches {
				batch = append(batch, e)
				size += n
			}
			expect = id + 1
		}
		if len(batch)+len(updates) >= sub.batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	switch {
	case err == nil:
	case sub.ctx.Err() != nil:
		return sub.endedErr()
	case errors.Is(err, errStuck):
		return err // Subscribe ends the stream as stuck, and counts it
	default:
		return toStatus(err)
	}
	if expect <= last {
		return sub.sendGap(expect, last)
	}
	sub.advance(last+1, sub.updates)
	return nil
}

func (sub *subscription) sendGap(first, last uint64) error {
	sub.stats.gaps.Add(1)
	sub.svc.hub.gaps.Add(1)
	if err := sub.sendMsg(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Gap{Gap: &pxperfv1.Gap{
		FirstMissedId: first, LastMissedId: last,
	}}}); err != nil {
		return err
	}
	sub.advance(last+1, sub.updates)
	return nil
}

// sendBatch sends count entries and the updates as one batch, with next as
// its next_id: built from their cached encodings (wire: those of the
// entries, whole, in order, in any number of slices), or, when the stream
// wants bodies, as copies of es carrying them. The caller advances the
// cursor once it has gone.
func (sub *subscription) sendBatch(count int, es []*pxperfv1.Entry, wire [][]byte, u store.Updates, next uint64) error {
	n := uint64(count + len(u.Entries))
	sub.handle.Touch(0, n)
	sub.stats.entries.Add(n)
	sub.svc.hub.entries.Add(n)
	if !sub.bodies {
		return sub.sendMsg(encodeBatch(wire, u.Fields, next, u.Lost))
	}
	batch := &pxperfv1.EntryBatch{NextId: next, UpdatesLost: u.Lost}
	batch.Entries = append([]*pxperfv1.Entry(nil), es...)
	sub.svc.addBodies(batch.Entries)
	batch.Updates = append([]*pxperfv1.Entry(nil), u.Entries...)
	sub.svc.addBodies(batch.Updates)
	return sub.sendMsg(&pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: batch}})
}

// sendMsg sends m (a *pxperfv1.SubscribeResponse or a *rawMessage) once
// the hard rate cap allows, through the sender, and records how long Send
// was blocked.
func (sub *subscription) sendMsg(m any) error {
	sub.pacer.SetInterval(sub.ctl.Floor())
	if _, err := sub.waitUntil(time.Now().Add(sub.pacer.DelayAt(time.Now())), nil); err != nil {
		return err
	}
	size := messageSize(m)
	blocked, err := sub.sender.send(m, sub.sendTimeout)
	if err == nil {
		sub.handle.Touch(size, 0)
	}
	now := time.Now()
	sub.pacer.SentAt(now)
	sub.slow = blocked > sub.ctl.Floor()/2
	sub.stats.blocked.Add(int64(blocked))
	sub.svc.hub.blocked.Add(int64(blocked))
	sub.stats.messages.Add(1)
	sub.svc.hub.messages.Add(1)
	return err
}

// waitUntil blocks until t, or until wake fires (nil: never), or the stream
// or the server ends. It reports whether wake fired.
func (sub *subscription) waitUntil(t time.Time, wake <-chan struct{}) (woke bool, err error) {
	d := time.Until(t)
	if d <= 0 {
		return false, nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return false, nil
	case <-wake:
		return true, nil
	case <-sub.ctx.Done():
		return false, sub.endedErr()
	case <-sub.svc.shutdown:
		return false, sub.shutdownErr()
	}
}

// endedErr is the status of a stream whose context ended: the client left,
// or the server ended it (CloseResource, idle timeout).
func (sub *subscription) endedErr() error {
	return endedStatus(sub.ctx, "; resume with start_id "+strconv.FormatUint(sub.next, 10))
}

// shutdownErr ends a stream when the server stops, telling the client
// where to resume on another server or after a restart.
func (sub *subscription) shutdownErr() error {
	return status.Errorf(codes.Unavailable, "server is shutting down; resume with start_id %d", sub.next)
}

// snapshot returns the subscription's stats for GetStats.
func (sub *subscription) snapshot(newest uint64) *pxperfv1.SubscriberStats {
	next := sub.stats.next.Load()
	messages := sub.stats.messages.Load()
	var lag uint64
	if newest+1 > next {
		lag = newest + 1 - next
	}
	age := time.Since(sub.start).Seconds()
	return &pxperfv1.SubscriberStats{
		Id:                 strconv.FormatUint(sub.id, 10),
		Peer:               sub.peer,
		StartTime:          timestamppb.New(sub.start),
		NextId:             next,
		Lag:                lag,
		MessagesSent:       messages,
		EntriesSent:        sub.stats.entries.Load(),
		MessageRate:        math.Float64frombits(sub.stats.rate.Load()),
		AverageMessageRate: float64(messages) / max(age, 1e-9),
		ThrottledIntervals: sub.stats.throttled.Load(),
		PriorityFlushes:    sub.stats.priority.Load(),
		Gaps:               sub.stats.gaps.Load(),
		SendBlocked:        durationpb.New(time.Duration(sub.stats.blocked.Load())),
		Interval:           durationpb.New(time.Duration(sub.stats.interval.Load())),
	}
}

// errStuck is returned by sender.send when Send stays blocked past the
// timeout.
var errStuck = errors.New("send blocked past throttle.send_timeout")

// sender owns a stream's Send: one goroutine, one message at a time.
type sender struct {
	msgs chan any
	errc chan error
}

// startSender starts the stream's sender goroutine; stop ends it once its
// current Send returns (which happens at the latest when the stream ends).
func (s *Service) startSender(stream grpc.ServerStreamingServer[pxperfv1.SubscribeResponse]) *sender {
	snd := &sender{msgs: make(chan any), errc: make(chan error, 1)}
	s.workers.Go(func() {
		for m := range snd.msgs {
			snd.errc <- stream.SendMsg(m)
		}
	})
	return snd
}

// send hands m to the sender goroutine and waits for Send to return, at
// most timeout. It returns how long Send took.
func (snd *sender) send(m any, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	snd.msgs <- m // the goroutine is idle: the previous send was waited for
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-snd.errc:
		return time.Since(start), err
	case <-t.C:
		return timeout, errStuck
	}
}

func (snd *sender) stop() { close(snd.msgs) }
