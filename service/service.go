// Package service is pxperf's gRPC edge: the PerformanceService handlers,
// request validation, the mapping of domain errors to status codes, and the
// assembly of a gRPC server with health, reflection and interceptors.
//
// It is the server's one gRPC edge (with the interceptors of auth/); the
// components it serves live in perf/ and know nothing of gRPC, and the
// recording proxy (proxy/) publishes through it like any producer.
package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/filter"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/monitor"
	"github.com/pxperf/pxperf/perf/procstat"
	"github.com/pxperf/pxperf/perf/resources"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/proxy"
	"golang.org/x/sync/semaphore"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service implements pxperfv1.PerformanceServiceServer over the store. It
// is safe for concurrent use. Call [Service.Shutdown] to end its streams.
type Service struct {
	pxperfv1.UnimplementedPerformanceServiceServer

	log       *slog.Logger
	validator protovalidate.Validator
	entries   entryChecker // the fast path of entry validation
	store     *store.Store
	archive   *archive.Archive // nil when logs.enabled is off
	ingestMu  sync.Mutex       // entries reach the archive in id order
	start     time.Time
	proc      *procReader

	stopWorkers context.CancelFunc // stops the background workers
	workers     sync.WaitGroup

	cfgMu        sync.Mutex // serialises UpdateConfig
	mu           sync.RWMutex
	cfg          *pxperfv1.Config // effective config; replaced, never modified
	cfgObservers []func(*pxperfv1.Config)

	subscribers sync.WaitGroup
	hub         *hub.Hub
	rejected    atomic.Uint64 // entries rejected at ingest
	limits      producerLimits
	resources   *resources.Registry
	archiveFile *resources.Handle // the archive's open file; nil when off
	monitor     *monitor.Monitor
	proxy       atomic.Pointer[proxy.Proxy] // the recording proxy; nil when off
	shutdown    chan struct{}               // closed by Shutdown: streams end
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
	if err := config.Validate(v, cfg); err != nil {
		return nil, err
	}
	mr, err := procstat.NewReader()
	if err != nil {
		return nil, err
	}
	var arch *archive.Archive
	sc := storeConfig(cfg.GetMemory())
	if cfg.GetLogs().GetEnabled() {
		if arch, err = archive.Open(archiveConfig(cfg.GetLogs())); err != nil {
			return nil, fmt.Errorf("open the archive in %s: %w", cfg.GetLogs().GetDirectory(), err)
		}
		// Ids continue after the last one archived, and after every one
		// handed out before a crash (the archive's id lease).
		sc.FirstID = arch.NextID()
	}
	st, err := store.New(sc)
	if err != nil {
		if arch != nil {
			arch.Close()
		}
		return nil, fmt.Errorf("create store: %w", err)
	}
	reg, err := newRegistry(cfg.GetCleanup())
	if err != nil {
		if arch != nil {
			arch.Close()
		}
		return nil, fmt.Errorf("create the resource registry: %w", err)
	}
	var ha hub.Archive // nil, not a nil *archive.Archive, when off
	if arch != nil {
		ha = arch
	}
	hb, err := hub.New(hub.Config{
		Store:      st,
		Archive:    ha,
		BatchBytes: batchBytes(cfg.GetServer().GetMaxSendMessageBytes()),
		Settings:   hubSettings(cfg.GetThrottle()),
	})
	if err != nil {
		if arch != nil {
			arch.Close()
		}
		return nil, fmt.Errorf("create the subscription hub: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		hub:         hb,
		log:         log,
		validator:   v,
		entries:     newEntryChecker(),
		store:       st,
		archive:     arch,
		start:       time.Now(),
		proc:        &procReader{r: mr},
		stopWorkers: cancel,
		cfg:         proto.CloneOf(cfg),
		resources:   reg,
		shutdown:    make(chan struct{}),
	}
	if s.monitor, err = newMonitor(s, cfg.GetMonitor()); err != nil {
		cancel()
		if arch != nil {
			arch.Close()
		}
		return nil, fmt.Errorf("create the performance monitor: %w", err)
	}
	s.trackArchive()
	s.limits.setLimit(cfg.GetCleanup().GetProducerRateLimit())
	s.startWorker(ctx, "performance monitor", func(ctx context.Context) {
		if err := s.monitor.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("performance monitor stopped", "err", err)
		}
	})
	s.startWorker(ctx, "memory pressure watcher", s.watchPressure)
	s.startWorker(ctx, "load sampler", s.sampleLoop)
	s.startWorker(ctx, "resource cleaner", s.cleanupLoop)
	return s, nil
}

// watchPressure evicts from the store when process memory (RSS) passes
// the high-water mark, until ctx ends.
func (s *Service) watchPressure(ctx context.Context) {
	rss := func() (uint64, error) {
		r, err := s.proc.read()
		return r.RSS, err
	}
	release := func() {
		// Return the evicted entries' memory now, so that the next reading
		// sees it gone and pressure does not evict again for nothing.
		debug.FreeOSMemory()
	}
	onError := func(err error) { s.log.Warn("cannot read process memory; pressure eviction skipped", "err", err) }
	remove := s.store.Observe(func(e store.Eviction) {
		if e.Reason == store.ReasonPressure {
			s.log.Info("evicted under memory pressure", "entries", e.Count, "bytes", e.Bytes, "oldest_id", e.OldestID)
		}
	})
	defer remove()
	s.store.WatchPressure(ctx, rss, release, onError)
}

