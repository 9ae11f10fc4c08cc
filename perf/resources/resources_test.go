package resources

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTest returns a registry configured by cfg on a fake clock at t0.
func newTest(t testing.TB, cfg Config) (*Registry, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: t0}
	cfg.Now = clock.Now
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return r, clock
}

// ender is an end func that counts its calls and records its reasons.
type ender struct {
	calls   atomic.Int32
	err     error // returned by end
	panics  bool  // end panics instead
	mu      sync.Mutex
	reasons []error
}

func (e *ender) end(reason error) error {
	e.calls.Add(1)
	e.mu.Lock()
	e.reasons = append(e.reasons, reason)
	e.mu.Unlock()
	if e.panics {
		panic("boom")
	}
	return e.err
}

func mustTrack(t testing.TB, r *Registry, typ Type, end func(error) error) *Handle {
	t.Helper()
	h, err := r.Track(typ, "owner", end)
	if err != nil {
		t.Fatalf("Track(%v) = %v", typ, err)
	}
	return h
}

func isDone(h *Handle) bool {
	select {
	case <-h.Done():
		return true
	default:
		return false
	}
}

// within runs f and fails the test if it has not returned within 10s,
// which would mean a deadlock.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlocked")
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" for no error
	}{
		{"zero", Config{}, ""},
		{"full", Config{Limits: map[Type]int{TypeUnspecified: 10, Subscriber: 5, File: 0}, IdleTimeout: time.Minute}, ""},
		{"negative limit", Config{Limits: map[Type]int{Publisher: -1}}, "Limits[publisher] must not be negative, got -1"},
		{"unknown type", Config{Limits: map[Type]int{Type(9): 1}}, "Limits has unknown type Type(9)"},
		{"negative timeout", Config{IdleTimeout: -time.Second}, "IdleTimeout must not be negative, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || r == nil {
					t.Fatalf("New = %v, %v; want a registry", r, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v; want ErrInvalidConfig saying %q", err, tt.wantErr)
			}
			// The live setters validate alike, and change nothing.
			good, _ := newTest(t, Config{})
			if tt.cfg.Limits != nil {
				err = good.SetLimits(tt.cfg.Limits)
			} else {
				err = good.SetIdleTimeout(tt.cfg.IdleTimeout)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("setter = %v; want ErrInvalidConfig saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{
		TypeUnspecified: "unspecified",
		Subscriber:      "subscriber",
		Publisher:       "publisher",
		Connection:      "connection",
		Worker:          "worker",
		File:            "file",
		Type(42):        "Type(42)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", int(typ), got, want)
		}
	}
}

func TestTrackIDs(t *testing.T) {
	r, _ := newTest(t, Config{})
	var got []string
	for _, typ := range []Type{Subscriber, Subscriber, Publisher, Connection, Worker, File} {
		got = append(got, mustTrack(t, r, typ, nil).ID())
	}
	if l := r.List(Subscriber); len(l) != 2 {
		t.Fatalf("List(Subscriber) has %d, want 2", len(l))
	}
	// Ids are never reused, even once their resource has ended.
	if _, err := r.Close("sub-1", nil); err != nil {
		t.Fatal(err)
	}
	got = append(got, mustTrack(t, r, Subscriber, nil).ID())
	want := []string{"sub-1", "sub-2", "pub-1", "conn-1", "worker-1", "file-1", "sub-3"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("ids (-got +want):\n%s", diff)
	}

	for _, typ := range []Type{TypeUnspecified, Type(6), Type(-1)} {
		if h, err := r.Track(typ, "x", nil); !errors.Is(err, ErrInvalidType) {
			t.Errorf("Track(%v) = %v, %v; want ErrInvalidType", typ, h, err)
		}
	}
}

