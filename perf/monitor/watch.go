package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrSlowWatcher is returned by [Watcher.Next] once the watcher fell more
// than Config.WatchQueue alert events and notices behind and was dropped.
// Watch again: the new watcher's first snapshot lists the active alerts.
var ErrSlowWatcher = errors.New("monitor: watcher fell too far behind and was dropped")

// ErrWatcherClosed is returned by [Watcher.Next] after [Watcher.Close].
var ErrWatcherClosed = errors.New("monitor: watcher closed")

// Update is one thing a [Watcher] receives; exactly one field is set.
type Update struct {
	// Event is an alert starting or clearing. Every event is delivered,
	// in order.
	Event *Event
	// Notice is a value given to [Monitor.Notify], for example the config
	// after a live change. Notices are delivered in order with events.
	Notice any
	// Snapshot is the latest tick's outcome. A watcher that reads slowly
	// skips snapshots: it gets only the latest, after every event and
	// notice that came before it.
	Snapshot *Snapshot
}

// Watcher receives a monitor's snapshots, alert events and notices. Each
// watcher has one reader: call [Watcher.Next] from one goroutine. Call
// [Watcher.Close] when done.
//
// The monitor never waits for a watcher. Snapshots are state: a watcher
// keeps only the latest unread one (as grpc-go's health Watch does).
// Events and notices are history: a watcher queues up to Config.WatchQueue
// of them; one more and it is dropped, and Next returns [ErrSlowWatcher].
type Watcher struct {
	m      *Monitor
	readyc chan struct{} // 1-slot: something was added or err set

	mu    sync.Mutex // guards what follows
	queue []Update   // events and notices, oldest first
	snap  *Snapshot  // latest unread snapshot
	err   error      // set once the watcher is dropped or closed
}

// Watch returns a new watcher, with the latest snapshot (if there has been
// a tick) already waiting to be read: its Active list is the alert state
// that later events change.
func (m *Monitor) Watch() *Watcher {
	w := &Watcher{m: m, readyc: make(chan struct{}, 1)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hasLatest {
		w.setSnapshot(m.latest)
	}
	m.watchers[w] = struct{}{}
	return w
}

// Notify queues v for every watcher, in order with alert events. pxperf
// uses it to tell watchers of a live config change. A nil v is ignored.
func (m *Monitor) Notify(v any) {
	if v == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for w := range m.watchers {
		if !w.push(Update{Notice: v}, m.cfg.WatchQueue) {
			delete(m.watchers, w)
		}
	}
}

// publish records snap as the latest and hands it and events to every
// watcher, dropping those that overflow.
func (m *Monitor) publish(snap Snapshot, events []Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latest, m.hasLatest = snap, true
	for w := range m.watchers {
		ok := true
		for i := range events {
			if ok = w.push(Update{Event: &events[i]}, m.cfg.WatchQueue); !ok {
				break
			}
		}
		if !ok {
			delete(m.watchers, w)
			continue
		}
		w.setSnapshot(snap)
	}
}

// push queues u, or drops the watcher when its queue already holds limit
// updates. It reports whether the watcher is still live.
func (w *Watcher) push(u Update, limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return false
	}
	if len(w.queue) >= limit {
		w.queue = nil
		w.snap = nil
		w.err = fmt.Errorf("%w: %d events and notices unread", ErrSlowWatcher, limit)
	} else {
		w.queue = append(w.queue, u)
	}
	w.signal()
	return w.err == nil
}

func (w *Watcher) setSnapshot(s Snapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snap = &s
	w.signal()
}

// signal wakes Next. The caller holds w.mu.
func (w *Watcher) signal() {
	select {
	case w.readyc <- struct{}{}:
	default:
	}
}

// Next returns the next update: queued events and notices first, oldest
// first, then the latest snapshot if there is an unread one. It waits
// until there is one or ctx ends, and returns ctx.Err() then. Once the
// watcher was dropped or closed it returns [ErrSlowWatcher] or
// [ErrWatcherClosed]; a dropped watcher's unread updates are discarded.
func (w *Watcher) Next(ctx context.Context) (Update, error) {
	for {
		w.mu.Lock()
		switch {
		case w.err != nil:
			err := w.err
			w.mu.Unlock()
			return Update{}, err
		case len(w.queue) > 0:
			u := w.queue[0]
			w.queue[0] = Update{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return u, nil
		case w.snap != nil:
			s := w.snap
			w.snap = nil
			w.mu.Unlock()
			return Update{Snapshot: s}, nil
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return Update{}, ctx.Err()
		case <-w.readyc:
		}
	}
}

// Close stops the watcher. Next returns [ErrWatcherClosed] afterwards.
// Closing twice, or closing a dropped watcher, does nothing.
func (w *Watcher) Close() {
	w.m.mu.Lock()
	delete(w.m.watchers, w)
	w.m.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = ErrWatcherClosed
		w.queue, w.snap = nil, nil
		w.signal()
	}
}
