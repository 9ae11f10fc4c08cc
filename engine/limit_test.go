package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestProducerLimitsAllowAt(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var p producerLimits
	if err := p.allowAt("a", 1_000_000, t0); err != nil {
		t.Fatalf("no limit: allowAt = %v, want nil", err)
	}
	p.setLimit(100)
	steps := []struct {
		name      string
		producer  string
		n         int
		at        time.Duration
		wantErr   string // "" for allowed
		wantRetry time.Duration
	}{
		{"a full bucket takes a burst", "a", 100, 0, "", 0},
		{"an empty bucket refuses and says when", "a", 10, 0, "retry after", 100 * time.Millisecond},
		{"a refused call took nothing", "a", 10, 100 * time.Millisecond, "", 0},
		{"another producer has its own bucket", "b", 100, 100 * time.Millisecond, "", 0},
		{"a batch larger than a burst never fits", "c", 101, 100 * time.Millisecond, "smaller batches", 0},
		{"the bucket refills at the limit", "a", 50, 600 * time.Millisecond, "", 0},
	}
	for _, st := range steps {
		err := p.allowAt(st.producer, st.n, t0.Add(st.at))
		if st.wantErr == "" {
			if err != nil {
				t.Errorf("%s: allowAt = %v, want nil", st.name, err)
			}
			continue
		}
		re, ok := errors.AsType[*RateError](err)
		if !ok || !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), st.wantErr) {
			t.Errorf("%s: allowAt = %v, want a rate error mentioning %q", st.name, err, st.wantErr)
			continue
		}
		if re.retry != st.wantRetry {
			t.Errorf("%s: retry after %v, want %v", st.name, re.retry, st.wantRetry)
		}
	}
	if got := p.limited.Load(); got != 2 {
		t.Errorf("limited = %d, want 2", got)
	}

	// Idle producers are forgotten; busy ones kept.
	p.sweepAt(t0.Add(600*time.Millisecond + producerIdle))
	p.mu.Lock()
	_, keptA := p.buckets["a"]
	_, keptB := p.buckets["b"]
	p.mu.Unlock()
	if !keptA || keptB {
		t.Errorf("after sweep: a kept %v, b kept %v; want a kept (used at 600ms), b dropped", keptA, keptB)
	}

	// Turning the limit off lets everything through again.
	p.setLimit(0)
	if err := p.allowAt("a", 1_000_000, t0.Add(time.Second)); err != nil {
		t.Errorf("limit off: allowAt = %v, want nil", err)
	}
}

// wait takes batches larger than a burst a burst at a time, and gives up
// when its context ends.
func TestProducerLimitsWait(t *testing.T) {
	var p producerLimits
	p.setLimit(1_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.wait(ctx, "a", 1_500_000); err != nil {
		t.Fatalf("wait(1.5 bursts) = %v, want nil", err)
	}
	if p.limited.Load() != 1 {
		t.Errorf("limited = %d after a wait that had to wait, want 1", p.limited.Load())
	}
	p.setLimit(1)
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if err := p.wait(short, "a", 5); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with an ended context = %v, want context.Canceled", err)
	}
}