// procReader is a [procstat.Reader] safe for concurrent use.
type procReader struct {
	mu sync.Mutex
	r  *procstat.Reader
}

func (m *procReader) read() (procstat.Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r.Read()
}

// readAll is read with open files and threads, for the monitor.
func (m *procReader) readAll() (procstat.Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r.ReadAll()
}

// MemoryLimit is the Go soft memory limit, in bytes, that suits cfg: the
// memory budget and 15 % more. The store keeps its entries within the
// budget; the limit makes the garbage collector work harder before the
// process outgrows it by much, while pressure eviction (from
// memory.high_water of the budget) acts first. Measured with BenchmarkFlood
// (README): 10 % more kept peak RSS at 1.19 × the budget but cut ingest
// from about 880 to 520 MiB/s; 15 % gave 1.23 × at full speed; 20 %,
// 1.24–1.29 ×.
func MemoryLimit(cfg *pxperfv1.Config) int64 {
	budget := int64(cfg.GetMemory().GetMaxMemoryMb()) << 20
	return budget + budget*15/100
}

func storeConfig(m *pxperfv1.MemoryConfig) store.Config {
	return store.Config{
		MaxEntries:     int(m.GetMaxEntries()),
		MaxMemoryBytes: int64(m.GetMaxMemoryMb()) << 20,
		MaxBodySize:    int(m.GetMaxBodySize()),
		RedactHeaders:  m.GetRedactHeaders(),
		HighWater:      m.GetHighWater(),
		LowWater:       m.GetLowWater(),
		CheckInterval:  m.GetCleanupInterval().AsDuration(),
	}
}

