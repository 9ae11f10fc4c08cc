package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pxperf/pxperf/internal/testserve"
)

// The end-to-end tests build the real binary, run it on a free loopback
// port, and drive it with grpcurl, exactly as a user would.

// repoRoot is where README.md and tools/go.mod are.
const repoRoot = "../.."

// startServer runs pxperf serve (see testserve.Start); skipped with -short.
func startServer(t testing.TB, args ...string) *testserve.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	return testserve.Start(t, args...)
}

// grpcurl returns a command running the pinned grpcurl from the repository
// root, as the README does.
func grpcurl(ctx context.Context, args ...string) *exec.Cmd {
	return inGroup(exec.CommandContext(ctx, "go", append([]string{"tool", "-modfile=tools/go.mod", "grpcurl"}, args...)...))
}

// inGroup runs cmd from the repository root in a process group of its own,
// and makes cancelling it kill the whole group: `go tool` runs the tool as
// a child, which would otherwise outlive it and hold its output open.
func inGroup(cmd *exec.Cmd) *exec.Cmd {
	cmd.Dir = repoRoot
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	return cmd
}

func killGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

func runGrpcurl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := grpcurl(ctx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// streamUntil runs a streaming command and reads its output until it holds
// want, then stops it. It returns the output.
func streamUntil(t *testing.T, cmd *exec.Cmd, want string) string {
	t.Helper()
	out, err := readUntil(cmd, want)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readUntil is streamUntil for goroutines other than the test's: it
// reports a failure as an error.
func readUntil(cmd *exec.Cmd, want string) (string, error) {
	out := &testserve.SyncBuffer{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	found := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(out.String(), want) {
				signalled = true
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-copied:
	}
	killGroup(cmd)
	<-copied
	cmd.Wait()
	if !strings.Contains(out.String(), want) {
		return out.String(), fmt.Errorf("%s: output does not contain %q:\n%s", strings.Join(cmd.Args, " "), want, out.String())
	}
	return out.String(), nil
}

func TestEndToEnd(t *testing.T) {
	s := startServer(t)

	if out := runGrpcurl(t, "-plaintext", s.Addr, "list"); !strings.Contains(out, "pxperf.v1.PerformanceService") || !strings.Contains(out, "grpc.health.v1.Health") {
		t.Errorf("list = %q, want PerformanceService and Health", out)
	}
	if out := runGrpcurl(t, "-plaintext", s.Addr, "grpc.health.v1.Health/Check"); !strings.Contains(out, `"SERVING"`) {
		t.Errorf("health = %q, want SERVING", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Subscribe from the first id: the stream is live before and after the
	// publish, and the entry must arrive on it.
	sub := grpcurl(ctx, "-plaintext", "-d", `{"start_id": 1}`, s.Addr, "pxperf.v1.PerformanceService/Subscribe")
	type result struct {
		out string
		err error
	}
	subOut := make(chan result, 1)
	go func() {
		out, err := readUntil(sub, "http://e2e.example.com/hello")
		subOut <- result{out, err}
	}()

	out := runGrpcurl(t, "-plaintext", "-d", `{"entries": [{"method": "GET", "url": "http://e2e.example.com/hello", "start_time": "2026-11-27T10:00:00Z", "status_code": 200}]}`,
		s.Addr, "pxperf.v1.PerformanceService/Publish")
	if !strings.Contains(out, `"id": "1"`) {
		t.Errorf("publish = %q, want id 1", out)
	}
	select {
	case got := <-subOut:
		if got.err != nil {
			t.Fatal(got.err)
		}
		if !strings.Contains(got.out, `"nextId": "2"`) {
			t.Errorf("subscribe output lacks next_id 2:\n%s", got.out)
		}
	case <-ctx.Done():
		t.Fatal("entry never arrived on Subscribe")
	}
}

// Every grpcurl command in the README works as written (with the server's
// address in place of the default port).
func TestReadmeCommands(t *testing.T) {
	s := startServer(t)
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "go tool -modfile=tools/go.mod grpcurl "
	var commands []string
	for line := range strings.Lines(string(readme)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			commands = append(commands, strings.ReplaceAll(line, "127.0.0.1:50051", s.Addr))
		}
	}
	if len(commands) < 8 {
		t.Fatalf("found %d grpcurl commands in README.md, want at least 8", len(commands))
	}
	for _, c := range commands {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := inGroup(exec.CommandContext(ctx, "bash", "-c", "exec "+c))
		switch {
		case strings.Contains(c, "-cacert"):
			// Needs a TLS server and its certificates: the auth package's
			// tests make both.
			cancel()
			continue
		case strings.Contains(c, "/WatchStats"):
			// Streams until stopped; a stats sample comes at once.
			streamUntil(t, cmd, `"stats"`)
		case strings.Contains(c, "/CloseResource"):
			// The example takes the id from ListResources with jq. No
			// subscriber may be open here: found or not, the server must
			// answer it.
			if _, err := exec.LookPath("jq"); err != nil {
				t.Logf("skipped, jq is not installed: %s", c)
				cancel()
				continue
			}
			out, err := cmd.CombinedOutput()
			if err != nil && !strings.Contains(string(out), "NotFound") {
				t.Errorf("%s: %v\n%s", c, err, out)
			}
		case strings.Contains(c, `"tail"`):
			// Streams until stopped; the snapshot ends with its marker.
			out := streamUntil(t, cmd, "snapshotEnd")
			if !strings.Contains(out, "http://example.com/") {
				t.Errorf("%s: the snapshot lacks the published entry:\n%s", c, out)
			}
		case strings.Contains(c, "live_view"):
			// A live view's first message comes at once.
			streamUntil(t, cmd, `"view"`)
		case strings.Contains(c, "/Subscribe"):
			// Nothing matches: the stream still sends heartbeats.
			streamUntil(t, cmd, `"progress"`)
		default:
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s: %v\n%s", c, err, out)
			}
		}
		cancel()
	}
}

// SIGTERM stops the server within its shutdown timeout even with a
// Subscribe stream open, and the stream is told where to resume.
func TestSigtermWithOpenStream(t *testing.T) {
	s := startServer(t)
	runGrpcurl(t, "-plaintext", "-d", `{"entries": [{"method": "GET", "url": "http://example.com/", "start_time": "2026-11-27T10:00:00Z"}]}`,
		s.Addr, "pxperf.v1.PerformanceService/Publish")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sub := grpcurl(ctx, "-plaintext", "-d", `{"start_id": 1}`, s.Addr, "pxperf.v1.PerformanceService/Subscribe")
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var subErr bytes.Buffer
	sub.Stderr = &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the stream has delivered the entry: it is open.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.Contains(sc.Text(), `"nextId"`) {
	}

	start := time.Now()
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		<-s.Done
		exited <- s.Cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("server exit: %v\n%s", err, s.Logs.String())
		}
		t.Logf("server stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("server still running 15s after SIGTERM")
	}
	io.Copy(io.Discard, stdout)
	sub.Wait()
	if !strings.Contains(subErr.String(), "Unavailable") || !strings.Contains(subErr.String(), "start_id 2") {
		t.Errorf("subscriber saw %q, want Unavailable with start_id 2", subErr.String())
	}
}
