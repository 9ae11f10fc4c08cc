// Package service is pxperf's gRPC edge: the PerformanceService handlers,
// request validation, the mapping of domain errors to status codes, and the
// assembly of a gRPC server with health, reflection and interceptors.
//
// It is the server's one gRPC edge (with the interceptors of auth/): the
// components it serves live in perf/, assembled, fed and run by engine/,
// and know nothing of gRPC. Handlers read from the engine, encode and
// send. The recording proxy (proxy/) publishes through it like any
// producer.
package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/engine"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
	"github.com/pxperf/pxperf/perf/resources"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/wire"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Service implements pxperfv1.PerformanceServiceServer over the engine. It
// is safe for concurrent use. Call [Service.Shutdown] to end its streams.
type Service struct {
	pxperfv1.UnimplementedPerformanceServiceServer

	log       *slog.Logger
	validator protovalidate.Validator // requests, and the engine's checks
	engine    *engine.Engine

	subscribers sync.WaitGroup // Subscribe handlers
	receivers   sync.WaitGroup // PublishStream's receiving goroutines
	shutdown    chan struct{}  // closed by Shutdown: streams end
	closeOnce   sync.Once
}

// NewService returns a service for cfg, which must be valid (see
// [config.Validate]). log may be nil to discard logs.
func NewService(cfg *pxperfv1.Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("create validator: %w", err)
	}
	e, err := engine.New(cfg, engine.Options{
		Log:        log,
		Validator:  v,
		BatchBytes: batchBytes(cfg.GetServer().GetMaxSendMessageBytes()),
	})
	if err != nil {
		return nil, err
	}
	return &Service{log: log, validator: v, engine: e, shutdown: make(chan struct{})}, nil
}

