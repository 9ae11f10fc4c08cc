package service_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// /metrics is valid Prometheus text, with the gRPC server metrics, the
// process metrics and pxperf's own, whose values match what happened.
func TestMetricsScrape(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Server.MetricsAddress = "127.0.0.1:0" })
	ctx := testContext(t)
	h.publish(t, ctx, entriesN(7)...)
	if _, err := h.client.Publish(ctx, &pxperfv1.Entry{Method: "GET"}); err != nil {
		t.Fatal(err)
	}

	handler := h.srv.MetricsHandler()
	if handler == nil {
		t.Fatal("MetricsHandler is nil with server.metrics_address set")
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := families[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"pxperf_entries_accepted_total", nil, 7},
		{"pxperf_entries_rejected_total", nil, 1},
		{"pxperf_store_entries", nil, 7},
		{"pxperf_entries_evicted_total", map[string]string{"reason": "count"}, 0},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Publish", "grpc_code": "OK"}, 2},
		{"pxperf_build_info", map[string]string{"goversion": runtime.Version()}, 1},
		{"pxperf_memory_overhead_bytes", nil, testOverheadMB << 20},
		{"pxperf_proxy_open_listeners", nil, 0},
		{"pxperf_archive_queued", nil, 0},
		{"pxperf_archive_files_awaiting_compression", nil, 0},
	}
	for _, w := range want {
		got, ok := value(w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	// The live memory of the monitor's memory share: the test binary's heap
	// holds at least the server, so it is more than nothing.
	if live, ok := value("pxperf_memory_live_bytes", nil); !ok || live <= 0 {
		t.Errorf("pxperf_memory_live_bytes = %v (found %v), want more than 0", live, ok)
	}
	for _, name := range []string{"process_resident_memory_bytes", "pxperf_archive_bytes_awaiting_compression", "go_goroutines", "pxperf_subscribers", "pxperf_archive_files", "pxperf_score"} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

// Without server.metrics_address there is no handler and no metrics
// interceptor cost.
func TestMetricsOff(t *testing.T) {
	h := newHarness(t, nil)
	if h.srv.MetricsHandler() != nil {
		t.Error("MetricsHandler is not nil without server.metrics_address")
	}
}

// gaugeValue scrapes h's /metrics and returns the value of the gauge
// name, which has no labels; it fails the test if there is none.
func gaugeValue(t *testing.T, h *harness, name string) float64 {
	t.Helper()
	handler := h.srv.MetricsHandler()
	if handler == nil {
		t.Fatal("MetricsHandler is nil; set server.metrics_address")
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	ms := families[name].GetMetric()
	if len(ms) != 1 || ms[0].GetGauge() == nil {
		t.Fatalf("/metrics has %d series of %s, want one gauge", len(ms), name)
	}
	return ms[0].GetGauge().GetValue()
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
