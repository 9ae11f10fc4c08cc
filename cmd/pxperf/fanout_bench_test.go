package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testserve"
	"github.com/shirou/gopsutil/v4/process"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The update-throttler load scenarios of issue 5, against the real binary
// on loopback. The server runs in its own process, so its CPU use and
// memory are its own; the load generator (publisher and subscribers) runs
// in the benchmark process and only scans what it receives (see
// countCodec), so that decoding does not bound what is measured.
//
//	go test -run '^$' -bench 'BenchmarkThrottledFanout|BenchmarkStuckSubscriber' -benchtime 1x ./cmd/pxperf
//
// PXPERF_BENCH_SECONDS sets how long each run publishes (default: 10 s for
// the throttled fan-out, 60 s for the stuck subscriber, as the issue says).

// BenchmarkThrottledFanout: 100 subscribers throttled to 30 messages/s
// while 100 000 entries/s are published. Every subscriber must receive
// every entry, none more than 30 messages in any second (client receipt
// times, so network jitter can only make this stricter), and the server
// should use under one core. Reports delivered share (worst subscriber),
// the most messages any subscriber received in any one second, and server
// CPU in cores.
func BenchmarkThrottledFanout(b *testing.B) {
	const subscribers, rate, perMessage = 100, 100_000, 1000
	seconds := benchSeconds(b, 10)
	for b.Loop() {
		s := startServer(b, append([]string{"--max-entries", "4000000", "--max-memory-mb", "8192"}, profileArgs()...)...)
		r := runLoad(b, s, loadSpec{subscribers: subscribers, rate: rate, perMessage: perMessage, seconds: seconds})
		worst := 1.0
		maxPerSecond := 0
		for _, sub := range r.subs {
			worst = min(worst, float64(sub.entries)/float64(r.published))
			maxPerSecond = max(maxPerSecond, sub.maxInAnySecond())
		}
		b.ReportMetric(worst, "delivered_share")
		b.ReportMetric(float64(maxPerSecond), "max_msgs_in_1s")
		b.ReportMetric(r.serverCores, "server_cores")
		b.ReportMetric(float64(r.published)/r.publishFor.Seconds(), "ingest_entries/s")
		b.Logf("%d subscribers at 30 msgs/s, %d entries/s for %v: published %d; worst subscriber got %.4f of them; at most %d messages in any second; server used %.2f cores; gaps %d",
			subscribers, rate, r.publishFor.Round(time.Millisecond), r.published, worst, maxPerSecond, r.serverCores, r.gaps())
		if worst < 1 || maxPerSecond > 30 {
			b.Errorf("want every entry delivered and at most 30 messages in any second; got %.4f and %d", worst, maxPerSecond)
		}
	}
}

// BenchmarkStuckSubscriber: 99 subscribers that read and one that never
// does, at 50 000 entries/s, against the same load without the stuck one.
// Ingest must stay within 5 % of the run without it, the server's memory
// flat (RSS at mid-run against the largest in the second half, with a
// store that is full after 4 s), and the stuck one ended (after
// throttle.send_timeout, 30 s by default).
func BenchmarkStuckSubscriber(b *testing.B) {
	const rate, perMessage = 50_000, 500
	seconds := benchSeconds(b, 60)
	for b.Loop() {
		var runs [2]loadResult
		for i, stuck := range []bool{false, true} {
			// A store that fills in a few seconds, so that memory is at its
			// steady state for most of the run: what grows after that is
			// the stuck subscriber's doing.
			s := startServer(b, "--max-entries", "200000", "--max-memory-mb", "8192")
			runs[i] = runLoad(b, s, loadSpec{subscribers: 99, stuck: stuck, rate: rate, perMessage: perMessage, seconds: seconds})
		}
		base, with := runs[0], runs[1]
		baseRate := float64(base.published) / base.publishFor.Seconds()
		withRate := float64(with.published) / with.publishFor.Seconds()
		b.ReportMetric(withRate/baseRate, "ingest_ratio")
		b.ReportMetric(float64(with.rssMaxLateKB)/float64(with.rssMidKB), "rss_late_max/mid")
		b.ReportMetric(float64(with.stuckEnded), "stuck_ended")
		b.Logf("ingest %.0f entries/s with a stuck subscriber, %.0f without (ratio %.3f); server RSS at mid-run %d KiB, largest in the second half %d KiB; stuck subscribers ended: %d; gaps for the 99: %d",
			withRate, baseRate, withRate/baseRate, with.rssMidKB, with.rssMaxLateKB, with.stuckEnded, with.gaps())
		if withRate < 0.95*baseRate || with.stuckEnded != 1 {
			b.Errorf("want ingest within 5%% and the stuck subscriber ended; got ratio %.3f, %d ended", withRate/baseRate, with.stuckEnded)
		}
	}
}

