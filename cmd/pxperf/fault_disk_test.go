package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testserve"
)

const (
	// archiveAlert is the monitor's alert for failing archive writes.
	archiveAlert = "archive_write_errors"
	// diskTmpfsBytes is the size of TestDiskFullTmpfs's file system, and
	// diskFillerBytes what a filler file takes of it before the server
	// starts; deleting the filler is what frees space.
	diskTmpfsBytes  = 4 << 20
	diskFillerBytes = 2 << 20
	// diskBodyBytes is the response body of each entry published to fill
	// the disk: under the default memory.max_body_size (10 KiB), so it is
	// archived whole.
	diskBodyBytes = 8 << 10
	// diskWait bounds each wait for the server to react: the monitor
	// samples every second (--stats-interval 1s) and the archive retries
	// every logs.flush_interval (1 s).
	diskWait = 15 * time.Second
)

// diskFault makes the archive's disk fail and come back.
type diskFault struct {
	// fail makes writes to the archive fail with ENOSPC, now or once the
	// space left is used up.
	fail func(t *testing.T, s *testserve.Server)
	// free makes writes succeed again.
	free func(t *testing.T)
}

// TestDiskFullTmpfs fills a real file system under the archive: a 4 MiB
// tmpfs that the test mounts (as root; skipped where mounting is not
// allowed), half taken by a filler file. See [diskFullScenario] for what
// is checked; freeing space is deleting the filler.
func TestDiskFullTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("mounts a tmpfs: Linux only")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", diskTmpfsBytes)); err != nil {
		t.Skipf("cannot mount a tmpfs on %s (needs root or CAP_SYS_ADMIN): %v", dir, err)
	}
	// Registered before the server starts, so it runs after the server
	// has stopped (cleanups run last first).
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the tmpfs at %s: %v", dir, err)
		}
	})
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, diskFillerBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("tmpfs of %d KiB at %s, %d KiB free after a %d KiB filler", diskTmpfsBytes>>10, dir, st.Bavail*uint64(st.Bsize)>>10, diskFillerBytes>>10)
	diskFullScenario(t, dir, diskFault{
		fail: func(*testing.T, *testserve.Server) {}, // the space left runs out
		free: func(t *testing.T) {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestDiskFullInjected makes every pwrite64 of the running server fail
// with ENOSPC, injected by strace (its --inject), then detaches strace.
// The archive writes its files with WriteAt, which is pwrite64. It needs
// strace and the right to trace the server (root, or ptrace_scope 0);
// skipped otherwise. See [diskFullScenario] for what is checked.
//
// perf/archive's TestDiskFull injects ENOSPC at the archive's own file
// interface; this is the same failure seen from outside, through the
// service: alerts, stats, serving from memory.
func TestDiskFullInjected(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("injects ENOSPC with strace: Linux only")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skipf("strace not found, so ENOSPC cannot be injected into the binary: %v", err)
	}
	var stop func(t *testing.T)
	diskFullScenario(t, t.TempDir(), diskFault{
		fail: func(t *testing.T, s *testserve.Server) { stop = injectENOSPC(t, strace, s.Cmd.Process.Pid) },
		free: func(t *testing.T) { stop(t) },
	})
}

// injectENOSPC attaches strace to every thread of process pid, making each
// pwrite64 fail with ENOSPC, and returns a function that detaches it. It
// skips the test if strace cannot attach.
func injectENOSPC(t *testing.T, strace string, pid int) (detach func(*testing.T)) {
	t.Helper()
	cmd := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "trace=pwrite64", "-e", "inject=pwrite64:error=ENOSPC", "-p", strconv.Itoa(pid))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// strace says "Process N attached" for each thread, or why it cannot.
	attached := make(chan bool, 1)
	out := &testserve.SyncBuffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !said && strings.Contains(sc.Text(), "attached") {
				said = true
				attached <- true
			}
		}
		if !said {
			attached <- false
		}
	}()
	var exited bool
	stop := func(t *testing.T) {
		if exited {
			return
		}
		exited = true
		// SIGINT makes strace detach from every thread before it exits;
		// SIGKILL would leave them to the kernel.
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(diskWait):
			cmd.Process.Kill()
			<-done
			t.Errorf("strace did not exit within %v of SIGINT:\n%s", diskWait, out.String())
		}
		cmd.Wait()
	}
	// Registered after the server's cleanup: runs before it, so the
	// server is never left traced.
	t.Cleanup(func() { stop(t) })
	select {
	case ok := <-attached:
		if !ok {
			stop(t)
			t.Skipf("strace cannot attach to the server (needs root or kernel.yama.ptrace_scope 0):\n%s", out.String())
		}
	case <-time.After(diskWait):
		t.Fatalf("strace did not attach within %v:\n%s", diskWait, out.String())
	}
	return stop
}

