package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestSetPath(t *testing.T) {
	tests := []struct {
		path, value string
		wantPath    string
		want        *pxperfv1.Config
	}{
		{"memory.max_entries", "5000", "memory.max_entries", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 5000}}},
		{"memory.maxEntries", " 7 ", "memory.max_entries", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 7}}},
		{"memory.high_water", "0.85", "memory.high_water", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{HighWater: 0.85}}},
		{"memory.redact_headers", "X-Api-Key, X-Secret", "memory.redact_headers",
			&pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{RedactHeaders: []string{"X-Api-Key", "X-Secret"}}}},
		{"memory.redact_headers", "", "memory.redact_headers", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{}}},
		{"monitor.alerts_enabled", "false", "monitor.alerts_enabled", &pxperfv1.Config{Monitor: &pxperfv1.MonitorConfig{}}},
		{"throttle.mode", "THROTTLE_MODE_FIXED", "throttle.mode", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{Mode: pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED}}},
		{"throttle.mode", "burst", "throttle.mode", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{Mode: pxperfv1.ThrottleMode_THROTTLE_MODE_BURST}}},
		{"throttle.batch_timeout", "250ms", "throttle.batch_timeout",
			&pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{BatchTimeout: durationpb.New(250 * time.Millisecond)}}},
		{"logs.policies", "count,ROTATION_POLICY_TIME", "logs.policies",
			&pxperfv1.Config{Logs: &pxperfv1.LogsConfig{Policies: []pxperfv1.RotationPolicy{pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT, pxperfv1.RotationPolicy_ROTATION_POLICY_TIME}}}},
		{"server.listen_address", "127.0.0.1:1", "server.listen_address", &pxperfv1.Config{Server: &pxperfv1.ServerConfig{ListenAddress: "127.0.0.1:1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.path+"="+tt.value, func(t *testing.T) {
			cfg := &pxperfv1.Config{}
			path, err := setPath(cfg.ProtoReflect(), tt.path, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if path != tt.wantPath {
				t.Errorf("path = %q, want %q", path, tt.wantPath)
			}
			if diff := cmp.Diff(cfg, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("config mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestSetPathErrors(t *testing.T) {
	tests := []struct {
		path, value string
		want        string
	}{
		{"memory.nope", "1", `memory has no field "nope"; it has max_entries`},
		{"nope", "1", `the config has no field "nope"`},
		{"memory", "1", "memory is a group"},
		{"memory.max_entries.x", "1", "memory.max_entries is a value"},
		{"memory.max_entries", "lots", `memory.max_entries: "lots" is not a whole number`},
		{"memory.max_entries", "-1", "not a whole number"},
		{"memory.max_entries", "4294967296", "below 2^32"},
		{"memory.high_water", "high", "not a number"},
		{"monitor.alerts_enabled", "maybe", "true or false"},
		{"throttle.mode", "fast", `"fast" is not a ThrottleMode; give one of THROTTLE_MODE_FIXED`},
		{"throttle.batch_timeout", "100", "not a duration"},
		{"logs.policies", "count,daily", `"daily" is not a RotationPolicy`},
	}
	for _, tt := range tests {
		t.Run(tt.path+"="+tt.value, func(t *testing.T) {
			_, err := setPath((&pxperfv1.Config{}).ProtoReflect(), tt.path, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("setPath(%q, %q) = %v, want an error containing %q", tt.path, tt.value, err, tt.want)
			}
		})
	}
}

// Every field of the default config, printed as config get prints it,
// reads back with config set's parser as the same value.
func TestConfigLinesRoundTrip(t *testing.T) {
	def := config.Default()
	m := def.ProtoReflect()
	fields := m.Descriptor().Fields()
	got := &pxperfv1.Config{}
	n := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		for _, line := range fieldLines(m, fd, string(fd.Name())) {
			path, value, ok := strings.Cut(line, " =")
			if !ok {
				t.Fatalf("line %q has no ' ='", line)
			}
			if _, err := setPath(got.ProtoReflect(), path, strings.TrimPrefix(value, " ")); err != nil {
				t.Errorf("line %q: %v", line, err)
			}
			n++
		}
	}
	if n < 40 {
		t.Errorf("only %d fields printed", n)
	}
	if diff := cmp.Diff(got, def, protocmp.Transform()); diff != "" {
		t.Errorf("round trip mismatch (-got +want):\n%s", diff)
	}
}
