package main

// The live view of pxperf watch: while the table follows the newest
// entries, one Subscribe stream with live_view feeds it, and the server
// sends what changed among the rows on screen, paced by its throttle,
// instead of the monitor asking for them on a timer. Scrolled back, the
// table reads windows with ListEntries (watch_window.go); while the stream
// is down it does so at the tail too, until the stream is open again.

import (
	"cmp"
	"context"
	"errors"
	"io"
	"iter"
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// subscribeFunc is Subscribe: [client.Client.Subscribe], or a fake in
// tests.
type subscribeFunc func(context.Context, *pxperfv1.SubscribeRequest) iter.Seq2[*pxperfv1.SubscribeResponse, error]

// maxViewWindow is the largest LiveView.window the server accepts.
var maxViewWindow = contractMax(&pxperfv1.LiveView{}, "window")

// viewRetry is how long after the live view fails it is opened again; the
// table is polled meanwhile.
const viewRetry = time.Second

// errNoLiveView reports a server that answered a live view request as an
// ordinary subscription: one older than live views, which ignores the
// field it does not know.
var errNoLiveView = errors.New("the server does not support live views")

// Messages of the live view.
type (
	// viewMsg is a message of the live view stream of generation gen.
	viewMsg struct {
		gen uint64
		v   *pxperfv1.ViewUpdate
	}
	// viewEndMsg reports that the live view stream of generation gen
	// ended, and why.
	viewEndMsg struct {
		gen uint64
		err error
	}
	// viewRetryMsg is the time to open the live view again after it
	// failed.
	viewRetryMsg struct{}
)

// viewRate is the max_updates_per_second asked of the live view: a
// message every refresh, and at least one a second, the fewest the field
// can ask for.
func viewRate(refresh time.Duration) uint32 {
	return uint32(max(1, time.Second/refresh))
}

// viewLoop reads a live view stream, sending each message to send as a
// viewMsg of generation gen, and returns a viewEndMsg saying why the
// stream ended. It runs as a tea.Cmd, off the event loop, until the stream
// fails or ctx ends.
func viewLoop(ctx context.Context, subscribe subscribeFunc, req *pxperfv1.SubscribeRequest, gen uint64, send func(tea.Msg)) tea.Msg {
	err := io.EOF // a stream that just ends was ended by the server
	for resp, rerr := range subscribe(ctx, req) {
		if rerr != nil {
			err = rerr
			break
		}
		v := resp.GetView()
		if v == nil {
			err = errNoLiveView
			break
		}
		send(viewMsg{gen: gen, v: v})
	}
	return viewEndMsg{gen: gen, err: err}
}

// wantView returns the window the live view should have now, or 0 when no
// stream should run: one runs while the table follows the newest entries.
func (m *watchModel) wantView() int {
	if !m.follow || m.paused || m.quitting {
		return 0
	}
	return min(max(m.rows(), 0), maxViewWindow)
}

// syncView opens, opens again or closes the live view stream so that it
// matches the model: the filter in force and the rows on screen. After a
// failure it waits for viewRetryMsg before opening one.
func (m *watchModel) syncView() tea.Cmd {
	window := m.wantView()
	if m.viewCancel != nil && (window == 0 || m.viewFilterGen != m.gen || m.viewWindow != window) {
		m.closeView()
	}
	if window == 0 || m.viewCancel != nil || m.viewBackoff {
		return nil
	}
	ctx, cancel := context.WithCancel(m.ctx)
	m.viewGen++
	m.viewCancel, m.viewFilterGen, m.viewWindow = cancel, m.gen, window
	req := &pxperfv1.SubscribeRequest{
		Filter:              m.filter,
		LiveView:            &pxperfv1.LiveView{Window: uint32(window)},
		MaxUpdatesPerSecond: viewRate(m.cfg.refresh),
	}
	subscribe, send, gen := m.cfg.subscribe, m.cfg.send, m.viewGen
	return func() tea.Msg { return viewLoop(ctx, subscribe, req, gen, send) }
}

// closeView ends the live view stream; its messages still on their way
// are dropped.
func (m *watchModel) closeView() {
	if m.viewCancel != nil {
		m.viewCancel()
	}
	m.viewCancel, m.viewLive = nil, false
	m.viewGen++
}

// current reports whether a message of the live view of generation gen
// is of the stream open now.
func (m *watchModel) current(gen uint64) bool {
	return m.viewCancel != nil && gen == m.viewGen
}

// viewEnded takes the end of the live view stream: the table is polled,
// and the stream opened again after viewRetry.
func (m *watchModel) viewEnded(msg viewEndMsg) tea.Cmd {
	if !m.current(msg.gen) {
		return nil
	}
	m.closeView()
	m.viewErr, m.viewBackoff = msg.err, true
	retry := tea.Tick(viewRetry, func(time.Time) tea.Msg { return viewRetryMsg{} })
	return tea.Batch(retry, m.fetch())
}

// applyView takes a message of the live view into the table: its entries
// go on top of the rows, its updates replace rows by id, and the rows are
// cut to the window and the total. The first message of a stream holds
// the window whole.
func (m *watchModel) applyView(msg viewMsg) tea.Cmd {
	if !m.current(msg.gen) {
		return nil
	}
	v := msg.v
	rows := m.win.entries
	if !m.viewLive {
		rows = nil
	}
	if last := v.GetSkippedLastId(); last != 0 {
		// More arrived than the window holds: the rows older than the
		// skipped ones no longer join the new ones, so they go. The
		// message's entries fill the window unless their size cut it
		// short; then ListEntries fills it (below).
		rows = slices.DeleteFunc(slices.Clone(rows), func(e *pxperfv1.Entry) bool { return e.GetId() <= last })
	}
	// Updates are of entries in the window: one with no row came to
	// match, and is added.
	rows = mergeRows(mergeRows(rows, v.GetEntries()), v.GetUpdates())
	m.win = watchWindow{entries: capRows(rows, m.viewWindow, v.GetTotal()), total: v.GetTotal()}
	m.loaded, m.viewLive, m.viewErr, m.listErr, m.selected = true, true, nil, nil, 0
	if m.viewShort() {
		return m.fetch()
	}
	return nil
}

// viewShort reports whether the live view's rows are fewer than the
// window and the view hold: rows were dropped around skipped entries, and
// a window fetched with ListEntries fills them.
func (m *watchModel) viewShort() bool {
	return m.viewLive && uint64(len(m.win.entries)) < min(uint64(m.viewWindow), m.win.total)
}

// fillView merges a window fetched at the tail into the live view's rows.
// A window older than every row is dropped, since entries may lie between
// it and the rows; a window elsewhere is not the newest, so it is dropped
// too.
func (m *watchModel) fillView(w watchWindow) {
	rows := m.win.entries
	if w.offset != 0 || len(w.entries) == 0 || (len(rows) > 0 && w.entries[0].GetId() < rows[len(rows)-1].GetId()) {
		return
	}
	m.win.entries = capRows(mergeRows(rows, w.entries), m.viewWindow, m.win.total)
}

// mergeRows returns rows, newest first, with the entries of in put in by
// id: an entry replaces the row with its id, unless it is pending and the
// row is not (the row is then the later state), and is added where there
// is none.
func mergeRows(rows, in []*pxperfv1.Entry) []*pxperfv1.Entry {
	out := slices.Clone(rows)
	at := make(map[uint64]int, len(out)+len(in))
	for i, e := range out {
		at[e.GetId()] = i
	}
	for _, e := range in {
		i, ok := at[e.GetId()]
		switch {
		case !ok:
			at[e.GetId()] = len(out)
			out = append(out, e)
		case !pending(e) || pending(out[i]):
			out[i] = e
		}
	}
	slices.SortFunc(out, func(a, b *pxperfv1.Entry) int { return cmp.Compare(b.GetId(), a.GetId()) })
	return out
}

// pending reports whether e has not completed or failed yet.
func pending(e *pxperfv1.Entry) bool {
	return e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING
}

// capRows cuts rows, newest first, to the window and to the view's total:
// fewer matching entries than rows held means the oldest rows left memory.
func capRows(rows []*pxperfv1.Entry, window int, total uint64) []*pxperfv1.Entry {
	n := min(uint64(len(rows)), uint64(max(window, 0)), total)
	return rows[:n]
}
