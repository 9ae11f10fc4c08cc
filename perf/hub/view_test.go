package hub

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/store"
)

// views returns the view updates among ms.
func views(t *testing.T, ms []sent) []*pxperfv1.ViewUpdate {
	t.Helper()
	var out []*pxperfv1.ViewUpdate
	for _, s := range ms {
		v := s.m.GetView()
		if v == nil {
			t.Fatalf("a live view sent %v; want view updates only", s.m)
		}
		out = append(out, v)
	}
	return out
}

// viewIDs lists the ids of es.
func viewIDs(es []*pxperfv1.Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.GetId())
	}
	return out
}

// descending returns the ids from first down to last.
func descending(first, last uint64) []uint64 {
	var out []uint64
	for id := first; id >= last; id-- {
		out = append(out, id)
	}
	return out
}

// A live view's first message holds the newest window entries; each later
// one, those that arrived since, newest first, and, when more than the
// window arrived, the id range it skipped.
func TestLiveView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, nil)
		publish(t, st, 1, 100) // ids 1..100
		rn := start(t, h, Request{LiveView: 10}, nil)
		synctest.Wait()
		publish(t, st, 101, 103)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		publish(t, st, 104, 153)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		vs := views(t, rn.r.all())
		type want struct {
			ids            []uint64
			total, newest  uint64
			skipFirst, end uint64
		}
		wants := []want{
			{ids: descending(100, 91), total: 100, newest: 100},
			{ids: descending(103, 101), total: 103, newest: 103},
			{ids: descending(153, 144), total: 153, newest: 153, skipFirst: 104, end: 143},
		}
		if len(vs) != len(wants) {
			t.Fatalf("got %d messages: %v; want %d", len(vs), vs, len(wants))
		}
		for i, w := range wants {
			v := vs[i]
			if got := viewIDs(v.GetEntries()); !slices.Equal(got, w.ids) || v.GetTotal() != w.total || v.GetNewestId() != w.newest ||
				v.GetSkippedFirstId() != w.skipFirst || v.GetSkippedLastId() != w.end || len(v.GetUpdates()) != 0 {
				t.Errorf("message %d: ids %v total %d newest %d skipped %d..%d updates %d; want %+v",
					i, got, v.GetTotal(), v.GetNewestId(), v.GetSkippedFirstId(), v.GetSkippedLastId(), len(v.GetUpdates()), w)
			}
		}
	})
}

// A completed entry that a live view has sent comes again as an update
// while it is in the window, and not once it has left it.
func TestLiveViewUpdates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, nil)
		pending := func(i int) *pxperfv1.Entry {
			e := testentry.Proxied(i)
			e.State, e.StatusCode = pxperfv1.EntryState_ENTRY_STATE_PENDING, 0
			return e
		}
		st.Append([]*pxperfv1.Entry{pending(1), pending(2), pending(3), pending(4)}) // ids 1..4
		rn := start(t, h, Request{LiveView: 2}, nil)
		synctest.Wait()
		done := func(i int, code int32) {
			e := testentry.Proxied(i)
			e.StatusCode = code
			st.Append([]*pxperfv1.Entry{e})
		}
		done(4, 201) // in the window: 4 and 3
		done(1, 500) // outside it
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		vs := views(t, rn.r.all())
		if len(vs) != 2 {
			t.Fatalf("got %d messages: %v; want the window, then one update", len(vs), vs)
		}
		u := vs[1]
		if len(u.GetEntries()) != 0 || len(u.GetUpdates()) != 1 || u.GetUpdates()[0].GetId() != 4 || u.GetUpdates()[0].GetStatusCode() != 201 {
			t.Errorf("second message %v; want entry 4 updated to 201 only", u)
		}
	})
}

// A filtered live view counts and sends only matching entries, says
// nothing while nothing matches but its heartbeat, and skips over
// entries that do not match without calling it a skip.
func TestLiveViewFiltered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, nil)
		const special = "api.example.com"
		m := store.Matcher{Host: func(host string) bool { return host == special }}
		api := func(i int) *pxperfv1.Entry {
			e := testentry.Proxied(i)
			e.Url, e.Host = "https://"+special+"/v1/items", ""
			return e
		}
		st.Append([]*pxperfv1.Entry{api(1)}) // id 1
		publish(t, st, 2, 50)                // not matching
		rn := start(t, h, Request{Match: m, Key: "api", LiveView: 5}, nil)
		synctest.Wait()
		publish(t, st, 51, 400)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if n := len(rn.r.all()); n != 1 {
			t.Fatalf("%d messages after entries that do not match; want the first only", n)
		}
		st.Append([]*pxperfv1.Entry{api(401)}) // id 401
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		time.Sleep(testSettings().Heartbeat)
		synctest.Wait()
		vs := views(t, rn.r.all())
		if len(vs) != 3 {
			t.Fatalf("got %d messages: %v; want the window, the new match and a heartbeat", len(vs), vs)
		}
		if got := viewIDs(vs[0].GetEntries()); !slices.Equal(got, []uint64{1}) || vs[0].GetTotal() != 1 || vs[0].GetNewestId() != 50 {
			t.Errorf("first message %v; want entry 1 of 1, newest 50", vs[0])
		}
		if got := viewIDs(vs[1].GetEntries()); !slices.Equal(got, []uint64{401}) || vs[1].GetTotal() != 2 || vs[1].GetSkippedFirstId() != 0 {
			t.Errorf("second message %v; want entry 401, 2 in all, nothing skipped", vs[1])
		}
		if hb := vs[2]; len(hb.GetEntries())+len(hb.GetUpdates()) != 0 || hb.GetTotal() != 2 || hb.GetNewestId() != 401 {
			t.Errorf("heartbeat %v; want no entries, total 2, newest 401", hb)
		}
	})
}

// However fast entries arrive, a live view sends at most a message an
// interval, and each carries the newest entry there is when it goes.
func TestLiveViewPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newHub(t, 0, nil, func(s *Settings) { s.MaxUpdatesPerSecond, s.Throttle.MinInterval = 10, 100*time.Millisecond })
		rn := start(t, h, Request{LiveView: 20}, nil)
		synctest.Wait()
		began := time.Now()
		var published []time.Time // when each id was
		for i := range 1000 {     // an entry a millisecond for a second
			publish(t, st, i+1, i+1)
			published = append(published, time.Now())
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		ms := rn.r.all()
		if len(ms) > 12 {
			t.Errorf("%d messages in %v at 10 a second; want at most 12", len(ms), time.Since(began))
		}
		for i := 1; i < len(ms); i++ {
			if d := ms[i].at.Sub(ms[i-1].at); d < 100*time.Millisecond {
				t.Errorf("messages %d and %d %v apart; want at least the interval", i-1, i, d)
			}
			v := ms[i].m.GetView()
			// Every id published a millisecond before the message went.
			before, found := slices.BinarySearchFunc(published, ms[i].at.Add(-time.Millisecond), time.Time.Compare)
			if found {
				before++
			}
			if len(v.GetEntries()) == 0 || v.GetEntries()[0].GetId() != v.GetNewestId() || v.GetNewestId() < uint64(before) {
				t.Errorf("message %d: newest entry %v, newest id %d; want the newest, at least %d", i, viewIDs(v.GetEntries()), v.GetNewestId(), before)
			}
		}
		if last := views(t, ms)[len(ms)-1]; last.GetNewestId() != 1000 {
			t.Errorf("last message's newest id %d; want 1000", last.GetNewestId())
		}
	})
}
