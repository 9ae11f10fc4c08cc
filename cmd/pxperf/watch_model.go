package main

// The state of pxperf watch and how keys, timers and answers from the
// server change it (bubbletea's model–update–view). Every RPC runs in a
// tea.Cmd, off the event loop, so a key takes effect on the next frame
// however busy the server is. The table never takes entries one by one,
// which is how the monitor keeps up with any ingest rate: while it follows
// the newest entries, a live view stream sends what changed among its rows
// at a bounded rate (watch_live.go); scrolled back, it is fetched on a
// timer.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
)

// sparkSamples is how many stats samples the sparklines show: one a second,
// the last minute.
const sparkSamples = 60

// watchConfig is what the monitor needs from its command line and its
// connection.
type watchConfig struct {
	// server is the address shown in the title.
	server string
	// refresh is the time between table refreshes.
	refresh time.Duration
	// filterText and filter are the filter to start with; filter nil is
	// every entry.
	filterText string
	filter     *pxperfv1.Filter
	// list is ListEntries; get is GetEntry (whole, with its bodies);
	// subscribe is Subscribe, for the live view.
	list      listFunc
	get       func(context.Context, uint64) (*pxperfv1.Entry, error)
	subscribe subscribeFunc
	// send hands a message to the program from outside its event loop
	// ([tea.Program.Send]): the live view's stream delivers its messages
	// with it. It may block until the program takes the message, and
	// returns at once once the program has ended.
	send func(tea.Msg)
	// unary returns the context of one call, with the --timeout deadline.
	unary func(context.Context) (context.Context, context.CancelFunc)
}

// Messages that drive the model, besides keys and window sizes.
type (
	// refreshMsg is the refresh timer firing.
	refreshMsg struct{}
	// windowMsg carries the result of a fetch of the window q.
	windowMsg struct {
		gen  uint64
		q    windowQuery
		w    watchWindow
		err  error
		took time.Duration
	}
	// detailMsg carries an entry fetched whole for the detail pane.
	detailMsg struct {
		id  uint64
		e   *pxperfv1.Entry
		err error
	}
	// statsMsg is a message of the WatchStats stream.
	statsMsg struct{ resp *pxperfv1.WatchStatsResponse }
	// statsErrMsg reports that the WatchStats stream failed; it is
	// opened again.
	statsErrMsg struct{ err error }
)

// watchModel is the monitor's state. Its methods run on bubbletea's event
// loop only.
type watchModel struct {
	// ctx bounds the RPCs the model starts in its commands: a bubbletea
	// model has no other way to hand them one.
	ctx context.Context
	cfg watchConfig

	width, height int

	// The table.
	filterText string
	filter     *pxperfv1.Filter
	gen        uint64 // the filter's generation: windows of an older one are dropped
	win        watchWindow
	loaded     bool  // win holds a fetched window of the current filter
	follow     bool  // at the tail: the newest rows, the newest selected
	selected   int   // the selected row, counted from the window's bottom row
	shift      int64 // rows to move on the next fetch (keys not yet applied)
	toOldest   bool  // Home, not yet applied
	toNewest   bool  // End, not yet applied
	fetching   bool  // a fetch is in flight
	again      bool  // fetch again when it returns: the wanted window changed
	paused     bool
	quitting   bool // q pressed: the program is ending
	listErr    error
	took       time.Duration // how long the last fetch took

	// The live view stream that feeds the table while it follows.
	viewCancel    context.CancelFunc // ends the open stream; nil when none is open
	viewGen       uint64             // the open stream's generation: messages of older ones are dropped
	viewFilterGen uint64             // the filter generation (gen) it was opened for
	viewWindow    int                // the window it was opened with
	viewLive      bool               // its first message has come: the table is its rows
	viewErr       error              // why the last stream failed, until one works
	viewBackoff   bool               // a stream failed: wait for viewRetryMsg before opening one

	// The filter bar.
	editing  bool
	input    []rune
	cursor   int // in input, in runes
	inputErr error

	// The detail pane.
	detailOpen   bool
	detailID     uint64
	detail       *pxperfv1.Entry
	detailErr    error
	detailTop    int  // first line shown
	resumeFollow bool // follow again when the pane closes

	// The header.
	stats    *pxperfv1.Stats
	statsErr error
	alerts   []*pxperfv1.Alert
	ingest   []float64 // entries/s, one a stats sample, oldest first
	memory   []float64 // share of the memory budget used
}

