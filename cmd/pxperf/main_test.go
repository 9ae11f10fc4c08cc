package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pxperf/pxperf/config"
	"github.com/pxperf/pxperf/internal/testserve"
	"github.com/spf13/pflag"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunErrors(t *testing.T) {
	env := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "no command", args: nil, wantErr: "no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{name: "bad flag value", args: []string{"serve", "--max-entries", "lots"}, wantErr: `invalid argument "lots" for "--max-entries"`},
		{name: "invalid config", args: []string{"serve", "--max-entries", "0"}, wantErr: "memory.max_entries"},
		{name: "bad env", args: []string{"serve"}, env: map[string]string{"PXPERF_MAX_ENTRIES": "x"}, wantErr: "PXPERF_MAX_ENTRIES"},
		{name: "bad log level", args: []string{"serve", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad log format", args: []string{"serve", "--log-format", "xml"}, wantErr: "--log-format"},
		{name: "bad listen address", args: []string{"serve", "--listen", "nohost"}, wantErr: "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env
			if tt.env != nil {
				getenv = func(k string) string { return tt.env[k] }
			}
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, getenv, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestServeHelpShowsExample(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "-h"}, func(string) string { return "" }, io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Example:", "--listen", "PXPERF_"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
}

// The environment fills in flags not given on the command line; the
// command line wins.
func TestApplyEnv(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	listen := fs.String("listen", "default", "")
	maxEntries := fs.Uint("max-entries", 1, "")
	if err := fs.Parse([]string{"--listen", "flag"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PXPERF_LISTEN": "env", "PXPERF_MAX_ENTRIES": "42"}
	if err := applyEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *listen != "flag" || *maxEntries != 42 {
		t.Errorf("listen, max-entries = %q, %d; want flag, 42", *listen, *maxEntries)
	}
}

// Each source overrides the one before: default, --config file,
// environment, command line. A flag not given (nor set in the environment)
// leaves the file's value alone, even though it has a default of its own.
func TestServeConfigPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pxperf.yaml")
	doc := "memory:\n  max_entries: 111\n  max_memory_mb: 222\n  max_body_size: 333\nthrottle:\n  max_updates_per_second: 7\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PXPERF_CONFIG": path, "PXPERF_MAX_MEMORY_MB": "64", "PXPERF_MAX_BODY_SIZE": "1024"}
	args := []string{"--max-body-size", "2048"}
	cfg, _, err := serveConfig(args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.GetMemory()
	got := []uint32{m.GetMaxEntries(), m.GetMaxMemoryMb(), m.GetMaxBodySize(), cfg.GetThrottle().GetMaxUpdatesPerSecond(), cfg.GetCleanup().GetMaxResources()}
	want := []uint32{111, 64, 2048, 7, config.Default().GetCleanup().GetMaxResources()}
	if !slices.Equal(got, want) {
		t.Errorf("max_entries, max_memory_mb, max_body_size, max_updates_per_second, max_resources = %v, want %v (file, env, flag, file, default)", got, want)
	}

	// A file that breaks a rule is refused with the field named.
	if err := os.WriteFile(path, []byte("memory:\n  max_entries: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := serveConfig([]string{"--config", path}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "memory.max_entries") {
		t.Errorf("serveConfig with max_entries 0 = %v, want an error naming memory.max_entries", err)
	}
}

// The gateway's flags and variables: an address, off when empty, and
// comma-separated lists; a bad origin is refused naming its field.
func TestServeConfigGateway(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantListen  string
		wantHosts   []string
		wantOrigins []string
		wantErr     string
	}{
		{name: "default", wantListen: config.DefaultHTTPListenAddress},
		{name: "flag", args: []string{"--http-listen", "127.0.0.1:9000"}, wantListen: "127.0.0.1:9000"},
		{name: "off", args: []string{"--http-listen", ""}, wantListen: ""},
		{name: "environment", env: map[string]string{"PXPERF_HTTP_LISTEN": "127.0.0.1:9001"}, wantListen: "127.0.0.1:9001"},
		{
			name:        "lists",
			args:        []string{"--http-allowed-hosts", "desk.example, desk.example:8443,", "--http-cors-origins", "https://ui.example"},
			env:         map[string]string{"PXPERF_HTTP_CORS_ORIGINS": "http://ignored.example"},
			wantListen:  config.DefaultHTTPListenAddress,
			wantHosts:   []string{"desk.example", "desk.example:8443"},
			wantOrigins: []string{"https://ui.example"},
		},
		{name: "origin with a path", args: []string{"--http-cors-origins", "https://ui.example/app"}, wantErr: "server.http_cors_origins"},
		{name: "wildcard origin", args: []string{"--http-cors-origins", "*"}, wantErr: "server.http_cors_origins"},
		{name: "allowed host with a scheme", args: []string{"--http-allowed-hosts", "http://desk.example"}, wantErr: "server.http_allowed_hosts"},
		{name: "allowed host with a path", args: []string{"--http-allowed-hosts", "desk.example/x"}, wantErr: "server.http_allowed_hosts"},
		{
			name:       "allowed IPv6 hosts",
			args:       []string{"--http-allowed-hosts", "[fd00::1],[fd00::1]:8443"},
			wantListen: config.DefaultHTTPListenAddress,
			wantHosts:  []string{"[fd00::1]", "[fd00::1]:8443"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := serveConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("serveConfig: %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.GetServer()
			if s.GetHttpListenAddress() != tt.wantListen || !slices.Equal(s.GetHttpAllowedHosts(), tt.wantHosts) || !slices.Equal(s.GetHttpCorsOrigins(), tt.wantOrigins) {
				t.Errorf("http_listen_address %q, http_allowed_hosts %q, http_cors_origins %q; want %q, %q, %q",
					s.GetHttpListenAddress(), s.GetHttpAllowedHosts(), s.GetHttpCorsOrigins(), tt.wantListen, tt.wantHosts, tt.wantOrigins)
			}
		})
	}
}

// With --log-format json every line serve logs is a JSON object, the
// serving line among them.
func TestServeLogsJSON(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testserve.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--log-dir", t.TempDir(), "--log-format", "json"},
			func(string) string { return "" }, io.Discard, &stderr)
	}()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"serving"`) {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("no serving line in JSON:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil || rec["time"] == nil {
			t.Errorf("log line %q is not a JSON record with time, level and msg (%v)", line, err)
		}
	}
}
