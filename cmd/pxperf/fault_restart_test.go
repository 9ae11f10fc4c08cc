package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testserve"
)

const (
	// restartMaxReady is the target: ready within 1 s on 1 GiB of
	// archives.
	restartMaxReady = time.Second
	// restartPoll is how often health is checked while the server starts.
	restartPoll = 5 * time.Millisecond
	// restartBodyBytes is the response body of each entry of the
	// compressed files: random, as proxied images and compressed responses
	// are, so that zstd cannot shrink the files below the size asked for
	// by much, and the archive on disk really is that size.
	restartBodyBytes = 4 << 10
	// restartEntriesPerFile makes each compressed file about 63 MiB of
	// lines, just under logs.max_size_mb (64): a file rotated by size.
	restartEntriesPerFile = 11000
	// restartCurrentEntries is the newest file's entries, small ones, as
	// many as logs.max_count (100000) allows: the file that was current
	// when the server stopped, which the next start reads (crashed) or
	// compresses in the background (both).
	restartCurrentEntries = 100000
	// restartEntryGap is the start time between consecutive entries.
	restartEntryGap = 10 * time.Millisecond
)

// BenchmarkRestartWithArchive measures how soon the real binary is ready
// (health Check answers SERVING; polled every 5 ms from just before exec)
// when it starts on an archive of 1 GiB on disk. The archive is written
// directly, in the archive's format and names (see [writeRestartArchive]):
// compressed files of about 63 MiB of lines (45 MiB of zstd) with their
// closed sidecars, and a newest, uncompressed file of 100000 small entries
// (31 MiB), the one being written when the server stopped. Two ways of
// having stopped:
//   - clean: after a graceful stop the newest file has a closed sidecar;
//     start-up reads only sidecars;
//   - crashed: after a kill its sidecar is gone and its last line torn;
//     start-up reads the whole newest file, cuts the torn line off and
//     closes it (the worst case: a lost sidecar; a kept one limits the
//     read to the unsynced tail).
//
// Before the timed starts, one start per case checks that the server takes
// the files as its own: ids continue after the greatest archived one, and
// GetEntry reads entries back from a compressed and from the newest file.
// Every start is followed by a graceful stop and the files are put back as
// they were (the server compresses the newest file in the background), off
// the clock.
//
//	go test -run '^$' -bench BenchmarkRestartWithArchive -benchtime 3x ./cmd/pxperf
//
// It reports ready-ms (mean) and max-ready-ms, and fails if any start
// takes more than 1 s. PXPERF_RESTART_GB sets the GiB on disk (default 1;
// fractions allowed). Writing the archive takes a few seconds a GiB, and
// that much space under $TMPDIR. Skipped with -short.
func BenchmarkRestartWithArchive(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark builds and runs the binary")
	}
	size := restartBytes(b)
	bin, err := testserve.Build()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	start := time.Now()
	fx, err := writeRestartArchive(dir, size)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("archive: %d compressed files + 1 current, %.0f MiB on disk (%.0f MiB of lines), %d entries, written in %v",
		len(fx.stems)-1, float64(fx.diskBytes)/(1<<20), float64(fx.lineBytes)/(1<<20), fx.lastID, time.Since(start).Round(time.Millisecond))
	for _, crashed := range []bool{false, true} {
		name := "clean"
		if crashed {
			name = "crashed"
		}
		b.Run(name, func(b *testing.B) {
			if err := fx.reset(crashed); err != nil {
				b.Fatal(err)
			}
			verifyRestartArchive(b, bin, fx, crashed)
			var readies []time.Duration
			for b.Loop() {
				b.StopTimer()
				if err := fx.reset(crashed); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				p, ready := startReady(b, bin, dir)
				b.StopTimer()
				p.stop(b)
				b.StartTimer()
				readies = append(readies, ready)
			}
			var sum time.Duration
			for _, d := range readies {
				sum += d
			}
			worst := slices.Max(readies)
			b.ReportMetric(float64(sum.Microseconds())/float64(len(readies))/1000, "ready-ms")
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ready-ms")
			b.Logf("%s: ready in %v over %d starts", name, readies, len(readies))
			if worst > restartMaxReady {
				b.Errorf("%s: a start on %.0f MiB of archives took %v to be ready; the target is at most %v",
					name, float64(fx.diskBytes)/(1<<20), worst, restartMaxReady)
			}
		})
	}
}

