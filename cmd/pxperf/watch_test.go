package main

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	uv "github.com/charmbracelet/ultraviolet"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"
	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testserve"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The terminal monitor is tested as a person uses it: the real binary runs
// in a pseudo-terminal, a terminal emulator (charmbracelet/x/vt) turns its
// output into a screen of cells, keys are typed into the terminal, and the
// tests read the screen.

// Screen size of the tests' terminal.
const termCols, termRows = 120, 30

// ptyTerm is pxperf watch running in a pseudo-terminal, with an emulated
// screen.
type ptyTerm struct {
	t   *testing.T
	cmd *exec.Cmd
	ptm *os.File

	mu  sync.Mutex // guards emu and what follows
	emu *vt.Emulator
	// syncing is set between the start and the end of a synchronized
	// update (mode 2026): the program is drawing a frame.
	syncing bool
	frames  int // synchronized updates seen
	// frame is the screen after the last complete frame, and frameFg the
	// foreground colour of each row's status cell in it.
	frame   string
	frameFg []color.Color

	changed chan struct{} // gets a value after each write to the screen
	output  chan struct{} // closed when the program's output ends
	input   chan struct{} // closed when the terminal's input pipe is drained
	exited  chan struct{} // closed when the program has exited
	exitErr error         // set before exited is closed
}

// startWatch runs pxperf watch with args in a termCols x termRows
// pseudo-terminal.
func startWatch(t *testing.T, args ...string) *ptyTerm {
	t.Helper()
	bin, err := testserve.Build()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"watch"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PXPERF_") && !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "TERM=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "TERM=xterm-256color")
	ptm, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: termRows, Cols: termCols})
	if err != nil {
		t.Fatal(err)
	}
	pt := &ptyTerm{
		t: t, cmd: cmd, ptm: ptm,
		emu:     vt.NewEmulator(termCols, termRows),
		changed: make(chan struct{}, 1),
		output:  make(chan struct{}),
		input:   make(chan struct{}),
		exited:  make(chan struct{}),
	}
	pt.emulateSyncUpdates()
	// The program's output goes to the screen.
	go func() {
		defer close(pt.output)
		buf := make([]byte, 64<<10)
		for {
			n, err := ptm.Read(buf)
			if n > 0 {
				pt.mu.Lock()
				pt.emu.Write(buf[:n])
				if !pt.syncing {
					pt.frame = pt.emu.String()
					pt.frameFg = pt.frameFg[:0]
					for y := range termRows {
						var fg color.Color
						if c := pt.emu.CellAt(statusColumn, y); c != nil {
							fg = c.Style.Fg
						}
						pt.frameFg = append(pt.frameFg, fg)
					}
				}
				pt.mu.Unlock()
				select {
				case pt.changed <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return // EIO once the program has exited
			}
		}
	}()
	// The terminal's input (keys, and its answers to the program's
	// queries) goes to the program.
	go func() {
		defer close(pt.input)
		io.Copy(ptm, pt.emu)
	}()
	go func() {
		pt.exitErr = cmd.Wait()
		close(pt.exited)
	}()
	t.Cleanup(pt.close)
	return pt
}

// emulateSyncUpdates teaches the emulator synchronized updates (mode
// 2026), which it does not know: it says it supports them, so that the
// program wraps each frame in them, and notes when a frame starts and
// ends, so that the tests read whole frames, never one half drawn.
func (pt *ptyTerm) emulateSyncUpdates() {
	const syncMode = 2026
	only := func(params ansi.Params) bool {
		return len(params) == 1 && params[0].Param(-1) == syncMode
	}
	pt.emu.RegisterCsiHandler(ansi.Command('?', '$', 'p'), func(params ansi.Params) bool {
		if !only(params) {
			return false
		}
		io.WriteString(pt.emu.InputPipe(), ansi.ReportMode(ansi.ModeSynchronizedOutput, ansi.ModeReset))
		return true
	})
	pt.emu.RegisterCsiHandler(ansi.Command('?', 0, 'h'), func(params ansi.Params) bool {
		if !only(params) {
			return false
		}
		pt.syncing = true
		return true
	})
	pt.emu.RegisterCsiHandler(ansi.Command('?', 0, 'l'), func(params ansi.Params) bool {
		if !only(params) {
			return false
		}
		pt.syncing = false
		pt.frames++
		return true
	})
}

