package main

// Tests of what came with cobra: completion, version and health.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pxperf/pxperf/internal/buildinfo"
)

// unreachable is an address where no server listens.
const unreachable = "127.0.0.1:1"

// completions runs cobra's hidden __complete with args (the last is the
// word being completed) and returns the candidates, without their
// descriptions, and the directive line (":4").
func completions(t *testing.T, server string, args ...string) (candidates []string, directive string) {
	t.Helper()
	r := runCLI(t, server, nil, append([]string{"__complete"}, args...)...)
	if r.err != nil {
		t.Fatalf("__complete %q: %v", args, r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	directive = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		c, _, _ := strings.Cut(line, "\t")
		candidates = append(candidates, c)
	}
	return candidates, directive
}

// Commands, subcommands, enum flag values, filter keys and config paths
// complete without a server.
func TestCompletionLocal(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		want   []string // among the candidates
		unwant []string // not among them
		// directive is the expected directive line: ":4" is no file
		// names, ":6" no space either.
		directive string
	}{
		{name: "commands", args: []string{""}, want: []string{"serve", "get", "config", "completion", "version", "health"}, unwant: []string{"__complete"}, directive: ":4"},
		{name: "group", args: []string{"archive", ""}, want: []string{"files", "read", "export"}, directive: ":4"},
		{name: "log format", args: []string{"serve", "--log-format", ""}, want: []string{"text", "json"}, directive: ":4"},
		{name: "log level", args: []string{"serve", "--log-level", ""}, want: []string{"debug", "info", "warn", "error"}, directive: ":4"},
		{name: "resource type", args: []string{"resources", "list", "--type", ""}, want: []string{"subscriber", "publisher", "connection", "worker", "file"}, directive: ":4"},
		{name: "optimize actions not given yet", args: []string{"optimize", "evict", ""}, want: []string{"rotate", "reclaim", "slow-throttles", "release-memory"}, unwant: []string{"evict"}, directive: ":4"},
		{name: "shells", args: []string{"completion", ""}, want: []string{"bash", "zsh", "fish", "powershell"}, directive: ":4"},
		{name: "version output", args: []string{"version", "-o", ""}, want: []string{"text", "json"}, directive: ":4"},
		{name: "filter key", args: []string{"tail", "--filter", "status:4xx sl"}, want: []string{"status:4xx slower-than:"}, unwant: []string{"status:4xx method:"}, directive: ":6"},
		{name: "negated filter key", args: []string{"list", "--filter", "status:4xx -ho"}, want: []string{"status:4xx -host:"}, directive: ":6"},
		{name: "config groups and fields", args: []string{"config", "get", "mem"}, want: []string{"memory", "memory.max_entries"}, unwant: []string{"throttle"}, directive: ":4"},
		{name: "config set fields", args: []string{"config", "set", "throttle.mo"}, want: []string{"throttle.mode="}, unwant: []string{"throttle"}, directive: ":6"},
		{name: "config set value", args: []string{"config", "set", "throttle.mode="}, directive: ":4"},
		{name: "no arguments", args: []string{"stats", ""}, directive: ":4"},
		{name: "ids, server unreachable", args: []string{"get", "--server", unreachable, ""}, directive: ":4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, directive := completions(t, "", tt.args...)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("__complete %q = %q, lacks %q", tt.args, got, w)
				}
			}
			for _, w := range tt.unwant {
				if slices.Contains(got, w) {
					t.Errorf("__complete %q = %q, has %q", tt.args, got, w)
				}
			}
			if len(tt.want) == 0 && len(got) > 0 {
				t.Errorf("__complete %q = %q, want none", tt.args, got)
			}
			if directive != tt.directive {
				t.Errorf("__complete %q: directive %s, want %s", tt.args, directive, tt.directive)
			}
		})
	}
}

// get and replay complete the ids of the server's newest entries, newest
// first, each described by its method and URL.
func TestCompletionEntryIDs(t *testing.T) {
	addr := startServer(t).Addr
	in := entryJSON("GET", "http://complete.example.com/one", 200) + entryJSON("POST", "http://complete.example.com/two", 201)
	if r := runCLI(t, addr, strings.NewReader(in), "publish"); r.err != nil {
		t.Fatalf("publish: %v", r)
	}
	newest := newestID(t, addr)
	for _, cmd := range []string{"get", "replay"} {
		t.Run(cmd, func(t *testing.T) {
			r := runCLI(t, addr, nil, "__complete", cmd, "")
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			want := fmt.Sprintf("%d\tPOST http://complete.example.com/two", newest)
			if r.err != nil || len(lines) < 3 || lines[0] != want || !strings.HasPrefix(lines[1], fmt.Sprint(newest-1)+"\t") {
				t.Errorf("__complete %s: want %q first, then id %d: %v", cmd, want, newest-1, r)
			}
			// No space after an id? A space: the id is whole. Keep the
			// server's order, and no file names.
			if d := lines[len(lines)-1]; d != ":36" {
				t.Errorf("__complete %s: directive %s, want :36 (no files, keep order)", cmd, d)
			}
			// Only ids starting with what is typed; none once the ID is given.
			if got, _ := completions(t, addr, cmd, fmt.Sprint(newest)); !slices.Contains(got, fmt.Sprint(newest)) || slices.Contains(got, fmt.Sprint(newest-1)) {
				t.Errorf("__complete %s %d = %q", cmd, newest, got)
			}
			if got, _ := completions(t, addr, cmd, "1", ""); len(got) > 0 {
				t.Errorf("__complete %s 1 '' = %q, want none", cmd, got)
			}
		})
	}
}

