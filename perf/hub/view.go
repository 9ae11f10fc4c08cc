package hub

import (
	"slices"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/store"
)

// A live view (Request.LiveView) sends the state of the newest matching
// entries rather than every entry: each message is read from the store
// when it is due, so it carries the newest entries as they are when it
// goes, and a subscriber that reads slowly gets fewer, not older,
// messages.

// runView sends the subscription's live view until it ends, as run does
// for a stream of every entry.
func (sub *Subscription) runView() error {
	h, st := sub.hub, sub.hub.store
	heartbeat := time.NewTimer(sub.heartbeat)
	defer heartbeat.Stop()
	var (
		sent     bool   // a message has gone: later ones carry changes only
		newest   uint64 // entries up to this id have been sent, skipped or passed
		winFirst uint64 // the oldest id in the client's window
		beat     bool   // the heartbeat is due
		updBuf   []*pxperfv1.Entry
		updWire  [][]byte
	)
	interval := sub.ctl.Floor() // the interval before the next message
	for {
		if err := sub.refresh(); err != nil {
			return err
		}
		// At most a message an interval: wait out the interval before
		// reading, so that the message carries the newest there is.
		sub.pacer.SetInterval(max(interval, sub.ctl.Floor()))
		if _, err := sub.waitUntil(time.Now().Add(sub.pacer.DelayAt(time.Now())), nil); err != nil {
			return err
		}
		changed := sub.changed() // before reading, so no change is missed
		updCursor := st.UpdateCursor()
		_, next := st.Bounds() // for an empty store, whose page has no newest id
		page := st.List(store.Query{Match: sub.req.Match, Key: sub.req.Key, Limit: sub.req.LiveView + 1})
		v := &pxperfv1.ViewUpdate{Total: uint64(page.Total), NewestId: page.NewestID}
		if page.NewestID == 0 {
			v.NewestId = next - 1
		}
		// The matching entries newer than the last message's, newest first,
		// within the window and the byte bound; past either, the older ones
		// are skipped. The first message has the window whole.
		fresh := page.Entries
		if sent {
			fresh = fresh[:countNewer(fresh, newest)]
		}
		size := 0
		for i, e := range fresh {
			n := st.FieldSize(e) // ViewUpdate.entries numbers them as EntryBatch does
			if i == sub.req.LiveView || (i > 0 && size+n > h.batchBytes) {
				if sent {
					v.SkippedFirstId, v.SkippedLastId = newest+1, fresh[i-1].GetId()-1
				}
				break
			}
			v.Entries = append(v.Entries, e)
			size += n
		}
		if len(page.Entries) > 0 {
			winFirst = page.Entries[min(sub.req.LiveView, len(page.Entries))-1].GetId()
		}
		// Completions, made before the entries were read, of entries an
		// earlier message carried that are in the window now. Those of
		// newer entries are in their latest state in v.Entries.
		u := st.ReadUpdates(sub.updates, updCursor, newest+1, store.Limit{
			Entries: sub.req.LiveView, Bytes: h.batchBytes, Used: size,
		}, sub.req.Match, updBuf, updWire)
		updBuf, updWire = u.Entries[:0], u.Fields[:0]
		if sent {
			for _, e := range u.Entries {
				if e.GetId() >= winFirst {
					v.Updates = append(v.Updates, e)
				}
			}
		}
		// Every id up to the newest read has now been sent, skipped or
		// passed over.
		newest = max(newest, v.NewestId)

		if sent && len(v.Entries) == 0 && len(v.Updates) == 0 && v.SkippedFirstId == 0 && !beat {
			sub.advance(newest+1, u.Next)
			select {
			case <-changed:
			case <-heartbeat.C:
				beat = true
			case <-sub.ctx.Done():
				return sub.ctx.Err()
			case <-h.closed:
				return ErrClosed
			}
			continue
		}
		// The interval after this message, chosen before it goes out so
		// that stats agree with what the client has seen.
		interval = sub.ctl.Interval(h.loadNow(), sub.slow, h.burst.ActiveAt(time.Now()))
		sub.stats.interval.Store(int64(interval))
		if err := sub.sendMsg(Message{Response: &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_View{View: v}},
			Entries: len(v.Entries) + len(v.Updates)}); err != nil {
			return err
		}
		sub.stats.entries.Add(uint64(len(v.Entries) + len(v.Updates)))
		h.entries.Add(uint64(len(v.Entries) + len(v.Updates)))
		sub.advance(newest+1, u.Next)
		sent, beat = true, false
		heartbeat.Reset(sub.heartbeat)
	}
}

// countNewer returns how many of es, newest first, have ids above id.
func countNewer(es []*pxperfv1.Entry, id uint64) int {
	i, _ := slices.BinarySearchFunc(es, id, func(e *pxperfv1.Entry, id uint64) int {
		// es descends: an entry above id sorts before it.
		if e.GetId() > id {
			return -1
		}
		return 1
	})
	return i
}
