package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/store"
	"github.com/pxperf/pxperf/perf/throttle"
	"github.com/pxperf/pxperf/perf/wire"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSettings are fast settings for tests: at most 1000 messages a
// second, batches of 10 that wait 10 ms for more.
func testSettings() Settings {
	return Settings{
		Throttle: throttle.Config{
			Mode: throttle.Fixed, MinInterval: time.Millisecond, MaxInterval: time.Second,
			Growth: 1.2, Shrink: 0.9, BurstThreshold: 100, BurstCooldown: time.Second,
		},
		MaxUpdatesPerSecond: 1000,
		BatchSize:           10,
		MaxBatchSize:        50,
		BatchTimeout:        10 * time.Millisecond,
		Heartbeat:           time.Second,
		SendTimeout:         5 * time.Second,
		Priority:            pxperfv1.Priority_PRIORITY_HIGH,
	}
}

// newHub returns a hub over a new store of at most maxEntries (0: 100 000),
// with arch (which may be nil) and edit applied to testSettings
// (edit may be nil). Closed when the test ends.
func newHub(t *testing.T, maxEntries int, arch Archive, edit func(*Settings)) (*Hub, *store.Store) {
	t.Helper()
	if maxEntries == 0 {
		maxEntries = 100_000
	}
	st, err := store.New(store.Config{MaxEntries: maxEntries, MaxMemoryBytes: 1 << 30, Encoder: wire.Encoder{}})
	if err != nil {
		t.Fatal(err)
	}
	s := testSettings()
	if edit != nil {
		edit(&s)
	}
	h, err := New(Config{Store: st, Archive: arch, BatchBytes: 1 << 20, Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		h.Wait()
	})
	return h, st
}

// publish appends entries first..last (testentry's) to st.
func publish(t *testing.T, st *store.Store, first, last int) {
	t.Helper()
	var es []*pxperfv1.Entry
	for i := first; i <= last; i++ {
		es = append(es, testentry.Proxied(i))
	}
	st.Append(es)
}

// sent is a message as the client would decode it, with when it was sent.
type sent struct {
	at time.Time
	m  *pxperfv1.SubscribeResponse
}

// recorder is a SendFunc that decodes each message, as the client would,
// and keeps it. While gate is open, Send blocks until it is closed.
type recorder struct {
	mu    sync.Mutex
	msgs  []sent
	gate  chan struct{}
	added chan struct{} // a token per message
}

func newRecorder() *recorder { return &recorder{added: make(chan struct{}, 1<<16)} }

func (r *recorder) send(m Message) error {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	resp := m.Response
	if b := m.Batch; b != nil {
		resp = &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: decodeWire(b)}}
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, sent{time.Now(), resp})
	r.mu.Unlock()
	r.added <- struct{}{}
	return nil
}

// decodeWire decodes a wire batch as the client decodes the message the
// service makes of it.
func decodeWire(b *WireBatch) *pxperfv1.EntryBatch {
	var raw []byte
	for _, f := range b.Entries {
		raw = append(raw, f...) // each an EntryBatch.entries field
	}
	eb := &pxperfv1.EntryBatch{}
	if err := proto.Unmarshal(raw, eb); err != nil {
		panic(err)
	}
	for _, f := range b.Updates {
		u := &pxperfv1.EntryBatch{}
		if err := proto.Unmarshal(f, u); err != nil || len(u.Entries) != 1 {
			panic(fmt.Sprintf("an update's field holds %d entries (%v)", len(u.Entries), err))
		}
		eb.Updates = append(eb.Updates, u.Entries[0])
	}
	eb.NextId, eb.UpdatesLost = b.NextID, b.UpdatesLost
	return eb
}

// all returns the messages so far.
func (r *recorder) all() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until ok holds for the messages so far.
func (r *recorder) waitFor(t *testing.T, what string, ok func([]sent) bool) []sent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		if ms := r.all(); ok(ms) {
			return ms
		}
		select {
		case <-r.added:
		case <-timeout:
			t.Fatalf("no %s by the deadline; got %d messages", what, len(r.all()))
		}
	}
}

// ids lists the ids of the entries in the batches of ms, and the gaps as
// negative first and last ids.
func ids(ms []sent) []int64 {
	var out []int64
	for _, s := range ms {
		for _, e := range s.m.GetBatch().GetEntries() {
			out = append(out, int64(e.GetId()))
		}
		if g := s.m.GetGap(); g != nil {
			out = append(out, -int64(g.GetFirstMissedId()), -int64(g.GetLastMissedId()))
		}
	}
	return out
}

