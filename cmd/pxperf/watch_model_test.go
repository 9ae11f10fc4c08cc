package main

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
)

// The model of pxperf watch is tested here without a terminal: a
// modelRun plays bubbletea's part, fakes serve ListEntries and Subscribe,
// and the tests read the model and what it draws.

// modelRun drives a watchModel as bubbletea does: commands run in
// goroutines, and their messages, and those the live view sends, go
// through Update one at a time. It runs in a synctest bubble, so that the
// refresh timer and the retry delay run on the bubble's clock and settle
// knows when every command is waiting.
type modelRun struct {
	t    *testing.T
	m    *watchModel
	msgs chan tea.Msg  // messages on their way to Update
	done chan struct{} // closed at the end: messages on their way are dropped
	stop context.CancelFunc

	mu      sync.Mutex // guards what follows: commands use them
	store   fakeView   // what ListEntries serves
	lists   int        // ListEntries calls
	streams []*fakeStream
	quit    bool // tea.Quit came
}

// fakeStream is a Subscribe stream that the test feeds.
type fakeStream struct {
	ctx context.Context
	req *pxperfv1.SubscribeRequest
	c   chan streamItem
}

// streamItem is what a fakeStream yields next: a message, an error, or
// (end) a clean end.
type streamItem struct {
	resp *pxperfv1.SubscribeResponse
	err  error
	end  bool
}

// termHeight is the height of the model's terminal in these tests;
// tableRows is the height of its table then.
const termHeight, tableRows = 30, 30 - 7

// newModelRun starts a model on a 120 x termHeight terminal whose server
// holds the entries of store, and stops it when the test ends. It must be
// called in a synctest bubble.
func newModelRun(t *testing.T, cfg watchConfig, store fakeView) *modelRun {
	ctx, stop := context.WithTimeout(t.Context(), time.Hour)
	r := &modelRun{t: t, msgs: make(chan tea.Msg), done: make(chan struct{}), stop: stop, store: store}
	if cfg.refresh == 0 {
		cfg.refresh = 250 * time.Millisecond
	}
	cfg.list, cfg.get, cfg.subscribe, cfg.send = r.list, r.get, r.subscribe, r.deliver
	cfg.unary = func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, 10*time.Second)
	}
	r.m = newWatchModel(ctx, cfg)
	t.Cleanup(r.close)
	r.run(r.m.Init())
	r.update(tea.WindowSizeMsg{Width: 120, Height: termHeight})
	r.settle()
	return r
}

// close stops the model's RPCs and drops the messages on their way, so
// that every goroutine of the run ends: the timers' commands, which
// nothing cancels, once their time has come.
func (r *modelRun) close() {
	r.stop()
	close(r.done)
	time.Sleep(max(r.m.cfg.refresh, viewRetry))
}

// deliver hands msg to Update, as tea.Program.Send does.
func (r *modelRun) deliver(msg tea.Msg) {
	select {
	case r.msgs <- msg:
	case <-r.done:
	}
}

// run runs a command in a goroutine, as bubbletea does.
func (r *modelRun) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		if msg := cmd(); msg != nil {
			r.deliver(msg)
		}
	}()
}

// update passes msg to the model and runs the command it returns.
func (r *modelRun) update(msg tea.Msg) {
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, cmd := range msg {
			r.run(cmd)
		}
	case tea.QuitMsg:
		r.mu.Lock()
		r.quit = true
		r.mu.Unlock()
	default:
		_, cmd := r.m.Update(msg)
		r.run(cmd)
	}
}

// settle passes messages to the model until every command waits for
// something other than the model.
func (r *modelRun) settle() {
	for {
		synctest.Wait()
		select {
		case msg := <-r.msgs:
			r.update(msg)
		default:
			return
		}
	}
}

// waitStep is how often wait lets the model take its messages: the
// refresh timer is armed again only once its message is taken.
const waitStep = 10 * time.Millisecond

// wait lets d pass on the bubble's clock, settling as it goes.
func (r *modelRun) wait(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(min(waitStep, time.Until(end)))
		r.settle()
	}
}

