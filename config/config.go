// Package config holds pxperf's configuration defaults. The configuration
// itself is the [pxperfv1.Config] message, so that the same type is read from
// flags, served by GetConfig and changed by UpdateConfig.
package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"buf.build/go/protovalidate"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultListenAddress is where the server listens unless told otherwise:
// loopback only.
const DefaultListenAddress = "127.0.0.1:50051"

// DefaultHTTPListenAddress is where the HTTP gateway listens unless told
// otherwise: loopback only, beside the gRPC port.
const DefaultHTTPListenAddress = "127.0.0.1:50080"

// Default returns a new config with every field at its documented default
// (see proto/pxperf/v1/config.proto). The defaults are those of the original
// px UI performance module unless a comment there says why not (the logs
// rotation and retention defaults).
func Default() *pxperfv1.Config {
	d := durationpb.New
	return &pxperfv1.Config{
		Memory: &pxperfv1.MemoryConfig{
			MaxEntries:      1000,
			MaxMemoryMb:     500,
			MaxBodySize:     10 << 10,
			CleanupInterval: d(60 * time.Second),
			HighWater:       0.8,
			LowWater:        0.7,
			OverheadMb:      32,
		},
		Logs: &pxperfv1.LogsConfig{
			Enabled:       true,
			Directory:     "pxperf-logs",
			Policies:      []pxperfv1.RotationPolicy{pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT, pxperfv1.RotationPolicy_ROTATION_POLICY_SIZE},
			MaxCount:      100_000,
			MaxSizeMb:     64,
			Interval:      d(24 * time.Hour),
			MaxFiles:      50,
			MaxAge:        d(24 * time.Hour),
			MaxTotalMb:    1024,
			Compress:      true,
			FlushInterval: d(time.Second),
			QueueSize:     65536,
		},
		Throttle: &pxperfv1.ThrottleConfig{
			Mode:                        pxperfv1.ThrottleMode_THROTTLE_MODE_ADAPTIVE,
			MaxUpdatesPerSecond:         30,
			MinUpdateInterval:           d(33 * time.Millisecond),
			BatchSize:                   10,
			BatchTimeout:                d(100 * time.Millisecond),
			MaxBatchSize:                10000,
			BurstThreshold:              100,
			BurstCooldown:               d(time.Second),
			AdaptiveGrowth:              1.2,
			AdaptiveShrink:              0.9,
			AdaptiveMinUpdatesPerSecond: 2,
			PriorityThreshold:           pxperfv1.Priority_PRIORITY_HIGH,
			HeartbeatInterval:           d(5 * time.Second),
			SendTimeout:                 d(30 * time.Second),
		},
		Cleanup: &pxperfv1.CleanupConfig{
			CleanupInterval: d(300 * time.Second),
			ResourceTimeout: d(time.Hour),
			MaxResources:    100,
		},
		Monitor: &pxperfv1.MonitorConfig{
			StatsUpdateInterval:          d(60 * time.Second),
			AlertsEnabled:                true,
			AutoOptimize:                 true,
			MemoryAlertThreshold:         0.8,
			ThrottledAlertThreshold:      0.7,
			CleanupFailureAlertThreshold: 0.2,
			MinScore:                     60,
		},
		Server: &pxperfv1.ServerConfig{
			ListenAddress:        DefaultListenAddress,
			MaxRecvMessageBytes:  16 << 20,
			MaxSendMessageBytes:  16 << 20,
			MaxConcurrentStreams: 1000,
			ShutdownTimeout:      d(5 * time.Second),
			ReceiveWindowBytes:   256 << 10,
			HttpListenAddress:    DefaultHTTPListenAddress,
		},
		Proxy: &pxperfv1.ProxyConfig{
			MaxConnections: 1000,
			IdleTimeout:    d(90 * time.Second),
		},
		Cluster: &pxperfv1.ClusterConfig{
			Stream:         "PXPERF",
			Subject:        "pxperf.entries",
			Replicas:       1,
			MaxAge:         d(0),
			PublishTimeout: d(5 * time.Second),
		},
	}
}

