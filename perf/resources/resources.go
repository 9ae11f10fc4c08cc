package resources

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"
)

// Type is the kind of a tracked resource.
type Type int

// The resource types.
const (
	// TypeUnspecified is no type: in [Registry.List] it means every type, as
	// a key of [Config.Limits] it caps all types together. Resources are
	// never of this type.
	TypeUnspecified Type = iota
	// Subscriber is a Subscribe stream.
	Subscriber
	// Publisher is a PublishStream stream.
	Publisher
	// Connection is a client connection.
	Connection
	// Worker is a background worker.
	Worker
	// File is an open archive file.
	File
)

// numTypes sizes the per-type arrays, indexed by Type; index 0
// (TypeUnspecified) holds the total over all types.
const numTypes = int(File) + 1

// String returns the type's name in lower case, as used in error messages.
func (t Type) String() string {
	switch t {
	case TypeUnspecified:
		return "unspecified"
	case Subscriber:
		return "subscriber"
	case Publisher:
		return "publisher"
	case Connection:
		return "connection"
	case Worker:
		return "worker"
	case File:
		return "file"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// prefix is what a resource id of the type starts with.
func (t Type) prefix() string {
	switch t {
	case Subscriber:
		return "sub"
	case Publisher:
		return "pub"
	case Connection:
		return "conn"
	case Worker:
		return "worker"
	case File:
		return "file"
	}
	return "res"
}

// valid reports whether a resource may be of type t.
func (t Type) valid() bool { return t > TypeUnspecified && int(t) < numTypes }

// Errors returned by the registry, and reasons it gives end funcs. Callers
// test them with [errors.Is].
var (
	// ErrInvalidConfig is wrapped by errors about a bad [Config] or a bad
	// argument to [Registry.SetLimits] or [Registry.SetIdleTimeout].
	ErrInvalidConfig = errors.New("invalid resource registry config")
	// ErrInvalidType is wrapped when [Registry.Track] is given a type that is
	// not one of the resource types.
	ErrInvalidType = errors.New("invalid resource type")
	// ErrLimit is wrapped, by a [*LimitError], when a type's limit is reached.
	ErrLimit = errors.New("resource limit reached")
	// ErrNotFound is wrapped when an id is unknown or its resource has
	// already been ended.
	ErrNotFound = errors.New("no such resource")
	// ErrIdle is wrapped by the reason [Registry.Sweep] gives a resource it
	// ends.
	ErrIdle = errors.New("idle timeout")
	// ErrClosed is wrapped when [Registry.Track] is called after
	// [Registry.CloseAll], and is the reason CloseAll gives when called with
	// none.
	ErrClosed = errors.New("resource registry closed")
	// ErrCloseRequested is the reason [Registry.Close] gives when called
	// with none.
	ErrCloseRequested = errors.New("resource closed on request")
	// ErrPanic is wrapped by the error that stands for a panic in an end
	// func.
	ErrPanic = errors.New("end func panicked")
)

// LimitError is returned by [Registry.Track] when a limit is reached. It
// wraps [ErrLimit].
type LimitError struct {
	// Type is the type whose limit was reached, or TypeUnspecified for the
	// limit on all types together.
	Type Type
	// Limit is the limit reached.
	Limit int
}

// Error says which limit was reached, e.g. "subscriber limit of 100 reached".
func (e *LimitError) Error() string {
	name := e.Type.String()
	if e.Type == TypeUnspecified {
		name = "resource"
	}
	return fmt.Sprintf("%s limit of %d reached", name, e.Limit)
}

// Unwrap returns [ErrLimit].
func (e *LimitError) Unwrap() error { return ErrLimit }

// Config configures a [Registry].
type Config struct {
	// Limits caps how many resources of a type may be tracked at once. A
	// type absent or mapped to 0 is not limited; the TypeUnspecified key,
	// if present, caps all types together. Values must not be negative.
	// Changed live by [Registry.SetLimits].
	Limits map[Type]int
	// IdleTimeout is how long a resource may go without activity (a
	// [Handle.Touch], or its creation) before [Registry.Sweep] ends it.
	// Zero means never. Not negative. Changed live by
	// [Registry.SetIdleTimeout].
	IdleTimeout time.Duration
	// IdleTypes are the types [Registry.Sweep] ends when idle; nil means
	// every type. A type left out is tracked and listed but never idle: one
	// whose activity the owner does not report (a background worker), or
	// whose idleness is judged elsewhere (a connection with a quiet stream
	// open is not idle, and its bytes cannot tell).
	IdleTypes []Type
	// Now is the clock; nil means time.Now. It is called on every
	// [Handle.Touch], from many goroutines, so it must be cheap and safe for
	// concurrent use. Only differences between its readings matter.
	Now func() time.Time
}

func (c Config) validate() error {
	if err := validateLimits(c.Limits); err != nil {
		return err
	}
	for _, t := range c.IdleTypes {
		if !t.valid() {
			return fmt.Errorf("%w: IdleTypes holds %v, not a resource type", ErrInvalidConfig, t)
		}
	}
	return validateIdleTimeout(c.IdleTimeout)
}

func validateLimits(limits map[Type]int) error {
	for _, t := range slices.Sorted(maps.Keys(limits)) {
		switch n := limits[t]; {
		case t != TypeUnspecified && !t.valid():
			return fmt.Errorf("%w: Limits has unknown type %v", ErrInvalidConfig, t)
		case n < 0:
			return fmt.Errorf("%w: Limits[%v] must not be negative, got %d", ErrInvalidConfig, t, n)
		}
	}
	return nil
}

func validateIdleTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: IdleTimeout must not be negative, got %v", ErrInvalidConfig, d)
	}
	return nil
}

