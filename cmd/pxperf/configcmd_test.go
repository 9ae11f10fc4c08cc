package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/client"
	"github.com/pxperf/pxperf/config"
	"google.golang.org/protobuf/testing/protocmp"
)

// Bad paths and values are usage errors, found before the server is
// called: nothing listens at the address given, and reaching it would be
// an RPC error instead.
func TestConfigUsageErrors(t *testing.T) {
	const nowhere = "127.0.0.1:1"
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"config", "set", "memory.max_entries"}, []string{"PATH=VALUE"}},
		{[]string{"config", "set", "memory.max_entrys=1"}, []string{"config set:", "memory.max_entrys", `no field "max_entrys"`}},
		{[]string{"config", "set", "throttle.mode=fast"}, []string{"throttle.mode", "THROTTLE_MODE_FIXED"}},
		{[]string{"config", "set", "throttle=1"}, []string{"group of fields", "throttle.mode"}},
		{[]string{"config", "set", "memory.max_entries=1", "memory.maxEntries=2"}, []string{"memory.max_entries is given twice"}},
		{[]string{"config", "get", "memory.max_entries", "memory.nope"}, []string{"config get:", `no field "nope"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			wantExit(t, nowhere, exitUsage, tt.args, tt.want...)
		})
	}
}

func TestWriteFields(t *testing.T) {
	cfg := config.Default()
	tests := []struct {
		paths []string
		want  string
	}{
		{[]string{"memory.max_entries", "throttle.mode", "throttle.batch_timeout"},
			"memory.max_entries = 1000\nthrottle.mode = THROTTLE_MODE_ADAPTIVE\nthrottle.batch_timeout = 100ms\n"},
		{[]string{"logs.policies"}, "logs.policies = ROTATION_POLICY_COUNT,ROTATION_POLICY_SIZE\n"},
		// Blank values show as "".
		{[]string{"memory.redact_headers", "proxy.upstream"}, "memory.redact_headers = \"\"\nproxy.upstream = \"\"\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.paths, ","), func(t *testing.T) {
			var b bytes.Buffer
			if err := writeFields(&b, cfg, tt.paths); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("writeFields(%q) wrote\n%s\nwant\n%s", tt.paths, got, tt.want)
			}
		})
	}
}

// Every line config get prints for the default config, given to config
// set as it is, sets the same value.
func TestConfigLinesRoundTrip(t *testing.T) {
	def := config.Default()
	var paths []string
	fields := def.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		ps, err := client.ConfigFieldPaths(string(fields.Get(i).Name()))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, ps...)
	}
	var b bytes.Buffer
	if err := writeFields(&b, def, paths); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	got, gotPaths, err := parseAssignments(lines)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotPaths, paths) {
		t.Errorf("paths = %q, want %q", gotPaths, paths)
	}
	if diff := cmp.Diff(got, def, protocmp.Transform()); diff != "" {
		t.Errorf("round trip mismatch (-got +want):\n%s", diff)
	}
}
