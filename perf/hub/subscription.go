package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/throttle"
)

// Start says where a subscription begins.
type Start int

const (
	// FromNow starts at the next id to be assigned: new entries only.
	FromNow Start = iota
	// FromID starts at [Request].StartID, to resume: from memory, or from
	// the archive for ids that left it.
	FromID
	// FromTail starts at the last [Request].Tail matching entries, which a
	// snapshot_end marker then follows.
	FromTail
)

// Request is what a subscriber asks for.
type Request struct {
	// Match selects the entries sent; the zero Matcher selects all.
	Match store.Matcher
	// Key names Match: subscriptions with the same non-empty Key must
	// have equivalent matchers, and share the work of following new
	// entries for them. Empty, the subscription does that work alone.
	Key string
	// Start, with StartID or Tail, is where the subscription begins.
	Start   Start
	StartID uint64
	Tail    int
	// MaxUpdatesPerSecond and MaxBatchSize lower the server's limits for
	// this subscription; 0 (or more than the server's) keeps the server's.
	MaxUpdatesPerSecond, MaxBatchSize int
	// Bodies asks for the data of the entries' bodies, response and
	// request, in the entries sent; without it they go without.
	Bodies bool
	// LiveView, when positive, asks for a live view of that window
	// instead of every entry (see [pxperfv1.LiveView]): Start, StartID,
	// Tail, MaxBatchSize and Bodies are then ignored.
	LiveView int
	// Peer names the subscriber in stats.
	Peer string
}

// Subscription is one subscriber's cursor and pacing. Create it with
// [Hub.Subscribe], run it with [Subscription.Run], and [Subscription.Close]
// it when done. Run is called once, from one goroutine.
type Subscription struct {
	hub    *Hub
	ctx    context.Context
	req    Request
	id     uint64
	start  time.Time
	sender *sender
	watch  *watch // its filter's; nil when unfiltered

	// From the hub's settings, which may change live: see refresh.
	settings     *Settings
	ctl          *throttle.Controller
	pacer        throttle.Pacer // spaces messages by the controller's interval
	batch        int            // most entries in a message
	batchSize    int            // entries that make a message worth sending at once
	batchTimeout time.Duration
	heartbeat    time.Duration
	sendTimeout  time.Duration
	priority     pxperfv1.Priority

	next        uint64     // cursor: the next id to examine; where to resume
	updates     uint64     // cursor into the store's completions
	snapshotEnd uint64     // while not zero, the id at which the snapshot ends
	slow        bool       // the last Send was blocked longer than half the floor interval
	read        store.Read // the last read, whose slices the next reuses
	ubuf        []*pxperfv1.Entry
	uwbuf       [][]byte

	stats subscriptionStats
}

// subscriptionStats are read by Hub.Stats while the subscription runs.
type subscriptionStats struct {
	next, messages, entries   atomic.Uint64
	throttled, priority, gaps atomic.Uint64
	blocked, interval         atomic.Int64  // nanoseconds
	rate                      atomic.Uint64 // float64 bits: messages/s between observations
	lastMessages              uint64        // for rate; under Hub.mu
}

