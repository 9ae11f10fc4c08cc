package engine

import (
	"context"
	"runtime"
	"strconv"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/monitor"
	"github.com/pxperf/pxperf/perf/throttle"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// sampleInterval is how often the hub is told the signals the throttle
// modes react to: CPU and memory load and the ingest rate.
const sampleInterval = time.Second

// hubSettings is the hub's view of the throttle config.
func hubSettings(tc *pxperfv1.ThrottleConfig) hub.Settings {
	mode := map[pxperfv1.ThrottleMode]throttle.Mode{
		pxperfv1.ThrottleMode_THROTTLE_MODE_FIXED:    throttle.Fixed,
		pxperfv1.ThrottleMode_THROTTLE_MODE_ADAPTIVE: throttle.Adaptive,
		pxperfv1.ThrottleMode_THROTTLE_MODE_BURST:    throttle.Burst,
	}[tc.GetMode()]
	floor := max(tc.GetMinUpdateInterval().AsDuration(), throttle.Every(int(tc.GetMaxUpdatesPerSecond())))
	return hub.Settings{
		Throttle: throttle.Config{
			Mode:           mode,
			MinInterval:    floor,
			MaxInterval:    max(throttle.Every(int(tc.GetAdaptiveMinUpdatesPerSecond())), floor),
			Growth:         tc.GetAdaptiveGrowth(),
			Shrink:         tc.GetAdaptiveShrink(),
			BurstThreshold: float64(tc.GetBurstThreshold()),
			BurstCooldown:  tc.GetBurstCooldown().AsDuration(),
		},
		MaxUpdatesPerSecond: int(tc.GetMaxUpdatesPerSecond()),
		BatchSize:           int(tc.GetBatchSize()),
		MaxBatchSize:        int(tc.GetMaxBatchSize()),
		BatchTimeout:        tc.GetBatchTimeout().AsDuration(),
		Heartbeat:           tc.GetHeartbeatInterval().AsDuration(),
		SendTimeout:         tc.GetSendTimeout().AsDuration(),
		Priority:            tc.GetPriorityThreshold(),
	}
}

// sampleLoop tells the hub the CPU and memory load and the ingest rate
// every sampleInterval, for adaptive and burst modes and for stats, until
// ctx ends.
func (e *Engine) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	prev, err := e.proc.read()
	if err != nil {
		e.log.Warn("cannot sample the process; adaptive mode sees no load", "err", err)
	}
	prevIngest := e.ingested()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, err := e.proc.read()
		if err != nil {
			e.log.Warn("cannot sample the process; adaptive mode sees no load", "err", err)
			continue
		}
		dt := r.Time.Sub(prev.Time).Seconds()
		if dt <= 0 {
			continue
		}
		ingest := e.ingested()
		mc := e.Config().GetMemory()
		e.hub.ObserveAt(r.Time, hub.Observation{
			CPULoad:    (r.CPUTime - prev.CPUTime).Seconds() / dt / float64(runtime.NumCPU()),
			Memory:     monitor.RestShare(r.Live(), uint64(e.store.Stats().Bytes), uint64(overhead(mc))),
			HighWater:  mc.GetHighWater(),
			LowWater:   mc.GetLowWater(),
			IngestRate: float64(ingest-prevIngest) / dt,
		})
		e.limits.sweepAt(r.Time)
		prev, prevIngest = r, ingest
	}
}

// ingested counts entries stored since start, new and completed.
func (e *Engine) ingested() uint64 {
	st := e.store.Stats()
	return st.Accepted + st.Completed
}

// throttleStats reports the hub for GetStats.
func (e *Engine) throttleStats(newest uint64) *pxperfv1.ThrottleStats {
	hs := e.hub.Stats(newest, time.Now())
	ts := &pxperfv1.ThrottleStats{
		Subscribers:        uint64(len(hs.Subscriptions)),
		MessagesSent:       hs.Messages,
		EntriesSent:        hs.Entries,
		ThrottledIntervals: hs.Throttled,
		PriorityFlushes:    hs.Priority,
		Gaps:               hs.Gaps,
		BurstEvents:        hs.BurstEvents,
		StuckSubscribers:   hs.Stuck,
		BurstActive:        hs.BurstActive,
		SendBlocked:        durationpb.New(hs.Blocked),
		IngestRate:         hs.IngestRate,
		CpuLoad:            hs.CPULoad,
		MaxLag:             hs.MaxLag,
	}
	for _, ss := range hs.Subscriptions {
		ts.PerSubscriber = append(ts.PerSubscriber, &pxperfv1.SubscriberStats{
			Id:                 strconv.FormatUint(ss.ID, 10),
			Peer:               ss.Peer,
			StartTime:          timestamppb.New(ss.Start),
			NextId:             ss.NextID,
			Lag:                ss.Lag,
			MessagesSent:       ss.Messages,
			EntriesSent:        ss.Entries,
			MessageRate:        ss.MessageRate,
			AverageMessageRate: ss.AverageMessageRate,
			ThrottledIntervals: ss.Throttled,
			PriorityFlushes:    ss.Priority,
			Gaps:               ss.Gaps,
			SendBlocked:        durationpb.New(ss.Blocked),
			Interval:           durationpb.New(ss.Interval),
		})
	}
	return ts
}
