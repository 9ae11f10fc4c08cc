package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
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