// pxperf completion SHELL writes cobra's script for SHELL on stdout; an
// unknown shell is a usage error.
func TestCompletionScripts(t *testing.T) {
	tests := []struct {
		shell string
		want  string // in the script
		code  int
	}{
		{shell: "bash", want: "__start_pxperf", code: 0},
		{shell: "zsh", want: "#compdef pxperf", code: 0},
		{shell: "fish", want: "complete -c pxperf", code: 0},
		{shell: "powershell", want: "Register-ArgumentCompleter", code: 0},
		{shell: "tcsh", code: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			r := runCLI(t, "", nil, "completion", tt.shell)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.want) {
				t.Errorf("completion %s: want exit %d and %q in the script: %.300v", tt.shell, tt.code, tt.want, r)
			}
		})
	}
}

// version prints this client's build first, as "pxperf VERSION", then
// the server's; with --client it does not call the server; when the
// server cannot be reached it prints the client's and exits 3.
func TestVersion(t *testing.T) {
	addr := startServer(t).Addr
	first := "pxperf " + buildinfo.Read().Version + "\n"
	tests := []struct {
		name       string
		server     string
		args       []string
		code       int
		wantServer bool   // the server's build is printed
		wantErr    string // in the error
	}{
		{name: "client only", server: unreachable, args: []string{"--client"}},
		{name: "with the server", server: addr, wantServer: true},
		{name: "server unreachable", server: unreachable, args: []string{"--timeout", "2s"}, code: exitRPC, wantErr: "the server could not be reached: UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.server, nil, append([]string{"version"}, tt.args...)...)
			if r.code != tt.code || !strings.HasPrefix(r.stdout, first) || !strings.Contains(r.stdout, "  go go1.") {
				t.Errorf("version %q: want exit %d and the client's build first (%q): %v", tt.args, tt.code, first, r)
			}
			if got := strings.Contains(r.stdout, "\nserver "+tt.server+": pxperf "); got != tt.wantServer {
				t.Errorf("version %q: server's build printed %v, want %v:\n%s", tt.args, got, tt.wantServer, r.stdout)
			}
			if tt.wantErr != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr)) {
				t.Errorf("version %q: error %v, want one with %q", tt.args, r.err, tt.wantErr)
			}
		})
	}
	// --output json holds both builds, with proto field names.
	r := runCLI(t, addr, nil, "version", "-o", "json")
	var got struct {
		Client, Server *struct {
			Version   string `json:"version"`
			GoVersion string `json:"go_version"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.err != nil || got.Client == nil || got.Server == nil ||
		got.Client.Version != buildinfo.Read().Version || !strings.HasPrefix(got.Server.GoVersion, "go1.") {
		t.Errorf("version -o json: %v (%v)", r, err)
	}
	wantExit(t, addr, exitUsage, []string{"version", "-o", "yaml"}, "give text or json")
}

// health prints the server's gRPC health status and exits 0 only when
// it is SERVING.
func TestHealth(t *testing.T) {
	addr := startServer(t).Addr
	tests := []struct {
		name   string
		server string
		args   []string
		code   int
		want   string // stdout
	}{
		{name: "server", server: addr, code: 0, want: "SERVING\n"},
		{name: "service", server: addr, args: []string{"--service", "pxperf.v1.PerformanceService"}, code: 0, want: "SERVING\n"},
		{name: "unknown service", server: addr, args: []string{"--service", "no.such.Service"}, code: exitFailure, want: "SERVICE_UNKNOWN\n"},
		{name: "unreachable", server: unreachable, args: []string{"--timeout", "2s"}, code: exitRPC, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.server, nil, append([]string{"health"}, tt.args...)...)
			if r.code != tt.code || r.stdout != tt.want {
				t.Errorf("health %q: want exit %d and %q: %v", tt.args, tt.code, tt.want, r)
			}
		})
	}
}

// The new commands have --help with examples, like the others, and the
// root's help lists them; help COMMAND is COMMAND --help.
func TestNewCommandsHelp(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"version"}, {"health"}, {"help", "version"}} {
		name := strings.Join(args, " ")
		t.Run(name, func(t *testing.T) {
			if args[0] != "help" {
				args = append(args, "--help")
			}
			r := runCLI(t, "", nil, args...)
			cmd := args[len(args)-1]
			if args[0] != "help" {
				cmd = args[0]
			}
			if !errors.Is(r.err, flag.ErrHelp) || r.code != 0 || !strings.Contains(r.stderr, "Examples:\n  pxperf "+cmd) {
				t.Errorf("%s: %v", name, r)
			}
		})
	}
	r := runCLI(t, "", nil, "--help")
	for _, cmd := range []string{"completion SHELL", "version [--client]", "health [--service NAME]"} {
		if !strings.Contains(r.stderr, "pxperf "+cmd) {
			t.Errorf("pxperf --help lacks %q:\n%s", cmd, r.stderr)
		}
	}
}

// Flags take two dashes since the move to cobra (pflag): the one-dash
// long flags package flag took are usage errors now, except the short
// -h and -H, which are one letter.
func TestOneDashFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in the error
	}{
		{args: []string{"list", "-json"}, code: exitUsage, want: "unknown shorthand flag: 'j' in -json"},
		{args: []string{"serve", "-listen", "127.0.0.1:0"}, code: exitUsage, want: "unknown shorthand flag: 'l' in -listen"},
		{args: []string{"tail", "-h"}, code: 0},
		{args: []string{"replay", "1", "-H", "no colon"}, code: exitUsage, want: "Name: value"},
		{args: []string{"replay", "1", "--H", "no colon"}, code: exitUsage, want: "Name: value"},
	}
	for _, tt := range tests {
		r := runCLI(t, unreachable, nil, tt.args...)
		if r.code != tt.code || tt.want != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.want)) {
			t.Errorf("pxperf %q: want exit %d with %q: %v", tt.args, tt.code, tt.want, r)
		}
	}
}
