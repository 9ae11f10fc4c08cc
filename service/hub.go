package service

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/throttle"
	"google.golang.org/protobuf/types/known/durationpb"
)

// sampleInterval is how often the hub samples the signals the throttle
// modes react to: CPU and memory load and the ingest rate.
const sampleInterval = time.Second

// Load marks for adaptive mode, as a share of all cores.
const (
	cpuHigh = 0.8
	cpuLow  = 0.5
)

// hub is the shared state of all subscribers: counters since start, the
// signals the throttle reacts to, and the open subscriptions.
type hub struct {
	messages, entries, throttled, priority, gaps, stuck atomic.Uint64
	blocked                                             atomic.Int64 // nanoseconds

	burst throttle.BurstDetector
	load  atomic.Pointer[signals] // the last sample; nil before the first
	// slowUntil, Unix nanoseconds, is when the monitor's SlowThrottles
	// ends: until then adaptive subscribers see high load.
	slowUntil atomic.Int64

	mu   sync.Mutex
	subs map[uint64]*subscription
}

// signals is one sample of what the throttle modes react to.
type signals struct {
	load       throttle.Load
	cpuLoad    float64 // share of all cores
	ingestRate float64 // entries per second
}

// loadNow returns the last sampled load (neither high nor low before the
// first sample).
func (h *hub) loadNow() throttle.Load {
	if s := h.load.Load(); s != nil {
		return s.load
	}
	return throttle.Load{}
}

func (s *Service) addSubscription(sub *subscription) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if s.hub.subs == nil {
		s.hub.subs = make(map[uint64]*subscription)
	}
	s.hub.subs[sub.id] = sub
}

func (s *Service) removeSubscription(sub *subscription) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.subs, sub.id)
}

// sampleLoop samples CPU and memory load and the ingest rate every
// sampleInterval, for adaptive and burst modes and for stats, until ctx
// ends.
func (s *Service) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	prev, err := s.proc.read()
	if err != nil {
		s.log.Warn("cannot sample the process; adaptive mode sees no load", "err", err)
	}
	prevIngest := s.ingested()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, err := s.proc.read()
		if err != nil {
			s.log.Warn("cannot sample the process; adaptive mode sees no load", "err", err)
			continue
		}
		dt := r.Time.Sub(prev.Time).Seconds()
		if dt <= 0 {
			continue
		}
		ingest := s.ingested()
		cfg := s.config()
		budget := float64(uint64(cfg.GetMemory().GetMaxMemoryMb()) << 20)
		sig := &signals{
			cpuLoad:    (r.CPUTime - prev.CPUTime).Seconds() / dt / float64(runtime.NumCPU()),
			ingestRate: float64(ingest-prevIngest) / dt,
		}
		mem := float64(r.RSS) / budget
		slowed := r.Time.UnixNano() < s.hub.slowUntil.Load()
		sig.load = throttle.Load{
			High: slowed || sig.cpuLoad >= cpuHigh || mem >= cfg.GetMemory().GetHighWater(),
			Low:  !slowed && sig.cpuLoad < cpuLow && mem < cfg.GetMemory().GetLowWater(),
		}
		tc := cfg.GetThrottle()
		s.hub.burst.ObserveAt(r.Time, sig.ingestRate, float64(tc.GetBurstThreshold()), tc.GetBurstCooldown().AsDuration())
		s.hub.load.Store(sig)
		s.hub.mu.Lock()
		for _, sub := range s.hub.subs {
			m := sub.stats.messages.Load()
			sub.stats.rate.Store(math.Float64bits(float64(m-sub.stats.lastMessages) / dt))
			sub.stats.lastMessages = m
		}
		s.hub.mu.Unlock()
		s.limits.sweepAt(r.Time)
		prev, prevIngest = r, ingest
	}
}

// ingested counts entries stored since start, new and completed.
func (s *Service) ingested() uint64 {
	st := s.store.Stats()
	return st.Accepted + st.Completed
}

// throttleStats reports the hub for GetStats.
func (s *Service) throttleStats(newest uint64) *pxperfv1.ThrottleStats {
	h := &s.hub
	ts := &pxperfv1.ThrottleStats{
		MessagesSent:       h.messages.Load(),
		EntriesSent:        h.entries.Load(),
		ThrottledIntervals: h.throttled.Load(),
		PriorityFlushes:    h.priority.Load(),
		Gaps:               h.gaps.Load(),
		BurstEvents:        h.burst.Events(),
		StuckSubscribers:   h.stuck.Load(),
		BurstActive:        h.burst.ActiveAt(time.Now()),
		SendBlocked:        durationpb.New(time.Duration(h.blocked.Load())),
	}
	if sig := h.load.Load(); sig != nil {
		ts.IngestRate, ts.CpuLoad = sig.ingestRate, sig.cpuLoad
	}
	h.mu.Lock()
	for _, sub := range h.subs {
		ss := sub.snapshot(newest)
		ts.PerSubscriber = append(ts.PerSubscriber, ss)
		ts.MaxLag = max(ts.MaxLag, ss.GetLag())
	}
	h.mu.Unlock()
	ts.Subscribers = uint64(len(ts.PerSubscriber))
	slices.SortFunc(ts.PerSubscriber, func(a, b *pxperfv1.SubscriberStats) int {
		return a.GetStartTime().AsTime().Compare(b.GetStartTime().AsTime())
	})
	return ts
}