// press types keys: "text" types text, anything else is a key's name as
// tea.Key.String gives it.
func (r *modelRun) press(keys ...string) {
	named := map[string]rune{"up": tea.KeyUp, "pgup": tea.KeyPgUp, "home": tea.KeyHome, "end": tea.KeyEnd,
		"enter": tea.KeyEnter, "esc": tea.KeyEscape}
	for _, k := range keys {
		if code, ok := named[k]; ok {
			r.update(tea.KeyPressMsg{Code: code})
		} else {
			for _, c := range k {
				r.update(tea.KeyPressMsg{Code: c, Text: string(c)})
			}
		}
		r.settle()
	}
}

func (r *modelRun) list(_ context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists++
	return r.store.list(context.Background(), req)
}

func (r *modelRun) get(_ context.Context, id uint64) (*pxperfv1.Entry, error) {
	return &pxperfv1.Entry{Id: id}, nil
}

// subscribe opens a fakeStream, which ends with codes.Canceled when ctx
// ends, as a client's stream does.
func (r *modelRun) subscribe(ctx context.Context, req *pxperfv1.SubscribeRequest) iter.Seq2[*pxperfv1.SubscribeResponse, error] {
	return func(yield func(*pxperfv1.SubscribeResponse, error) bool) {
		s := &fakeStream{ctx: ctx, req: req, c: make(chan streamItem)}
		r.mu.Lock()
		r.streams = append(r.streams, s)
		r.mu.Unlock()
		for {
			select {
			case <-ctx.Done():
				yield(nil, status.FromContextError(ctx.Err()).Err())
				return
			case it := <-s.c:
				if it.end || !yield(it.resp, it.err) || it.err != nil {
					return
				}
			}
		}
	}
}

// listCalls returns the number of ListEntries calls so far.
func (r *modelRun) listCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lists
}

// opened returns the streams opened so far, oldest first.
func (r *modelRun) opened() []*fakeStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.streams)
}

// stream returns the stream opened last, failing the test when there is
// none or it has ended.
func (r *modelRun) stream() *fakeStream {
	r.t.Helper()
	ss := r.opened()
	if len(ss) == 0 {
		r.t.Fatal("no Subscribe stream opened")
	}
	s := ss[len(ss)-1]
	if s.ctx.Err() != nil {
		r.t.Fatalf("the last Subscribe stream was closed: %v", s.ctx.Err())
	}
	return s
}

// feed makes the open stream yield it, and settles.
func (r *modelRun) feed(it streamItem) {
	r.t.Helper()
	s := r.stream()
	s.c <- it
	r.settle()
}

// view makes the open stream send v.
func (r *modelRun) view(v *pxperfv1.ViewUpdate) {
	r.t.Helper()
	r.feed(streamItem{resp: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_View{View: v}}})
}

// rows returns the ids of the table's rows, newest first.
func (r *modelRun) rows() []uint64 { return entryIDs(r.m.win.entries) }

// ids returns the entries with ids from hi down to lo, completed.
func ids(hi, lo uint64) []*pxperfv1.Entry {
	var es []*pxperfv1.Entry
	for id := hi; id >= lo && id > 0; id-- {
		es = append(es, &pxperfv1.Entry{Id: id, State: pxperfv1.EntryState_ENTRY_STATE_COMPLETED, StatusCode: 200})
	}
	return es
}

// descendingIDs returns the ids from hi down to lo.
func descendingIDs(hi, lo uint64) []uint64 { return entryIDs(ids(hi, lo)) }

// withState returns e with state s.
func withState(e *pxperfv1.Entry, s pxperfv1.EntryState) *pxperfv1.Entry {
	e.State = s
	if s == pxperfv1.EntryState_ENTRY_STATE_PENDING {
		e.StatusCode = 0
	}
	return e
}

