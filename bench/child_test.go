package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Some scenarios run their clients in a child process, this test binary
// again running one Test function of their own, so that what the clients
// cost (memory, CPU) is not counted with the server's, or the other way
// round. The Test function runs only when its environment says so, and is
// skipped otherwise; it prints a ready line once it is set up, and takes
// its orders from its stdin, whose end tells it to stop.

// childSpec says which helper process to start and how.
type childSpec struct {
	// name is what the process is, in errors: "subscriber process".
	name string
	// test is the Test function the process runs.
	test string
	// env is added to this process's environment; it is what makes test
	// run rather than skip.
	env []string
	// args are more flags for the test binary.
	args []string
	// timeout is the process's own bound on its life (-test.timeout).
	timeout time.Duration
	// ready is what the process prints once it is ready.
	ready string
	// stopTimeout is how long stop waits for the process to exit before it
	// kills it.
	stopTimeout time.Duration
}

// errChildExited is returned by [childProcess.waitReady] when the process
// exits before it is ready.
var errChildExited = errors.New("the process exited before it was ready")

// childProcess is a running helper process (see childSpec). stop ends it.
type childProcess struct {
	spec    childSpec
	cmd     *exec.Cmd
	stdin   io.WriteCloser // closing it tells the process to stop
	out     *readyWriter   // its stdout and stderr
	exited  chan struct{}  // closed once the process has exited
	waitErr error          // cmd.Wait's; read after exited is closed

	stopOnce sync.Once
	stopErr  error
}

// startChild starts the helper process spec describes. The process is
// killed if ctx ends. The caller must call stop.
func startChild(ctx context.Context, spec childSpec) (*childProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("the test binary, to run the %s: %w", spec.name, err)
	}
	args := append([]string{"-test.run=^" + spec.test + "$", "-test.count=1", "-test.timeout=" + spec.timeout.String()}, spec.args...)
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), spec.env...)
	out := &readyWriter{want: []byte(spec.ready), ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", spec.name, err)
	}
	c := &childProcess{spec: spec, cmd: cmd, stdin: stdin, out: out, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// waitReady returns once the process has printed its ready line; it
// returns errChildExited if the process exits first, and an error after d.
func (c *childProcess) waitReady(d time.Duration) error {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	select {
	case <-c.out.ready:
		return nil
	case <-c.exited:
		return errChildExited
	case <-timeout.C:
		return fmt.Errorf("the %s was not ready after %v", c.spec.name, d)
	}
}

// send writes line, and a newline, to the process's stdin.
func (c *childProcess) send(line string) error {
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return fmt.Errorf("telling the %s %q: %w", c.spec.name, line, err)
	}
	return nil
}

// stop tells the process to stop, by closing its stdin, and waits for it
// to exit; a process that does not exit within spec.stopTimeout is
// killed. The error says whether the process ended well, with the end of
// its output if not. Calls after the first return the first's error.
func (c *childProcess) stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		// A process that has exited has had its stdin closed by Wait.
		if err := c.stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("telling the %s to stop: %w", c.spec.name, err))
		}
		timeout := time.NewTimer(c.spec.stopTimeout)
		defer timeout.Stop()
		select {
		case <-c.exited:
		case <-timeout.C:
			errs = append(errs, fmt.Errorf("the %s did not exit within %v of being told to: killed", c.spec.name, c.spec.stopTimeout))
			if err := c.cmd.Process.Kill(); err != nil {
				errs = append(errs, err)
			}
			<-c.exited
		}
		if c.waitErr != nil {
			errs = append(errs, fmt.Errorf("%s: %w; its output ends:\n%s", c.spec.name, c.waitErr, c.out.tail(15)))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// readyWriter keeps a process's output and closes ready once the output
// holds want. It is safe for concurrent use.
type readyWriter struct {
	want  []byte
	ready chan struct{}

	mu   sync.Mutex
	buf  bytes.Buffer
	seen bool // ready is closed
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.seen && bytes.Contains(w.buf.Bytes(), w.want) {
		w.seen = true
		close(w.ready)
	}
	return len(p), nil
}

// tail returns the last n lines of the output.
func (w *readyWriter) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimRight(w.buf.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