func seq(first, last int64) []int64 {
	var out []int64
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

// running is a subscription running with a recorder as its client.
type running struct {
	sub    *Subscription
	r      *recorder
	cancel context.CancelFunc // ends the subscription's context
	done   chan struct{}      // closed when Run has returned
	err    error              // Run's; read once done is closed
}

// start subscribes to h with req and runs the subscription on a goroutine
// of its own, sending to r (a new recorder when nil). The subscription is
// cancelled and closed when the test ends.
func start(t *testing.T, h *Hub, req Request, r *recorder) *running {
	t.Helper()
	if r == nil {
		r = newRecorder()
	}
	ctx, cancel := context.WithCancel(t.Context())
	sub, err := h.Subscribe(ctx, req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rn := &running{sub: sub, r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		rn.err = sub.Run(r.send)
		close(rn.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-rn.done // before the hub's Wait
		sub.Close()
	})
	return rn
}

// wait waits for Run to return, and returns its error.
func (rn *running) wait() error {
	<-rn.done
	return rn.err
}

// A subscription from now gets each new entry once, in id order, in
// batches whose next_id says where to resume; the wire form decodes to the
// entries stored.
func TestSubscribeFromNow(t *testing.T) {
	h, st := newHub(t, 0, nil, nil)
	publish(t, st, 0, 4) // before: not sent
	rn := start(t, h, Request{}, nil)
	publish(t, st, 5, 129)
	ms := rn.r.waitFor(t, "entries 6..130", func(ms []sent) bool { return len(ids(ms)) >= 125 })
	if got := ids(ms); !slices.Equal(got, seq(6, 130)) {
		t.Errorf("ids %v; want 6..130", got)
	}
	for _, s := range ms {
		b := s.m.GetBatch()
		if n := len(b.GetEntries()); n == 0 || n > 50 || b.GetNextId() != b.GetEntries()[n-1].GetId()+1 {
			t.Errorf("batch of %d entries with next_id %d; want 1..50 entries and next_id after the last", n, b.GetNextId())
		}
	}
	if e := ms[0].m.GetBatch().GetEntries()[0]; e.GetUrl() != testentry.Proxied(5).GetUrl() {
		t.Errorf("first entry %v; want entry 5 as published", e)
	}
	rn.cancel()
	err := rn.wait()
	var end *EndError
	if !errors.As(err, &end) || !errors.Is(err, context.Canceled) || end.NextID != 131 {
		t.Errorf("Run = %v; want an EndError for the cancelled context, resuming at 131", err)
	}
}

// A tail subscription gets the last N entries, then the snapshot's end,
// then live entries.
func TestSubscribeTail(t *testing.T) {
	h, st := newHub(t, 0, nil, nil)
	publish(t, st, 0, 9)
	r := start(t, h, Request{Start: FromTail, Tail: 3}, nil).r
	r.waitFor(t, "the snapshot's end", func(ms []sent) bool { return len(ms) > 0 && ms[len(ms)-1].m.GetSnapshotEnd() != nil })
	publish(t, st, 10, 10)
	ms := r.waitFor(t, "the live entry", func(ms []sent) bool { return slices.Contains(ids(ms), 11) })
	if got := ids(ms); !slices.Equal(got, []int64{8, 9, 10, 11}) {
		t.Errorf("ids %v; want 8 9 10, then 11", got)
	}
	var end *pxperfv1.SnapshotEnd
	for _, s := range ms {
		if se := s.m.GetSnapshotEnd(); se != nil {
			end = se
			break
		}
		if ids([]sent{s})[0] > 10 {
			t.Fatal("a live entry came before the snapshot's end")
		}
	}
	if end.GetNextId() != 11 {
		t.Errorf("snapshot_end %v; want next_id 11", end)
	}
}

// Start ids the hub cannot serve are refused with what is available.
func TestSubscribeRange(t *testing.T) {
	h, st := newHub(t, 10, nil, nil)
	publish(t, st, 0, 29) // ids 1..30; 21..30 kept
	for _, tc := range []struct {
		start  uint64
		oldest uint64
		future bool
	}{
		{start: 5, oldest: 21},
		{start: 32, oldest: 31, future: true},
	} {
		_, err := h.Subscribe(t.Context(), Request{Start: FromID, StartID: tc.start})
		var re *RangeError
		if !errors.As(err, &re) || re.Oldest != tc.oldest || re.Future != tc.future {
			t.Errorf("Subscribe from %d = %v; want a RangeError with %d (future %v)", tc.start, err, tc.oldest, tc.future)
		}
	}
	if sub, err := h.Subscribe(t.Context(), Request{Start: FromID, StartID: 31}); err != nil {
		t.Errorf("Subscribe from the next id = %v; want it served", err)
	} else {
		sub.Close()
	}
}

// Ids that left memory before the cursor got to them are reported as a
// gap when there is no archive, and the subscription goes on from the
// oldest kept.
func TestGapWithoutArchive(t *testing.T) {
	h, st := newHub(t, 20, nil, nil)
	publish(t, st, 0, 4) // 1..5
	r := newRecorder()
	r.gate = make(chan struct{}) // the client does not read yet
	start(t, h, Request{Start: FromID, StartID: 1}, r)
	// Until Send takes the first message, the cursor stays at 1.
	publish(t, st, 5, 99) // 6..100: 81..100 kept
	r.mu.Lock()
	close(r.gate)
	r.gate = nil
	r.mu.Unlock()
	ms := r.waitFor(t, "entry 100", func(ms []sent) bool { return slices.Contains(ids(ms), 100) })
	got := ids(ms)
	// Whatever was read before the flood (a first batch of up to 5), then
	// a gap up to the oldest kept, then the rest.
	i := slices.IndexFunc(got, func(v int64) bool { return v < 0 })
	if i < 0 || !slices.Equal(got[:i], seq(1, int64(i))) || -got[i] != int64(i+1) || -got[i+1] != 80 ||
		!slices.Equal(got[i+2:], seq(81, 100)) {
		t.Errorf("ids %v; want a first batch (1..n), a gap n+1..80, then 81..100", got)
	}
	if s := h.Stats(100, time.Now()); s.Gaps != 1 {
		t.Errorf("Stats.Gaps = %d; want 1", s.Gaps)
	}
}

// memArchive is an Archive of entries in memory.
type memArchive struct {
	entries []*pxperfv1.Entry // by id, from 1
}

func (a *memArchive) OldestID(context.Context) (uint64, error) { return 1, nil }

func (a *memArchive) Read(ctx context.Context, q archive.Query, fn func(*pxperfv1.Entry) error) error {
	for _, e := range a.entries {
		if e.GetId() < q.FirstID || e.GetId() > q.LastID {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(proto.CloneOf(e)); err != nil {
			return err
		}
	}
	return nil
}

// A subscriber behind memory is fed from the archive, and a change of the
// settings reaches it from its next message: here the hard cap drops from
// 1000 to 2 messages a second.
func TestArchiveFedFollowsSettings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arch := &memArchive{}
		for i := range 1000 {
			e := testentry.Proxied(i)
			e.Id = uint64(i + 1)
			arch.entries = append(arch.entries, e)
		}
		h, st := newHub(t, 10, arch, func(s *Settings) { s.MaxBatchSize = 10 })
		publish(t, st, 0, 999) // ids 1..1000; 991..1000 in memory
		r := start(t, h, Request{Start: FromID, StartID: 1}, nil).r
		r.waitFor(t, "5 batches from the archive", func(ms []sent) bool { return len(ms) >= 5 })
		slow := testSettings()
		slow.MaxBatchSize = 10
		slow.MaxUpdatesPerSecond = 2
		slow.Throttle.MinInterval = 500 * time.Millisecond
		if err := h.SetSettings(slow); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		ms := r.waitFor(t, "5 batches after the change", func(ms []sent) bool {
			return len(ms) >= 5 && ms[len(ms)-5].at.After(changed)
		})
		ms = ms[len(ms)-4:]
		for i := 1; i < len(ms); i++ {
			if d := ms[i].at.Sub(ms[i-1].at); d < 500*time.Millisecond {
				t.Errorf("archive-fed batches %v apart after the cap fell to 2 a second; want at least 500ms", d)
			}
		}
		if last := ids(ms); last[len(last)-1] > 990 {
			t.Errorf("ids %v: the test wants batches from the archive (ids up to 990)", last)
		}
	})
}