// TestWatchLiveView feeds the live view messages and checks the table's
// rows, its count, and that ListEntries is asked only to fill a window cut
// short.
func TestWatchLiveView(t *testing.T) {
	pending := pxperfv1.EntryState_ENTRY_STATE_PENDING
	evenIDs := func(hi, lo uint64) []*pxperfv1.Entry {
		return slices.DeleteFunc(ids(hi, lo), func(e *pxperfv1.Entry) bool { return e.GetId()%2 != 0 })
	}
	tests := []struct {
		name  string
		store fakeView // what ListEntries serves
		views []*pxperfv1.ViewUpdate
		want  []uint64 // ids of the rows, newest first
		// wantTotal is the count shown; wantLists the ListEntries calls
		// once the view is live.
		wantTotal uint64
		wantLists int
		check     func(t *testing.T, rows []*pxperfv1.Entry)
	}{
		{name: "the first message holds the window", store: fakeView{first: 1, last: 400},
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 478), Total: 500, NewestId: 500}},
			want:  descendingIDs(500, 478), wantTotal: 500},
		{name: "new entries go on top, cut to the window",
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 478), Total: 500}, {Entries: ids(505, 501), Total: 505}},
			want:  descendingIDs(505, 483), wantTotal: 505},
		{name: "updates replace rows by id",
			views: []*pxperfv1.ViewUpdate{
				{Entries: append(ids(500, 491), append([]*pxperfv1.Entry{withState(ids(490, 490)[0], pending)}, ids(489, 478)...)...), Total: 500},
				{Updates: ids(490, 490), Total: 500},
			},
			want: descendingIDs(500, 478), wantTotal: 500,
			check: func(t *testing.T, rows []*pxperfv1.Entry) {
				if e := rows[10]; e.GetId() != 490 || e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetStatusCode() != 200 {
					t.Errorf("row 490 is %v, want it completed with 200", e)
				}
			}},
		{name: "an update that came to match joins the rows it is among",
			views: []*pxperfv1.ViewUpdate{
				{Entries: evenIDs(500, 456), Total: 250},
				{Updates: append(ids(477, 477), ids(401, 401)...), Total: 252},
			},
			want: append(entryIDs(evenIDs(500, 478)), append([]uint64{477}, entryIDs(evenIDs(476, 458))...)...), wantTotal: 252},
		{name: "an update older than every row joins rows that hold the whole view",
			views: []*pxperfv1.ViewUpdate{
				{Entries: append(ids(100, 100), ids(90, 90)...), Total: 2},
				{Updates: ids(50, 50), Total: 3},
			},
			want: []uint64{100, 90, 50}, wantTotal: 3},
		{name: "skipped entries with a whole window",
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 478), Total: 500},
				{Entries: ids(700, 678), Total: 700, SkippedFirstId: 501, SkippedLastId: 677}},
			want: descendingIDs(700, 678), wantTotal: 700},
		{name: "skipped entries with a window cut short by size: ListEntries fills it", store: fakeView{first: 1, last: 700},
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 478), Total: 500},
				{Entries: ids(700, 695), Total: 700, SkippedFirstId: 501, SkippedLastId: 694}},
			want: descendingIDs(700, 678), wantTotal: 700, wantLists: 1},
		{name: "a first message cut short by size: ListEntries fills it", store: fakeView{first: 1, last: 500},
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 490), Total: 500}},
			want:  descendingIDs(500, 478), wantTotal: 500, wantLists: 1},
		{name: "fewer matching entries than the window",
			views: []*pxperfv1.ViewUpdate{{Entries: ids(5, 1), Total: 5}},
			want:  descendingIDs(5, 1), wantTotal: 5},
		{name: "no matching entries",
			views: []*pxperfv1.ViewUpdate{{Total: 0, NewestId: 500}},
			want:  []uint64{}, wantTotal: 0},
		{name: "a heartbeat keeps the rows",
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 478), Total: 500}, {Total: 500, NewestId: 510}},
			want:  descendingIDs(500, 478), wantTotal: 500},
		{name: "the oldest rows go when the total falls under the window",
			views: []*pxperfv1.ViewUpdate{{Entries: ids(500, 478), Total: 500}, {Total: 10, NewestId: 500}},
			want:  descendingIDs(500, 491), wantTotal: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := tt.store
				if store.last == 0 {
					store = fakeView{first: 1, last: 500}
				}
				r := newModelRun(t, watchConfig{}, store)
				lists := r.listCalls()
				r.view(tt.views[0])
				for _, v := range tt.views[1:] {
					r.view(v)
				}
				r.wait(10 * r.m.cfg.refresh) // the table is not polled
				if got := r.rows(); !slices.Equal(got, tt.want) {
					t.Errorf("rows %v, want %v", got, tt.want)
				}
				if r.m.win.total != tt.wantTotal {
					t.Errorf("total %d, want %d", r.m.win.total, tt.wantTotal)
				}
				if got := r.listCalls() - lists; got != tt.wantLists {
					t.Errorf("%d ListEntries calls while live, want %d", got, tt.wantLists)
				}
				if r.m.selected != 0 || !r.m.follow || !r.m.viewLive {
					t.Errorf("selected %d, follow %t, live %t; want the newest row selected, following, live", r.m.selected, r.m.follow, r.m.viewLive)
				}
				screen := r.m.render()
				if want := fmt.Sprintf("of %s ", thousands(tt.wantTotal)); !strings.Contains(screen, want) || !strings.Contains(screen, "table live, up to 4/s") {
					t.Errorf("screen does not show %q and the live table:\n%s", want, screen)
				}
				if tt.check != nil {
					tt.check(t, r.m.win.entries)
				}
			})
		})
	}
}