// newWatchModel returns the monitor's model; ctx bounds its RPCs.
func newWatchModel(ctx context.Context, cfg watchConfig) *watchModel {
	return &watchModel{
		ctx:        ctx,
		cfg:        cfg,
		filterText: cfg.filterText,
		filter:     cfg.filter,
		follow:     true,
	}
}

// Init implements tea.Model: the first window is fetched once the size of
// the terminal is known.
func (m *watchModel) Init() tea.Cmd { return m.tick() }

func (m *watchModel) tick() tea.Cmd {
	return tea.Tick(m.cfg.refresh, func(time.Time) tea.Msg { return refreshMsg{} })
}

// Update implements tea.Model.
func (m *watchModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	rows := m.rows()
	cmd := m.update(msg)
	if _, ok := msg.(tea.WindowSizeMsg); !ok && m.rows() != rows {
		// The table got taller or shorter (the detail pane, the filter's
		// error): fetch a window of its new height now.
		cmd = tea.Batch(cmd, m.fetch())
	}
	// Whatever changed (following, the filter, the height, pause, quit),
	// the live view follows it.
	return m, tea.Batch(cmd, m.syncView())
}

func (m *watchModel) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.clampDetail()
		return m.fetch()
	case refreshMsg:
		if m.paused || (m.viewLive && !m.viewShort()) {
			return m.tick()
		}
		return tea.Batch(m.tick(), m.fetch())
	case windowMsg:
		return m.applyWindow(msg)
	case viewMsg:
		return m.applyView(msg)
	case viewEndMsg:
		return m.viewEnded(msg)
	case viewRetryMsg:
		m.viewBackoff = false // Update's syncView opens the stream if it is still wanted
		return nil
	case detailMsg:
		if msg.id == m.detailID {
			if msg.err != nil {
				m.detailErr = msg.err
			} else {
				m.detail, m.detailErr = msg.e, nil
			}
			m.clampDetail()
		}
		return nil
	case statsMsg:
		m.applyStats(msg.resp)
		return nil
	case statsErrMsg:
		m.statsErr = msg.err
		return nil
	case tea.KeyPressMsg:
		if m.editing {
			return m.editKey(msg)
		}
		return m.key(msg)
	}
	return nil
}

// key handles a key press outside the filter bar.
func (m *watchModel) key(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "q", "ctrl+c":
		return m.quit()
	case "/":
		// What is typed next starts a term of its own.
		text := m.filterText
		if text != "" && !strings.HasSuffix(text, " ") {
			text += " "
		}
		m.editing, m.input, m.inputErr = true, []rune(text), nil
		m.cursor = len(m.input)
		return nil
	case "p":
		m.paused = !m.paused
		if !m.paused {
			return m.fetch()
		}
		return nil
	case "esc":
		if m.detailOpen {
			m.detailOpen, m.detail, m.detailErr = false, nil, nil
			if m.resumeFollow {
				return m.end()
			}
		}
		return nil
	case "enter":
		return m.openDetail()
	}
	if m.detailOpen {
		m.scrollDetail(k.String())
		return nil
	}
	switch k.String() {
	case "up", "k":
		return m.moveOlder(1)
	case "down", "j":
		return m.moveNewer(1)
	case "pgup", "ctrl+b":
		m.follow = false
		m.shift += int64(m.rows())
		return m.fetch()
	case "pgdown", "ctrl+f":
		if m.win.offset == 0 {
			return m.moveNewer(m.selected)
		}
		m.shift -= int64(m.rows())
		return m.fetch()
	case "home", "g":
		m.follow, m.toOldest, m.toNewest, m.shift = false, true, false, 0
		return m.fetch()
	case "end", "G":
		return m.end()
	}
	return nil
}

// quit ends the program; Update's syncView closes the live view.
func (m *watchModel) quit() tea.Cmd {
	m.quitting = true
	return tea.Quit
}

// end goes to the tail and follows it.
func (m *watchModel) end() tea.Cmd {
	m.follow, m.toNewest, m.toOldest, m.shift, m.selected = true, true, false, 0, 0
	return m.fetch()
}

// moveOlder moves the selection n rows up the screen (towards older
// entries), scrolling when it leaves the window.
func (m *watchModel) moveOlder(n int) tea.Cmd {
	if !m.loaded || len(m.win.entries) == 0 {
		return nil
	}
	m.follow = false
	top := len(m.win.entries) - 1
	if m.selected+n <= top {
		m.selected += n
		return nil
	}
	m.shift += int64(m.selected + n - top)
	m.selected = top
	return m.fetch()
}

