// Package testserve builds the pxperf binary and runs `pxperf serve` for
// the tests that drive the real process: the end-to-end, fault and browser
// tests.
package testserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build builds pxperf once per test binary run and returns its path.
var Build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pxperf-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pxperf")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/pxperf/pxperf/cmd/pxperf").CombinedOutput()
	if err != nil {
		return "", errors.New("go build: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

// Server is a running pxperf serve process.
type Server struct {
	Addr     string // the gRPC listener's host:port
	HTTPAddr string // the HTTP gateway's host:port
	URL      string // the gateway's URL, as serve logs it
	Cmd      *exec.Cmd
	Logs     *SyncBuffer   // what it wrote to standard error
	Done     chan struct{} // closed when its standard error is drained
}

// The log lines that say where serve listens.
var (
	servingLine = regexp.MustCompile(`msg=serving addr=(\S+)`)
	gatewayLine = regexp.MustCompile(`msg="serving the HTTP gateway[^"]*" url=(https?://(\S+)/)`)
)

// Start runs pxperf serve with its gRPC listener and HTTP gateway on free
// loopback ports, its archive in a temporary directory, and args, and
// waits until it says where it listens. When the test ends it stops the
// server as an operator would (SIGTERM, so that it flushes what it writes
// at shutdown), unless the test has, and kills it if it does not stop; the
// log is shown when the test failed.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-dir", t.TempDir()}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Cmd: cmd, Logs: &SyncBuffer{}, Done: make(chan struct{})}
	addrc, urlc := make(chan string, 1), make(chan []string, 1)
	go func() {
		defer close(s.Done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.Logs.WriteString(sc.Text() + "\n")
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
			if m := gatewayLine.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1:]
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.Done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-s.Done
			}
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Logs.String())
		}
	})
	for s.Addr == "" || s.URL == "" {
		select {
		case s.Addr = <-addrc:
		case u := <-urlc:
			s.URL, s.HTTPAddr = u[0], u[1]
		case <-s.Done:
			t.Fatalf("server exited before serving:\n%s", s.Logs.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("server did not report its addresses:\n%s", s.Logs.String())
		}
	}
	return s
}

// Logged waits until the server's log has a line matching re, and returns
// its first submatch; the test fails when ctx ends first.
func (s *Server) Logged(t testing.TB, ctx context.Context, re *regexp.Regexp) string {
	t.Helper()
	for {
		if m := re.FindStringSubmatch(s.Logs.String()); m != nil {
			return m[1]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no log line matching %s:\n%s", re, s.Logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// WriteString appends s.
func (b *SyncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
