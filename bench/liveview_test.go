package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/throttle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// The liveview scenario: how fresh a live view (SubscribeRequest.live_view)
// stays while entries pour in, and what it costs its client. The server
// runs in this process at the default config, with the paced publisher of
// the freshness scenario; the one live-view subscriber runs in a child
// process (this test binary again, running TestLiveViewSubscriberProcess),
// so that the CPU time it reports is the client's alone.
//
// The child takes its orders on stdin: "start" when publishing begins,
// "stop ID" when it has ended, ID being the last id published. It reads
// its CPU time (getrusage) at each, waits for a message that reaches ID,
// writes what it received as JSON to the file named in its environment,
// and exits.

// The environment of the live-view subscriber process: the server's
// address, the view's window and the file to write its results to.
const (
	liveAddrEnv   = "BENCH_LIVEVIEW_ADDR"
	liveWindowEnv = "BENCH_LIVEVIEW_WINDOW"
	liveOutEnv    = "BENCH_LIVEVIEW_OUT"
)

const (
	// liveRate is the suite's publishing rate, in entries a second, and
	// liveWindow the view's window: the rows a UI shows.
	liveRate   = 100_000
	liveWindow = 50
	// liveReadyLine starts the line the subscriber process prints once its
	// view's first message has arrived.
	liveReadyLine = "live view open:"
	// liveOpenTimeout bounds the subscriber process's start, up to its
	// first message; liveStopTimeout its exit once told to stop, which
	// includes waiting up to freshDrain for the last id.
	liveOpenTimeout = time.Minute
	liveStopTimeout = freshDrain + time.Minute
	// The goals: a message reflects an entry within one interval of the
	// throttle and liveSlack, at p99; the client uses at most
	// liveCPUGoal of a core.
	liveSlack   = 5 * time.Millisecond
	liveCPUGoal = 0.05
	// liveGoalSource is where the goals come from.
	liveGoalSource = "issue 17"
)

// runLiveView measures the live view at the suite's rate for
// freshSeconds, as the freshness scenario publishes.
func runLiveView(b *testing.B, opts suiteOptions) ([]row, error) {
	return measureLiveView(b, liveRate, freshSeconds(opts), opts.profiles)
}

// liveResult is what the subscriber process reports: every message it
// received, and its CPU time between the "start" and "stop" orders. Times
// are Unix nanoseconds, wall clock: the two processes share the machine's.
type liveResult struct {
	Messages []liveRecord `json:"messages"`
	Start    int64        `json:"start"`     // when it read "start"
	Stop     int64        `json:"stop"`      // when it read "stop"
	DrainEnd int64        `json:"drain_end"` // when it stopped waiting for the last id
	CPU      int64        `json:"cpu_ns"`    // user + system CPU time from Start to Stop
}

// liveRecord is one view message as the subscriber received it.
type liveRecord struct {
	At      int64  `json:"at"`      // when Recv returned it, decoded
	Newest  uint64 `json:"newest"`  // id of its newest entry; 0 without entries
	Entries int    `json:"entries"` // entries carried
	Updates int    `json:"updates"` // updates carried
	Skipped uint64 `json:"skipped"` // ids of its skipped range
	Bytes   int64  `json:"bytes"`   // size of the SubscribeResponse, protobuf wire format
}

