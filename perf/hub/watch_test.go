package hub

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/store"
)

// Subscriptions with the same filter share one watch, which examines each
// new entry once for all of them: while nothing matches, none of them
// reads the store, and their heartbeats say they are up to date.
func TestIdleSubscriptionsShareOneWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, nil)
		var calls atomic.Int64
		nothing := store.Matcher{Match: func(*pxperfv1.Entry) bool { calls.Add(1); return false }}
		const subs, appends, per = 50, 20, 100
		var rns []*running
		for range subs {
			rns = append(rns, start(t, h, Request{Match: nothing, Key: "nothing"}, nil))
		}
		synctest.Wait() // every subscription waits
		h.mu.Lock()
		watches := len(h.watches)
		h.mu.Unlock()
		if watches != 1 {
			t.Fatalf("%d watches for %d subscriptions with one key; want 1", watches, subs)
		}
		for i := range appends {
			publish(t, st, i*per, i*per+per-1)
			synctest.Wait()
		}
		if got := calls.Load(); got != appends*per {
			t.Errorf("the filter ran %d times for %d entries and %d subscriptions; want once per entry", got, appends*per, subs)
		}
		for _, ss := range h.Stats(appends*per, time.Now()).Subscriptions {
			if ss.Lag != 0 || ss.Messages != 0 {
				t.Errorf("subscription %d: lag %d after %d messages; want 0 and 0", ss.ID, ss.Lag, ss.Messages)
			}
		}
		time.Sleep(testSettings().Heartbeat)
		synctest.Wait()
		for i, rn := range rns {
			ms := rn.r.all()
			if len(ms) != 1 || ms[0].m.GetProgress().GetNextId() != appends*per+1 {
				t.Fatalf("subscription %d got %v; want one heartbeat with next_id %d", i, ms, appends*per+1)
			}
		}
		if got := calls.Load(); got != appends*per {
			t.Errorf("after the heartbeats the filter had run %d times; want still %d", got, appends*per)
		}
		for _, rn := range rns {
			rn.cancel()
			rn.sub.Close()
		}
		h.mu.Lock()
		watches = len(h.watches)
		h.mu.Unlock()
		if watches != 0 {
			t.Errorf("%d watches once every subscription closed; want 0", watches)
		}
	})
}

// A subscription woken by its watch gets each matching entry once, in
// order, among many that do not match, whether it shares the watch or not.
func TestWatchDeliversMatches(t *testing.T) {
	h, st := newHub(t, 0, nil, nil)
	const special = "api.example.com"
	m := store.Matcher{Host: func(host string) bool { return host == special }}
	shared := []*running{start(t, h, Request{Match: m, Key: "api"}, nil), start(t, h, Request{Match: m, Key: "api"}, nil)}
	alone := start(t, h, Request{Match: m}, nil)
	var want []int64
	id := 1
	for round := range 30 {
		var es []*pxperfv1.Entry
		for j := range 500 {
			e := testentry.Proxied(id)
			if (round*500+j)%97 == 0 {
				e.Url, e.Host = "https://"+special+"/v1/items", ""
				want = append(want, int64(id))
			}
			es = append(es, e)
			id++
		}
		st.Append(es)
	}
	for i, rn := range append(shared, alone) {
		ms := rn.r.waitFor(t, "every match", func(ms []sent) bool { return len(ids(ms)) >= len(want) })
		if got := ids(ms); !slices.Equal(got, want) {
			t.Errorf("subscription %d got ids %v; want %v", i, got, want)
		}
	}
}

// An entry that comes to match only when it is completed reaches a
// filtered subscription that passed it while it was pending, as an update:
// the watch wakes for matching completions too.
func TestWatchWakesOnCompletion(t *testing.T) {
	h, st := newHub(t, 0, nil, nil)
	failed := store.Matcher{Status: func(code int32) bool { return code >= 500 }}
	rn := start(t, h, Request{Match: failed, Key: "failed"}, nil)
	pending := testentry.Proxied(1)
	pending.State, pending.StatusCode = pxperfv1.EntryState_ENTRY_STATE_PENDING, 0
	st.Append([]*pxperfv1.Entry{pending})
	publish(t, st, 2, 300) // passed over by the watch
	done := testentry.Proxied(1)
	done.StatusCode = 503
	st.Append([]*pxperfv1.Entry{done})
	ms := rn.r.waitFor(t, "the completed entry", func(ms []sent) bool {
		for _, s := range ms {
			b := s.m.GetBatch()
			if len(b.GetEntries())+len(b.GetUpdates()) > 0 {
				return true
			}
		}
		return false
	})
	var got []*pxperfv1.Entry
	for _, s := range ms {
		got = append(got, s.m.GetBatch().GetEntries()...)
		got = append(got, s.m.GetBatch().GetUpdates()...)
	}
	if len(got) != 1 || got[0].GetId() != 1 || got[0].GetStatusCode() != 503 {
		t.Errorf("got %v; want entry 1, completed with 503", got)
	}
}

// A sender's goroutine ends when no message comes for senderIdle, and the
// next message starts another; a Send blocked past the timeout is stuck.
func TestSenderEndsWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newHub(t, 0, nil, nil)
		var sent atomic.Int64
		release := make(chan struct{})
		snd := h.newSender(func(m Message) error {
			if m.Entries < 0 {
				<-release // a client that does not read
			}
			sent.Add(1)
			return nil
		})
		idle := func() bool {
			done := make(chan struct{})
			go func() { h.senders.Wait(); close(done) }()
			synctest.Wait()
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		for round := range 2 {
			if _, err := snd.send(Message{}, time.Second); err != nil {
				t.Fatal(err)
			}
			if idle() {
				t.Fatalf("round %d: no goroutine waits for the next message right after a Send", round)
			}
			time.Sleep(senderIdle)
			if !idle() {
				t.Fatalf("round %d: the sender's goroutine still runs %v after its last message", round, senderIdle)
			}
		}
		if blocked, err := snd.send(Message{Entries: -1}, time.Second); !errors.Is(err, ErrStuck) || blocked != time.Second {
			t.Errorf("a blocked Send = %v after %v; want ErrStuck after the timeout", err, blocked)
		}
		close(release)
		snd.stop()
		if !idle() || sent.Load() != 3 {
			t.Errorf("after stop: %d sent; want 3, and no goroutine left", sent.Load())
		}
	})
}
