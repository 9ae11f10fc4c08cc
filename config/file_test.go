package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want func(c *pxperfv1.Config) // edits Default() into the expected result
	}{
		{
			name: "empty document keeps the base",
			doc:  "",
			want: func(*pxperfv1.Config) {},
		},
		{
			name: "snake case names, a duration and an enum",
			doc: `
memory:
  max_entries: 5000
throttle:
  mode: THROTTLE_MODE_FIXED
  batch_timeout: 250ms
`,
			want: func(c *pxperfv1.Config) {
				c.Memory.MaxEntries = 5000
				c.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED
				c.Throttle.BatchTimeout = durationpb.New(250 * time.Millisecond)
			},
		},
		{
			name: "camel case names",
			doc:  "memory: {maxMemoryMb: 64}\nmonitor: {statsUpdateInterval: 5s}\n",
			want: func(c *pxperfv1.Config) {
				c.Memory.MaxMemoryMb = 64
				c.Monitor.StatsUpdateInterval = durationpb.New(5 * time.Second)
			},
		},
		{
			name: "zero values the file states are kept",
			doc:  "monitor:\n  alerts_enabled: false\n  auto_optimize: false\nlogs:\n  enabled: false\n",
			want: func(c *pxperfv1.Config) {
				c.Monitor.AlertsEnabled = false
				c.Monitor.AutoOptimize = false
				c.Logs.Enabled = false
			},
		},
		{
			name: "a list replaces the base's list",
			doc:  "logs:\n  policies: [ROTATION_POLICY_TIME]\n",
			want: func(c *pxperfv1.Config) {
				c.Logs.Policies = []pxperfv1.RotationPolicy{pxperfv1.RotationPolicy_ROTATION_POLICY_TIME}
			},
		},
		{
			name: "an empty group or field changes nothing",
			doc:  "memory:\nthrottle:\n  mode:\n",
			want: func(*pxperfv1.Config) {},
		},
		{
			name: "JSON is YAML too",
			doc:  `{"cleanup": {"max_resources": 7}}`,
			want: func(c *pxperfv1.Config) { c.Cleanup.MaxResources = 7 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := Default()
			got, err := Parse([]byte(tt.doc), base)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(want)
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			if !proto.Equal(base, Default()) {
				t.Error("Parse modified its base")
			}
		})
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown group", "memroy:\n  max_entries: 5\n", "memroy"},
		{"unknown field", "memory:\n  max_entrys: 5\n", "max_entrys"},
		{"wrong type", "memory:\n  max_entries: lots\n", "maxEntries"},
		{"bad duration", "throttle:\n  batch_timeout: soon\n", "soon"},
		{"bad enum", "throttle:\n  mode: THROTTLE_MODE_FAST\n", "THROTTLE_MODE_FAST"},
		{"not a mapping", "- memory\n", "mapping"},
		{"broken YAML", "memory: [\n", "YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), Default())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// A file that parses may still break a rule; Validate, run after every
// source is applied, names the field.
func TestLoadFileThenValidate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pxperf.yaml")
	if err := os.WriteFile(path, []byte("memory:\n  low_water: 0.95\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(path, Default())
	if err != nil {
		t.Fatal(err)
	}
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(v, cfg); err == nil || !strings.Contains(err.Error(), "low_water") {
		t.Fatalf("Validate = %v, want an error naming low_water", err)
	}

	if _, err := LoadFile(filepath.Join(dir, "missing.yaml"), Default()); !errors.Is(err, ErrFile) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadFile(missing) = %v, want ErrFile wrapping ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", maxFileBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(big, Default()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadFile(big) = %v, want a size error", err)
	}
}

// FuzzParse: any document either fails with an error or gives a config
// that survives a protojson round trip; it never panics, and never changes
// its base.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "memory:\n  max_entries: 5000\n", `{"logs": {"policies": ["ROTATION_POLICY_TIME"]}}`,
		"throttle: {batchTimeout: 1s, mode: 2}\n", "monitor:\n  alerts_enabled: false\n", "- a\n", "a: [\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		base := Default()
		cfg, err := Parse(doc, base)
		if !proto.Equal(base, Default()) {
			t.Fatal("Parse modified its base")
		}
		if err != nil {
			return
		}
		if cfg.GetMemory() == nil {
			t.Fatal("Parse dropped the memory group of the base")
		}
	})
}
