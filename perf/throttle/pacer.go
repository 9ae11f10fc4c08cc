// Package throttle paces the messages sent to one subscriber.
//
// Time is passed in explicitly (DelayAt, SentAt), as in
// golang.org/x/time/rate, so callers and tests choose the clock.
package throttle

import (
	"fmt"
	"time"
)

// Pacer spaces messages at least one interval apart: at most perSecond
// messages in any one-second window. The zero value does not pace. A Pacer
// is not safe for concurrent use; each subscriber owns one.
type Pacer struct {
	interval time.Duration
	last     time.Time // when the last message was sent; zero before the first
}

// NewPacer returns a pacer allowing perSecond messages per second, which
// must be at least 1.
func NewPacer(perSecond int) (*Pacer, error) {
	p := &Pacer{}
	if err := p.SetRate(perSecond); err != nil {
		return nil, err
	}
	return p, nil
}

// SetRate changes the pacer to allow perSecond messages per second, which
// must be at least 1. The next message is spaced from the last one by the
// new interval.
func (p *Pacer) SetRate(perSecond int) error {
	if perSecond < 1 {
		return fmt.Errorf("throttle: messages per second must be at least 1, got %d", perSecond)
	}
	p.interval = Every(perSecond)
	return nil
}

// SetInterval changes the least time between two messages; negative
// means zero.
func (p *Pacer) SetInterval(d time.Duration) { p.interval = max(d, 0) }

// Every returns the least interval that allows perSecond messages in any
// one-second window, rounded up: 1s/30 truncated would let 31 messages into
// one second. perSecond below 1 counts as 1.
func Every(perSecond int) time.Duration {
	n := time.Duration(max(perSecond, 1))
	return (time.Second + n - 1) / n
}

// Interval returns the least time between two messages.
func (p *Pacer) Interval() time.Duration { return p.interval }

// DelayAt returns how long after now the next message may be sent: zero if
// it may go at once.
func (p *Pacer) DelayAt(now time.Time) time.Duration {
	if p.last.IsZero() {
		return 0
	}
	return max(0, p.last.Add(p.interval).Sub(now))
}

// SentAt records that a message was sent at now.
func (p *Pacer) SentAt(now time.Time) { p.last = now }
