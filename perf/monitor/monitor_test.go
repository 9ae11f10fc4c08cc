package monitor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeSource returns the samples queued with add in order, then repeats
// the last.
type fakeSource struct {
	mu      sync.Mutex
	samples []Sample
	err     error
	calls   int
}

func (f *fakeSource) add(s ...Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.samples = append(f.samples, s...)
}

func (f *fakeSource) Sample(ctx context.Context) (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return Sample{}, f.err
	}
	if len(f.samples) == 0 {
		return idle(), nil
	}
	s := f.samples[0]
	if len(f.samples) > 1 {
		f.samples = f.samples[1:]
	}
	return s, nil
}

// fakeActions records the actions called and fails those in errs.
type fakeActions struct {
	mu    sync.Mutex
	calls []Action
	errs  map[Action]error
}

func (f *fakeActions) do(a Action) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, a)
	if err := f.errs[a]; err != nil {
		return Result{Summary: "half done"}, err
	}
	return Result{Summary: a.String() + ": 10 → 4", EntriesEvicted: 6}, nil
}

func (f *fakeActions) called() []Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Action(nil), f.calls...)
}

func (f *fakeActions) Evict(context.Context) (Result, error)         { return f.do(Evict) }
func (f *fakeActions) Rotate(context.Context) (Result, error)        { return f.do(Rotate) }
func (f *fakeActions) Reclaim(context.Context) (Result, error)       { return f.do(Reclaim) }
func (f *fakeActions) SlowThrottles(context.Context) (Result, error) { return f.do(SlowThrottles) }
func (f *fakeActions) ReleaseMemory(context.Context) (Result, error) { return f.do(ReleaseMemory) }

