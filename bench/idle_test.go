package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/grpc"
)

// The idle scenario: what subscribers that receive nothing cost a server
// that ingests. Its subscribers run in a child process (this test binary
// again, running TestIdleSubscriberProcess), so that the server's process
// holds the server and the publisher only: the growth of its memory from
// opening the subscriptions is the server's own.

// The environment of the subscriber process: the server's address, how
// many subscribers to open, and how many of them share a connection.
const (
	idleAddrEnv    = "BENCH_IDLE_ADDR"
	idleCountEnv   = "BENCH_IDLE_SUBSCRIBERS"
	idlePerConnEnv = "BENCH_IDLE_PER_CONN"
)

const (
	// idleReadyLine starts the line the subscriber process prints once
	// every subscription is open on the server.
	idleReadyLine = "idle subscribers open:"
	// idleHost is the idle subscribers' filter: a host that no published
	// entry has (.invalid is reserved, RFC 2606).
	idleHost = "nomatch.invalid"
	// idleMaxResources is cleanup.max_resources in the idle scenario, room
	// for the largest row's subscribers; a limit only, it costs nothing.
	idleMaxResources = 100_000
	// idleOpenTimeout bounds opening every subscription, and
	// idleStopTimeout the subscriber process's exit once told to stop.
	idleOpenTimeout = 2 * time.Minute
	// idleSettle is how long the subscriptions stay open and idle before
	// the server's memory is measured.
	idleSettle      = time.Second
	idleStopTimeout = time.Minute
	// The goals: ingest with the idle subscribers at least idleGoalRatio
	// of ingest without them, and at most idleGoalKiB of server memory
	// per idle subscriber.
	idleGoalRatio = 0.9
	idleGoalKiB   = 16
)

// noIdle keys the results of the server without idle subscribers, the
// baseline of the idle rows; it is a label, never a server to start.
const noIdle kind = "no subs"

// idleSpec is the idle scenario's size.
type idleSpec struct {
	counts       []int // idle subscribers of each row, each above 0
	perConn      int   // idle subscribers sharing one client connection
	perIteration int   // entries published per iteration, a multiple of 100
}

// idleFull is the suite's size: rows for 1000 and 10 000 idle subscribers,
// 100 to a connection, as ten or a hundred UIs with a hundred filtered
// views each would hold them.
var idleFull = idleSpec{counts: []int{1000, 10_000}, perConn: 100, perIteration: 100_000}

// idleConfig is pxperfConfig (archive off, as ingest runs) with room for
// the idle subscribers' streams. Both sides of a row run with it.
func idleConfig(logDir string, archive bool) *pxperfv1.Config {
	cfg := pxperfConfig(logDir, archive)
	cfg.Cleanup.MaxResources = idleMaxResources
	return cfg
}

// runIdle measures the idle scenario at the suite's size.
func runIdle(b *testing.B, opts suiteOptions) ([]row, error) {
	return measureIdle(b, idleFull, opts)
}

// measureIdle runs the ingest load (one PublishStream, messages of 100
// entries, archive off; entries/s acknowledged) against a pxperf server
// with each count of idle subscribers open and with none, taking turns as
// timedPair's servers do: in each of opts.rounds rounds every side gets a
// fresh server for opts.seconds of whole iterations, in an order that
// rotates. Each count gives two rows: its ingest rate over the rate
// without subscribers (pooled over the rounds), and the server's memory
// per idle subscriber (the median over the rounds).
func measureIdle(tb testing.TB, spec idleSpec, opts suiteOptions) ([]row, error) {
	sc := scenario{batch: 100, perIteration: spec.perIteration, config: idleConfig}
	sides := append([]int{0}, spec.counts...)
	rates := make(map[int]*sideResult)
	for _, n := range sides {
		rates[n] = &sideResult{}
	}
	mems := make(map[int][]idleMemory)
	for round := range opts.rounds {
		// One log line a round: the testing package keeps only the first
		// ten lines of a benchmark's log.
		var line []string
		for i := range sides {
			n := sides[(round+i)%len(sides)]
			res, err := idleRun(tb, sc, n, spec.perConn, opts.seconds)
			if err != nil {
				return nil, fmt.Errorf("round %d, %d idle subscribers: %w", round+1, n, err)
			}
			s := rates[n]
			s.entries += res.entries
			s.seconds += res.seconds
			s.rates = append(s.rates, res.entries/res.seconds)
			text := fmt.Sprintf("%d subs %s", n, rateText(res.entries/res.seconds))
			if n > 0 {
				mems[n] = append(mems[n], res.mem)
				text += fmt.Sprintf(" (%.1f KiB each)", res.mem.total()/1024)
			}
			line = append(line, text)
		}
		tb.Logf("round %d: %s", round+1, strings.Join(line, "; "))
	}
	var rows []row
	for _, n := range spec.counts {
		name := fmt.Sprintf("idle %d subs", n)
		r := pairRow("idle", name,
			fmt.Sprintf("entries/s acknowledged (the ingest load: one PublishStream, 100 entries of ~300 B a message, archive off) with %d idle subscribers open, %d to a connection, whose filter matches nothing",
				n, spec.perConn),
			map[kind]*sideResult{pxperf: rates[n], noIdle: rates[0]}, noIdle, "the same server with no subscriber", idleGoalRatio)
		r.GoalSource = "issue 17"
		rows = append(rows, r, idleMemoryRow(name, n, spec.perConn, mems[n]))
	}
	return rows, nil
}

