package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Defaults and limits of [PublisherConfig].
const (
	// DefaultBatchSize is the most entries in one Publish call.
	DefaultBatchSize = 500
	// MaxBatchSize is the server's limit on entries in one Publish call.
	MaxBatchSize = 10000
	// DefaultFlushInterval is the longest an entry waits for its batch to
	// fill.
	DefaultFlushInterval = 100 * time.Millisecond
	// retryUnavailableFirst and retryUnavailableMax are the backoff of
	// PublisherConfig.RetryUnavailable.
	retryUnavailableFirst = 100 * time.Millisecond
	retryUnavailableMax   = 5 * time.Second
	// maxSummaryRejections bounds PublishSummary.Rejections, as the server
	// bounds a PublishStream summary's.
	maxSummaryRejections = 100
)

var (
	// ErrQueueFull is returned by [Publisher.Add] when the queue holds
	// PublisherConfig.QueueSize entries: the server, or the connection,
	// is slower than the producer. The entry is not queued.
	ErrQueueFull = errors.New("client: publisher: queue full")
	// ErrClosed is returned by the methods of a [Publisher] after
	// [Publisher.Close].
	ErrClosed = errors.New("client: publisher: closed")
)

// PublisherConfig configures a [Publisher]. The zero value is ready to use.
type PublisherConfig struct {
	// BatchSize is the most entries sent in one Publish call; a batch goes
	// out as soon as it is full. Zero means [DefaultBatchSize]; at most
	// [MaxBatchSize].
	BatchSize int

	// FlushInterval is the longest an entry waits for its batch to fill
	// before the batch goes out anyway. Zero means
	// [DefaultFlushInterval]; negative is refused.
	FlushInterval time.Duration

	// QueueSize is the most entries held waiting to be sent (beyond the
	// batch in flight); [Publisher.Add] refuses more. Zero means ten
	// batches; below BatchSize is refused.
	QueueSize int

	// OnBatch, when set, is called after each Publish call with the
	// entries of the batch and either their results (results[i] is the
	// fate of entries[i]: an id, or a rejection) or the error that failed
	// the call. Use it to learn the ids given, or to publish again the
	// entries of a failed batch (see [Publisher] for what a failed batch
	// means). It runs on the publisher's goroutine and must return
	// quickly; it may call [Publisher.Add], but not AddWait, Flush or
	// Close, which would wait for it.
	OnBatch func(entries []*pxperfv1.Entry, results []*pxperfv1.PublishResult, err error)

	// RetryUnavailable names each batch (PublishRequest.batch_id) and
	// sends a batch whose call failed with UNAVAILABLE or
	// DEADLINE_EXCEEDED again, under the same name, after a backoff
	// (100 ms doubling to 5 s), until the batch is answered or the
	// publisher stops. The server keeps each entry of a named batch once
	// for a retry within two minutes of the first try, so delivery is
	// exactly once; a client given several nodes of a cluster
	// (Config.Addresses) moves to another node when one fails. A server
	// in embedded mode forgets its named batches when it restarts: a batch
	// it took just before a crash would be stored again. The zero value
	// sends each batch once.
	RetryUnavailable bool
}

// withDefaults returns cfg with zero fields defaulted, or an error naming
// a field that is out of range.
func (cfg PublisherConfig) withDefaults() (PublisherConfig, error) {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 10 * cfg.BatchSize
	}
	switch {
	case cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize:
		return cfg, fmt.Errorf("client: PublisherConfig.BatchSize %d: want 1..%d", cfg.BatchSize, MaxBatchSize)
	case cfg.FlushInterval < 0:
		return cfg, fmt.Errorf("client: PublisherConfig.FlushInterval %v is negative", cfg.FlushInterval)
	case cfg.QueueSize < cfg.BatchSize:
		return cfg, fmt.Errorf("client: PublisherConfig.QueueSize %d is below BatchSize %d", cfg.QueueSize, cfg.BatchSize)
	}
	return cfg, nil
}