func (s *Service) config() *pxperfv1.Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// Shutdown ends every open stream with UNAVAILABLE, stops the background
// workers, and waits for both, or for ctx to end.
func (s *Service) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.shutdown)
		s.hub.Close()
		s.stopWorkers()
	})
	done := make(chan struct{})
	go func() {
		s.subscribers.Wait()
		s.hub.Wait()
		s.workers.Wait()
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
	if err := s.limits.allowAt(producerOf(ctx), len(req.GetEntries()), time.Now()); err != nil {
		return nil, toStatus(err)
	}
	results := make([]*pxperfv1.PublishResult, len(req.GetEntries()))
	s.ingest(req.GetEntries(), func(i int, id uint64, rej *pxperfv1.Rejection) {
		results[i] = &pxperfv1.PublishResult{Id: id, Rejection: rej}
	})
	return &pxperfv1.PublishResponse{Results: results}, nil
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

// aheadBytes is what req weighs against publishAheadBytes: its bodies and
// a kilobyte an entry, at most the whole bound.
func aheadBytes(req *pxperfv1.PublishStreamRequest) int64 {
	n := int64(0)
	for _, e := range req.GetEntries() {
		n += 1<<10 + int64(len(e.GetResponseBody().GetData()))
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
	s.workers.Go(func() {
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
	var index uint64
	for {
		var m received
		select {
		case m = <-msgs:
		case <-ctx.Done():
			return ended(status.Convert(endedStatus(ctx, "")))
		case <-s.shutdown:
			return ended(status.New(codes.Unavailable, "server is shutting down"))
		}
		if errors.Is(m.err, io.EOF) {
			return stream.SendAndClose(sum)
		}
		if m.err != nil {
			return m.err
		}
		req := m.req
		if err := s.limits.wait(ctx, producer, len(req.GetEntries())); err != nil {
			if ctx.Err() != nil {
				return ended(status.Convert(endedStatus(ctx, "")))
			}
			return toStatus(err)
		}
		h.Touch(0, uint64(len(req.GetEntries())))
		s.ingest(req.GetEntries(), func(i int, id uint64, rej *pxperfv1.Rejection) {
			if rej != nil {
				sum.Rejected++
				if len(sum.Rejections) < maxStreamRejections {
					sum.Rejections = append(sum.Rejections, &pxperfv1.IndexedRejection{Index: index + uint64(i), Rejection: rej})
				}
				return
			}
			sum.Accepted++
			if sum.FirstId == 0 {
				sum.FirstId = id
			}
			sum.LastId = id
		})
		index += uint64(len(req.GetEntries()))
		ahead.Release(m.ahead) // in the store now, and counted there
	}
}

// ingest checks each entry, appends the valid ones to the store in one
// batch, and reports each entry's fate to result, in order of index.
func (s *Service) ingest(entries []*pxperfv1.Entry, result func(i int, id uint64, rej *pxperfv1.Rejection)) {
	valid := make([]*pxperfv1.Entry, 0, len(entries))
	rejections := make([]*pxperfv1.Rejection, len(entries))
	for i, e := range entries {
		if rej := s.check(e); rej != nil {
			rejections[i] = rej
			s.rejected.Add(1)
			continue
		}
		valid = append(valid, e)
	}
	s.ingestMu.Lock()
	s.reserveIDs(len(valid))
	stored := s.store.Append(valid)
	s.archiveStored(stored)
	s.ingestMu.Unlock()
	for i, rej := range rejections {
		if rej != nil {
			result(i, 0, rej)
			continue
		}
		result(i, stored[0].ID, nil)
		stored = stored[1:]
	}
}

// check returns why e cannot be accepted, or nil.
func (s *Service) check(e *pxperfv1.Entry) *pxperfv1.Rejection {
	var fvs []*errdetails.BadRequest_FieldViolation
	var err error
	if !s.entries.ok(e) {
		// Only protovalidate names the fields; it agrees on the verdict.
		fvs, err = violations(s.validator, e, "")
	}
	if err != nil {
		return &pxperfv1.Rejection{Message: "cannot validate entry: " + err.Error()}
	}
	if len(fvs) == 0 {
		var ee *store.EntryError
		if err := store.Check(e); errors.As(err, &ee) {
			return &pxperfv1.Rejection{
				Message:         err.Error(),
				FieldViolations: []*pxperfv1.FieldViolation{{Field: ee.Field, Description: ee.Reason}},
			}
		}
		return nil
	}
	rej := &pxperfv1.Rejection{}
	for _, fv := range fvs {
		rej.FieldViolations = append(rej.FieldViolations, &pxperfv1.FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
	}
	rej.Message = describe(fvs)
	return rej
}

// compileFilter compiles a request's filter into a matcher for the store,
// split so that the store tests host and status on its column, or returns
// INVALID_ARGUMENT naming the field under "filter".
func compileFilter(f *pxperfv1.Filter) (store.Matcher, error) {
	c, err := filter.Compile(f)
	if err != nil {
		var fe *filter.FieldError
		if errors.As(err, &fe) {
			return store.Matcher{}, invalidField("filter."+fe.Field, fe.Reason)
		}
		return store.Matcher{}, toStatus(err)
	}
	p := c.Parts() // all nil for an empty filter
	return store.Matcher{Host: p.Host, Status: p.Status, Match: p.Rest}, nil
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
	p := s.store.List(q)
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
// copy carrying its body, where the store still holds it unchanged (see
// store.Store.WithBody).
func (s *Service) addBodies(es []*pxperfv1.Entry) {
	for i, e := range es {
		if e.GetResponseBody() != nil {
			es[i] = s.store.WithBody(e)
		}
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
	e, err := s.store.EntryWithBody(req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		e, err = s.archiveEntry(ctx, req.GetId(), err)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pxperfv1.GetEntryResponse{Entry: e}, nil
}

// GetConfig implements pxperfv1.PerformanceServiceServer.
func (s *Service) GetConfig(context.Context, *pxperfv1.GetConfigRequest) (*pxperfv1.GetConfigResponse, error) {
	return &pxperfv1.GetConfigResponse{Config: proto.CloneOf(s.config())}, nil
}

// GetStats implements pxperfv1.PerformanceServiceServer. It reports the
// parts that exist; the others are left unset, as the contract says.
func (s *Service) GetStats(context.Context, *pxperfv1.GetStatsRequest) (*pxperfv1.GetStatsResponse, error) {
	return &pxperfv1.GetStatsResponse{Stats: s.stats()}, nil
}

// stats samples every part of the server.
func (s *Service) stats() *pxperfv1.Stats {
	now := time.Now()
	st := s.store.Stats()
	stats := &pxperfv1.Stats{
		SampleTime: timestamppb.New(now),
		Uptime:     durationpb.New(now.Sub(s.start)),
		Store: &pxperfv1.StoreStats{
			Entries:           uint64(st.Entries),
			Bytes:             uint64(st.Bytes),
			BudgetBytes:       uint64(st.BudgetBytes),
			MaxEntries:        uint64(st.MaxEntries),
			OldestId:          st.OldestID,
			NewestId:          st.NewestID,
			Accepted:          st.Accepted,
			Completed:         st.Completed,
			Rejected:          s.rejected.Load(),
			EvictedByCount:    st.EvictedByCount,
			EvictedByBytes:    st.EvictedByBytes,
			EvictedByPressure: st.EvictedByPressure,
			TruncatedBodies:   st.TruncatedBodies,
			UnderPressure:     st.UnderPressure,
		},
		Throttle:  s.throttleStats(st.NewestID),
		Archive:   s.archiveStats(),
		Resources: s.resourceStats(),
		Proxy:     s.proxyStats(),
	}
	if r, err := s.proc.read(); err == nil {
		stats.Process = &pxperfv1.ProcessStats{
			RssBytes:         r.RSS,
			HeapLiveBytes:    r.HeapLive,
			HeapGoalBytes:    r.HeapGoal,
			MemoryLimitBytes: r.MemoryLimit,
			Goroutines:       uint64(runtime.NumGoroutine()),
		}
	} else {
		s.log.Warn("cannot read process memory for stats", "err", err)
	}
	s.addMonitorStats(stats)
	return stats
}
