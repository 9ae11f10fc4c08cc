package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrRateLimited is wrapped when a producer publishes faster than
// cleanup.producer_rate_limit allows.
var ErrRateLimited = errors.New("producer rate limit reached")

// producerIdle is how long a producer's bucket is kept after its last
// publish: long enough that a producer cannot reset its bucket by pausing.
const producerIdle = time.Minute

// producerLimits meters entries per producer with one token bucket each
// (cleanup.producer_rate_limit entries per second, bursts of one second's
// worth). With a limit of 0 it costs one atomic load per call. It is safe
// for concurrent use.
type producerLimits struct {
	limit atomic.Uint32 // entries per second; 0: no limit

	mu      sync.Mutex
	buckets map[string]*bucket
	limited atomic.Uint64 // publishes refused or slowed
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time // last use, for sweep
}

// setLimit changes the limit for every producer, keeping their buckets'
// state.
func (p *producerLimits) setLimit(perSecond uint32) {
	if p.limit.Swap(perSecond) == perSecond {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.buckets {
		b.lim.SetLimit(rate.Limit(perSecond))
		b.lim.SetBurst(int(perSecond))
	}
}

// bucketLocked returns producer's bucket, creating it full.
func (p *producerLimits) bucketLocked(producer string, limit uint32, now time.Time) *bucket {
	b := p.buckets[producer]
	if b == nil {
		if p.buckets == nil {
			p.buckets = make(map[string]*bucket)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(limit), int(limit))}
		p.buckets[producer] = b
	}
	b.last = now
	return b
}

// allowAt takes n entries from producer's bucket at now if they are there.
// If not, it takes nothing and says how long to wait before retrying, or
// that n is more than one burst can ever hold.
func (p *producerLimits) allowAt(producer string, n int, now time.Time) error {
	limit := p.limit.Load()
	if limit == 0 || n == 0 {
		return nil
	}
	p.mu.Lock()
	b := p.bucketLocked(producer, limit, now)
	r := b.lim.ReserveN(now, n)
	var delay time.Duration
	if r.OK() {
		if delay = r.DelayFrom(now); delay > 0 {
			r.CancelAt(now)
		}
	}
	p.mu.Unlock()
	switch {
	case !r.OK():
		p.limited.Add(1)
		return &RateError{producer: producer, limit: limit, batch: n}
	case delay > 0:
		p.limited.Add(1)
		return &RateError{producer: producer, limit: limit, retry: delay}
	}
	return nil
}

// wait takes n entries from producer's bucket, waiting as long as it takes
// or until ctx ends; batches larger than a burst are taken a burst at a
// time. It is the stream's back-pressure: while it waits, the stream is not
// read.
func (p *producerLimits) wait(ctx context.Context, producer string, n int) error {
	limit := p.limit.Load()
	if limit == 0 || n == 0 {
		return nil
	}
	p.mu.Lock()
	lim := p.bucketLocked(producer, limit, time.Now()).lim
	p.mu.Unlock()
	if lim.TokensAt(time.Now()) < float64(n) {
		p.limited.Add(1)
	}
	for n > 0 {
		k := min(n, max(lim.Burst(), 1))
		if err := lim.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrRateLimited, err)
		}
		n -= k
	}
	return nil
}

// sweepAt forgets the buckets of producers idle since before now minus
// producerIdle, so that the map does not grow with every address ever
// seen.
func (p *producerLimits) sweepAt(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, b := range p.buckets {
		if now.Sub(b.last) > producerIdle {
			delete(p.buckets, k)
		}
	}
}

// RateError says that a producer must slow down: either retry after a
// while (see [RateError.RetryAfter]), or send batches no larger than its
// limit.
type RateError struct {
	producer string
	limit    uint32
	batch    int           // set when the batch can never fit a burst
	retry    time.Duration // set otherwise
}

func (e *RateError) Error() string {
	if e.batch > 0 {
		return fmt.Sprintf("%v: a batch of %d entries is more than producer %s may send at once (cleanup.producer_rate_limit is %d entries/s); send smaller batches",
			ErrRateLimited, e.batch, e.producer, e.limit)
	}
	return fmt.Sprintf("%v: producer %s may publish %d entries/s; retry after %v",
		ErrRateLimited, e.producer, e.limit, e.retry.Round(time.Millisecond))
}

// Unwrap returns [ErrRateLimited].
func (e *RateError) Unwrap() error { return ErrRateLimited }

// RetryAfter is how long the producer should wait before it retries; 0
// when retrying cannot help (the batch is larger than a burst).
func (e *RateError) RetryAfter() time.Duration { return e.retry }

// AllowPublish takes n entries from producer's rate limit
// (cleanup.producer_rate_limit) now if they are there; if not, it takes
// nothing and fails with a [*RateError].
func (e *Engine) AllowPublish(producer string, n int) error {
	return e.limits.allowAt(producer, n, time.Now())
}

// WaitPublish takes n entries from producer's rate limit, waiting as long
// as it takes or until ctx ends.
func (e *Engine) WaitPublish(ctx context.Context, producer string, n int) error {
	return e.limits.wait(ctx, producer, n)
}