// Whichever of Release, Close, Sweep and CloseAll comes first ends the
// resource; the others do nothing.
func TestEndOnce(t *testing.T) {
	errShutdown := errors.New("shutting down")
	errKicked := errors.New("kicked by admin")
	tests := []struct {
		name       string
		first      func(r *Registry, c *fakeClock, h *Handle) error
		wantReason error // nil: want a nil reason
		wantIdle   bool
	}{
		{"release", func(r *Registry, _ *fakeClock, h *Handle) error { return h.Release() }, nil, false},
		{"close", func(r *Registry, _ *fakeClock, h *Handle) error {
			_, err := r.Close(h.ID(), errKicked)
			return err
		}, errKicked, false},
		{"close without reason", func(r *Registry, _ *fakeClock, h *Handle) error {
			_, err := r.Close(h.ID(), nil)
			return err
		}, ErrCloseRequested, false},
		{"sweep", func(r *Registry, c *fakeClock, h *Handle) error {
			c.Advance(time.Hour)
			if n := r.Sweep(); n != 1 {
				return fmt.Errorf("Sweep = %d, want 1", n)
			}
			return nil
		}, ErrIdle, true},
		{"close all", func(r *Registry, _ *fakeClock, h *Handle) error {
			if n := r.CloseAll(errShutdown); n != 1 {
				return fmt.Errorf("CloseAll = %d, want 1", n)
			}
			return nil
		}, errShutdown, false},
		{"close all without reason", func(r *Registry, _ *fakeClock, h *Handle) error {
			r.CloseAll(nil)
			return nil
		}, ErrClosed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, clock := newTest(t, Config{IdleTimeout: time.Minute})
			var e ender
			h := mustTrack(t, r, Subscriber, e.end)
			if isDone(h) || h.Reason() != nil {
				t.Fatalf("live handle: done %v, reason %v", isDone(h), h.Reason())
			}
			if err := tt.first(r, clock, h); err != nil {
				t.Fatal(err)
			}
			// Every other way, again.
			clock.Advance(time.Hour)
			if err := h.Release(); err != nil {
				t.Errorf("later Release = %v, want nil", err)
			}
			if _, err := r.Close(h.ID(), errKicked); !errors.Is(err, ErrNotFound) {
				t.Errorf("later Close = %v, want ErrNotFound", err)
			}
			if n := r.Sweep(); n != 0 {
				t.Errorf("later Sweep = %d, want 0", n)
			}
			if n := r.CloseAll(errShutdown); n != 0 {
				t.Errorf("later CloseAll = %d, want 0", n)
			}

			if n := e.calls.Load(); n != 1 {
				t.Fatalf("end called %d times, want 1", n)
			}
			reason := e.reasons[0]
			if tt.wantReason == nil && reason != nil || tt.wantReason != nil && !errors.Is(reason, tt.wantReason) {
				t.Errorf("end's reason = %v, want %v", reason, tt.wantReason)
			}
			if got := h.Reason(); got != reason {
				t.Errorf("Reason() = %v, want %v", got, reason)
			}
			if !isDone(h) {
				t.Error("Done() not closed")
			}
			want := Stats{
				LiveByType: map[Type]uint64{Subscriber: 0, Publisher: 0, Connection: 0, Worker: 0, File: 0},
				Tracked:    1,
				Succeeded:  1,
			}
			if tt.wantIdle {
				want.IdleClosed = 1
			}
			if diff := cmp.Diff(r.Stats(), want); diff != "" {
				t.Errorf("Stats (-got +want):\n%s", diff)
			}
			if l := r.List(TypeUnspecified); len(l) != 0 {
				t.Errorf("List = %v, want empty", l)
			}
		})
	}
}

