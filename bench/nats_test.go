package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// natsKind is the fan-out's second baseline: an embedded nats-server.
const natsKind kind = "nats"

// natsSubject is the one subject the NATS baseline publishes on.
const natsSubject = "pxperf.entries"

// fieldPublishEntries is PublishStreamRequest.entries: a NATS subscriber
// counts these fields of each payload.
var fieldPublishEntries = fieldNumber(&pxperfv1.PublishStreamRequest{}, "entries")

// natsRig is the NATS counterpart of [rig] for the fan-out: an embedded
// nats-server on 127.0.0.1 (random port; no JetStream, clustering,
// authentication or logging; default limits: 1 MiB payloads, 64 MiB
// pending per client), one publisher connection and sc.subscribers
// subscriber connections, each with one subscription to natsSubject.
//
// One NATS message carries one batch: the bytes of the PublishStream
// message of sc.batch entries that the gRPC publisher sends, the same
// ~300-byte entries encoded the same way. Per batch mirrors what pxperf
// does (it sends batches, never one message per entry), and so does not
// charge NATS a per-message cost that pxperf avoids. Each subscriber walks
// each payload's top-level fields in place, counting entries, as the gRPC
// subscribers scan theirs (wire_test.go). An iteration, as for [rig],
// publishes perIteration entries, flushes (the server has read them all),
// and waits until every subscriber has counted every one: the publisher
// never runs ahead of the slowest subscriber by more than an iteration,
// so no NATS limit is reached and nothing is dropped. A slow-consumer
// error, a disconnect, or a count that is off fails the rig.
type natsRig struct {
	sc    scenario
	reqs  []encoded
	reqAt int

	ns   *natsserver.Server
	pub  *nats.Conn
	subs []*natsSubscriber

	ctx    context.Context
	cancel context.CancelFunc

	published uint64
	goal      atomic.Uint64 // entries all subscribers together must have received
	delivered atomic.Uint64 // entries all subscribers together have received
	wake      chan struct{} // 1-slot: delivered may have reached goal
	errc      chan error    // 1-slot: the first asynchronous failure
	closing   atomic.Bool   // set by close: disconnects are expected
	closeOnce sync.Once
}

// natsSubscriber is one subscriber connection and its counts.
type natsSubscriber struct {
	conn     *nats.Conn
	entries  atomic.Uint64
	messages atomic.Uint64
}