// Subscribe places a new subscription's cursor as req asks and registers
// it; ctx is its stream's, whose end ends Run. It fails with a
// [*RangeError] for a start id that cannot be served, with [ErrClosed]
// once the hub is closed, or with the error of reading the archive.
func (h *Hub) Subscribe(ctx context.Context, req Request) (*Subscription, error) {
	select {
	case <-h.closed:
		return nil, ErrClosed
	default:
	}
	sub := &Subscription{hub: h, ctx: ctx, req: req, start: time.Now()}
	if err := sub.refresh(); err != nil {
		return nil, err
	}
	if err := sub.position(); err != nil {
		return nil, err
	}
	if err := h.add(sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// Close unregisters the subscription.
func (sub *Subscription) Close() { sub.hub.remove(sub) }

// ID is the subscription's id in [Stats], unique within its hub.
func (sub *Subscription) ID() uint64 { return sub.id }

// Run sends messages through send until the subscription's context ends,
// the hub is closed, Send fails or stays blocked past the send timeout, or
// reading fails. It always returns an [*EndError].
func (sub *Subscription) Run(send SendFunc) error {
	sub.sender = sub.hub.newSender(send)
	defer sub.sender.stop()
	run := sub.run
	if sub.req.LiveView > 0 {
		run = sub.runView
	}
	err := run()
	if errors.Is(err, ErrStuck) {
		if sub.ctx.Err() != nil {
			// Ended by its client or the server, not stuck, even though a
			// Send was blocked when it ended.
			err = sub.ctx.Err()
		} else {
			sub.hub.stuck.Add(1)
			err = fmt.Errorf("%w: no message taken for %v", ErrStuck, sub.sendTimeout)
		}
	}
	return &EndError{Err: err, NextID: sub.next}
}

// limit returns asked, or server when asked is 0 or above it.
func limit(asked, server int) int {
	if asked <= 0 || asked > server {
		return server
	}
	return asked
}

// refresh applies the hub's settings when they have changed: a running
// subscription follows them from its next message on.
func (sub *Subscription) refresh() error {
	s := sub.hub.settings.Load()
	if s == sub.settings { // settings are replaced, never modified
		return nil
	}
	own := throttle.Every(limit(sub.req.MaxUpdatesPerSecond, s.MaxUpdatesPerSecond))
	var err error
	if sub.ctl == nil {
		sub.ctl, err = throttle.NewController(s.Throttle, own)
	} else {
		err = sub.ctl.SetConfig(s.Throttle, own)
	}
	if err != nil {
		return err
	}
	sub.settings = s
	sub.pacer.SetInterval(sub.ctl.Floor())
	sub.batch = limit(sub.req.MaxBatchSize, s.MaxBatchSize)
	sub.batchSize = min(s.BatchSize, sub.batch)
	sub.batchTimeout = s.BatchTimeout
	sub.heartbeat = s.Heartbeat
	sub.sendTimeout = s.SendTimeout
	sub.priority = s.Priority
	return nil
}

// position sets the cursor from the request's start.
func (sub *Subscription) position() error {
	st := sub.hub.store
	oldest, next := st.Bounds()
	switch sub.req.Start {
	case FromID:
		id := sub.req.StartID
		if id < oldest && sub.hub.archive != nil {
			// The archive feeds what left memory.
			a, err := sub.hub.archive.OldestID(sub.ctx)
			if err != nil {
				if sub.ctx.Err() != nil {
					return sub.ctx.Err()
				}
				return fmt.Errorf("read the archive's oldest id: %w", err)
			}
			if a != 0 && a < oldest {
				oldest = a
			}
		}
		switch {
		case id < oldest:
			return &RangeError{StartID: id, Oldest: oldest}
		case id > next:
			return &RangeError{StartID: id, Oldest: next, Future: true}
		}
		sub.next = id
	case FromTail:
		// The snapshot ends at the next id to be assigned, never 0.
		sub.next, sub.snapshotEnd = st.TailStart(sub.req.Tail, sub.req.Match)
	default:
		sub.next = next
	}
	sub.updates = st.UpdateCursor()
	sub.stats.next.Store(sub.next)
	return nil
}

// run sends until the subscription's context ends, the hub closes, or a
// Send fails or stays blocked too long.
func (sub *Subscription) run() error {
	h, st := sub.hub, sub.hub.store
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
		changed := sub.changed() // before reading, so no append is missed
		sub.skip()
		r, err := st.ReadFrom(sub.next, sub.limit(), sub.req.Match, sub.read)
		if err != nil {
			return err
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
		// Completions of entries this subscription has passed, made before
		// the entries were read: a later one, of an entry in this batch,
		// is read next time, once the cursor has passed it.
		u := st.ReadUpdates(sub.updates, r.UpdateCursor, sub.next, store.Limit{
			Entries: sub.batch - count, Bytes: h.batchBytes, Used: r.Bytes, Bodies: sub.req.Bodies,
		}, sub.req.Match, sub.ubuf, sub.uwbuf)
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
				sub.skip()
				_, nextID := st.Bounds()
				if err := sub.sendMsg(Message{Response: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Progress{Progress: &pxperfv1.Progress{
					NewestId: nextID - 1, NextId: sub.next,
				}}}}); err != nil {
					return err
				}
			case <-sub.ctx.Done():
				return sub.ctx.Err()
			case <-h.closed:
				return ErrClosed
			}
			continue
		}

		now := time.Now()
		if ready.IsZero() {
			ready = now
		}
		// Entries are read again on each wake while the batch fills: look
		// for priority only among those not looked at yet.
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
			// change the decision: wake on appends only while neither
			// holds.
			var wake <-chan struct{}
			if !full && !priority {
				wake = changed
			}
			for {
				woke, err := sub.waitUntil(sendAt, wake)
				if err != nil {
					return err
				}
				if !woke || !sub.req.Match.All() {
					break
				}
				// Unfiltered, the batch's size is known from the ids: read
				// it again only once it is full (in entries, or in bytes at
				// the last read's size per entry), a new entry has
				// priority, an entry has been completed, or entries were
				// evicted.
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
			h.priority.Add(1)
		}
		if throttled {
			sub.stats.throttled.Add(1)
			h.throttled.Add(1)
		}
		// The interval after this message, chosen before it goes out so
		// that stats agree with what the client has seen.
		interval = sub.ctl.Interval(h.loadNow(), sub.slow, h.burst.ActiveAt(now))
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

// changed returns the channel closed when there may be something new for
// the subscription: its filter's watch's, or, unfiltered, the store's.
func (sub *Subscription) changed() <-chan struct{} {
	if sub.watch != nil {
		return sub.watch.waker()
	}
	return sub.hub.store.Changed()
}

// skip moves the cursors of a filtered subscription past what its watch
// knows it does not select, without reading it; never past the end of the
// snapshot, where the marker goes.
func (sub *Subscription) skip() {
	if sub.watch == nil {
		return
	}
	next, updates := sub.watch.skip(sub.next, sub.updates)
	if end := sub.snapshotEnd; end != 0 && sub.next < end {
		next = min(next, end)
	}
	if next != sub.next || updates != sub.updates {
		sub.advance(next, updates)
	}
}

// runsOnly reports whether the subscription reads the store's runs of
// encodings alone (store.Limit.RunsOnly): without a filter, every entry is
// sent, and without bodies, as encoded.
func (sub *Subscription) runsOnly() bool { return sub.req.Match.All() && !sub.req.Bodies }

// limit bounds the next read of entries. Without a filter the ids read are
// consecutive, so that the read stops at the snapshot's end rather than
// being cut there after: a read of runs alone could not be cut.
func (sub *Subscription) limit() store.Limit {
	lim := store.Limit{Entries: sub.batch, Bytes: sub.hub.batchBytes, Bodies: sub.req.Bodies, RunsOnly: sub.runsOnly()}
	if sub.req.Match.All() && sub.snapshotEnd > sub.next {
		lim.Entries = int(min(uint64(lim.Entries), sub.snapshotEnd-sub.next))
	}
	return lim
}

// mayFill reports whether n entries from the cursor may reach the byte
// bound of a batch, at the size per entry of the read r.
func (sub *Subscription) mayFill(n uint64, r store.Read) bool {
	return r.Count > 0 && n*uint64(r.Bytes/r.Count) >= uint64(sub.hub.batchBytes)
}

// advance moves the cursors past what was examined. Where a message
// carries it, the caller advances once Send has taken the message, so that
// the resume id of a subscription that ends (sub.next) never skips what
// its client was not sent: a message still blocked in Send when the
// subscription ends is lost with it.
func (sub *Subscription) advance(next, updates uint64) {
	sub.next, sub.updates = next, updates
	sub.stats.next.Store(next)
}

// endSnapshot sends the snapshot_end marker once the cursor reaches the
// end of the snapshot. It reports whether it sent it.
func (sub *Subscription) endSnapshot() (bool, error) {
	if sub.snapshotEnd == 0 || sub.next < sub.snapshotEnd {
		return false, nil
	}
	sub.snapshotEnd = 0
	return true, sub.sendMsg(Message{Response: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_SnapshotEnd{SnapshotEnd: &pxperfv1.SnapshotEnd{NextId: sub.next}}}})
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
func (sub *Subscription) cutSnapshot(es []*pxperfv1.Entry, next uint64) ([]*pxperfv1.Entry, uint64) {
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

// fillGap deals with ids first..last, which left memory before the
// subscription got to them: what the archive holds of them is sent, read
// back from the files, and the rest is reported in gap messages. A line
// for an id already sent (an entry completed after it was archived) goes
// out as an update.
func (sub *Subscription) fillGap(first, last uint64) error {
	arch := sub.hub.archive
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
		n := len(batch) + len(updates)
		sub.stats.entries.Add(uint64(n))
		sub.hub.entries.Add(uint64(n))
		m := &pxperfv1.EntryBatch{Entries: batch, Updates: updates, NextId: expect}
		batch, updates = nil, nil
		if err := sub.sendMsg(Message{Response: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: m}}, Entries: n}); err != nil {
			return err
		}
		sub.advance(expect, sub.updates)
		return nil
	}
	err := arch.Read(sub.ctx, archive.Query{FirstID: first, LastID: last}, func(e *pxperfv1.Entry) error {
		matches := sub.req.Match.Selects(e) // before the bodies go: a filter may search them
		if !sub.req.Bodies {
			store.StripBodies(e) // a fresh copy: ours to change
		}
		n := 0 // e's size in the batch
		if matches {
			n = sub.hub.store.FieldSize(e)
			if size > 0 && size+n > sub.hub.batchBytes {
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
		return sub.ctx.Err()
	default:
		return err
	}
	if expect <= last {
		return sub.sendGap(expect, last)
	}
	sub.advance(last+1, sub.updates)
	return nil
}

func (sub *Subscription) sendGap(first, last uint64) error {
	sub.stats.gaps.Add(1)
	sub.hub.gaps.Add(1)
	if err := sub.sendMsg(Message{Response: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Gap{Gap: &pxperfv1.Gap{
		FirstMissedId: first, LastMissedId: last,
	}}}}); err != nil {
		return err
	}
	sub.advance(last+1, sub.updates)
	return nil
}

// sendBatch sends count entries and the updates as one batch, with next
// as its next_id: the entries' cached encodings (wire: those of the
// entries, whole, in order, in any number of slices), or, when the
// subscription wants bodies, copies of es carrying them. The caller
// advances the cursor once it has gone.
func (sub *Subscription) sendBatch(count int, es []*pxperfv1.Entry, wire [][]byte, u store.Updates, next uint64) error {
	n := count + len(u.Entries)
	sub.stats.entries.Add(uint64(n))
	sub.hub.entries.Add(uint64(n))
	if !sub.req.Bodies {
		return sub.sendMsg(Message{Batch: &WireBatch{Entries: wire, Updates: u.Fields, NextID: next, UpdatesLost: u.Lost}, Entries: n})
	}
	batch := &pxperfv1.EntryBatch{NextId: next, UpdatesLost: u.Lost}
	batch.Entries = sub.hub.withBodies(es)
	batch.Updates = sub.hub.withBodies(u.Entries)
	return sub.sendMsg(Message{Response: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: batch}}, Entries: n})
}