// close kills the program if it still runs and stops the copying.
func (pt *ptyTerm) close() {
	select {
	case <-pt.exited:
	default:
		pt.cmd.Process.Kill()
		<-pt.exited
	}
	<-pt.output
	pt.emu.InputPipe().(io.Closer).Close()
	<-pt.input
	pt.ptm.Close()
	if pt.t.Failed() {
		pt.t.Logf("last screen:\n%s", pt.screen())
	}
}

// screen returns the text on the screen after the last whole frame, one
// line per row.
func (pt *ptyTerm) screen() string {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.frame
}

// statusColumn is where a row's status starts.
const statusColumn = colID + 1 + colTime + 1 + colMethod + 1

// statusFg returns the foreground colour of the status of row y in the
// last whole frame, or nil.
func (pt *ptyTerm) statusFg(y int) color.Color {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if y < 0 || y >= len(pt.frameFg) {
		return nil
	}
	return pt.frameFg[y]
}

// press types keys: uv key codes, or text.
func (pt *ptyTerm) press(keys ...any) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, k := range keys {
		switch k := k.(type) {
		case rune:
			pt.emu.SendKey(uv.KeyPressEvent{Code: k})
		case string:
			pt.emu.SendText(k)
		case uv.KeyPressEvent:
			pt.emu.SendKey(k)
		default:
			panic(fmt.Sprintf("press %T", k))
		}
	}
}

// waitFor waits until cond holds for the screen, and returns the screen.
func (pt *ptyTerm) waitFor(what string, timeout time.Duration, cond func(screen string) bool) string {
	pt.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s := pt.screen()
		if cond(s) {
			return s
		}
		select {
		case <-pt.changed:
		case <-pt.exited:
			if s := pt.screen(); cond(s) {
				return s
			}
			pt.t.Fatalf("pxperf watch exited (%v) waiting for %s; screen:\n%s", pt.exitErr, what, pt.screen())
		case <-deadline.C:
			pt.t.Fatalf("timed out after %v waiting for %s; screen:\n%s", timeout, what, pt.screen())
		}
	}
}

// waitText waits until the screen shows every one of texts.
func (pt *ptyTerm) waitText(timeout time.Duration, texts ...string) string {
	pt.t.Helper()
	return pt.waitFor(fmt.Sprintf("%q", texts), timeout, func(s string) bool {
		for _, t := range texts {
			if !strings.Contains(s, t) {
				return false
			}
		}
		return true
	})
}

// tableURLs returns the URLs of the table's rows, top to bottom.
func tableURLs(screen string) []string {
	var urls []string
	for _, line := range strings.Split(screen, "\n") {
		if i := strings.Index(line, "http://watch.test/"); i >= 0 && rowLine.MatchString(line) {
			urls = append(urls, strings.Fields(line[i:])[0])
		}
	}
	return urls
}

// rowLine matches a table row: id, time, method, status.
var rowLine = regexp.MustCompile(`^\s*\d+ \d\d:\d\d:\d\d\.\d{3} [A-Z]+\s+(\d{3}|ERR|…|-)\s`)

// lineWith returns the row number of the first line of the screen holding
// s, or -1.
func lineWith(screen, s string) int {
	return slices.IndexFunc(strings.Split(screen, "\n"), func(l string) bool { return strings.Contains(l, s) })
}

// testEntry is an entry with a URL under http://watch.test/.
func testEntry(path string, status int32) *pxperfv1.Entry {
	return &pxperfv1.Entry{
		Method:        "GET",
		Url:           "http://watch.test/" + path,
		Host:          "watch.test",
		StartTime:     timestamppb.Now(),
		StatusCode:    status,
		State:         pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		Timings:       &pxperfv1.Timings{Total: durationpb.New(12500 * time.Microsecond)},
		BytesReceived: 2048,
		ProxyDecision: &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_DIRECT},
	}
}

