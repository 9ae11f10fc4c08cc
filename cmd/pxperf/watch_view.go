package main

// What pxperf watch draws: the header with stats and sparklines, the filter
// bar, the table, the detail pane and the key line.

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
	"google.golang.org/grpc/status"
)

// headerLines is the height of the stats header.
const headerLines = 4

// Styles. Colour is dropped by the renderer when the terminal has none or
// NO_COLOR is set; reverse video (the selected row) stays.
var (
	styleBold     = lipgloss.NewStyle().Bold(true)
	styleFaint    = lipgloss.NewStyle().Faint(true)
	styleError    = lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true)
	stylePaused   = lipgloss.NewStyle().Foreground(lipgloss.Black).Background(lipgloss.Yellow).Bold(true)
	styleLive     = lipgloss.NewStyle().Foreground(lipgloss.Green).Bold(true)
	styleSpark    = lipgloss.NewStyle().Foreground(lipgloss.Blue)
	styleSelected = lipgloss.NewStyle().Reverse(true)
	styleHeading  = lipgloss.NewStyle().Bold(true).Underline(true)
)

// statusColor is the colour of a row: by status class, and distinct for
// failed and pending entries; nil for none.
func statusColor(e *pxperfv1.Entry) color.Color {
	switch code := e.GetStatusCode(); {
	case code >= 500:
		return lipgloss.Red
	case code >= 400:
		return lipgloss.Yellow
	case code >= 300:
		return lipgloss.Cyan
	case code >= 200:
		return lipgloss.Green
	case e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED || e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED:
		return lipgloss.Magenta
	case e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING:
		return lipgloss.BrightBlack
	}
	return nil
}

// View implements tea.Model.
func (m *watchModel) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "pxperf watch " + m.cfg.server
	return v
}

// layout returns the heights of the table's window and of the detail pane
// (0 when closed) for the terminal's size.
func (m *watchModel) layout() (tableRows, detailRows int) {
	// Header, filter bar, its error lines, the table's column line, the
	// key line.
	body := m.height - headerLines - 1 - len(m.filterErrorLines()) - 1 - 1
	if body < 1 {
		return 0, 0
	}
	if !m.detailOpen {
		return body, 0
	}
	tableRows = max(3, body/4)
	return tableRows, max(body-tableRows-1, 0) // the pane's title line
}

// render draws the whole screen, one line per terminal row.
func (m *watchModel) render() string {
	w := m.width
	if w < 40 || m.height < headerLines+5 {
		return "pxperf watch: the terminal is too small (at least 40x9)"
	}
	var lines []string
	lines = append(lines, m.titleLine(w))
	lines = append(lines, m.statsLines(w)...)
	lines = append(lines, m.filterLines(w)...)
	tableRows, detailRows := m.layout()
	lines = append(lines, m.tableLines(w, tableRows)...)
	if m.detailOpen {
		lines = append(lines, m.detailPane(w, detailRows)...)
	}
	lines = append(lines, m.keyLine(w))
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines, "\n")
}

