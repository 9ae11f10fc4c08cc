package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config configures a [Monitor]. [DefaultConfig] returns pxperf's defaults.
type Config struct {
	// Interval is how often [Monitor.Run] samples, scores, alerts and
	// optimises (monitor.stats_update_interval). Default 60s; 0 means the
	// default; it must not be negative.
	Interval time.Duration
	// AutoOptimize is whether each tick runs the actions [Plan] calls for
	// (monitor.auto_optimize). The zero value is off; pxperf's default is
	// on.
	AutoOptimize bool
	// Thresholds say when alerts fire and when optimisation acts.
	Thresholds Thresholds
	// WatchQueue is the most alert events and notices a [Watcher] may hold
	// unread before it is dropped with [ErrSlowWatcher]. Default 64; 0
	// means the default; it must not be negative. Snapshots do not count:
	// a watcher holds only the latest.
	WatchQueue int
	// Now is the clock, used for a sample whose source left its Time zero.
	// nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns pxperf's defaults: every 60 s, optimising
// automatically, with [DefaultThresholds].
func DefaultConfig() Config {
	return Config{
		Interval:     60 * time.Second,
		AutoOptimize: true,
		Thresholds:   DefaultThresholds(),
		WatchQueue:   64,
	}
}

// withDefaults validates cfg and fills its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Interval < 0 {
		return Config{}, fmt.Errorf("monitor: Config.Interval is %v, want at least 0", cfg.Interval)
	}
	if cfg.WatchQueue < 0 {
		return Config{}, fmt.Errorf("monitor: Config.WatchQueue is %d, want at least 0", cfg.WatchQueue)
	}
	if err := cfg.Thresholds.Validate(); err != nil {
		return Config{}, err
	}
	d := DefaultConfig()
	if cfg.Interval == 0 {
		cfg.Interval = d.Interval
	}
	if cfg.WatchQueue == 0 {
		cfg.WatchQueue = d.WatchQueue
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Thresholds = cfg.Thresholds.withDefaults()
	return cfg, nil
}

// Source takes samples; the service implements it over its components.
// [Monitor] never calls it concurrently.
type Source interface {
	// Sample reads every part now.
	Sample(ctx context.Context) (Sample, error)
}

// Snapshot is the outcome of one tick.
type Snapshot struct {
	// Sample is what was read.
	Sample Sample
	// Score is its score.
	Score Score
	// Active are the alerts holding after this tick, as [Alerts.Active].
	Active []Event
	// Actions are what automatic optimisation did in this tick; empty
	// when it was off or nothing was called for.
	Actions []Result
}

// Monitor samples the server every interval, scores it, raises and clears
// alerts, optimises automatically, and publishes each outcome to
// watchers. It is safe for concurrent use. Ticks and optimisations are
// serialised: its Source and Actions are never called concurrently.
//
// Snapshots and events handed out are shared between callers and
// watchers: do not modify their slices.
type Monitor struct {
	src    Source
	act    Actions
	log    *slog.Logger
	resetc chan struct{} // 1-slot: the interval may have changed
	// newTicker makes Run's ticker; tests replace it on their instance.
	newTicker func(time.Duration) ticker

	runMu  sync.Mutex // serialises ticks and actions; guards prev and alerts
	prev   Sample     // the last sample; zero before the first
	alerts Alerts

	mu        sync.Mutex // guards what follows
	cfg       Config     // validated, defaults filled
	latest    Snapshot
	hasLatest bool
	watchers  map[*Watcher]struct{}
}