// withBodies returns es, each entry replaced by a copy carrying the data
// of its bodies when it has any (see store.Store.WithBody): the store
// reads entries without it.
func (h *Hub) withBodies(es []*pxperfv1.Entry) []*pxperfv1.Entry {
	out := make([]*pxperfv1.Entry, len(es))
	for i, e := range es {
		out[i] = h.store.WithBody(e)
	}
	return out
}

// sendMsg sends m once the hard rate cap allows, through the sender, and
// records how long Send was blocked. The hub's settings in force are taken
// first, so that every message, those fed from the archive included,
// follows a change of them.
func (sub *Subscription) sendMsg(m Message) error {
	if err := sub.refresh(); err != nil {
		return err
	}
	sub.pacer.SetInterval(sub.ctl.Floor())
	if _, err := sub.waitUntil(time.Now().Add(sub.pacer.DelayAt(time.Now())), nil); err != nil {
		return err
	}
	blocked, err := sub.sender.send(m, sub.sendTimeout)
	now := time.Now()
	sub.pacer.SentAt(now)
	sub.slow = blocked > sub.ctl.Floor()/2
	sub.stats.blocked.Add(int64(blocked))
	sub.hub.blocked.Add(int64(blocked))
	sub.stats.messages.Add(1)
	sub.hub.messages.Add(1)
	return err
}

