package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// exportedMetrics starts a pxperf server in process, makes it show every
// metric family it has (one gRPC call for the gRPC server metrics, the
// monitor's first tick for the score's parts, and an alert for
// pxperf_alert), scrapes /metrics, and returns the names of the series it
// shows: a histogram's _bucket, _sum and _count, a summary's _sum and
// _count and its own name, every other family's name.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	cfg.Server.MetricsAddress = "127.0.0.1:0"
	// The smallest allowance: the test binary's live memory is more than
	// 80 % of 1 MiB, so memory_high fires and pxperf_alert has a series.
	cfg.Memory.OverheadMb = 1
	// Cluster mode, on a NATS server in process, for the cluster's
	// metrics too.
	cfg.Cluster.Urls = natstest.Start(t, 1).URLs()
	srv, err := service.New(cfg, service.Options{})
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Shutdown()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := pxperfv1.NewPerformanceServiceClient(conn).GetStats(ctx, &pxperfv1.GetStatsRequest{}); err != nil {
		t.Fatalf("GetStats: %v", err)
	}

	handler := srv.MetricsHandler()
	if handler == nil {
		t.Fatal("MetricsHandler is nil with server.metrics_address set")
	}
	// The monitor ticks once as the server starts; its score and alert
	// appear at the next scrape after that.
	var names map[string]bool
	for {
		names, err = scrape(handler)
		if err != nil {
			t.Fatal(err)
		}
		if names["pxperf_score_part"] && names["pxperf_alert"] {
			return names
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/metrics has no pxperf_score_part or no pxperf_alert after %v", 20*time.Second)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// scrape reads /metrics from h and returns the series names it shows.
func scrape(h http.Handler) (map[string]bool, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(rec.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	names := make(map[string]bool)
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		switch f.GetType().String() {
		case "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names, nil
}

// grafanaVariables are what Grafana puts in place of its built-in
// variables before it sends a query; the expressions are parsed with
// these. The dashboard's own variables ($job, $instance) appear only in
// label values, which parse as they are.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
)

// unexported parses expr and returns what is wrong with its selectors: a
// selector without a metric name, or one that names a series exported
// does not have.
func unexported(expr string, exported map[string]bool) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var bad []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		switch {
		case vs.Name == "":
			bad = append(bad, fmt.Sprintf("%s names no metric", vs))
		case !exported[vs.Name]:
			bad = append(bad, fmt.Sprintf("%s is not a series pxperf exports", vs.Name))
		}
		return nil
	})
	return bad, nil
}

// Every expression in the rules and the dashboard names series that the
// server's /metrics shows.
func TestExpressionsNameExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	rules := loadRules(t)
	dash := loadDashboard(t)
	var exprs []namedExpr
	for _, r := range rules {
		exprs = append(exprs, namedExpr{"rule " + r.Alert, r.Expr})
	}
	exprs = append(exprs, dash.expressions()...)
	if len(exprs) < len(rules)+10 {
		t.Fatalf("found %d expressions, want the %d rules' and at least 10 of the dashboard's", len(exprs), len(rules))
	}
	for _, e := range exprs {
		bad, err := unexported(e.expr, exported)
		if err != nil {
			t.Errorf("%s: %v", e.where, err)
			continue
		}
		for _, b := range bad {
			t.Errorf("%s: %s", e.where, b)
		}
	}
}

// The check above fails on what it must: a name the server does not
// export, a histogram's own name (only its _bucket, _sum and _count are
// series), a selector without a name, an expression that does not parse.
func TestUnexportedCaught(t *testing.T) {
	exported := map[string]bool{
		"pxperf_score":                        true,
		"grpc_server_handling_seconds_bucket": true,
	}
	tests := []struct {
		expr    string
		wantBad int
		wantErr bool
	}{
		{expr: `pxperf_score < 60`},
		{expr: `histogram_quantile(0.9, rate(grpc_server_handling_seconds_bucket{job=~"$job"}[$__rate_interval]))`},
		{expr: `rate(pxperf_no_such_total[5m]) > 0`, wantBad: 1},
		{expr: `pxperf_score / pxperf_scores`, wantBad: 1},
		{expr: `rate(grpc_server_handling_seconds[5m])`, wantBad: 1},
		{expr: `{__name__=~"pxperf_.+"}`, wantBad: 1},
		{expr: `pxperf_score <`, wantErr: true},
	}
	for _, tt := range tests {
		bad, err := unexported(tt.expr, exported)
		if (err != nil) != tt.wantErr {
			t.Errorf("unexported(%q) error = %v, want error %v", tt.expr, err, tt.wantErr)
		}
		if len(bad) != tt.wantBad {
			t.Errorf("unexported(%q) = %q, want %d problems", tt.expr, bad, tt.wantBad)
		}
	}
}