// fit cuts a styled line to w cells and pads it to w.
func fit(s string, w int) string {
	s = ansi.Truncate(s, w, "…")
	if n := ansi.StringWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// titleLine: the server, live or paused, following or holding.
func (m *watchModel) titleLine(w int) string {
	parts := []string{styleBold.Render("pxperf watch"), m.cfg.server}
	if m.paused {
		parts = append(parts, stylePaused.Render(" PAUSED "))
	} else {
		parts = append(parts, styleLive.Render("● LIVE"))
	}
	switch {
	case m.follow && !m.paused:
		parts = append(parts, "following the newest")
	case m.loaded && m.win.offset > 0:
		parts = append(parts, fmt.Sprintf("holding, %s newer below", thousands(m.win.offset)))
	case m.loaded && !m.paused:
		parts = append(parts, "holding")
	}
	var info []string
	if t := m.stats.GetSampleTime(); t != nil {
		info = append(info, "stats at "+t.AsTime().Local().Format(time.TimeOnly))
	}
	switch {
	case m.viewLive:
		info = append(info, fmt.Sprintf("table live, up to %d/s", viewRate(m.cfg.refresh)))
	case m.loaded:
		info = append(info, fmt.Sprintf("table every %v, took %v", m.cfg.refresh, m.took.Round(100*time.Microsecond)))
	}
	if len(info) > 0 {
		parts = append(parts, styleFaint.Render("· "+strings.Join(info, " · ")))
	}
	return strings.Join(parts, "  ")
}

// statsLines: ingest rate, memory and the rest, with sparklines.
func (m *watchModel) statsLines(w int) []string {
	s := m.stats
	if s == nil {
		msg := "waiting for stats…"
		if m.statsErr != nil {
			msg = styleError.Render("stats: " + rpcText(m.statsErr) + " (retrying)")
		}
		return []string{msg, "", ""}
	}
	sparkWidth := min(sparkSamples, max(w-60, 10))
	peak := 0.0
	for _, v := range m.ingest {
		peak = max(peak, v)
	}
	st := s.GetStore()
	ingest := fmt.Sprintf("%-6s %15s/s  %s  peak %s/s", "ingest",
		thousands(uint64(s.GetThrottle().GetIngestRate()+0.5)),
		styleSpark.Render(sparkline(m.ingest, sparkWidth, peak)), thousands(uint64(peak+0.5)))
	memory := fmt.Sprintf("%-6s %6.1f%% of %6s  %s  rss %s, store %s", "memory",
		100*memoryShare(s), humanBytes(st.GetBudgetBytes()),
		styleSpark.Render(sparkline(m.memory, sparkWidth, 1)),
		humanBytes(s.GetProcess().GetRssBytes()), humanBytes(st.GetBytes()))
	alerts := "none"
	if len(m.alerts) > 0 {
		names := make([]string, len(m.alerts))
		for i, a := range m.alerts {
			names[i] = fmt.Sprintf("%s (%.3g, threshold %.3g)", a.GetName(), a.GetValue(), a.GetThreshold())
		}
		alerts = styleError.Render(strings.Join(names, ", "))
	}
	rest := fmt.Sprintf("score %.0f/100  subscribers %d  entries %s (ids %d..%d)  alerts %s",
		s.GetScore().GetTotal(), s.GetThrottle().GetSubscribers(), thousands(st.GetEntries()),
		st.GetOldestId(), st.GetNewestId(), alerts)
	if c := s.GetCluster(); c != nil {
		if c.GetConnected() {
			rest += fmt.Sprintf("  cluster lag %s", thousands(c.GetLag()))
		} else {
			rest += "  " + styleError.Render("cluster: cannot publish")
		}
	}
	if m.statsErr != nil {
		rest = styleError.Render("stats: "+rpcText(m.statsErr)+" (retrying)") + "  " + rest
	}
	return []string{ingest, memory, rest}
}

// sparkBlocks are the eight heights of a sparkline cell.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width values, scaled so that top is a full
// block, right-aligned; missing samples are blank.
func sparkline(values []float64, width int, top float64) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(values)))
	for _, v := range values {
		i := 0
		if top > 0 {
			i = int(v / top * float64(len(sparkBlocks)-1))
		}
		b.WriteRune(sparkBlocks[max(0, min(i, len(sparkBlocks)-1))])
	}
	return b.String()
}

// filterPrompt starts the filter bar.
const filterPrompt = "filter> "