// PublishSummary counts what became of the entries given to a [Publisher].
// Accepted + Rejected + Failed + Unknown is the number of entries whose fate
// is settled; after [Publisher.Close] it is every entry added.
type PublishSummary struct {
	// Accepted entries were given an id.
	Accepted uint64
	// Rejected entries were refused one by one by the server (see
	// Rejections): fix them, do not retry them as they are.
	Rejected uint64
	// Failed entries were certainly not accepted: their Publish call was
	// refused as a whole (INVALID_ARGUMENT, PERMISSION_DENIED,
	// UNAUTHENTICATED, RESOURCE_EXHAUSTED without a retry delay, and the
	// like), or never made because the publisher stopped first.
	Failed uint64
	// Unknown entries were in a Publish call that broke (UNAVAILABLE,
	// DEADLINE_EXCEEDED, CANCELED, INTERNAL…) after it may have reached the
	// server: they may or may not have been accepted.
	Unknown uint64
	// FirstID and LastID are the ids of the first and last entries
	// accepted; 0 when none was.
	FirstID, LastID uint64
	// Rejections lists the first rejections (at most 100), in order.
	Rejections []PublishRejection
}

// PublishRejection is an entry the server refused, with why.
type PublishRejection struct {
	// Entry is the entry as it was given to [Publisher.Add].
	Entry *pxperfv1.Entry
	// Rejection says what to fix.
	Rejection *pxperfv1.Rejection
}

// Publisher batches entries for the caller and publishes them with Publish
// calls, one call at a time, in the order they were added, so that the ids
// the server gives follow that order (a completion published after its
// pending entry stays after it). Create it with [Client.NewPublisher]. It is
// safe for concurrent use. The caller must call [Publisher.Close], which
// sends what is queued and stops the publisher's goroutine.
//
// [Publisher.Add] never blocks: a producer, such as a proxy recording its
// traffic, is not slowed when pxperf is. When the queue is full, Add returns
// [ErrQueueFull] and the producer decides (drop and count, or wait with
// [Publisher.AddWait]).
//
// Delivery is at most once (exactly once with
// [PublisherConfig.RetryUnavailable]). A batch refused for the producer
// rate limit (RESOURCE_EXHAUSTED with a RetryInfo delay: nothing was
// accepted) is sent again after that delay. Any other failed call is not sent again: its
// entries are counted as Failed when the error shows the server accepted
// none of them, else as Unknown, since the server may have accepted them
// before the call broke. For at least once, publish a failed batch again
// from [PublisherConfig.OnBatch]; the server may then hold some entries
// twice, each under its own id (a consumer can tell them apart by
// request_id).
//
// Why Publish calls and not one PublishStream: each call's answer gives every
// entry its id or its rejection, and a broken call leaves only its own batch
// in doubt, where a broken stream leaves every entry sent since the last
// summary in doubt.
type Publisher struct {
	c      *Client
	cfg    PublisherConfig
	ctx    context.Context // ends the goroutine; cancelled by Close when its ctx ends
	cancel context.CancelFunc
	wake   chan struct{} // 1-buffered: tells the goroutine to look at the queue
	done   chan struct{} // closed when the goroutine has returned

	mu        sync.Mutex
	queue     []*pxperfv1.Entry
	oldest    time.Time // when queue[0], or an entry before it, was added
	added     uint64    // entries ever queued
	taken     uint64    // entries ever taken from the queue to be sent
	settled   uint64    // entries ever taken whose fate is in sum
	flushTo   uint64    // send partial batches while taken < flushTo
	space     chan struct{}
	progress  chan struct{}
	closed    bool
	sum       PublishSummary
	failures  int   // failed calls
	reported  int   // failed calls Flush has reported
	lastError error // the latest failed call's error
}

// NewPublisher returns a [Publisher] that publishes on c until ctx ends or
// [Publisher.Close] is called. When ctx ends, the call in flight is
// cancelled and queued entries are not sent (they count as Failed); Close
// must still be called.
func (c *Client) NewPublisher(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Publisher{
		c:        c,
		cfg:      cfg,
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		space:    make(chan struct{}),
		progress: make(chan struct{}),
	}
	go p.sendLoop()
	return p, nil
}

// Add queues e to be published and returns at once; e must not be changed
// afterwards. It returns [ErrQueueFull] when the queue is full, [ErrClosed]
// after Close, and the publisher's context error once that context has
// ended; the entry is then not queued.
func (p *Publisher) Add(e *pxperfv1.Entry) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refuseLocked(); err != nil {
		return err
	}
	if len(p.queue) >= p.cfg.QueueSize {
		return ErrQueueFull
	}
	p.addLocked(e)
	return nil
}