// Info describes a tracked resource.
type Info struct {
	// ID identifies the resource for [Registry.Close]: its type's prefix
	// and a sequence number, e.g. "sub-17". Unique for the registry's life.
	ID string
	// Type is the resource's type.
	Type Type
	// Owner is who holds the resource, as given to [Registry.Track].
	Owner string
	// Created is when the resource was tracked.
	Created time.Time
	// LastActive is when it was last touched, or Created if never.
	LastActive time.Time
	// Bytes is the sum of the bytes given to [Handle.Touch].
	Bytes uint64
	// Entries is the sum of the entries given to [Handle.Touch].
	Entries uint64
}

// Stats counts a registry's resources. Counters other than Live and
// LiveByType only grow.
type Stats struct {
	// Live is how many resources are tracked now, including leaked ones
	// whose Handle the garbage collector has not yet freed.
	Live uint64
	// LiveByType is Live by type; it has a key for every resource type.
	LiveByType map[Type]uint64
	// Tracked is how many resources have ever been tracked.
	Tracked uint64
	// Succeeded is how many end funcs returned nil.
	Succeeded uint64
	// Failed is how many end funcs returned an error or panicked.
	Failed uint64
	// IdleClosed is how many resources [Registry.Sweep] ended. Each is also
	// counted in Succeeded or Failed.
	IdleClosed uint64
	// Refused is how many [Registry.Track] calls a limit refused.
	Refused uint64
	// Leaked is how many resources left the registry because their Handle
	// was garbage collected without being released. Their end funcs never
	// ran, and they are in neither Succeeded nor Failed.
	Leaked uint64
}

// Registry tracks live resources. It is safe for concurrent use. Create
// one with [New]; it needs no closing.
type Registry struct {
	now  func() time.Time
	base time.Time // clock reading at New; times are kept as offsets from it

	mu       sync.Mutex
	entries  map[string]*entry // live resources by id
	limits   [numTypes]int     // by type; [0] for all types; 0 = none
	live     [numTypes]int     // by type; [0] for all types
	seq      [numTypes]uint64  // last id number given, by type
	order    uint64            // last creation order given
	idle     time.Duration     // 0 = never
	idleType [numTypes]bool    // by type: whether Sweep ends it when idle
	closed   bool              // CloseAll was called

	tracked, succeeded, failed, idleClosed, refused, leaked atomic.Uint64
}