// filterLines: the filter bar, and under it the error of the filter typed.
func (m *watchModel) filterLines(w int) []string {
	if !m.editing {
		if m.filterText == "" {
			return []string{"filter  " + styleFaint.Render("none: every entry (/ to filter, e.g. status:>=500 host:*.example.com)")}
		}
		return []string{"filter  " + styleBold.Render(m.filterText) + styleFaint.Render("  (/ to change)")}
	}
	// Scroll the input sideways so that the cursor stays in view.
	avail := max(w-len(filterPrompt)-1, 1)
	start := max(0, m.cursor-avail+1)
	end := min(len(m.input), start+avail)
	before, after := string(m.input[start:m.cursor]), ""
	at := " "
	if m.cursor < end {
		at = string(m.input[m.cursor])
		after = string(m.input[m.cursor+1 : end])
	}
	bar := styleBold.Render(filterPrompt) + before + styleSelected.Render(at) + after
	if end == len(m.input) {
		bar += styleFaint.Render("   Enter applies, Esc cancels")
	}
	lines := []string{bar}
	for i, l := range m.filterErrorLines() {
		if i == 0 && strings.TrimSpace(l) != "" && strings.Trim(l, " ^") == "" {
			// The caret line, aligned with the input as shown.
			col := len(filterPrompt) - start + strings.IndexByte(l, '^')
			l = strings.Repeat(" ", max(col, 0)) + strings.TrimLeft(l, " ")
		}
		lines = append(lines, styleError.Render(l))
	}
	return lines
}

// filterErrorLines are the lines under the filter bar for the error of the
// filter typed: for a syntax error, carets under the token (at its rune
// column in the input) and then the reason.
func (m *watchModel) filterErrorLines() []string {
	if !m.editing || m.inputErr == nil {
		return nil
	}
	se, ok := syntaxError(m.inputErr)
	if !ok {
		lines := strings.Split(m.inputErr.Error(), "\n")
		return lines[:min(len(lines), 3)]
	}
	pos := min(max(se.Pos, 0), len(se.Input))
	col := utf8.RuneCountInString(se.Input[:pos])
	width := max(utf8.RuneCountInString(se.Token), 1)
	token := se.Token
	if token == "" {
		token = "end of filter"
	}
	return []string{
		strings.Repeat(" ", col) + strings.Repeat("^", width),
		fmt.Sprintf("%s: %s (the filter in force stays)", token, se.Reason),
	}
}

// Table columns, in cells.
const (
	colID     = 7
	colTime   = 12
	colMethod = 7
	colStatus = 6
	colDur    = 10
	colSize   = 7
	colProxy  = 16
)

// tableLines: the column line, then rows lines of the window, oldest at
// the top, with a scroll bar on the right.
func (m *watchModel) tableLines(w, rows int) []string {
	head := fmt.Sprintf("%*s %-*s %-*s %-*s %*s %*s %-*s %s", colID, "ID", colTime, "TIME", colMethod, "METHOD",
		colStatus, "STATUS", colDur, "DURATION", colSize, "SIZE", colProxy, "PROXY", "URL")
	lines := []string{styleBold.Render(fit(head, w))}
	if rows <= 0 {
		return lines
	}
	es, selected, offset := m.shown(rows)
	bar := scrollBar(rows, m.win.total, offset, len(es))
	for r := range rows {
		i := len(es) - 1 - r // entries are newest first; the top row is the oldest
		var line string
		switch {
		case i >= 0:
			line = fit(rowText(es[i], w-1), w-1)
			style := lipgloss.NewStyle()
			if c := statusColor(es[i]); c != nil {
				style = style.Foreground(c)
			}
			if i == selected {
				style = style.Reverse(true)
			}
			line = style.Render(line)
		case r == 0 && !m.loaded && m.listErr == nil:
			line = fit(styleFaint.Render("loading…"), w-1)
		case r == 0 && len(es) == 0 && m.listErr == nil:
			line = fit(styleFaint.Render("no entries match"), w-1)
		default:
			line = strings.Repeat(" ", w-1)
		}
		lines = append(lines, line+bar[r])
	}
	return lines
}

