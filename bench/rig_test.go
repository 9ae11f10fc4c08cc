package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// kind names a server under test.
type kind string

const (
	bare   kind = "bare"
	pxperf kind = "pxperf"
	// The cluster kinds are pxperf in cluster mode on NATS JetStream
	// servers in the test process, on loopback: one server and one replica
	// of the streams, or three servers and three replicas.
	clusterR1 kind = "pxperf-r1"
	clusterR3 kind = "pxperf-r3"
)

// isPxperf reports whether k is a pxperf server, embedded or in a cluster.
func (k kind) isPxperf() bool { return k == pxperf || k.replicas() > 0 }

// replicas returns the replicas of a cluster kind's streams; 0 for the
// others.
func (k kind) replicas() int {
	switch k {
	case clusterR1:
		return 1
	case clusterR3:
		return 3
	}
	return 0
}

// scenario is one benchmark's shape. One iteration publishes perIteration
// entries in messages of batch entries and ends when every subscriber has
// received all of them.
type scenario struct {
	subscribers  int
	batch        int // entries per PublishStream message
	perIteration int // entries published per iteration; a multiple of batch
	// archive leaves pxperf's logs.enabled at its default (true); false
	// turns the archive off.
	archive bool
	// config, if set, is pxperf's config instead of pxperfConfig's, and
	// the subscribers then ask for nothing of their own: they get the
	// server's throttle as any client would.
	config func(logDir string, archive bool) *pxperfv1.Config
	// crossNode puts the subscribers on a second node of the cluster
	// (cluster kinds only): they get what the publisher's node appended,
	// through the stream.
	crossNode bool
}

const (
	// rigTimeout bounds one rig's whole life: start, every iteration, stop.
	rigTimeout = 10 * time.Minute
	// iterationTimeout bounds one iteration: a server that stops delivering
	// fails the benchmark after this long instead of hanging it.
	iterationTimeout = 2 * time.Minute
	// maxMessageBytes is the clients' receive limit, the servers' own
	// (16 MiB). A pxperf batch is at most 1 MiB of entries, but a bare
	// batch is not bounded by the server.
	maxMessageBytes = 16 << 20
)

// rig is a server of one kind on loopback TCP, one publisher connection and
// sc.subscribers subscriber connections, each with one Subscribe stream.
type rig struct {
	kind  kind
	sc    scenario
	reqs  []encoded // PublishStream messages of sc.batch entries
	reqAt int       // next of reqs to send

	bare   *bareServer     // kind bare
	gs     *grpc.Server    // kind bare
	pxperf *service.Server // kind pxperf
	served chan error      // Serve's result

	nats    *natstest.Cluster // cluster kinds
	nodeB   *service.Server   // the subscribers' node, with sc.crossNode
	servedB chan error        // nodeB's Serve's result

	pubConn *grpc.ClientConn
	pub     pxperfv1.PerformanceServiceClient
	subs    []*subscriber

	ctx       context.Context    // the rig's deadline
	cancel    context.CancelFunc // ends ctx
	cancelSub context.CancelFunc // ends the Subscribe streams

	published uint64                   // entries published and acknowledged
	goal      atomic.Uint64            // entries all subscribers together must have received
	delivered atomic.Uint64            // entries all subscribers together have received
	wake      chan struct{}            // 1-slot: delivered may have reached goal
	arrivals  atomic.Pointer[arrivals] // when set, each batch's arrival is recorded
	broken    chan struct{}            // closed when a subscriber's stream ends early
	breakOnce sync.Once
	closeOnce sync.Once
}

// subscriber is one Subscribe stream and its counts.
type subscriber struct {
	conn   *grpc.ClientConn
	stream grpc.ClientStream // read with wireCodec

	// msg is the message being read; with msg.checkIDs (pxperf only: bare
	// entries have no id), entries must arrive with consecutive ids.
	msg subscribeScan

	entries  atomic.Uint64 // entries received in batches
	messages atomic.Uint64 // batch messages received
	updates  atomic.Uint64 // entries received as updates
	progress atomic.Uint64 // progress messages received
	gaps     atomic.Uint64 // gap messages received

	err  error         // why recvLoop ended; read after done is closed
	done chan struct{} // closed when recvLoop returns
}

