// Package store is pxperf's memory manager: the one in-memory copy of recent
// entries, in id order, bounded by an entry count and a byte budget.
//
// Every accepted entry gets the next sequence id. Entries are evicted oldest
// first to stay within [Config.MaxEntries] and [Config.MaxMemoryBytes]: after
// every change the accounted bytes held (see [Size]) are at most the budget.
// Under memory pressure ([Store.RelievePressure]) the store also gives way to
// the rest of the process, by the excess only, so that it keeps its history
// when the process is merely busy. Readers
// address entries by id: [Store.Entry] for one, [Store.ReadFrom] for a
// subscriber's cursor, [Store.List] for a window of a filtered view.
// Filters reach the store as a [Matcher], whose host and status tests run
// on a compact column kept beside the entries, so that a pass over many
// entries reads only those that pass them.
//
// Stored entries are never modified after [Store.Append] returns, so readers
// may marshal them concurrently without a copy. The data of an entry's
// bodies, response and request, is kept beside the entry, not in it:
// entries handed out without bodies are the stored messages themselves;
// [Store.EntryWithBody] builds a copy carrying them.
package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
)

// Errors returned by the store. Callers test them with [errors.Is].
var (
	// ErrInvalidConfig is wrapped by errors about a bad [Config].
	ErrInvalidConfig = errors.New("invalid store config")
	// ErrNotFound is wrapped when an id is not held.
	ErrNotFound = errors.New("entry not found")
	// ErrCompacted is wrapped when a cursor is older than the oldest entry held
	// and the caller asked not to skip ahead. See [CompactedError].
	ErrCompacted = errors.New("entries evicted")
	// ErrFuture is wrapped when a cursor is beyond the next id to be assigned.
	ErrFuture = errors.New("id not assigned yet")
)

// Config bounds a [Store].
type Config struct {
	// MaxEntries is the most entries held. Required: at least 1.
	MaxEntries int
	// MaxMemoryBytes is the budget for the accounted size of held entries
	// (see [Size]; each body, response and request, counts by its
	// capacity), in bytes. Required: at least 1.
	MaxMemoryBytes int64
	// MaxBodySize is the longest body, response or request, kept, in
	// bytes; longer bodies are truncated at ingest. Zero keeps no body. Not
	// negative.
	MaxBodySize int
	// RedactHeaders are header names redacted in addition to [AlwaysRedacted].
	// Case-insensitive.
	RedactHeaders []string
	// FirstID is the id the first entry gets; 0 means 1. A server that
	// recovers its last id from the archive starts after it.
	FirstID uint64
	// PressureMargin is the live memory, in bytes, that the rest of the
	// process may hold beyond MaxMemoryBytes before the store gives way to
	// it: [Store.RelievePressure] evicts only when live memory passes
	// MaxMemoryBytes + PressureMargin. Zero means no margin. Not negative.
	PressureMargin int64
	// CheckInterval is how often [Store.WatchPressure] reads live memory.
	// Zero means 60s; otherwise at least 1ms.
	CheckInterval time.Duration
	// Encoder encodes each entry once for the readers that send it (see
	// [Read.Fields]). Required by [New]; [Store.SetConfig] ignores it.
	Encoder Encoder
}

// withDefaults fills in the zero values that have defaults.
func (c Config) withDefaults() Config {
	if c.CheckInterval == 0 {
		c.CheckInterval = 60 * time.Second
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.MaxEntries < 1:
		return fmt.Errorf("%w: MaxEntries must be at least 1, got %d", ErrInvalidConfig, c.MaxEntries)
	case c.MaxMemoryBytes < 1:
		return fmt.Errorf("%w: MaxMemoryBytes must be at least 1, got %d", ErrInvalidConfig, c.MaxMemoryBytes)
	case c.MaxBodySize < 0:
		return fmt.Errorf("%w: MaxBodySize must not be negative, got %d", ErrInvalidConfig, c.MaxBodySize)
	case c.PressureMargin < 0:
		return fmt.Errorf("%w: PressureMargin must not be negative, got %d", ErrInvalidConfig, c.PressureMargin)
	case c.CheckInterval < time.Millisecond:
		return fmt.Errorf("%w: CheckInterval must be at least 1ms, got %v", ErrInvalidConfig, c.CheckInterval)
	}
	return nil
}

// item is one held entry with what the store knows about it.
type item struct {
	entry  *pxperfv1.Entry // never modified once stored; its bodies' data is nil
	bodies bodies          // the data of its bodies, possibly truncated
	size   int64           // accounted bytes
}