// AddWait is [Publisher.Add] that waits for room in the queue, until ctx
// ends, instead of returning [ErrQueueFull]. If ctx ends first, it returns
// ctx.Err() and e is not queued.
func (p *Publisher) AddWait(ctx context.Context, e *pxperfv1.Entry) error {
	for {
		p.mu.Lock()
		if err := p.refuseLocked(); err != nil {
			p.mu.Unlock()
			return err
		}
		if len(p.queue) < p.cfg.QueueSize {
			p.addLocked(e)
			p.mu.Unlock()
			return nil
		}
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// refuseLocked returns why nothing can be added, or nil.
func (p *Publisher) refuseLocked() error {
	if p.closed {
		return ErrClosed
	}
	if err := p.ctx.Err(); err != nil {
		return fmt.Errorf("client: publisher: stopped: %w", err)
	}
	return nil
}

func (p *Publisher) addLocked(e *pxperfv1.Entry) {
	if len(p.queue) == 0 {
		p.oldest = time.Now() // once per batch, not per entry
	}
	p.queue = append(p.queue, e)
	p.added++
	if len(p.queue) == p.cfg.BatchSize || len(p.queue) == 1 {
		p.signal() // a full batch to send, or a flush timer to start
	}
}

// signal wakes the goroutine without blocking.
func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush sends what is queued now without waiting for full batches, and
// returns once every entry added before it was called has been sent and
// answered, or ctx ends (it then returns ctx.Err()). It returns an error
// when Publish calls failed since the previous Flush returned (their
// entries count as Failed or Unknown in the summary), wrapping the last
// one; else nil. Rejected entries are not errors.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	target := p.added
	p.flushTo = max(p.flushTo, target)
	p.mu.Unlock()
	p.signal()
	for {
		p.mu.Lock()
		settled, progress := p.settled, p.progress
		if settled >= target {
			var err error
			if p.failures > p.reported {
				err = fmt.Errorf("client: publisher: %d calls failed since the last flush; the last error: %w", p.failures-p.reported, p.lastError)
				p.reported = p.failures
			}
			p.mu.Unlock()
			return err
		}
		p.mu.Unlock()
		select {
		case <-progress:
		case <-p.done:
			// Once the goroutine has returned, every entry is settled:
			// the next pass returns.
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close sends what is queued, waits for it to be answered, stops the
// publisher and returns the summary of every entry added. If ctx ends first,
// the call in flight is cancelled (its entries count as Unknown), the rest is
// not sent (Failed), and Close returns ctx.Err(). Otherwise it returns the
// error of the last failed Publish call, if any (see the summary for how
// many entries that touched), or nil; rejected entries are not errors.
// Calling Close again returns [ErrClosed] with the same summary.
func (p *Publisher) Close(ctx context.Context) (PublishSummary, error) {
	p.mu.Lock()
	again := p.closed
	p.closed = true
	p.mu.Unlock()
	p.signal()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = ctx.Err()
		p.cancel()
		<-p.done // the call in flight returns once cancelled
	}
	p.cancel()
	sum := p.Summary()
	switch {
	case again:
		return sum, ErrClosed
	case err != nil:
		return sum, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastError != nil {
		return sum, fmt.Errorf("client: publisher: %d calls failed, %d entries failed and %d of unknown fate; the last error: %w", p.failures, sum.Failed, sum.Unknown, p.lastError)
	}
	return sum, nil
}

// Summary returns what has become of the entries sent so far. Entries still
// queued or in flight are not in it yet.
func (p *Publisher) Summary() PublishSummary {
	p.mu.Lock()
	defer p.mu.Unlock()
	sum := p.sum
	sum.Rejections = append([]PublishRejection(nil), p.sum.Rejections...)
	return sum
}

// sendLoop sends batches, one call at a time, until the publisher is
// closed and its queue empty, or its context ends.
func (p *Publisher) sendLoop() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		batch, wait, stop := p.next()
		if stop {
			return
		}
		if batch != nil {
			p.send(batch)
			continue
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.ctx.Done():
		}
		timer.Stop()
	}
}

// next takes the next batch to send from the queue, if one is due; else it
// says how long until one is (0: until woken). stop is true when the loop
// must end; what is queued then is counted as Failed.
func (p *Publisher) next() (batch []*pxperfv1.Entry, wait time.Duration, stop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.queue)
	if err := p.ctx.Err(); err != nil {
		if n > 0 {
			p.taken += uint64(n)
			p.settleLocked(uint64(n), func() {
				p.sum.Failed += uint64(n)
				p.failures++
				p.lastError = fmt.Errorf("%d entries not sent: stopped: %w", n, err)
			})
			p.queue = nil
			p.freeSpaceLocked()
		}
		return nil, 0, true
	}
	if n == 0 {
		return nil, 0, p.closed
	}
	age := time.Since(p.oldest)
	if n < p.cfg.BatchSize && !p.closed && p.taken >= p.flushTo && age < p.cfg.FlushInterval {
		return nil, p.cfg.FlushInterval - age, false
	}
	k := min(n, p.cfg.BatchSize)
	batch = make([]*pxperfv1.Entry, k)
	copy(batch, p.queue)
	// Shift rather than reslice, so the queue's array does not creep
	// forward and grow without bound; the queue is at most QueueSize.
	rest := copy(p.queue, p.queue[k:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	// p.oldest stays: the entries left were added after it, so they go out
	// no later than FlushInterval after being added.
	p.taken += uint64(k)
	p.freeSpaceLocked()
	return batch, 0, false
}

// freeSpaceLocked wakes AddWait callers.
func (p *Publisher) freeSpaceLocked() {
	close(p.space)
	p.space = make(chan struct{})
}

// settleLocked records the fate of n more entries with record, and wakes
// Flush callers.
func (p *Publisher) settleLocked(n uint64, record func()) {
	record()
	p.settled += n
	close(p.progress)
	p.progress = make(chan struct{})
}

// send publishes one batch and records the outcome.
func (p *Publisher) send(batch []*pxperfv1.Entry) {
	results, unsent, err := p.publish(batch)
	n := uint64(len(batch))
	p.mu.Lock()
	p.settleLocked(n, func() {
		if err != nil {
			p.failures++
			p.lastError = fmt.Errorf("batch of %d entries: %w", n, err)
			if unsent || notAccepted(err) {
				p.sum.Failed += n
			} else {
				p.sum.Unknown += n
			}
			return
		}
		for i, r := range results {
			if rej := r.GetRejection(); rej != nil {
				p.sum.Rejected++
				if len(p.sum.Rejections) < maxSummaryRejections {
					p.sum.Rejections = append(p.sum.Rejections, PublishRejection{Entry: batch[i], Rejection: rej})
				}
				continue
			}
			p.sum.Accepted++
			if p.sum.FirstID == 0 {
				p.sum.FirstID = r.GetId()
			}
			p.sum.LastID = r.GetId()
		}
	})
	p.mu.Unlock()
	if p.cfg.OnBatch != nil {
		p.cfg.OnBatch(batch, results, err)
	}
}

// publish makes the Publish call for batch, again while the server refuses
// it for the producer rate limit with a delay to wait, and with
// RetryUnavailable while the call fails with UNAVAILABLE or
// DEADLINE_EXCEEDED. unsent is true when the publisher stopped while
// waiting out the rate limit: the batch was then refused, not accepted.
func (p *Publisher) publish(batch []*pxperfv1.Entry) (results []*pxperfv1.PublishResult, unsent bool, err error) {
	var batchID string
	if p.cfg.RetryUnavailable {
		batchID = rand.Text()
	}
	backoff := retryUnavailableFirst
	for {
		results, err = p.c.PublishBatch(p.ctx, batchID, batch...)
		delay := retryDelay(err)
		switch code := status.Code(err); {
		case err == nil:
			return results, false, nil
		case code == codes.ResourceExhausted && delay > 0:
		case p.cfg.RetryUnavailable && (code == codes.Unavailable || code == codes.DeadlineExceeded) && p.ctx.Err() == nil:
			delay, backoff = max(delay, backoff), min(2*backoff, retryUnavailableMax)
		default:
			return results, false, err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			// Refused for the rate limit, the batch was not taken; a
			// call that broke may have been.
			limited := status.Code(err) == codes.ResourceExhausted
			return nil, limited, fmt.Errorf("stopped while waiting %v to send the batch again (%v): %w", delay, err, p.ctx.Err())
		}
	}
}

// notAccepted reports whether a failed Publish call certainly had none of
// its entries accepted: the server refused the call before taking any (it
// takes all of a call's valid entries or none), or the client refused to
// send it. Other failures (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELED,
// INTERNAL, UNKNOWN…) may have happened after the server took the entries.
func notAccepted(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.PermissionDenied,
		codes.Unauthenticated, codes.Unimplemented, codes.FailedPrecondition, codes.OutOfRange:
		return true
	}
	return false
}