// profileArgs asks the server for a CPU profile when PXPERF_CPU_PROFILE
// names a file; the server writes it when it stops.
func profileArgs() []string {
	if f := os.Getenv("PXPERF_CPU_PROFILE"); f != "" {
		return []string{"--cpu-profile", f}
	}
	return nil
}

func benchSeconds(b *testing.B, def int) time.Duration {
	if v := os.Getenv("PXPERF_BENCH_SECONDS"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			b.Fatalf("PXPERF_BENCH_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n * float64(time.Second))
	}
	return time.Duration(def) * time.Second
}

type loadSpec struct {
	subscribers int  // that read
	stuck       bool // add one that never reads
	rate        int  // entries per second published
	perMessage  int  // entries per PublishStream message
	seconds     time.Duration
}

type loadResult struct {
	published    uint64
	publishFor   time.Duration
	serverCores  float64
	subs         []*loadSubscriber
	rssMidKB     int64
	rssMaxLateKB int64
	stuckEnded   uint64
}

func (r loadResult) gaps() (n int) {
	for _, s := range r.subs {
		n += s.gaps
	}
	return n
}

// runLoad configures the server for throughput (fixed mode, 30 messages/s,
// batches of up to 10 000), opens the subscribers, publishes at the spec's
// rate, and waits until every reading subscriber has everything.
func runLoad(b *testing.B, s *testserve.Server, spec loadSpec) loadResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), spec.seconds+5*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(s.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	svc := pxperfv1.NewPerformanceServiceClient(conn)
	if _, err := svc.UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config: &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{
			Mode:                pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED,
			MaxUpdatesPerSecond: 30,
			MinUpdateInterval:   durationpb.New(33 * time.Millisecond),
			BatchSize:           10_000,
			MaxBatchSize:        10_000,
		}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{
			"throttle.mode", "throttle.max_updates_per_second", "throttle.min_update_interval",
			"throttle.batch_size", "throttle.max_batch_size",
		}},
	}); err != nil {
		b.Fatalf("UpdateConfig: %v", err)
	}

	var wg sync.WaitGroup
	subCtx, stopSubs := context.WithCancel(ctx)
	defer func() {
		stopSubs()
		wg.Wait()
	}()
	subs := make([]*loadSubscriber, spec.subscribers)
	for i := range subs {
		subs[i] = &loadSubscriber{}
		wg.Go(func() { subs[i].run(subCtx, conn, false) })
	}
	if spec.stuck {
		stuck := &loadSubscriber{}
		wg.Go(func() { stuck.run(subCtx, conn, true) })
	}
	want := uint64(spec.subscribers)
	if spec.stuck {
		want++
	}
	if err := waitForSubscribers(ctx, svc, want); err != nil {
		b.Fatal(err)
	}

	pid := int32(s.Cmd.Process.Pid)
	proc, err := process.NewProcess(pid)
	if err != nil {
		b.Fatal(err)
	}
	cpu0, err := proc.Times()
	if err != nil {
		b.Fatal(err)
	}
	var res loadResult
	start := time.Now()
	res.published, err = publishPaced(ctx, svc, spec, func(elapsed time.Duration) {
		// Memory at mid-run and the largest after it.
		kb, err := procStatusKB(s.Cmd.Process.Pid, "VmRSS")
		if err != nil {
			return
		}
		if elapsed < spec.seconds/2 {
			res.rssMidKB = kb
		} else {
			res.rssMaxLateKB = max(res.rssMaxLateKB, kb)
		}
	})
	res.publishFor = time.Since(start)
	if err != nil {
		b.Fatalf("publishing: %v", err)
	}
	cpu1, err := proc.Times()
	if err != nil {
		b.Fatal(err)
	}
	res.serverCores = (cpu1.User + cpu1.System - cpu0.User - cpu0.System) / res.publishFor.Seconds()

	// Wait until every reading subscriber has reached the end.
	for _, sub := range subs {
		if err := sub.waitNext(ctx, res.published+1); err != nil {
			b.Fatalf("subscriber: %v (entries %d of %d, gaps %d)", err, sub.entries, res.published, sub.gaps)
		}
	}
	stats, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		b.Fatal(err)
	}
	res.stuckEnded = stats.GetStats().GetThrottle().GetStuckSubscribers()
	res.subs = subs
	return res
}