// shown returns the part of the window on screen: the window is longer
// than the table until the fetch for a shorter table returns, and then
// the part with the selected row shows. selected and offset are as in
// the model, for that part.
func (m *watchModel) shown(rows int) (es []*pxperfv1.Entry, selected int, offset uint64) {
	es, selected, offset = m.win.entries, m.selected, m.win.offset
	if len(es) > rows {
		lo := max(0, selected-rows+1)
		es, selected, offset = es[lo:lo+rows], selected-lo, offset+uint64(lo)
	}
	return es, selected, offset
}

// rowText is one entry as a table row, w cells at most.
func rowText(e *pxperfv1.Entry, w int) string {
	status := "-"
	switch {
	case e.GetStatusCode() != 0:
		status = strconv.Itoa(int(e.GetStatusCode()))
	case e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED || e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED:
		status = "ERR"
	case e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING:
		status = "…"
	}
	dur := "-"
	if t := e.GetTimings().GetTotal(); t != nil {
		dur = fmt.Sprintf("%.1fms", float64(t.AsDuration())/float64(time.Millisecond))
	}
	size := "-"
	if n := filter.Size(e); n > 0 {
		size = humanBytes(n)
	}
	line := fmt.Sprintf("%*d %-*s %-*s %-*s %*s %*s %-*s %s", colID, e.GetId(),
		colTime, e.GetStartTime().AsTime().Local().Format("15:04:05.000"),
		colMethod, ansi.Truncate(e.GetMethod(), colMethod, "…"), colStatus, status, colDur, dur, colSize, size,
		colProxy, ansi.Truncate(proxyText(e.GetProxyDecision()), colProxy, "…"), oneLine(e.GetUrl()))
	return ansi.Truncate(line, w, "…")
}

// proxyText is the proxy decision in a few words.
func proxyText(d *pxperfv1.ProxyDecision) string {
	var s string
	switch d.GetRoute() {
	case pxperfv1.Route_ROUTE_DIRECT:
		s = "direct"
	case pxperfv1.Route_ROUTE_PROXY:
		s = d.GetUpstream()
		if s == "" {
			s = "proxy"
		}
	default:
		return "-"
	}
	if n := len(d.GetFailedUpstreams()); n > 0 {
		s += fmt.Sprintf(" (%d failed)", n)
	}
	return s
}

// scrollBar returns one cell per row: where the window is in the view, the
// oldest entries at the top. Blank when the whole view fits.
func scrollBar(rows int, total, offset uint64, shown int) []string {
	bar := make([]string, rows)
	if total <= uint64(rows) || rows < 2 {
		for i := range bar {
			bar[i] = " "
		}
		return bar
	}
	// The thumb's two ends are placed apart, each from what lies beyond
	// it, so that it touches the bottom at the newest entries and the top
	// at the oldest.
	above := total - min(total, offset+uint64(shown)) // older than the window
	top := int(above * uint64(rows) / total)
	end := rows - int(min(offset, total)*uint64(rows)/total)
	if end <= top { // less than a cell: one cell, where it falls
		top = min(top, rows-1)
		end = top + 1
	}
	for i := range bar {
		if i >= top && i < end {
			bar[i] = "█"
		} else {
			bar[i] = styleFaint.Render("│")
		}
	}
	return bar
}

// keyLine: where the window is, and the keys.
func (m *watchModel) keyLine(w int) string {
	var pos string
	rows, _ := m.layout()
	es, _, offset := m.shown(rows)
	switch n := uint64(len(es)); {
	case m.listErr != nil:
		pos = styleError.Render("list: " + rpcText(m.listErr))
	case n == 0:
		pos = fmt.Sprintf("0 of %s", thousands(m.win.total))
	default:
		first := m.win.total - min(m.win.total, offset+n) + 1
		pos = fmt.Sprintf("%s-%s of %s", thousands(first), thousands(first+n-1), thousands(m.win.total))
	}
	if m.viewErr != nil && m.follow && !m.paused {
		pos += "  " + styleError.Render("live view: "+rpcText(m.viewErr)+" (polling)")
	}
	keys := "↑↓ PgUp PgDn move · Home oldest · End follow · / filter · Enter detail · p pause · q quit"
	switch {
	case m.editing:
		keys = "typing a filter: Enter applies · Esc cancels · ←→ Ctrl-U"
	case m.detailOpen:
		keys = "detail: ↑↓ PgUp PgDn scroll · Esc closes · p pause · q quit"
	}
	return pos + "  " + styleFaint.Render(keys)
}