// diskFullScenario runs the server on dir with the monitor sampling every
// second, makes its archive's disk fail with f, and checks, logging when
// each thing happened:
//   - publishing goes on while writes fail: write_errors counts them, and
//     last_error says "no space left on device";
//   - the monitor raises the archive_write_errors alert (GetStats
//     active_alerts);
//   - entries published meanwhile are accepted and served from memory by
//     ListEntries, Subscribe and GetEntry;
//   - once f frees space, archiving resumes: every accepted entry is
//     written (none dropped, as the queue never filled), and the alert
//     clears (leaves active_alerts);
//   - after a graceful stop, the files hold every accepted entry exactly
//     once, in id order, as valid JSON lines, nothing torn.
func diskFullScenario(t *testing.T, dir string, f diskFault) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServer(t, "--log-dir", dir, "--stats-interval", "1s")
	c, err := client.New(client.Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svc := c.Service()
	start := time.Now()
	var timeline []string
	mark := func(format string, args ...any) {
		timeline = append(timeline, fmt.Sprintf("%6v  ", time.Since(start).Round(time.Millisecond))+fmt.Sprintf(format, args...))
	}
	defer func() { t.Logf("timeline:\n%s", strings.Join(timeline, "\n")) }()
	stats := func() *pxperfv1.Stats {
		t.Helper()
		resp, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			t.Fatalf("GetStats: %v", err)
		}
		return resp.GetStats()
	}
	var accepted []uint64
	publish := func(entries []*pxperfv1.Entry) []uint64 {
		t.Helper()
		resp, err := svc.Publish(ctx, &pxperfv1.PublishRequest{Entries: entries})
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		var ids []uint64
		for i, r := range resp.GetResults() {
			if r.GetRejection() != nil {
				t.Fatalf("Publish: entry %d rejected: %v", i, r.GetRejection())
			}
			ids = append(ids, r.GetId())
		}
		accepted = append(accepted, ids...)
		return ids
	}

	// Some entries on a healthy disk first.
	publish(diskEntries("before", 0, 0, 10))
	waitFor(ctx, t, "the first entries to be archived", func() (bool, string) {
		a := stats().GetArchive()
		return a.GetEntriesWritten() == uint64(len(accepted)), fmt.Sprintf("entries_written %d of %d", a.GetEntriesWritten(), len(accepted))
	})
	mark("%d entries published and archived", len(accepted))

	f.fail(t, s)
	mark("disk failing")
	body := make([]byte, diskBodyBytes)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	var a *pxperfv1.ArchiveStats
	waitFor(ctx, t, "a failed archive write", func() (bool, string) {
		publish(diskEntries("fill", len(accepted), diskBodyBytes, 8))
		a = stats().GetArchive()
		return a.GetWriteErrors() > 0, fmt.Sprintf("write_errors 0 after %d entries, entries_written %d", len(accepted), a.GetEntriesWritten())
	})
	failedAt := len(accepted)
	mark("first write error after %d entries (%d written, %d KiB): %s", failedAt, a.GetEntriesWritten(), a.GetBytesWritten()>>10, a.GetLastError())
	if !strings.Contains(a.GetLastError(), "no space left on device") {
		t.Errorf("archive.last_error = %q, want it to say \"no space left on device\"", a.GetLastError())
	}

	waitFor(ctx, t, "the "+archiveAlert+" alert", func() (bool, string) {
		st := stats()
		return hasAlert(st, archiveAlert), fmt.Sprintf("active alerts %v, write_errors %d", alertNames(st), st.GetArchive().GetWriteErrors())
	})
	mark("alert %s active", archiveAlert)

	// Serving from memory while the disk is full.
	outage := publish(diskEntries("outage", len(accepted), 0, 5))
	mark("published %d entries while the disk is full: ids %d..%d", len(outage), outage[0], outage[len(outage)-1])
	list, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: int32(len(outage))})
	if err != nil {
		t.Fatalf("ListEntries while the disk is full: %v", err)
	}
	var listed []uint64
	for _, e := range list.GetEntries() {
		listed = append(listed, e.GetId())
	}
	slices.Reverse(listed) // newest first
	if !slices.Equal(listed, outage) {
		t.Errorf("ListEntries while the disk is full = ids %v, want %v", listed, outage)
	}
	if got := subscribeIDs(ctx, t, c, outage[0], len(outage)); !slices.Equal(got, outage) {
		t.Errorf("Subscribe from id %d while the disk is full = ids %v, want %v", outage[0], got, outage)
	}
	if e, err := svc.GetEntry(ctx, &pxperfv1.GetEntryRequest{Id: outage[0]}); err != nil || e.GetEntry().GetRequestId() != "outage-"+strconv.Itoa(failedAt) {
		t.Errorf("GetEntry(%d) while the disk is full = %v, %v; want request id outage-%d", outage[0], e.GetEntry().GetRequestId(), err, failedAt)
	}
	mark("ListEntries, Subscribe and GetEntry serve them from memory")
	a = stats().GetArchive()
	mark("archive while full: %d of %d entries written, %d write errors, %d dropped, %d queued", a.GetEntriesWritten(), len(accepted), a.GetWriteErrors(), a.GetEntriesDropped(), a.GetQueued())

	f.free(t)
	freedAt := time.Now()
	mark("space freed")
	waitFor(ctx, t, "archiving to resume and catch up", func() (bool, string) {
		a = stats().GetArchive()
		return a.GetEntriesWritten() == uint64(len(accepted)), fmt.Sprintf("entries_written %d of %d, write_errors %d, entries_dropped %d, last_error %q",
			a.GetEntriesWritten(), len(accepted), a.GetWriteErrors(), a.GetEntriesDropped(), a.GetLastError())
	})
	mark("archiving resumed: all %d entries written, %v after the space came back", len(accepted), time.Since(freedAt).Round(time.Millisecond))
	if a.GetEntriesDropped() != 0 {
		t.Errorf("archive.entries_dropped = %d, want 0: the queue never filled", a.GetEntriesDropped())
	}
	errorsWhenResumed := a.GetWriteErrors()
	waitFor(ctx, t, "the "+archiveAlert+" alert to clear", func() (bool, string) {
		st := stats()
		return !hasAlert(st, archiveAlert), fmt.Sprintf("active alerts %v", alertNames(st))
	})
	mark("alert %s cleared, %v after the space came back", archiveAlert, time.Since(freedAt).Round(time.Millisecond))
	if n := stats().GetArchive().GetWriteErrors(); n != errorsWhenResumed {
		t.Errorf("archive.write_errors grew from %d to %d after archiving resumed", errorsWhenResumed, n)
	}
	publish(diskEntries("after", len(accepted), 0, 5))

	stopServer(t, s)
	files, err := newArchiveReader(dir).scan()
	if err != nil {
		t.Fatalf("reading the archive: %v", err)
	}
	for _, err := range checkArchive(files, "") {
		t.Error(err)
	}
	var archived []uint64
	for _, f := range files {
		for _, l := range f.lines {
			archived = append(archived, l.id)
		}
	}
	if !slices.Equal(archived, accepted) {
		t.Errorf("the archive holds %d entries (ids %v), want the %d accepted, ids 1..%d, each once", len(archived), idRanges(archived), len(accepted), len(accepted))
	}
	mark("stopped; the archive holds all %d entries once, in %d file(s)", len(archived), len(files))
}