// Release, Close, Sweep and CloseAll racing on the same handles end each
// exactly once.
func TestEndRace(t *testing.T) {
	const rounds, handles = 100, 20
	for range rounds {
		r, clock := newTest(t, Config{IdleTimeout: time.Minute})
		enders := make([]ender, handles)
		hs := make([]*Handle, handles)
		for i := range hs {
			hs[i] = mustTrack(t, r, Type(1+i%5), enders[i].end)
		}
		clock.Advance(time.Hour) // all idle

		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			swept   atomic.Int64
			closed  atomic.Int64 // by Close and CloseAll
			release atomic.Int64 // Release calls that returned
		)
		for _, h := range hs {
			wg.Go(func() {
				<-start
				h.Touch(1, 1)
				if err := h.Release(); err != nil {
					t.Errorf("Release = %v", err)
				}
				release.Add(1)
			})
			wg.Go(func() {
				<-start
				if _, err := r.Close(h.ID(), errors.New("closed")); err == nil {
					closed.Add(1)
				} else if !errors.Is(err, ErrNotFound) {
					t.Errorf("Close = %v", err)
				}
			})
		}
		for range 4 {
			wg.Go(func() {
				<-start
				swept.Add(int64(r.Sweep()))
			})
			wg.Go(func() {
				<-start
				closed.Add(int64(r.CloseAll(errors.New("shutdown"))))
			})
			wg.Go(func() {
				<-start
				r.List(TypeUnspecified)
				r.Stats()
			})
		}
		close(start)
		wg.Wait()

		for i := range enders {
			if n := enders[i].calls.Load(); n != 1 {
				t.Fatalf("handle %d: end called %d times, want 1", i, n)
			}
		}
		s := r.Stats()
		if s.Succeeded != handles || s.Failed != 0 || s.Live != 0 || s.Leaked != 0 {
			t.Fatalf("Stats = %+v, want %d succeeded and none live", s, handles)
		}
		if s.IdleClosed != uint64(swept.Load()) {
			t.Errorf("IdleClosed = %d, want what Sweep returned, %d", s.IdleClosed, swept.Load())
		}
		if n := swept.Load() + closed.Load(); n > handles {
			t.Errorf("Sweep, Close and CloseAll ended %d, more than %d", n, handles)
		}
	}
}

func TestEndOutcome(t *testing.T) {
	errEnd := errors.New("close failed")
	tests := []struct {
		name    string
		end     func(e *ender) func(error) error
		wantErr error // nil for success
	}{
		{"nil end", func(*ender) func(error) error { return nil }, nil},
		{"success", func(e *ender) func(error) error { return e.end }, nil},
		{"error", func(e *ender) func(error) error { e.err = errEnd; return e.end }, errEnd},
		{"panic", func(e *ender) func(error) error { e.panics = true; return e.end }, ErrPanic},
	}
	for _, tt := range tests {
		for _, via := range []string{"release", "close"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				r, _ := newTest(t, Config{})
				var e ender
				h := mustTrack(t, r, Worker, tt.end(&e))
				var err error
				if via == "release" {
					err = h.Release()
				} else {
					var info Info
					info, err = r.Close(h.ID(), nil)
					if info.ID != h.ID() {
						t.Errorf("Close returned %+v, want %s", info, h.ID())
					}
				}
				switch {
				case tt.wantErr == nil && err != nil:
					t.Fatalf("%s = %v, want nil", via, err)
				case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
					t.Fatalf("%s = %v, want %v", via, err, tt.wantErr)
				case tt.wantErr == ErrPanic && !strings.Contains(err.Error(), "boom"):
					t.Errorf("%s = %v, want the panic value", via, err)
				}
				s := r.Stats()
				wantOK, wantFail := uint64(1), uint64(0)
				if tt.wantErr != nil {
					wantOK, wantFail = 0, 1
				}
				if s.Succeeded != wantOK || s.Failed != wantFail || s.Live != 0 {
					t.Errorf("Stats = %+v, want %d succeeded, %d failed, none live", s, wantOK, wantFail)
				}
			})
		}
	}
}

func TestLimits(t *testing.T) {
	r, _ := newTest(t, Config{Limits: map[Type]int{Subscriber: 100}})
	subs := make([]*Handle, 100)
	for i := range subs {
		subs[i] = mustTrack(t, r, Subscriber, nil)
	}
	h, err := r.Track(Subscriber, "one too many", nil)
	if !errors.Is(err, ErrLimit) || h != nil {
		t.Fatalf("101st Track = %v, %v; want ErrLimit", h, err)
	}
	if got, want := err.Error(), "subscriber limit of 100 reached"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	var le *LimitError
	if !errors.As(err, &le) || *le != (LimitError{Type: Subscriber, Limit: 100}) {
		t.Errorf("error = %#v, want a LimitError for 100 subscribers", err)
	}
	// Other types are not limited.
	mustTrack(t, r, Publisher, nil)
	mustTrack(t, r, Connection, nil)

	if err := subs[0].Release(); err != nil {
		t.Fatal(err)
	}
	mustTrack(t, r, Subscriber, nil)
	if _, err := r.Track(Subscriber, "again", nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("Track at the limit = %v, want ErrLimit", err)
	}
	s := r.Stats()
	if s.Refused != 2 || s.LiveByType[Subscriber] != 100 || s.Live != 102 {
		t.Errorf("Stats = %+v, want 2 refused, 100 subscribers, 102 live", s)
	}
}

