package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/throttle"
)

// Archive is what the hub reads ids back from once they have left memory:
// *archive.Archive satisfies it.
type Archive interface {
	// OldestID returns the oldest id the archive holds, 0 when none.
	OldestID(ctx context.Context) (uint64, error)
	// Read calls fn with each archived entry that q selects, in file
	// order, until fn returns an error.
	Read(ctx context.Context, q archive.Query, fn func(*pxperfv1.Entry) error) error
}

// Config is what a [Hub] serves from.
type Config struct {
	// Store holds the entries. Required.
	Store *store.Store
	// Archive feeds subscribers that fell behind memory; nil reports the
	// ids they missed as gaps.
	Archive Archive
	// BatchBytes bounds the bytes of the entries of one batch message,
	// bodies included; a single entry larger than it goes alone. Required.
	BatchBytes int
	// Settings are the throttle settings to start with; see
	// [Hub.SetSettings].
	Settings Settings
}

// Settings are the server's throttle settings, which may change while
// subscriptions run: each takes them from its next message on (see
// [Hub.SetSettings]).
type Settings struct {
	// Throttle is the pacing: mode, the floor interval (the hard cap,
	// which a subscriber may only lengthen; at least 1s /
	// MaxUpdatesPerSecond) and how adaptive and burst modes stretch it.
	Throttle throttle.Config
	// MaxUpdatesPerSecond is the server's cap on messages a second to one
	// subscriber; a subscriber may ask for fewer. At least 1.
	MaxUpdatesPerSecond int
	// BatchSize is how many entries make a batch worth sending at once.
	BatchSize int
	// MaxBatchSize is the most entries in one batch message; a subscriber
	// may ask for fewer. At least 1.
	MaxBatchSize int
	// BatchTimeout is how long the first entry of a batch waits for more.
	BatchTimeout time.Duration
	// Heartbeat is how often a quiet subscription gets a progress message.
	Heartbeat time.Duration
	// SendTimeout is how long one Send may stay blocked before the
	// subscription ends with [ErrStuck].
	SendTimeout time.Duration
	// Priority is the threshold at or above which an entry is flushed at
	// once.
	Priority pxperfv1.Priority
}

// Validate reports the first setting out of range, wrapping
// [ErrInvalidConfig].
func (s Settings) Validate() error {
	switch {
	case s.MaxUpdatesPerSecond < 1:
		return fmt.Errorf("%w: MaxUpdatesPerSecond %d, want at least 1", ErrInvalidConfig, s.MaxUpdatesPerSecond)
	case s.MaxBatchSize < 1:
		return fmt.Errorf("%w: MaxBatchSize %d, want at least 1", ErrInvalidConfig, s.MaxBatchSize)
	case s.Heartbeat <= 0 || s.SendTimeout <= 0:
		return fmt.Errorf("%w: Heartbeat %v and SendTimeout %v must be positive", ErrInvalidConfig, s.Heartbeat, s.SendTimeout)
	case s.Throttle.MinInterval < throttle.Every(s.MaxUpdatesPerSecond):
		return fmt.Errorf("%w: Throttle.MinInterval %v is shorter than 1s / MaxUpdatesPerSecond (%d)", ErrInvalidConfig, s.Throttle.MinInterval, s.MaxUpdatesPerSecond)
	}
	if err := s.Throttle.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// Load marks for adaptive mode, as a share of all cores.
const (
	cpuHigh = 0.8
	cpuLow  = 0.5
)

// Hub is the shared state of all subscriptions: the settings, counters
// since start, the load the throttle reacts to, and the open
// subscriptions. Create it with [New]; end it with [Hub.Close] and
// [Hub.Wait]. It is safe for concurrent use.
type Hub struct {
	store      *store.Store
	archive    Archive
	batchBytes int
	settings   atomic.Pointer[Settings]

	messages, entries, throttled, priority, gaps, stuck atomic.Uint64
	blocked                                             atomic.Int64 // nanoseconds

	burst throttle.BurstDetector
	load  atomic.Pointer[signals] // the last observation; nil before the first
	// slowUntil, Unix nanoseconds, is when a [Hub.SlowUntil] ends: until
	// then adaptive subscriptions see high load.
	slowUntil atomic.Int64

	mu       sync.Mutex
	subs     map[uint64]*Subscription
	seq      uint64    // ids of subscriptions
	observed time.Time // the last ObserveAt, for message rates
	// watches are the filters of filtered subscriptions, by key (see
	// watch.go); dispatching, whether the goroutine that scans for them
	// runs.
	watches     map[string]*watch
	dispatching bool
	isClosed    bool // Close was called; under mu

	closed  chan struct{} // closed by Close: every Run ends
	senders sync.WaitGroup
	workers sync.WaitGroup // the dispatch goroutine
}

// signals is one observation of what the throttle modes react to.
type signals struct {
	load       throttle.Load
	cpuLoad    float64
	ingestRate float64
}

// ErrInvalidConfig is wrapped by the errors of [New] and [Hub.SetSettings]
// for a bad config.
var ErrInvalidConfig = errors.New("invalid hub config")

// New returns a hub serving from cfg.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil || cfg.BatchBytes < 1 {
		return nil, fmt.Errorf("%w: a Store and a positive BatchBytes are required", ErrInvalidConfig)
	}
	h := &Hub{
		store:      cfg.Store,
		archive:    cfg.Archive,
		batchBytes: cfg.BatchBytes,
		subs:       make(map[uint64]*Subscription),
		watches:    make(map[string]*watch),
		closed:     make(chan struct{}),
	}
	if err := h.SetSettings(cfg.Settings); err != nil {
		return nil, err
	}
	return h, nil
}

