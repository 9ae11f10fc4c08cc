package resources

import (
	"fmt"
	"runtime"
)

// Handle is the owner's hold on a tracked resource, returned by
// [Registry.Track]. The owner must call [Handle.Release] when done with
// the resource; see the package documentation for what happens if it
// drops the Handle instead. Its methods are safe for concurrent use.
type Handle struct {
	e       *entry
	end     func(reason error) error
	done    chan struct{}   // closed once ended
	reason  error           // why it was ended; written before done is closed
	cleanup runtime.Cleanup // reaps the entry if the Handle is collected unreleased
}

// ID returns the resource's id, e.g. "sub-17".
func (h *Handle) ID() string { return h.e.id }

// Info returns the resource's current description.
func (h *Handle) Info() Info { return h.e.info() }

// Touch records activity: it adds bytes and entries to the resource's
// counters and sets its last activity to now, postponing its idle timeout.
// It takes no lock, does not allocate and reads the clock once. Concurrent
// Touches of one Handle may leave the last activity a few nanoseconds
// short of the latest. Touching an ended resource does nothing useful.
func (h *Handle) Touch(bytes, entries uint64) {
	e := h.e
	e.last.Store(e.r.offset())
	if bytes != 0 {
		e.nbytes.Add(bytes)
	}
	if entries != 0 {
		e.nentries.Add(entries)
	}
}

// Release ends the resource on its owner's behalf, by calling its end func
// with a nil reason, unless it has been ended already, and removes it from
// the registry. The first call that ends it returns end's error; any other
// returns nil at once, without waiting for an end func that another caller
// is running. Release may be called from within the end func.
func (h *Handle) Release() error {
	_, err := h.finish(nil, false)
	return err
}

// Done returns a channel that is closed when the resource has been ended,
// by anyone, just before its end func is called. An owner can select on it
// to learn that the registry ended the resource.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Reason returns why the resource was ended: nil if it is live or its owner
// released it, otherwise the reason given to its end func.
func (h *Handle) Reason() error {
	select {
	case <-h.done:
		return h.reason
	default:
		return nil
	}
}

// finish ends the resource, if no one has yet: it removes it from the
// registry, closes done, calls end with reason, and counts the outcome
// (and an idle close, if idle). ok reports whether this call ended it; err
// is end's error (or its panic) if so.
func (h *Handle) finish(reason error, idle bool) (ok bool, err error) {
	e := h.e
	if !e.state.CompareAndSwap(stateLive, stateEnded) {
		return false, nil
	}
	h.cleanup.Stop()
	r := e.r
	r.remove(e)
	h.reason = reason
	close(h.done)
	if idle {
		r.idleClosed.Add(1)
	}
	if err = callEnd(h.end, reason); err != nil {
		r.failed.Add(1)
	} else {
		r.succeeded.Add(1)
	}
	return true, err
}

// callEnd calls end, turning a panic into an error wrapping [ErrPanic].
func callEnd(end func(error) error, reason error) (err error) {
	if end == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return end(reason)
}