// bodies is the data of an entry's two bodies, which the store holds
// beside the entry rather than in it; nil for a body without data.
type bodies struct {
	response []byte // response_body.data
	request  []byte // request_body.data
}

// selectedBy reports whether m selects the item's entry, bodies included.
func (it item) selectedBy(m Matcher) bool {
	return m.selects(it.entry, it.bodies.request, it.bodies.response)
}

// Stats are counters and gauges of a [Store].
type Stats struct {
	Entries        int    // entries held
	Bytes          int64  // accounted bytes held
	BudgetBytes    int64  // Config.MaxMemoryBytes
	MaxEntries     int    // Config.MaxEntries
	OldestID       uint64 // oldest id held; 0 when empty
	NewestID       uint64 // newest id assigned; 0 before the first
	Accepted       uint64 // new entries appended since New
	Completed      uint64 // PENDING entries completed since New
	EvictedByCount uint64 // entries evicted for MaxEntries
	EvictedByBytes uint64 // entries evicted for MaxMemoryBytes
	// EvictedByPressure counts entries evicted because live memory passed
	// the pressure threshold (see [Store.RelievePressure]), and those
	// evicted on purpose by [Store.EvictBytes].
	EvictedByPressure uint64
	TruncatedBodies   uint64 // bodies truncated at ingest
	// UnderPressure reports whether the last reading given to
	// RelievePressure passed the pressure threshold.
	UnderPressure bool
	// LiveMemory is the last live memory reading given to RelievePressure,
	// in bytes; 0 before the first.
	LiveMemory uint64
}

// Store holds recent entries in id order. It is safe for concurrent use.
// The zero value is not usable; call [New].
type Store struct {
	mu        sync.RWMutex
	encoding  sync.Mutex // serialises encodeRunLocked, under mu held for reading
	encoder   Encoder    // Config.Encoder given to New
	cfg       Config
	redact    []string                 // header names to redact; see redactList
	redactNow atomic.Pointer[[]string] // redact, for Redacts, which takes no lock
	entries   seq                      // held, oldest first, with their columns (see scan)
	hosts     symbols                  // the hosts of held entries, for the columns
	firstID   uint64                   // id of the oldest held entry
	nextID    uint64                   // id the next entry gets
	bytes     int64                    // sum of held items' size
	changed   chan struct{}            // closed and replaced whenever entries are appended
	stats     Stats                    // counters only; gauges are filled in by Stats

	pending    map[string]uint64 // request id → id of a held PENDING entry
	updates    []uint64          // ring of ids completed, indexed by update sequence
	updateNext uint64            // sequence of the next update

	views views // filtered views kept for List; see Query.Key

	// observers are called after evictions; replaced, never modified, so a
	// copy of the slice header can be used outside the lock.
	observers []*observer
}

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Encoder == nil {
		return nil, fmt.Errorf("%w: Encoder is required", ErrInvalidConfig)
	}
	first := cfg.FirstID
	if first == 0 {
		first = 1
	}
	s := &Store{
		encoder: cfg.Encoder,
		firstID: first,
		nextID:  first,
		changed: make(chan struct{}),
		pending: make(map[string]uint64),
		updates: make([]uint64, updateLog),
	}
	s.setConfigLocked(cfg)
	return s, nil
}

// SetConfig changes the limits of a running store. Lower limits evict at
// once; ingest rules apply to entries appended afterwards. FirstID and
// Encoder are ignored.
func (s *Store) SetConfig(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.setConfigLocked(cfg)
	ev := s.evictLocked()
	s.recordLocked(&ev)
	obs := s.observers
	s.mu.Unlock()
	notify(obs, ev)
	return nil
}

func (s *Store) setConfigLocked(cfg Config) {
	s.cfg = cfg
	list := redactList(cfg.RedactHeaders)
	s.redact = list
	s.redactNow.Store(&list) // a variable of its own: s.redact is rewritten under the lock
}