func waitForSubscribers(ctx context.Context, svc pxperfv1.PerformanceServiceClient, n uint64) error {
	for {
		resp, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			return err
		}
		if resp.GetStats().GetThrottle().GetSubscribers() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d subscribers open: %w", resp.GetStats().GetThrottle().GetSubscribers(), n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// publishPaced publishes spec.rate entries a second for spec.seconds, in
// messages of spec.perMessage, calling tick about every second.
func publishPaced(ctx context.Context, svc pxperfv1.PerformanceServiceClient, spec loadSpec, tick func(time.Duration)) (uint64, error) {
	stream, err := svc.PublishStream(ctx)
	if err != nil {
		return 0, err
	}
	batch := make([]*pxperfv1.Entry, spec.perMessage)
	ts := timestamppb.Now()
	for i := range batch {
		batch[i] = &pxperfv1.Entry{
			StartTime:      ts,
			Method:         "GET",
			Url:            fmt.Sprintf("http://load%d.example.com/api/v1/items/%d?page=2&sort=desc", i%20, i),
			StatusCode:     200,
			RequestHeaders: []*pxperfv1.Header{{Name: "Accept", Value: "application/json"}, {Name: "User-Agent", Value: "pxperf-bench/1"}},
			Timings:        &pxperfv1.Timings{Total: durationpb.New(12 * time.Millisecond)},
		}
	}
	req := &pxperfv1.PublishStreamRequest{Entries: batch}
	every := time.Second * time.Duration(spec.perMessage) / time.Duration(spec.rate)
	start := time.Now()
	next, lastTick := start, start
	var sent uint64
	for time.Since(start) < spec.seconds {
		if err := stream.Send(req); err != nil {
			return sent, err
		}
		sent += uint64(len(batch))
		next = next.Add(every)
		if now := time.Now(); now.Sub(lastTick) >= time.Second {
			tick(now.Sub(start))
			lastTick = now
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d) // pacing the load, not waiting for an event
		}
	}
	sum, err := stream.CloseAndRecv()
	if err != nil {
		return sent, err
	}
	if sum.GetAccepted() != sent {
		return sent, fmt.Errorf("server accepted %d of %d entries", sum.GetAccepted(), sent)
	}
	return sent, nil
}

// loadSubscriber counts what one Subscribe stream receives.
type loadSubscriber struct {
	mu      sync.Mutex
	entries uint64
	gaps    int
	next    uint64
	times   []time.Time // receipt time of each message
	changed chan struct{}
	err     error
}