// A Send that stays blocked past the send timeout ends the subscription
// as stuck, counted, resuming at the message that was not taken.
func TestStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, func(s *Settings) { s.SendTimeout = 30 * time.Second })
		rn := start(t, h, Request{}, nil)
		r := rn.r
		publish(t, st, 0, 4)
		r.waitFor(t, "the first batch", func(ms []sent) bool { return len(ms) == 1 })
		r.mu.Lock()
		r.gate = make(chan struct{}) // the client stops reading
		r.mu.Unlock()
		publish(t, st, 5, 9)
		began := time.Now()
		err := rn.wait()
		var end *EndError
		if !errors.As(err, &end) || !errors.Is(err, ErrStuck) || end.NextID != 6 {
			t.Errorf("Run = %v; want stuck, resuming at 6", err)
		}
		if d := time.Since(began); d < 30*time.Second {
			t.Errorf("ended as stuck after %v; want the send timeout, 30s", d)
		}
		if s := h.Stats(10, time.Now()); s.Stuck != 1 {
			t.Errorf("Stats.Stuck = %d; want 1", s.Stuck)
		}
		rn.cancel() // the stream ends: the blocked Send returns
		close(r.gate)
	})
}

// A quiet subscription gets a progress heartbeat every Heartbeat, and
// Close of the hub ends it, saying where to resume.
func TestHeartbeatAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, nil)
		publish(t, st, 0, 2)
		began := time.Now()
		rn := start(t, h, Request{Match: store.Matcher{Host: func(string) bool { return false }}}, nil)
		ms := rn.r.waitFor(t, "two heartbeats", func(ms []sent) bool { return len(ms) == 2 })
		for i, s := range ms {
			p := s.m.GetProgress()
			if p.GetNextId() != 4 || p.GetNewestId() != 3 || s.at.Sub(began) != time.Duration(i+1)*time.Second {
				t.Errorf("message %d at %v: %v; want progress to 4 (newest 3) every second", i, s.at.Sub(began), s.m)
			}
		}
		h.Close()
		err := rn.wait()
		var end *EndError
		if !errors.As(err, &end) || !errors.Is(err, ErrClosed) || end.NextID != 4 {
			t.Errorf("Run = %v; want ErrClosed resuming at 4", err)
		}
		if _, err := h.Subscribe(t.Context(), Request{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Subscribe after Close = %v; want ErrClosed", err)
		}
	})
}
