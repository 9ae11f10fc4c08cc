// Package throttle decides when messages go to a subscriber: a [Pacer]
// spaces them, a [Controller] chooses the interval (fixed, adaptive or
// burst mode), and a [BurstDetector] tracks the ingest rate against the
// burst threshold.
//
// Time is passed in explicitly (DelayAt, SentAt), as in
// golang.org/x/time/rate, so callers and tests choose the clock.
package throttle

import "time"

// Pacer spaces messages at least an interval apart (see [Every] for the
// interval that allows n messages a second). The zero value does not pace.
// A Pacer is not safe for concurrent use; each subscriber owns one.
type Pacer struct {
	interval time.Duration
	last     time.Time // when the last message was sent; zero before the first
}

// SetInterval changes the least time between two messages; negative
// means zero. The next message is spaced from the last one by the new
// interval.
func (p *Pacer) SetInterval(d time.Duration) { p.interval = max(d, 0) }

// Every returns the least interval that allows perSecond messages in any
// one-second window, rounded up: 1s/30 truncated would let 31 messages into
// one second. perSecond below 1 counts as 1.
func Every(perSecond int) time.Duration {
	n := time.Duration(max(perSecond, 1))
	return (time.Second + n - 1) / n
}

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
