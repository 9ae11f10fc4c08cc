package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestProxyAddress(t *testing.T) {
	for _, tc := range []struct {
		server, listen string
		want           string // the URL, or a part of the error
	}{
		{"127.0.0.1:50051", "127.0.0.1:3128", "http://127.0.0.1:3128"},
		{"localhost:50051", "127.0.0.1:3128", "http://127.0.0.1:3128"},
		{"127.0.0.1:50051", "0.0.0.0:3128", "http://127.0.0.1:3128"},
		{"pxperf.example.test:50051", "0.0.0.0:3128", "http://pxperf.example.test:3128"},
		{"pxperf.example.test:50051", ":3128", "http://pxperf.example.test:3128"},
		{"[::1]:50051", "[::]:3128", "http://[::1]:3128"},
		{"10.0.0.5:50051", "10.0.0.5:3128", "http://10.0.0.5:3128"},
		{"10.0.0.5:50051", "127.0.0.1:3128", "own loopback"},
		{"127.0.0.1:50051", "", "runs no recording proxy"},
		{"127.0.0.1:50051", "127.0.0.1:0", "port picked at start"},
		{"127.0.0.1:50051", "nohost", "not host:port"},
	} {
		u, err := proxyAddress(tc.server, tc.listen)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = u.String()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("proxyAddress(%q, %q) = %s, want %s", tc.server, tc.listen, got, tc.want)
		}
	}
}

func TestHeaderFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want http.Header // nil: an error
	}{
		{[]string{"Authorization: Bearer a:b"}, http.Header{"Authorization": {"Bearer a:b"}}},
		{[]string{"x-one:1", "X-One:  2 "}, http.Header{"X-One": {"1", "2"}}},
		{[]string{"Cookie:"}, http.Header{"Cookie": {""}}},
		{[]string{"no colon"}, nil},
		{[]string{": value"}, nil},
		{[]string{"Bad Name: 1"}, nil},
		{[]string{"X: a\x00b"}, nil},
	} {
		var f headerFlag
		var err error
		for _, a := range tc.args {
			if err = f.Set(a); err != nil {
				break
			}
		}
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("-H %q: %v, want an error", tc.args, f.h)
		case tc.want != nil && (err != nil || fmt.Sprint(f.h) != fmt.Sprint(tc.want)):
			t.Errorf("-H %q: %v, %v; want %v", tc.args, f.h, err, tc.want)
		}
	}
}

func TestReplayHelp(t *testing.T) {
	r := runCLI(t, "", nil, "replay", "--help")
	if !errors.Is(r.err, flag.ErrHelp) || !strings.Contains(r.stderr, "  pxperf replay 42") || !strings.Contains(r.stderr, "-through-proxy") {
		t.Errorf("replay --help: %v", r)
	}
	r = runCLI(t, "", nil, "get", "--help")
	if !errors.Is(r.err, flag.ErrHelp) || !strings.Contains(r.stderr, "-curl") {
		t.Errorf("get --help: %v", r)
	}
	wantExit(t, "", exitUsage, []string{"replay"}, "missing argument")
	wantExit(t, "", exitUsage, []string{"replay", "x"}, "not an entry id")
	wantExit(t, "", exitUsage, []string{"replay", "1", "-H", "no colon"}, "Name: value")
}

// target is a loopback server that reports the requests it gets.
type target struct {
	*httptest.Server
	addr string
	got  chan *http.Request // each with its body read into Body again
	body chan []byte
}

func newReplayTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{got: make(chan *http.Request, 8), body: make(chan []byte, 8)}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		tg.got <- r.Clone(context.Background())
		tg.body <- b
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "replayed")
	}))
	t.Cleanup(tg.Close)
	tg.addr = tg.Listener.Addr().String()
	return tg
}

// next returns the next request the target got and its body.
func (tg *target) next(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	select {
	case r := <-tg.got:
		return r, <-tg.body
	case <-time.After(30 * time.Second):
		t.Fatal("the target got no request")
		return nil, nil
	}
}