// logBuffer is a log destination safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type rig struct {
	m    *Monitor
	src  *fakeSource
	act  *fakeActions
	logs *logBuffer
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{src: &fakeSource{}, act: &fakeActions{}, logs: &logBuffer{}}
	m, err := New(cfg, r.src, r.act, slog.New(slog.NewTextHandler(r.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	return r
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func actionsOf(rs []Result) []Action {
	var out []Action
	for _, r := range rs {
		out = append(out, r.Action)
	}
	return out
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		src   Source
		act   Actions
		field string // empty: valid
	}{
		{"defaults", DefaultConfig(), &fakeSource{}, &fakeActions{}, ""},
		{"zero config", Config{}, &fakeSource{}, &fakeActions{}, ""},
		{"no source", Config{}, nil, &fakeActions{}, "Source"},
		{"no actions", Config{}, &fakeSource{}, nil, "Actions"},
		{"negative interval", Config{Interval: -time.Second}, &fakeSource{}, &fakeActions{}, "Interval"},
		{"negative queue", Config{WatchQueue: -1}, &fakeSource{}, &fakeActions{}, "WatchQueue"},
		{"bad threshold", Config{Thresholds: Thresholds{MemoryShare: 80}}, &fakeSource{}, &fakeActions{}, "MemoryShare"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cfg, tt.src, tt.act, nil)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				got := m.Config()
				if got.Interval != 60*time.Second || got.WatchQueue != 64 || got.Now == nil || got.Thresholds.MemoryShare != 0.8 {
					t.Errorf("config %+v lacks its defaults", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New: %v, want an error naming %s", err, tt.field)
			}
			if m != nil && m.SetConfig(tt.cfg) == nil {
				t.Errorf("SetConfig accepted what New refused")
			}
		})
	}
}

func TestTickAutoOptimize(t *testing.T) {
	tests := []struct {
		name string
		auto bool
		s    Sample
		want []Action
	}{
		{"healthy idle", true, idle(), nil},
		{"memory pressure: the store evicts by itself", true, with(func(s *Sample) { s.Memory.UnderPressure = true }), nil},
		{"rotation due", true, with(func(s *Sample) { s.Logs.RotationDue = true }), []Action{Rotate}},
		{"idle resources", true, with(func(s *Sample) { s.Cleanup.Idle = 3 }), []Action{Reclaim}},
		{"CPU load", true, with(func(s *Sample) { s.Process.CPUPercent = 190; s.Throttle.Subscribers = 2 }), []Action{SlowThrottles}},
		{"free heap", true, with(func(s *Sample) { s.Process.HeapFree = 300 * mib }), []Action{ReleaseMemory}},
		{"off", false, with(func(s *Sample) { s.Memory.UnderPressure = true; s.Logs.RotationDue = true; s.Cleanup.Idle = 3 }), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.AutoOptimize = tt.auto
			r := newRig(t, cfg)
			r.src.add(tt.s)
			snap, err := r.m.Tick(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, r.act.called()); diff != "" {
				t.Errorf("actions called (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, actionsOf(snap.Actions)); diff != "" {
				t.Errorf("snapshot's actions (-want +got):\n%s", diff)
			}
			logs := r.logs.String()
			for _, a := range tt.want {
				if line := "summary=\"" + a.String() + ": 10 → 4\""; !strings.Contains(logs, line) {
					t.Errorf("logs lack %s; logs:\n%s", line, logs)
				}
			}
			if len(tt.want) == 0 && strings.Contains(logs, "optimised") {
				t.Errorf("logs show an optimisation with none called for:\n%s", logs)
			}
		})
	}
}

// A tick scores and evaluates alerts against the previous sample, and
// fills a missing time from the clock.
func TestTickSequence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	r := newRig(t, cfg)
	ctx := testContext(t)
	if _, ok := r.m.Latest(); ok {
		t.Error("Latest before the first tick reports a snapshot")
	}
	high := memoryAt(0.9)
	high.Time = time.Time{}
	r.src.add(at(0, idle()), high, at(2, memoryAt(0.9)), at(3, idle()))
	var fired []string
	for i := range 4 {
		snap, err := r.m.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var active []string
		for _, e := range snap.Active {
			active = append(active, e.Name)
		}
		fired = append(fired, strings.Join(active, ","))
		if latest, ok := r.m.Latest(); !ok || !latest.Sample.Time.Equal(snap.Sample.Time) {
			t.Errorf("tick %d: Latest = %v, %v; want the tick's snapshot", i, latest.Sample.Time, ok)
		}
		if i == 1 && !snap.Sample.Time.Equal(t0.Add(time.Hour)) {
			t.Errorf("sample time %v, want the clock's %v", snap.Sample.Time, t0.Add(time.Hour))
		}
	}
	if diff := cmp.Diff([]string{"", "memory_high", "memory_high", ""}, fired); diff != "" {
		t.Errorf("active alerts per tick (-want +got):\n%s", diff)
	}
	logs := r.logs.String()
	if n := strings.Count(logs, "alert started"); n != 1 {
		t.Errorf("%d alert started lines, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "alert cleared"); n != 1 {
		t.Errorf("%d alert cleared lines, want 1:\n%s", n, logs)
	}
}

// A failed sample changes nothing and is returned.
func TestTickSampleError(t *testing.T) {
	r := newRig(t, DefaultConfig())
	ctx := testContext(t)
	if _, err := r.m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := r.m.Latest()
	boom := errors.New("boom")
	r.src.err = boom
	if _, err := r.m.Tick(ctx); !errors.Is(err, boom) {
		t.Errorf("Tick = %v, want %v", err, boom)
	}
	after, _ := r.m.Latest()
	if !after.Sample.Time.Equal(before.Sample.Time) {
		t.Errorf("Latest changed after a failed sample")
	}
}

func TestOptimize(t *testing.T) {
	boom := errors.New("disk full")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		actions   []Action
		errs      map[Action]error
		wantCalls []Action
		wantErrs  map[Action]error
	}{
		{name: "all when none given", wantCalls: AllActions()},
		{name: "the ones given, in order", actions: []Action{ReleaseMemory, Rotate}, wantCalls: []Action{ReleaseMemory, Rotate}},
		{
			name: "a failure does not stop the rest", errs: map[Action]error{Rotate: boom},
			wantCalls: AllActions(), wantErrs: map[Action]error{Rotate: boom},
		},
		{
			name: "ended context runs nothing", ctx: cancelled, actions: []Action{Evict, Reclaim},
			wantErrs: map[Action]error{Evict: context.Canceled, Reclaim: context.Canceled},
		},
		{name: "unknown action", actions: []Action{Action(42)}, wantErrs: map[Action]error{Action(42): errUnknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, DefaultConfig())
			r.act.errs = tt.errs
			ctx := tt.ctx
			if ctx == nil {
				ctx = testContext(t)
			}
			results := r.m.Optimize(ctx, tt.actions...)
			if diff := cmp.Diff(tt.wantCalls, r.act.called()); diff != "" {
				t.Errorf("actions called (-want +got):\n%s", diff)
			}
			want := tt.actions
			if len(want) == 0 {
				want = AllActions()
			}
			if diff := cmp.Diff(want, actionsOf(results)); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			for _, res := range results {
				wantErr := tt.wantErrs[res.Action]
				switch {
				case wantErr == errUnknown && res.Err != nil:
				case !errors.Is(res.Err, wantErr) || (wantErr == nil) != (res.Err == nil):
					t.Errorf("%v: Err = %v, want %v", res.Action, res.Err, wantErr)
				}
				if res.Err != nil && res.Summary != "" {
					t.Errorf("%v: failed with summary %q, want none", res.Action, res.Summary)
				}
				if res.Err == nil && !strings.Contains(r.logs.String(), res.Summary) {
					t.Errorf("%v: summary %q not logged", res.Action, res.Summary)
				}
			}
		})
	}
}