// detailPane: a title line, then rows lines of the entry's details.
func (m *watchModel) detailPane(w, rows int) []string {
	title := fmt.Sprintf("── entry %d ", m.detailID)
	if m.detailErr != nil {
		title += styleError.Render(rpcText(m.detailErr)) + " "
	}
	lines := []string{styleBold.Render(title + strings.Repeat("─", max(w-ansi.StringWidth(title), 0)))}
	all := m.detailLines()
	for i := range rows {
		if j := m.detailTop + i; j < len(all) {
			lines = append(lines, all[j])
		} else {
			lines = append(lines, "")
		}
	}
	return lines
}

// bodyPreviewBytes is the most of a body the detail pane shows.
const bodyPreviewBytes = 4096

// detailLines is the whole text of the detail pane: request, response,
// timings, proxy decision, headers, and a preview of each body (the
// request body under the request headers, when the entry has one).
func (m *watchModel) detailLines() []string {
	e := m.detail
	if e == nil {
		return nil
	}
	var l []string
	add := func(format string, args ...any) { l = append(l, fmt.Sprintf(format, args...)) }
	add("%s %s", styleBold.Render(e.GetMethod()), oneLine(e.GetUrl()))
	state := strings.ToLower(strings.TrimPrefix(e.GetState().String(), "ENTRY_STATE_"))
	status := "-"
	if c := e.GetStatusCode(); c != 0 {
		status = strconv.Itoa(int(c))
	}
	add("status %s  state %s  host %s  tunnel %t  priority %s", status, state, e.GetHost(), e.GetTunnel(),
		strings.ToLower(strings.TrimPrefix(e.GetPriority().String(), "PRIORITY_")))
	if err := e.GetError(); err.GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED {
		add("%s", styleError.Render(fmt.Sprintf("error %s: %s", strings.ToLower(strings.TrimPrefix(err.GetKind().String(), "ERROR_KIND_")), oneLine(err.GetMessage()))))
	}
	add("started %s  sent %s  received %s  request id %s", e.GetStartTime().AsTime().Local().Format("2006-01-02 15:04:05.000"),
		humanBytes(e.GetBytesSent()), humanBytes(e.GetBytesReceived()), orDash(e.GetRequestId()))
	t := e.GetTimings()
	ms := func(name string, d interface{ AsDuration() time.Duration }, set bool) string {
		if !set {
			return name + " -"
		}
		return fmt.Sprintf("%s %.1fms", name, float64(d.AsDuration())/float64(time.Millisecond))
	}
	add("timings  %s  %s  %s  %s  %s", ms("dns", t.GetDns(), t.GetDns() != nil), ms("connect", t.GetConnect(), t.GetConnect() != nil),
		ms("tls", t.GetTlsHandshake(), t.GetTlsHandshake() != nil), ms("first byte", t.GetTimeToFirstByte(), t.GetTimeToFirstByte() != nil),
		ms("total", t.GetTotal(), t.GetTotal() != nil))
	d := e.GetProxyDecision()
	proxy := "proxy    " + proxyText(d)
	if src := d.GetSource(); src != pxperfv1.DecisionSource_DECISION_SOURCE_UNSPECIFIED {
		proxy += " from " + strings.ToLower(strings.TrimPrefix(src.String(), "DECISION_SOURCE_"))
	}
	if f := d.GetFailedUpstreams(); len(f) > 0 {
		proxy += ", failed: " + strings.Join(f, ", ")
	}
	if a := e.GetUpstreamAuth(); a.GetMethod() != pxperfv1.AuthMethod_AUTH_METHOD_UNSPECIFIED {
		proxy += fmt.Sprintf(", auth %s %s", strings.ToLower(strings.TrimPrefix(a.GetMethod().String(), "AUTH_METHOD_")),
			strings.ToLower(strings.TrimPrefix(a.GetOutcome().String(), "AUTH_OUTCOME_")))
	}
	l = append(l, proxy)
	headers := func(title string, hs []*pxperfv1.Header) {
		l = append(l, "", styleHeading.Render(title))
		if len(hs) == 0 {
			l = append(l, styleFaint.Render("  none"))
		}
		for _, h := range hs {
			add("  %s: %s", h.GetName(), oneLine(h.GetValue()))
		}
	}
	headers("Request headers", e.GetRequestHeaders())
	if b := e.GetRequestBody(); b != nil {
		l = append(l, bodySection("Request body", b, "--request-body")...)
	}
	headers("Response headers", e.GetResponseHeaders())
	l = append(l, bodySection("Response body", e.GetResponseBody(), "--body")...)
	return l
}

