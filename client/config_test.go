package client

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
)

func TestParseConfigField(t *testing.T) {
	tests := []struct {
		path, value string
		wantPath    string
		want        *pxperfv1.Config
	}{
		{"memory.max_entries", "5000", "memory.max_entries", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 5000}}},
		{"memory.maxEntries", " 7 ", "memory.max_entries", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 7}}},
		{"memory.high_water", "0.75", "memory.high_water", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{HighWater: 0.75}}},
		{"throttle.mode", "THROTTLE_MODE_FIXED", "throttle.mode", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{Mode: pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED}}},
		{"throttle.mode", "burst", "throttle.mode", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{Mode: pxperfv1.ThrottleMode_THROTTLE_MODE_BURST}}},
		{"throttle.priorityThreshold", "High", "throttle.priority_threshold", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{PriorityThreshold: pxperfv1.Priority_PRIORITY_HIGH}}},
		{"throttle.batch_timeout", "250ms", "throttle.batch_timeout", &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{BatchTimeout: durationpb.New(250 * time.Millisecond)}}},
		{"logs.max_age", "1h30m", "logs.max_age", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{MaxAge: durationpb.New(90 * time.Minute)}}},
		{"logs.compress", "false", "logs.compress", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{}}},
		{"monitor.alerts_enabled", "true", "monitor.alerts_enabled", &pxperfv1.Config{Monitor: &pxperfv1.MonitorConfig{AlertsEnabled: true}}},
		{"logs.directory", "/var/log/pxperf", "logs.directory", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{Directory: "/var/log/pxperf"}}},
		{"proxy.upstream", `""`, "proxy.upstream", &pxperfv1.Config{Proxy: &pxperfv1.ProxyConfig{}}},
		{"server.listen_address", "127.0.0.1:1", "server.listen_address", &pxperfv1.Config{Server: &pxperfv1.ServerConfig{ListenAddress: "127.0.0.1:1"}}},
		{"logs.policies", "count, ROTATION_POLICY_TIME", "logs.policies", &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{Policies: []pxperfv1.RotationPolicy{
			pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT, pxperfv1.RotationPolicy_ROTATION_POLICY_TIME,
		}}}},
		{"memory.redact_headers", "X-Api-Key, X-Secret", "memory.redact_headers", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{RedactHeaders: []string{"X-Api-Key", "X-Secret"}}}},
		{"memory.redact_headers", "", "memory.redact_headers", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{}}},
		{"memory.redact_headers", `""`, "memory.redact_headers", &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{}}},
	}
	for _, tt := range tests {
		t.Run(tt.path+"="+tt.value, func(t *testing.T) {
			got := &pxperfv1.Config{}
			path, err := ParseConfigField(got, tt.path, tt.value)
			if err != nil {
				t.Fatalf("ParseConfigField(%q, %q): %v", tt.path, tt.value, err)
			}
			if path != tt.wantPath {
				t.Errorf("ParseConfigField(%q, %q) = %q, want %q", tt.path, tt.value, path, tt.wantPath)
			}
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("config (-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseConfigFieldRefuses(t *testing.T) {
	tests := []struct {
		path, value string
		want        []string // substrings of the error
	}{
		{"", "1", []string{"empty path"}},
		{"memory.max_entrys", "1", []string{`"memory.max_entrys"`, `memory has no field "max_entrys"; it has max_entries`}},
		{"memroy.max_entries", "1", []string{`"memroy.max_entries"`, `the config has no field "memroy"`, "memory"}},
		{"memory..max_entries", "1", []string{`memory has no field ""`}},
		{"memory", "1", []string{`"memory"`, "group of fields", `"memory.max_entries"`}},
		{"memory.max_entries.x", "1", []string{`"memory.max_entries.x"`, "memory.max_entries is a single field"}},
		{"memory.max_entries", "lots", []string{`"memory.max_entries"`, `"lots" is not a whole number from 0 to 4294967295`}},
		{"memory.max_entries", "-1", []string{"not a whole number"}},
		{"memory.max_entries", "4294967296", []string{"not a whole number from 0 to 4294967295"}},
		{"memory.high_water", "high", []string{`"memory.high_water"`, `"high" is not a number`}},
		{"throttle.mode", "fastest", []string{`"throttle.mode"`, `"fastest" is not a ThrottleMode; give one of THROTTLE_MODE_FIXED, THROTTLE_MODE_ADAPTIVE, THROTTLE_MODE_BURST`}},
		{"throttle.batch_timeout", "250", []string{`"throttle.batch_timeout"`, "a duration such as 250ms"}},
		{"logs.compress", "maybe", []string{`"logs.compress"`, "true or false"}},
		{"logs.policies", "count,sometimes", []string{`"logs.policies"`, "item 1", `"sometimes" is not a RotationPolicy`}},
	}
	for _, tt := range tests {
		t.Run(tt.path+"="+tt.value, func(t *testing.T) {
			cfg := &pxperfv1.Config{}
			_, err := ParseConfigField(cfg, tt.path, tt.value)
			if err == nil {
				t.Fatalf("ParseConfigField(%q, %q) = nil, want an error", tt.path, tt.value)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			if !proto.Equal(cfg, &pxperfv1.Config{}) {
				t.Errorf("config after a refused value = %v, want it left empty", cfg)
			}
		})
	}
}

func TestFormatConfigField(t *testing.T) {
	cfg := config.Default()
	cfg.Logs.Policies = []pxperfv1.RotationPolicy{pxperfv1.RotationPolicy_ROTATION_POLICY_COUNT, pxperfv1.RotationPolicy_ROTATION_POLICY_TIME}
	tests := []struct{ path, want string }{
		{"memory.max_entries", "1000"},
		{"memory.maxEntries", "1000"},
		{"throttle.mode", "THROTTLE_MODE_ADAPTIVE"},
		{"throttle.batch_timeout", "100ms"},
		{"logs.max_age", "24h0m0s"},
		{"logs.policies", "ROTATION_POLICY_COUNT,ROTATION_POLICY_TIME"},
		{"logs.compress", "true"},
		{"memory.high_water", "0.8"},
		{"memory.redact_headers", ""},
		{"proxy.upstream", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := FormatConfigField(cfg, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("FormatConfigField(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
	if got, err := FormatConfigField(cfg, "throttle"); err != nil || !strings.Contains(got, `"batch_size":10`) {
		t.Errorf(`FormatConfigField("throttle") = %q, %v; want the group as JSON`, got, err)
	}
	// An unset group is all zero values.
	if got, err := FormatConfigField(&pxperfv1.Config{}, "throttle.batch_timeout"); err != nil || got != "0s" {
		t.Errorf(`FormatConfigField of an empty config = %q, %v; want "0s"`, got, err)
	}
	if _, err := FormatConfigField(cfg, "memory.nope"); err == nil || !strings.Contains(err.Error(), `no field "nope"`) {
		t.Errorf(`FormatConfigField("memory.nope") = %v, want an error naming the field`, err)
	}
}

// Every field of the default config, formatted, parses back as the same
// value.
func TestConfigFieldRoundTrip(t *testing.T) {
	def := config.Default()
	got := &pxperfv1.Config{}
	fields := def.ProtoReflect().Descriptor().Fields()
	n := 0
	for i := range fields.Len() {
		paths, err := ConfigFieldPaths(string(fields.Get(i).Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			value, err := FormatConfigField(def, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseConfigField(got, path, value); err != nil {
				t.Errorf("%s = %q: %v", path, value, err)
			}
			n++
		}
	}
	if n < 40 {
		t.Errorf("only %d fields", n)
	}
	if diff := cmp.Diff(got, def, protocmp.Transform()); diff != "" {
		t.Errorf("round trip (-got +want):\n%s", diff)
	}
}

func TestConfigFieldPaths(t *testing.T) {
	tests := []struct {
		path    string
		want    []string
		wantErr string
	}{
		{"memory.max_entries", []string{"memory.max_entries"}, ""},
		{"memory.maxEntries", []string{"memory.max_entries"}, ""},
		{"logs.policies", []string{"logs.policies"}, ""},
		{"throttle.batchTimeout", []string{"throttle.batch_timeout"}, ""},
		{"cleanup", []string{"cleanup.cleanup_interval", "cleanup.resource_timeout", "cleanup.max_resources", "cleanup.producer_rate_limit"}, ""},
		{"cleanup.nope", nil, `cleanup has no field "nope"`},
		{"", nil, "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := ConfigFieldPaths(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ConfigFieldPaths(%q) = %q, %v; want an error containing %q", tt.path, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ConfigFieldPaths(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
	if got, _ := ConfigFieldPaths("throttle"); len(got) != 14 || got[0] != "throttle.mode" {
		t.Errorf(`ConfigFieldPaths("throttle") = %q, want its 14 fields from throttle.mode`, got)
	}
}

func TestParseEnum(t *testing.T) {
	tests := []struct {
		s       string
		want    pxperfv1.OptimizeAction
		wantErr string
	}{
		{"OPTIMIZE_ACTION_EVICT", pxperfv1.OptimizeAction_OPTIMIZE_ACTION_EVICT, ""},
		{"evict", pxperfv1.OptimizeAction_OPTIMIZE_ACTION_EVICT, ""},
		{"release-memory", pxperfv1.OptimizeAction_OPTIMIZE_ACTION_RELEASE_MEMORY, ""},
		{"Slow_Throttles", pxperfv1.OptimizeAction_OPTIMIZE_ACTION_SLOW_THROTTLES, ""},
		{"unspecified", pxperfv1.OptimizeAction_OPTIMIZE_ACTION_UNSPECIFIED, ""},
		{"", 0, `"" is not a OptimizeAction; give one of OPTIMIZE_ACTION_EVICT`},
		{"OPTIMIZE_ACTION_", 0, "is not a OptimizeAction"},
		{"defrag", 0, `"defrag" is not a OptimizeAction`},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			got, err := ParseEnum(pxperfv1.OptimizeAction(0).Descriptor(), tt.s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseEnum(%q) = %v, %v; want an error containing %q", tt.s, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || pxperfv1.OptimizeAction(got) != tt.want {
				t.Errorf("ParseEnum(%q) = %v, %v; want %v", tt.s, got, err, tt.want)
			}
		})
	}
}

// Whatever a config field accepts, it writes back in a form that reads as
// the same value.
func FuzzParseConfigField(f *testing.F) {
	for _, seed := range [][2]string{
		{"memory.max_entries", "5000"},
		{"memory.highWater", "0.75"},
		{"throttle.mode", "fixed"},
		{"throttle.batch_timeout", "1.5h"},
		{"logs.policies", "count, size"},
		{"memory.redact_headers", `a,"",`},
		{"proxy.upstream", `""`},
		{"logs.compress", "T"},
		{"monitor.memory_alert_threshold", "NaN"},
		{"memory", "1"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, path, value string) {
		cfg := &pxperfv1.Config{}
		canon, err := ParseConfigField(cfg, path, value)
		if err != nil {
			if !proto.Equal(cfg, &pxperfv1.Config{}) {
				t.Errorf("ParseConfigField(%q, %q) = %v, but changed the config to %v", path, value, err, cfg)
			}
			return
		}
		written, err := FormatConfigField(cfg, canon)
		if err != nil {
			t.Fatalf("FormatConfigField(%q) after ParseConfigField(%q, %q): %v", canon, path, value, err)
		}
		again := &pxperfv1.Config{}
		if _, err := ParseConfigField(again, canon, written); err != nil {
			t.Fatalf("%s = %q parsed, but its written form %q does not: %v", path, value, written, err)
		}
		// Compared as written, not as messages: NaN, a valid float, is
		// not equal to itself.
		if rewritten, _ := FormatConfigField(again, canon); rewritten != written {
			t.Errorf("%s = %q written as %q reads back as %q", path, value, written, rewritten)
		}
	})
}

func TestSetConfigFieldsOnServer(t *testing.T) {
	ts := startServer(t, nil, service.Options{})
	c := ts.client(t, Config{}, nil)
	ctx := testContext(t)

	cfg, err := c.SetConfigFields(ctx, map[string]string{
		"memory.max_entries":    "5000",
		"throttle.mode":         "fixed",
		"throttle.batchTimeout": "250ms", // a JSON name goes in the mask as its proto name
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
	if _, err := c.SetConfigFields(ctx, map[string]string{"memory.max_entries": "1", "memory.maxEntries": "2"}); err == nil || !strings.Contains(err.Error(), `"memory.max_entries" is given twice`) {
		t.Errorf("SetConfigFields of one field by two names = %v, want it refused", err)
	}
	if _, err := c.SetConfigFields(ctx, nil); !errors.Is(err, ErrNoPaths) {
		t.Errorf("SetConfigFields(nil) = %v, want %v", err, ErrNoPaths)
	}
	if _, err := c.SetConfig(ctx, &pxperfv1.Config{}); !errors.Is(err, ErrNoPaths) {
		t.Errorf("SetConfig without paths = %v, want %v", err, ErrNoPaths)
	}
}
