package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConfigChanged is wrapped by [SharedConfig.Put] when the config changed
// since the revision given: read it again and retry.
var ErrConfigChanged = errors.New("the shared config changed meanwhile")

// configKey is the key of the shared config in its bucket.
const configKey = "config"

// SharedConfig is the config the nodes of a cluster share: one value in a
// NATS key-value bucket, named after the stream with "_CONFIG". What the
// value holds is the caller's.
type SharedConfig struct {
	kv jetstream.KeyValue
}

// SharedConfig returns the shared config, in the bucket [Open] made.
func (l *Log) SharedConfig() *SharedConfig { return &SharedConfig{kv: l.config} }

// Get returns the shared config and its revision; nil and 0 when there is
// none yet.
func (c *SharedConfig) Get(ctx context.Context) ([]byte, uint64, error) {
	e, err := c.kv.Get(ctx, configKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: read the shared config: %w", ErrUnavailable, err)
	}
	return e.Value(), e.Revision(), nil
}

// Put replaces the shared config of revision rev (0: there is none yet)
// with data, and returns the new revision. It fails wrapping
// [ErrConfigChanged] when rev is not the latest, and [ErrUnavailable] when
// NATS does not take it.
func (c *SharedConfig) Put(ctx context.Context, data []byte, rev uint64) (uint64, error) {
	next, err := c.kv.Update(ctx, configKey, data, rev)
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		return 0, fmt.Errorf("%w: %w", ErrConfigChanged, err)
	case err != nil:
		return 0, fmt.Errorf("%w: write the shared config: %w", ErrUnavailable, err)
	}
	return next, nil
}

// Watch calls fn with the shared config as it is (when there is one) and
// with each new value, in order, until ctx ends or the watch fails.
func (c *SharedConfig) Watch(ctx context.Context, fn func(data []byte, rev uint64)) error {
	w, err := c.kv.Watch(ctx, configKey)
	if err != nil {
		return fmt.Errorf("watch the shared config: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch the shared config: the watcher stopped")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // nil: the values as they were are all delivered
			}
			fn(e.Value(), e.Revision())
		}
	}
}

// PinBatch records roles, what each entry of the batch name is to the
// node that ingests it (see the engine), the first time name is seen
// within [DedupWindow], and returns the roles recorded: these, or those of
// an earlier attempt with as many entries. A retry of a batch that made its
// own PENDING entries known, or completed others, is then cut and named as
// its first attempt was, so that the stream keeps it once.
func (l *Log) PinBatch(ctx context.Context, name string, roles []int64) ([]int64, error) {
	key := base64.RawURLEncoding.EncodeToString([]byte(name))
	value := make([]string, len(roles))
	for i, r := range roles {
		value[i] = strconv.FormatInt(r, 10)
	}
	_, err := l.batches.Create(ctx, key, []byte(strings.Join(value, ",")))
	if err == nil {
		return roles, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("%w: record batch %q: %w", ErrUnavailable, name, err)
	}
	e, err := l.batches.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%w: read batch %q: %w", ErrUnavailable, name, err)
	}
	recorded := strings.Split(string(e.Value()), ",")
	if len(recorded) != len(roles) {
		return roles, nil // another batch under the same name, as in embedded mode
	}
	pinned := make([]int64, len(roles))
	for i, v := range recorded {
		if pinned[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("batch %q recorded as %q: %w", name, e.Value(), err)
		}
	}
	return pinned, nil
}