// restartBytes returns the archive size to write: 1 GiB, or
// PXPERF_RESTART_GB GiB when set.
func restartBytes(b *testing.B) int64 {
	v := os.Getenv("PXPERF_RESTART_GB")
	if v == "" {
		return 1 << 30
	}
	gb, err := strconv.ParseFloat(v, 64)
	if err != nil || !(gb > 0 && gb <= 64) {
		b.Fatalf("PXPERF_RESTART_GB=%q: want the GiB of archives to write, above 0 and at most 64, for example 1", v)
	}
	return int64(gb * (1 << 30))
}

// restartArchive is an archive written by [writeRestartArchive].
type restartArchive struct {
	dir       string
	stems     []string // in order; the last is the current file's
	current   []byte   // the current file's lines
	meta      []byte   // its closed sidecar
	torn      []byte   // the fragment a crash leaves after its last line
	lastID    uint64   // of the current file's last line
	diskBytes int64
	lineBytes int64
	// Ids and request ids to read back: one from the first compressed file,
	// one from the current file.
	probes map[uint64]string
}

// reset puts the archive back as written, with the current file as a
// clean stop (closed sidecar) or a crash (no sidecar, torn last line)
// leaves it: it removes what a server added (new files, the current file
// compressed, temporaries).
func (a *restartArchive) reset(crashed bool) error {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return err
	}
	cur := a.stems[len(a.stems)-1]
	for _, de := range ents {
		name := de.Name()
		known := false
		for _, ext := range []string{archiveZstd, archiveMeta} {
			if stem, ok := strings.CutSuffix(name, ext); ok && stem != cur {
				_, known = slices.BinarySearch(a.stems, stem)
			}
		}
		if !known {
			if err := os.Remove(filepath.Join(a.dir, name)); err != nil {
				return err
			}
		}
	}
	data, meta := a.current, a.meta
	if crashed {
		data, meta = append(slices.Clip(a.current), a.torn...), nil
	}
	if err := os.WriteFile(filepath.Join(a.dir, cur+archivePlain), data, 0o644); err != nil {
		return err
	}
	if meta != nil {
		return os.WriteFile(filepath.Join(a.dir, cur+archiveMeta), meta, 0o644)
	}
	return nil
}

