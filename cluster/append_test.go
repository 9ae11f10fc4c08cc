package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/proto"
)

// Nodes appending at once, each many batches at once, share the ids: every
// entry is stored once, under the id its append returned, and the ids run
// without a gap in the stream's order. The nodes' messages race for the
// same ids, and a message that lost is sent again after the one that won.
func TestAppendConcurrentNodes(t *testing.T) {
	for _, tc := range []struct {
		name              string
		servers, replicas int
	}{
		{"R1", 1, 1},
		{"R3", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := natstest.Start(t, tc.servers)
			nodes := []*Log{
				open(t, testConfig(nc.URLs()[:1], tc.replicas)),
				open(t, testConfig(nc.URLs()[tc.servers-1:], tc.replicas)),
			}
			const producers, batches, size = 3, 20, 4 // per node
			var mu sync.Mutex
			given := map[string]uint64{}
			var last uint64
			var wg sync.WaitGroup
			for n, l := range nodes {
				for p := range producers {
					wg.Go(func() {
						for b := range batches {
							msgs := newMessages(((n*producers+p)*batches+b)*size, size)
							if b%2 == 0 { // half of them named
								for i := range msgs {
									msgs[i].MsgID = ""
								}
							}
							as, err := l.Append(t.Context(), msgs)
							if err != nil {
								t.Errorf("node %d: Append: %v", n, err)
								return
							}
							mu.Lock()
							for i, m := range msgs {
								given[m.Entry.GetUrl()] = as[i].ID
								last = max(last, as[i].Seq)
							}
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			total := len(nodes) * producers * batches * size
			if len(given) != total {
				t.Fatalf("%d entries appended, want %d", len(given), total)
			}
			rec := newRecorder()
			f := follow(t, open(t, testConfig(nc.URLs()[:1], tc.replicas)), 1, rec)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := f.Wait(ctx, last, 0); err != nil {
				t.Fatal(err)
			}
			applied, urls, _ := rec.snapshot()
			if !slices.Equal(applied, upTo(total)) {
				t.Fatalf("the stream holds ids %v, want 1..%d in order", applied, total)
			}
			for id, u := range urls {
				if given[u] != id {
					t.Errorf("%s is stored as %d; its append gave %d", u, id, given[u])
				}
			}
		})
	}
}

// The appender sends a named part alone, so that the stream can tell a
// retry of it, and the parts without a name waiting together in one
// message, as many as fit.
func TestAppenderTake(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	a := &appender{l: l, ctx: t.Context()} // not running: take is called here
	sized := func(name string, n int) *part {
		return &part{data: make([]byte, n), entries: make([]*pxperfv1.Entry, 1), msgID: name, chain: new(Chain), done: make(chan partResult, 1)}
	}
	max := l.maxData()
	parts := []*part{
		sized("", 10), sized("", 20), // together
		sized("b1/0", 10),            // alone
		sized("", 10), sized("", 30), // together
		sized("b2/0", 10), sized("b2/1", 10), // each alone
		sized("", max-15), sized("", 10), // together: they fit
		sized("", 10), // the next message
	}
	a.add(parts)
	want := [][]*part{parts[0:2], parts[2:3], parts[3:5], parts[5:6], parts[6:7], parts[7:9], parts[9:10]}
	for i, w := range want {
		if got := a.take(); !slices.Equal(got, w) {
			t.Errorf("message %d takes %d parts, want %d: %v", i, len(got), len(w), got)
		}
	}
	if got := a.take(); got != nil {
		t.Errorf("the queue is empty, yet take gave %v", got)
	}

	// The parts of a chain that failed are failed, not taken: not stored
	// after the part that failed.
	failed := new(Chain)
	failed.failed.Store(true)
	ok, bad1, bad2, after := sized("", 10), sized("", 10), sized("", 10), sized("", 10)
	bad1.chain, bad2.chain = failed, failed
	a.add([]*part{ok, bad1, bad2, after})
	if got := a.take(); !slices.Equal(got, []*part{ok}) {
		t.Errorf("take gave %d parts, want the one before the failed chain's", len(got))
	}
	if !a.failChained() {
		t.Error("failChained failed nothing")
	}
	for _, p := range []*part{bad1, bad2} {
		select {
		case r := <-p.done:
			if !errors.Is(r.err, ErrUnavailable) {
				t.Errorf("a part of a failed chain: %v, want ErrUnavailable", r.err)
			}
		default:
			t.Error("a part of a failed chain was not failed")
		}
	}
	if got := a.take(); !slices.Equal(got, []*part{after}) {
		t.Errorf("take gave %d parts, want the one after", len(got))
	}

	// A caller that gives up waiting gives its chain up: what it queued is
	// failed, not taken.
	chain := new(Chain)
	mine, later := sized("", 10), sized("", 10)
	mine.chain, later.chain = chain, chain
	a.add([]*part{mine, later})
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.waitParts(gone, []*part{mine}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("waitParts given up: %v, want ErrUnavailable", err)
	}
	if !a.failChained() || a.take() != nil {
		t.Error("the parts of a chain given up were not failed")
	}
}

// Ids never go back: a stream that lost all its messages (by age, here by
// a purge) goes on above every id given, on a node that never saw them
// too; and a stream that holds none starts at the first id a node that
// opened it was configured with, whichever node appends first.
func TestIDsNeverGoBack(t *testing.T) {
	nc := natstest.Start(t, 1)
	cfg := testConfig(nc.URLs(), 1)
	cfg.FirstID = 1000
	open(t, cfg) // the embedded install that moved, say
	a := open(t, testConfig(nc.URLs(), 1))
	as, err := a.Append(t.Context(), newMessages(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(as), []uint64{1000, 1001, 1002, 1003, 1004}) {
		t.Fatalf("a new stream opened with FirstID 1000 gave ids %v", ids(as))
	}
	if err := a.entries.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := open(t, testConfig(nc.URLs(), 1)) // a node that never saw them
	bs, err := b.Append(t.Context(), newMessages(5, 2))
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].ID <= 1004 || bs[1].ID != bs[0].ID+1 {
		t.Fatalf("after the stream lost ids 1000..1004, a new node gave %v: want above 1004", ids(bs))
	}
	// a still holds the stream's tip from before b appended: its next
	// message goes after b's.
	as, err = a.Append(t.Context(), newMessages(7, 1))
	if err != nil {
		t.Fatal(err)
	}
	if as[0].ID != bs[1].ID+1 {
		t.Errorf("a gave %d after b's %d, want %d", as[0].ID, bs[1].ID, bs[1].ID+1)
	}
	// A node configured with a first id below the stream's changes nothing.
	cfg.FirstID = 10
	cs, err := open(t, cfg).Append(t.Context(), newMessages(8, 1))
	if err != nil || cs[0].ID != as[0].ID+1 {
		t.Errorf("a node with FirstID 10 gave %v, %v; want %d", cs, err, as[0].ID+1)
	}
}

// Entry and Read find ids in the message that holds them, across
// messages, and nothing the stream no longer holds.
func TestEntryAndReadAcrossMessages(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	for i := 0; i < 50; i += 10 { // five messages of ten: ids 1..50
		if _, err := l.Append(t.Context(), newMessages(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	url := func(id uint64) string { return fmt.Sprintf("http://example.com/%d", id-1) }
	for _, id := range []uint64{1, 10, 11, 23, 50} {
		e, c, err := l.Entry(t.Context(), id)
		if err != nil || e.GetId() != id || e.GetUrl() != url(id) || c != nil {
			t.Errorf("Entry(%d) = %v, %v, %v; want the entry of %s", id, e, c, err, url(id))
		}
	}
	if _, _, err := l.Entry(t.Context(), 51); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(51) of 50: %v, want ErrNotFound", err)
	}
	read := func(first, last uint64) []uint64 {
		var got []uint64
		err := l.Read(t.Context(), first, last, func(e, _ *pxperfv1.Entry) error {
			if e.GetUrl() != url(e.GetId()) {
				t.Errorf("Read gave %d with url %s", e.GetId(), e.GetUrl())
			}
			got = append(got, e.GetId())
			return nil
		})
		if err != nil {
			t.Fatalf("Read(%d, %d): %v", first, last, err)
		}
		return got
	}
	if got := read(15, 37); !slices.Equal(got, upTo(37)[14:]) {
		t.Errorf("Read(15, 37) = %v", got)
	}
	// The first two messages go: ids 1..20.
	if err := l.entries.Purge(t.Context(), jetstream.WithPurgeSequence(3)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Entry(t.Context(), 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(5), purged: %v, want ErrNotFound", err)
	}
	if got := read(1, 0); !slices.Equal(got, upTo(50)[20:]) {
		t.Errorf("Read(1, 0) once 1..20 are gone = %v, want 21..50", got)
	}
	st, err := l.State(t.Context())
	if err != nil || st.FirstID != 21 || st.LastID != 50 || st.Msgs != 3 {
		t.Errorf("State = %+v, %v; want ids 21..50 in 3 messages", st, err)
	}
}

// An entry larger than a NATS message may be fails its batch with
// ErrTooLarge, and nothing of the batch is published.
func TestAppendTooLarge(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	msgs := newMessages(0, 3)
	msgs[1].Entry.ResponseBody = &pxperfv1.Body{Data: make([]byte, l.maxData()+1)}
	if _, err := l.Append(t.Context(), msgs); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of an entry of %d bytes: %v, want ErrTooLarge", l.maxData()+1, err)
	}
	st, err := l.State(context.Background())
	if err != nil || st.Msgs != 0 {
		t.Errorf("State = %+v, %v; want nothing published", st, err)
	}
}

// A part's data is what proto.Marshal writes for a PublishRequest of its
// entries, and decodes back to them: the stream's messages are readable by
// any protobuf tool.
func TestEncodePartsIsPublishRequest(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	r := rand.New(rand.NewPCG(1, 2))
	full := &pxperfv1.Entry{}
	if err := testentry.Populate(full.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Entry: full}}
	for range 300 {
		msgs = append(msgs, Message{Entry: testentry.Random(r)})
	}
	// Bodies big enough that the entries take several parts.
	for i := 0; i < len(msgs); i += 50 {
		msgs[i].Entry.ResponseBody = &pxperfv1.Body{Data: make([]byte, l.maxData()/3)}
	}
	parts, err := l.encodeParts(new(Chain), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 3 {
		t.Fatalf("%d parts; the bodies should make at least 3", len(parts))
	}
	n := 0
	for k, p := range parts {
		if len(p.data) > l.maxData() {
			t.Errorf("part %d is %d bytes, more than a message takes (%d)", k, len(p.data), l.maxData())
		}
		want, err := proto.Marshal(&pxperfv1.PublishRequest{Entries: p.entries})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.data, want) {
			t.Errorf("part %d: %d bytes, proto.Marshal writes %d differently", k, len(p.data), len(want))
		}
		got := decodeEntries(p.data, len(p.entries))
		for i, e := range got {
			if !proto.Equal(e, msgs[n+i].Entry) {
				t.Errorf("part %d, entry %d decodes to %v, want %v", k, i, e, msgs[n+i].Entry)
			}
		}
		n += len(p.entries)
	}
	if n != len(msgs) {
		t.Errorf("the parts hold %d entries, want %d", n, len(msgs))
	}
}

// Once the stream has lost every message by age, a node whose follower
// applied the last one goes on from its next id, exactly; a node that did
// not, from the reserved mark: never back, but perhaps ahead.
func TestTipOfAStreamThatAgedOut(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := open(t, testConfig(nc.URLs(), 1))
	as, err := a.Append(t.Context(), newMessages(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	f := follow(t, a, 1, newRecorder())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, as[4].Seq, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.entries.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if tp, err := a.tip(t.Context()); err != nil || tp.next != 6 || tp.seq != as[4].Seq {
		t.Errorf("tip on the node that applied ids 1..5 = %+v, %v; want next 6 after sequence %d", tp, err, as[4].Seq)
	}
	b := open(t, testConfig(nc.URLs(), 1))
	if tp, err := b.tip(t.Context()); err != nil || tp.next <= 5 {
		t.Errorf("tip on a node that saw nothing = %+v, %v; want next above 5", tp, err)
	}
}

// A stream that holds messages pxperf did not write is refused at once,
// saying so, rather than retried until the start timeout.
func TestOpenRefusesAForeignStream(t *testing.T) {
	nc := natstest.Start(t, 1)
	l := open(t, testConfig(nc.URLs(), 1))
	if _, err := l.js.Publish(t.Context(), l.cfg.Subject, []byte("not a batch")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Open(t.Context(), testConfig(nc.URLs(), 1))
	if !errors.Is(err, ErrForeign) {
		t.Fatalf("Open on a stream with a foreign message: %v, want ErrForeign", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v to refuse it", d)
	}
}

// A node's follower applies the entries the node appended as they are, not
// decoded again; those another node appended, decoded.
func TestFollowerTakesItsOwnEntries(t *testing.T) {
	nc := natstest.Start(t, 1)
	a := open(t, testConfig(nc.URLs(), 1))
	b := open(t, testConfig(nc.URLs(), 1))
	var got []*pxperfv1.Entry
	var mu sync.Mutex
	f := follow(t, a, 1, applierFunc(func(_ uint64, es []*pxperfv1.Entry) {
		mu.Lock()
		got = append(got, es...)
		mu.Unlock()
	}))
	mine, theirs := newMessages(0, 3), newMessages(3, 2)
	if _, err := a.Append(t.Context(), mine); err != nil {
		t.Fatal(err)
	}
	as, err := b.Append(t.Context(), theirs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, as[1].Seq, 0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 {
		t.Fatalf("applied %d entries, want 5", len(got))
	}
	for i, m := range append(mine, theirs...) {
		if same := got[i] == m.Entry; same != (i < 3) {
			t.Errorf("entry %d applied as the very entry appended: %v, want %v", i, same, i < 3)
		}
		if got[i].GetUrl() != m.Entry.GetUrl() {
			t.Errorf("entry %d: url %s, want %s", i, got[i].GetUrl(), m.Entry.GetUrl())
		}
	}
}

// applierFunc is an Applier of entries that ignores completions.
type applierFunc func(first uint64, es []*pxperfv1.Entry)

func (f applierFunc) Entries(first uint64, es []*pxperfv1.Entry) { f(first, es) }
func (applierFunc) Complete(uint64, *pxperfv1.Entry)             {}

// An append after Close fails at once, not after the publish timeout.
func TestAppendAfterClose(t *testing.T) {
	nc := natstest.Start(t, 1)
	cfg := testConfig(nc.URLs(), 1)
	cfg.PublishTimeout = time.Minute
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	start := time.Now()
	if _, err := l.Append(t.Context(), newMessages(0, 2)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after Close: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Append after Close took %v", d)
	}
}
