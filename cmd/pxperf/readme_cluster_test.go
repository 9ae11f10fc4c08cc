package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pxperf/pxperf/internal/testserve"
)

// README's cluster example runs as written: three nats-server processes
// (built from the module nats-server is a dependency in) and two pxperf
// nodes; an entry published on one is listed by the other, whose stats
// say it is connected. It uses the ports README shows.
func TestReadmeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script := readmeBlock(t, string(readme), "## Beyond one machine: cluster mode on NATS JetStream")
	bin := t.TempDir()
	pxperf, err := testserve.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(pxperf, filepath.Join(bin, "pxperf")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "nats-server"), "github.com/nats-io/nats-server/v2")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	// The servers run in the background of the script, in its process
	// group: ended with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A file, not a pipe: the servers in the background keep their output
	// open after the script ends.
	logPath := filepath.Join(t.TempDir(), "out")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	// The servers get their graceful stop, so that the ports are free for
	// whatever runs next, and SIGKILL if they take over 10 s.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(-cmd.Process.Pid, 0) == nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	out, rerr := os.ReadFile(logPath)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("README's cluster example: %v\n%s", err, out)
	}
	for _, want := range []string{"http://example.com/", "cluster     connected to nats://127.0.0.1:"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("README's cluster example printed no %q:\n%s", want, out)
		}
	}
}