// New returns a monitor that samples src and optimises through act. cfg is
// validated (an error names the field) and its zero fields take their
// defaults. log may be nil to discard logs. Call [Monitor.Run] to tick on
// a schedule, or [Monitor.Tick] to tick now.
func New(cfg Config, src Source, act Actions, log *slog.Logger) (*Monitor, error) {
	if src == nil {
		return nil, errors.New("monitor: Source is nil")
	}
	if act == nil {
		return nil, errors.New("monitor: Actions is nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		src:       src,
		act:       act,
		log:       log,
		resetc:    make(chan struct{}, 1),
		newTicker: newTimeTicker,
		cfg:       cfg,
		watchers:  make(map[*Watcher]struct{}),
	}, nil
}

// Config returns the config in force, with defaults filled.
func (m *Monitor) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// SetConfig changes the config live: the next tick uses it, and a running
// [Monitor.Run] restarts its interval. cfg is validated as by [New]; on
// error nothing changes. A smaller WatchQueue applies to events queued
// afterwards.
func (m *Monitor) SetConfig(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.cfg = cfg
	m.mu.Unlock()
	select {
	case m.resetc <- struct{}{}:
	default: // a reset is already pending; it reads the config then
	}
	return nil
}

// Run ticks at once and then every Config.Interval until ctx ends, and
// returns ctx.Err(). A tick whose sample fails is logged and skipped. It
// starts no goroutine. Call it once.
func (m *Monitor) Run(ctx context.Context) error {
	t := m.newTicker(m.Config().Interval)
	defer t.Stop()
	tick := true
	for {
		if tick {
			if _, err := m.Tick(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("monitor tick skipped", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
			tick = true
		case <-m.resetc:
			t.Reset(m.Config().Interval)
			tick = false
		}
	}
}

// Tick samples, scores, evaluates alerts, runs the actions [Plan] calls
// for if Config.AutoOptimize is on, publishes the outcome to watchers, and
// returns it. If sampling fails nothing changes and the error is returned.
// Run calls it on schedule; tests and callers may call it directly.
func (m *Monitor) Tick(ctx context.Context) (Snapshot, error) {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	cfg := m.Config()
	cur, err := m.src.Sample(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("monitor: sample: %w", err)
	}
	if cur.Time.IsZero() {
		cur.Time = cfg.Now()
	}
	score := ScoreOf(m.prev, cur)
	events := m.alerts.Evaluate(m.prev, cur, score, cfg.Thresholds)
	for _, e := range events {
		if e.Firing {
			m.log.Warn("alert started", "alert", e.Name, "message", e.Message, "value", e.Value, "threshold", e.Threshold)
		} else {
			m.log.Info("alert cleared", "alert", e.Name, "message", e.Message, "value", e.Value, "threshold", e.Threshold)
		}
	}
	var results []Result
	if cfg.AutoOptimize {
		if plan := Plan(cur, cfg.Thresholds); len(plan) > 0 {
			results = m.runLocked(ctx, "auto", plan)
		}
	}
	m.prev = cur
	snap := Snapshot{Sample: cur, Score: score, Active: m.alerts.Active(), Actions: results}
	m.publish(snap, events)
	return snap, nil
}

// Optimize runs the given actions now, in order (all of [AllActions] when
// none is given), whatever the conditions, and returns what each did. An
// action that fails, or that ctx ended before, has Result.Err set; the
// others still run unless ctx ended. It waits for a tick in progress.
func (m *Monitor) Optimize(ctx context.Context, actions ...Action) []Result {
	if len(actions) == 0 {
		actions = AllActions()
	}
	m.runMu.Lock()
	defer m.runMu.Unlock()
	return m.runLocked(ctx, "manual", actions)
}

// runLocked runs actions and logs each result. The caller holds runMu.
func (m *Monitor) runLocked(ctx context.Context, trigger string, actions []Action) []Result {
	results := make([]Result, 0, len(actions))
	for _, a := range actions {
		var r Result
		var err error
		if err = ctx.Err(); err == nil {
			r, err = m.call(ctx, a)
		}
		r.Action, r.Err = a, err
		if err != nil {
			r.Summary = ""
			m.log.Warn("optimisation failed", "action", a.String(), "trigger", trigger, "err", err)
		} else {
			m.log.Info("optimised", "action", a.String(), "trigger", trigger, "summary", r.Summary)
		}
		results = append(results, r)
	}
	return results
}

// call runs one action.
func (m *Monitor) call(ctx context.Context, a Action) (Result, error) {
	switch a {
	case Evict:
		return m.act.Evict(ctx)
	case Rotate:
		return m.act.Rotate(ctx)
	case Reclaim:
		return m.act.Reclaim(ctx)
	case SlowThrottles:
		return m.act.SlowThrottles(ctx)
	case ReleaseMemory:
		return m.act.ReleaseMemory(ctx)
	}
	return Result{}, fmt.Errorf("monitor: unknown action %v", a)
}

// Latest returns the outcome of the last successful tick, and false before
// the first.
func (m *Monitor) Latest() (Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, m.hasLatest
}

// ticker is the part of [time.Ticker] Run uses.
type ticker interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

type timeTicker struct{ t *time.Ticker }

func newTimeTicker(d time.Duration) ticker { return timeTicker{time.NewTicker(d)} }
func (t timeTicker) C() <-chan time.Time   { return t.t.C }
func (t timeTicker) Reset(d time.Duration) { t.t.Reset(d) }
func (t timeTicker) Stop()                 { t.t.Stop() }
