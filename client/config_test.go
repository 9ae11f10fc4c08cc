package client

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
)

func TestSetConfigFieldParses(t *testing.T) {
	tests := []struct {
		path, value string
		want        *pxperfv1.Config
	}{
		{"memory.max_entries", "5000", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 5000}}},
		{"memory.high_water", "0.75", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{HighWater: 0.75}}},
		{"throttle.mode", "THROTTLE_MODE_FIXED", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{Mode: pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED}}},
		{"throttle.mode", "burst", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{Mode: pxperfv1.ThrottleMode_THROTTLE_MODE_BURST}}},
		{"throttle.priority_threshold", "High", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{PriorityThreshold: pxperfv1.Priority_PRIORITY_HIGH}}},
		{"throttle.batch_timeout", "250ms", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{BatchTimeout: durationpb.New(250 * time.Millisecond)}}},
		{"logs.max_age", "1h30m", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{MaxAge: durationpb.New(90 * time.Minute)}}},
		{"logs.compress", "false", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{}}},
		{"monitor.alerts_enabled", "true", &pxperfv1.Config{Monitor: &pxperfv1.MonitorConfig{AlertsEnabled: true}}},
		{"logs.directory", "/var/log/pxperf", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{Directory: "/var/log/pxperf"}}},
		{"logs.policies", "count, size", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{Policies: []pxperfv1.RotationPolicy{
			pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT, pxperfv1.RotationPolicy_ROTATION_POLICY_SIZE,
		}}}},
		{"memory.redact_headers", "X-Api-Key,X-Secret", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{RedactHeaders: []string{"X-Api-Key", "X-Secret"}}}},
		{"memory.redact_headers", "", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{}}},
	}
	for _, tt := range tests {
		t.Run(tt.path+"="+tt.value, func(t *testing.T) {
			got := &pxperfv1.Config{}
			if err := setConfigField(got, tt.path, tt.value); err != nil {
				t.Fatalf("setConfigField(%q, %q): %v", tt.path, tt.value, err)
			}
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("config (-got +want):\n%s", diff)
			}
		})
	}
}

func TestSetConfigFieldRefuses(t *testing.T) {
	tests := []struct {
		path, value string
		want        []string // substrings of the error
	}{
		{"", "1", []string{"empty path"}},
		{"memory.max_entrys", "1", []string{`"memory.max_entrys"`, `no field "max_entrys"`, "max_entries"}},
		{"memroy.max_entries", "1", []string{`"memroy.max_entries"`, "the config has no field", "memory"}},
		{"memory", "1", []string{`"memory"`, "group of fields", "memory.max_entries"}},
		{"memory.max_entries.x", "1", []string{`"memory.max_entries.x"`, "single field"}},
		{"memory.max_entries", "lots", []string{`"memory.max_entries"`, `"lots" is not an unsigned 32-bit integer`}},
		{"memory.max_entries", "-1", []string{"unsigned"}},
		{"memory.max_entries", "5000000000", []string{"out of range"}},
		{"memory.high_water", "high", []string{`"memory.high_water"`, "a number"}},
		{"throttle.mode", "fastest", []string{`"throttle.mode"`, "FIXED, ADAPTIVE, BURST"}},
		{"throttle.batch_timeout", "250", []string{`"throttle.batch_timeout"`, "a duration such as 250ms"}},
		{"logs.compress", "maybe", []string{`"logs.compress"`, "true or false"}},
		{"logs.policies", "count,sometimes", []string{`"logs.policies"`, "item 1", "COUNT, SIZE, TIME"}},
	}
	for _, tt := range tests {
		t.Run(tt.path+"="+tt.value, func(t *testing.T) {
			err := setConfigField(&pxperfv1.Config{}, tt.path, tt.value)
			if err == nil {
				t.Fatalf("setConfigField(%q, %q) = nil, want an error", tt.path, tt.value)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigFieldFormats(t *testing.T) {
	cfg := config.Default()
	cfg.Logs.Policies = []pxperfv1.RotationPolicy{pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT, pxperfv1.RotationPolicy_ROTATION_POLICY_TIME}
	tests := []struct{ path, want string }{
		{"memory.max_entries", "1000"},
		{"throttle.mode", "THROTTLE_MODE_ADAPTIVE"},
		{"throttle.batch_timeout", "100ms"},
		{"logs.policies", "ROTATION_POLICY_COUNT,ROTATION_POLICY_TIME"},
		{"logs.compress", "true"},
		{"memory.high_water", "0.8"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := configField(cfg, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("configField(%q) = %q, want %q", tt.path, got, tt.want)
			}
			// What is read back sets the same value.
			back := &pxperfv1.Config{}
			if err := setConfigField(back, tt.path, got); err != nil {
				t.Fatalf("setConfigField(%q, %q): %v", tt.path, got, err)
			}
			if again, _ := configField(back, tt.path); again != got {
				t.Errorf("round trip of %q gave %q", got, again)
			}
		})
	}
	if got, err := configField(cfg, "throttle"); err != nil || !strings.Contains(got, `"batch_size":`) {
		t.Errorf(`configField("throttle") = %q, %v; want the group as JSON`, got, err)
	}
}

func TestSetConfigFieldsOnServer(t *testing.T) {
	ts := startServer(t, nil, service.Options{})
	c := ts.client(t, Config{}, nil)
	ctx := testContext(t)

	cfg, err := c.SetConfigFields(ctx, map[string]string{
		"memory.max_entries":     "5000",
		"throttle.mode":          "fixed",
		"throttle.batch_timeout": "250ms",
	})
	if err != nil {
		t.Fatalf("SetConfigFields: %v", err)
	}
	if cfg.GetMemory().GetMaxEntries() != 5000 || cfg.GetThrottle().GetMode() != pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED ||
		cfg.GetThrottle().GetBatchTimeout().AsDuration() != 250*time.Millisecond {
		t.Errorf("effective config %v, want the three fields changed", cfg)
	}
	if got, err := c.ConfigField(ctx, "memory.max_entries"); err != nil || got != "5000" {
		t.Errorf("ConfigField = %q, %v; want 5000", got, err)
	}
	// Only the named fields changed.
	if cfg.GetThrottle().GetMaxUpdatesPerSecond() != 1000 {
		t.Errorf("throttle.max_updates_per_second = %d, want 1000 as before", cfg.GetThrottle().GetMaxUpdatesPerSecond())
	}

	tests := []struct {
		name, path, value string
		wantCode          codes.Code
	}{
		{"limit checked by the server", "memory.max_entries", "0", codes.InvalidArgument},
		{"not live", "logs.directory", "/elsewhere", codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.SetConfigField(ctx, tt.path, tt.value)
			if status.Code(err) != tt.wantCode {
				t.Errorf("SetConfigField(%q, %q) = %v, want code %v", tt.path, tt.value, err, tt.wantCode)
			}
		})
	}
	if _, err := c.SetConfigFields(ctx, nil); !errors.Is(err, ErrNoPaths) {
		t.Errorf("SetConfigFields(nil) = %v, want %v", err, ErrNoPaths)
	}
	if _, err := c.SetConfig(ctx, &pxperfv1.Config{}); !errors.Is(err, ErrNoPaths) {
		t.Errorf("SetConfig without paths = %v, want %v", err, ErrNoPaths)
	}
}
