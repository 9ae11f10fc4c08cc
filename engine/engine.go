// Package engine assembles pxperf's parts from a config: the store, the
// archive, the subscription hub, the resource registry and the
// performance monitor. It runs their background workers, ingests entries
// into them, applies config changes to them live, and reports their stats.
//
// It knows nothing of gRPC: package service is its gRPC edge, which turns
// requests into calls here and errors into status codes.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/buildinfo"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/monitor"
	"github.com/pxperf/pxperf/perf/procstat"
	"github.com/pxperf/pxperf/perf/resources"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/wire"
	"github.com/pxperf/pxperf/proxy"
	"google.golang.org/protobuf/proto"
)

// Options are what an engine needs besides its config.
type Options struct {
	// Log receives the engine's logs; nil discards them.
	Log *slog.Logger
	// Validator checks entries and configs against the contract's rules;
	// nil makes one.
	Validator protovalidate.Validator
	// BatchBytes bounds the entries of one subscription message, bodies
	// included (see hub.Config). Required.
	BatchBytes int
}

// Engine is the server's domain: its parts and their workers. Create it
// with [New]; end it with [Engine.Stop], [Engine.Wait] and [Engine.Close].
// It is safe for concurrent use.
type Engine struct {
	log       *slog.Logger
	validator protovalidate.Validator
	entries   entryChecker // the fast path of entry validation
	start     time.Time
	build     buildinfo.Info
	proc      *procReader

	store       *store.Store
	archive     *archive.Archive  // nil when logs.enabled is off
	archiveFile *resources.Handle // the archive's open file; nil when off
	ingestMu    sync.Mutex        // entries reach the archive in id order
	hub         *hub.Hub
	resources   *resources.Registry
	monitor     *monitor.Monitor
	limits      producerLimits
	proxy       atomic.Pointer[proxy.Proxy] // the recording proxy; nil when off
	cluster     *clusterNode                // nil in embedded mode
	batches     batchLog                    // recent named batches, in embedded mode
	rejected    atomic.Uint64               // entries rejected at ingest

	cfgMu        sync.Mutex // serialises Update
	mu           sync.RWMutex
	cfg          *pxperfv1.Config // effective config; replaced, never modified
	cfgObservers []func(*pxperfv1.Config)

	stopWorkers context.CancelFunc // stops the background workers
	workers     sync.WaitGroup
	stopOnce    sync.Once
}