// moveNewer moves the selection n rows down the screen (towards newer
// entries), scrolling when it leaves the window; reaching the newest entry
// follows the tail again.
func (m *watchModel) moveNewer(n int) tea.Cmd {
	if !m.loaded {
		return nil
	}
	if m.selected >= n {
		m.selected -= n
		if m.selected == 0 && m.win.offset == 0 && !m.paused {
			m.follow = true
		}
		return nil
	}
	n -= m.selected
	m.selected = 0
	if m.win.offset == 0 {
		if !m.paused {
			m.follow = true
		}
		return nil
	}
	m.shift -= int64(n)
	return m.fetch()
}

// rows is the height of the table's window.
func (m *watchModel) rows() int {
	rows, _ := m.layout()
	return rows
}

// fetch starts fetching the window the model wants, or notes that it must
// be fetched again when the fetch in flight returns: one fetch at a time,
// so a slow server makes the table refresh less often, never queue up.
func (m *watchModel) fetch() tea.Cmd {
	rows := m.rows()
	if rows < 1 {
		return nil
	}
	if m.fetching {
		m.again = true
		return nil
	}
	q := windowQuery{filter: m.filter, rows: rows, offset: m.win.offset, shift: m.shift, oldest: m.toOldest}
	switch {
	case m.toOldest:
	case m.toNewest || (m.follow && !m.paused):
		q.offset, q.shift = 0, 0
	case len(m.win.entries) > 0:
		// Hold: the bottom row stays where it is, wherever new entries
		// push it in the view; when the window got shorter (the detail
		// pane opened), the bottom row moves up as far as needed to keep
		// the selected row in it.
		q.anchor = m.win.entries[max(0, min(m.selected-rows+1, len(m.win.entries)-1))].GetId()
	}
	m.shift, m.toOldest, m.toNewest = 0, false, false
	m.fetching = true
	ctx, cfg, gen := m.ctx, m.cfg, m.gen
	return func() tea.Msg {
		ctx, cancel := cfg.unary(ctx)
		defer cancel()
		start := time.Now()
		w, err := fetchWindow(ctx, cfg.list, q)
		return windowMsg{gen: gen, q: q, w: w, err: err, took: time.Since(start)}
	}
}

// applyWindow shows a fetched window and keeps the selection on its entry
// where that entry is still in view. While the live view feeds the table,
// the window only fills the view's rows.
func (m *watchModel) applyWindow(msg windowMsg) tea.Cmd {
	m.fetching = false
	if m.viewLive {
		// The live view feeds the table; a window fetched at the tail
		// fills it where it is short, and the view's errors are its own.
		if msg.gen == m.gen && msg.err == nil {
			m.fillView(msg.w)
		}
	} else if msg.gen == m.gen {
		if msg.err != nil {
			m.listErr = msg.err
		} else {
			selectedID := m.selectedID()
			m.win, m.loaded, m.listErr, m.took = msg.w, true, nil, msg.took
			switch {
			case msg.q.oldest:
				m.selected = len(m.win.entries) - 1
			case m.follow && msg.q.anchor == 0 && msg.q.offset == 0:
				m.selected = 0
			case msg.q.shift == 0:
				if i := slices.IndexFunc(m.win.entries, func(e *pxperfv1.Entry) bool { return e.GetId() == selectedID }); i >= 0 {
					m.selected = i
				}
			}
			m.selected = max(0, min(m.selected, len(m.win.entries)-1))
			if msg.q.shift < 0 && m.win.offset == 0 && m.selected == 0 && !m.paused {
				m.follow = true // scrolled down to the tail
			}
		}
	}
	if m.again {
		m.again = false
		return m.fetch()
	}
	return nil
}

// selectedID is the id of the selected entry; 0 when there is none.
func (m *watchModel) selectedID() uint64 {
	if m.selected < 0 || m.selected >= len(m.win.entries) {
		return 0
	}
	return m.win.entries[m.selected].GetId()
}

