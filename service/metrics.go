package service

import (
	"net/http"
	"strings"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// metrics is the server's Prometheus registry: gRPC server metrics from
// go-grpc-middleware's provider, Go and process collectors, and pxperf's
// own figures, read from the same stats GetStats returns at each scrape
// (so the two never disagree, and nothing is counted twice).
type metrics struct {
	registry *prometheus.Registry
	grpc     *grpcprom.ServerMetrics
}

func newMetrics(s *Service) *metrics {
	reg := prometheus.NewRegistry()
	gm := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	reg.MustRegister(
		gm,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		statsCollector{s},
	)
	return &metrics{registry: reg, grpc: gm}
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// statsCollector turns a stats sample into Prometheus metrics at scrape
// time.
type statsCollector struct{ s *Service }

// desc is one pxperf metric: its description and how to read it from a
// stats sample. Counters count from the server's start.
type desc struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*pxperfv1.Stats) float64
}

var statsDescs = []desc{
	{prometheus.NewDesc("pxperf_store_entries", "Entries held in memory.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetStore().GetEntries()) }},
	{prometheus.NewDesc("pxperf_store_bytes", "Accounted bytes of the entries held in memory.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetStore().GetBytes()) }},
	{prometheus.NewDesc("pxperf_store_budget_bytes", "The memory budget (memory.max_memory_mb) in bytes.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetStore().GetBudgetBytes()) }},
	{prometheus.NewDesc("pxperf_store_under_pressure", "1 while the last pressure check found live memory beyond the budget and the allowance for the rest of the process.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return boolFloat(s.GetStore().GetUnderPressure()) }},
	{prometheus.NewDesc("pxperf_entries_accepted_total", "New entries accepted.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetStore().GetAccepted()) }},
	{prometheus.NewDesc("pxperf_entries_completed_total", "Pending entries completed by a later entry.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetStore().GetCompleted()) }},
	{prometheus.NewDesc("pxperf_entries_rejected_total", "Entries rejected at ingest as invalid.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetStore().GetRejected()) }},
	{prometheus.NewDesc("pxperf_subscribers", "Open Subscribe streams.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetSubscribers()) }},
	{prometheus.NewDesc("pxperf_subscriber_max_lag", "Largest lag of any subscriber, in ids behind the newest.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetMaxLag()) }},
	{prometheus.NewDesc("pxperf_messages_sent_total", "Messages sent to subscribers.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetMessagesSent()) }},
	{prometheus.NewDesc("pxperf_entries_sent_total", "Entries sent to subscribers (one per subscriber).", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetEntriesSent()) }},
	{prometheus.NewDesc("pxperf_throttled_intervals_total", "Messages that waited for the throttle interval with entries ready.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetThrottledIntervals()) }},
	{prometheus.NewDesc("pxperf_gaps_total", "Gap messages sent to subscribers that fell behind memory.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetGaps()) }},
	{prometheus.NewDesc("pxperf_stuck_subscribers_total", "Subscribers ended because a Send stayed blocked past throttle.send_timeout.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetThrottle().GetStuckSubscribers()) }},
	{prometheus.NewDesc("pxperf_ingest_rate", "Entries stored per second over the last second.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return s.GetThrottle().GetIngestRate() }},
	{prometheus.NewDesc("pxperf_archive_files", "Archive files on disk.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetFiles()) }},
	{prometheus.NewDesc("pxperf_archive_disk_bytes", "Bytes of archive files on disk.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetDiskBytes()) }},
	{prometheus.NewDesc("pxperf_archive_queued", "Entries waiting for the archive writer.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetQueued()) }},
	{prometheus.NewDesc("pxperf_archive_files_awaiting_compression", "Rotated archive files still to be compressed: the compression backlog.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetFilesAwaitingCompression()) }},
	{prometheus.NewDesc("pxperf_archive_bytes_awaiting_compression", "Uncompressed bytes of the archive files awaiting compression.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetBytesAwaitingCompression()) }},
	{prometheus.NewDesc("pxperf_archive_entries_written_total", "Entries written to archive files.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetEntriesWritten()) }},
	{prometheus.NewDesc("pxperf_archive_write_errors_total", "Archive write, sync or compression errors.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetWriteErrors()) }},
	{prometheus.NewDesc("pxperf_archive_entries_dropped_total", "Entries not archived because the queue was full while writes failed.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetArchive().GetEntriesDropped()) }},
	{prometheus.NewDesc("pxperf_resources", "Tracked resources (streams, connections, workers, files).", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetResources().GetLive()) }},
	{prometheus.NewDesc("pxperf_cleanups_succeeded_total", "Resource cleanups that succeeded.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetResources().GetCleanupsSucceeded()) }},
	{prometheus.NewDesc("pxperf_cleanups_failed_total", "Resource cleanups that failed.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetResources().GetCleanupsFailed()) }},
	{prometheus.NewDesc("pxperf_resources_refused_total", "New streams refused by cleanup.max_resources.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetResources().GetRefused()) }},
	{prometheus.NewDesc("pxperf_rate_limited_total", "Publishes refused or slowed by cleanup.producer_rate_limit.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetResources().GetRateLimited()) }},
	{prometheus.NewDesc("pxperf_proxy_requests_total", "Plain HTTP requests through the recording proxy.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetRequests()) }},
	{prometheus.NewDesc("pxperf_proxy_tunnels_total", "CONNECT tunnels through the recording proxy.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetTunnels()) }},
	{prometheus.NewDesc("pxperf_proxy_entries_dropped_total", "Entries the recording proxy dropped because publishing fell behind.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetDropped()) }},
	{prometheus.NewDesc("pxperf_proxy_denied_total", "Requests and tunnels the recording proxy refused because their target is inside this host.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetDenied()) }},
	{prometheus.NewDesc("pxperf_proxy_auth_failures_total", "Requests the recording proxy answered 407: no valid client credentials.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetAuthFailures()) }},
	{prometheus.NewDesc("pxperf_proxy_rate_limited_total", "Requests the recording proxy answered 429 by proxy.client_requests_per_second.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetRateLimited()) }},
	{prometheus.NewDesc("pxperf_proxy_connections_refused_total", "Client connections the recording proxy refused by proxy.max_connections_per_client.", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetProxy().GetConnectionsRefused()) }},
	{prometheus.NewDesc("pxperf_score", "The 0-100 health score.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return s.GetScore().GetTotal() }},
	{prometheus.NewDesc("pxperf_alerts_active", "Alerts whose condition holds now.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(len(s.GetActiveAlerts())) }},
}

// clusterDescs are the metrics of cluster mode, exported in cluster mode
// only.
var clusterDescs = []desc{
	{prometheus.NewDesc("pxperf_cluster_connected", "1 while this node can publish: connected to NATS, and the stream answering.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return boolFloat(s.GetCluster().GetConnected()) }},
	{prometheus.NewDesc("pxperf_cluster_stream_messages", "Messages the cluster's stream holds, each the entries of one or more published batches.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetStreamMessages()) }},
	{prometheus.NewDesc("pxperf_cluster_stream_bytes", "Bytes the cluster's stream holds.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetStreamBytes()) }},
	{prometheus.NewDesc("pxperf_cluster_first_id", "Oldest id the cluster's stream holds.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetFirstId()) }},
	{prometheus.NewDesc("pxperf_cluster_last_id", "Newest id in the cluster's stream.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetLastId()) }},
	{prometheus.NewDesc("pxperf_cluster_applied_id", "Newest id this node has applied from the cluster's stream.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetAppliedId()) }},
	{prometheus.NewDesc("pxperf_cluster_lag", "Entries of the cluster's stream this node has not applied yet.", nil, nil), prometheus.GaugeValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetLag()) }},
	{prometheus.NewDesc("pxperf_cluster_publish_failures_total", "Publishes the cluster's stream did not take (each failed with UNAVAILABLE).", nil, nil), prometheus.CounterValue, func(s *pxperfv1.Stats) float64 { return float64(s.GetCluster().GetPublishFailures()) }},
}

// The two figures behind the monitor's memory share (monitor.RestShare),
// so that a dashboard and an alert rule can compute it, and the open
// listeners behind its proxy_open alert.
var (
	liveDesc      = prometheus.NewDesc("pxperf_memory_live_bytes", "Live heap as of the last GC plus goroutine stacks: the live memory of the monitor's memory share.", nil, nil)
	overheadDesc  = prometheus.NewDesc("pxperf_memory_overhead_bytes", "The live memory allowed besides the store (memory.overhead_mb) in bytes: the denominator of the monitor's memory share.", nil, nil)
	proxyOpenDesc = prometheus.NewDesc("pxperf_proxy_open_listeners", "Recording proxy listeners beyond loopback without client authentication.", nil, nil)
)

var (
	evictedDesc   = prometheus.NewDesc("pxperf_entries_evicted_total", "Entries evicted from memory, by reason.", []string{"reason"}, nil)
	scorePartDesc = prometheus.NewDesc("pxperf_score_part", "Points of one part of the health score.", []string{"part"}, nil)
	alertDesc     = prometheus.NewDesc("pxperf_alert", "1 for each alert whose condition holds now.", []string{"name"}, nil)
	buildDesc     = prometheus.NewDesc("pxperf_build_info", "Always 1; its labels name the server's build.", []string{"version", "revision", "goversion"}, nil)
)

// Describe implements prometheus.Collector.
func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range statsDescs {
		ch <- d.desc
	}
	ch <- liveDesc
	ch <- overheadDesc
	ch <- proxyOpenDesc
	ch <- evictedDesc
	ch <- scorePartDesc
	ch <- alertDesc
	ch <- buildDesc
	for _, d := range clusterDescs {
		ch <- d.desc
	}
}

// Collect implements prometheus.Collector.
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.engine.Stats()
	for _, d := range statsDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(st))
	}
	ch <- prometheus.MustNewConstMetric(liveDesc, prometheus.GaugeValue, float64(st.GetProcess().GetLiveBytes()))
	ch <- prometheus.MustNewConstMetric(overheadDesc, prometheus.GaugeValue, float64(uint64(c.s.engine.Config().GetMemory().GetOverheadMb())<<20))
	var open int
	if p := c.s.engine.Proxy(); p != nil {
		open = len(p.Stats().Open)
	}
	ch <- prometheus.MustNewConstMetric(proxyOpenDesc, prometheus.GaugeValue, float64(open))
	ss := st.GetStore()
	for reason, n := range map[string]uint64{"count": ss.GetEvictedByCount(), "bytes": ss.GetEvictedByBytes(), "pressure": ss.GetEvictedByPressure()} {
		ch <- prometheus.MustNewConstMetric(evictedDesc, prometheus.CounterValue, float64(n), reason)
	}
	for _, p := range st.GetScore().GetParts() {
		ch <- prometheus.MustNewConstMetric(scorePartDesc, prometheus.GaugeValue, p.GetPoints(), strings.ToLower(p.GetName()))
	}
	for _, a := range st.GetActiveAlerts() {
		ch <- prometheus.MustNewConstMetric(alertDesc, prometheus.GaugeValue, 1, a.GetName())
	}
	if cs := st.GetCluster(); cs != nil {
		for _, d := range clusterDescs {
			ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(st))
		}
	}
	b := st.GetServer()
	ch <- prometheus.MustNewConstMetric(buildDesc, prometheus.GaugeValue, 1, b.GetVersion(), b.GetRevision(), b.GetGoVersion())
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
