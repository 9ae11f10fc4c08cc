package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The defaults must satisfy the contract's own rules, or GetConfig would
// return a config that UpdateConfig refuses.
func TestDefaultIsValid(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(v, Default()); err != nil {
		t.Fatalf("Default() breaks a validation rule: %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Memory.LowWater = 0.9 // above high_water 0.8
	cfg.Throttle.MaxUpdatesPerSecond = 0
	cfg.Server.ReceiveWindowBytes = 1024 // below 64 KiB
	err = Validate(v, cfg)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"memory", "low_water must be below high_water", "throttle.max_updates_per_second", "server.receive_window_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// A heartbeat at or past the idle timeout would let the idle sweep end a
// quiet stream that heartbeats keep alive: refused.
func TestValidateHeartbeatBelowIdleTimeout(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		heartbeat, idle time.Duration
		ok              bool
	}{
		{5 * time.Second, time.Hour, true},
		{time.Hour - time.Millisecond, time.Hour, true},
		{time.Hour, time.Hour, false},
		{time.Hour, time.Minute, false},
	} {
		cfg := Default()
		cfg.Throttle.HeartbeatInterval = durationpb.New(tt.heartbeat)
		cfg.Cleanup.ResourceTimeout = durationpb.New(tt.idle)
		err := Validate(v, cfg)
		if tt.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "heartbeat_interval must be below cleanup.resource_timeout") {
			t.Errorf("heartbeat %v, idle timeout %v: Validate = %v; want ok %v, or an error naming both", tt.heartbeat, tt.idle, err, tt.ok)
		}
	}
}

// ApplyPath copies one field, or clears it when the source has it unset,
// and refuses paths that name no field; StartOnlyChanges and
// DroppedRedactions report what an update must not do, and
// ClusterSharedChanges what it changes for every node of a cluster.
func TestUpdatePaths(t *testing.T) {
	src := &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 7}, Server: &pxperfv1.ServerConfig{}, Throttle: &pxperfv1.ThrottleConfig{BatchSize: 3}}
	for _, tc := range []struct {
		path      string
		wantErr   string
		startOnly []string
		shared    []string // changed groups the nodes of a cluster share
	}{
		{path: "memory.max_entries"},
		{path: "memory.max_body_size"}, // unset in src: cleared
		{path: "server.listen_address", startOnly: []string{"server"}},
		{path: "throttle.batch_size", shared: []string{"throttle"}},
		{path: "memory.nope", wantErr: `MemoryConfig has no field "nope"`},
		{path: "memory.max_entries.x", wantErr: "max_entries is not a message"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			old := Default()
			next := proto.CloneOf(old)
			err := ApplyPath(next.ProtoReflect(), src.ProtoReflect(), tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ApplyPath = %v; want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := StartOnlyChanges(old, next); !slices.Equal(got, tc.startOnly) {
				t.Errorf("StartOnlyChanges = %v; want %v", got, tc.startOnly)
			}
			if got := ClusterSharedChanges(old, next); !slices.Equal(got, tc.shared) {
				t.Errorf("ClusterSharedChanges = %v; want %v", got, tc.shared)
			}
		})
	}
	next := Default()
	if err := ApplyPath(next.ProtoReflect(), src.ProtoReflect(), "memory.max_body_size"); err != nil || next.GetMemory().GetMaxBodySize() != 0 {
		t.Errorf("a field unset in the source: %v, max_body_size %d; want it cleared", err, next.GetMemory().GetMaxBodySize())
	}
	old := Default()
	old.Memory.RedactHeaders = []string{"X-Api-Key", "X-Session"}
	next = proto.CloneOf(old)
	next.Memory.RedactHeaders = []string{"x-api-key", "X-Other"}
	if got := DroppedRedactions(old, next); !slices.Equal(got, []string{"X-Session"}) {
		t.Errorf("DroppedRedactions = %v; want [X-Session] (names compare case-insensitively)", got)
	}
}