// publish publishes entries and fails the test unless all are accepted.
func publish(t *testing.T, cl *client.Client, entries ...*pxperfv1.Entry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, err := cl.Publish(ctx, entries...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.GetId() == 0 {
			t.Fatalf("entry %d rejected: %v", i, r.GetRejection())
		}
	}
}

// sampleTime matches the time of the stats sample in the title line.
var sampleTime = regexp.MustCompile(`stats at (\d\d:\d\d:\d\d)`)

// waitNextSample waits until the header shows a stats sample taken after
// the one it shows now: a second or more, so several table refreshes.
func (pt *ptyTerm) waitNextSample() {
	pt.t.Helper()
	now := sampleTime.FindStringSubmatch(pt.waitFor("a stats sample", 10*time.Second, sampleTime.MatchString))[1]
	pt.waitFor("the next stats sample", 10*time.Second, func(s string) bool {
		m := sampleTime.FindStringSubmatch(s)
		return m != nil && m[1] != now
	})
}

func TestWatch(t *testing.T) {
	s := startServer(t)
	cl, err := client.New(client.Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// 40 entries: ok/1..40 are 200 but every fifth is fail/N with 503 and
	// every seventh missing/N with 404. The newest 503 carries headers and
	// a body for the detail pane.
	var entries []*pxperfv1.Entry
	for i := 1; i <= 40; i++ {
		switch {
		case i%5 == 0:
			entries = append(entries, testEntry(fmt.Sprintf("fail/%d", i), 503))
		case i%7 == 0:
			entries = append(entries, testEntry(fmt.Sprintf("missing/%d", i), 404))
		default:
			entries = append(entries, testEntry(fmt.Sprintf("ok/%d", i), 200))
		}
	}
	last := entries[39] // fail/40
	last.ResponseHeaders = []*pxperfv1.Header{{Name: "X-Watch-Test", Value: "detail-header"}, {Name: "Content-Type", Value: "text/plain"}}
	last.RequestHeaders = []*pxperfv1.Header{{Name: "User-Agent", Value: "watch-test/1"}}
	last.ResponseBody = &pxperfv1.Body{Data: []byte("watch body preview\nsecond line"), ContentType: "text/plain", OriginalSize: 30}
	last.ProxyDecision = &pxperfv1.ProxyDecision{Route: pxperfv1.Route_ROUTE_PROXY, Upstream: "upstream.test:3128", Source: pxperfv1.DecisionSource_DECISION_SOURCE_PAC}
	publish(t, cl, entries...)

	pt := startWatch(t, "--server", s.Addr, "--refresh", "100ms")
	const wait = 10 * time.Second

	// The newest entries, newest at the bottom, and the header.
	// Following, the table is a live view: one Subscribe stream.
	screen := pt.waitText(wait, "http://watch.test/fail/40", "following the newest", "table live", "subscribers 1", "score")
	for _, re := range []string{`score \d+/100`, `subscribers \d+`, `ingest\s+[\d,]+/s`, `memory\s+[\d.]+% of`, `alerts none`} {
		if !regexp.MustCompile(re).MatchString(screen) {
			t.Errorf("header does not match %s:\n%s", re, screen)
		}
	}
	urls := tableURLs(screen)
	if n := len(urls); n == 0 || urls[n-1] != "http://watch.test/fail/40" || !slices.Contains(urls, "http://watch.test/ok/39") ||
		slices.Index(urls, "http://watch.test/ok/39") > slices.Index(urls, "http://watch.test/fail/40") {
		t.Errorf("table rows %q: want the newest, fail/40, at the bottom, ok/39 above it", urls)
	}
	// Coloured by status class: 503 red, 404 yellow, 200 green.
	for _, c := range []struct {
		url  string
		want ansi.BasicColor
	}{{"fail/35", ansi.Red}, {"missing/28", ansi.Yellow}, {"ok/39", ansi.Green}} {
		y := lineWith(screen, "http://watch.test/"+c.url+" ")
		if y < 0 {
			t.Errorf("no row for %s", c.url)
			continue
		}
		if got := pt.statusFg(y); !sameColor(got, c.want) {
			t.Errorf("row %s: foreground %v, want %v", c.url, got, c.want)
		}
	}

	// A filter with a syntax error: the caret under the token, and the
	// filter in force stays.
	pt.press('/', "method:GET status:>=700", rune(uv.KeyEnter))
	screen = pt.waitText(wait, "status 700 is outside 100..599")
	bar, caret := lineWith(screen, "filter> "), lineWith(screen, "^^^^^^^^^^^^")
	lines := strings.Split(screen, "\n")
	if caret != bar+1 || strings.Index(lines[caret], "^") != strings.Index(lines[bar], "status:>=700") {
		t.Errorf("caret not under the bad token:\n%s\n%s", lines[max(bar, 0)], lines[max(caret, 0)])
	}
	pt.press(rune(uv.KeyEscape))
	pt.waitFor("the bar closed", wait, func(s string) bool { return !strings.Contains(s, "filter> ") })

	// Only 5xx.
	pt.press('/', "status:>=500", rune(uv.KeyEnter))
	screen = pt.waitFor("only 5xx rows", wait, func(s string) bool {
		urls := tableURLs(s)
		return strings.Contains(s, "filter  status:>=500") && len(urls) == 8 && !slices.ContainsFunc(urls, func(u string) bool {
			return !strings.Contains(u, "/fail/")
		})
	})
	if !strings.Contains(screen, "1-8 of 8") {
		t.Errorf("want the position 1-8 of 8:\n%s", screen)
	}

	// The detail pane of the selected (newest) row: headers, body, timings.
	pt.press(rune(uv.KeyEnter))
	pt.waitText(wait, "entry ", "X-Watch-Test: detail-header", "User-Agent: watch-test/1", "total 12.5ms",
		"upstream.test:3128 from pac", "Response body (text/plain, 30B)", "watch body preview")
	pt.press(rune(uv.KeyPgDown)) // scrolls the pane, where it is longer than the screen
	pt.waitText(wait, "second line")
	pt.press(rune(uv.KeyEscape))
	pt.waitFor("the pane closed", wait, func(s string) bool { return !strings.Contains(s, "Response headers") })

	// Paused: the table stays as it was while entries arrive.
	pt.press('p')
	screen = pt.waitText(wait, "PAUSED")
	before := tableURLs(screen)
	publish(t, cl, testEntry("fail/late-1", 502), testEntry("fail/late-2", 504))
	newest := strconv.FormatUint(newestID(t, s.Addr), 10)
	pt.waitFor("stats with the new entries", wait, func(s string) bool { return strings.Contains(s, ".."+newest+")") })
	pt.waitNextSample()
	if got := tableURLs(pt.screen()); !slices.Equal(got, before) {
		t.Errorf("table changed while paused:\n got %q\nwant %q", got, before)
	}
	pt.press('p')
	pt.waitFor("the new entries after resuming", wait, func(s string) bool {
		urls := tableURLs(s)
		return !strings.Contains(s, "PAUSED") && len(urls) == 10 && urls[9] == "http://watch.test/fail/late-2"
	})

	// Every entry; scrolled up a page, the view holds while more arrive.
	var filler []*pxperfv1.Entry
	for i := range 30 {
		filler = append(filler, testEntry(fmt.Sprintf("filler/%d", i), 200))
	}
	publish(t, cl, filler...)
	pt.press('/', rune(uv.KeyBackspace), uv.KeyPressEvent{Code: 'u', Mod: uv.ModCtrl}, rune(uv.KeyEnter))
	pt.waitFor("every entry", wait, func(s string) bool {
		return strings.Contains(s, "filter  none") && strings.Contains(s, "of 72") && strings.Contains(s, "filler/29")
	})
	pt.press(rune(uv.KeyPgUp))
	rows := termRows - 7 // title and stats 4, filter bar, column line, key line
	// Scrolled up, the stream is closed and the table polled.
	screen = pt.waitText(wait, fmt.Sprintf("holding, %d newer below", rows), "subscribers 0", "table every 100ms")
	held := tableURLs(screen)
	if len(held) != rows {
		t.Fatalf("%d rows after PgUp, want %d", len(held), rows)
	}
	var more []*pxperfv1.Entry
	for i := range 50 {
		more = append(more, testEntry(fmt.Sprintf("more/%d", i), 200))
	}
	publish(t, cl, more...)
	screen = pt.waitText(wait, fmt.Sprintf("holding, %d newer below", rows+50))
	if got := tableURLs(screen); !slices.Equal(got, held) {
		t.Errorf("view moved while scrolled up:\n got %q\nwant %q", got, held)
	}
	// End follows again.
	pt.press(rune(uv.KeyEnd))
	screen = pt.waitText(wait, "following the newest", "http://watch.test/more/49", "table live", "subscribers 1")
	if urls := tableURLs(screen); urls[len(urls)-1] != "http://watch.test/more/49" {
		t.Errorf("after End the bottom row is %q, want more/49", urls[len(urls)-1])
	}

	pt.mu.Lock()
	frames := pt.frames
	pt.mu.Unlock()
	if frames == 0 {
		t.Error("no synchronized update seen: the screens read may have been half drawn")
	}

	pt.press('q')
	select {
	case <-pt.exited:
		if pt.exitErr != nil {
			t.Errorf("pxperf watch exited with %v, want 0", pt.exitErr)
		}
	case <-time.After(wait):
		t.Fatal("pxperf watch did not quit on q")
	}
}

func TestWatchUsage(t *testing.T) {
	const nowhere = "127.0.0.1:1"
	if r := runCLI(t, nowhere, nil, "watch", "--help"); r.code != 0 || !strings.Contains(r.stderr, "Examples:\n  pxperf watch") || !strings.Contains(r.stderr, "Keys:") {
		t.Errorf("watch --help: %v", r)
	}
	if r := runCLI(t, nowhere, nil, "watch", "--bogus"); r.code != exitUsage || !strings.Contains(r.stderr, "Usage: pxperf watch") {
		t.Errorf("watch --bogus: %v", r)
	}
	wantExit(t, nowhere, exitUsage, []string{"watch"}, "needs a terminal")
	wantExit(t, nowhere, exitUsage, []string{"watch", "--refresh", "1ms"}, "--refresh 1ms: want 50ms..10s")
	wantExit(t, nowhere, exitUsage, []string{"watch", "--filter", "status:>=700"}, "status 700 is outside 100..599", "^^^")

	// In a terminal, a server that is not there fails before the screen
	// is taken over, with the exit code of an unreachable server.
	if testing.Short() {
		t.Skip("runs the binary")
	}
	pt := startWatch(t, "--server", nowhere, "--timeout", "5s")
	select {
	case <-pt.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("pxperf watch did not give up on an unreachable server")
	}
	if e, ok := errors.AsType[*exec.ExitError](pt.exitErr); !ok || e.ExitCode() != exitRPC {
		t.Errorf("exit %v, want code %d", pt.exitErr, exitRPC)
	}
	<-pt.output
	if s := pt.screen(); !strings.Contains(s, "watch: UNAVAILABLE") || !strings.Contains(s, "is a pxperf server running at "+nowhere) {
		t.Errorf("screen does not say the server is unreachable:\n%s", s)
	}
}

// sameColor reports whether c is the basic colour want.
func sameColor(c color.Color, want ansi.BasicColor) bool {
	if c == nil {
		return false
	}
	r1, g1, b1, a1 := c.RGBA()
	r2, g2, b2, a2 := want.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}

// TestWatchResponsive: keys take effect within a bound while entries pour
// in as fast as two PublishStream producers can send them.
func TestWatchResponsive(t *testing.T) {
	s := startServer(t, "--max-entries", "100000")
	pt := startWatch(t, "--server", s.Addr)
	pt.waitText(10*time.Second, "following the newest", "score")

	// The producers send one pre-encoded message of 1000 entries again and
	// again, so that their own marshalling (slow under -race) does not
	// bound the rate; for at most 8 s or 4 M entries.
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	batch := make([]*pxperfv1.Entry, 1000)
	for i := range batch {
		batch[i] = testEntry(fmt.Sprintf("flood/%d", i), int32(200+(i%4)*100))
	}
	msg, err := proto.Marshal(&pxperfv1.PublishStreamRequest{Entries: batch})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var sent, accepted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 2 {
		wg.Go(func() {
			n, err := floodPublish(ctx, conn, encodedMessage(msg), len(batch), &sent, 4_000_000)
			accepted.Add(int64(n))
			if err != nil {
				t.Errorf("publish: %v", err)
			}
		})
	}
	rate := regexp.MustCompile(`ingest\s+([\d,]+)/s`)
	ingest := func(s string) int {
		m := rate.FindStringSubmatch(s)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		return n
	}
	pt.waitFor("the flood in the header", 10*time.Second, func(s string) bool { return ingest(s) >= 10000 })

	// Each key, and what shows that it took effect.
	// PgUp shows once its window is fetched (the number of newer
	// entries); the others at once.
	steps := []struct {
		name string
		key  any
		want string
	}{
		{"p", 'p', "PAUSED"}, {"p", 'p', "● LIVE"},
		{"PgUp", rune(uv.KeyPgUp), "holding, "}, {"End", rune(uv.KeyEnd), "following the newest"},
	}
	var worst time.Duration
	worstOf := map[string]time.Duration{}
	presses := 0
	peak := 0
	// The steps again and again while the flood lasts, for 3 s at least.
	for round := 0; round < 10 && (round == 0 || time.Since(start) < 3*time.Second); round++ {
		for _, st := range steps {
			t0 := time.Now()
			pt.press(st.key)
			screen := pt.waitText(5*time.Second, st.want)
			d := time.Since(t0)
			worst = max(worst, d)
			worstOf[st.name] = max(worstOf[st.name], d)
			presses++
			peak = max(peak, ingest(screen))
		}
	}
	cancel()
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("published %d entries in %v: %.0f entries/s (the header showed up to %d/s); %d keys, key to screen at worst: p %v, PgUp %v, End %v",
		accepted.Load(), elapsed.Round(time.Millisecond), float64(accepted.Load())/elapsed.Seconds(), peak, presses,
		worstOf["p"].Round(time.Millisecond), worstOf["PgUp"].Round(time.Millisecond), worstOf["End"].Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("a key took %v to show on screen under load, want at most 1s", worst)
	}
	pt.press('q')
	select {
	case <-pt.exited:
		if pt.exitErr != nil {
			t.Errorf("exit: %v", pt.exitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pxperf watch did not quit on q")
	}
}

// encodedMessage is a message already encoded as protobuf, sent as it is
// by [encodedCodec].
type encodedMessage []byte

// encodedCodec sends an [encodedMessage] as it is, and encodes and
// decodes everything else as protobuf.
type encodedCodec struct{ proto encoding.CodecV2 }

func (c encodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(encodedMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c encodedCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (encodedCodec) Name() string { return "proto" }

// floodPublish sends msg, a PublishStreamRequest of perMessage entries, on
// one PublishStream until ctx ends or sent reaches limit, and returns how
// many entries the server accepted.
func floodPublish(ctx context.Context, conn *grpc.ClientConn, msg encodedMessage, perMessage int, sent *atomic.Int64, limit int64) (uint64, error) {
	// The stream outlives ctx, which only ends the sending.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	stream, err := conn.NewStream(sctx, &grpc.StreamDesc{ClientStreams: true},
		pxperfv1.PerformanceService_PublishStream_FullMethodName, grpc.ForceCodecV2(encodedCodec{encoding.GetCodecV2("proto")}))
	if err != nil {
		return 0, err
	}
	for ctx.Err() == nil && sent.Load() < limit {
		if err := stream.SendMsg(msg); err != nil {
			break // the summary below says why
		}
		sent.Add(int64(perMessage))
	}
	if err := stream.CloseSend(); err != nil {
		return 0, err
	}
	var sum pxperfv1.PublishStreamResponse
	if err := stream.RecvMsg(&sum); err != nil {
		return 0, err
	}
	return sum.GetAccepted(), nil
}