// measureLiveView starts a pxperf server at the default config (archive
// off), a live-view subscriber (window liveWindow, no filter) in a child
// process, and publishes rate entries a second for d as the freshness
// scenario does. It returns the rows: freshness (each PublishStream
// message timed to the receipt of the first view message whose newest
// entry is at or past its last id), the client's CPU, and the messages it
// received. With profiles set, the child writes its CPU profile there as
// liveview-client.cpu.
func measureLiveView(tb testing.TB, rate int, d time.Duration, profiles string) (rows []row, err error) {
	sc := scenario{batch: rate / 100, perIteration: rate / 100, config: defaultConfig}
	r := newRig(tb, pxperf, sc)
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the server: %w", cerr))
		}
	}()
	ctx, cancel := context.WithTimeout(r.ctx, liveOpenTimeout+d+iterationTimeout+liveStopTimeout)
	defer cancel()
	cfg, err := r.pub.GetConfig(ctx, &pxperfv1.GetConfigRequest{})
	if err != nil {
		return nil, fmt.Errorf("GetConfig: %w", err)
	}
	// The throttle's hard cap, which the default (adaptive) mode keeps
	// unless the process is under load or the subscriber slow.
	tc := cfg.GetConfig().GetThrottle()
	interval := max(tc.GetMinUpdateInterval().AsDuration(), throttle.Every(int(tc.GetMaxUpdatesPerSecond())))

	out := filepath.Join(tb.TempDir(), "liveview.json")
	spec := childSpec{
		name:        "live-view subscriber process",
		test:        "TestLiveViewSubscriberProcess",
		env:         []string{liveAddrEnv + "=" + r.pubConn.Target(), liveWindowEnv + "=" + strconv.Itoa(liveWindow), liveOutEnv + "=" + out},
		timeout:     liveOpenTimeout + d + iterationTimeout + liveStopTimeout,
		ready:       liveReadyLine,
		stopTimeout: liveStopTimeout,
	}
	if profiles != "" {
		p, err := filepath.Abs(filepath.Join(profiles, "liveview-client.cpu"))
		if err != nil {
			return nil, err
		}
		spec.args = append(spec.args, "-test.cpuprofile="+p)
	}
	child, err := startChild(ctx, spec)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, child.stop())
		}
	}()
	if err := child.waitReady(liveOpenTimeout); err != nil {
		return nil, err
	}

	st, err := r.pub.GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("GetStats: %w", err)
	}
	base := st.GetStats().GetStore().GetNewestId() // the publisher's ids follow
	if err := child.send("start"); err != nil {
		return nil, err
	}
	sends, err := r.publishPaced(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(sends) == 0 {
		return nil, fmt.Errorf("nothing published in %v", d)
	}
	// The server's view of the subscriber at the end of publishing, while
	// it is still open: the interval it keeps (adaptive mode stretches it
	// under load) and the load it reacts to.
	end, err := r.pub.GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("GetStats: %w", err)
	}
	last := base + uint64(sends[len(sends)-1].count)
	if err := child.send(fmt.Sprintf("stop %d", last)); err != nil {
		return nil, err
	}
	stopped = true
	if err := child.stop(); err != nil {
		return nil, err
	}
	if counts, err := r.check(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, counts)
	}
	if got := end.GetStats().GetStore().GetNewestId(); got != last {
		return nil, fmt.Errorf("the server's newest id is %d, want %d: another publisher?", got, last)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("the subscriber's results: %w", err)
	}
	var res liveResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("the subscriber's results: %w", err)
	}
	if res.Stop <= res.Start {
		return nil, fmt.Errorf("the subscriber's window runs from %d to %d ns", res.Start, res.Stop)
	}
	return liveRows(rate, d, interval, sends, base, res, end.GetStats().GetThrottle()), nil
}

// viewLatencies returns, for each PublishStream message sent (sends[i].t,
// carrying ids up to base + sends[i].count), the time from its send to the
// receipt of the first view message whose newest entry is at or past its
// last id: entries a later message superseded count until that message.
// Messages no view message reached count until the subscriber stopped
// waiting, a lower bound; late says how many.
func viewLatencies(sends []mark, base uint64, res liveResult) (lat []time.Duration, late int) {
	msgs := res.Messages
	j := 0
	for _, s := range sends {
		id := base + uint64(s.count)
		for j < len(msgs) && msgs[j].Newest < id {
			j++
		}
		at := res.DrainEnd
		if j < len(msgs) {
			at = msgs[j].At
		} else {
			late++
		}
		lat = append(lat, time.Unix(0, at).Sub(s.t))
	}
	return lat, late
}

// newestAges returns, sorted, how old each view message's newest entry
// was when the message arrived, from the send of the PublishStream
// message that carried it: the pipeline's delay (ingest, reading,
// sending, decoding) without the wait for the interval, plus up to a
// freshTick by which the read followed that send. The least is the
// pipeline's alone.
func newestAges(sends []mark, base uint64, res liveResult) []time.Duration {
	var ages []time.Duration
	k := 0
	for _, m := range res.Messages {
		if m.Newest <= base {
			continue // published before the scenario's sends
		}
		for k < len(sends) && base+uint64(sends[k].count) < m.Newest {
			k++
		}
		if k == len(sends) {
			break
		}
		ages = append(ages, time.Unix(0, m.At).Sub(sends[k].t))
	}
	slices.Sort(ages)
	return ages
}