// diskEntries returns n entries tagged <what>-<seq> from seq on, with a
// body of bodyBytes bytes when not 0.
func diskEntries(what string, seq, bodyBytes, n int) []*pxperfv1.Entry {
	es := make([]*pxperfv1.Entry, n)
	now := time.Now()
	for i := range es {
		es[i] = &pxperfv1.Entry{
			RequestId:  what + "-" + strconv.Itoa(seq+i),
			StartTime:  timestamppb.New(now),
			Method:     "GET",
			Url:        "http://disk.example.com/" + what + "/" + strconv.Itoa(seq+i),
			State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
			StatusCode: 200,
		}
		if bodyBytes > 0 {
			body := make([]byte, bodyBytes)
			for j := range body {
				body[j] = byte('a' + (seq+i+j)%26)
			}
			es[i].ResponseBody = &pxperfv1.Body{Data: body, ContentType: "text/plain"}
		}
	}
	return es
}

// subscribeIDs subscribes from id first and returns the ids of the first
// n entries received.
func subscribeIDs(ctx context.Context, t *testing.T, c *client.Client, first uint64, n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, diskWait)
	defer cancel()
	var ids []uint64
	for msg, err := range c.Subscribe(ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: first}}) {
		if err != nil {
			t.Errorf("Subscribe from id %d: %v after ids %v", first, err, ids)
			return ids
		}
		for _, e := range msg.GetBatch().GetEntries() {
			ids = append(ids, e.GetId())
		}
		if len(ids) >= n {
			break
		}
	}
	return ids
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// diskWait with cond's last description of what it saw.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, diskWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, saw := cond()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waited %v for %s: %s", diskWait, what, saw)
		}
	}
}

func hasAlert(st *pxperfv1.Stats, name string) bool {
	return slices.Contains(alertNames(st), name)
}

func alertNames(st *pxperfv1.Stats) []string {
	var names []string
	for _, a := range st.GetActiveAlerts() {
		names = append(names, a.GetName())
	}
	return names
}

// idRanges shortens a list of ids to its runs, "1-40 42-50".
func idRanges(ids []uint64) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if i == j {
			fmt.Fprint(&b, ids[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ids[i], ids[j])
		}
		i = j + 1
	}
	return b.String()
}
