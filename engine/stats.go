package engine

import (
	"fmt"
	"runtime"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/proxy"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Stats samples every part of the server, for GetStats and WatchStats.
func (e *Engine) Stats() *pxperfv1.Stats {
	now := time.Now()
	st := e.store.Stats()
	stats := &pxperfv1.Stats{
		SampleTime: timestamppb.New(now),
		Uptime:     durationpb.New(now.Sub(e.start)),
		Store: &pxperfv1.StoreStats{
			Entries:           uint64(st.Entries),
			Bytes:             uint64(st.Bytes),
			BudgetBytes:       uint64(st.BudgetBytes),
			MaxEntries:        uint64(st.MaxEntries),
			OldestId:          st.OldestID,
			NewestId:          st.NewestID,
			Accepted:          st.Accepted,
			Completed:         st.Completed,
			Rejected:          e.rejected.Load(),
			EvictedByCount:    st.EvictedByCount,
			EvictedByBytes:    st.EvictedByBytes,
			EvictedByPressure: st.EvictedByPressure,
			TruncatedBodies:   st.TruncatedBodies,
			UnderPressure:     st.UnderPressure,
		},
		Throttle:  e.throttleStats(st.NewestID),
		Archive:   e.archiveStats(),
		Resources: e.resourceStats(),
		Proxy:     e.proxyStats(),
		Server:    e.serverInfo(),
		Cluster:   e.clusterStats(),
	}
	if r, err := e.proc.read(); err == nil {
		stats.Process = &pxperfv1.ProcessStats{
			RssBytes:         r.RSS,
			HeapLiveBytes:    r.HeapLive,
			LiveBytes:        r.Live(),
			HeapGoalBytes:    r.HeapGoal,
			MemoryLimitBytes: r.MemoryLimit,
			Goroutines:       uint64(runtime.NumGoroutine()),
		}
	} else {
		e.log.Warn("cannot read process memory for stats", "err", err)
	}
	e.addMonitorStats(stats)
	return stats
}

// serverInfo names the server's build for GetStats.
func (e *Engine) serverInfo() *pxperfv1.ServerInfo {
	info := &pxperfv1.ServerInfo{
		Version:   e.build.Version,
		Revision:  e.build.Revision,
		Modified:  e.build.Modified,
		GoVersion: e.build.GoVersion,
	}
	if !e.build.RevisionTime.IsZero() {
		info.RevisionTime = timestamppb.New(e.build.RevisionTime)
	}
	return info
}

// proxyStats reports the recording proxy for GetStats; nil when it is off.
func (e *Engine) proxyStats() *pxperfv1.ProxyStats {
	p := e.proxy.Load()
	if p == nil {
		return nil
	}
	st := p.Stats()
	return &pxperfv1.ProxyStats{
		Requests:           st.Requests,
		Tunnels:            st.Tunnels,
		BytesIn:            st.BytesIn,
		BytesOut:           st.BytesOut,
		Errors:             st.Errors,
		Published:          st.Published,
		Dropped:            st.Dropped,
		ActiveConnections:  uint64(st.ActiveConns),
		ActiveTunnels:      uint64(st.ActiveTunnels),
		Queued:             uint64(st.Queued),
		Denied:             st.Denied,
		AuthFailures:       st.AuthFailures,
		RateLimited:        st.RateLimited,
		ConnectionsRefused: st.ConnsRefused,
	}
}

// proxyAlert is the proxy's dropped-entries alert while it holds, for
// GetStats; nil otherwise.
func (e *Engine) proxyAlert() *pxperfv1.Alert {
	p := e.proxy.Load()
	if p == nil {
		return nil
	}
	st := p.Stats()
	if !st.Dropping {
		return nil
	}
	return &pxperfv1.Alert{
		Name:    proxy.AlertEntriesDropped,
		Message: fmt.Sprintf("the recording proxy is dropping entries: pxperf's ingest is behind (%d dropped so far); traffic flows on", st.Dropped),
		State:   pxperfv1.AlertState_ALERT_STATE_FIRING,
		Value:   float64(st.Dropped),
	}
}
