package uitest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// hosts are the hosts of sample's entries, in turn.
var hosts = []string{"api.example.com", "cdn.example.net", "auth.example.org", "img.example.net"}

// sample returns entry i of the tests: a GET of hosts[i%4] with a
// credential in its request headers and a JSON response body; those of
// cdn.example.net answer 404, the others 200.
func sample(i int) *pxperfv1.Entry {
	host := hosts[i%len(hosts)]
	status := int32(200)
	if host == "cdn.example.net" {
		status = 404
	}
	route := pxperfv1.Route_ROUTE_DIRECT
	if i%3 == 0 {
		route = pxperfv1.Route_ROUTE_PROXY
	}
	return &pxperfv1.Entry{
		RequestId:  fmt.Sprintf("ui-%d", i),
		StartTime:  timestamppb.New(time.Date(2026, 12, 7, 15, 4, 0, 0, time.UTC).Add(time.Duration(i) * 137 * time.Millisecond)),
		Method:     []string{"GET", "GET", "POST", "PUT"}[i%4],
		Url:        fmt.Sprintf("https://%s/v1/items/%d?view=full", host, i),
		Host:       host,
		State:      pxperfv1.EntryState_ENTRY_STATE_COMPLETED,
		StatusCode: status,
		ProxyDecision: &pxperfv1.ProxyDecision{
			Route:    route,
			Upstream: map[bool]string{true: "proxy.corp.example:3128"}[route == pxperfv1.Route_ROUTE_PROXY],
		},
		RequestHeaders: []*pxperfv1.Header{
			{Name: "Authorization", Value: "Bearer secret-of-the-test"},
			{Name: "Accept", Value: "application/json"},
		},
		ResponseHeaders: []*pxperfv1.Header{{Name: "Content-Type", Value: "application/json"}},
		ResponseBody: &pxperfv1.Body{
			Data:        fmt.Appendf(nil, `{"id":%d,"ok":true,"tags":["a","b"]}`, i),
			ContentType: "application/json",
		},
		Timings: &pxperfv1.Timings{
			Dns:             durationpb.New(3 * time.Millisecond),
			Connect:         durationpb.New(11 * time.Millisecond),
			TlsHandshake:    durationpb.New(19 * time.Millisecond),
			TimeToFirstByte: durationpb.New(time.Duration(60+i%40) * time.Millisecond),
			Total:           durationpb.New(time.Duration(80+i%90) * time.Millisecond),
		},
		BytesSent:     320,
		BytesReceived: int64(900 + 61*i),
	}
}

// clock returns e's start time as the table shows it: the browser's local
// time of day, which is the test process's (both read TZ).
func clock(e *pxperfv1.Entry) string {
	return e.GetStartTime().AsTime().Local().Format("15:04:05.000")
}

// samples returns sample(1)…sample(n).
func samples(n int) []*pxperfv1.Entry {
	out := make([]*pxperfv1.Entry, n)
	for i := range out {
		out[i] = sample(i + 1)
	}
	return out
}

// setFilter replaces the filter bar's text with query and applies it
// (Enter), after focusing the bar with "/", as a user does.
func setFilter(ctx context.Context, t *testing.T, query string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Focus("#scroller"), chromedp.KeyEvent("/")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "/ focuses the filter", `document.activeElement?.id === "filter"`)
	// The page takes the "/" (preventDefault), but a key sent through
	// DevTools still types it into the field that now has the focus.
	eval[any](ctx, t, `document.getElementById("filter").value = ""`)
	if err := chromedp.Do(ctx, chromedp.SendKeys("#filter", query+"\r")); err != nil {
		t.Fatal(err)
	}
}