// ErrInvalid is wrapped by [Validate] errors.
var ErrInvalid = errors.New("invalid config")

// Validate checks cfg against the rules annotated in the contract (ranges,
// required groups, cross-field rules such as low_water < high_water). The
// error names every field that breaks a rule.
func Validate(v protovalidate.Validator, cfg *pxperfv1.Config) error {
	if err := v.Validate(cfg); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// startOnly are the config fields that apply at start only: a running
// server cannot change them (see [StartOnlyChanges]).
func startOnly() []string {
	return []string{
		"server",
		"proxy",
		"cluster",
		"logs.enabled",
		"logs.directory",
		"logs.queue_size",
	}
}

// ClusterShared are the config groups the nodes of a cluster share (see
// package cluster): a change made on any node applies on every node, and a
// node that starts takes them from the cluster. The other groups are each
// node's own: its memory, its archive, its listeners and its proxy.
func ClusterShared() []string {
	return []string{"throttle", "cleanup", "monitor"}
}

// ClusterSharedChanges returns the groups the nodes of a cluster share
// (see [ClusterShared]) whose value differs between a and b.
func ClusterSharedChanges(a, b *pxperfv1.Config) []string {
	return changedFields(a, b, ClusterShared())
}

// StartOnlyChanges returns the fields that apply at start only whose
// value differs between a and b.
func StartOnlyChanges(a, b *pxperfv1.Config) []string {
	return changedFields(a, b, startOnly())
}

// ApplyPath copies the field at path (such as "memory.max_entries", or "*"
// for everything) from src to dst; a field unset in src is cleared in dst.
// It fails for a path that names no field.
func ApplyPath(dst, src protoreflect.Message, path string) error {
	if path == "*" {
		proto.Reset(dst.Interface())
		proto.Merge(dst.Interface(), src.Interface())
		return nil
	}
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		fd := dst.Descriptor().Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			return fmt.Errorf("%q: %s has no field %q", path, dst.Descriptor().Name(), seg)
		}
		if i == len(segs)-1 {
			if src.Has(fd) {
				dst.Set(fd, src.Get(fd))
			} else {
				dst.Clear(fd)
			}
			return nil
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return fmt.Errorf("%q: %s is not a message, so it has no field %q", path, seg, segs[i+1])
		}
		dst = dst.Mutable(fd).Message()
		src = src.Get(fd).Message()
	}
	return nil
}

// changedFields returns those of paths whose value differs between a and
// b.
func changedFields(a, b *pxperfv1.Config, paths []string) []string {
	var changed []string
	for _, p := range paths {
		va, vb := valueAt(a.ProtoReflect(), p), valueAt(b.ProtoReflect(), p)
		var equal bool
		if m, ok := va.Interface().(protoreflect.Message); ok {
			equal = proto.Equal(m.Interface(), vb.Message().Interface())
		} else {
			equal = va.Equal(vb)
		}
		if !equal {
			changed = append(changed, p)
		}
	}
	return changed
}

// valueAt returns the value at a dotted path of singular fields, which must
// exist in m's type.
func valueAt(m protoreflect.Message, path string) protoreflect.Value {
	segs := strings.Split(path, ".")
	for _, seg := range segs[:len(segs)-1] {
		m = m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(seg))).Message()
	}
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(segs[len(segs)-1])))
}

// DroppedRedactions returns the header names redacted under a but not b:
// names an update must not remove, so that nobody can turn redaction off
// over RPC. Names compare case-insensitively, as redaction does.
func DroppedRedactions(a, b *pxperfv1.Config) []string {
	var dropped []string
	for _, h := range a.GetMemory().GetRedactHeaders() {
		if !slices.ContainsFunc(b.GetMemory().GetRedactHeaders(), func(x string) bool { return strings.EqualFold(x, h) }) {
			dropped = append(dropped, h)
		}
	}
	return dropped
}