func TestLimitAllTypes(t *testing.T) {
	r, _ := newTest(t, Config{Limits: map[Type]int{TypeUnspecified: 3, Connection: 1}})
	mustTrack(t, r, Connection, nil)
	if _, err := r.Track(Connection, "", nil); err == nil || err.Error() != "connection limit of 1 reached" {
		t.Errorf("2nd connection: %v, want the connection limit", err)
	}
	mustTrack(t, r, Subscriber, nil)
	mustTrack(t, r, Worker, nil)
	if _, err := r.Track(File, "", nil); !errors.Is(err, ErrLimit) || err.Error() != "resource limit of 3 reached" {
		t.Errorf("4th resource: %v, want the resource limit of 3", err)
	}
}

// Lowering a limit refuses new resources but ends none.
func TestSetLimits(t *testing.T) {
	r, _ := newTest(t, Config{})
	var e ender
	var hs []*Handle
	for range 5 {
		hs = append(hs, mustTrack(t, r, Subscriber, e.end))
	}
	if err := r.SetLimits(map[Type]int{Subscriber: 2}); err != nil {
		t.Fatal(err)
	}
	if n := e.calls.Load(); n != 0 || r.Stats().Live != 5 {
		t.Fatalf("lowering the limit ended %d; live %d, want 5", n, r.Stats().Live)
	}
	// Refused while 5, 4, 3 and 2 are live; not once only 1 is.
	for i, h := range hs[:4] {
		if _, err := r.Track(Subscriber, "", nil); !errors.Is(err, ErrLimit) {
			t.Fatalf("with %d live: Track = %v, want ErrLimit", 5-i, err)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	mustTrack(t, r, Subscriber, nil)
	if err := r.SetLimits(nil); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		mustTrack(t, r, Subscriber, nil)
	}
}

// The check and the increment are one step: racing Tracks never overshoot.
func TestLimitsConcurrent(t *testing.T) {
	const limit, workers, iterations = 10, 32, 200
	r, _ := newTest(t, Config{Limits: map[Type]int{Subscriber: limit}})
	var (
		wg       sync.WaitGroup
		holding  atomic.Int64
		most     atomic.Int64
		ok, fail atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for range iterations {
				h, err := r.Track(Subscriber, "", nil)
				if err != nil {
					if !errors.Is(err, ErrLimit) {
						t.Errorf("Track = %v", err)
					}
					fail.Add(1)
					continue
				}
				ok.Add(1)
				n := holding.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				if live := r.Stats().LiveByType[Subscriber]; live > limit {
					t.Errorf("%d subscribers live, over the limit of %d", live, limit)
				}
				runtime.Gosched() // hold it a while, so others meet the limit
				holding.Add(-1)
				if err := h.Release(); err != nil {
					t.Errorf("Release = %v", err)
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > limit {
		t.Errorf("%d held at once, over the limit of %d", m, limit)
	}
	s := r.Stats()
	if s.Refused != uint64(fail.Load()) || s.Tracked != uint64(ok.Load()) || s.Succeeded != s.Tracked || s.Live != 0 {
		t.Errorf("Stats = %+v; want %d refused, %d tracked and succeeded, none live", s, fail.Load(), ok.Load())
	}
}

func TestSweep(t *testing.T) {
	const timeout = time.Minute
	tests := []struct {
		name      string
		timeout   time.Duration
		idle      time.Duration // since creation
		touchedAt time.Duration // after creation; 0 = never touched
		wantEnded bool
	}{
		{"not yet", timeout, timeout - time.Nanosecond, 0, false},
		{"at the timeout", timeout, timeout, 0, true},
		{"long idle", timeout, time.Hour, 0, true},
		{"touched", timeout, timeout + time.Second, 2 * time.Second, false},
		{"touched long ago", timeout, 3 * timeout, time.Second, true},
		{"no timeout", 0, 1000 * time.Hour, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, clock := newTest(t, Config{IdleTimeout: tt.timeout})
			var e ender
			h := mustTrack(t, r, Subscriber, e.end)
			if tt.touchedAt > 0 {
				clock.Advance(tt.touchedAt)
				h.Touch(0, 0)
				clock.Advance(tt.idle - tt.touchedAt)
			} else {
				clock.Advance(tt.idle)
			}
			n := r.Sweep()
			if got := n == 1; got != tt.wantEnded {
				t.Fatalf("Sweep = %d; want ended %v", n, tt.wantEnded)
			}
			if !tt.wantEnded {
				if e.calls.Load() != 0 || r.Stats().IdleClosed != 0 {
					t.Errorf("end called %d times; IdleClosed %d", e.calls.Load(), r.Stats().IdleClosed)
				}
				return
			}
			reason := h.Reason()
			idle := tt.idle - tt.touchedAt
			want := fmt.Sprintf("idle timeout: sub-1 had no activity for %v (timeout %v)", idle, tt.timeout)
			if !errors.Is(reason, ErrIdle) || reason.Error() != want {
				t.Errorf("reason = %v, want %q", reason, want)
			}
			if s := r.Stats(); s.IdleClosed != 1 || s.Succeeded != 1 || s.Live != 0 {
				t.Errorf("Stats = %+v, want 1 idle-closed and succeeded, none live", s)
			}
		})
	}
}

func TestSetIdleTimeout(t *testing.T) {
	r, clock := newTest(t, Config{IdleTimeout: time.Hour})
	old := mustTrack(t, r, Connection, nil)
	clock.Advance(30 * time.Second)
	young := mustTrack(t, r, Connection, nil)
	clock.Advance(20 * time.Second)
	if n := r.Sweep(); n != 0 {
		t.Fatalf("Sweep with 1h timeout = %d, want 0", n)
	}
	if err := r.SetIdleTimeout(40 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := r.Sweep(); n != 1 || !isDone(old) || isDone(young) {
		t.Fatalf("Sweep with 40s timeout = %d (old done %v, young done %v); want old only", n, isDone(old), isDone(young))
	}
	if err := r.SetIdleTimeout(0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if n := r.Sweep(); n != 0 {
		t.Errorf("Sweep with no timeout = %d, want 0", n)
	}
}

func TestTouchAndInfo(t *testing.T) {
	r, clock := newTest(t, Config{})
	h, err := r.Track(Publisher, "10.0.0.7:5123", nil)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	h.Touch(100, 1)
	clock.Advance(time.Second)
	h.Touch(50, 2)
	h.Touch(0, 0)
	want := Info{
		ID:         "pub-1",
		Type:       Publisher,
		Owner:      "10.0.0.7:5123",
		Created:    t0,
		LastActive: t0.Add(2 * time.Second),
		Bytes:      150,
		Entries:    3,
	}
	if diff := cmp.Diff(h.Info(), want); diff != "" {
		t.Errorf("Info (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(r.List(Publisher), []Info{want}); diff != "" {
		t.Errorf("List (-got +want):\n%s", diff)
	}
	info, err := r.Close("pub-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(info, want); diff != "" {
		t.Errorf("Close's Info (-got +want):\n%s", diff)
	}
}

func TestTouchDoesNotAllocate(t *testing.T) {
	r, err := New(Config{}) // the real clock
	if err != nil {
		t.Fatal(err)
	}
	h := mustTrack(t, r, Subscriber, nil)
	if n := testing.AllocsPerRun(100, func() { h.Touch(10, 1) }); n != 0 {
		t.Errorf("Touch allocates %v times", n)
	}
}

func TestList(t *testing.T) {
	r, clock := newTest(t, Config{})
	for _, typ := range []Type{Subscriber, Connection, Subscriber, Worker, Subscriber} {
		mustTrack(t, r, typ, nil)
		clock.Advance(time.Second)
	}
	if _, err := r.Close("sub-2", nil); err != nil {
		t.Fatal(err)
	}
	ids := func(infos []Info) []string {
		var s []string
		for _, i := range infos {
			s = append(s, i.ID)
		}
		return s
	}
	tests := []struct {
		typ  Type
		want []string
	}{
		{TypeUnspecified, []string{"sub-1", "conn-1", "worker-1", "sub-3"}},
		{Subscriber, []string{"sub-1", "sub-3"}},
		{Worker, []string{"worker-1"}},
		{File, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(ids(r.List(tt.typ)), tt.want); diff != "" {
			t.Errorf("List(%v) (-got +want):\n%s", tt.typ, diff)
		}
	}
}

func TestCloseUnknown(t *testing.T) {
	r, _ := newTest(t, Config{})
	mustTrack(t, r, Subscriber, nil)
	for _, id := range []string{"", "sub-2", "conn-1", "nope"} {
		if _, err := r.Close(id, nil); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("%q", id)) {
			t.Errorf("Close(%q) = %v, want ErrNotFound naming the id", id, err)
		}
	}
}

func TestCloseAllRefusesNew(t *testing.T) {
	r, _ := newTest(t, Config{})
	mustTrack(t, r, Subscriber, nil)
	mustTrack(t, r, File, nil)
	if n := r.CloseAll(nil); n != 2 {
		t.Fatalf("CloseAll = %d, want 2", n)
	}
	if _, err := r.Track(Subscriber, "late", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Track after CloseAll = %v, want ErrClosed", err)
	}
	if s := r.Stats(); s.Refused != 0 || s.Live != 0 || s.Tracked != 2 {
		t.Errorf("Stats = %+v, want 2 tracked, none refused or live", s)
	}
}

// An end func may call back into its Handle and the registry: no lock is
// held while it runs. Done is closed before it runs.
func TestEndCallsBack(t *testing.T) {
	ways := map[string]func(r *Registry, h *Handle){
		"release":   func(_ *Registry, h *Handle) { h.Release() },
		"close":     func(r *Registry, h *Handle) { r.Close(h.ID(), nil) },
		"sweep":     func(r *Registry, _ *Handle) { r.Sweep() },
		"close all": func(r *Registry, _ *Handle) { r.CloseAll(nil) },
	}
	for name, end := range ways {
		t.Run(name, func(t *testing.T) {
			r, clock := newTest(t, Config{IdleTimeout: time.Second})
			var h *Handle
			var calls int
			h = mustTrack(t, r, Subscriber, func(error) error {
				calls++
				if !isDone(h) {
					t.Error("Done not closed when end runs")
				}
				if err := h.Release(); err != nil {
					t.Errorf("Release inside end = %v", err)
				}
				if _, err := r.Close(h.ID(), nil); !errors.Is(err, ErrNotFound) {
					t.Errorf("Close inside end = %v, want ErrNotFound", err)
				}
				r.Sweep()
				r.List(TypeUnspecified)
				r.Stats()
				r.SetLimits(map[Type]int{Subscriber: 5})
				r.Track(Worker, "spawned by end", nil)
				return nil
			})
			clock.Advance(time.Minute)
			within(t, func() { end(r, h) })
			if calls != 1 {
				t.Errorf("end called %d times, want 1", calls)
			}
		})
	}
}

// trackAndDrop tracks a resource and drops its Handle without releasing it.
//
//go:noinline
func trackAndDrop(t *testing.T, r *Registry, end func(error) error) string {
	h := mustTrack(t, r, Subscriber, end)
	h.Touch(1, 1)
	return h.ID()
}

// A Handle dropped unreleased is not kept alive by the registry: once
// collected, its entry goes and it counts as leaked.
func TestLeakedHandle(t *testing.T) {
	r, _ := newTest(t, Config{})
	var e ender
	kept := mustTrack(t, r, Subscriber, nil)
	id := trackAndDrop(t, r, e.end)

	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Leaked == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped Handle was not collected within 10s")
		}
		runtime.GC()
		runtime.Gosched()
	}
	s := r.Stats()
	if s.Leaked != 1 || s.Live != 1 || s.Succeeded != 0 || s.Failed != 0 {
		t.Errorf("Stats = %+v, want 1 leaked, 1 live, no ends", s)
	}
	if l := r.List(TypeUnspecified); len(l) != 1 || l[0].ID != kept.ID() {
		t.Errorf("List = %+v, want only %s", l, kept.ID())
	}
	if _, err := r.Close(id, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Close(%s) = %v, want ErrNotFound", id, err)
	}
	if n := e.calls.Load(); n != 0 {
		t.Errorf("a leaked resource's end ran %d times", n)
	}
	// A released Handle, once collected, is not counted.
	if err := kept.Release(); err != nil {
		t.Fatal(err)
	}
	kept = nil
	for range 3 {
		runtime.GC()
	}
	if s := r.Stats(); s.Leaked != 1 || s.Succeeded != 1 {
		t.Errorf("Stats = %+v, want still 1 leaked, 1 succeeded", s)
	}
}

func BenchmarkTouch(b *testing.B) {
	r, err := New(Config{}) // the real clock
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		h := mustTrack(b, r, Subscriber, nil)
		for b.Loop() {
			h.Touch(512, 1)
		}
	})
	b.Run("parallel", func(b *testing.B) { // one handle per goroutine, as in use
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			h := mustTrack(b, r, Subscriber, nil)
			for pb.Next() {
				h.Touch(512, 1)
			}
		})
	})
	b.Run("parallel-shared", func(b *testing.B) { // worst case: one contended handle
		b.ReportAllocs()
		h := mustTrack(b, r, Subscriber, nil)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Touch(512, 1)
			}
		})
	})
}