// newNATSRig starts the server, connects the publisher and subscribers,
// and publishes one warm-up batch every subscriber must receive. The rig
// is closed when tb's test ends; close errors fail it.
func newNATSRig(tb testing.TB, sc scenario) *natsRig {
	tb.Helper()
	ctx, cancel := context.WithTimeout(pprof.WithLabels(context.Background(), clientLabels(natsKind)), rigTimeout)
	pprof.SetGoroutineLabels(ctx) // as newRig does
	r := &natsRig{
		sc:     sc,
		reqs:   publishRequests(sc.batch),
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		errc:   make(chan error, 1),
	}
	tb.Cleanup(func() {
		if err := r.close(); err != nil {
			tb.Errorf("stopping the nats rig: %v", err)
		}
	})

	ns, err := natsserver.NewServer(&natsserver.Options{
		Host:   "127.0.0.1",
		Port:   natsserver.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		tb.Fatalf("nats-server: %v", err)
	}
	r.ns = ns
	// Start's goroutines (the accept loop, and so every client's) carry
	// the server labels.
	pprof.Do(ctx, serverLabels(natsKind), func(context.Context) { ns.Start() })
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready for connections after 10s")
	}
	url := ns.ClientURL()

	if r.pub, err = r.connect(url, "publisher"); err != nil {
		tb.Fatal(err)
	}
	for i := range sc.subscribers {
		conn, err := r.connect(url, fmt.Sprintf("subscriber-%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		s := &natsSubscriber{conn: conn}
		r.subs = append(r.subs, s)
		sub, err := conn.Subscribe(natsSubject, func(m *nats.Msg) { r.receive(s, m.Data) })
		if err != nil {
			tb.Fatalf("subscribe: %v", err)
		}
		// No client-side limit: the rig bounds what is pending itself.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			tb.Fatalf("subscription pending limits: %v", err)
		}
		// Once the server answers the flush it has the subscription: no
		// entry published after this can miss it.
		if err := conn.FlushWithContext(ctx); err != nil {
			tb.Fatalf("subscribe: %v", err)
		}
	}
	if err := r.iterate(sc.batch); err != nil {
		tb.Fatalf("warm-up: %v", err)
	}
	return r
}

// connect opens a client connection that reports, rather than survives,
// any trouble: no reconnects, and every asynchronous error fails the rig.
func (r *natsRig) connect(url, name string) (*nats.Conn, error) {
	conn, err := nats.Connect(url,
		nats.Name(name),
		nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			r.fail(fmt.Errorf("%s: %w", name, err))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !r.closing.Load() {
				r.fail(fmt.Errorf("%s disconnected: %v", name, err))
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", name, err)
	}
	return conn, nil
}

// receive counts the entries of one payload; it runs on the subscription's
// own goroutine, one message at a time.
func (r *natsRig) receive(s *natsSubscriber, data []byte) {
	n, err := countPublishEntries(data)
	if err != nil {
		r.fail(err)
		return
	}
	s.messages.Add(1)
	s.entries.Add(uint64(n))
	if r.delivered.Add(uint64(n)) >= r.goal.Load() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

func (r *natsRig) fail(err error) {
	select {
	case r.errc <- err:
	default:
	}
}

// countPublishEntries counts the entries of an encoded PublishStreamRequest
// without decoding them.
func countPublishEntries(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
		k = protowire.ConsumeFieldValue(num, typ, b)
		if k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
		if num == fieldPublishEntries && typ == protowire.BytesType {
			n++
		}
	}
	return n, nil
}

// iterate publishes n entries, one message per batch, and returns once
// every subscriber has received them.
func (r *natsRig) iterate(n int) error {
	ctx, cancel := context.WithTimeout(r.ctx, iterationTimeout)
	defer cancel()
	r.goal.Add(uint64(n * len(r.subs)))
	for sent := 0; sent < n; sent += r.sc.batch {
		if err := r.pub.Publish(natsSubject, r.reqs[r.reqAt]); err != nil {
			return fmt.Errorf("nats publish after %d of %d entries: %w", sent, n, err)
		}
		r.reqAt = (r.reqAt + 1) % len(r.reqs)
	}
	if err := r.pub.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats flush: %w", err)
	}
	r.published += uint64(n)
	goal := r.goal.Load()
	for r.delivered.Load() < goal {
		select {
		case <-r.wake:
		case err := <-r.errc:
			r.fail(err) // keep it for check
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for delivery: %d of %d entries delivered to %d subscribers: %w",
				r.delivered.Load(), goal, len(r.subs), ctx.Err())
		}
	}
	return nil
}

// check verifies that every subscriber received every entry published and
// that nothing failed; it returns the server's counts, for the log.
func (r *natsRig) check() (string, error) {
	var errs []error
	select {
	case err := <-r.errc:
		errs = append(errs, err)
	default:
	}
	for i, s := range r.subs {
		if got := s.entries.Load(); got != r.published {
			errs = append(errs, fmt.Errorf("nats subscriber %d received %d entries, want %d", i, got, r.published))
		}
	}
	v, err := r.ns.Varz(nil)
	if err != nil {
		return "", errors.Join(append(errs, fmt.Errorf("varz: %w", err))...)
	}
	if v.SlowConsumers != 0 {
		errs = append(errs, fmt.Errorf("nats-server counted %d slow consumers", v.SlowConsumers))
	}
	return fmt.Sprintf("nats-server: in %d msgs, out %d msgs, slow consumers %d", v.InMsgs, v.OutMsgs, v.SlowConsumers), errors.Join(errs...)
}

// messages returns the messages all subscribers received.
func (r *natsRig) messages() uint64 {
	var n uint64
	for _, s := range r.subs {
		n += s.messages.Load()
	}
	return n
}

// close closes every connection and shuts the server down, waiting for it.
func (r *natsRig) close() error {
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		for _, s := range r.subs {
			// Drain is not wanted: whatever is in flight is dropped.
			s.conn.Close()
		}
		if r.pub != nil {
			r.pub.Close()
		}
		if r.ns != nil {
			r.ns.Shutdown()
			r.ns.WaitForShutdown()
		}
		r.cancel()
		r.ns, r.pub, r.subs = nil, nil, nil
	})
	return nil
}

// TestNATSFanout runs the NATS baseline at a small scale, so that go test
// checks its harness and goleak that the server and clients stop.
func TestNATSFanout(t *testing.T) {
	sc := fanout
	sc.subscribers, sc.perIteration = 5, 1_000
	r := newNATSRig(t, sc)
	for range 3 {
		if err := r.iterate(sc.perIteration); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := r.check()
	if err != nil {
		t.Fatalf("%v (%s)", err, counts)
	}
	if got, want := r.messages(), uint64(5*(1+3*sc.perIteration/sc.batch)); got != want {
		t.Errorf("subscribers received %d messages, want %d (one per batch)", got, want)
	}
}