// pxperfConfig is the config the benchmarks run pxperf with: the default,
// changed for throughput. See the package doc for why each change.
func pxperfConfig(logDir string, archive bool) *pxperfv1.Config {
	cfg := config.Default()
	cfg.Memory.MaxEntries = 1_000_000
	cfg.Memory.MaxMemoryMb = 4096
	cfg.Throttle.MaxUpdatesPerSecond = 1000
	cfg.Throttle.MaxBatchSize = 10000
	cfg.Throttle.BatchSize = 10000
	cfg.Throttle.Mode = pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED
	cfg.Throttle.MinUpdateInterval = durationpb.New(time.Millisecond)
	cfg.Throttle.BatchTimeout = durationpb.New(time.Millisecond)
	cfg.Cleanup.MaxResources = 1000
	cfg.Logs.Enabled = archive
	cfg.Logs.Directory = logDir
	return cfg
}

// serverLabels marks the CPU samples of every goroutine a server of kind k
// starts (they inherit the labels of the goroutine that starts them), so
// that a profile can be split: go tool pprof -tagfocus side=server for all
// servers, -tagfocus kind=pxperf for one kind, clients included (see
// clientLabels); -tags shows the split.
func serverLabels(k kind) pprof.LabelSet {
	return pprof.Labels("side", "server", "kind", string(k))
}

// clientLabels marks the CPU samples of the clients of a server of kind k:
// the goroutine that starts a rig (and runs its iterations) and every
// goroutine it starts but the server's.
func clientLabels(k kind) pprof.LabelSet {
	return pprof.Labels("side", "client", "kind", string(k))
}

// newRig starts a server of kind k, connects a publisher and the
// subscribers, and publishes one warm-up message that every subscriber
// must receive before newRig returns: so the streams are open and warm
// when timing starts. The rig is closed when tb's test ends; close errors
// fail it.
func newRig(tb testing.TB, k kind, sc scenario) *rig {
	tb.Helper()
	if sc.batch < 1 || sc.perIteration%sc.batch != 0 {
		tb.Fatalf("scenario %+v: perIteration must be a multiple of batch", sc)
	}
	// The clients' goroutines are started from this one, labelled as
	// clients of k; the server's, in pprof.Do below, as k's server.
	ctx, cancel := context.WithTimeout(pprof.WithLabels(context.Background(), clientLabels(k)), rigTimeout)
	pprof.SetGoroutineLabels(ctx)
	r := &rig{
		kind:   k,
		sc:     sc,
		reqs:   publishRequests(sc.batch),
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		broken: make(chan struct{}),
		served: make(chan error, 1),
	}
	// Before the rig's cleanup, so that it is removed after the server
	// (and its archive) stopped: cleanups run last registered first.
	logDir := tb.TempDir()
	tb.Cleanup(func() {
		if err := r.close(); err != nil {
			tb.Errorf("stopping the %s rig: %v", k, err)
		}
	})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	switch k {
	case bare:
		r.bare = newBareServer()
		r.gs = newBareGRPCServer(r.bare)
		pprof.Do(ctx, serverLabels(k), func(context.Context) {
			go func() { r.served <- r.gs.Serve(lis) }()
		})
	case pxperf, clusterR1, clusterR3:
		config := pxperfConfig
		if sc.config != nil {
			config = sc.config
		}
		cfg := config(logDir, sc.archive)
		if n := k.replicas(); n > 0 {
			r.nats = natstest.Start(tb, n)
			cfg.Cluster.Urls = r.nats.URLs()
			cfg.Cluster.Replicas = uint32(n)
		}
		pprof.Do(ctx, serverLabels(k), func(context.Context) {
			r.pxperf, err = service.New(cfg, service.Options{})
			if err == nil {
				go func() { r.served <- r.pxperf.Serve(lis) }()
			}
		})
		if err != nil {
			lis.Close()
			tb.Fatalf("service.New: %v", err)
		}
	}
	addr := lis.Addr().String()
	subAddr := addr
	if sc.crossNode {
		if r.nats == nil {
			tb.Fatalf("scenario %+v: crossNode needs a cluster kind, not %s", sc, k)
		}
		if subAddr, err = r.startNodeB(ctx, k, sc, tb.TempDir()); err != nil {
			tb.Fatal(err)
		}
	}

	if r.pubConn, err = dial(addr); err != nil {
		tb.Fatal(err)
	}
	r.pub = pxperfv1.NewPerformanceServiceClient(r.pubConn)

	if err := r.subscribe(subAddr); err != nil {
		tb.Fatal(err)
	}
	if err := r.iterate(sc.batch); err != nil {
		tb.Fatalf("warm-up: %v", err)
	}
	return r
}