// TestWatchLiveViewRequest checks the Subscribe request of the live view.
func TestWatchLiveViewRequest(t *testing.T) {
	f, err := filter.Parse("status:>=500")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		refresh time.Duration
		filter  *pxperfv1.Filter
		want    *pxperfv1.SubscribeRequest
	}{
		{name: "default refresh", refresh: 250 * time.Millisecond,
			want: &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: tableRows}, MaxUpdatesPerSecond: 4}},
		{name: "fastest refresh, with a filter", refresh: 50 * time.Millisecond, filter: f,
			want: &pxperfv1.SubscribeRequest{Filter: f, LiveView: &pxperfv1.LiveView{Window: tableRows}, MaxUpdatesPerSecond: 20}},
		{name: "refresh not dividing a second", refresh: 300 * time.Millisecond,
			want: &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: tableRows}, MaxUpdatesPerSecond: 3}},
		{name: "refresh longer than a second", refresh: 10 * time.Second,
			want: &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: tableRows}, MaxUpdatesPerSecond: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newModelRun(t, watchConfig{refresh: tt.refresh, filter: tt.filter}, fakeView{first: 1, last: 100})
				if diff := cmp.Diff(r.stream().req, tt.want, protocmp.Transform()); diff != "" {
					t.Errorf("request (-got +want):\n%s", diff)
				}
				if n := len(r.opened()); n != 1 {
					t.Errorf("%d streams opened, want 1", n)
				}
			})
		})
	}
}

// TestWatchLiveViewStops leaves the tail in each way there is: the stream
// closes, a message of it still on its way is dropped, and the table is
// polled, except when paused or quitting; coming back opens a new stream.
func TestWatchLiveViewStops(t *testing.T) {
	tests := []struct {
		name     string
		keys     []string
		wantPoll bool     // ListEntries is polled afterwards
		wantQuit bool     // the program ends instead
		back     []string // keys that follow the tail again; none: it does not
	}{
		{name: "up", keys: []string{"up"}, wantPoll: true, back: []string{"end"}},
		{name: "page up", keys: []string{"pgup"}, wantPoll: true, back: []string{"end"}},
		{name: "home", keys: []string{"home"}, wantPoll: true, back: []string{"end"}},
		{name: "detail pane", keys: []string{"enter"}, wantPoll: true, back: []string{"esc"}},
		{name: "pause", keys: []string{"p"}, back: []string{"p"}},
		{name: "quit", keys: []string{"q"}, wantQuit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newModelRun(t, watchConfig{}, fakeView{first: 1, last: 500})
				r.view(&pxperfv1.ViewUpdate{Entries: ids(500, 478), Total: 500})
				s, gen := r.stream(), r.m.viewGen
				r.press(tt.keys...)
				if s.ctx.Err() == nil || r.m.viewLive {
					t.Fatalf("after %v the stream is open (live %t)", tt.keys, r.m.viewLive)
				}
				rows := r.rows()
				r.update(viewMsg{gen: gen, v: &pxperfv1.ViewUpdate{Entries: ids(600, 578), Total: 600}})
				if got := r.rows(); !slices.Equal(got, rows) {
					t.Errorf("a message of the closed stream changed the rows to %v", got)
				}
				if r.quit != tt.wantQuit {
					t.Errorf("quit %t, want %t", r.quit, tt.wantQuit)
				}
				if tt.wantQuit {
					return // the program ends: nothing else happens
				}
				lists := r.listCalls()
				r.wait(3 * r.m.cfg.refresh)
				if polled := r.listCalls() > lists; polled != tt.wantPoll {
					t.Errorf("ListEntries polled: %t, want %t", polled, tt.wantPoll)
				}
				if n := len(r.opened()); n != 1 {
					t.Errorf("%d streams opened, want 1", n)
				}
				r.press(tt.back...)
				if n := len(r.opened()); n != 2 {
					t.Fatalf("after %v, %d streams opened, want 2", tt.back, n)
				}
				if diff := cmp.Diff(r.stream().req, s.req, protocmp.Transform()); diff != "" {
					t.Errorf("new request (-got +want):\n%s", diff)
				}
				r.view(&pxperfv1.ViewUpdate{Entries: ids(520, 498), Total: 520})
				if got, want := r.rows(), descendingIDs(520, 498); !slices.Equal(got, want) || r.m.selected != 0 {
					t.Errorf("rows %v, selected %d; want %v, 0", got, r.m.selected, want)
				}
			})
		})
	}
}

