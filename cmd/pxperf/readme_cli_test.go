package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxperf/pxperf/internal/testserve"
)

// Every command of README's "Command line" example runs as written, in
// order, against a running server given by PXPERF_SERVER (go run
// ./cmd/pxperf is the built binary), and exits 0.
func TestReadmeCLI(t *testing.T) {
	s := startServer(t)
	bin, err := testserve.Build()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	commands := readmeCommands(t, string(readme), "## Command line")
	if len(commands) < 10 {
		t.Fatalf("found %d commands in README's Command line example, want at least 10", len(commands))
	}
	// The commands name files from the repository's root (the HAR of the
	// test data) and write some (day.har): run them in a directory of
	// their own that sees cmd/.
	dir := t.TempDir()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "cmd"), filepath.Join(dir, "cmd")); err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if !strings.Contains(c, "go run ./cmd/pxperf") {
			t.Errorf("README command %q does not run pxperf", c)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+strings.ReplaceAll(c, "go run ./cmd/pxperf", bin))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PXPERF_SERVER="+s.Addr)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("README command %q: %v\n%s", c, err, out)
		}
	}
	// The export holds the day's entries: the two published first and the
	// HAR's, which are dated that day too.
	data, err := os.ReadFile(filepath.Join(dir, "day.har"))
	if err != nil {
		t.Fatal(err)
	}
	var har struct {
		Log struct {
			Entries []json.RawMessage `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(data, &har); err != nil || len(har.Log.Entries) < 2 {
		t.Errorf("day.har holds %d entries (%v), want the day's entries:\n%.500s", len(har.Log.Entries), err, data)
	}
}

// readmeCommands returns the commands of the first sh block after heading,
// with continued lines joined and comments dropped.
func readmeCommands(t *testing.T, readme, heading string) []string {
	t.Helper()
	block := readmeBlock(t, readme, heading)
	var commands []string
	var cur strings.Builder
	for line := range strings.Lines(block) {
		line = strings.TrimRight(line, "\n")
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont)
			continue
		}
		cur.WriteString(line)
		c := strings.TrimSpace(cur.String())
		cur.Reset()
		if c != "" && !strings.HasPrefix(c, "#") {
			commands = append(commands, c)
		}
	}
	return commands
}

// readmeBlock returns the first sh block after heading, as written.
func readmeBlock(t *testing.T, readme, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q section", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatalf("README's %q section has no sh block", heading)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("README's %q section has an unterminated sh block", heading)
	}
	return block
}
