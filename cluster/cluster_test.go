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

// Entries appended on one node reach a follower on another under the
// sequence ids the append returned, in order, and each completion after
// its entry.
func TestAppendFollowAcrossNodes(t *testing.T) {
	nc := natstest.Start(t, 3)
	a := open(t, testConfig(nc.URLs()[:1], 3))
	b := open(t, testConfig(nc.URLs()[2:], 3))
	rec := newRecorder()
	fb := follow(t, b, 1, rec)

	seqs, err := a.Append(t.Context(), newMessages(0, 50))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, 50)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("Append returned ids %v, want 1..50", seqs)
	}
	done := &pxperfv1.Entry{Method: "GET", Url: "http://example.com/7", StatusCode: 204}
	cseqs, err := a.Append(t.Context(), []Message{{Entry: done, Completes: 7, MsgID: "c7"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := fb.Wait(ctx, 50, cseqs[0]); err != nil {
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

// A message sent again with the same MsgID, as a producer retrying after a
// timeout does, is acknowledged with the first one's id and stored once.
func TestAppendRetryIsOneMessage(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	first, err := l.Append(t.Context(), newMessages(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Append(t.Context(), newMessages(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, again) {
		t.Errorf("retry got ids %v, first try %v: want the same", again, first)
	}
	st, err := l.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Msgs != 5 || st.LastSeq != 5 {
		t.Errorf("stream holds %d messages, last %d; want 5 and 5", st.Msgs, st.LastSeq)
	}
}

// With three replicas, the loss of one NATS server loses no acknowledged
// entry, and appending goes on.
func TestAppendSurvivesLossOfOneServer(t *testing.T) {
	nc := natstest.Start(t, 3)
	l := open(t, testConfig(nc.URLs(), 3))
	if _, err := l.Append(t.Context(), newMessages(0, 100)); err != nil {
		t.Fatal(err)
	}
	nc.Stop(0)
	// Until the stream has a leader again, appends may fail; they must
	// succeed within the election timeouts.
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for i := 100; ; {
		if _, err = l.Append(t.Context(), newMessages(i, 10)); err == nil {
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
	rec := newRecorder()
	f := follow(t, l, 1, rec)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, 200, 0); err != nil {
		t.Fatalf("follower: %v", err)
	}
	ids, urls, _ := rec.snapshot()
	if len(ids) != 200 || ids[0] != 1 || ids[199] != 200 {
		t.Fatalf("stream holds ids %d..%d (%d), want 1..200", ids[0], ids[len(ids)-1], len(ids))
	}
	// Each entry once. A batch that failed in part, its later messages
	// stored and its earlier ones not, is stored in another order when it
	// is retried: only the first 100, acknowledged before the loss, keep
	// theirs.
	seen := map[string]uint64{}
	for id, u := range urls {
		if other, dup := seen[u]; dup {
			t.Errorf("%s stored twice, as %d and %d", u, other, id)
		}
		seen[u] = id
	}
	for i := range 200 {
		u := fmt.Sprintf("http://example.com/%d", i)
		id, ok := seen[u]
		switch {
		case !ok:
			t.Errorf("%s, acknowledged, is not in the stream", u)
		case i < 100 && id != uint64(i+1):
			t.Errorf("%s has id %d, want %d: acknowledged before the loss", u, id, i+1)
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
	seqs, err := l.Append(t.Context(), newMessages(0, 3))
	if !errors.Is(err, ErrUnavailable) || seqs != nil {
		t.Fatalf("Append without NATS = %v, %v; want nil and ErrUnavailable", seqs, err)
	}
}

// A follower started in the middle of the stream applies from there.
func TestFollowFrom(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	if _, err := l.Append(t.Context(), newMessages(0, 20)); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	f := follow(t, l, 15, rec)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, 20, 0); err != nil {
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
		seqs, err := l.Append(t.Context(), newMessages(i, 1))
		if err != nil || seqs[0] != uint64(i+1) {
			t.Fatalf("node %d: Append = %v, %v; want id %d", i, seqs, err, i+1)
		}
	}
}