// liveRows turns a run's figures into the scenario's rows: sends are the
// PublishStream messages, whose ids follow base, and res what the
// subscriber received; ts is the server's throttle at the end.
func liveRows(rate int, d, interval time.Duration, sends []mark, base uint64, res liveResult, ts *pxperfv1.ThrottleStats) []row {
	name := fmt.Sprintf("liveview %dk/s", rate/1000)
	lat, late := viewLatencies(sends, base, res)
	slices.Sort(lat)
	ages := newestAges(sends, base, res)
	wall := time.Duration(res.Stop - res.Start).Seconds()
	var msgs, entries, updates, bytes, skipped float64
	var gaps []time.Duration // between messages received in the window
	prev := int64(0)
	for _, m := range res.Messages {
		if m.At >= res.Start && m.At <= res.Stop {
			msgs++
			entries += float64(m.Entries)
			updates += float64(m.Updates)
			bytes += float64(m.Bytes)
			skipped += float64(m.Skipped)
			if prev != 0 {
				gaps = append(gaps, time.Duration(m.At-prev))
			}
			prev = m.At
		}
	}
	slices.Sort(gaps)
	perMsg := func(x float64) float64 { return x / max(msgs, 1) }
	goal := interval + liveSlack
	delivered := "every message reflected"
	if late > 0 {
		delivered = fmt.Sprintf("%d of %d messages not reflected %v after the last was published; they count as that late, a lower bound",
			late, len(lat), freshDrain)
	}
	fresh := row{
		Scenario: "liveview",
		Name:     name + ": freshness p99",
		Figure: fmt.Sprintf("latency from each PublishStream message to the receipt of the first live-view message (window %d, no filter) "+
			"whose newest entry is at or past it, at the default config; judged at p99", liveWindow),
		Unit:         "ms",
		Pxperf:       ms(percentile(lat, 0.99)),
		PxperfText:   pctText(lat),
		Baseline:     ms(goal),
		BaselineName: "the goal itself: one interval of the throttle (1 s / throttle.max_updates_per_second, at least min_update_interval) + 5 ms",
		BaselineText: fmt.Sprintf("goal %s ms", trimFloat(math.Round(ms(goal)*10)/10)),
		Goal:         1,
		AtMost:       true,
		GoalSource:   liveGoalSource,
		GoalNote:     "p99",
		Extra: map[string]float64{
			"published_messages": float64(len(lat)),
			"late_messages":      float64(late),
			"p50_ms":             ms(percentile(lat, 0.50)),
			"p90_ms":             ms(percentile(lat, 0.90)),
			"p99_ms":             ms(percentile(lat, 0.99)),
			"max_ms":             ms(lat[len(lat)-1]),
			"min_ms":             ms(lat[0]),
			"interval_ms":        ms(interval),
			"newest_age_min_ms":  ms(percentile(ages, 0)),
			"newest_age_p50_ms":  ms(percentile(ages, 0.50)),
			"newest_age_p99_ms":  ms(percentile(ages, 0.99)),
		},
		Note: fmt.Sprintf("%d entries/s for %v, %d a message every %v; interval %.1f ms; a view message's newest entry had been sent "+
			"min %.1f, p50 %.1f, p99 %.1f ms before the message arrived (the pipeline without the wait for the interval, plus up to %v of publisher phase); %s",
			rate, d, rate/100, freshTick, ms(interval), ms(percentile(ages, 0)), ms(percentile(ages, 0.50)), ms(percentile(ages, 0.99)), freshTick, delivered),
	}
	cores := time.Duration(res.CPU).Seconds() / wall
	cpu := row{
		Scenario: "liveview",
		Name:     name + ": client CPU",
		Figure: "CPU time (user + system, getrusage) of the subscriber's process over the publishing time, as a share of one core: " +
			"one live view, each message decoded by the generated client, alone in its process",
		Unit:         "cores",
		Pxperf:       cores,
		PxperfText:   fmt.Sprintf("%.3f cores (%.1f %%)", cores, 100*cores),
		Baseline:     liveCPUGoal,
		BaselineName: "the goal itself",
		BaselineText: fmt.Sprintf("goal %s core", trimFloat(liveCPUGoal)),
		Goal:         1,
		AtMost:       true,
		GoalSource:   liveGoalSource,
		Extra:        map[string]float64{"cpu_seconds": time.Duration(res.CPU).Seconds(), "wall_seconds": wall},
		Note:         fmt.Sprintf("%.3f s of CPU in %.2f s", time.Duration(res.CPU).Seconds(), wall),
	}
	limit := float64(time.Second) / float64(interval)
	perSecond := msgs / wall
	msgRow := row{
		Scenario: "liveview",
		Name:     name + ": messages",
		Figure: "view messages the subscriber received a second over the publishing time, beside the throttle's cap (1 / interval); " +
			"no goal: what the client's work is made of",
		Unit:         "msgs/s",
		Pxperf:       perSecond,
		PxperfText:   fmt.Sprintf("%.1f msgs/s, %.1f entries each", perSecond, perMsg(entries)),
		Baseline:     limit,
		BaselineName: "the throttle's cap",
		BaselineText: fmt.Sprintf("cap %.1f msgs/s", limit),
		Extra: map[string]float64{
			"messages":        msgs,
			"entries_per_msg": perMsg(entries),
			"updates_per_msg": perMsg(updates),
			"skipped_per_msg": perMsg(skipped),
			"bytes_per_msg":   perMsg(bytes),
			"KiB_per_s":       bytes / 1024 / wall,
			"server_cpu_load": ts.GetCpuLoad(),
			"spacing_p50_ms":  ms(percentile(gaps, 0.50)),
			"spacing_p99_ms":  ms(percentile(gaps, 0.99)),
		},
		Note: fmt.Sprintf("%.0f messages in %.2f s, %.1f KiB each (%.0f KiB/s); %.0f ids skipped a message; spaced p50 %.1f, p99 %.1f ms",
			msgs, wall, perMsg(bytes)/1024, bytes/1024/wall, perMsg(skipped), ms(percentile(gaps, 0.50)), ms(percentile(gaps, 0.99))),
	}
	if len(gaps) > 0 {
		msgRow.Extra["spacing_max_ms"] = ms(gaps[len(gaps)-1])
		msgRow.Note += fmt.Sprintf(", max %.1f ms", ms(gaps[len(gaps)-1]))
	}
	if subs := ts.GetPerSubscriber(); len(subs) == 1 {
		iv := subs[0].GetInterval().AsDuration()
		msgRow.Extra["server_interval_ms"] = ms(iv)
		msgRow.Note += fmt.Sprintf("; at the end of publishing the server kept %.1f ms between messages, its CPU load %.0f %% of all cores",
			ms(iv), 100*ts.GetCpuLoad())
	}
	rows := []row{fresh, cpu, msgRow}
	for i := range rows {
		rows[i].judge()
	}
	return rows
}