// New returns a registry configured by cfg, or an error wrapping
// [ErrInvalidConfig] that names the bad field.
func New(cfg Config) (*Registry, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	r := &Registry{
		now:     now,
		base:    now(),
		entries: make(map[string]*entry),
		idle:    cfg.IdleTimeout,
	}
	for t := range r.idleType {
		r.idleType[t] = cfg.IdleTypes == nil || slices.Contains(cfg.IdleTypes, Type(t))
	}
	r.setLimitsLocked(cfg.Limits)
	return r, nil
}

// SetLimits replaces [Config.Limits]. Lowering a limit below the number of
// resources tracked refuses new ones until enough have ended; it never ends
// any. It returns an error wrapping [ErrInvalidConfig], and changes
// nothing, if a limit is negative or a type unknown.
func (r *Registry) SetLimits(limits map[Type]int) error {
	if err := validateLimits(limits); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLimitsLocked(limits)
	return nil
}

func (r *Registry) setLimitsLocked(limits map[Type]int) {
	r.limits = [numTypes]int{}
	for t, n := range limits {
		r.limits[t] = n
	}
}

// SetIdleTimeout replaces [Config.IdleTimeout]; the next [Registry.Sweep]
// uses it. It returns an error wrapping [ErrInvalidConfig], and changes
// nothing, if d is negative.
func (r *Registry) SetIdleTimeout(d time.Duration) error {
	if err := validateIdleTimeout(d); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = d
	return nil
}

// Track registers a resource of type typ held by owner, and returns the
// Handle the owner keeps until it calls [Handle.Release].
//
// end ends the resource. The registry calls it at most once, with the
// reason the resource is ended: nil from [Handle.Release], non-nil from
// [Registry.Close], [Registry.Sweep] and [Registry.CloseAll]. Its result
// is counted in [Stats] as a success or a failure; a panic in it is
// recovered and counted as a failure. end is never called with the
// registry's lock held, so it may call the registry and the Handle; it
// should not block for long, as Sweep and CloseAll call end funcs one
// after another. A nil end ends nothing and counts as a success.
//
// If typ's limit, or the limit on all types, is reached, Track returns a
// [*LimitError] (wrapping [ErrLimit]) and counts a refusal. After
// [Registry.CloseAll] it returns an error wrapping [ErrClosed].
func (r *Registry) Track(typ Type, owner string, end func(reason error) error) (*Handle, error) {
	if !typ.valid() {
		return nil, fmt.Errorf("tracking %v: %w", typ, ErrInvalidType)
	}
	now := r.offset()
	e := &entry{entryFields: entryFields{r: r, typ: typ, owner: owner, created: now}}
	e.last.Store(now)
	h := &Handle{e: e, end: end, done: make(chan struct{})}
	e.handle = weak.Make(h)
	// Set up before h can be reached from the map, so that finish may
	// stop it. The argument is e, which reaches h only weakly: anything
	// that reached h strongly would keep it alive for ever.
	h.cleanup = runtime.AddCleanup(h, collected, e)

	r.mu.Lock()
	err := r.admitLocked(typ)
	if err == nil {
		r.seq[typ]++
		r.order++
		e.order = r.order
		e.id = typ.prefix() + "-" + strconv.FormatUint(r.seq[typ], 10)
		r.entries[e.id] = e
		r.live[typ]++
		r.live[TypeUnspecified]++
	}
	r.mu.Unlock()

	if err != nil {
		h.cleanup.Stop()
		e.state.Store(stateEnded)
		if errors.Is(err, ErrLimit) {
			r.refused.Add(1)
		}
		return nil, err
	}
	r.tracked.Add(1)
	return h, nil
}

// admitLocked returns why one more resource of type typ may not be
// tracked, if it may not.
func (r *Registry) admitLocked(typ Type) error {
	if r.closed {
		return fmt.Errorf("tracking %v: %w", typ, ErrClosed)
	}
	for _, t := range [...]Type{typ, TypeUnspecified} {
		if limit := r.limits[t]; limit > 0 && r.live[t] >= limit {
			return &LimitError{Type: t, Limit: limit}
		}
	}
	return nil
}