// idleMemoryRow is the row of the server's memory per idle subscriber,
// from the rounds' measurements.
func idleMemoryRow(name string, n, perConn int, mems []idleMemory) row {
	total, heap, stack := make([]float64, len(mems)), make([]float64, len(mems)), make([]float64, len(mems))
	extra := map[string]float64{"subscribers": float64(n), "subscribers_per_connection": float64(perConn)}
	for i, m := range mems {
		total[i], heap[i], stack[i] = m.total()/1024, m.heap/1024, m.stack/1024
		extra[fmt.Sprintf("round%d_KiB", i+1)] = total[i]
	}
	extra["heap_KiB_median"], extra["stack_KiB_median"] = median(heap), median(stack)
	each := median(total)
	r := row{
		Scenario: "idle",
		Name:     name + ": memory each",
		Figure: "server memory per idle subscriber: growth of the server process's Go heap in use and goroutine stacks " +
			"(runtime.MemStats HeapInuse + StackInuse, each after a GC) from opening the subscriptions, over their count; " +
			"the subscribers run in a child process, so no client memory is counted",
		Unit:         "KiB",
		Pxperf:       each,
		PxperfText:   fmt.Sprintf("%.1f KiB", each),
		Baseline:     idleGoalKiB,
		BaselineName: "the goal itself",
		BaselineText: fmt.Sprintf("goal %d KiB", idleGoalKiB),
		Goal:         1,
		AtMost:       true,
		GoalSource:   "issue 17",
		Extra:        extra,
		Note: fmt.Sprintf("median of %d rounds (%.1f..%.1f KiB): heap %.1f, stacks %.1f KiB each; %d connections of %d subscribers, open and idle for %v, before ingest",
			len(mems), slices.Min(total), slices.Max(total), median(heap), median(stack), (n+perConn-1)/perConn, perConn, idleSettle),
	}
	r.judge()
	return r
}

// idleResult is what one server did in one round of the idle scenario.
type idleResult struct {
	entries float64 // acknowledged
	seconds float64
	mem     idleMemory // per idle subscriber; zero without any
}

// idleMemory is memory in bytes: the Go heap in use and goroutine stacks.
type idleMemory struct {
	heap  float64
	stack float64
}

func (m idleMemory) total() float64 { return m.heap + m.stack }

// memoryInUse collects garbage and returns the heap in use and the stacks
// of this process.
func memoryInUse() idleMemory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return idleMemory{heap: float64(ms.HeapInuse), stack: float64(ms.StackInuse)}
}