// TestWatchLiveViewReopens changes what the live view is for: the stream
// closes, a new one opens with the new filter or window, and a message of
// the old one still on its way is dropped.
func TestWatchLiveViewReopens(t *testing.T) {
	f, err := filter.Parse("status:>=500")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msgs []tea.Msg
		keys []string
		want *pxperfv1.SubscribeRequest
	}{
		{name: "filter", keys: []string{"/", "status:>=500", "enter"},
			want: &pxperfv1.SubscribeRequest{Filter: f, LiveView: &pxperfv1.LiveView{Window: tableRows}, MaxUpdatesPerSecond: 4}},
		{name: "shorter terminal", msgs: []tea.Msg{tea.WindowSizeMsg{Width: 120, Height: termHeight - 10}},
			want: &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: tableRows - 10}, MaxUpdatesPerSecond: 4}},
		{name: "taller than the largest window", msgs: []tea.Msg{tea.WindowSizeMsg{Width: 120, Height: 5000}},
			want: &pxperfv1.SubscribeRequest{LiveView: &pxperfv1.LiveView{Window: uint32(maxViewWindow)}, MaxUpdatesPerSecond: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newModelRun(t, watchConfig{}, fakeView{first: 1, last: 500})
				r.view(&pxperfv1.ViewUpdate{Entries: ids(500, 478), Total: 500})
				s, gen := r.stream(), r.m.viewGen
				for _, msg := range tt.msgs {
					r.update(msg)
				}
				r.settle()
				r.press(tt.keys...)
				if s.ctx.Err() == nil {
					t.Fatal("the old stream is still open")
				}
				if n := len(r.opened()); n != 2 {
					t.Fatalf("%d streams opened, want 2", n)
				}
				if diff := cmp.Diff(r.stream().req, tt.want, protocmp.Transform()); diff != "" {
					t.Errorf("new request (-got +want):\n%s", diff)
				}
				r.update(viewMsg{gen: gen, v: &pxperfv1.ViewUpdate{Entries: ids(600, 578), Total: 600}})
				if slices.Contains(r.rows(), 600) {
					t.Errorf("a message of the old stream made it to the rows: %v", r.rows())
				}
				r.view(&pxperfv1.ViewUpdate{Entries: ids(510, 501), Total: 10})
				if got, want := r.rows(), descendingIDs(510, 501); !slices.Equal(got, want) || r.m.win.total != 10 {
					t.Errorf("rows %v, total %d; want %v, 10", got, r.m.win.total, want)
				}
			})
		})
	}
}