// Close ends the resource with the given id, giving its end func reason
// (or [ErrCloseRequested] if reason is nil), and returns its Info as it was
// when ended. It returns an error wrapping [ErrNotFound] if the id is
// unknown or the resource already ended, or is being ended by another
// call. If the end func fails, the resource is still gone: Close returns
// its Info and an error wrapping end's.
func (r *Registry) Close(id string, reason error) (Info, error) {
	if reason == nil {
		reason = ErrCloseRequested
	}
	r.mu.Lock()
	e := r.entries[id]
	r.mu.Unlock()
	if e == nil {
		return Info{}, notFound(id)
	}
	h := e.handle.Value()
	if h == nil {
		r.reap(e)
		return Info{}, notFound(id)
	}
	ok, err := h.finish(reason, false)
	if !ok {
		return Info{}, notFound(id)
	}
	info := e.info()
	if err != nil {
		return info, fmt.Errorf("ending resource %q: %w", id, err)
	}
	return info, nil
}

func notFound(id string) error {
	return fmt.Errorf("resource %q: %w", id, ErrNotFound)
}

// Sweep ends, oldest first, every resource whose last activity is at least
// [Config.IdleTimeout] old, giving its end func a reason that wraps
// [ErrIdle] and says how long it was idle. It returns how many it ended.
// With no idle timeout it does nothing.
//
// A resource touched while Sweep runs is spared if the Touch lands before
// Sweep gets to it, and ended anyway if after.
func (r *Registry) Sweep() int {
	now := r.offset()
	r.mu.Lock()
	timeout := r.idle
	stale := r.idleLocked(now)
	r.mu.Unlock()

	slices.SortFunc(stale, byOrder)
	n := 0
	for _, e := range stale {
		h := e.handle.Value()
		if h == nil {
			r.reap(e)
			continue
		}
		idle := time.Duration(now - e.last.Load())
		if idle < timeout {
			continue // touched since
		}
		reason := fmt.Errorf("%w: %s had no activity for %v (timeout %v)", ErrIdle, e.id, idle, timeout)
		if ok, _ := h.finish(reason, true); ok {
			n++
		}
	}
	return n
}

// CloseAll ends every tracked resource, oldest first, giving each end func
// reason (or [ErrClosed] if reason is nil), and returns how many it ended.
// From then on [Registry.Track] refuses new resources with [ErrClosed], so
// that none is left behind at shutdown.
func (r *Registry) CloseAll(reason error) int {
	if reason == nil {
		reason = ErrClosed
	}
	r.mu.Lock()
	r.closed = true
	all := slices.Collect(maps.Values(r.entries))
	r.mu.Unlock()

	slices.SortFunc(all, byOrder)
	n := 0
	for _, e := range all {
		h := e.handle.Value()
		if h == nil {
			r.reap(e)
			continue
		}
		if ok, _ := h.finish(reason, false); ok {
			n++
		}
	}
	return n
}

// idleLocked returns the entries Sweep would end at now (an offset): of
// the IdleTypes, idle at least IdleTimeout. The caller holds r.mu.
func (r *Registry) idleLocked(now int64) []*entry {
	if r.idle <= 0 {
		return nil
	}
	var stale []*entry
	for _, e := range r.entries {
		if r.idleType[e.typ] && now-e.last.Load() >= int64(r.idle) {
			stale = append(stale, e)
		}
	}
	return stale
}

// Idle counts the resources a [Registry.Sweep] now would end.
func (r *Registry) Idle() int {
	now := r.offset()
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.idleLocked(now))
}

// Lookup returns the resource with id, and false when none is tracked.
func (r *Registry) Lookup(id string) (Info, bool) {
	r.mu.Lock()
	e := r.entries[id]
	r.mu.Unlock()
	if e == nil {
		return Info{}, false
	}
	return e.info(), true
}

