package main

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// --metrics-listen serves /metrics over real HTTP, in the Prometheus text
// format, with pxperf's own metrics beside the gRPC and process ones.
func TestMetricsEndpoint(t *testing.T) {
	s := startServer(t, "--metrics-listen", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := regexp.MustCompile(`msg="serving metrics" url=(\S+)`).FindStringSubmatch(s.Logs.String())
	if url == nil {
		t.Fatalf("no metrics URL in the log:\n%s", s.Logs.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url[1], resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url[1], err)
	}
	for _, name := range []string{"pxperf_store_entries", "pxperf_score", "grpc_server_started_total", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("%s has no %s", url[1], name)
		}
	}
}