// editKey handles a key press in the filter bar.
func (m *watchModel) editKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "ctrl+c":
		return m.quit()
	case "esc":
		m.editing, m.inputErr = false, nil
	case "enter":
		text := string(m.input)
		f, err := filter.Parse(text)
		if err != nil {
			m.inputErr = err // the filter in force stays
			return nil
		}
		m.editing, m.inputErr = false, nil
		m.filterText, m.filter = text, f
		m.gen++
		m.win, m.loaded, m.listErr = watchWindow{}, false, nil
		m.detailOpen, m.detail = false, nil
		return m.end()
	case "backspace":
		if m.cursor > 0 {
			m.input = slices.Delete(m.input, m.cursor-1, m.cursor)
			m.cursor--
		}
	case "delete", "ctrl+d":
		if m.cursor < len(m.input) {
			m.input = slices.Delete(m.input, m.cursor, m.cursor+1)
		}
	case "left", "ctrl+b":
		m.cursor = max(m.cursor-1, 0)
	case "right", "ctrl+f":
		m.cursor = min(m.cursor+1, len(m.input))
	case "home", "ctrl+a":
		m.cursor = 0
	case "end", "ctrl+e":
		m.cursor = len(m.input)
	case "ctrl+u":
		m.input, m.cursor = m.input[:0], 0
	default:
		if k.Text == "" {
			return nil
		}
		r := []rune(k.Text)
		m.input = slices.Insert(m.input, m.cursor, r...)
		m.cursor += len(r)
	}
	return nil
}

// openDetail opens the detail pane on the selected entry: at once with
// what the table has, then whole (headers, body) from GetEntry. The table
// holds its place while the pane is open.
func (m *watchModel) openDetail() tea.Cmd {
	id := m.selectedID()
	if id == 0 {
		return nil
	}
	if !m.detailOpen {
		m.resumeFollow = m.follow
	}
	m.follow = false
	m.detailOpen, m.detailID, m.detail, m.detailErr, m.detailTop = true, id, m.win.entries[m.selected], nil, 0
	ctx, cfg := m.ctx, m.cfg
	return func() tea.Msg {
		ctx, cancel := cfg.unary(ctx)
		defer cancel()
		e, err := cfg.get(ctx, id)
		return detailMsg{id: id, e: e, err: err}
	}
}

// scrollDetail scrolls the detail pane.
func (m *watchModel) scrollDetail(key string) {
	_, page := m.layout()
	switch key {
	case "up", "k":
		m.detailTop--
	case "down", "j":
		m.detailTop++
	case "pgup", "ctrl+b":
		m.detailTop -= max(page-1, 1)
	case "pgdown", "ctrl+f", "space":
		m.detailTop += max(page-1, 1)
	case "home", "g":
		m.detailTop = 0
	case "end", "G":
		m.detailTop = len(m.detailLines())
	}
	m.clampDetail()
}

// clampDetail keeps the detail pane's first line in range.
func (m *watchModel) clampDetail() {
	_, page := m.layout()
	m.detailTop = max(0, min(m.detailTop, len(m.detailLines())-page))
}

// applyStats takes a WatchStats message into the header.
func (m *watchModel) applyStats(resp *pxperfv1.WatchStatsResponse) {
	switch ev := resp.GetEvent().(type) {
	case *pxperfv1.WatchStatsResponse_Stats:
		s := ev.Stats
		m.stats, m.statsErr, m.alerts = s, nil, s.GetActiveAlerts()
		m.ingest = appendSample(m.ingest, s.GetThrottle().GetIngestRate())
		m.memory = appendSample(m.memory, memoryShare(s))
	case *pxperfv1.WatchStatsResponse_Alert:
		a := ev.Alert
		m.alerts = slices.DeleteFunc(slices.Clone(m.alerts), func(x *pxperfv1.Alert) bool { return x.GetName() == a.GetName() })
		if a.GetState() == pxperfv1.AlertState_ALERT_STATE_FIRING {
			m.alerts = append(m.alerts, a)
		}
	}
}

// memoryShare is the share of the memory budget in use as the monitor
// scores it: max(RSS, store bytes) / budget.
func memoryShare(s *pxperfv1.Stats) float64 {
	budget := s.GetStore().GetBudgetBytes()
	if budget == 0 {
		return 0
	}
	return float64(max(s.GetProcess().GetRssBytes(), s.GetStore().GetBytes())) / float64(budget)
}

// appendSample appends v to the samples, keeping the last sparkSamples.
func appendSample(samples []float64, v float64) []float64 {
	samples = append(samples, v)
	if n := len(samples); n > sparkSamples {
		samples = slices.Delete(samples, 0, n-sparkSamples)
	}
	return samples
}

// syntaxError returns err as a filter syntax error, if it is one.
func syntaxError(err error) (*filter.SyntaxError, bool) {
	return errors.AsType[*filter.SyntaxError](err)
}