// bodySection is the part of the detail pane for body b (nil for none):
// a blank line, a title with its content type and size and, when it was
// truncated, how much was kept, then a preview of it. flag is the option
// of pxperf get that prints it whole.
func bodySection(title string, b *pxperfv1.Body, flag string) []string {
	if b != nil {
		title += fmt.Sprintf(" (%s, %s", orDash(b.GetContentType()), humanBytes(b.GetOriginalSize()))
		if b.GetTruncated() {
			title += fmt.Sprintf(", %s kept", humanBytes(int64(len(b.GetData()))))
		}
		title += ")"
	}
	return append([]string{"", styleHeading.Render(title)}, bodyPreview(b.GetData(), flag)...)
}

// bodyPreview shows the start of a body: as text when it is UTF-8, else
// as a hex dump. flag is the option of pxperf get that prints it whole.
func bodyPreview(data []byte, flag string) []string {
	if len(data) == 0 {
		return []string{styleFaint.Render("  none (or not fetched yet)")}
	}
	cut := data[:min(len(data), bodyPreviewBytes)]
	var lines []string
	if utf8.Valid(cut) || utf8.Valid(cut[:max(len(cut)-3, 0)]) {
		text := strings.ToValidUTF8(string(cut), "")
		for line := range strings.SplitSeq(text, "\n") {
			lines = append(lines, "  "+printable(line))
		}
	} else {
		for off := 0; off < min(len(cut), 256); off += 16 {
			row := cut[off:min(off+16, len(cut))]
			lines = append(lines, fmt.Sprintf("  %04x  % x", off, row))
		}
	}
	if len(cut) < len(data) {
		lines = append(lines, styleFaint.Render(fmt.Sprintf("  … %s more (pxperf get ID %s)", humanBytes(int64(len(data)-len(cut))), flag)))
	}
	return lines
}

// printable replaces tabs by spaces and other control characters by '·',
// so that a body cannot move the cursor or change colours.
func printable(s string) string {
	s = strings.ReplaceAll(s, "\t", "    ")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '·'
		}
		return r
	}, s)
}

// rpcText describes the error of a call in one line: the status code as
// the AIPs name it, and the message.
func rpcText(err error) string {
	if errors.Is(err, io.EOF) {
		return "the server ended the stream"
	}
	if st, ok := status.FromError(err); ok {
		return codeName(st.Code()) + ": " + oneLine(st.Message())
	}
	return oneLine(err.Error())
}

// oneLine is s on one line, printable.
func oneLine(s string) string {
	return printable(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", " "), "\n", " "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// thousands formats n with thin separators: 1,234,567.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
