package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pxperf/pxperf/cluster"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/protobuf/proto"
)

// clusterNode is the engine's part in cluster mode: the streams, and the
// follower that brings them into the store.
type clusterNode struct {
	log      *cluster.Log
	follower *cluster.Follower
	// archiveFrom is the first id the local archive has not written: the
	// follower may apply entries the archive holds from an earlier run.
	archiveFrom uint64

	shared *cluster.SharedConfig // the config groups the nodes share
	recent recentPending         // PENDING entries published here, maybe not yet applied

	failures atomic.Uint64 // publishes the stream did not take
	ready    atomic.Bool   // connected, and the stream answered the last check

	mu        sync.Mutex
	state     cluster.State // as of the last check
	lastError string        // of the last check or publish; "" after a success
	onReady   []func()
}

// clusterCheckInterval is how often the stream's state is read, for stats
// and health.
const clusterCheckInterval = time.Second

// watchCluster reads the stream's state every clusterCheckInterval until
// ctx ends, so that stats need not ask NATS and health follows whether
// this node can publish.
func (e *Engine) watchCluster(ctx context.Context) {
	t := time.NewTicker(clusterCheckInterval)
	defer t.Stop()
	for {
		e.checkCluster(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkCluster reads the stream's state once and records the outcome.
func (e *Engine) checkCluster(ctx context.Context) {
	c := e.cluster
	cctx, cancel := context.WithTimeout(ctx, clusterCheckInterval)
	st, err := c.log.State(cctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the outcome says nothing
	}
	c.mu.Lock()
	if err == nil {
		c.state, c.lastError = st, ""
	} else {
		c.lastError = err.Error()
	}
	c.mu.Unlock()
	c.setReady(err == nil && c.log.Connected())
}

// setReady records whether this node can publish, and tells the observers
// when that changes.
func (c *clusterNode) setReady(ok bool) {
	if c.ready.Swap(ok) == ok {
		return
	}
	c.mu.Lock()
	obs := c.onReady
	c.mu.Unlock()
	for _, fn := range obs {
		fn()
	}
}

// publishFailed records a publish the stream did not take.
func (c *clusterNode) publishFailed(err error) {
	c.failures.Add(1)
	c.mu.Lock()
	c.lastError = err.Error()
	c.mu.Unlock()
	c.setReady(false)
}

// OnClusterReady registers fn to be called, from any goroutine, when this
// node becomes able or unable to publish in cluster mode (connected to
// NATS, and the stream answering; see [Engine.ClusterReady]). In embedded
// mode fn is never called.
func (e *Engine) OnClusterReady(fn func()) {
	if c := e.cluster; c != nil {
		c.mu.Lock()
		c.onReady = append(c.onReady, fn)
		c.mu.Unlock()
	}
}

// Clustered reports whether the engine runs in cluster mode.
func (e *Engine) Clustered() bool { return e.cluster != nil }

// ClusterReady reports whether this node can publish: always in embedded
// mode; in cluster mode, while connected to NATS with the stream answering.
func (e *Engine) ClusterReady() bool {
	return e.cluster == nil || e.cluster.ready.Load()
}

// clusterStats reports cluster mode for GetStats; nil in embedded mode.
func (e *Engine) clusterStats() *pxperfv1.ClusterStats {
	c := e.cluster
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, lastError := c.state, c.lastError
	c.mu.Unlock()
	applied := c.follower.Applied().ID
	cs := &pxperfv1.ClusterStats{
		Connected:       c.ready.Load(),
		Server:          c.log.Server(),
		StreamMessages:  st.Msgs,
		StreamBytes:     st.Bytes,
		LastId:          st.LastID,
		AppliedId:       applied,
		PublishFailures: c.failures.Load(),
		LastError:       lastError,
	}
	cs.FirstId = st.FirstID
	if st.LastID > applied {
		cs.Lag = st.LastID - applied
	}
	return cs
}

// clusterStartTimeout bounds how long a node waits at start for NATS and
// JetStream: a NATS cluster started with it elects its leader first.
const clusterStartTimeout = 30 * time.Second

// openCluster connects to the cluster's streams and returns the first id
// the store is to hold: the newest entries that fit max_entries. The ids
// below firstID, the one after the local archive's last, are reserved: a
// stream that holds no entries yet starts at firstID or above, so that an
// embedded install moving to cluster mode keeps its ids.
func openCluster(cfg *pxperfv1.Config, firstID uint64, log *slog.Logger) (*cluster.Log, uint64, error) {
	cc := cfg.GetCluster()
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(context.Background(), clusterStartTimeout)
	defer cancel()
	l, err := cluster.Open(ctx, cluster.Config{
		URLs:           cc.GetUrls(),
		Stream:         cc.GetStream(),
		Subject:        cc.GetSubject(),
		Replicas:       int(cc.GetReplicas()),
		MaxBytes:       int64(min(cc.GetMaxBytes(), 1<<63-1)),
		MaxAge:         cc.GetMaxAge().AsDuration(),
		CredsFile:      cc.GetCredsFile(),
		CAFile:         cc.GetCaFile(),
		PublishTimeout: cc.GetPublishTimeout().AsDuration(),
		FirstID:        firstID,
		Name:           "pxperf " + host,
		Log:            log,
	})
	if err != nil {
		return nil, 0, err
	}
	st, err := l.State(ctx)
	if err != nil {
		l.Close()
		return nil, 0, err
	}
	from := st.LastID + 1 // an empty stream: the next entry
	if st.Msgs > 0 {
		from = max(st.FirstID, (st.LastID+1)-min(st.LastID, uint64(cfg.GetMemory().GetMaxEntries())))
	}
	return l, from, nil
}

// follow starts the follower from id from.
func (e *Engine) follow(ctx context.Context, from uint64) error {
	f, err := e.cluster.log.Follow(ctx, from, clusterApplier{e})
	if err != nil {
		return err
	}
	e.cluster.follower = f
	e.checkCluster(ctx)
	e.startWorker(ctx, "cluster watcher", e.watchCluster)
	e.workers.Go(func() {
		<-f.Done()
		if err := f.Err(); err != nil {
			e.log.Error("stopped following the cluster's stream", "err", err)
		}
	})
	return nil
}

// clusterApplier applies the streams to the engine's store and archive.
type clusterApplier struct{ e *Engine }

// Entries implements cluster.Applier.
func (a clusterApplier) Entries(first uint64, entries []*pxperfv1.Entry) {
	e := a.e
	e.ingestMu.Lock()
	defer e.ingestMu.Unlock()
	stored, err := e.store.AppendAt(first, entries)
	if err != nil {
		// The follower delivers in order, so this is a bug.
		e.log.Error("cannot apply entries from the cluster's stream", "first", first, "err", err)
		return
	}
	e.archiveStored(e.cluster.unarchived(stored))
}

// Complete implements cluster.Applier.
func (a clusterApplier) Complete(id uint64, en *pxperfv1.Entry) {
	e := a.e
	e.ingestMu.Lock()
	defer e.ingestMu.Unlock()
	if st, ok := e.store.Complete(id, en); ok {
		e.archiveStored(e.cluster.unarchived([]store.Stored{st}))
	}
}

// unarchived returns what of stored the local archive has not written.
func (c *clusterNode) unarchived(stored []store.Stored) []store.Stored {
	for len(stored) > 0 && stored[0].ID < c.archiveFrom {
		stored = stored[1:]
	}
	return stored
}

// startCluster sends valid entries on their way to the cluster's stream,
// after those of every call before, and returns the function that waits
// for the stream to take them and returns their ids, and how far the
// follower must get for this node to hold them (see
// [Engine.WaitApplied]). An entry with the request id of a PENDING entry
// completes it, as in embedded mode: one this node holds, one published
// here that the follower has not applied yet, or one earlier in the batch.
// In the last case the batch is cut before the completion, and the part
// before is appended before startCluster returns, so that the id is known
// when the completion is published.
func (e *Engine) startCluster(ctx context.Context, chain *cluster.Chain, batchID string, valid []*pxperfv1.Entry, positions []int) (func(context.Context) ([]uint64, Mark, error), error) {
	c := e.cluster
	e.store.Normalize(valid...)
	failed := func(ctx context.Context, err error) error {
		if ctx.Err() == nil && !errors.Is(err, cluster.ErrTooLarge) { // not the producer's doing
			c.publishFailed(err)
		}
		return err
	}
	roles, pin := e.roles(valid)
	if pin && batchID != "" {
		// A retry must be cut and named as the first attempt was, though
		// the first attempt, taken, made its PENDING entries known.
		var err error
		if roles, err = c.log.PinBatch(ctx, batchID, roles); err != nil {
			return nil, failed(ctx, err)
		}
	}
	ids := make([]uint64, len(valid)) // by index in valid, once known
	var mark Mark
	// done records what a part of the batch, from index first on, appended.
	done := func(first int, msgs []cluster.Message, appended []cluster.Appended) {
		for i, m := range msgs {
			if m.Completes != 0 {
				mark.Completions = max(mark.Completions, appended[i].Seq)
			} else {
				mark.Entries = max(mark.Entries, appended[i].Seq)
			}
			ids[first+i] = appended[i].ID
		}
		c.published(msgs, ids[first:first+len(msgs)])
	}
	first := 0 // of the part being built
	var msgs []cluster.Message
	for i, en := range valid {
		m := cluster.Message{Entry: en, MsgID: msgID(batchID, positions[i])}
		switch r := roles[i]; {
		case r > 0:
			m.Completes = uint64(r)
		case r < 0: // completes the batch's entry -r-1
			target := int(-r - 1)
			if target >= first { // in this part: append it first
				a, err := c.log.Start(chain, msgs)
				if err != nil {
					return nil, failed(ctx, err)
				}
				appended, err := a.Wait(ctx)
				if err != nil {
					return nil, failed(ctx, err)
				}
				done(first, msgs, appended)
				first, msgs = i, nil
			}
			m.Completes = ids[target]
		}
		msgs = append(msgs, m)
	}
	// The last part: the caller waits for it.
	a, err := c.log.Start(chain, msgs)
	if err != nil {
		return nil, failed(ctx, err)
	}
	return func(ctx context.Context) ([]uint64, Mark, error) {
		appended, err := a.Wait(ctx)
		if err != nil {
			return nil, Mark{}, failed(ctx, err)
		}
		done(first, msgs, appended)
		return ids, mark, nil
	}, nil
}

// roles says what each of valid, a batch, is: a new entry (0), the
// completion of the PENDING entry with an id known here (the id), or of
// the PENDING entry at index j of the batch (-j-1). pin reports whether
// any has a request id: a retry of the batch could see it otherwise, once
// the first attempt is taken (its own PENDING entry known, or the entry it
// completed no longer PENDING).
func (e *Engine) roles(valid []*pxperfv1.Entry) (roles []int64, pin bool) {
	roles = make([]int64, len(valid))
	inBatch := map[string]int{} // request id → index of the batch's PENDING entry
	closed := map[string]bool{} // request ids completed earlier in the batch
	for i, en := range valid {
		rid := en.GetRequestId()
		if rid == "" {
			continue
		}
		stillPending := en.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING
		if j, ok := inBatch[rid]; ok {
			roles[i] = -int64(j) - 1
		} else if id, ok := e.pendingID(rid); ok && !closed[rid] {
			roles[i] = int64(id)
		} else if stillPending {
			inBatch[rid] = i
			delete(closed, rid)
		}
		if roles[i] != 0 && !stillPending {
			delete(inBatch, rid)
			closed[rid] = true
		}
		pin = true
	}
	return roles, pin
}

// Mark is how far a node's follower must get for the node to hold what one
// ingest published: the sequences of the last message of its entries and
// of its last completion in their streams (0 for none). The zero Mark, in embedded
// mode, is always reached.
type Mark struct {
	Entries, Completions uint64
}

// WaitApplied waits until this node holds what the ingest that returned m
// published, so that a producer that reads back on the same node finds
// it; at once in embedded mode.
func (e *Engine) WaitApplied(ctx context.Context, m Mark) error {
	if e.cluster == nil || m == (Mark{}) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.Config().GetCluster().GetPublishTimeout().AsDuration())
	defer cancel()
	return e.cluster.follower.Wait(ctx, m.Entries, m.Completions)
}

// recentPending are the PENDING entries this node published that its
// follower may not have applied yet, so that a completion published right
// after its entry finds it.
type recentPending struct {
	mu    sync.Mutex
	ids   map[string]uint64 // request id → id of the PENDING entry
	order []pendingRef      // in id order, to forget those applied
}

type pendingRef struct {
	rid string
	id  uint64
}

// pendingID returns the id of the PENDING entry with request id rid: one
// the store holds, or one published here and not yet applied.
func (e *Engine) pendingID(rid string) (uint64, bool) {
	if rid == "" {
		return 0, false
	}
	if id, ok := e.store.PendingID(rid); ok {
		return id, true
	}
	r := &e.cluster.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.ids[rid]
	return id, ok
}

// published records what this node published, msgs[i] under ids[i]: a
// PENDING entry may be completed before the follower applies it. Entries
// the follower has applied are forgotten: the store knows them.
func (c *clusterNode) published(msgs []cluster.Message, ids []uint64) {
	applied := c.follower.Applied().ID
	r := &c.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.order) > 0 && r.order[0].id <= applied {
		if r.ids[r.order[0].rid] == r.order[0].id {
			delete(r.ids, r.order[0].rid)
		}
		r.order = r.order[1:]
	}
	for i, m := range msgs {
		rid := m.Entry.GetRequestId()
		switch {
		case rid == "":
		case m.Entry.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING:
			delete(r.ids, rid) // completed: a later entry with rid is new
		default:
			if r.ids == nil {
				r.ids = make(map[string]uint64)
			}
			r.ids[rid] = ids[i]
			r.order = append(r.order, pendingRef{rid, ids[i]})
		}
	}
}

// msgID is the id under which the stream keeps the entry at position in
// the batch batchID once, however often the producer retries the batch;
// empty, for no such keeping, without a batch id.
func msgID(batchID string, position int) string {
	if batchID == "" {
		return ""
	}
	return batchID + "/" + strconv.Itoa(position)
}

// maxSharedAttempts bounds the retries of a change to the shared config
// that raced with one made on another node.
const maxSharedAttempts = 5

// touchesShared reports whether any of paths is in a group the nodes of a
// cluster share.
func touchesShared(paths []string) bool {
	for _, p := range paths {
		if p == "*" {
			return true
		}
		group, _, _ := strings.Cut(p, ".")
		if slices.Contains(config.ClusterShared(), group) {
			return true
		}
	}
	return false
}

// sharedPart returns the groups of cfg the nodes share, encoded for the
// shared config.
func sharedPart(cfg *pxperfv1.Config) ([]byte, error) {
	part := &pxperfv1.Config{}
	for _, g := range config.ClusterShared() {
		if err := config.ApplyPath(part.ProtoReflect(), cfg.ProtoReflect(), g); err != nil {
			return nil, err
		}
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(part)
}

// withShared returns a copy of cfg with the shared groups of data, a
// shared config; cfg itself when data is nil.
func withShared(cfg *pxperfv1.Config, data []byte) (*pxperfv1.Config, error) {
	if data == nil {
		return cfg, nil
	}
	src := &pxperfv1.Config{}
	if err := proto.Unmarshal(data, src); err != nil {
		return nil, fmt.Errorf("decode the shared config: %w", err)
	}
	next := proto.CloneOf(cfg)
	for _, g := range config.ClusterShared() {
		if err := config.ApplyPath(next.ProtoReflect(), src.ProtoReflect(), g); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// updateShared is Update for a change that touches a shared group: it
// applies change to the config in force with the shared groups as the
// cluster has them, writes the shared part of the result to the cluster,
// and only then applies it here. A change made meanwhile on another node
// makes it start again from that one.
func (e *Engine) updateShared(paths []string, change func(old *pxperfv1.Config) (*pxperfv1.Config, error)) (*pxperfv1.Config, error) {
	timeout := e.Config().GetCluster().GetPublishTimeout().AsDuration()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		data, rev, err := e.cluster.shared.Get(ctx)
		if err != nil {
			cancel()
			return nil, err
		}
		next, err := e.update(paths, func(old *pxperfv1.Config) (*pxperfv1.Config, error) {
			base, err := withShared(old, data)
			if err != nil {
				return nil, err
			}
			next, err := change(base)
			if err != nil {
				return nil, err
			}
			// What the parts would refuse must not reach the other nodes.
			if err := hubSettings(next.GetThrottle()).Validate(); err != nil {
				return nil, err
			}
			part, err := sharedPart(next)
			if err != nil {
				return nil, err
			}
			if _, err := e.cluster.shared.Put(ctx, part, rev); err != nil {
				return nil, err
			}
			return next, nil
		})
		cancel()
		if errors.Is(err, cluster.ErrConfigChanged) && attempt < maxSharedAttempts {
			continue
		}
		return next, err
	}
}

// openShared opens the cluster's shared config, seeds it with this node's
// shared groups when the cluster has none yet, and follows it: the shared
// groups as the cluster has them apply here at once, and each later
// change as it is made.
func (e *Engine) openShared(ctx context.Context) error {
	c := e.cluster
	c.shared = c.log.SharedConfig()
	// The bucket's leader may still be in election when nodes start
	// together: retry what is unavailable until the start timeout.
	octx, cancel := context.WithTimeout(ctx, clusterStartTimeout)
	defer cancel()
	for {
		err := e.seedShared(octx)
		if err == nil || !errors.Is(err, cluster.ErrUnavailable) {
			if err != nil {
				return err
			}
			break
		}
		e.log.Info("waiting for the cluster's shared config", "err", err)
		select {
		case <-octx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
	e.startWorker(ctx, "cluster config watcher", func(ctx context.Context) {
		if err := c.shared.Watch(ctx, func(data []byte, _ uint64) { e.applyShared(data) }); err != nil {
			e.log.Error("stopped following the cluster's shared config", "err", err)
		}
	})
	return nil
}

// seedShared applies the cluster's shared config here, or, when there is
// none yet, makes this node's the cluster's.
func (e *Engine) seedShared(ctx context.Context) error {
	data, _, err := e.cluster.shared.Get(ctx)
	if err != nil {
		return err
	}
	if data != nil {
		e.applyShared(data) // before the node serves: it starts as the cluster is
		return nil
	}
	part, err := sharedPart(e.Config())
	if err != nil {
		return err
	}
	if _, err := e.cluster.shared.Put(ctx, part, 0); errors.Is(err, cluster.ErrConfigChanged) {
		return e.seedShared(ctx) // another node seeded it first
	} else if err != nil {
		return err
	}
	return nil
}

// applyShared applies data, the cluster's shared config, here, when it
// differs from the config in force. The change is announced as any other
// (WatchStats' config_changed), naming the groups that changed.
func (e *Engine) applyShared(data []byte) {
	next, err := withShared(e.Config(), data)
	if err != nil {
		e.log.Error("cannot apply the cluster's shared config", "err", err)
		return
	}
	paths := config.ClusterSharedChanges(e.Config(), next)
	if len(paths) == 0 {
		return // this node's own change, or nothing new
	}
	_, err = e.update(paths, func(old *pxperfv1.Config) (*pxperfv1.Config, error) {
		next, err := withShared(old, data)
		if err != nil {
			return nil, err
		}
		return next, config.Validate(e.validator, next)
	})
	if err != nil {
		e.log.Error("cannot apply the cluster's shared config", "err", err)
		return
	}
	e.log.Info("applied the cluster's shared config", "groups", strings.Join(paths, ","))
}

// streamHistory serves what left this node's memory from the cluster's
// stream, with completions merged: the hub's archive in cluster mode.
type streamHistory struct{ log *cluster.Log }

// OldestID implements hub.Archive.
func (h streamHistory) OldestID(ctx context.Context) (uint64, error) {
	st, err := h.log.State(ctx)
	return st.FirstID, err
}

// Read implements hub.Archive.
func (h streamHistory) Read(ctx context.Context, q archive.Query, fn func(*pxperfv1.Entry) error) error {
	return h.log.Read(ctx, q.FirstID, q.LastID, func(e, completion *pxperfv1.Entry) error {
		if completion != nil {
			e = store.Completed(e, completion)
		}
		if !q.Selects(e) {
			return nil
		}
		return fn(e)
	})
}

// clusterEntry returns entry id from the cluster's stream, with its
// completion merged; wrapping store.ErrNotFound when the stream does not
// hold it.
func (e *Engine) clusterEntry(ctx context.Context, id uint64) (*pxperfv1.Entry, error) {
	en, completion, err := e.cluster.log.Entry(ctx, id)
	if errors.Is(err, cluster.ErrNotFound) {
		return nil, fmt.Errorf("%w: id %d is in neither this node's memory nor the cluster's stream", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if completion != nil {
		en = store.Completed(en, completion)
	}
	return en, nil
}