// idleRun starts a fresh pxperf server for sc, opens n idle subscribers on
// it (none when n is 0), measures the server's growth per subscriber,
// publishes whole iterations of sc until d has passed, checks that nothing
// was lost and every subscriber is still open, and stops it all.
func idleRun(tb testing.TB, sc scenario, n, perConn int, d time.Duration) (res idleResult, err error) {
	r := newRig(tb, pxperf, sc)
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the server: %w", cerr))
		}
		// Drop this server's heap before the next one runs, so that
		// neither pays for the other's garbage collection.
		runtime.GC()
	}()
	if n > 0 {
		before := memoryInUse()
		// The rig's publisher connection was dialled with the server's
		// address as its target.
		subs, serr := startIdleSubscribers(r.ctx, r.pubConn.Target(), n, perConn)
		if serr != nil {
			return res, serr
		}
		defer func() {
			if cerr := subs.stop(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
		if err := r.expectSubscribers(n); err != nil {
			return res, err
		}
		// Measured idle: once what opening the subscriptions sent (the
		// first message of each) has settled.
		time.Sleep(idleSettle)
		after := memoryInUse()
		res.mem = idleMemory{heap: (after.heap - before.heap) / float64(n), stack: (after.stack - before.stack) / float64(n)}
	}
	iterations := 0
	start := time.Now()
	for iterations == 0 || time.Since(start) < d {
		if err := r.iterate(sc.perIteration); err != nil {
			return res, fmt.Errorf("iteration %d: %w", iterations+1, err)
		}
		iterations++
	}
	res.seconds = time.Since(start).Seconds()
	res.entries = float64(iterations * sc.perIteration)
	if counts, err := r.check(); err != nil {
		return res, fmt.Errorf("after %d iterations: %w (%s)", iterations, err, counts)
	}
	if n > 0 {
		if err := r.expectSubscribers(n); err != nil {
			return res, fmt.Errorf("after %d iterations: %w", iterations, err)
		}
	}
	return res, nil
}

// expectSubscribers checks that the server has n Subscribe streams open.
func (r *rig) expectSubscribers(n int) error {
	resp, err := r.pub.GetStats(r.ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		return fmt.Errorf("GetStats: %w", err)
	}
	if got := resp.GetStats().GetThrottle().GetSubscribers(); got != uint64(n) {
		return fmt.Errorf("the server has %d subscribers open, want %d", got, n)
	}
	return nil
}

// startIdleSubscribers starts a subscriber process (this test binary
// again, running TestIdleSubscriberProcess) that opens n idle
// subscriptions on the server at addr, perConn to a connection, and
// returns once the server has opened every one of them. The process is
// killed if ctx ends. Its stop tells it to close its streams and exit, and
// says whether every stream stayed open and received nothing until then.
func startIdleSubscribers(ctx context.Context, addr string, n, perConn int) (*childProcess, error) {
	c, err := startChild(ctx, childSpec{
		name:        "subscriber process",
		test:        "TestIdleSubscriberProcess",
		env:         []string{idleAddrEnv + "=" + addr, idleCountEnv + "=" + strconv.Itoa(n), idlePerConnEnv + "=" + strconv.Itoa(perConn)},
		timeout:     rigTimeout,
		ready:       idleReadyLine,
		stopTimeout: idleStopTimeout,
	})
	if err != nil {
		return nil, err
	}
	switch err = c.waitReady(idleOpenTimeout); {
	case err == nil:
		return c, nil
	case errors.Is(err, errChildExited):
		err = errors.New("the subscriber process ended before its subscriptions were open")
	default:
		err = fmt.Errorf("%d subscriptions not open after %v", n, idleOpenTimeout)
	}
	return nil, errors.Join(err, c.stop())
}

// idleClients are idle Subscribe streams, several to a connection, each
// read by a goroutine of its own as a UI would read it.
type idleClients struct {
	conns   []*grpc.ClientConn
	cancel  context.CancelFunc // ends the streams
	wg      sync.WaitGroup     // the streams' recvLoops
	closing atomic.Bool        // streams ending now are being closed

	mu   sync.Mutex
	errs []error // streams that ended early or received something
}

// openIdleClients opens n Subscribe streams on the server at addr, perConn
// to a connection, with a filter that matches nothing. Each asks for the
// last matching entry (start tail 1): there is none, so the server's
// first message is the snapshot_end marker, sent once it has registered
// the subscription. openIdleClients returns when every stream has
// received it. The caller must call close.
func openIdleClients(ctx context.Context, addr string, n, perConn int) (*idleClients, error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &idleClients{cancel: cancel}
	req := &pxperfv1.SubscribeRequest{
		Filter: &pxperfv1.Filter{Host: idleHost},
		Start:  &pxperfv1.SubscribeRequest_Tail{Tail: 1},
	}
	opened := make(chan error, n) // one value from each stream
	for i := range n {
		if i%perConn == 0 {
			conn, err := dial(addr)
			if err != nil {
				return nil, errors.Join(err, c.close())
			}
			c.conns = append(c.conns, conn)
		}
		stream, err := pxperfv1.NewPerformanceServiceClient(c.conns[len(c.conns)-1]).Subscribe(ctx, req)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("Subscribe %d of %d: %w", i+1, n, err), c.close())
		}
		c.wg.Go(func() { c.recvLoop(stream, opened) })
	}
	for i := range n {
		var err error
		select {
		case err = <-opened:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("%d of %d streams open: %w", i, n, err), c.close())
		}
	}
	return c, nil
}