func TestTable(t *testing.T) {
	ctx := newBrowser(t, 1280, 760, 2*time.Minute)
	s := startServer(t)
	const n = 60
	publish(ctx, t, s.client(t, ""), samples(n))
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	t.Run("rows appear, newest first", func(t *testing.T) {
		waitFor(ctx, t, "the newest row shows", `document.querySelector("#scroller .row:not([hidden]) .id")?.textContent === "60"`)
		rows := eval[[][]string](ctx, t, rowsJS)
		visible := eval[int](ctx, t, `__pxperf.visibleRows()`)
		if len(rows) < visible || len(rows) > visible+2 {
			t.Errorf("%d rows in the DOM, want the %d on screen (+2 at most)", len(rows), visible)
		}
		want := []string{"60", clock(sample(60)), "GET", "200", "", "", "api.example.com", "https://api.example.com/v1/items/60?view=full", "proxy.corp.example:3128"}
		got := rows[0]
		got[4], got[5] = "", "" // duration and size: format.test.ts checks how they are written
		if !slices.Equal(got, want) {
			t.Errorf("the first row: %q, want %q", got, want)
		}
		if status := eval[string](ctx, t, `document.getElementById("status").textContent`); !strings.HasPrefix(status, "60 entries") {
			t.Errorf("status %q, want it to start with 60 entries", status)
		}
		screenshot(ctx, t, dir, "table")
	})

	t.Run("a filter narrows the rows", func(t *testing.T) {
		setFilter(ctx, t, "host:cdn.example.net status:404")
		waitFor(ctx, t, "only cdn rows show", `(() => { const r = `+rowsJS+`; return r.length === 15 && r.every(c => c[6] === "cdn.example.net" && c[3] === "404"); })()`)
		if status := eval[string](ctx, t, `document.getElementById("status").textContent`); !strings.HasPrefix(status, "15 entries") {
			t.Errorf("status %q, want 15 entries", status)
		}
		screenshot(ctx, t, dir, "filtered")
	})

	t.Run("a bad filter marks its token", func(t *testing.T) {
		setFilter(ctx, t, "host:cdn status:>=abc")
		waitFor(ctx, t, "the error shows", `!document.getElementById("filter-error").hidden`)
		mark := eval[string](ctx, t, `document.querySelector("#filter-error mark").textContent`)
		before := eval[string](ctx, t, `document.querySelector("#filter-error mark").previousSibling?.textContent ?? ""`)
		msg := eval[string](ctx, t, `document.querySelector("#filter-error .message").textContent`)
		if !strings.Contains(mark, "abc") || !strings.HasPrefix("host:cdn status:>=abc", before+mark) || msg == "" {
			t.Errorf("marked %q after %q, message %q: want the token with abc marked where it is, and a message", mark, before, msg)
		}
		if cls := eval[string](ctx, t, `document.getElementById("filter").className`); !strings.Contains(cls, "invalid") {
			t.Errorf("the filter's class is %q, want invalid", cls)
		}
		screenshot(ctx, t, dir, "bad-filter")
	})

	t.Run("the detail pane shows redacted headers and the body", func(t *testing.T) {
		setFilter(ctx, t, "host:api.example.com")
		waitFor(ctx, t, "the error clears and api rows show", `document.getElementById("filter-error").hidden && document.querySelector("#scroller .row:not([hidden]) .host")?.textContent === "api.example.com"`)
		if err := chromedp.Do(ctx, chromedp.Click("#scroller .row:not([hidden])")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the detail shows", `document.querySelector("#detail pre.json") !== null`)
		redacted := eval[[]string](ctx, t, `[...document.querySelectorAll("#detail td.redacted")].map(td => td.previousSibling.textContent + ": " + td.textContent)`)
		if !slices.Equal(redacted, []string{"Authorization: [REDACTED]"}) {
			t.Errorf("redacted headers %q, want Authorization: [REDACTED]", redacted)
		}
		body := eval[string](ctx, t, `document.querySelector("#detail pre.json").textContent`)
		if want := "{\n  \"id\": 60,\n  \"ok\": true,\n  \"tags\": [\n    \"a\",\n    \"b\"\n  ]\n}"; body != want {
			t.Errorf("response body %q, want %q", body, want)
		}
		curl := eval[string](ctx, t, `document.querySelector("#detail pre.curl").textContent`)
		if !strings.HasPrefix(curl, "# Left out, redacted when recorded: Authorization.") || !strings.Contains(curl, "curl 'https://api.example.com/v1/items/60?view=full'") {
			t.Errorf("curl:\n%s\nwant the Authorization header named as left out and the URL", curl)
		}
		bars := eval[int](ctx, t, `document.querySelectorAll("#detail .waterfall .bar").length`)
		if bars != 5 {
			t.Errorf("%d waterfall bars, want 5 (dns, connect, tls, ttfb, total)", bars)
		}
		screenshot(ctx, t, dir, "detail")
	})

	t.Run("keys move the selection, Enter opens and Esc closes", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Focus("#scroller"), chromedp.KeyEvent("\x1b")); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "Esc closes the detail", `document.getElementById("detail").hidden`)
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		// Rows of api.example.com are 60, 56, 52…: two down from 60 is 52.
		waitFor(ctx, t, "Enter opens the third row", `document.querySelector("#detail .facts dd")?.textContent === "52"`)
		if sel := eval[string](ctx, t, `document.querySelector("#scroller .row.selected .id").textContent`); sel != "52" {
			t.Errorf("selected row %q, want 52", sel)
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.End)); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "End selects the oldest", `document.querySelector("#scroller .row.selected .id")?.textContent === "4"`)
	})

	t.Run("dark", func(t *testing.T) {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		}); err != nil {
			t.Fatal(err)
		}
		bg := eval[string](ctx, t, `getComputedStyle(document.body).backgroundColor`)
		if bg != "rgb(22, 24, 28)" {
			t.Errorf("dark background %q, want rgb(22, 24, 28)", bg)
		}
		screenshot(ctx, t, dir, "dark")
	})
}