// SetSettings changes the settings live: every running subscription takes
// them from its next message on (one fed from the archive, from its next
// batch). On error nothing changes.
func (h *Hub) SetSettings(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	h.settings.Store(&s)
	return nil
}

// Settings returns the settings in force.
func (h *Hub) Settings() Settings { return *h.settings.Load() }

// Observation is what [Hub.ObserveAt] is told of the server's load.
type Observation struct {
	// CPULoad is the process's CPU use, as a share of all cores.
	CPULoad float64
	// Memory is the live memory the process holds besides the store, as a
	// share of its allowance (monitor.RestShare): a full store is not load.
	// HighWater and LowWater are the shares that make it high and low.
	Memory, HighWater, LowWater float64
	// IngestRate is entries stored a second, new and completed.
	IngestRate float64
}

// ObserveAt takes an observation of the load made at t: adaptive
// subscriptions slow down under high load and speed up under low load, and
// burst mode turns on when the ingest rate passes the burst threshold. It
// also samples each subscription's message rate since the last
// observation.
func (h *Hub) ObserveAt(t time.Time, o Observation) {
	slowed := t.UnixNano() < h.slowUntil.Load()
	h.load.Store(&signals{
		load: throttle.Load{
			High: slowed || o.CPULoad >= cpuHigh || o.Memory >= o.HighWater,
			Low:  !slowed && o.CPULoad < cpuLow && o.Memory < o.LowWater,
		},
		cpuLoad:    o.CPULoad,
		ingestRate: o.IngestRate,
	})
	tc := h.Settings().Throttle
	h.burst.ObserveAt(t, o.IngestRate, tc.BurstThreshold, tc.BurstCooldown)
	h.mu.Lock()
	defer h.mu.Unlock()
	if dt := t.Sub(h.observed).Seconds(); !h.observed.IsZero() && dt > 0 {
		for _, sub := range h.subs {
			m := sub.stats.messages.Load()
			sub.stats.rate.Store(math.Float64bits(float64(m-sub.stats.lastMessages) / dt))
			sub.stats.lastMessages = m
		}
	}
	h.observed = t
}

// loadNow returns the last observed load (neither high nor low before the
// first observation).
func (h *Hub) loadNow() throttle.Load {
	if s := h.load.Load(); s != nil {
		return s.load
	}
	return throttle.Load{}
}

// SlowUntil makes adaptive subscriptions see high load until t, so that
// their intervals grow at each message meanwhile.
func (h *Hub) SlowUntil(t time.Time) { h.slowUntil.Store(t.UnixNano()) }