// run reads a stream from now until ctx ends; a stuck subscriber opens
// the stream and never reads.
func (l *loadSubscriber) run(ctx context.Context, conn *grpc.ClientConn, stuck bool) {
	l.mu.Lock()
	l.changed = make(chan struct{})
	l.mu.Unlock()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, pxperfv1.PerformanceService_Subscribe_FullMethodName,
		grpc.ForceCodecV2(countCodec{encoding.GetCodecV2("proto")}))
	if err == nil {
		err = stream.SendMsg(&pxperfv1.SubscribeRequest{})
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if stuck {
		<-ctx.Done()
		return
	}
	for err == nil {
		var m scanned
		if err = stream.RecvMsg(&m); err != nil {
			break
		}
		now := time.Now()
		l.mu.Lock()
		l.times = append(l.times, now)
		l.entries += uint64(m.entries)
		if m.gap {
			l.gaps++
		}
		if m.next > l.next {
			l.next = m.next
			close(l.changed)
			l.changed = make(chan struct{})
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	if !errors.Is(err, io.EOF) && ctx.Err() == nil {
		l.err = err
	}
	close(l.changed)
	l.changed = nil
	l.mu.Unlock()
}

// waitNext waits until the stream's next id reaches next.
func (l *loadSubscriber) waitNext(ctx context.Context, next uint64) error {
	for {
		l.mu.Lock()
		got, changed, err := l.next, l.changed, l.err
		l.mu.Unlock()
		switch {
		case got >= next:
			return nil
		case err != nil:
			return err
		case changed == nil:
			return errors.New("stream ended")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("next id %d, want %d: %w", got, next, ctx.Err())
		}
	}
}

// maxInAnySecond is the most messages received in any one-second window.
func (l *loadSubscriber) maxInAnySecond() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	best, j := 0, 0
	for i := range l.times {
		for l.times[i].Sub(l.times[j]) >= time.Second {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// countCodec is the load generator's codec: requests are marshalled as
// protobuf; a Subscribe response is only scanned into a [scanned] —
// entries counted, next_id read — not decoded.
type countCodec struct{ proto encoding.CodecV2 }

func (c countCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c countCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if s, ok := v.(*scanned); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return s.scan(buf.ReadOnlyData())
	}
	return c.proto.Unmarshal(data, v)
}

func (countCodec) Name() string { return "proto" }

// scanned is what the load generator keeps of a SubscribeResponse.
type scanned struct {
	entries int    // entries and updates in a batch
	next    uint64 // next_id of a batch, progress or snapshot_end
	gap     bool
}

// Field numbers of SubscribeResponse and the messages in it.
const (
	fieldBatch, fieldGap, fieldProgress, fieldSnapshotEnd = 1, 2, 3, 4
	batchEntries, batchNext, batchUpdates                 = 1, 2, 3
	gapLast                                               = 2
	progressNext, snapshotEndNext                         = 2, 1
)

func (s *scanned) scan(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var err error
		switch num {
		case fieldBatch:
			err = s.scanFields(v, func(num protowire.Number, typ protowire.Type, val uint64) {
				switch {
				case (num == batchEntries || num == batchUpdates) && typ == protowire.BytesType:
					s.entries++
				case num == batchNext:
					s.next = val
				}
			})
		case fieldGap:
			s.gap = true
			err = s.scanFields(v, func(num protowire.Number, _ protowire.Type, val uint64) {
				if num == gapLast {
					s.next = val + 1
				}
			})
		case fieldProgress, fieldSnapshotEnd:
			want := protowire.Number(progressNext)
			if num == fieldSnapshotEnd {
				want = snapshotEndNext
			}
			err = s.scanFields(v, func(n protowire.Number, _ protowire.Type, val uint64) {
				if n == want {
					s.next = val
				}
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// scanFields calls fn for each field of a message: with the value for a
// varint, with 0 for others.
func (s *scanned) scanFields(b []byte, fn func(protowire.Number, protowire.Type, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var val uint64
		if typ == protowire.VarintType {
			val, n = protowire.ConsumeVarint(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		fn(num, typ, val)
	}
	return nil
}