func TestTokenPrompt(t *testing.T) {
	ctx := newBrowser(t, 1024, 640, 2*time.Minute)
	const admin, viewer = "admin-token-0123456789abcdef", "viewer-token-0123456789abcdef"
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("admin ops "+admin+"\nview ui "+viewer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--tokens", tokens)
	publish(ctx, t, s.client(t, admin), samples(8))
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	waitFor(ctx, t, "the token prompt opens", `document.getElementById("token-dialog").open`)
	if rows := eval[int](ctx, t, `document.querySelectorAll("#scroller .row:not([hidden])").length`); rows != 0 {
		t.Errorf("%d rows before the token, want 0", rows)
	}
	screenshot(ctx, t, dir, "token-prompt")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#token", viewer), chromedp.Click("#token-use")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "rows appear with the token", `document.querySelector("#scroller .row:not([hidden]) .id")?.textContent === "8"`)
	if got := eval[string](ctx, t, `sessionStorage.getItem("pxperf.token")`); got != viewer {
		t.Errorf("sessionStorage holds %q, want the token", got)
	}
	screenshot(ctx, t, dir, "after-token")

	// A view token may read the config but not change it: PERMISSION_DENIED opens the prompt, saying so.
	if err := chromedp.Do(ctx, chromedp.Click("#config-toggle")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the config shows", `document.getElementById("config-memory-max_entries") !== null`)
	eval[bool](ctx, t, `(document.getElementById("config-memory-max_entries").value = "77", true)`)
	if err := chromedp.Do(ctx, chromedp.Click("#config-apply")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the prompt opens for the role", `document.getElementById("token-dialog").open && !document.getElementById("token-reason").hidden`)
	if reason := eval[string](ctx, t, `document.getElementById("token-reason").textContent`); !strings.Contains(reason, "lacks the role") || !strings.Contains(reason, "admin") {
		t.Errorf("the prompt says %q, want that the token lacks the admin role", reason)
	}
}