// TestWatchLiveViewFallback fails the live view in each way it can: the
// table is polled with ListEntries, the error shows, and a second later a
// new stream opens; once it works, polling stops and the error goes.
func TestWatchLiveViewFallback(t *testing.T) {
	tests := []struct {
		name    string
		live    bool // the stream fails after its first message
		fail    streamItem
		wantErr string // in the key line
	}{
		{name: "connection lost", live: true, fail: streamItem{err: status.Error(codes.Unavailable, "connection refused")},
			wantErr: "live view: UNAVAILABLE: connection refused (polling)"},
		{name: "refused at once", fail: streamItem{err: status.Error(codes.InvalidArgument, "live_view: unknown")},
			wantErr: "live view: INVALID_ARGUMENT: live_view: unknown (polling)"},
		{name: "the server ends the stream", live: true, fail: streamItem{end: true},
			wantErr: "live view: the server ended the stream (polling)"},
		{name: "a server without live views", fail: streamItem{resp: &pxperfv1.SubscribeResponse{
			Event: &pxperfv1.SubscribeResponse_Progress{Progress: &pxperfv1.Progress{NextId: 501}}}},
			wantErr: "live view: " + errNoLiveView.Error() + " (polling)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newModelRun(t, watchConfig{}, fakeView{first: 1, last: 500})
				if tt.live {
					r.view(&pxperfv1.ViewUpdate{Entries: ids(500, 478), Total: 500})
				}
				first := r.stream()
				r.feed(tt.fail)
				if first.ctx.Err() == nil || r.m.viewLive || r.m.viewErr == nil {
					t.Fatalf("after the failure: stream open %t, live %t, error %v", first.ctx.Err() == nil, r.m.viewLive, r.m.viewErr)
				}
				if screen := r.m.render(); !strings.Contains(screen, tt.wantErr) {
					t.Errorf("the screen does not show %q:\n%s", tt.wantErr, screen)
				}
				// Polled, at the tail, while the stream is down.
				r.mu.Lock()
				r.store.last = 520
				r.mu.Unlock()
				lists := r.listCalls()
				r.wait(viewRetry - r.m.cfg.refresh/2)
				if n := len(r.opened()); n != 1 {
					t.Errorf("%d streams opened before the retry, want 1", n)
				}
				if got := r.listCalls() - lists; got < 3 {
					t.Errorf("%d ListEntries calls in the second after the failure, want a poll every refresh", got)
				}
				if got, want := r.rows(), descendingIDs(520, 498); !slices.Equal(got, want) {
					t.Errorf("polled rows %v, want %v", got, want)
				}
				// The retry opens a new stream; once it works, the error
				// goes and polling stops.
				r.wait(r.m.cfg.refresh)
				if n := len(r.opened()); n != 2 {
					t.Fatalf("%d streams opened after the retry, want 2", n)
				}
				r.view(&pxperfv1.ViewUpdate{Entries: ids(530, 508), Total: 530})
				lists = r.listCalls()
				r.wait(5 * r.m.cfg.refresh)
				if got := r.listCalls() - lists; got != 0 || r.m.viewErr != nil {
					t.Errorf("%d ListEntries calls, error %v once the stream works; want none", got, r.m.viewErr)
				}
				if got, want := r.rows(), descendingIDs(530, 508); !slices.Equal(got, want) {
					t.Errorf("rows %v, want %v", got, want)
				}
				if screen := r.m.render(); strings.Contains(screen, "live view:") {
					t.Errorf("the error still shows:\n%s", screen)
				}
			})
		})
	}
}

// TestWatchLiveViewFill: a window fetched at the tail fills the live
// rows, unless it is older than all of them, and never takes a row back
// to pending.
func TestWatchLiveViewFill(t *testing.T) {
	pending := pxperfv1.EntryState_ENTRY_STATE_PENDING
	tests := []struct {
		name string
		rows []*pxperfv1.Entry
		w    watchWindow
		want []uint64
		// wantPending are the rows that should be pending.
		wantPending []uint64
	}{
		{name: "overlapping", rows: ids(100, 95), w: watchWindow{entries: ids(97, 80), total: 100},
			want: descendingIDs(100, 80)},
		{name: "newer", rows: ids(100, 95), w: watchWindow{entries: ids(130, 108), total: 100},
			want: descendingIDs(130, 108)},
		{name: "older than every row", rows: ids(100, 95), w: watchWindow{entries: ids(90, 70), total: 100},
			want: descendingIDs(100, 95)},
		{name: "not at the tail", rows: ids(100, 95), w: watchWindow{entries: ids(99, 70), offset: 1, total: 100},
			want: descendingIDs(100, 95)},
		{name: "a pending entry does not undo a completed row",
			rows: ids(100, 95), w: watchWindow{entries: []*pxperfv1.Entry{withState(ids(97, 97)[0], pending), withState(ids(94, 94)[0], pending)}, total: 100},
			want: descendingIDs(100, 94), wantPending: []uint64{94}},
		{name: "a completed entry replaces a pending row",
			rows: []*pxperfv1.Entry{withState(ids(100, 100)[0], pending)}, w: watchWindow{entries: ids(100, 99), total: 100},
			want: descendingIDs(100, 99)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &watchModel{viewLive: true, viewWindow: tableRows, win: watchWindow{entries: tt.rows, total: 100}}
			m.fillView(tt.w)
			if got := entryIDs(m.win.entries); !slices.Equal(got, tt.want) {
				t.Errorf("rows %v, want %v", got, tt.want)
			}
			var gotPending []uint64
			for _, e := range m.win.entries {
				if e.GetState() == pending {
					gotPending = append(gotPending, e.GetId())
				}
			}
			if !slices.Equal(gotPending, tt.wantPending) {
				t.Errorf("pending rows %v, want %v", gotPending, tt.wantPending)
			}
		})
	}
}

