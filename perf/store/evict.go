package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Reason says why entries were evicted.
type Reason int

// The reasons for eviction.
const (
	// ReasonCount: the store held more than Config.MaxEntries.
	ReasonCount Reason = iota + 1
	// ReasonBytes: the store's bytes passed Config.MaxMemoryBytes.
	ReasonBytes
	// ReasonPressure: live memory passed the pressure threshold (see
	// [Store.RelievePressure]), or eviction was asked for
	// ([Store.EvictBytes]).
	ReasonPressure
)

func (r Reason) String() string {
	switch r {
	case ReasonCount:
		return "count"
	case ReasonBytes:
		return "bytes"
	case ReasonPressure:
		return "pressure"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Eviction describes entries evicted together, oldest first, for one
// reason.
type Eviction struct {
	Reason Reason
	Count  int   // entries evicted
	Bytes  int64 // their accounted bytes
	// OldestID is the oldest id held after the eviction: ids below it are
	// gone.
	OldestID uint64
}

// evictions holds what one operation evicted, by reason; index Reason-1.
// A fixed array, so that Append does not allocate for it.
type evictions [3]Eviction

func (ev *evictions) add(r Reason, bytes int64) {
	e := &ev[r-1]
	e.Reason = r
	e.Count++
	e.Bytes += bytes
}

// recordLocked counts ev in the store's stats and stamps the new oldest id.
func (s *Store) recordLocked(ev *evictions) {
	for i := range ev {
		e := &ev[i]
		if e.Count == 0 {
			continue
		}
		e.OldestID = s.firstID
		switch e.Reason {
		case ReasonCount:
			s.stats.EvictedByCount += uint64(e.Count)
		case ReasonBytes:
			s.stats.EvictedByBytes += uint64(e.Count)
		case ReasonPressure:
			s.stats.EvictedByPressure += uint64(e.Count)
		}
	}
}

type observer struct{ fn func(Eviction) }

// Observe registers fn to be called after every eviction, once per reason,
// outside the store's lock and on the goroutine that caused the eviction.
// fn must be quick and must not call back into the store's writers. The
// returned function removes fn.
func (s *Store) Observe(fn func(Eviction)) (remove func()) {
	o := &observer{fn: fn}
	s.mu.Lock()
	s.observers = append(slices.Clip(s.observers), o)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.observers = slices.DeleteFunc(slices.Clone(s.observers), func(x *observer) bool { return x == o })
	}
}

// RelievePressure compares live, the process's live memory in bytes (what
// the last garbage collection found reachable, with goroutine stacks), with
// the pressure threshold: the budget (Config.MaxMemoryBytes) plus the margin
// for the rest of the process (Config.PressureMargin). Above it the store is
// under pressure and evicts its oldest entries by as many accounted bytes as
// live exceeds the threshold, whatever the entry count, and keeps the rest:
// the store gives way only to what the rest of the process holds beyond its
// margin. At or below it, nothing is evicted. It returns what it evicted.
//
// live must be read after any earlier eviction has been collected: a
// reading from before counts the evicted entries again, and would evict as
// much again. Evicted entries that a reader still holds (a batch being
// sent, the archive's queue) stay live until it lets them go; a reading
// that counts them evicts more than the excess.
func (s *Store) RelievePressure(live uint64) Eviction {
	s.mu.Lock()
	threshold := uint64(s.cfg.MaxMemoryBytes + s.cfg.PressureMargin)
	s.stats.LiveMemory = live
	s.stats.UnderPressure = live > threshold
	var ev evictions
	if s.stats.UnderPressure {
		for excess := live - threshold; excess > 0 && s.lenLocked() > 0; {
			size := uint64(s.dropOldestLocked())
			ev.add(ReasonPressure, int64(size))
			excess -= min(size, excess)
		}
		s.recordLocked(&ev)
	}
	obs := s.observers
	s.mu.Unlock()
	notify(obs, ev)
	return ev[ReasonPressure-1]
}

// EvictBytes evicts the oldest entries until at least n accounted bytes
// are freed or the store is empty, whatever the limits and the pressure
// state, and returns what it evicted, counted as evicted by pressure. It
// is memory relief asked for on purpose (the monitor's Optimize), where
// [Store.RelievePressure] waits for the pressure threshold.
func (s *Store) EvictBytes(n int64) Eviction {
	s.mu.Lock()
	var ev evictions
	for freed := int64(0); freed < n && s.lenLocked() > 0; {
		size := s.dropOldestLocked()
		ev.add(ReasonPressure, size)
		freed += size
	}
	s.recordLocked(&ev)
	obs := s.observers
	s.mu.Unlock()
	notify(obs, ev)
	return ev[ReasonPressure-1]
}

// WatchPressure reads live memory every Config.CheckInterval (read again
// after each wait, so a live change applies from the next wait) and calls
// [Store.RelievePressure] with it, until ctx ends. After an eviction it
// calls release, which may be nil: it should collect garbage, so that the
// next reading counts the evicted entries out. A failed read is passed to
// onError, which may be nil, and retried at the next interval. It returns
// ctx's error.
func (s *Store) WatchPressure(ctx context.Context, read func() (uint64, error), release func(), onError func(error)) error {
	for {
		s.mu.RLock()
		interval := s.cfg.CheckInterval
		s.mu.RUnlock()
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		used, err := read()
		if err != nil {
			if onError != nil {
				onError(err)
			}
			continue
		}
		if ev := s.RelievePressure(used); ev.Count > 0 && release != nil {
			release()
		}
	}
}