// errUnknown stands for "some error" in TestOptimize.
var errUnknown = errors.New("any error")

// next reads the next update or fails the test.
func next(t *testing.T, ctx context.Context, w *Watcher) Update {
	t.Helper()
	u, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return u
}

// describe names an update for comparisons: "+name"/"-name" for events,
// "notice:v", "snapshot:minute".
func describe(u Update) string {
	switch {
	case u.Event != nil && u.Event.Firing:
		return "+" + u.Event.Name
	case u.Event != nil:
		return "-" + u.Event.Name
	case u.Snapshot != nil:
		return "snapshot:" + u.Snapshot.Sample.Time.Sub(t0).String()
	}
	return "notice:" + u.Notice.(string)
}

// A slow watcher gets every event and notice in order, then only the
// latest snapshot.
func TestWatcherLatestSnapshotEveryEvent(t *testing.T) {
	r := newRig(t, DefaultConfig())
	ctx := testContext(t)
	r.src.add(
		at(0, idle()),
		at(1, memoryAt(0.9)),
		at(2, with(func(s *Sample) { restAt(s, 0.9); s.Throttle.StuckSubscribers = 1 })),
		at(3, with(func(s *Sample) { s.Throttle.StuckSubscribers = 1 })),
		at(4, idle()),
	)
	if _, err := r.m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	w := r.m.Watch()
	defer w.Close()
	if got := describe(next(t, ctx, w)); got != "snapshot:0s" {
		t.Fatalf("first update %s, want the latest snapshot", got)
	}
	for i := 1; i < 5; i++ {
		if _, err := r.m.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			r.m.Notify("config changed")
		}
	}
	var got []string
	for range 6 {
		got = append(got, describe(next(t, ctx, w)))
	}
	want := []string{"+memory_high", "+stuck_subscribers", "notice:config changed", "-memory_high", "-stuck_subscribers", "snapshot:4m0s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
	// Nothing more is waiting.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if u, err := w.Next(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with nothing new = %s, %v; want context.Canceled", describe(u), err)
	}
	// A fresh watcher starts from the latest snapshot, whose active list
	// is the alert state.
	w2 := r.m.Watch()
	defer w2.Close()
	if got := describe(next(t, ctx, w2)); got != "snapshot:4m0s" {
		t.Errorf("new watcher's first update %s, want snapshot:4m0s", got)
	}
}