// Redacts reports whether the values of headers named name are redacted at
// ingest (see [Normalize]) under the current config. It takes no lock: a
// decoder may call it for every header it reads, and redact a value
// before the secret is ever copied into the entry's memory.
func (s *Store) Redacts(name string) bool {
	for _, n := range *s.redactNow.Load() {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// Stored is what [Store.Append] made of one entry.
type Stored struct {
	// ID is the entry's id.
	ID uint64
	// Entry is the entry as stored: normalised, the data of its bodies
	// moved out. It must not be modified.
	Entry *pxperfv1.Entry
	// Body is the data of its response body as stored (possibly
	// truncated); nil for none. It must not be modified.
	Body []byte
	// RequestBody is the data of its request body, as Body is of the
	// response body.
	RequestBody []byte
}

// Append normalises entries (see [Normalize]) and stores them, evicting the
// oldest entries beyond the limits. It returns what it stored, in order,
// for those (such as the archive) that keep entries too. The caller must
// have checked each entry with [Check] and must not touch the entries
// afterwards.
//
// An entry whose request_id is that of a PENDING entry still held completes
// it: the stored entry is replaced by the new one, merged as [complete]
// says, under the same id, and the change is recorded for
// [Store.ReadUpdates]. Any other entry gets the next id.
func (s *Store) Append(entries []*pxperfv1.Entry) []Stored {
	if len(entries) == 0 {
		return nil
	}
	s.mu.Lock()
	return s.appendLocked(entries, true)
}

// AppendAt stores entries as new entries with the ids first, first+1, …,
// as a follower of a replicated log does with the ids the log gives them.
// Unlike [Store.Append], it never takes an
// entry as the completion of a PENDING one: the log says which messages
// complete which entry (see [Store.Complete]).
//
// first must not be below the next id. When it is above, the ids between
// left the log before this store saw them: the store holds consecutive
// ids only, so every entry held is dropped (counted as evicted by count)
// and the store goes on from first.
func (s *Store) AppendAt(first uint64, entries []*pxperfv1.Entry) ([]Stored, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	if first < s.nextID {
		next := s.nextID
		s.mu.Unlock()
		return nil, fmt.Errorf("append at id %d: the store is at id %d already", first, next)
	}
	var ev evictions
	if first > s.nextID {
		for s.lenLocked() > 0 {
			ev.add(ReasonCount, s.dropOldestLocked())
		}
		s.firstID, s.nextID = first, first
	}
	s.recordLocked(&ev)
	obs := s.observers
	stored := s.appendLocked(entries, false)
	notify(obs, ev)
	return stored, nil
}

// Complete replaces the held PENDING entry id with e, merged with it as
// completions by request id are (see [Store.Append]). It reports false,
// and keeps nothing, when the store does not hold id or the entry held is
// not PENDING. The caller must have checked e with [Check] and must not
// touch it afterwards.
func (s *Store) Complete(id uint64, e *pxperfv1.Entry) (Stored, bool) {
	s.mu.Lock()
	if !s.heldLocked(id) || s.itemLocked(id).entry.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
		s.mu.Unlock()
		return Stored{}, false
	}
	it := s.completeLocked(id, e)
	s.changedLocked()
	return it.stored(), true
}

// Normalize applies the ingest rules of the store's config to entries, as
// Append does (see the package function [Normalize]).
func (s *Store) Normalize(entries ...*pxperfv1.Entry) {
	s.mu.RLock()
	maxBody, redact := s.cfg.MaxBodySize, s.redact
	s.mu.RUnlock()
	for _, e := range entries {
		Normalize(e, maxBody, redact)
	}
}

// PendingID returns the id of the PENDING entry held with requestID, which
// a later entry with the same request id completes.
func (s *Store) PendingID(requestID string) (uint64, bool) {
	if requestID == "" {
		return 0, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.pending[requestID]
	return id, ok
}

// appendLocked stores entries, each as a new entry with the next id or,
// when completions is set, as the completion of the PENDING entry with its
// request id; then it evicts beyond the limits and tells observers and
// waiters. It is called with s.mu held, and releases it.
func (s *Store) appendLocked(entries []*pxperfv1.Entry, completions bool) []Stored {
	stored := make([]Stored, len(entries))
	for i, e := range entries {
		if id, ok := s.pending[e.GetRequestId()]; completions && e.GetRequestId() != "" && ok {
			it := s.completeLocked(id, e)
			stored[i] = it.stored()
			continue
		}
		e.Id = s.nextID
		s.nextID++
		it := s.itemFor(e)
		s.entries.push(it, s.colForLocked(e))
		s.bytes += it.size
		s.stats.Accepted++
		s.trackPendingLocked(e)
		stored[i] = it.stored()
	}
	s.changedLocked()
	return stored
}

// changedLocked ends a change of the entries held: it evicts beyond the
// limits, wakes the readers waiting on Changed, releases s.mu (held by the
// caller), and tells the observers of the evictions.
func (s *Store) changedLocked() {
	ev := s.evictLocked()
	s.recordLocked(&ev)
	obs := s.observers
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	notify(obs, ev)
}

// stored is what Append returns for it.
func (it *item) stored() Stored {
	return Stored{ID: it.entry.GetId(), Entry: it.entry, Body: it.bodies.response, RequestBody: it.bodies.request}
}

// itemFor normalises e and makes its item, moving the data of its bodies
// out of the message.
func (s *Store) itemFor(e *pxperfv1.Entry) item {
	s.stats.TruncatedBodies += uint64(Normalize(e, s.cfg.MaxBodySize, s.redact))
	it := item{entry: e, bodies: bodies{response: moveData(e.ResponseBody), request: moveData(e.RequestBody)}}
	// A body counts by its capacity: that is what it holds. A decoded
	// body's allocation is rounded up to a size class, or to whole pages
	// above 32 KiB (a 33 KiB body takes 40). Normalize has copied a short
	// slice of a much larger buffer.
	it.size = Size(e) + int64(cap(it.bodies.response)+cap(it.bodies.request))
	return it
}

// moveData takes the data out of b, one of an entry's bodies (nil for
// none), for the store to hold beside the entry.
func moveData(b *pxperfv1.Body) []byte {
	if b == nil {
		return nil
	}
	data := b.Data
	b.Data = nil
	return data
}

func (s *Store) trackPendingLocked(e *pxperfv1.Entry) {
	if e.GetRequestId() != "" && e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING {
		s.pending[e.GetRequestId()] = e.GetId()
	}
}

// completeLocked replaces the held PENDING entry id by e, merged with it,
// and returns the new item.
func (s *Store) completeLocked(id uint64, e *pxperfv1.Entry) item {
	old := s.itemLocked(id)
	delete(s.pending, e.GetRequestId())
	complete(old, e)
	it := s.itemFor(e)
	s.bytes += it.size - old.size
	*old = it
	s.wireLocked(id).reset(true) // readers keep what they were given
	// The completion may change the host and the status. Intern the new
	// host before releasing the old, so that an unchanged host keeps its
	// symbol.
	c := s.colLocked(id)
	oldHost := c.host
	*c = s.colForLocked(e)
	s.hosts.release(oldHost)
	s.stats.Completed++
	s.updates[s.updateNext%uint64(len(s.updates))] = id
	s.updateNext++
	s.trackPendingLocked(e) // still PENDING: a later entry may complete it
	return it
}

// complete prepares e to replace oldItem, the item of a PENDING entry with
// the same request id: e takes its id, and keeps its status code, request
// headers, timings and bodies (their data too) where e has none, so that
// an error never overwrites a status already recorded. What holds strings
// is copied, not shared: the service decodes all of an entry's strings
// into one buffer, which a shared header would keep alive, unaccounted,
// after the old entry is gone.
func complete(oldItem *item, e *pxperfv1.Entry) {
	old := oldItem.entry
	e.Id = old.GetId()
	if e.StatusCode == 0 {
		e.StatusCode = old.GetStatusCode()
	}
	if len(e.RequestHeaders) == 0 && len(old.GetRequestHeaders()) > 0 {
		e.RequestHeaders = make([]*pxperfv1.Header, len(old.GetRequestHeaders()))
		for i, h := range old.GetRequestHeaders() {
			e.RequestHeaders[i] = &pxperfv1.Header{Name: strings.Clone(h.GetName()), Value: strings.Clone(h.GetValue())}
		}
	}
	if e.Timings == nil {
		e.Timings = old.GetTimings()
	}
	e.ResponseBody = keepBody(e.ResponseBody, old.GetResponseBody(), oldItem.bodies.response)
	e.RequestBody = keepBody(e.RequestBody, old.GetRequestBody(), oldItem.bodies.request)
}

// Completed returns completion as it completes pending, a PENDING entry
// with the same request id, where both are as published (the data of
// their bodies in the messages): completion, with pending's id, and what
// it lacks taken from pending, as [Store.Append] completes entries. It
// takes both over. Readers of a log of entries and completions (cluster
// mode's) merge them with it.
func Completed(pending, completion *pxperfv1.Entry) *pxperfv1.Entry {
	it := item{entry: pending, bodies: bodies{response: moveData(pending.ResponseBody), request: moveData(pending.RequestBody)}}
	complete(&it, completion)
	return completion
}

// keepBody returns b, one of the bodies of an entry that completes
// another, given data, the data of the same body of the entry completed,
// when it brings none; or, when b is nil, a copy of old, that body, with
// data. Normalize then judges the body with its data as it does any other.
func keepBody(b, old *pxperfv1.Body, data []byte) *pxperfv1.Body {
	if b == nil {
		if old == nil {
			return nil
		}
		b = proto.CloneOf(old) // its data is nil: held apart, in the item
		b.ContentType = strings.Clone(b.ContentType)
	}
	if b.Data == nil {
		b.Data = data
	}
	return b
}

// evictLocked drops the oldest entries until both limits hold, and returns
// what it dropped for each reason.
func (s *Store) evictLocked() evictions {
	var ev evictions
	for s.lenLocked() > 0 {
		var r Reason
		switch {
		case s.lenLocked() > s.cfg.MaxEntries:
			r = ReasonCount
		case s.bytes > s.cfg.MaxMemoryBytes:
			r = ReasonBytes
		default:
			return ev
		}
		ev.add(r, s.dropOldestLocked())
	}
	return ev
}

// dropOldestLocked evicts the oldest entry, which must exist, and returns
// its accounted size. The caller counts it.
func (s *Store) dropOldestLocked() int64 {
	it, c := s.entries.pop()
	e := it.entry
	if id, ok := s.pending[e.GetRequestId()]; ok && id == e.GetId() {
		delete(s.pending, e.GetRequestId())
	}
	s.bytes -= it.size
	s.hosts.release(c.host)
	s.firstID++
	return it.size
}

func (s *Store) lenLocked() int { return s.entries.len() }

// itemLocked returns the item with id, which must be held.
func (s *Store) itemLocked(id uint64) *item {
	return s.entries.item(int(id - s.firstID))
}

// colLocked returns the column of the entry with id, which must be held.
func (s *Store) colLocked(id uint64) *col {
	return s.entries.col(int(id - s.firstID))
}

func (s *Store) heldLocked(id uint64) bool {
	return id >= s.firstID && id < s.nextID
}

// Entry returns the entry with id, without the data of its bodies. The
// entry must not be modified.
func (s *Store) Entry(id uint64) (*pxperfv1.Entry, error) {
	it, err := s.item(id)
	return it.entry, err
}

// EntryWithBody returns a copy of the entry with id that carries the data
// of its bodies, response and request; the entry itself when it has
// neither.
func (s *Store) EntryWithBody(id uint64) (*pxperfv1.Entry, error) {
	it, err := s.item(id)
	if err != nil {
		return nil, err
	}
	return withBodies(it.entry, it.bodies), nil
}

// WithBody returns a copy of e, an entry the store handed out, carrying
// the data of its bodies, response and request; or e itself, when e has
// neither body or the store no longer holds e: evicted, or replaced by its
// completion, which a reader is given as an update of its own. So a reader
// that counted e's size when it read e (see [Limit.Bodies]) sends what it
// counted.
func (s *Store) WithBody(e *pxperfv1.Entry) *pxperfv1.Entry {
	if e.GetResponseBody() == nil && e.GetRequestBody() == nil {
		return e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id := e.GetId(); !s.heldLocked(id) || s.itemLocked(id).entry != e {
		return e
	}
	return withBodies(e, s.itemLocked(e.GetId()).bodies)
}

// item returns a copy of the item with id.
func (s *Store) item(id uint64) (item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.heldLocked(id) {
		return item{}, s.notHeldLocked(id)
	}
	return *s.itemLocked(id), nil
}

func (s *Store) notHeldLocked(id uint64) error {
	if id >= s.nextID {
		return fmt.Errorf("%w: id %d (newest is %d)", ErrNotFound, id, s.nextID-1)
	}
	return fmt.Errorf("%w: id %d was evicted (oldest held is %d)", ErrNotFound, id, s.firstID)
}

// Bounds returns the oldest id held and the id the next entry will get. The
// store is empty when oldest == next.
func (s *Store) Bounds() (oldest, next uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.firstID, s.nextID
}

// Changed returns a channel that is closed when entries are next appended.
// Take it before reading, so that nothing appended after the read is missed.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// Stats returns the store's counters and gauges.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.stats
	st.Entries = s.lenLocked()
	st.Bytes = s.bytes
	st.BudgetBytes = s.cfg.MaxMemoryBytes
	st.MaxEntries = s.cfg.MaxEntries
	if st.Entries > 0 {
		st.OldestID = s.firstID
	}
	st.NewestID = s.nextID - 1
	return st
}

// notify calls each observer for each eviction that dropped something. It
// must be called without the lock held.
func notify(obs []*observer, ev evictions) {
	for _, e := range ev {
		if e.Count == 0 {
			continue
		}
		for _, o := range obs {
			o.fn(e)
		}
	}
}