// getEntry returns the entry id as the server has it.
func getEntry(t *testing.T, addr string, id uint64) *pxperfv1.Entry {
	t.Helper()
	var e pxperfv1.Entry
	if err := protojson.Unmarshal([]byte(mustRun(t, addr, "get", fmt.Sprint(id))), &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// lineID returns the entry id at the start of an entry line.
func lineID(t *testing.T, line string) uint64 {
	t.Helper()
	fields := strings.Fields(line)
	if len(fields) == 0 {
		t.Fatal("no entry line")
	}
	id, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		t.Fatalf("no entry id at the start of %q", line)
	}
	return id
}

// A recorded request is printed as curl, and replayed directly and through
// the recording proxy, and each replay is an entry linked to the original.
func TestReplay(t *testing.T) {
	tg := newReplayTarget(t)
	s := startServer(t, "--proxy-listen", "127.0.0.1:0", "--allow-targets", tg.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proxyAddr := s.Logged(t, ctx, regexp.MustCompile(`msg="proxy serving".* addr=(\S+)`))
	addr := s.Addr

	const body = "{\"name\": \"O'Brien\"}\n\x00binary tail"
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	entry := func(method, url string, body []byte, originalSize int, extra string) string {
		return fmt.Sprintf(`{"method": %q, "url": %q, "start_time": "2026-11-27T10:00:00Z", "status_code": 201,
			"request_headers": [{"name": "Host", "value": %q}, {"name": "Content-Type", "value": "application/json"},
				{"name": "Authorization", "value": "Bearer secret"}, {"name": "Cookie", "value": "id=secret"},
				{"name": "X-Trace", "value": "t-1"}, {"name": "Connection", "value": "keep-alive"}],
			"request_body": {"data": %q, "content_type": "application/json", "original_size": %d}%s}`,
			method, url, strings.SplitN(url, "/", 4)[2], base64.StdEncoding.EncodeToString(body), originalSize, extra)
	}
	lines := []string{
		entry("POST", "http://"+tg.addr+"/api?x=1", []byte(body), len(body), ""),
		entry("POST", "http://"+tg.addr+"/cut", []byte("abc"), 10, ""),
		entry("GET", "http://"+closedAddr+"/down", nil, 0, ""),
		`{"method": "CONNECT", "url": "example.test:443", "tunnel": true, "start_time": "2026-11-27T10:00:00Z", "status_code": 200}`,
	}
	for i := range lines {
		lines[i] = strings.Join(strings.Fields(lines[i]), " ")
	}
	before := newestID(t, addr)
	out := mustRun(t, addr, "publish", writeFile(t, "replay.jsonl", strings.Join(lines, "\n")+"\n"))
	if !strings.Contains(out, "accepted 4, rejected 0") {
		t.Fatalf("publish: %s", out)
	}
	orig, cut, down, tunnel := before+1, before+2, before+3, before+4
	if e := getEntry(t, addr, orig); string(e.GetRequestBody().GetData()) != body {
		t.Fatalf("the server keeps request body %q, want %q", e.GetRequestBody().GetData(), body)
	}

	t.Run("get --curl", func(t *testing.T) {
		out := mustRun(t, addr, "get", fmt.Sprint(orig), "--curl", "-H", "Authorization: Bearer again")
		for _, want := range []string{
			"# Left out, redacted when recorded: Cookie.",
			"printf '{\"name\": \"O\\047Brien\"}\\012\\000binary tail' | curl 'http://" + tg.addr + "/api?x=1'",
			"-H 'Authorization: Bearer again'", "-H 'X-Trace: t-1'", "--data-binary @-",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("get --curl lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Connection") || strings.Contains(out, "secret") {
			t.Errorf("get --curl copies Connection or a redacted value:\n%s", out)
		}
		if _, err := exec.LookPath("curl"); err == nil {
			// The command runs as printed.
			sh := exec.CommandContext(ctx, "sh", "-c", out)
			sh.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
			if got, err := sh.Output(); err != nil || string(got) != "replayed" {
				t.Errorf("sh -c <get --curl>: %q, %v", got, err)
			}
			r, b := tg.next(t)
			if r.Method != "POST" || r.RequestURI != "/api?x=1" || string(b) != body || r.Header.Get("Authorization") != "Bearer again" {
				t.Errorf("curl sent %s %s %q Authorization %q", r.Method, r.RequestURI, b, r.Header.Get("Authorization"))
			}
		}
		out = mustRun(t, addr, "get", fmt.Sprint(orig), "--curl", "--proxy", "127.0.0.1:3128")
		if !strings.Contains(out, "--proxy 'http://127.0.0.1:3128'") || !strings.Contains(out, fmt.Sprintf("--proxy-header 'Pxperf-Replay-Of: %d'", orig)) {
			t.Errorf("get --curl --proxy:\n%s", out)
		}
		wantExit(t, addr, exitUsage, []string{"get", fmt.Sprint(orig), "--through-proxy"}, "go with --curl")
		wantExit(t, addr, exitFailure, []string{"get", fmt.Sprint(tunnel), "--curl"}, "CONNECT tunnel")
		wantExit(t, addr, exitFailure, []string{"get", fmt.Sprint(cut), "--curl"}, "3 of its 10 bytes", "--truncated-body")
	})

	t.Run("direct", func(t *testing.T) {
		r := runCLI(t, addr, nil, "replay", fmt.Sprint(orig), "-H", "Authorization: Bearer again")
		if r.err != nil {
			t.Fatalf("replay: %v", r)
		}
		got, b := tg.next(t)
		if got.Method != "POST" || got.RequestURI != "/api?x=1" || string(b) != body ||
			got.Header.Get("Authorization") != "Bearer again" || got.Header.Get("X-Trace") != "t-1" ||
			got.Header.Get("Content-Type") != "application/json" || got.Header.Get("Cookie") != "" {
			t.Errorf("the target got %s %s %q with %v", got.Method, got.RequestURI, b, got.Header)
		}
		if !strings.Contains(r.stderr, "left out, redacted when recorded: Cookie; give them again with -H") {
			t.Errorf("replay's stderr does not name the header left out:\n%s", r.stderr)
		}
		id := lineID(t, r.stdout)
		if !strings.Contains(r.stdout, "POST") || !strings.Contains(r.stdout, "200") || !strings.Contains(r.stdout, tg.addr+"/api?x=1") {
			t.Errorf("replay printed %q, want the new entry's line", r.stdout)
		}
		e := getEntry(t, addr, id)
		if e.GetReplayOf() != orig || e.GetStatusCode() != 200 || string(e.GetRequestBody().GetData()) != body ||
			string(e.GetResponseBody().GetData()) != "replayed" {
			t.Errorf("entry %d: replay_of %d status %d request body %q response body %q; want a replay of %d",
				id, e.GetReplayOf(), e.GetStatusCode(), e.GetRequestBody().GetData(), e.GetResponseBody().GetData(), orig)
		}
		for _, h := range e.GetRequestHeaders() {
			if h.GetName() == "Authorization" && h.GetValue() != "[REDACTED]" {
				t.Errorf("entry %d records Authorization %q", id, h.GetValue())
			}
		}
	})

	t.Run("through the recording proxy", func(t *testing.T) {
		r := runCLI(t, addr, nil, "replay", fmt.Sprint(orig), "--proxy", "http://"+proxyAddr)
		if r.err != nil {
			t.Fatalf("replay --proxy: %v", r)
		}
		got, b := tg.next(t)
		if got.Method != "POST" || string(b) != body || got.Header.Get("Pxperf-Replay-Of") != "" || !strings.Contains(got.Header.Get("Via"), "pxperf") {
			t.Errorf("the target got %s %q with %v; want the request through the proxy, without its link header", got.Method, b, got.Header)
		}
		id := lineID(t, r.stdout)
		e := getEntry(t, addr, id)
		if e.GetReplayOf() != orig || e.GetStatusCode() != 200 || e.GetRequestId() == "" ||
			slices.ContainsFunc(e.GetRequestHeaders(), func(h *pxperfv1.Header) bool { return h.GetName() == "Pxperf-Replay-Of" }) {
			t.Errorf("entry %d: replay_of %d status %d request id %q headers %v; want the proxy's entry of the replay of %d",
				id, e.GetReplayOf(), e.GetStatusCode(), e.GetRequestId(), e.GetRequestHeaders(), orig)
		}
		// The config says port 0: the port the proxy took is not known.
		wantExit(t, addr, exitFailure, []string{"replay", fmt.Sprint(orig), "--through-proxy"}, "port picked at start", "--proxy")
	})

	t.Run("failures", func(t *testing.T) {
		wantExit(t, addr, exitFailure, []string{"replay", "999999"}, "NOT_FOUND")
		wantExit(t, addr, exitFailure, []string{"replay", fmt.Sprint(tunnel)}, "CONNECT tunnel")
		wantExit(t, addr, exitFailure, []string{"replay", fmt.Sprint(cut)}, "3 of its 10 bytes were recorded", "--truncated-body")
		r := runCLI(t, addr, nil, "replay", fmt.Sprint(cut), "--truncated-body")
		if got, b := tg.next(t); r.err != nil || got.RequestURI != "/cut" || string(b) != "abc" {
			t.Errorf("replay --truncated-body: the target got %s %q; %v", got.RequestURI, b, r)
		}
		// The exchange fails: the entry is published all the same.
		r = wantExit(t, addr, exitFailure, []string{"replay", fmt.Sprint(down)}, "failed", "connection refused")
		e := getEntry(t, addr, lineID(t, r.stdout))
		if e.GetReplayOf() != down || e.GetState() != pxperfv1.EntryState_ENTRY_STATE_FAILED || e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_CONNECT {
			t.Errorf("the failed replay's entry: replay_of %d, %v %v; want FAILED CONNECT, replay_of %d", e.GetReplayOf(), e.GetState(), e.GetError(), down)
		}
	})
}