// sizeCodec is gRPC's proto codec that keeps the size of the last message
// it read, so that the subscriber counts the bytes it receives without
// measuring messages again. Its name is the standard "proto".
type sizeCodec struct {
	encoding.CodecV2
	last atomic.Int64
}

func (c *sizeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.last.Store(int64(data.Len()))
	return c.CodecV2.Unmarshal(data, v)
}

// liveViewer reads one live view's stream, recording each message and
// checking that every id is either carried or skipped, once.
type liveViewer struct {
	stream grpc.ServerStreamingClient[pxperfv1.SubscribeResponse]
	codec  *sizeCodec
	window int

	records []liveRecord // written by recvLoop; read once done is closed
	covered uint64       // every id up to this one was carried or skipped

	newest atomic.Uint64 // newest id received
	first  chan struct{} // closed when the first message has arrived
	wake   chan struct{} // 1-slot: newest has grown
	err    error         // why recvLoop ended; read once done is closed
	done   chan struct{} // closed when recvLoop returns
}

// recvLoop receives until the stream ends or a message is wrong.
func (v *liveViewer) recvLoop() {
	defer close(v.done)
	for {
		m, err := v.stream.Recv()
		if err != nil {
			v.err = err
			return
		}
		at := time.Now()
		view := m.GetView()
		if view == nil {
			v.err = fmt.Errorf("a live view received %v, want view events only", m)
			return
		}
		if err := v.check(view); err != nil {
			v.err = err
			return
		}
		rec := liveRecord{At: at.UnixNano(), Entries: len(view.GetEntries()), Updates: len(view.GetUpdates()), Bytes: v.codec.last.Load()}
		if es := view.GetEntries(); len(es) > 0 {
			rec.Newest = es[0].GetId()
		}
		if f := view.GetSkippedFirstId(); f != 0 {
			rec.Skipped = view.GetSkippedLastId() - f + 1
		}
		v.records = append(v.records, rec)
		if len(v.records) == 1 {
			close(v.first)
		}
		if rec.Newest > 0 {
			v.newest.Store(rec.Newest)
			select {
			case v.wake <- struct{}{}:
			default:
			}
		}
	}
}