// startNodeB starts the second node of a cluster kind's rig, on the same
// NATS servers, and returns its address.
func (r *rig) startNodeB(ctx context.Context, k kind, sc scenario, logDir string) (string, error) {
	config := pxperfConfig
	if sc.config != nil {
		config = sc.config
	}
	cfg := config(logDir, sc.archive)
	cfg.Cluster.Urls = r.nats.URLs()
	cfg.Cluster.Replicas = uint32(k.replicas())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	r.servedB = make(chan error, 1)
	pprof.Do(ctx, serverLabels(k), func(context.Context) {
		r.nodeB, err = service.New(cfg, service.Options{})
		if err == nil {
			go func() { r.servedB <- r.nodeB.Serve(lis) }()
		}
	})
	if err != nil {
		lis.Close()
		return "", fmt.Errorf("service.New for node B: %w", err)
	}
	return lis.Addr().String(), nil
}

func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
	)
}

// subscribe opens the subscribers' streams, each on its own connection, as
// separate UIs would, and returns once the server will relay the next
// entry published to all of them.
func (r *rig) subscribe(addr string) error {
	subCtx, cancelSub := context.WithCancel(r.ctx)
	r.cancelSub = cancelSub
	req := &pxperfv1.SubscribeRequest{}
	var next uint64
	if r.kind.isPxperf() {
		// Start at the next id explicitly rather than "from now", so no
		// entry published after this can be missed however late the
		// server opens the stream.
		st, err := r.pub.GetStats(r.ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			return fmt.Errorf("GetStats: %w", err)
		}
		next = st.GetStats().GetStore().GetNewestId() + 1
		req = &pxperfv1.SubscribeRequest{
			Start:               &pxperfv1.SubscribeRequest_StartId{StartId: next},
			MaxUpdatesPerSecond: 1000,
			MaxBatchSize:        10000,
		}
		if r.sc.config != nil {
			req.MaxUpdatesPerSecond, req.MaxBatchSize = 0, 0
		}
	}
	for range r.sc.subscribers {
		conn, err := dial(addr)
		if err != nil {
			return err
		}
		stream, err := openSubscribe(subCtx, conn, req)
		if err != nil {
			conn.Close()
			return err
		}
		s := &subscriber{conn: conn, stream: stream, msg: subscribeScan{checkIDs: r.kind.isPxperf(), nextID: next}, done: make(chan struct{})}
		r.subs = append(r.subs, s)
		go r.recvLoop(s)
	}
	if r.kind == bare {
		return r.bare.waitSubscribers(r.ctx, r.sc.subscribers)
	}
	return nil
}

// subscribeDesc and publishDesc describe the two streaming RPCs, opened
// with wireCodec rather than through the generated client.
var (
	subscribeDesc = &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true}
	publishDesc   = &grpc.StreamDesc{StreamName: "PublishStream", ClientStreams: true}
)