// A watcher that falls more than WatchQueue events behind is dropped; the
// monitor and the other watchers go on.
func TestWatcherOverflow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WatchQueue = 2
	r := newRig(t, cfg)
	ctx := testContext(t)
	slow, fast := r.m.Watch(), r.m.Watch()
	defer slow.Close()
	defer fast.Close()
	r.src.add(at(0, memoryAt(0.9)), at(1, idle()), at(2, memoryAt(0.9)))
	var got []string
	for range 3 {
		if _, err := r.m.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		for {
			u := next(t, ctx, fast)
			got = append(got, describe(u))
			if u.Snapshot != nil {
				break
			}
		}
	}
	want := []string{"+memory_high", "snapshot:0s", "-memory_high", "snapshot:1m0s", "+memory_high", "snapshot:2m0s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fast watcher's updates (-want +got):\n%s", diff)
	}
	if _, err := slow.Next(ctx); !errors.Is(err, ErrSlowWatcher) {
		t.Errorf("slow watcher's Next = %v, want ErrSlowWatcher", err)
	}
	r.m.mu.Lock()
	n := len(r.m.watchers)
	r.m.mu.Unlock()
	if n != 1 {
		t.Errorf("%d watchers registered, want 1 (the slow one dropped)", n)
	}
}

func TestWatcherClose(t *testing.T) {
	r := newRig(t, DefaultConfig())
	ctx := testContext(t)
	w := r.m.Watch()
	w.Close()
	w.Close()
	if _, err := r.m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	r.m.Notify("ignored")
	if _, err := w.Next(ctx); !errors.Is(err, ErrWatcherClosed) {
		t.Errorf("Next after Close = %v, want ErrWatcherClosed", err)
	}
}

// A Next blocked waiting wakes when a tick publishes.
func TestWatcherWakes(t *testing.T) {
	r := newRig(t, DefaultConfig())
	ctx := testContext(t)
	w := r.m.Watch()
	defer w.Close()
	got := make(chan string)
	go func() {
		u, err := w.Next(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- describe(u)
	}()
	r.src.add(at(3, idle()))
	if _, err := r.m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "snapshot:3m0s" {
		t.Errorf("woken Next = %s, want snapshot:3m0s", g)
	}
}

// fakeTicker is a ticker the test drives.
type fakeTicker struct {
	c      chan time.Time
	resets chan time.Duration
}

func (f *fakeTicker) C() <-chan time.Time   { return f.c }
func (f *fakeTicker) Reset(d time.Duration) { f.resets <- d }
func (f *fakeTicker) Stop()                 {}

// Run ticks at once and at each tick of its ticker, restarts the ticker
// on a config change without ticking, and returns when ctx ends.
func TestRun(t *testing.T) {
	r := newRig(t, DefaultConfig())
	ft := &fakeTicker{c: make(chan time.Time), resets: make(chan time.Duration, 1)}
	started := make(chan time.Duration, 1)
	r.m.newTicker = func(d time.Duration) ticker { started <- d; return ft }
	ctx := testContext(t)
	w := r.m.Watch()
	defer w.Close()
	r.src.add(at(0, idle()), at(1, idle()), at(2, idle()))

	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- r.m.Run(runCtx) }()

	if d := <-started; d != 60*time.Second {
		t.Errorf("ticker started at %v, want 60s", d)
	}
	if got := describe(next(t, ctx, w)); got != "snapshot:0s" {
		t.Errorf("first update %s, want snapshot:0s (a tick at once)", got)
	}
	ft.c <- t0
	if got := describe(next(t, ctx, w)); got != "snapshot:1m0s" {
		t.Errorf("update after a tick %s, want snapshot:1m0s", got)
	}
	cfg := r.m.Config()
	cfg.Interval = 5 * time.Second
	if err := r.m.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if d := <-ft.resets; d != 5*time.Second {
		t.Errorf("ticker reset to %v, want 5s", d)
	}
	ft.c <- t0
	if got := describe(next(t, ctx, w)); got != "snapshot:2m0s" {
		t.Errorf("update after a tick %s, want snapshot:2m0s", got)
	}
	stop()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	r.src.mu.Lock()
	calls := r.src.calls
	r.src.mu.Unlock()
	if calls != 3 {
		t.Errorf("%d samples taken, want 3 (none for the config change)", calls)
	}
}