func BenchmarkTrackRelease(b *testing.B) {
	r, err := New(Config{Limits: map[Type]int{Subscriber: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	end := func(error) error { return nil }
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h, err := r.Track(Subscriber, "bench", end)
			if err != nil {
				b.Fatal(err)
			}
			h.Release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h, err := r.Track(Subscriber, "bench", end)
				if err != nil {
					b.Error(err)
					return
				}
				h.Release()
			}
		})
	})
}

// Entries fill whole cache lines (see entry).
func TestEntryPadded(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n%64 != 0 {
		t.Errorf("entry is %d bytes, not a multiple of 64", n)
	}
}

// Sweep ends only the types in IdleTypes; others are never idle.
func TestSweepIdleTypes(t *testing.T) {
	r, clock := newTest(t, Config{IdleTimeout: time.Minute, IdleTypes: []Type{Subscriber, Publisher}})
	var sub, conn, worker ender
	hs := mustTrack(t, r, Subscriber, sub.end)
	mustTrack(t, r, Connection, conn.end)
	mustTrack(t, r, Worker, worker.end)
	if n := r.Idle(); n != 0 {
		t.Errorf("Idle before the timeout = %d, want 0", n)
	}
	clock.Advance(time.Hour)
	if n := r.Idle(); n != 1 {
		t.Errorf("Idle = %d, want 1 (the subscriber only)", n)
	}
	if in, ok := r.Lookup(hs.ID()); !ok || in.Type != Subscriber {
		t.Errorf("Lookup(%s) = %v, %v; want the subscriber", hs.ID(), in, ok)
	}
	if n := r.Sweep(); n != 1 {
		t.Fatalf("Sweep = %d, want 1 (the subscriber only)", n)
	}
	if n := r.Idle(); n != 0 {
		t.Errorf("Idle after the sweep = %d, want 0", n)
	}
	if _, ok := r.Lookup(hs.ID()); ok {
		t.Errorf("Lookup(%s) found it after the sweep ended it", hs.ID())
	}
	if !errors.Is(hs.Reason(), ErrIdle) || conn.calls.Load() != 0 || worker.calls.Load() != 0 {
		t.Errorf("subscriber reason %v; connection ended %d times, worker %d; want only the subscriber ended",
			hs.Reason(), conn.calls.Load(), worker.calls.Load())
	}
	if _, err := New(Config{IdleTypes: []Type{TypeUnspecified}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with IdleTypes [unspecified] = %v, want ErrInvalidConfig", err)
	}
}