// Shutdown ends every open stream with UNAVAILABLE, stops the engine's
// background workers, and waits for both, or for ctx to end.
func (s *Service) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.shutdown)
		s.engine.Stop()
	})
	done := make(chan struct{})
	go func() {
		s.subscribers.Wait()
		s.receivers.Wait()
		s.engine.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish implements pxperfv1.PerformanceServiceServer.
func (s *Service) Publish(ctx context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
	if err := s.engine.AllowPublish(producerOf(ctx), len(req.GetEntries())); err != nil {
		return nil, toStatus(err)
	}
	results := make([]*pxperfv1.PublishResult, len(req.GetEntries()))
	mark, err := s.engine.Ingest(ctx, req.GetBatchId(), req.GetEntries(), undecoded(req), func(i int, id uint64, rej *pxperfv1.Rejection) {
		results[i] = &pxperfv1.PublishResult{Id: id, Rejection: rej}
	})
	if err != nil {
		return nil, toStatus(err)
	}
	// Cluster mode: what a producer published here, it reads here.
	if err := s.engine.WaitApplied(ctx, mark); err != nil {
		s.log.Warn("published entries not yet applied on this node", "err", err)
	}
	return &pxperfv1.PublishResponse{Results: results}, nil
}

// undecoded returns the rejections of the entries of req, a publish
// request, that the codec could not decode (see wire.Failures), by index;
// nil when there are none.
func undecoded(req proto.Message) map[int]*pxperfv1.Rejection {
	fails := wire.Failures(req)
	if len(fails) == 0 {
		return nil
	}
	refused := make(map[int]*pxperfv1.Rejection, len(fails))
	for _, f := range fails {
		fvs := []*pxperfv1.FieldViolation{{Field: f.Field, Description: f.Reason}}
		refused[f.Index] = &pxperfv1.Rejection{Message: engine.Describe(fvs), FieldViolations: fvs}
	}
	return refused
}

// maxStreamRejections bounds the rejections a PublishStream summary lists.
const maxStreamRejections = 100

// What a PublishStream's receiver may decode ahead of ingest: a few
// messages, so that decoding the next overlaps ingesting this one instead
// of the two goroutines taking turns (relay 0.53 → 0.61 × bare with 4
// messages, 0.72 with 16, in the suite), and a bound on their bytes, since
// they are memory outside the store's budget. A message over the bound
// waits until the others are ingested and goes alone.
const (
	publishAheadMessages = 16
	publishAheadBytes    = 2 << 20
)

// publishInFlight bounds the messages of a PublishStream on their way to
// the cluster's stream at once, in cluster mode: while one waits for the
// stream, the next are sent, and the node sends those that wait together
// as one message of the stream. In embedded mode each is stored before the
// next is received.
const publishInFlight = 16

// aheadBytes is what req weighs against publishAheadBytes: the data of
// its bodies, response and request, and a kilobyte an entry, at most the
// whole bound.
func aheadBytes(req *pxperfv1.PublishStreamRequest) int64 {
	n := int64(0)
	for _, e := range req.GetEntries() {
		n += 1<<10 + int64(len(e.GetResponseBody().GetData())+len(e.GetRequestBody().GetData()))
	}
	return min(n, publishAheadBytes)
}

// PublishStream implements pxperfv1.PerformanceServiceServer. The stream
// is a tracked resource: it counts against cleanup.max_resources, and
// CloseResource, the idle timeout and shutdown end it early; the entries it
// sent before that are kept, and the status says how many.
func (s *Service) PublishStream(stream grpc.ClientStreamingServer[pxperfv1.PublishStreamRequest, pxperfv1.PublishStreamResponse]) error {
	ctx, h, release, err := s.trackStream(stream.Context(), resources.Publisher)
	if err != nil {
		return err
	}
	defer release()
	sum := &pxperfv1.PublishStreamResponse{}
	var mark engine.Mark // how far this node must follow the cluster's stream to hold what was published
	producer := producerOf(ctx)
	// Recv blocks until the client sends; a goroutine of its own lets the
	// handler end the stream while it waits, and decodes the next messages
	// while the handler ingests this one (see publishAheadMessages). It
	// exits when the stream ends, which returning from the handler makes
	// happen.
	type received struct {
		req   *pxperfv1.PublishStreamRequest
		err   error
		ahead int64 // its weight in ahead, released once it is ingested
	}
	msgs := make(chan received, publishAheadMessages)
	ahead := semaphore.NewWeighted(publishAheadBytes)
	s.receivers.Go(func() {
		for {
			req, err := stream.Recv()
			n := aheadBytes(req)
			if ahead.Acquire(ctx, n) != nil {
				return
			}
			select {
			case msgs <- received{req, err, n}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	// ended is the status of a stream the server ends early.
	ended := func(st *status.Status) error {
		return status.Errorf(st.Code(), "%s; the %d entries accepted before stay accepted (last id %d)", st.Message(), sum.Accepted, sum.LastId)
	}
	// Each message's ingest starts as soon as it is received; in cluster
	// mode a few are on their way to the cluster's stream at once (see
	// publishInFlight), and each finishes, in order, before its summary
	// counts it.
	var index uint64
	var inflight []*started
	var last *engine.Ingesting // the latest started: the next goes after it
	window := 1
	if s.engine.Clustered() {
		window = publishInFlight
	}
	finish := func(st *started) error {
		batchMark, err := st.ingest.Finish(ctx, func(i int, id uint64, rej *pxperfv1.Rejection) {
			if rej != nil {
				sum.Rejected++
				if len(sum.Rejections) < maxStreamRejections {
					sum.Rejections = append(sum.Rejections, &pxperfv1.IndexedRejection{Index: st.index + uint64(i), Rejection: rej})
				}
				return
			}
			sum.Accepted++
			if sum.FirstId == 0 {
				sum.FirstId = id
			}
			sum.LastId = id
		})
		if err != nil {
			// The entries of the earlier messages were accepted; as when
			// the connection drops, the producer is not told which.
			return toStatus(err)
		}
		mark = engine.Mark{Entries: max(mark.Entries, batchMark.Entries), Completions: max(mark.Completions, batchMark.Completions)}
		ahead.Release(st.ahead) // in the store now, and counted there
		return nil
	}
	// finishTo finishes the oldest ingests under way, in order, until at
	// most n are.
	finishTo := func(n int) error {
		for len(inflight) > n {
			st := inflight[0]
			inflight = inflight[1:]
			if err := finish(st); err != nil {
				return err
			}
		}
		return nil
	}
	defer func() {
		// Ended early: what has not left for the cluster's stream stays.
		gone, cancel := context.WithCancel(ctx)
		cancel()
		for _, st := range inflight {
			_, _ = st.ingest.Finish(gone, func(int, uint64, *pxperfv1.Rejection) {})
		}
	}()
	for {
		var m received
		select {
		case m = <-msgs:
		default:
			// Nothing more yet: finish what is under way rather than
			// hold its outcome until the producer sends again.
			if err := finishTo(0); err != nil {
				return err
			}
			select {
			case m = <-msgs:
			case <-ctx.Done():
				return ended(status.Convert(endedStatus(ctx, "")))
			case <-s.shutdown:
				return ended(status.New(codes.Unavailable, "server is shutting down"))
			}
		}
		if errors.Is(m.err, io.EOF) {
			if err := finishTo(0); err != nil {
				return err
			}
			// Cluster mode: what a producer published here, it reads here.
			if err := s.engine.WaitApplied(ctx, mark); err != nil {
				s.log.Warn("published entries not yet applied on this node", "err", err)
			}
			return stream.SendAndClose(sum)
		}
		if m.err != nil {
			return m.err
		}
		req := m.req
		if err := s.engine.WaitPublish(ctx, producer, len(req.GetEntries())); err != nil {
			if ctx.Err() != nil {
				return ended(status.Convert(endedStatus(ctx, "")))
			}
			return toStatus(err)
		}
		h.Touch(0, uint64(len(req.GetEntries())))
		// A batch may complete a PENDING entry of one under way, whose id
		// is known once it finishes.
		if slices.ContainsFunc(inflight, func(st *started) bool { return st.ingest.Pending() }) {
			if err := finishTo(0); err != nil {
				return err
			}
		}
		in, err := s.engine.StartIngest(ctx, last, req.GetBatchId(), req.GetEntries(), undecoded(req))
		if err != nil {
			// The earlier messages are settled first: accepted, or not.
			if ferr := finishTo(0); ferr != nil {
				return ferr
			}
			return toStatus(err)
		}
		last = in
		inflight = append(inflight, &started{ingest: in, index: index, ahead: m.ahead})
		index += uint64(len(req.GetEntries()))
		if err := finishTo(window - 1); err != nil {
			return err
		}
	}
}

// started is a PublishStream message whose ingest is under way.
type started struct {
	ingest *engine.Ingesting
	index  uint64 // of its first entry in the stream
	ahead  int64  // its weight against publishAheadBytes, released once it finishes
}

// compileFilter compiles a request's filter into a matcher for the store,
// split so that the store tests host and status on its column, or returns
// INVALID_ARGUMENT naming the field under "filter".
func compileFilter(f *pxperfv1.Filter) (store.Matcher, error) {
	c, err := filter.Compile(f)
	if err != nil {
		var fe *filter.FieldError
		switch {
		case errors.As(err, &fe) && fe.Syntax != nil:
			return store.Matcher{}, filterSyntax(fe.Syntax)
		case errors.As(err, &fe):
			return store.Matcher{}, invalidField("filter."+fe.Field, fe.Reason)
		}
		return store.Matcher{}, toStatus(err)
	}
	p := c.Parts() // all nil for an empty filter
	return store.Matcher{Host: p.Host, Status: p.Status, Match: p.Rest, Bodies: p.RestBodies}, nil
}

// defaultPageSize is the ListEntries page size when the request gives none.
const defaultPageSize = 50

// ListEntries implements pxperfv1.PerformanceServiceServer.
func (s *Service) ListEntries(_ context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
	m, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	q := store.Query{
		Match:       m,
		Key:         filterKey(req.GetFilter()),
		OldestFirst: req.GetOrder() == pxperfv1.Order_ORDER_OLDEST_FIRST,
		Offset:      int(min(req.GetOffset(), 1<<40)),
		Limit:       int(req.GetPageSize()),
	}
	if q.Limit == 0 {
		q.Limit = defaultPageSize
	}
	if t := req.GetPageToken(); t != "" {
		if q.After, err = decodePageToken(t); err != nil {
			return nil, invalidField("page_token", err.Error())
		}
	}
	p := s.engine.Store().List(q)
	resp := &pxperfv1.ListEntriesResponse{
		Entries:   p.Entries,
		TotalSize: int64(p.Total),
		OldestId:  p.OldestID,
		NewestId:  p.NewestID,
	}
	if p.More && len(p.Entries) > 0 {
		resp.NextPageToken = encodePageToken(p.Entries[len(p.Entries)-1].GetId())
	}
	if req.GetIncludeBodies() {
		s.addBodies(resp.Entries)
	}
	return resp, nil
}

// filterKey identifies a filter for the store's view cache and the hub's
// watches: its deterministic encoding, so equal filters share a view and a
// watch.
func filterKey(f *pxperfv1.Filter) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	if err != nil {
		return "" // no caching; the full pass gives the same answer
	}
	return string(b)
}

// addBodies replaces each entry in es, as the store handed it out, by a
// copy carrying the data of its bodies, where it has any and the store
// still holds it unchanged (see store.Store.WithBody).
func (s *Service) addBodies(es []*pxperfv1.Entry) {
	for i, e := range es {
		es[i] = s.engine.Store().WithBody(e)
	}
}

// Page tokens are opaque to clients: "v1:" and the last id of the page,
// base64url-encoded.
const pageTokenPrefix = "v1:"

func encodePageToken(lastID uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatUint(lastID, 10)))
}

func decodePageToken(t string) (uint64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(t)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(raw), pageTokenPrefix); ok {
			if id, err := strconv.ParseUint(rest, 10, 64); err == nil && id > 0 {
				return id, nil
			}
		}
	}
	return 0, errors.New("not a page token from this server; pass next_page_token from the previous response unchanged")
}

// GetEntry implements pxperfv1.PerformanceServiceServer.
func (s *Service) GetEntry(ctx context.Context, req *pxperfv1.GetEntryRequest) (*pxperfv1.GetEntryResponse, error) {
	e, err := s.engine.Entry(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pxperfv1.GetEntryResponse{Entry: e}, nil
}

// GetConfig implements pxperfv1.PerformanceServiceServer.
func (s *Service) GetConfig(context.Context, *pxperfv1.GetConfigRequest) (*pxperfv1.GetConfigResponse, error) {
	return &pxperfv1.GetConfigResponse{Config: proto.CloneOf(s.engine.Config())}, nil
}

// GetStats implements pxperfv1.PerformanceServiceServer. It reports the
// parts that exist; the others are left unset, as the contract says.
func (s *Service) GetStats(context.Context, *pxperfv1.GetStatsRequest) (*pxperfv1.GetStatsResponse, error) {
	return &pxperfv1.GetStatsResponse{Stats: s.engine.Stats()}, nil
}
