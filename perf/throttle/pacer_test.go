package throttle

import (
	"testing"
	"time"
)

func TestNewPacerRejectsZeroRate(t *testing.T) {
	if _, err := NewPacer(0); err == nil {
		t.Fatal("NewPacer(0) succeeded, want an error")
	}
}

func TestPacerSpacesMessages(t *testing.T) {
	p, err := NewPacer(4) // 250ms apart
	if err != nil {
		t.Fatal(err)
	}
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
	p, err := NewPacer(perSecond)
	if err != nil {
		t.Fatal(err)
	}
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

func TestPacerSetRate(t *testing.T) {
	p, err := NewPacer(10)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	p.SentAt(t0)
	if err := p.SetRate(2); err != nil {
		t.Fatal(err)
	}
	if got := p.DelayAt(t0.Add(100 * time.Millisecond)); got != 400*time.Millisecond {
		t.Errorf("after SetRate(2), DelayAt(t0+100ms) = %v, want 400ms", got)
	}
	if err := p.SetRate(0); err == nil || p.Interval() != 500*time.Millisecond {
		t.Errorf("SetRate(0) = %v, interval %v; want an error and the rate unchanged", err, p.Interval())
	}
}