// Close ends every running subscription, and every one that starts later,
// with [ErrClosed]. It does not wait: see [Hub.Wait].
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.isClosed {
		h.isClosed = true
		close(h.closed)
	}
}

// Wait waits for the hub's goroutines to end, once it is closed and every
// [Subscription.Run] has returned: a goroutine still blocked in a Send ends
// when that Send returns, which happens at the latest when its stream
// ends.
func (h *Hub) Wait() {
	h.workers.Wait()
	h.senders.Wait()
}

// Stats are the hub's counters since start, the load it last observed,
// and each open subscription.
type Stats struct {
	// Messages and Entries count messages and entries sent (an entry once
	// per subscriber it went to).
	Messages, Entries uint64
	// Throttled counts messages that waited for the throttle interval with
	// entries ready; Priority, batches sent early for a priority entry.
	Throttled, Priority uint64
	// Gaps counts gap messages; Stuck, subscriptions ended for a Send
	// blocked past the send timeout.
	Gaps, Stuck uint64
	// Blocked is the time Sends were blocked, all subscriptions together.
	Blocked time.Duration
	// BurstEvents counts times burst mode turned on; BurstActive is
	// whether it is on now.
	BurstEvents uint64
	BurstActive bool
	// IngestRate and CPULoad are the last observation's (see
	// [Observation]).
	IngestRate, CPULoad float64
	// Subscriptions are the open ones, oldest first.
	Subscriptions []SubscriptionStats
	// MaxLag is the largest Lag of any subscription.
	MaxLag uint64
}

// SubscriptionStats describe one open subscription.
type SubscriptionStats struct {
	ID    uint64
	Peer  string
	Start time.Time
	// NextID is the cursor; Lag, how many ids it is behind the newest.
	NextID, Lag uint64
	// Messages and Entries sent.
	Messages, Entries uint64
	// MessageRate is messages a second between the last two observations;
	// AverageMessageRate, since the subscription started.
	MessageRate, AverageMessageRate float64
	// Throttled, Priority and Gaps count as in [Stats].
	Throttled, Priority, Gaps uint64
	// Blocked is the time its Sends were blocked; Interval, the throttle
	// interval in force.
	Blocked, Interval time.Duration
}

// Stats returns the hub's stats at now; newest is the newest id stored,
// for lags.
func (h *Hub) Stats(newest uint64, now time.Time) Stats {
	st := Stats{
		Messages:    h.messages.Load(),
		Entries:     h.entries.Load(),
		Throttled:   h.throttled.Load(),
		Priority:    h.priority.Load(),
		Gaps:        h.gaps.Load(),
		Stuck:       h.stuck.Load(),
		Blocked:     time.Duration(h.blocked.Load()),
		BurstEvents: h.burst.Events(),
		BurstActive: h.burst.ActiveAt(now),
	}
	if sig := h.load.Load(); sig != nil {
		st.IngestRate, st.CPULoad = sig.ingestRate, sig.cpuLoad
	}
	h.mu.Lock()
	for _, sub := range h.subs {
		ss := sub.snapshot(newest, now)
		st.Subscriptions = append(st.Subscriptions, ss)
		st.MaxLag = max(st.MaxLag, ss.Lag)
	}
	h.mu.Unlock()
	slices.SortFunc(st.Subscriptions, func(a, b SubscriptionStats) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return st
}

// add registers sub, with the watch of its filter when it has one. It
// fails with ErrClosed once the hub is closed.
func (h *Hub) add(sub *Subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isClosed {
		return ErrClosed
	}
	h.seq++
	sub.id = h.seq
	h.subs[sub.id] = sub
	if m := sub.req.Match; !m.All() {
		key := sub.req.Key
		if key == "" {
			key = "#" + strconv.FormatUint(sub.id, 10) // its own
		}
		sub.watch = h.watchForLocked(key, m)
	}
	return nil
}

func (h *Hub) remove(sub *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub.id]; !ok {
		return
	}
	delete(h.subs, sub.id)
	if sub.watch != nil {
		h.releaseWatchLocked(sub.watch)
	}
}