func openSubscribe(ctx context.Context, conn *grpc.ClientConn, req *pxperfv1.SubscribeRequest) (grpc.ClientStream, error) {
	stream, err := conn.NewStream(ctx, subscribeDesc, pxperfv1.PerformanceService_Subscribe_FullMethodName, wireCodecOption)
	if err == nil {
		err = stream.SendMsg(req)
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err != nil {
		return nil, fmt.Errorf("Subscribe: %w", err)
	}
	return stream, nil
}

// recvLoop receives on s's stream until it ends, counting what arrives. A
// gap or an id out of sequence ends it with an error: either is a loss.
func (r *rig) recvLoop(s *subscriber) {
	defer func() {
		close(s.done)
		r.breakOnce.Do(func() { close(r.broken) })
	}()
	m := &s.msg
	for {
		if err := s.stream.RecvMsg(m); err != nil {
			s.err = err
			return
		}
		switch {
		case m.badID != nil:
			s.err = m.badID
			return
		case m.gap:
			s.gaps.Add(1)
			s.err = fmt.Errorf("gap: ids %d..%d missed", m.gapFirst, m.gapLast)
			return
		case m.progress:
			s.progress.Add(1)
		case m.batch:
			s.messages.Add(1)
			s.updates.Add(uint64(m.updates))
			s.entries.Add(uint64(m.entries))
			if a := r.arrivals.Load(); a != nil {
				a.record(time.Now(), m.entries)
			}
			if r.delivered.Add(uint64(m.entries)) >= r.goal.Load() {
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// iterate publishes n entries on one PublishStream and returns once the
// server has acknowledged them all and every subscriber has received them.
func (r *rig) iterate(n int) error {
	ctx, cancel := context.WithTimeout(r.ctx, iterationTimeout)
	defer cancel()
	r.goal.Add(uint64(n * len(r.subs)))
	if err := r.publish(ctx, n); err != nil {
		return err
	}
	return r.waitDelivered(ctx)
}

// publish sends n entries, cycling through the request pool, and checks
// the summary.
func (r *rig) publish(ctx context.Context, n int) error {
	stream, err := r.pubConn.NewStream(ctx, publishDesc, pxperfv1.PerformanceService_PublishStream_FullMethodName, wireCodecOption)
	if err != nil {
		return fmt.Errorf("PublishStream: %w", err)
	}
	for sent := 0; sent < n; sent += r.sc.batch {
		req := r.reqs[r.reqAt]
		r.reqAt = (r.reqAt + 1) % len(r.reqs)
		if err := stream.SendMsg(req); err != nil {
			if errors.Is(err, io.EOF) { // the server ended the stream: get why
				err = stream.RecvMsg(&pxperfv1.PublishStreamResponse{})
			}
			return fmt.Errorf("PublishStream after %d of %d entries: %w", sent, n, err)
		}
	}
	sum := &pxperfv1.PublishStreamResponse{}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("PublishStream: %w", err)
	}
	if err := stream.RecvMsg(sum); err != nil {
		return fmt.Errorf("PublishStream: %w", err)
	}
	if sum.GetAccepted() != uint64(n) || sum.GetRejected() != 0 {
		return fmt.Errorf("PublishStream accepted %d and rejected %d of %d entries; first rejections: %v",
			sum.GetAccepted(), sum.GetRejected(), n, sum.GetRejections())
	}
	r.published += uint64(n)
	return nil
}

// waitDelivered returns once the subscribers together have received goal
// entries, or fails when a subscriber's stream ends or ctx does.
func (r *rig) waitDelivered(ctx context.Context) error {
	goal := r.goal.Load()
	for r.delivered.Load() < goal {
		select {
		case <-r.wake:
		case <-r.broken:
			return r.subscriberErr()
		case <-ctx.Done():
			return fmt.Errorf("waiting for delivery: %d of %d entries delivered to %d subscribers: %w",
				r.delivered.Load(), goal, len(r.subs), ctx.Err())
		}
	}
	return nil
}

// subscriberErr reports the first subscriber whose stream has ended.
func (r *rig) subscriberErr() error {
	for i, s := range r.subs {
		select {
		case <-s.done:
			return fmt.Errorf("subscriber %d of %d ended after %d entries: %w", i, len(r.subs), s.entries.Load(), s.err)
		default:
		}
	}
	return errors.New("a subscriber ended")
}

// check verifies that nothing was lost: every subscriber received every
// entry published, with no gap, and the server counted every entry. It
// returns the server's counts, for the log.
func (r *rig) check() (string, error) {
	var errs []error
	for i, s := range r.subs {
		if got := s.entries.Load(); got != r.published {
			errs = append(errs, fmt.Errorf("subscriber %d received %d entries, want %d", i, got, r.published))
		}
		if g := s.gaps.Load(); g != 0 {
			errs = append(errs, fmt.Errorf("subscriber %d received %d gap messages", i, g))
		}
		if u := s.updates.Load(); u != 0 {
			errs = append(errs, fmt.Errorf("subscriber %d received %d updates; none was published", i, u))
		}
	}
	var counts string
	switch r.kind {
	case bare:
		if got := r.bare.accepted.Load(); got != r.published {
			errs = append(errs, fmt.Errorf("bare server counted %d entries, want %d", got, r.published))
		}
		counts = fmt.Sprintf("bare server counted %d entries", r.bare.accepted.Load())
	case pxperf, clusterR1, clusterR3:
		resp, err := r.pub.GetStats(r.ctx, &pxperfv1.GetStatsRequest{})
		if err != nil {
			return "", errors.Join(append(errs, fmt.Errorf("GetStats: %w", err))...)
		}
		st := resp.GetStats().GetStore()
		if st.GetAccepted() != r.published || st.GetRejected() != 0 {
			errs = append(errs, fmt.Errorf("pxperf accepted %d and rejected %d entries, want %d and 0", st.GetAccepted(), st.GetRejected(), r.published))
		}
		counts = fmt.Sprintf("pxperf store: accepted %d, held %d, evicted by count/bytes/pressure %d/%d/%d; process RSS %d MiB, heap live %d MiB",
			st.GetAccepted(), st.GetEntries(), st.GetEvictedByCount(), st.GetEvictedByBytes(), st.GetEvictedByPressure(),
			resp.GetStats().GetProcess().GetRssBytes()>>20, resp.GetStats().GetProcess().GetHeapLiveBytes()>>20)
	}
	return counts, errors.Join(errs...)
}

// archived returns what the pxperf server's archive has written, and the
// bytes of its rotated files still waiting for compression.
func (r *rig) archived() (archiveBytes, error) {
	resp, err := r.pub.GetStats(r.ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		return archiveBytes{}, fmt.Errorf("GetStats: %w", err)
	}
	a := resp.GetStats().GetArchive()
	return archiveBytes{written: a.GetBytesWritten(), backlog: a.GetBytesAwaitingCompression()}, nil
}

// messages returns the batch messages all subscribers received.
func (r *rig) messages() uint64 {
	var n uint64
	for _, s := range r.subs {
		n += s.messages.Load()
	}
	return n
}

// close ends the subscribers' streams, closes every connection, and stops
// the server, waiting for each goroutine the rig started. It then drops
// the rig's references to the server and clients: the testing package
// keeps a finished benchmark's cleanup closure, and with it the rig,
// reachable while the next run of -count runs, and a stopped pxperf server
// still holding its store would add its entries to that run's heap.
func (r *rig) close() error {
	var errs []error
	r.closeOnce.Do(func() {
		defer func() {
			r.cancel()
			r.bare, r.gs, r.pxperf, r.pubConn, r.pub, r.subs = nil, nil, nil, nil, nil, nil
			r.nodeB, r.nats = nil, nil
		}()
		if r.cancelSub != nil {
			r.cancelSub()
		}
		for _, s := range r.subs {
			<-s.done
			if err := s.conn.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if r.pubConn != nil {
			if err := r.pubConn.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if r.nodeB != nil {
			r.nodeB.Shutdown()
			if err := <-r.servedB; err != nil {
				errs = append(errs, fmt.Errorf("node B's Serve: %w", err))
			}
		}
		// The NATS servers after the pxperf servers, which may still
		// publish or read; the test's cleanup would stop them only when
		// the benchmark ends, and each round starts its own.
		defer func() {
			if r.nats != nil {
				for i := range r.nats.Servers {
					r.nats.Stop(i)
				}
			}
		}()
		switch {
		case r.gs != nil:
			r.gs.Stop()
		case r.pxperf != nil:
			r.pxperf.Shutdown()
		default:
			return // the server never started
		}
		select {
		case err := <-r.served:
			if err != nil {
				errs = append(errs, fmt.Errorf("Serve: %w", err))
			}
		case <-r.ctx.Done():
			errs = append(errs, fmt.Errorf("Serve did not return after the server stopped: %w", r.ctx.Err()))
		}
	})
	return errors.Join(errs...)
}

// poolEntries is how many distinct entries the publishers cycle through.
const poolEntries = 10_000

// publishRequests returns PublishStream messages of batch entries each,
// made of the entry pool and encoded once: publishing sends the same bytes
// again and again.
func publishRequests(batch int) []encoded {
	pool := entryPool()
	reqs := make([]encoded, 0, len(pool)/batch)
	for i := 0; i+batch <= len(pool); i += batch {
		b, err := proto.Marshal(&pxperfv1.PublishStreamRequest{Entries: pool[i : i+batch]})
		if err != nil {
			panic(err) // the pool is made of valid messages
		}
		reqs = append(reqs, b)
	}
	return reqs
}

// entryPool returns the entries every publisher sends, built once.
var entryPool = sync.OnceValue(func() []*pxperfv1.Entry {
	pool := make([]*pxperfv1.Entry, poolEntries)
	for i := range pool {
		pool[i] = testentry.Proxied(i)
	}
	return pool
})
