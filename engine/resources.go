package engine

import (
	"context"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/resources"
)

// resourceLimits are the registry limits for cfg: cleanup.max_resources
// for each kind of stream. Connections are bounded by keepalive (dead peers
// are dropped) and workers by the server itself.
func resourceLimits(cfg *pxperfv1.CleanupConfig) map[resources.Type]int {
	n := int(cfg.GetMaxResources())
	return map[resources.Type]int{resources.Subscriber: n, resources.Publisher: n}
}

func newRegistry(cfg *pxperfv1.CleanupConfig) (*resources.Registry, error) {
	return resources.New(resources.Config{
		Limits:      resourceLimits(cfg),
		IdleTimeout: cfg.GetResourceTimeout().AsDuration(),
		// A connection is idle when it has no stream open, which its bytes
		// cannot tell (a quiet stream moves none); keepalive drops dead
		// peers. Workers end with the server.
		IdleTypes: []resources.Type{resources.Subscriber, resources.Publisher},
	})
}

// applyCleanupConfig applies a live change of the cleanup group.
func (e *Engine) applyCleanupConfig(cfg *pxperfv1.CleanupConfig) error {
	if err := e.resources.SetLimits(resourceLimits(cfg)); err != nil {
		return err
	}
	return e.resources.SetIdleTimeout(cfg.GetResourceTimeout().AsDuration())
}

// cleanupLoop ends resources idle past cleanup.resource_timeout every
// cleanup.cleanup_interval (both live), until ctx ends.
func (e *Engine) cleanupLoop(ctx context.Context) {
	every := e.Config().GetCleanup().GetCleanupInterval().AsDuration()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := e.resources.Sweep(); n > 0 {
			e.log.Info("ended idle resources", "count", n, "resource_timeout", e.Config().GetCleanup().GetResourceTimeout().AsDuration())
		}
		if d := e.Config().GetCleanup().GetCleanupInterval().AsDuration(); d != every {
			every = d
			t.Reset(every)
		}
	}
}

// startWorker runs fn in a tracked background worker until ctx ends. A
// worker is listed by ListResources but ends only with the server.
func (e *Engine) startWorker(ctx context.Context, name string, fn func(context.Context)) {
	h, err := e.resources.Track(resources.Worker, name, nil)
	if err != nil { // not expected: workers have no limit
		e.log.Warn("cannot track worker", "worker", name, "err", err)
	}
	e.workers.Go(func() {
		if h != nil {
			defer h.Release()
		}
		fn(ctx)
	})
}

// resourceStats reports the registry for GetStats.
func (e *Engine) resourceStats() *pxperfv1.ResourceStats {
	st := e.resources.Stats()
	return &pxperfv1.ResourceStats{
		Live:              st.Live,
		CleanupsSucceeded: st.Succeeded,
		CleanupsFailed:    st.Failed,
		IdleClosed:        st.IdleClosed,
		Refused:           st.Refused,
		RateLimited:       e.limits.limited.Load(),
	}
}
