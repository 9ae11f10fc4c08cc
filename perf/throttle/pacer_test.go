package throttle

import (
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	for _, tt := range []struct {
		perSecond int
		want      time.Duration
	}{
		{1, time.Second},
		{4, 250 * time.Millisecond},
		{30, 33333334 * time.Nanosecond}, // rounded up, not down
		{0, time.Second},
	} {
		if got := Every(tt.perSecond); got != tt.want {
			t.Errorf("Every(%d) = %v, want %v", tt.perSecond, got, tt.want)
		}
	}
}

func TestPacerSpacesMessages(t *testing.T) {
	var p Pacer
	p.SetInterval(Every(4)) // 250ms apart
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at        time.Duration // since t0
		wantDelay time.Duration
		send      bool
	}{
		{0, 0, true},
		{100 * time.Millisecond, 150 * time.Millisecond, false},
		{250 * time.Millisecond, 0, true},
		{260 * time.Millisecond, 240 * time.Millisecond, false},
		{2 * time.Second, 0, true},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		if got := p.DelayAt(now); got != s.wantDelay {
			t.Errorf("DelayAt(t0+%v) = %v, want %v", s.at, got, s.wantDelay)
		}
		if s.send {
			p.SentAt(now)
		}
	}
}

// Over any simulated second, a sender that always sends as soon as allowed
// sends at most perSecond messages.
func TestPacerRateCap(t *testing.T) {
	const perSecond = 30
	var p Pacer
	p.SetInterval(Every(perSecond))
	var sent []time.Time
	now := time.Unix(0, 0)
	end := now.Add(3 * time.Second)
	for now.Before(end) {
		now = now.Add(p.DelayAt(now))
		p.SentAt(now)
		sent = append(sent, now)
		now = now.Add(time.Millisecond) // the next message is ready 1ms later
	}
	for i := range sent {
		n := 0
		for j := i; j < len(sent) && sent[j].Sub(sent[i]) < time.Second; j++ {
			n++
		}
		if n > perSecond {
			t.Fatalf("%d messages in the second from %v, want at most %d", n, sent[i], perSecond)
		}
	}
}

// A new interval spaces the next message from the last one sent.
func TestPacerSetInterval(t *testing.T) {
	var p Pacer
	if got := p.DelayAt(time.Unix(0, 0)); got != 0 {
		t.Errorf("zero Pacer delays %v, want 0", got)
	}
	p.SetInterval(100 * time.Millisecond)
	t0 := time.Unix(0, 0)
	p.SentAt(t0)
	p.SetInterval(500 * time.Millisecond)
	if got := p.DelayAt(t0.Add(100 * time.Millisecond)); got != 400*time.Millisecond {
		t.Errorf("after SetInterval(500ms), DelayAt(t0+100ms) = %v, want 400ms", got)
	}
	p.SetInterval(-time.Second)
	if got := p.DelayAt(t0); got != 0 {
		t.Errorf("negative interval delays %v, want 0", got)
	}
}
