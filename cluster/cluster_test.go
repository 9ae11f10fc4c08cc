package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is an Applier that keeps what it is given.
type recorder struct {
	mu          sync.Mutex
	ids         []uint64
	urls        map[uint64]string
	completions map[uint64]int32 // id → status of its completion
	order       []string         // "e<id>" and "c<id>", as applied
}

func newRecorder() *recorder {
	return &recorder{urls: map[uint64]string{}, completions: map[uint64]int32{}}
}

func (r *recorder) Entries(first uint64, es []*pxperfv1.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range es {
		id := first + uint64(i)
		r.ids = append(r.ids, id)
		r.urls[id] = e.GetUrl()
		r.order = append(r.order, fmt.Sprintf("e%d", id))
	}
}

func (r *recorder) Complete(id uint64, e *pxperfv1.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.completions[id] = e.GetStatusCode()
	r.order = append(r.order, fmt.Sprintf("c%d", id))
}

func (r *recorder) snapshot() ([]uint64, map[uint64]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids), maps(r.urls), slices.Clone(r.order)
}

func maps(m map[uint64]string) map[uint64]string {
	out := make(map[uint64]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func testConfig(urls []string, replicas int) Config {
	return Config{
		URLs:           urls,
		Stream:         "PXPERF",
		Subject:        "pxperf.entries",
		Replicas:       replicas,
		PublishTimeout: 5 * time.Second,
		Name:           "test",
	}
}

func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

func follow(t *testing.T, l *Log, from uint64, a Applier) *Follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f, err := l.Follow(ctx, from, a)
	if err != nil {
		cancel()
		t.Fatalf("Follow: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-f.Done()
	})
	return f
}

// ids returns the ids of what Append appended.
func ids(as []Appended) []uint64 {
	out := make([]uint64, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

// upTo returns 1..n.
func upTo(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

func newMessages(from, n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{
			Entry: &pxperfv1.Entry{Method: "GET", Url: fmt.Sprintf("http://example.com/%d", from+i)},
			MsgID: fmt.Sprintf("m%d", from+i),
		}
	}
	return msgs
}

// Entries appended on one node reach a follower on another under the ids
// the append returned, in order, and each completion after its entry.
func TestAppendFollowAcrossNodes(t *testing.T) {
	nc := natstest.Start(t, 3)
	a := open(t, testConfig(nc.URLs()[:1], 3))
	b := open(t, testConfig(nc.URLs()[2:], 3))
	rec := newRecorder()
	fb := follow(t, b, 1, rec)

	appended, err := a.Append(t.Context(), newMessages(0, 50))
	if err != nil {
		t.Fatal(err)
	}
	want := upTo(50)
	if !slices.Equal(ids(appended), want) {
		t.Fatalf("Append returned ids %v, want 1..50", ids(appended))
	}
	done := &pxperfv1.Entry{Method: "GET", Url: "http://example.com/7", StatusCode: 204}
	completed, err := a.Append(t.Context(), []Message{{Entry: done, Completes: 7, MsgID: "c7"}})
	if err != nil {
		t.Fatal(err)
	}
	if completed[0].ID != 7 {
		t.Errorf("the completion of 7 is reported as of %d", completed[0].ID)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := fb.Wait(ctx, appended[49].Seq, completed[0].Seq); err != nil {
		t.Fatalf("follower on B did not apply everything: %v", err)
	}
	ids, urls, order := rec.snapshot()
	if !slices.Equal(ids, want) {
		t.Errorf("B applied ids %v, want 1..50", ids)
	}
	for i, id := range want {
		if u := fmt.Sprintf("http://example.com/%d", i); urls[id] != u {
			t.Errorf("B's entry %d has url %q, want %q", id, urls[id], u)
		}
	}
	if ci, ei := slices.Index(order, "c7"), slices.Index(order, "e7"); ci < 0 || ci < ei {
		t.Errorf("completion of 7 applied at %d, its entry at %d: want after", ci, ei)
	}
	if got := rec.completions[7]; got != 204 {
		t.Errorf("completion of 7 carried status %d, want 204", got)
	}
}

// A batch sent again with the same MsgIDs, as a producer retrying after a
// timeout does, is acknowledged with the first one's ids and stored once,
// even after other entries were appended since.
func TestAppendRetryIsOneMessage(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	first, err := l.Append(t.Context(), newMessages(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), newMessages(5, 3)); err != nil {
		t.Fatal(err)
	}
	again, err := l.Append(t.Context(), newMessages(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(first), ids(again)) || !slices.Equal(ids(first), upTo(5)) {
		t.Errorf("retry got ids %v, first try %v: want 1..5 both", ids(again), ids(first))
	}
	st, err := l.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Msgs != 2 || st.FirstID != 1 || st.LastID != 8 {
		t.Errorf("stream holds %d messages, ids %d..%d; want 2 messages, ids 1..8", st.Msgs, st.FirstID, st.LastID)
	}
	// The same name with another number of entries is another batch, as
	// in embedded mode.
	other, err := l.Append(t.Context(), newMessages(0, 4))
	if err != nil || !slices.Equal(ids(other), []uint64{9, 10, 11, 12}) {
		t.Errorf("the first 4 of the batch again: %v, %v; want new ids 9..12", other, err)
	}
}

// With three replicas, the loss of one NATS server loses no acknowledged
// entry, and appending goes on.
func TestAppendSurvivesLossOfOneServer(t *testing.T) {
	nc := natstest.Start(t, 3)
	l := open(t, testConfig(nc.URLs(), 3))
	given := map[string]uint64{} // url → the id its acknowledged append gave
	var last uint64              // the sequence of the last message
	acked := func(msgs []Message, as []Appended) {
		for i, m := range msgs {
			given[m.Entry.GetUrl()] = as[i].ID
			last = max(last, as[i].Seq)
		}
	}
	msgs := newMessages(0, 100)
	as, err := l.Append(t.Context(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	acked(msgs, as)
	nc.Stop(0)
	// Until the stream has a leader again, appends may fail; they must
	// succeed within the election timeouts.
	deadline := time.Now().Add(20 * time.Second)
	for i := 100; ; {
		msgs := newMessages(i, 10)
		if as, err = l.Append(t.Context(), msgs); err == nil {
			acked(msgs, as)
			i += 10
			if i == 200 {
				break
			}
			continue
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Append after losing a server: %v; want ErrUnavailable until it recovers", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("appends still fail 20s after losing one of three servers: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The NATS cluster may still be electing the leader that makes
	// consumers, after the appends go on.
	rec := newRecorder()
	var f *Follower
	for f == nil {
		ctx, cancel := context.WithCancel(context.Background())
		if f, err = l.Follow(ctx, 1, rec); err != nil {
			cancel()
			if time.Now().After(deadline) {
				t.Fatalf("Follow 20s after losing one of three servers: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Cleanup(func() {
			cancel()
			<-f.Done()
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, last, 0); err != nil {
		t.Fatalf("follower: %v", err)
	}
	applied, urls, _ := rec.snapshot()
	if !slices.Equal(applied, upTo(200)) {
		t.Fatalf("stream holds ids %v, want 1..200", applied)
	}
	// Each entry once, under the id its acknowledged append gave it: a
	// batch retried after a failure it may have been taken in is kept
	// once.
	for id, u := range urls {
		if given[u] != id {
			t.Errorf("%s is stored as %d; its append gave %d", u, id, given[u])
		}
	}
}

// Without NATS, an append fails with ErrUnavailable within the publish
// timeout, and nothing is reported accepted.
func TestAppendUnavailable(t *testing.T) {
	nc := natstest.Start(t, 1)
	cfg := testConfig(nc.URLs(), 1)
	cfg.PublishTimeout = 500 * time.Millisecond
	l := open(t, cfg)
	nc.Stop(0)
	as, err := l.Append(t.Context(), newMessages(0, 3))
	if !errors.Is(err, ErrUnavailable) || as != nil {
		t.Fatalf("Append without NATS = %v, %v; want nil and ErrUnavailable", as, err)
	}
}

// A follower started in the middle of the stream applies from there.
func TestFollowFrom(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	var last uint64
	for i := 0; i < 20; i += 5 { // four messages of five
		as, err := l.Append(t.Context(), newMessages(i, 5))
		if err != nil {
			t.Fatal(err)
		}
		last = as[4].Seq
	}
	rec := newRecorder()
	f := follow(t, l, 15, rec)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, last, 0); err != nil {
		t.Fatal(err)
	}
	if ids, _, _ := rec.snapshot(); !slices.Equal(ids, []uint64{15, 16, 17, 18, 19, 20}) {
		t.Errorf("follower from 15 applied %v", ids)
	}
}

func TestRedacted(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://h:4222", "nats://h:4222"},
		{"nats://u:secret@h:4222", "nats://u:xxxxx@h:4222"},
		{"nats://token@h:4222", "nats://token@h:4222"},
		{"nats://u:se%zzcret@h:4222", "(a URL that does not parse)"},
	} {
		if got := redacted([]string{tc.in})[0]; got != tc.want {
			t.Errorf("redacted(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Nodes that start together, on different servers of a NATS cluster, all
// open the streams, and share them.
func TestOpenTogether(t *testing.T) {
	nc := natstest.Start(t, 3)
	logs := make([]*Log, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range logs {
		wg.Go(func() { logs[i], errs[i] = Open(t.Context(), testConfig(nc.URLs()[i:i+1], 3)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Open: %v", i, err)
		}
		t.Cleanup(logs[i].Close)
	}
	for i, l := range logs {
		as, err := l.Append(t.Context(), newMessages(i, 1))
		if err != nil || as[0].ID != uint64(i+1) {
			t.Fatalf("node %d: Append = %v, %v; want id %d", i, as, err, i+1)
		}
	}
}