// TestWatchViewLoop: the loop reading a live view stream sends its
// messages with their generation, and returns when its context ends.
func TestWatchViewLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		r := &modelRun{t: t}
		var sent []tea.Msg
		end := make(chan tea.Msg)
		go func() {
			end <- viewLoop(ctx, r.subscribe, &pxperfv1.SubscribeRequest{}, 7, func(msg tea.Msg) { sent = append(sent, msg) })
		}()
		synctest.Wait()
		s := r.opened()[0]
		s.c <- streamItem{resp: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_View{View: &pxperfv1.ViewUpdate{Total: 3}}}}
		synctest.Wait()
		cancel()
		msg := (<-end).(viewEndMsg)
		if msg.gen != 7 || status.Code(msg.err) != codes.Canceled {
			t.Errorf("end %+v, want generation 7 and CANCELLED", msg)
		}
		if len(sent) != 1 || sent[0].(viewMsg).gen != 7 || sent[0].(viewMsg).v.GetTotal() != 3 {
			t.Errorf("sent %v, want the one view of generation 7", sent)
		}
	})
}

// The filter editor opens with the filter in force and a space after it,
// so that what is typed starts a term of its own.
func TestWatchFilterEditorAppendsATerm(t *testing.T) {
	f, err := filter.Parse("host:*svc1*")
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		r := newModelRun(t, watchConfig{filterText: "host:*svc1*", filter: f}, fakeView{first: 1, last: 100})
		r.press("/", "status:>=500")
		if got := string(r.m.input); got != "host:*svc1* status:>=500" {
			t.Errorf("the filter bar holds %q; want %q", got, "host:*svc1* status:>=500")
		}
	})
}

// The scroll bar's thumb touches the bottom at the newest entries and the
// top at the oldest, and is always at least a cell.
func TestWatchScrollBar(t *testing.T) {
	thumb := func(bar []string) (first, last int) {
		first, last = -1, -1
		for i, c := range bar {
			if c == "█" {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		return first, last
	}
	for _, tc := range []struct {
		name                string
		rows                int
		total, offset       uint64
		shown               int
		wantFirst, wantLast int // -1: anywhere
	}{
		{"newest, a few more than fit", 30, 31, 0, 20, -1, 29},
		{"newest, many more", 30, 1_000_000, 0, 30, 29, 29},
		{"newest, some more", 23, 100, 0, 23, -1, 22},
		{"oldest", 30, 31, 11, 20, 0, -1},
		{"oldest, many more", 30, 1_000_000, 1_000_000 - 30, 30, 0, 0},
		{"the middle", 30, 300, 135, 30, 13, 16},
	} {
		bar := scrollBar(tc.rows, tc.total, tc.offset, tc.shown)
		first, last := thumb(bar)
		if first < 0 || (tc.wantFirst >= 0 && first != tc.wantFirst) || (tc.wantLast >= 0 && last != tc.wantLast) {
			t.Errorf("%s: thumb on rows %d..%d of %d; want %d..%d", tc.name, first, last, tc.rows, tc.wantFirst, tc.wantLast)
		}
	}
}

// The stats lines say where a node of a cluster stands, and nothing of a
// cluster in embedded mode.
func TestWatchStatsCluster(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster *pxperfv1.ClusterStats
		want    string // in the last line; "" for no cluster text
	}{
		{"embedded", nil, ""},
		{"connected", &pxperfv1.ClusterStats{Connected: true, Lag: 1234}, "cluster lag 1,234"},
		{"disconnected", &pxperfv1.ClusterStats{LastError: "nats: timeout"}, "cluster: cannot publish"},
	} {
		m := &watchModel{stats: &pxperfv1.Stats{Cluster: tc.cluster}}
		lines := m.statsLines(120)
		last := lines[len(lines)-1]
		if tc.want == "" {
			if strings.Contains(last, "cluster") {
				t.Errorf("%s: %q speaks of a cluster", tc.name, last)
			}
			continue
		}
		if !strings.Contains(last, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.name, last, tc.want)
		}
	}
}

