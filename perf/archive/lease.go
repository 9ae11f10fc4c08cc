package archive

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// leaseName is the file in the archive directory that holds the highest
// id the server may have handed out. Recovery ignores it: it does not
// start with the archive files' prefix.
const leaseName = "ids.lease"

// leaseBlock is how many ids one extension of the lease reserves ahead:
// one fsynced write per million ids (about one a second at full ingest
// speed), and at most a million ids skipped after a crash.
const leaseBlock = 1 << 20

// lease keeps ids from being handed out twice across crashes. The ids of
// entries still queued for the writer when the process dies are known to
// the clients that got them, not to the files; so before the service
// hands out an id, the lease must cover it on disk, and after a restart
// ids continue after the lease as well as after the last id archived.
type lease struct {
	reserved atomic.Uint64 // highest id covered on disk

	mu sync.Mutex // serialises extensions
}

// loadLease reads the lease in a's directory; a missing file is a lease
// of 0.
func loadLease(a *Archive) (*lease, error) {
	l := &lease{}
	b, err := os.ReadFile(a.path(leaseName))
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: read the id lease: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// Written by rename of an fsynced file, it cannot be torn: this is
		// damage from outside, which only a person can judge.
		return nil, fmt.Errorf("archive: the id lease %s holds %q, not an id; put the highest id ever handed out in it (or a larger one), or remove it if no client keeps ids from before", a.path(leaseName), b)
	}
	l.reserved.Store(n)
	return l, nil
}

// ReserveIDs makes sure that ids up to last are covered by the lease on
// disk, extending it (one fsynced write) when they are not. The service
// calls it before handing out ids, so that no id is given twice across a
// crash, whatever the archive had written. It is cheap when last is
// already covered, and safe for concurrent use.
func (a *Archive) ReserveIDs(last uint64) error {
	l := a.lease
	if last <= l.reserved.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if last <= l.reserved.Load() {
		return nil
	}
	n := last + leaseBlock
	if err := a.writeFileAtomic(leaseName, []byte(strconv.FormatUint(n, 10)+"\n")); err != nil {
		a.recordError(fmt.Errorf("write the id lease: %w", err))
		return fmt.Errorf("archive: reserve ids up to %d: %w", last, err)
	}
	l.reserved.Store(n)
	return nil
}

// NextID returns the first id that is certainly free: above every id
// archived or appended and every id the lease covers. A server that
// continues ids across restarts starts there after Open.
func (a *Archive) NextID() uint64 {
	return max(a.LastID(), a.lease.reserved.Load()) + 1
}

// trimLease brings the lease down to the last id appended, once everything
// appended is on disk (at Close): a clean restart then continues right
// after it, and only a crash skips ids.
func (a *Archive) trimLease() error {
	l := a.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	last := a.LastID()
	if l.reserved.Load() <= last {
		return nil
	}
	if err := a.writeFileAtomic(leaseName, []byte(strconv.FormatUint(last, 10)+"\n")); err != nil {
		return fmt.Errorf("archive: trim the id lease to %d: %w", last, err)
	}
	l.reserved.Store(last)
	return nil
}
