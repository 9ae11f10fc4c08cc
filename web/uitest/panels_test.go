package uitest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// TestPanels drives the config and stats panels, Download HAR and Clear.
func TestPanels(t *testing.T) {
	ctx := newBrowser(t, 1280, 800, 2*time.Minute)
	s := startServer(t)
	c := s.client(t, "")
	publish(ctx, t, c, samples(5))
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL)); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "rows appear", `document.querySelector("#scroller .row:not([hidden]) .id")?.textContent === "5"`)
	dir := t.TempDir()

	t.Run("a config change applies", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click("#config-toggle")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the config shows", `document.getElementById("config-memory-max_entries") !== null`)
		if hint := eval[string](ctx, t, `document.querySelector('[data-path="memory.max_entries"] .hint').textContent`); hint != "1..10000000" {
			t.Errorf("max_entries hint %q, want 1..10000000 from the buf.validate rule", hint)
		}
		eval[bool](ctx, t, `(document.getElementById("config-memory-max_entries").value = "4321", true)`)
		if err := chromedp.Do(ctx, chromedp.Click("#config-apply")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the update is applied", `document.querySelector(".config-message")?.textContent === "applied: memory.max_entries"`)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := c.GetConfig(rctx, &pxperfv1.GetConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.GetConfig().GetMemory().GetMaxEntries(); got != 4321 {
			t.Errorf("memory.max_entries %d after Apply, want 4321", got)
		}
		screenshot(ctx, t, dir, "config")
	})

	t.Run("a refusal shows beside the field", func(t *testing.T) {
		eval[bool](ctx, t, `(document.getElementById("config-memory-max_entries").value = "0", true)`)
		if err := chromedp.Do(ctx, chromedp.Click("#config-apply")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the violation shows", `document.querySelector('[data-path="memory.max_entries"] .violation')?.textContent !== ""`)
		if !eval[bool](ctx, t, `document.querySelector(".config-message").classList.contains("problem")`) {
			t.Error("the refusal is not marked as a problem at the top")
		}

		// A field that is not live: FAILED_PRECONDITION names it.
		eval[bool](ctx, t, `(document.getElementById("config-memory-max_entries").value = "4321", document.getElementById("config-logs-directory").value = "elsewhere", true)`)
		if err := chromedp.Do(ctx, chromedp.Click("#config-apply")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "not live shows", `document.querySelector('[data-path="logs.directory"] .violation')?.textContent.includes("not live")`)
	})

	t.Run("the stats panel shows the score", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click("#stats-toggle")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the score shows", `/^\d+$/.test(document.querySelector("#score-total strong")?.textContent ?? "")`)
		if n := eval[int](ctx, t, `document.querySelectorAll("#panel .parts dt").length`); n != 4 {
			t.Errorf("%d parts of the score, want 4", n)
		}
		if n := eval[int](ctx, t, `document.querySelectorAll("#panel svg.spark").length`); n != 3 {
			t.Errorf("%d sparklines, want 3", n)
		}
		if build := eval[string](ctx, t, `document.querySelector("#panel .build")?.textContent ?? ""`); !strings.HasPrefix(build, "pxperf ") {
			t.Errorf("the server's build reads %q, want pxperf and its version", build)
		}
		if n := eval[int](ctx, t, `document.querySelectorAll("#cluster-state").length`); n != 0 {
			t.Errorf("%d cluster lines for a server in embedded mode, want none", n)
		}
		screenshot(ctx, t, dir, "stats")
	})

	t.Run("Download HAR of one entry", func(t *testing.T) {
		// The Blob handed to the <a download> is kept for the test to read.
		eval[bool](ctx, t, `(() => { const f = URL.createObjectURL; URL.createObjectURL = (b) => { window.__har = b; return f(b); }; return true })()`)
		if err := chromedp.Do(ctx, chromedp.Click("#scroller .row:not([hidden])")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the detail shows", `document.getElementById("detail-har") !== null`)
		if err := chromedp.Do(ctx, chromedp.Click("#detail-har")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the HAR is made", `window.__har !== undefined`)
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__har.text()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Log struct {
				Version string `json:"version"`
				Entries []struct {
					ID       int `json:"_id"`
					Response struct {
						Status  int `json:"status"`
						Content struct {
							Text string `json:"text"`
						} `json:"content"`
					} `json:"response"`
				} `json:"entries"`
			} `json:"log"`
		}
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatalf("the HAR is not JSON: %v\n%s", err, text)
		}
		if doc.Log.Version != "1.2" || len(doc.Log.Entries) != 1 || doc.Log.Entries[0].ID != 5 || doc.Log.Entries[0].Response.Content.Text == "" {
			t.Errorf("HAR of entry 5: %s", text)
		}
	})

	t.Run("Clear hides the rows there are", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click("#clear")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "no rows", `document.querySelectorAll("#scroller .row:not([hidden])").length === 0`)
		publish(ctx, t, c, samples(6)[5:])
		waitFor(ctx, t, "the new row only", `document.querySelectorAll("#scroller .row:not([hidden])").length === 1 && document.querySelector("#scroller .row:not([hidden]) .id").textContent === "6"`)
	})
}