// The detail pane shows the request body under the request headers, as
// it shows the response body: its type and size, what was kept of a
// truncated one, text made safe for the terminal, binary as a hex dump,
// and the option of pxperf get that prints it whole.
func TestWatchDetailBodies(t *testing.T) {
	long := strings.Repeat("x", bodyPreviewBytes+100)
	for _, tt := range []struct {
		name   string
		e      *pxperfv1.Entry
		want   []string // lines, in this order, ANSI codes stripped
		absent []string
	}{
		{
			name: "request body, truncated",
			e: &pxperfv1.Entry{
				Method: "POST", RequestHeaders: []*pxperfv1.Header{{Name: "Content-Type", Value: "application/json"}},
				RequestBody:  &pxperfv1.Body{Data: []byte(`{"name":"a`), ContentType: "application/json", OriginalSize: 20480, Truncated: true},
				ResponseBody: &pxperfv1.Body{Data: []byte("ok"), ContentType: "text/plain", OriginalSize: 2},
			},
			want: []string{"Request headers", "  Content-Type: application/json", "", "Request body (application/json, 20.0k, 10B kept)",
				`  {"name":"a`, "", "Response headers", "  none", "", "Response body (text/plain, 2B)", "  ok"},
		},
		{
			name: "binary request body",
			e:    &pxperfv1.Entry{Method: "PUT", RequestBody: &pxperfv1.Body{Data: []byte{0xff, 0x00, 0xfe, 0x1b}, ContentType: "application/octet-stream", OriginalSize: 4}},
			want: []string{"Request body (application/octet-stream, 4B)", "  0000  ff 00 fe 1b", "", "Response headers"},
		},
		{
			name: "control characters in a text request body",
			e:    &pxperfv1.Entry{Method: "POST", RequestBody: &pxperfv1.Body{Data: []byte("a\x1b[31mred\tb\nnext"), OriginalSize: 16}},
			want: []string{"Request body (-, 16B)", "  a·[31mred    b", "  next"},
		},
		{
			name: "long request body",
			e:    &pxperfv1.Entry{Method: "POST", RequestBody: &pxperfv1.Body{Data: []byte(long), ContentType: "text/plain", OriginalSize: int64(len(long))}},
			want: []string{"  " + long[:bodyPreviewBytes], "  … 100B more (pxperf get ID --request-body)", "", "Response headers"},
		},
		{
			name: "request body not fetched yet",
			e:    &pxperfv1.Entry{Method: "POST", RequestBody: &pxperfv1.Body{ContentType: "text/csv", OriginalSize: 300}},
			want: []string{"Request body (text/csv, 300B)", "  none (or not fetched yet)", "", "Response headers"},
		},
		{
			name:   "no request body",
			e:      &pxperfv1.Entry{Method: "GET", ResponseBody: &pxperfv1.Body{Data: []byte("hi"), OriginalSize: 2}},
			want:   []string{"Request headers", "  none", "", "Response headers", "  none", "", "Response body (-, 2B)", "  hi"},
			absent: []string{"Request body"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &watchModel{detail: tt.e}
			var lines []string
			for _, l := range m.detailLines() {
				lines = append(lines, ansi.Strip(l))
			}
			// want appears in order, as consecutive lines.
			start := slices.Index(lines, tt.want[0])
			if start < 0 || start+len(tt.want) > len(lines) || !slices.Equal(lines[start:start+len(tt.want)], tt.want) {
				t.Errorf("detail pane lacks, in order:\n%s\ngot:\n%s", strings.Join(tt.want, "\n"), strings.Join(lines, "\n"))
			}
			for _, a := range tt.absent {
				if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, a) }) {
					t.Errorf("detail pane shows %q:\n%s", a, strings.Join(lines, "\n"))
				}
			}
		})
	}
}
