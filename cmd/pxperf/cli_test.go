package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testserve"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// result is what one client command did.
type result struct {
	stdout, stderr string
	err            error
	code           int // the exit code main would use
}

// String summarises r for failure messages.
func (r result) String() string {
	return fmt.Sprintf("exit %d, err %v\nstdout:\n%s\nstderr:\n%s", r.code, r.err, r.stdout, r.stderr)
}

// runCLI runs a command in-process, as main would, with PXPERF_SERVER set
// to server, and standard input from stdin when it is not nil.
func runCLI(t *testing.T, server string, stdin *strings.Reader, args ...string) result {
	t.Helper()
	return runEnv(t, map[string]string{"PXPERF_SERVER": server}, stdin, args...)
}

// runEnv is runCLI with the environment env.
func runEnv(t *testing.T, env map[string]string, stdin *strings.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	var err error
	if stdin != nil {
		c := &cli{getenv: getenv, stdin: stdin, stdout: &stdout, stderr: &stderr}
		err = c.run(ctx, args)
	} else {
		err = run(ctx, args, getenv, &stdout, &stderr)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err, code: exitCode(err)}
}

// mustRun runs a command that must succeed.
func mustRun(t *testing.T, server string, args ...string) string {
	t.Helper()
	r := runCLI(t, server, nil, args...)
	if r.err != nil {
		t.Fatalf("pxperf %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// wantExit runs a command that must fail with code, its error holding
// every string in want.
func wantExit(t *testing.T, server string, code int, args []string, want ...string) result {
	t.Helper()
	r := runCLI(t, server, nil, args...)
	if r.code != code {
		t.Errorf("pxperf %s: exit %d, want %d: %v", strings.Join(args, " "), r.code, code, r)
	}
	for _, w := range want {
		if r.err == nil || !strings.Contains(r.err.Error(), w) {
			t.Errorf("pxperf %s: error %v does not contain %q", strings.Join(args, " "), r.err, w)
		}
	}
	return r
}

// jsonLines writes entries as JSON Lines to a file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// entryJSON is one JSON Lines entry for url with a method and status.
func entryJSON(method, url string, status int) string {
	return fmt.Sprintf(`{"method": %q, "url": %q, "start_time": "2026-11-27T10:00:00Z", "status_code": %d, "timings": {"total": "0.25s"}}`+"\n", method, url, status)
}

// newestID returns the id of the newest entry in memory.
func newestID(t *testing.T, server string) uint64 {
	t.Helper()
	var resp pxperfv1.ListEntriesResponse
	if err := protojson.Unmarshal([]byte(mustRun(t, server, "list", "--json", "--limit", "1")), &resp); err != nil {
		t.Fatal(err)
	}
	return resp.GetNewestId()
}

// watchBuffer is an io.Writer safe for concurrent use whose content can be
// waited for.
type watchBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // gets a value after each write
}

func newWatchBuffer() *watchBuffer { return &watchBuffer{changed: make(chan struct{}, 1)} }

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	n, err := w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the content holds s.
func (w *watchBuffer) waitFor(ctx context.Context, s string) error {
	for !strings.Contains(w.String(), s) {
		select {
		case <-w.changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w; have:\n%s", s, ctx.Err(), w.String())
		}
	}
	return nil
}

// Every client command runs against one real server.
func TestClientCommands(t *testing.T) {
	s := startServer(t)
	addr := s.Addr

	t.Run("publish JSON Lines", func(t *testing.T) {
		path := writeFile(t, "entries.jsonl", entryJSON("GET", "http://cli.example.com/one", 200)+
			"\n"+ // blank lines are skipped
			entryJSON("POST", "http://cli.example.com/two", 201)+
			`{"url": "http://cli.example.com/no-method", "start_time": "2026-11-27T10:00:00Z"}`+"\n")
		r := wantExit(t, addr, exitFailure, []string{"publish", path}, "1 of 3 entries rejected")
		for _, want := range []string{"accepted 2, rejected 1 (ids 1..2)", "rejected line 4: method:"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("publish output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("publish from stdin", func(t *testing.T) {
		r := runCLI(t, addr, strings.NewReader(entryJSON("GET", "http://cli.example.com/stdin", 200)+"not json\n"), "publish")
		if r.code != exitFailure || !strings.Contains(r.stdout, "accepted 1, rejected 1") || !strings.Contains(r.stdout, "rejected line 2: not a pxperf.v1.Entry") {
			t.Errorf("publish from stdin: %v", r)
		}
	})
	t.Run("publish HAR", func(t *testing.T) {
		out := mustRun(t, addr, "publish", "--har", "testdata/session.har")
		if !strings.Contains(out, "accepted 3, rejected 0") {
			t.Errorf("publish --har: %s", out)
		}
	})
	t.Run("list and get", func(t *testing.T) {
		out := mustRun(t, addr, "list", "--filter", "host:*.example.com status:2xx", "--oldest-first", "--limit", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "http://cli.example.com/one") ||
			!strings.Contains(lines[2], "entries 1-2 of 4 matching") {
			t.Errorf("list output:\n%s", out)
		}
		var e pxperfv1.Entry
		if err := protojson.Unmarshal([]byte(mustRun(t, addr, "get", "4")), &e); err != nil {
			t.Fatal(err)
		}
		if e.GetUrl() != "https://har.example.com/api/items?page=2&q=a%20b" || string(e.GetResponseBody().GetData()) != `{"items":[1,2,3],"page":2}` {
			t.Errorf("get 4 = %v, want the HAR's first entry with its body", &e)
		}
		if body := mustRun(t, addr, "get", "--body", "4"); body != `{"items":[1,2,3],"page":2}` {
			t.Errorf("get --body 4 = %q", body)
		}
		if body := mustRun(t, addr, "get", "--request-body", "5"); body != "ping" {
			t.Errorf("get --request-body 5 = %q, want the HAR's second entry's postData", body)
		}
		if body := mustRun(t, addr, "get", "--request-body", "4"); body != "" {
			t.Errorf("get --request-body 4 = %q, want nothing: a GET without a body", body)
		}
		wantExit(t, addr, exitUsage, []string{"get", "--body", "--request-body", "4"}, "give one of them")
		wantExit(t, addr, exitFailure, []string{"get", "999999"}, "NOT_FOUND")
		wantExit(t, addr, exitUsage, []string{"get", "x"}, "not an entry id")
		wantExit(t, addr, exitUsage, []string{"list", "--filter", "host:a OR"}, "OR needs a filter after it", "\n         ^^")
		// Exclusion and OR: of the 2xx entries, those not of cli.example.com, or the first one of it.
		out = mustRun(t, addr, "list", "--filter", "status:2xx -host:cli.example.com OR url:/one", "--oldest-first")
		if !strings.Contains(out, "http://cli.example.com/one") || !strings.Contains(out, "har.example.com") ||
			strings.Contains(out, "http://cli.example.com/two") {
			t.Errorf("list with exclusion and OR:\n%s", out)
		}
	})
	t.Run("tail with a filter", func(t *testing.T) {
		from := newestID(t, addr) + 1
		done := make(chan result, 1)
		go func() {
			done <- runCLI(t, addr, nil, "tail", "--from", fmt.Sprint(from), "--count", "2", "--filter", "status:>=400 method:POST")
		}()
		// --from makes the order of tail and publish irrelevant.
		mustRun(t, addr, "publish", writeFile(t, "tail.jsonl",
			entryJSON("POST", "http://tail.example.com/match-1", 500)+
				entryJSON("GET", "http://tail.example.com/wrong-method", 500)+
				entryJSON("POST", "http://tail.example.com/wrong-status", 200)+
				entryJSON("POST", "http://tail.example.com/match-2", 404)))
		r := <-done
		if r.err != nil {
			t.Fatalf("tail: %v", r)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "POST    500") || !strings.Contains(lines[0], "/match-1") || !strings.Contains(lines[1], "/match-2") {
			t.Errorf("tail printed:\n%s\nwant match-1 (POST 500) and match-2", r.stdout)
		}
	})
	t.Run("tail last", func(t *testing.T) {
		out := mustRun(t, addr, "tail", "--last", "2", "--count", "2", "--filter", "host:tail.example.com")
		if !strings.Contains(out, "/wrong-status") || !strings.Contains(out, "/match-2") || strings.Count(out, "\n") != 2 {
			t.Errorf("tail --last 2:\n%s", out)
		}
		var e pxperfv1.Entry
		if err := protojson.Unmarshal([]byte(mustRun(t, addr, "tail", "--last", "1", "--count", "1", "--json")), &e); err != nil || e.GetUrl() != "http://tail.example.com/match-2" {
			t.Errorf("tail --json = %v, %v; want match-2", &e, err)
		}
		wantExit(t, addr, exitUsage, []string{"tail", "--last", "1", "--from", "1"}, "not both")
	})
	t.Run("stats", func(t *testing.T) {
		out := mustRun(t, addr, "stats")
		for _, want := range []string{"entries ", "score ", "memory", "alerts "} {
			if !strings.Contains(out, want) {
				t.Errorf("stats lacks %q:\n%s", want, out)
			}
		}
		var st pxperfv1.Stats
		if err := protojson.Unmarshal([]byte(mustRun(t, addr, "stats", "--json")), &st); err != nil || st.GetStore().GetNewestId() == 0 {
			t.Errorf("stats --json = %v, %v", &st, err)
		}
		out = mustRun(t, addr, "stats", "--watch", "--count", "2", "--interval", "100ms")
		if n := strings.Count(out, "sample "); n != 2 {
			t.Errorf("stats --watch --count 2 printed %d samples:\n%s", n, out)
		}
	})
	t.Run("config", func(t *testing.T) {
		var cfg pxperfv1.Config
		if err := protojson.Unmarshal([]byte(mustRun(t, addr, "config", "get")), &cfg); err != nil || cfg.GetMemory().GetMaxEntries() != 1000 {
			t.Errorf("config get = %v, %v", &cfg, err)
		}
		if out := mustRun(t, addr, "config", "get", "memory.maxEntries"); out != "memory.max_entries = 1000\n" {
			t.Errorf("config get memory.maxEntries = %q", out)
		}
		out := mustRun(t, addr, "config", "set", "memory.max_entries=5000", "throttle.mode=fixed", "throttle.batch_timeout=50ms")
		want := "memory.max_entries = 5000\nthrottle.mode = THROTTLE_MODE_FIXED\nthrottle.batch_timeout = 50ms\n"
		if out != want {
			t.Errorf("config set printed:\n%s\nwant:\n%s", out, want)
		}
		// A group prints one line a field.
		out = mustRun(t, addr, "config", "get", "throttle")
		if !strings.HasPrefix(out, "throttle.mode = THROTTLE_MODE_FIXED\n") || !strings.Contains(out, "\nthrottle.batch_timeout = 50ms\n") ||
			strings.Count(out, "\n") != 14 {
			t.Errorf("after config set, config get throttle printed:\n%s", out)
		}
		wantExit(t, addr, exitFailure, []string{"config", "set", "memory.max_entries=0"}, "INVALID_ARGUMENT", "memory.max_entries")
		wantExit(t, addr, exitFailure, []string{"config", "set", "server.listen_address=127.0.0.1:1"}, "FAILED_PRECONDITION", "server")
	})
	t.Run("optimize", func(t *testing.T) {
		out := mustRun(t, addr, "optimize", "evict", "rotate")
		if !strings.HasPrefix(out, "evict ") || !strings.Contains(out, "\nrotate ") {
			t.Errorf("optimize evict rotate:\n%s", out)
		}
		wantExit(t, addr, exitUsage, []string{"optimize", "defrag"}, `unknown action "defrag"`)
	})
	t.Run("resources", func(t *testing.T) {
		out := mustRun(t, addr, "resources", "list")
		if !strings.Contains(out, "ID ") || !strings.Contains(out, "worker") {
			t.Errorf("resources list:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tailOut := newWatchBuffer()
		done := make(chan error, 1)
		go func() {
			c := &cli{getenv: func(string) string { return "" }, stdout: tailOut, stderr: tailOut}
			done <- c.run(ctx, []string{"tail", "--server", addr, "--last", "1"})
		}()
		// Once the snapshot is printed, the stream is open and tracked.
		if err := tailOut.waitFor(ctx, "end of snapshot"); err != nil {
			t.Fatal(err)
		}
		var subs []*pxperfv1.Resource
		sc := bufio.NewScanner(strings.NewReader(mustRun(t, addr, "resources", "list", "--type", "subscriber", "--json")))
		for sc.Scan() {
			r := &pxperfv1.Resource{}
			if err := protojson.Unmarshal(sc.Bytes(), r); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, r)
		}
		if len(subs) == 0 {
			t.Fatal("resources list --type subscriber shows no subscriber while tail runs")
		}
		id := subs[len(subs)-1].GetId() // the newest: tail's
		if out := mustRun(t, addr, "resources", "close", id, "--reason", "cli test"); !strings.Contains(out, "closed "+id) {
			t.Errorf("resources close: %s", out)
		}
		select {
		case err := <-done:
			if exitCode(err) != exitRPC || err == nil || !strings.Contains(err.Error(), "ABORTED") || !strings.Contains(err.Error(), "cli test") {
				t.Errorf("tail ended with exit %d, %v; want exit 3, ABORTED with the reason", exitCode(err), err)
			}
		case <-ctx.Done():
			t.Fatal("tail still runs after its subscriber was closed")
		}
		wantExit(t, addr, exitFailure, []string{"resources", "close", id}, "NOT_FOUND")
		wantExit(t, addr, exitUsage, []string{"resources", "list", "--type", "socket"}, "--type")
	})
	t.Run("archive", func(t *testing.T) {
		if out := mustRun(t, addr, "archive", "files"); !strings.Contains(out, ".jsonl") {
			t.Errorf("archive files:\n%s", out)
		}
		out := mustRun(t, addr, "archive", "read", "--from", "1", "--to", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("archive read --from 1 --to 2: %d lines:\n%s", len(lines), out)
		}
		for i, l := range lines {
			var e pxperfv1.Entry
			if err := protojson.Unmarshal([]byte(l), &e); err != nil || e.GetId() != uint64(i+1) {
				t.Errorf("line %d = %v, %v; want entry %d", i, &e, err, i+1)
			}
		}
		out = mustRun(t, addr, "archive", "read", "--since", "2026-11-27T00:00:00Z", "--filter", "host:har.example.com")
		if n := strings.Count(out, "\n"); n != 2 {
			t.Errorf("archive read --since with a filter: %d lines, want the HAR's 2 entries of har.example.com:\n%s", n, out)
		}
		var doc struct {
			Log struct {
				Version string `json:"version"`
				Entries []struct {
					ID       uint64 `json:"_id"`
					Request  struct{ URL string }
					Response struct{ Status int }
				} `json:"entries"`
			} `json:"log"`
		}
		out = mustRun(t, addr, "archive", "export", "--har", "--from", "1")
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("archive export --har is not JSON: %v\n%s", err, out)
		}
		if doc.Log.Version != "1.2" || uint64(len(doc.Log.Entries)) != newestID(t, addr) || doc.Log.Entries[0].Request.URL != "http://cli.example.com/one" {
			t.Errorf("archive export --har: version %q, %d entries, first %+v", doc.Log.Version, len(doc.Log.Entries), doc.Log.Entries[0])
		}
		wantExit(t, addr, exitUsage, []string{"archive", "export", "--from", "1"}, "--har")
		wantExit(t, addr, exitUsage, []string{"archive", "read"}, "--from ID or --since TIME")
		wantExit(t, addr, exitUsage, []string{"archive", "read", "--since", "last tuesday"}, "RFC 3339")
	})
	t.Run("exit codes of the process", func(t *testing.T) {
		bin, err := testserve.Build()
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			args  []string
			stdin string
			want  int
		}{
			{args: []string{"stats", "--server", addr}, want: 0},
			{args: []string{"tail", "--help"}, want: 0},
			{args: []string{"publish", "--server", addr}, stdin: `{"method": "GET"}`, want: exitFailure},
			{args: []string{"get", "--server", addr, "999999"}, want: exitFailure},
			{args: []string{"tail", "--bogus"}, want: exitUsage},
			{args: []string{"frobnicate"}, want: exitUsage},
			{args: []string{"stats", "--server", "127.0.0.1:1"}, want: exitRPC},
		}
		for _, tt := range tests {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			out, err := cmd.CombinedOutput()
			cancel()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Errorf("pxperf %s: exit %d, want %d\n%s", strings.Join(tt.args, " "), code, tt.want, out)
			}
		}
	})
}

// Every command has --help with an example, and an unknown flag is a usage
// error that shows it.
// publish sends what it has read within its flush interval, not only when
// a batch fills or the input ends: a pipe is published as it comes.
func TestPublishFromSlowPipe(t *testing.T) {
	addr := startServer(t).Addr
	before := newestID(t, addr)
	pr, pw := io.Pipe()
	defer pw.Close() // ends the command's reading, should the test fail first
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		c := &cli{getenv: func(k string) string { return map[string]string{"PXPERF_SERVER": addr}[k] }, stdin: pr, stdout: &stdout, stderr: &stderr}
		done <- c.run(ctx, []string{"publish"})
	}()
	if _, err := io.WriteString(pw, entryJSON("GET", "http://cli.example.com/piped", 200)); err != nil {
		t.Fatal(err)
	}
	for newestID(t, addr) == before {
		select {
		case <-ctx.Done():
			t.Fatal("the piped entry was not published while the pipe stayed open")
		case <-time.After(20 * time.Millisecond):
		}
	}
	pw.Close()
	if err := <-done; err != nil || !strings.Contains(stdout.String(), "accepted 1, rejected 0") {
		t.Errorf("publish from a pipe: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}

func TestClientHelp(t *testing.T) {
	for _, args := range [][]string{
		{"publish"}, {"tail"}, {"list"}, {"get"}, {"stats"}, {"optimize"},
		{"config", "get"}, {"config", "set"}, {"resources", "list"}, {"resources", "close"},
		{"archive", "files"}, {"archive", "read"}, {"archive", "export"},
		{"config"}, {"resources"}, {"archive"},
	} {
		name := strings.Join(args, " ")
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, "", nil, append(args, "--help")...)
			if !errors.Is(r.err, flag.ErrHelp) || r.code != 0 {
				t.Errorf("%s --help: %v", name, r)
			}
			if !strings.Contains(r.stderr, "Example") || !strings.Contains(r.stderr, "  pxperf "+name) {
				t.Errorf("%s --help lacks an example:\n%s", name, r.stderr)
			}
			r = runCLI(t, "", nil, append(args, "--bogus")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "Usage: pxperf "+name) {
				t.Errorf("%s --bogus: %v", name, r)
			}
		})
	}
}

// Exit codes follow the gRPC status of a failed call.
func TestCodeExit(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{errors.New("serve failed"), exitUsage},
		{failure("rejected"), exitFailure},
		{fmt.Errorf("wrapped: %w", usageError("bad")), exitUsage},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	for code, want := range map[codes.Code]int{
		codes.OK:                 0,
		codes.NotFound:           exitFailure,
		codes.InvalidArgument:    exitFailure,
		codes.FailedPrecondition: exitFailure,
		codes.OutOfRange:         exitFailure,
		codes.Unavailable:        exitRPC,
		codes.DeadlineExceeded:   exitRPC,
		codes.Aborted:            exitRPC,
		codes.ResourceExhausted:  exitRPC,
		codes.Internal:           exitRPC,
		codes.Unauthenticated:    exitDenied,
		codes.PermissionDenied:   exitDenied,
	} {
		err := (&connFlags{server: "127.0.0.1:1"}).rpcError("op", status.Error(code, "boom"))
		if got := exitCode(err); got != want {
			t.Errorf("exit code for %v = %d, want %d (%v)", code, got, want, err)
		}
	}
	if got := codeName(codes.FailedPrecondition); got != "FAILED_PRECONDITION" {
		t.Errorf("codeName(FailedPrecondition) = %q", got)
	}
}
