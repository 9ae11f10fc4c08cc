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
)

// Every curl command of README's gateway section runs as written, in order,
// against a real server's gateway (its address put in for the default
// 127.0.0.1:50080), exits 0 and prints JSON; the bad input is refused
// naming its field.
func TestReadmeGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: README's gateway examples are curl commands")
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading, defaultAddr = "## Browsers and HTTP: the gateway", "127.0.0.1:50080"
	commands := readmeCommands(t, string(readme), heading)
	if len(commands) < 10 {
		t.Fatalf("found %d commands in README's gateway example, want at least 10", len(commands))
	}
	s := startServer(t)
	var refused bool
	for _, c := range commands {
		if !strings.HasPrefix(c, "curl ") || !strings.Contains(c, defaultAddr) {
			t.Errorf("README command %q is not a curl command to %s", c, defaultAddr)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+strings.ReplaceAll(c, defaultAddr, s.HTTPAddr)).CombinedOutput()
		cancel()
		switch {
		case err != nil:
			t.Errorf("README command %q: %v\n%s", c, err, out)
		case !json.Valid(out):
			t.Errorf("README command %q printed no JSON:\n%s", c, out)
		case strings.Contains(string(out), `"fieldViolations"`):
			refused = true
			if !strings.Contains(string(out), "config.memory.max_entries") {
				t.Errorf("README command %q: the refusal does not name config.memory.max_entries:\n%s", c, out)
			}
		}
	}
	if !refused {
		t.Error("no README command showed a refusal with its field violations")
	}
}