// writeRestartArchive writes an archive of at least size bytes on disk
// (less than one compressed file more) to dir: compressed files, written
// in parallel, and the current file.
func writeRestartArchive(dir string, size int64) (*restartArchive, error) {
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	at := func(id uint64) time.Time { return base.Add(time.Duration(id) * restartEntryGap) }
	a := &restartArchive{dir: dir, probes: map[uint64]string{}}

	// What the current file (small entries, no body) will take, about.
	curBytes := int64(restartCurrentEntries * len(appendRestartLine(nil, 1_000_000, base, nil)))
	var disk, lines atomic.Int64

	// Compressed files, restartEntriesPerFile entries each: file k holds
	// ids from k*restartEntriesPerFile+1. The first one tells how many
	// make up size with the current file.
	writeFile := func(enc *zstd.Encoder, k int, buf, zbuf []byte) ([]byte, []byte, error) {
		first := uint64(k)*restartEntriesPerFile + 1
		rng := rand.NewChaCha8([32]byte{byte(k), byte(k >> 8), byte(k >> 16)})
		buf = buf[:0]
		m := archiveSidecar{Closed: true}
		for id := first; id < first+restartEntriesPerFile; id++ {
			buf = appendRestartLine(buf, id, at(id), rng)
			m.add(id, at(id))
		}
		m.Bytes = int64(len(buf))
		zbuf = enc.EncodeAll(buf, zbuf[:0])
		a.stems[k] = restartStem(at(first), first)
		disk.Add(int64(len(zbuf)))
		lines.Add(int64(len(buf)))
		return buf, zbuf, writeDataAndMeta(dir, a.stems[k], archiveZstd, zbuf, m)
	}
	newEncoder := func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
	enc, err := newEncoder()
	if err != nil {
		return nil, err
	}
	a.stems = make([]string, 1)
	_, zbuf, err := writeFile(enc, 0, nil, nil)
	enc.Close()
	if err != nil {
		return nil, err
	}
	files := max(1, int((size-curBytes+int64(len(zbuf))-1)/int64(len(zbuf)))) // at least size in all
	a.stems = slices.Grow(a.stems, files-1)[:files]
	var next atomic.Int64
	next.Store(1)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			enc, err := newEncoder()
			if err != nil {
				errs[w] = err
				return
			}
			defer enc.Close()
			var buf, zbuf []byte
			for k := int(next.Add(1) - 1); k < files && errs[w] == nil; k = int(next.Add(1) - 1) {
				buf, zbuf, errs[w] = writeFile(enc, k, buf, zbuf)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a.probes[restartEntriesPerFile/2] = restartRequestID(restartEntriesPerFile / 2)

	// The current file.
	first := uint64(files)*restartEntriesPerFile + 1
	m := archiveSidecar{Closed: true}
	for id := first; id < first+restartCurrentEntries; id++ {
		a.current = appendRestartLine(a.current, id, at(id), nil)
		m.add(id, at(id))
	}
	m.Bytes = int64(len(a.current))
	a.lastID = m.MaxID
	a.probes[a.lastID-7] = restartRequestID(a.lastID - 7)
	a.torn = appendRestartLine(nil, a.lastID+1, at(a.lastID+1), nil)
	a.torn = a.torn[:len(a.torn)/2]
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	a.meta = append(b, '\n')
	a.stems = append(a.stems, restartStem(at(first), first))
	a.diskBytes = disk.Load() + int64(len(a.current))
	a.lineBytes = lines.Load() + int64(len(a.current))

	// The lines must be what protojson reads as entries.
	for _, line := range [][]byte{appendRestartLine(nil, 1, at(1), rand.NewChaCha8([32]byte{})), a.current[:bytes.IndexByte(a.current, '\n')]} {
		var e pxperfv1.Entry
		if err := protojson.Unmarshal(bytes.TrimSuffix(line, []byte("\n")), &e); err != nil {
			return nil, fmt.Errorf("a generated line is not an entry: %w: %.100s", err, line)
		}
	}
	return a, nil
}

// restartStem returns the stem of a file started at t whose first id is
// first (perf/archive/name.go).
func restartStem(t time.Time, first uint64) string {
	return archivePrefix + t.UTC().Format("20060102T150405.000000000Z") + "-" + fmt.Sprintf("%06d", first)
}

func (m *archiveSidecar) add(id uint64, t time.Time) {
	if m.Entries == 0 {
		m.MinID, m.MinTime = id, t
	}
	m.MaxID, m.MaxTime = id, t
	m.Entries++
}

// writeDataAndMeta writes a data file and its sidecar.
func writeDataAndMeta(dir, stem, ext string, data []byte, m archiveSidecar) error {
	if err := os.WriteFile(filepath.Join(dir, stem+ext), data, 0o644); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stem+archiveMeta), append(b, '\n'), 0o644)
}

func restartRequestID(id uint64) string { return "gen-" + strconv.FormatUint(id, 10) }

// appendRestartLine appends one archive line for entry id started at t, as
// perf/archive writes it: proto field names in field order, id first. With
// rng, the entry has a random restartBodyBytes body.
func appendRestartLine(b []byte, id uint64, t time.Time, rng *rand.ChaCha8) []byte {
	b = fmt.Appendf(b, `{"id":"%d","request_id":"%s","start_time":"%s","method":"GET"`, id, restartRequestID(id), t.Format("2006-01-02T15:04:05.000Z"))
	if rng == nil {
		b = fmt.Appendf(b, `,"url":"https://api.example.com/v1/items/%d?fields=name,price","host":"api.example.com","state":"ENTRY_STATE_COMPLETED","status_code":200`, id)
	} else {
		var body [restartBodyBytes]byte
		rng.Read(body[:])
		b = fmt.Appendf(b, `,"url":"https://cdn.example.net/assets/%d.bin","host":"cdn.example.net","state":"ENTRY_STATE_COMPLETED","status_code":200`, id)
		b = append(b, `,"response_headers":[{"name":"Content-Type","value":"application/octet-stream"}],"response_body":{"data":"`...)
		b = base64.StdEncoding.AppendEncode(b, body[:])
		b = fmt.Appendf(b, `","content_type":"application/octet-stream","original_size":"%d"}`, restartBodyBytes)
	}
	return append(b, `,"timings":{"time_to_first_byte":"0.012s","total":"0.042s"},"bytes_received":"4096","priority":"PRIORITY_NORMAL"}`+"\n"...)
}