// List returns the resources of type typ, or of every type if typ is
// TypeUnspecified, oldest first.
func (r *Registry) List(typ Type) []Info {
	r.mu.Lock()
	es := make([]*entry, 0, len(r.entries))
	for _, e := range r.entries {
		if typ == TypeUnspecified || e.typ == typ {
			es = append(es, e)
		}
	}
	r.mu.Unlock()

	slices.SortFunc(es, byOrder)
	infos := make([]Info, len(es))
	for i, e := range es {
		infos[i] = e.info()
	}
	return infos
}

// Stats returns the registry's counts. Live and LiveByType are consistent
// with each other; the other counters are read one by one.
func (r *Registry) Stats() Stats {
	s := Stats{LiveByType: make(map[Type]uint64, numTypes-1)}
	r.mu.Lock()
	s.Live = uint64(r.live[TypeUnspecified])
	for t := TypeUnspecified + 1; int(t) < numTypes; t++ {
		s.LiveByType[t] = uint64(r.live[t])
	}
	r.mu.Unlock()
	s.Tracked = r.tracked.Load()
	s.Succeeded = r.succeeded.Load()
	s.Failed = r.failed.Load()
	s.IdleClosed = r.idleClosed.Load()
	s.Refused = r.refused.Load()
	s.Leaked = r.leaked.Load()
	return s
}

// offset returns the clock's reading as nanoseconds since r.base. With the
// real clock the difference is monotonic.
func (r *Registry) offset() int64 { return int64(r.now().Sub(r.base)) }

// at turns an offset back into a time.
func (r *Registry) at(off int64) time.Time {
	return r.base.Add(time.Duration(off)).Round(0)
}

// remove takes e out of the registry, if it is still there.
func (r *Registry) remove(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries[e.id] != e {
		return
	}
	delete(r.entries, e.id)
	r.live[e.typ]--
	r.live[TypeUnspecified]--
}

// reap removes e, whose Handle was garbage collected without being
// released, and counts it as leaked, unless it has already been ended or
// reaped.
func (r *Registry) reap(e *entry) {
	if !e.state.CompareAndSwap(stateLive, stateLeaked) {
		return
	}
	r.remove(e)
	r.leaked.Add(1)
}

// collected is the cleanup run when a Handle has been garbage collected.
// If the Handle was released, finish has already stopped it; if not, the
// resource leaked.
func collected(e *entry) { e.r.reap(e) }

// The states of an entry. Leaving stateLive is the commitment to end the
// resource (or to count it leaked): whoever swaps it out does so, once.
const (
	stateLive uint32 = iota
	stateEnded
	stateLeaked
)

// entry is the registry's record of a resource. It reaches the resource's
// Handle only weakly, and nothing of the owner's, so the registry keeps
// nothing alive that the owner has dropped.
//
// Its size is padded to a multiple of 64 bytes: the allocator then places
// it on cache-line boundaries, so that Touches of different resources from
// different goroutines do not contend for a line (measured: 70ns/op
// unpadded against 27ns/op padded, two goroutines touching their own).
type entry struct {
	entryFields
	_ [(64 - unsafe.Sizeof(entryFields{})%64) % 64]byte
}

type entryFields struct {
	// Written by Touch.
	last     atomic.Int64 // offset (see Registry.offset) of the last activity
	nbytes   atomic.Uint64
	nentries atomic.Uint64

	r       *Registry
	handle  weak.Pointer[Handle]
	id      string // set under r.mu before the entry is published
	typ     Type
	owner   string
	order   uint64 // creation order, for oldest-first listings
	created int64  // offset
	state   atomic.Uint32
}

func (e *entry) info() Info {
	return Info{
		ID:         e.id,
		Type:       e.typ,
		Owner:      e.owner,
		Created:    e.r.at(e.created),
		LastActive: e.r.at(e.last.Load()),
		Bytes:      e.nbytes.Load(),
		Entries:    e.nentries.Load(),
	}
}

func byOrder(a, b *entry) int {
	switch {
	case a.order < b.order:
		return -1
	case a.order > b.order:
		return 1
	}
	return 0
}