// waitUntil blocks until t, or until wake fires (nil: never), or the
// subscription's context ends or the hub closes. It reports whether wake
// fired.
func (sub *Subscription) waitUntil(t time.Time, wake <-chan struct{}) (woke bool, err error) {
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
		return false, sub.ctx.Err()
	case <-sub.hub.closed:
		return false, ErrClosed
	}
}

// snapshot returns the subscription's stats.
func (sub *Subscription) snapshot(newest uint64, now time.Time) SubscriptionStats {
	next := sub.stats.next.Load()
	if sub.watch != nil {
		// An idle subscription's cursor moves when it wakes; its lag is
		// only what its watch has not yet examined.
		next, _ = sub.watch.skip(next, 0)
	}
	messages := sub.stats.messages.Load()
	var lag uint64
	if newest+1 > next {
		lag = newest + 1 - next
	}
	age := now.Sub(sub.start).Seconds()
	return SubscriptionStats{
		ID:                 sub.id,
		Peer:               sub.req.Peer,
		Start:              sub.start,
		NextID:             next,
		Lag:                lag,
		Messages:           messages,
		Entries:            sub.stats.entries.Load(),
		MessageRate:        math.Float64frombits(sub.stats.rate.Load()),
		AverageMessageRate: float64(messages) / max(age, 1e-9),
		Throttled:          sub.stats.throttled.Load(),
		Priority:           sub.stats.priority.Load(),
		Gaps:               sub.stats.gaps.Load(),
		Blocked:            time.Duration(sub.stats.blocked.Load()),
		Interval:           time.Duration(sub.stats.interval.Load()),
	}
}
