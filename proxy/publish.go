package proxy

import (
	"context"
	"fmt"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// enqueue queues e for publishing without ever waiting: when the queue is
// full, or no longer drained because Shutdown is over, e is dropped and
// counted.
func (p *Proxy) enqueue(e *pxperfv1.Entry) {
	p.qmu.RLock()
	defer p.qmu.RUnlock()
	if p.qclosed {
		p.drop(1, "the proxy shut down before it was published")
		return
	}
	select {
	case p.queue <- e:
	default:
		p.drop(1, "the publish queue is full")
	}
}

// publishLoop publishes queued entries in batches until Shutdown, then
// publishes what is left until Shutdown's context ends. Entries queued
// after it ends (by handlers that outlived Shutdown's context) are
// dropped.
func (p *Proxy) publishLoop() {
	defer close(p.loopDone)
	defer func() {
		p.qmu.Lock()
		p.qclosed = true
		n := p.discard()
		p.qmu.Unlock()
		if n > 0 {
			p.drop(n, "the proxy shut down before they were published")
		}
	}()
	for {
		select {
		case e := <-p.queue:
			p.publish(p.batch(e))
		case <-p.stopc:
			for {
				b := p.batch(nil)
				if len(b) == 0 {
					return
				}
				if p.loopCtx.Err() != nil {
					p.drop(len(b), "the proxy shut down before they were published")
					return
				}
				p.publish(b)
			}
		}
	}
}

// batch returns first, if not nil, and what else is queued, up to
// MaxBatch entries. A new slice each time: the Publisher may keep it.
func (p *Proxy) batch(first *pxperfv1.Entry) []*pxperfv1.Entry {
	b := make([]*pxperfv1.Entry, 0, min(MaxBatch, len(p.queue)+1))
	if first != nil {
		b = append(b, first)
	}
	for len(b) < MaxBatch {
		select {
		case e := <-p.queue:
			b = append(b, e)
		default:
			return b
		}
	}
	return b
}

// discard empties the queue and returns how many entries it held.
func (p *Proxy) discard() int {
	n := 0
	for {
		select {
		case <-p.queue:
			n++
		default:
			return n
		}
	}
}

// publish sends one batch. Entries of a failed call are dropped, not
// retried: a pxperf that is down must not make the queue fill with stale
// entries that would crowd out new ones.
func (p *Proxy) publish(batch []*pxperfv1.Entry) {
	ctx, cancel := context.WithTimeout(p.loopCtx, p.cfg.PublishTimeout)
	res, err := p.pub.Publish(ctx, &pxperfv1.PublishRequest{Entries: batch})
	cancel()
	if err != nil {
		p.stats.publishErrors.Add(1)
		if !p.failing {
			p.log.Warn("proxy: publishing entries failed; dropping them", "entries", len(batch), "err", err)
		}
		p.failing = true
		p.drop(len(batch), "publishing failed")
		return
	}
	if p.failing {
		p.log.Info("proxy: publishing entries works again")
		p.failing = false
	}
	results := res.GetResults()
	var rejected uint64
	for i, r := range results {
		if rej := r.GetRejection(); rej != nil && i < len(batch) {
			rejected++
			p.log.Debug("proxy: entry rejected", "request_id", batch[i].GetRequestId(), "state", batch[i].GetState(), "reason", rej.GetMessage())
		}
	}
	p.stats.rejected.Add(rejected)
	p.stats.published.Add(uint64(len(batch)) - rejected)
	p.clearAlert()
}

// drop counts n entries that will never be published and raises the alert
// if it is not raised already.
func (p *Proxy) drop(n int, why string) {
	total := p.stats.dropped.Add(uint64(n))
	if p.dropping.Load() {
		return
	}
	p.alertMu.Lock()
	defer p.alertMu.Unlock()
	if p.dropping.Load() {
		return
	}
	p.dropping.Store(true)
	p.dropStart = p.now()
	p.dropBase = total - uint64(n)
	msg := fmt.Sprintf("the proxy is dropping entries (%s); traffic is not affected", why)
	p.log.Warn("proxy: "+msg, "queue_size", p.cfg.QueueSize)
	if p.cfg.OnAlert != nil {
		p.cfg.OnAlert(&pxperfv1.Alert{
			Name:      AlertEntriesDropped,
			Message:   msg,
			State:     pxperfv1.AlertState_ALERT_STATE_FIRING,
			StartTime: timestamppb.New(p.dropStart),
			Value:     float64(len(p.queue)),
			Threshold: float64(p.cfg.QueueSize),
		})
	}
}

// clearAlert clears the alert once the queue has drained to half: the gap
// between the two levels keeps it from flapping.
func (p *Proxy) clearAlert() {
	if !p.dropping.Load() || len(p.queue) > p.cfg.QueueSize/2 {
		return
	}
	p.alertMu.Lock()
	defer p.alertMu.Unlock()
	if !p.dropping.Load() {
		return
	}
	p.dropping.Store(false)
	lost := p.stats.dropped.Load() - p.dropBase
	msg := fmt.Sprintf("the proxy publishes entries again; %d were dropped", lost)
	p.log.Info("proxy: "+msg, "since", p.dropStart)
	if p.cfg.OnAlert != nil {
		p.cfg.OnAlert(&pxperfv1.Alert{
			Name:      AlertEntriesDropped,
			Message:   msg,
			State:     pxperfv1.AlertState_ALERT_STATE_CLEARED,
			StartTime: timestamppb.New(p.dropStart),
			ClearTime: timestamppb.New(p.now()),
			Value:     float64(len(p.queue)),
			Threshold: float64(p.cfg.QueueSize),
		})
	}
}