// recvLoop reads stream until it ends: first the snapshot_end marker,
// whose arrival (or failure) it reports on opened, then heartbeats. A
// stream that ends before close, or brings an entry or a gap, is an error.
func (c *idleClients) recvLoop(stream grpc.ServerStreamingClient[pxperfv1.SubscribeResponse], opened chan<- error) {
	m, err := stream.Recv()
	if err == nil && m.GetSnapshotEnd() == nil {
		err = fmt.Errorf("first message %v, want snapshot_end", m)
	}
	opened <- err
	if err != nil {
		return
	}
	for {
		m, err := stream.Recv()
		switch {
		case err != nil:
			if !c.closing.Load() {
				c.fail(fmt.Errorf("a stream ended before it was closed: %w", err))
			}
			return
		case m.GetBatch() != nil:
			c.fail(fmt.Errorf("an idle subscriber received %d entries", len(m.GetBatch().GetEntries())))
		case m.GetGap() != nil:
			c.fail(fmt.Errorf("an idle subscriber received a gap: %v", m.GetGap()))
		}
	}
}

// fail records err; the first ten are kept.
func (c *idleClients) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 10 {
		c.errs = append(c.errs, err)
	}
}

// close ends the streams and closes the connections, and returns what
// went wrong before.
func (c *idleClients) close() error {
	c.closing.Store(true)
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	errs := slices.Clone(c.errs)
	c.mu.Unlock()
	for _, conn := range c.conns {
		if err := conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// TestIdleSubscriberProcess is the idle scenario's subscriber process, run
// by startIdleSubscribers with its environment set: it opens the idle
// subscriptions, prints idleReadyLine, holds them open until its stdin
// ends, then closes them. Otherwise it is skipped.
func TestIdleSubscriberProcess(t *testing.T) {
	addr := os.Getenv(idleAddrEnv)
	if addr == "" {
		t.Skip("the idle scenario's subscriber process: runs only when the scenario starts it")
	}
	n, nErr := strconv.Atoi(os.Getenv(idleCountEnv))
	perConn, pErr := strconv.Atoi(os.Getenv(idlePerConnEnv))
	if err := errors.Join(nErr, pErr); err != nil || n < 1 || perConn < 1 {
		t.Fatalf("%s=%q %s=%q: want two positive counts (%v)", idleCountEnv, os.Getenv(idleCountEnv), idlePerConnEnv, os.Getenv(idlePerConnEnv), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rigTimeout)
	defer cancel()
	c, err := openIdleClients(ctx, addr, n, perConn)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s %d\n", idleReadyLine, n)
	_, err = io.Copy(io.Discard, os.Stdin) // until the scenario closes it
	if cerr := c.close(); cerr != nil {
		t.Error(cerr)
	}
	if err != nil {
		t.Errorf("reading stdin: %v", err)
	}
}

// TestIdle runs the idle scenario at a small scale: two rounds with 50
// idle subscribers, 10 to a connection.
func TestIdle(t *testing.T) {
	const n = 50
	rows, err := measureIdle(t, idleSpec{counts: []int{n}, perConn: 10, perIteration: 1_000},
		suiteOptions{seconds: 100 * time.Millisecond, rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		unit string
		most float64 // bound on the figure, a sanity check
	}{
		{fmt.Sprintf("idle %d subs", n), "entries/s", math.Inf(1)},
		{fmt.Sprintf("idle %d subs: memory each", n), "KiB", 1024},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		t.Run(w.name, func(t *testing.T) {
			r := rows[i]
			if r.Name != w.name || r.Unit != w.unit {
				t.Errorf("row %q in %s, want %q in %s", r.Name, r.Unit, w.name, w.unit)
			}
			if r.Error != "" || r.Pxperf <= 0 || r.Pxperf > w.most || r.Baseline <= 0 || r.Ratio <= 0 || r.Goal == 0 {
				t.Errorf("row %q: %+v", r.Name, r)
			}
			if _, ok := r.Extra["round2_ratio"]; !ok && w.unit == "entries/s" {
				t.Errorf("row %q has no second round's ratio: %v", r.Name, r.Extra)
			}
		})
	}
}
