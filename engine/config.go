package engine

import (
	"slices"
	"strings"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
)

// Update changes the effective config live: change gets the config in
// force and returns the one to apply, or an error, which Update returns as
// it is; paths are the fields the change names, for the config_changed
// event. Updates run one at a time, so that none is lost between read and
// write. The config change returns must be valid (see config.Validate),
// change no field that applies at start only (config.StartOnlyChanges) and
// drop no redaction (config.DroppedRedactions): change checks those, to
// say which field is wrong. Update checks what only the parts can before
// it changes anything, so that nothing is half-applied: the throttle
// settings (an error wrapping hub.ErrInvalidConfig) and the archive's
// limits. It returns the config it applied.
//
// In cluster mode a change to a group the nodes share (config.ClusterShared)
// is written to the cluster's shared config before it applies here, and
// every node applies it (see [Engine.applyShared]). It fails wrapping
// cluster.ErrUnavailable, changing nothing, when NATS does not take it.
func (e *Engine) Update(paths []string, change func(old *pxperfv1.Config) (*pxperfv1.Config, error)) (*pxperfv1.Config, error) {
	if e.cluster == nil || !touchesShared(paths) {
		return e.update(paths, change)
	}
	return e.updateShared(paths, change)
}

// update is Update on this node alone.
func (e *Engine) update(paths []string, change func(old *pxperfv1.Config) (*pxperfv1.Config, error)) (*pxperfv1.Config, error) {
	e.cfgMu.Lock()
	defer e.cfgMu.Unlock()
	old := e.Config()
	next, err := change(old)
	if err != nil {
		return nil, err
	}
	next = proto.CloneOf(next) // shares nothing with the caller's
	if err := e.apply(old, next); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.cfg = next
	observers := e.cfgObservers
	e.mu.Unlock()
	for _, fn := range observers {
		fn(next)
	}
	e.configChanged(paths, next)
	e.log.Info("config updated", "paths", strings.Join(paths, ","))
	return next, nil
}

// apply changes every part from old to next.
func (e *Engine) apply(old, next *pxperfv1.Config) error {
	hs := hubSettings(next.GetThrottle())
	if err := hs.Validate(); err != nil {
		return err
	}
	// The archive first: it may still refuse (a limit it cannot take), and
	// nothing must be half-applied.
	if e.archive != nil && !proto.Equal(old.GetLogs(), next.GetLogs()) {
		if err := e.archive.SetConfig(archiveConfig(next.GetLogs())); err != nil {
			return err
		}
	}
	// Validated above: the parts below are not expected to refuse.
	if err := e.store.SetConfig(storeConfig(next.GetMemory())); err != nil {
		return err
	}
	if err := e.applyCleanupConfig(next.GetCleanup()); err != nil {
		return err
	}
	if err := e.monitor.SetConfig(monitorConfig(next.GetMonitor())); err != nil {
		return err
	}
	if err := e.hub.SetSettings(hs); err != nil {
		return err
	}
	e.limits.setLimit(next.GetCleanup().GetProducerRateLimit())
	return nil
}

// OnConfigChange registers fn to be called with the new effective config
// after each change Update makes. fn must not modify it.
func (e *Engine) OnConfigChange(fn func(*pxperfv1.Config)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cfgObservers = append(slices.Clip(e.cfgObservers), fn)
}