// check verifies a view message against those before it: at most the
// window of entries, newest first with consecutive ids (no filter: every
// entry matches), and, after the first message, its skipped range and
// entries taking up exactly where the previous message ended.
func (v *liveViewer) check(view *pxperfv1.ViewUpdate) error {
	es := view.GetEntries()
	if len(es) > v.window {
		return fmt.Errorf("a view message carried %d entries, more than the window %d", len(es), v.window)
	}
	if len(es) == 0 {
		if view.GetSkippedFirstId() != 0 {
			return fmt.Errorf("a view message skipped ids %d..%d and carried no entry", view.GetSkippedFirstId(), view.GetSkippedLastId())
		}
		return nil
	}
	for i := 1; i < len(es); i++ {
		if es[i].GetId() != es[i-1].GetId()-1 {
			return fmt.Errorf("a view message carried id %d after %d, want consecutive ids newest first", es[i].GetId(), es[i-1].GetId())
		}
	}
	if v.covered != 0 {
		next := v.covered + 1
		if f := view.GetSkippedFirstId(); f != 0 {
			if f != next || view.GetSkippedLastId() < f {
				return fmt.Errorf("a view message skipped ids %d..%d, want a range from %d", f, view.GetSkippedLastId(), next)
			}
			next = view.GetSkippedLastId() + 1
		}
		if oldest := es[len(es)-1].GetId(); oldest != next {
			return fmt.Errorf("a view message's oldest entry is %d, want %d: ids neither carried nor skipped, or twice", oldest, next)
		}
	}
	v.covered = es[0].GetId()
	return nil
}