// New assembles an engine for cfg, which must be valid (see
// [config.Validate]), and starts its workers.
func New(cfg *pxperfv1.Config, opts Options) (*Engine, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := opts.Validator
	if v == nil {
		var err error
		if v, err = protovalidate.New(); err != nil {
			return nil, fmt.Errorf("create validator: %w", err)
		}
	}
	if err := config.Validate(v, cfg); err != nil {
		return nil, err
	}
	mr, err := procstat.NewReader()
	if err != nil {
		return nil, err
	}
	var arch *archive.Archive
	sc := storeConfig(cfg.GetMemory())
	if cfg.GetLogs().GetEnabled() {
		if arch, err = archive.Open(archiveConfig(cfg.GetLogs())); err != nil {
			return nil, fmt.Errorf("open the archive in %s: %w", cfg.GetLogs().GetDirectory(), err)
		}
		// Ids continue after the last one archived, and after every one
		// handed out before a crash (the archive's id lease).
		sc.FirstID = arch.NextID()
	}
	var cl *clusterNode
	if len(cfg.GetCluster().GetUrls()) > 0 {
		// The ids are the stream's: the store starts with the newest
		// entries that fit, and the archive writes from its own end on.
		l, from, err := openCluster(cfg, sc.FirstID, log)
		if err != nil {
			if arch != nil {
				arch.Close()
			}
			return nil, fmt.Errorf("cluster mode: %w", err)
		}
		cl = &clusterNode{log: l, archiveFrom: sc.FirstID}
		sc.FirstID = from
	}
	fail := func(what string, err error) (*Engine, error) {
		if arch != nil {
			arch.Close()
		}
		if cl != nil {
			cl.log.Close()
		}
		return nil, fmt.Errorf("create %s: %w", what, err)
	}
	st, err := store.New(sc)
	if err != nil {
		return fail("store", err)
	}
	reg, err := newRegistry(cfg.GetCleanup())
	if err != nil {
		return fail("the resource registry", err)
	}
	var ha hub.Archive // nil, not a nil *archive.Archive, when off
	switch {
	case cl != nil:
		ha = streamHistory{cl.log} // the whole history, not this node's part
	case arch != nil:
		ha = arch
	}
	hb, err := hub.New(hub.Config{
		Store:      st,
		Archive:    ha,
		BatchBytes: opts.BatchBytes,
		Settings:   hubSettings(cfg.GetThrottle()),
	})
	if err != nil {
		return fail("the subscription hub", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		log:         log,
		validator:   v,
		entries:     newEntryChecker(),
		start:       time.Now(),
		build:       buildinfo.Read(),
		proc:        &procReader{r: mr},
		store:       st,
		archive:     arch,
		hub:         hb,
		resources:   reg,
		cfg:         proto.CloneOf(cfg),
		cluster:     cl,
		stopWorkers: cancel,
	}
	if e.monitor, err = newMonitor(e, cfg.GetMonitor()); err != nil {
		cancel()
		return fail("the performance monitor", err)
	}
	e.trackArchive()
	e.limits.setLimit(cfg.GetCleanup().GetProducerRateLimit())
	if cl != nil {
		// After the archive's tracking, which the follower touches, and the
		// monitor's creation, which a shared config changes; before the
		// monitor runs, since its samples read the follower.
		err := e.follow(ctx, sc.FirstID)
		if err == nil {
			err = e.openShared(ctx)
		}
		if err != nil {
			e.Stop()
			e.Wait()
			return fail("cluster mode", err)
		}
	}
	e.startWorker(ctx, "performance monitor", func(ctx context.Context) {
		if err := e.monitor.Run(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("performance monitor stopped", "err", err)
		}
	})
	e.startWorker(ctx, "memory pressure watcher", e.watchPressure)
	e.startWorker(ctx, "load sampler", e.sampleLoop)
	e.startWorker(ctx, "resource cleaner", e.cleanupLoop)
	return e, nil
}

// Store returns the entries' store.
func (e *Engine) Store() *store.Store { return e.store }

// Archive returns the archive; nil when logs.enabled is off.
func (e *Engine) Archive() *archive.Archive { return e.archive }

// Hub returns the subscription hub.
func (e *Engine) Hub() *hub.Hub { return e.hub }

// Resources returns the registry of tracked resources.
func (e *Engine) Resources() *resources.Registry { return e.resources }

// Monitor returns the performance monitor.
func (e *Engine) Monitor() *monitor.Monitor { return e.monitor }

// SetProxy makes p, which publishes into the engine, part of its stats
// and its monitor's samples; nil when there is none.
func (e *Engine) SetProxy(p *proxy.Proxy) { e.proxy.Store(p) }

// Proxy returns the recording proxy set with [Engine.SetProxy], or nil.
func (e *Engine) Proxy() *proxy.Proxy { return e.proxy.Load() }

// Config returns the effective config, which must not be modified.
func (e *Engine) Config() *pxperfv1.Config {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.cfg
}

// Stop ends every subscription (with hub.ErrClosed) and stops the
// background workers. It does not wait: see [Engine.Wait].
func (e *Engine) Stop() {
	e.stopOnce.Do(func() {
		e.hub.Close()
		e.stopWorkers()
	})
}

// Wait waits for the workers and the hub's goroutines to end, once Stop
// was called and every subscription's Run has returned.
func (e *Engine) Wait() {
	e.hub.Wait()
	e.workers.Wait()
}

// Close ends whatever is still tracked (each cleanup counted, with reason
// as the cause), then writes out, fsyncs and closes the archive. Call it
// last, once nothing publishes.
func (e *Engine) Close(reason error) {
	e.resources.CloseAll(reason)
	e.closeArchive()
	if e.cluster != nil {
		e.cluster.log.Close()
	}
}

// procReader is a [procstat.Reader] safe for concurrent use.
type procReader struct {
	mu sync.Mutex
	r  *procstat.Reader
}

func (m *procReader) read() (procstat.Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r.Read()
}

// readAll is read with open files and threads, for the monitor.
func (m *procReader) readAll() (procstat.Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r.ReadAll()
}

func storeConfig(m *pxperfv1.MemoryConfig) store.Config {
	return store.Config{
		MaxEntries:     int(m.GetMaxEntries()),
		MaxMemoryBytes: int64(m.GetMaxMemoryMb()) << 20,
		MaxBodySize:    int(m.GetMaxBodySize()),
		RedactHeaders:  m.GetRedactHeaders(),
		PressureMargin: overhead(m),
		CheckInterval:  m.GetCleanupInterval().AsDuration(),
		Encoder:        wire.Encoder{},
	}
}

// Entry returns entry id whole, with its bodies: from memory, or read back
// once it has left memory from the archive, or in cluster mode from the
// cluster's stream. It fails wrapping
// store.ErrNotFound when neither has it.
func (e *Engine) Entry(ctx context.Context, id uint64) (*pxperfv1.Entry, error) {
	en, err := e.store.EntryWithBody(id)
	if !errors.Is(err, store.ErrNotFound) {
		return en, err
	}
	if e.cluster != nil {
		return e.clusterEntry(ctx, id)
	}
	if e.archive == nil {
		return nil, fmt.Errorf("%w; the archive is off, so entries that left memory cannot be read back", err)
	}
	en, aerr := e.archive.Entry(ctx, id)
	if errors.Is(aerr, archive.ErrNotFound) {
		return nil, fmt.Errorf("%w, and not in the archive either", err)
	}
	return en, aerr
}