// verifyRestartArchive starts the server once on the archive and checks it
// takes the files as its own: GetEntry reads the probe entries back, and
// the next id given is the one after the greatest archived.
func verifyRestartArchive(b *testing.B, bin string, a *restartArchive, crashed bool) {
	b.Helper()
	p, ready := startReady(b, bin, a.dir)
	defer p.stop(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Address: p.addr})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	svc := c.Service()
	for id, rid := range a.probes {
		resp, err := svc.GetEntry(ctx, &pxperfv1.GetEntryRequest{Id: id})
		if err != nil || resp.GetEntry().GetRequestId() != rid {
			b.Fatalf("GetEntry(%d) on the written archive = request id %q, %v; want %q", id, resp.GetEntry().GetRequestId(), err, rid)
		}
	}
	st, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		b.Fatal(err)
	}
	corrupt := st.GetStats().GetArchive().GetCorruptLines()
	if want := map[bool]uint64{false: 0, true: 1}[crashed]; corrupt != want {
		b.Errorf("archive.corrupt_lines = %d after start-up, want %d", corrupt, want)
	}
	res, err := c.Publish(ctx, diskEntries("after-restart", 0, 0, 1)...)
	if err != nil || res[0].GetRejection() != nil {
		b.Fatalf("Publish after start-up: %v %v", err, res)
	}
	if got := res[0].GetId(); got != a.lastID+1 {
		b.Errorf("first id after start-up = %d, want %d: ids continue after the last archived", got, a.lastID+1)
	}
	b.Logf("verified (start-up in %v): entries %v read back, next id %d, corrupt lines %d", ready, a.probes, res[0].GetId(), corrupt)
}

// timedServer is a server started by [startReady].
type timedServer struct {
	addr string
	cmd  *exec.Cmd
	out  *testserve.SyncBuffer
	done chan error // Wait's result
}

// startReady starts the binary on dir, on a free loopback port, and
// returns once health Check answers SERVING, with the time from just
// before exec to that answer.
func startReady(b *testing.B, bin, dir string) (*timedServer, time.Duration) {
	b.Helper()
	addr := freeAddr(b)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			// Reconnect as often as health is polled: the default backoff
			// (1 s) would hide how soon the server is up.
			Backoff:           backoff.Config{BaseDelay: restartPoll, Multiplier: 1, MaxDelay: restartPoll},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	p := &timedServer{addr: addr, out: &testserve.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "serve", "--listen", addr, "--http-listen", "127.0.0.1:0", "--log-dir", dir, "--config", "testdata/fault/restart.yaml")
	p.cmd.Stderr = p.out
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	tick := time.NewTicker(restartPoll)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		resp, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		ccancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return p, time.Since(start)
		}
		select {
		case <-tick.C:
		case err := <-p.done:
			b.Fatalf("server exited while starting: %v\n%s", err, p.out.String())
		case <-ctx.Done():
			p.cmd.Process.Kill()
			<-p.done
			b.Fatalf("server not SERVING within a minute (last: %v, %v):\n%s", resp.GetStatus(), err, p.out.String())
		}
	}
}

// stop stops the server with SIGTERM and waits for it to exit.
func (p *timedServer) stop(b *testing.B) {
	b.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			b.Errorf("server exit after SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		b.Fatalf("server still running 15s after SIGTERM:\n%s", p.out.String())
	}
}

// freeAddr returns a loopback address with a port free now.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