// liveViewClient is the subscriber process's work: it opens a live view
// of window entries on the server at addr, prints liveReadyLine to ready
// once the first message has arrived, then follows the orders read from
// orders ("start", then "stop ID"), and returns what it received.
func liveViewClient(ctx context.Context, addr string, window int, orders io.Reader, ready io.Writer) (*liveResult, error) {
	conn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	codec := &sizeCodec{CodecV2: encoding.GetCodecV2("proto")}
	stream, err := pxperfv1.NewPerformanceServiceClient(conn).Subscribe(ctx,
		&pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: uint32(window)}}, grpc.ForceCodecV2(codec))
	if err != nil {
		return nil, fmt.Errorf("Subscribe: %w", err)
	}
	v := &liveViewer{stream: stream, codec: codec, window: window,
		first: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go v.recvLoop()
	defer func() {
		cancel()
		<-v.done
	}()
	ended := func() error { return fmt.Errorf("the live view ended after %d messages: %w", len(v.records), v.err) }
	select {
	case <-v.first:
	case <-v.done:
		return nil, ended()
	}
	if _, err := fmt.Fprintf(ready, "%s window %d\n", liveReadyLine, window); err != nil {
		return nil, err
	}

	res := &liveResult{}
	lines := bufio.NewScanner(orders)
	order := func() (string, error) {
		if !lines.Scan() {
			return "", fmt.Errorf("orders ended: %w", errors.Join(lines.Err(), io.ErrUnexpectedEOF))
		}
		return lines.Text(), nil
	}
	if o, err := order(); err != nil {
		return nil, fmt.Errorf("waiting for start: %w", err)
	} else if o != "start" {
		return nil, fmt.Errorf("order %q, want start", o)
	}
	cpu0, err := cpuTime()
	if err != nil {
		return nil, err
	}
	res.Start = time.Now().UnixNano()
	o, err := order()
	if err != nil {
		return nil, fmt.Errorf("waiting for stop: %w", err)
	}
	cpu1, err := cpuTime()
	if err != nil {
		return nil, err
	}
	res.Stop = time.Now().UnixNano()
	res.CPU = int64(cpu1 - cpu0)
	idText, ok := strings.CutPrefix(o, "stop ")
	last, perr := strconv.ParseUint(idText, 10, 64)
	if !ok || perr != nil {
		return nil, fmt.Errorf("order %q, want stop and an id", o)
	}

	// Wait for the last id, for as long as the freshness scenario waits
	// for its last entries; messages that never come count as late.
	drain := time.NewTimer(freshDrain)
	defer drain.Stop()
wait:
	for v.newest.Load() < last {
		select {
		case <-v.wake:
		case <-v.done:
			return nil, ended()
		case <-drain.C:
			break wait
		}
	}
	res.DrainEnd = time.Now().UnixNano()
	select {
	case <-v.done:
		return nil, ended()
	default:
	}
	cancel()
	<-v.done
	res.Messages = v.records
	return res, nil
}

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// TestLiveViewSubscriberProcess is the liveview scenario's subscriber
// process, run by measureLiveView with its environment set: it runs
// liveViewClient on its stdin and stdout and writes the result as JSON to
// the file its environment names. Otherwise it is skipped.
func TestLiveViewSubscriberProcess(t *testing.T) {
	addr := os.Getenv(liveAddrEnv)
	if addr == "" {
		t.Skip("the liveview scenario's subscriber process: runs only when the scenario starts it")
	}
	window, err := strconv.Atoi(os.Getenv(liveWindowEnv))
	out := os.Getenv(liveOutEnv)
	if err != nil || window < 1 || out == "" {
		t.Fatalf("%s=%q %s=%q: want a positive window and a file (%v)", liveWindowEnv, os.Getenv(liveWindowEnv), liveOutEnv, out, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rigTimeout)
	defer cancel()
	res, err := liveViewClient(ctx, addr, window, os.Stdin, os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLiveView runs the liveview scenario at a small scale: 10 000
// entries/s for a second, and checks that its rows come out with sane
// figures. Under -race the figures say little; the goals are not judged.
func TestLiveView(t *testing.T) {
	rows, err := measureLiveView(t, 10_000, time.Second, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		unit string
		most float64 // bound on the figure, a sanity check
		goal bool    // the row has a goal
	}{
		{"liveview 10k/s: freshness p99", "ms", ms(freshDrain), true},
		{"liveview 10k/s: client CPU", "cores", 2, true},
		{"liveview 10k/s: messages", "msgs/s", 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := slices.IndexFunc(rows, func(r row) bool { return r.Name == tc.name })
			if i < 0 {
				t.Fatalf("no row %q in %+v", tc.name, rows)
			}
			r := rows[i]
			t.Logf("%s against %s; %s", r.PxperfText, r.BaselineText, r.Note)
			if r.Unit != tc.unit || r.Error != "" || r.Pxperf <= 0 || r.Pxperf > tc.most || r.Baseline <= 0 || r.Ratio <= 0 || (r.Goal != 0) != tc.goal {
				t.Errorf("row %q: %+v", r.Name, r)
			}
		})
	}
	if len(rows) != 3 {
		t.Errorf("%d rows, want 3", len(rows))
	}
	fresh := rows[0]
	if fresh.Extra["late_messages"] != 0 || fresh.Extra["min_ms"] < 0 {
		t.Errorf("freshness: %v late, fastest %.1f ms; want none late, none negative", fresh.Extra["late_messages"], fresh.Extra["min_ms"])
	}
	// 10 000 entries/s against one message an interval: far more entries
	// arrive between two messages than the window holds.
	if msgs := rows[2]; msgs.Extra["entries_per_msg"] <= 0 || msgs.Extra["entries_per_msg"] > liveWindow || msgs.Extra["skipped_per_msg"] <= 0 {
		t.Errorf("messages: %.1f entries and %.1f skipped ids each, want 1..%d and some skipped", msgs.Extra["entries_per_msg"], msgs.Extra["skipped_per_msg"], liveWindow)
	}
}
