package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

const dashboardFile = "grafana/pxperf.json"

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's
	GridPos    *gridPos    `json:"gridPos"`
}

type gridPos struct{ H, W, X, Y int }

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Datasource *datasource `json:"datasource"`
}

// namedExpr is a PromQL expression and where it was found, for messages.
type namedExpr struct{ where, expr string }

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels returns the panels, those in collapsed rows too.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// labelValues is Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]\w*\)$`)

// expressions returns every PromQL expression of the dashboard: the
// panels' queries and the selectors of its variables' queries.
func (d dashboard) expressions() []namedExpr {
	var out []namedExpr
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, namedExpr{fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		q, ok := v.Query.(string)
		if v.Type != "query" || !ok {
			continue
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q = m[1]
		}
		out = append(out, namedExpr{fmt.Sprintf("variable %s", v.Name), q})
	}
	return out
}

// The dashboard is one Grafana 10+ imports, picks its data source and
// target by variables, and has a panel for each part of the server an
// operator watches (ingest, memory, store, evictions, subscribers,
// throttling, archive, score, alerts), showing the metrics behind it.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want at least 39 (Grafana 10+)", d.SchemaVersion)
	}
	vars := make(map[string]variable)
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("variable datasource = %+v, want a Prometheus data source variable", v)
	}
	for _, name := range []string{"job", "instance"} {
		if v := vars[name]; v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s = %+v, want a query on ${datasource}", name, v)
		}
	}

	ids := make(map[int]string)
	byTitle := make(map[string]panel)
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q has id %d, already %q's or zero", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		byTitle[p.Title] = p
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q has gridPos %+v, want one within 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q has datasource %+v, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.RefID == "" || tg.Expr == "" {
				t.Errorf("panel %q has a query without refId or expr: %+v", p.Title, tg)
			}
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s has datasource %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			// Every selector picks the chosen targets.
			if strings.Count(tg.Expr, `job=~"$job"`) != strings.Count(tg.Expr, `instance=~"$instance"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q query %s does not select job and instance by the variables: %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}

	panels := []struct {
		title   string
		metrics []string // each in some query of the panel
	}{
		{"Ingest rate", []string{"pxperf_ingest_rate", "pxperf_entries_accepted_total"}},
		{"Memory against budget", []string{"pxperf_store_bytes", "pxperf_store_budget_bytes", "pxperf_memory_live_bytes", "process_resident_memory_bytes", "pxperf_memory_overhead_bytes"}},
		{"Memory share", []string{"pxperf_memory_live_bytes", "pxperf_store_bytes", "pxperf_memory_overhead_bytes", "pxperf_store_under_pressure"}},
		{"Store entries", []string{"pxperf_store_entries"}},
		{"Evictions by reason", []string{"pxperf_entries_evicted_total"}},
		{"Subscribers", []string{"pxperf_subscribers", "pxperf_subscriber_max_lag"}},
		{"Throttling: batches and rate", []string{"pxperf_messages_sent_total", "pxperf_entries_sent_total", "pxperf_throttled_intervals_total"}},
		{"Throttled share", []string{"pxperf_messages_sent_total", "pxperf_throttled_intervals_total"}},
		{"Throttling: drops", []string{"pxperf_gaps_total", "pxperf_stuck_subscribers_total", "pxperf_proxy_entries_dropped_total"}},
		{"Archive backlog", []string{"pxperf_archive_queued", "pxperf_archive_files_awaiting_compression"}},
		{"Archive bytes", []string{"pxperf_archive_bytes_awaiting_compression"}},
		{"Archive errors", []string{"pxperf_archive_write_errors_total", "pxperf_archive_entries_dropped_total"}},
		{"Score", []string{"pxperf_score"}},
		{"Score parts", []string{"pxperf_score_part"}},
		{"Alerts now", []string{"pxperf_alerts_active"}},
		{"Score now", []string{"pxperf_score"}},
		{"Active alerts by name", []string{"pxperf_alert"}},
	}
	for _, want := range panels {
		p, ok := byTitle[want.title]
		if !ok {
			t.Errorf("no panel %q", want.title)
			continue
		}
		for _, m := range want.metrics {
			if !panelQueries(p, m) {
				t.Errorf("panel %q has no query of %s", want.title, m)
			}
		}
	}
}

// panelQueries reports whether a query of p selects metric.
func panelQueries(p panel, metric string) bool {
	re := regexp.MustCompile(`(^|[^\w:])` + regexp.QuoteMeta(metric) + `\{`)
	for _, tg := range p.Targets {
		if re.MatchString(tg.Expr) {
			return true
		}
	}
	return false
}
