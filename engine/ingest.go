package engine

import (
	"context"
	"errors"
	"slices"
	"strings"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/cluster"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/protobuf/proto"
)

// Ingest checks each entry, appends the valid ones to the store in one
// batch (which queues them for the archive, in id order), and reports each
// entry's fate to result, in order of index: its id, or why it was
// rejected. refused holds, by index, the entries the caller already
// refused (those it could not decode); nil for none.
//
// In cluster mode the valid entries go to the cluster's stream instead,
// and Ingest returns once the stream holds them, with the Mark to give
// [Engine.WaitApplied] for this node to hold them too. It fails, wrapping
// cluster.ErrUnavailable and reporting nothing to result, when the stream
// does not take them: then none may be taken as accepted. batchID, the
// producer's name for the batch (empty for none), makes a retry of it store
// nothing again and give the same ids: in cluster mode within the stream's
// deduplication window, in embedded mode while the server runs (see
// batchLog).
func (e *Engine) Ingest(ctx context.Context, batchID string, entries []*pxperfv1.Entry, refused map[int]*pxperfv1.Rejection, result func(i int, id uint64, rej *pxperfv1.Rejection)) (Mark, error) {
	in, err := e.StartIngest(ctx, nil, batchID, entries, refused)
	if err != nil {
		return Mark{}, err
	}
	return in.Finish(ctx, result)
}

// Ingesting is an [Engine.Ingest] under way.
type Ingesting struct {
	rejections []*pxperfv1.Rejection // by index; nil for the valid entries
	ids        []uint64              // of the valid entries, once known
	mark       Mark
	pending    bool // holds a PENDING entry with a request id
	chain      *cluster.Chain
	// finish, in cluster mode, waits for the stream to take what the
	// ingest sent it.
	finish func(ctx context.Context) ([]uint64, Mark, error)
}

// StartIngest is the first half of [Engine.Ingest]: it checks the entries
// and, in embedded mode, stores the valid ones; in cluster mode it sends
// them on their way to the cluster's stream, after those of every
// StartIngest before, and returns without waiting for the stream to take
// them. [Ingesting.Finish] must follow. Several ingests may be under way
// at once, so that a stream of batches keeps the cluster's stream busy;
// only a batch that completes a PENDING entry of a batch still under way
// must wait for that one to finish first (see [Ingesting.Pending]). after
// is the ingest of the producer's batch before this one (nil for none):
// should that one fail, this one fails too rather than be stored after it.
func (e *Engine) StartIngest(ctx context.Context, after *Ingesting, batchID string, entries []*pxperfv1.Entry, refused map[int]*pxperfv1.Rejection) (*Ingesting, error) {
	valid := make([]*pxperfv1.Entry, 0, len(entries))
	var positions []int // of the valid entries in entries, for cluster mode
	if e.cluster != nil {
		positions = make([]int, 0, len(entries))
	}
	in := &Ingesting{rejections: make([]*pxperfv1.Rejection, len(entries))}
	for i, en := range entries {
		rej := refused[i]
		if rej == nil {
			rej = e.check(en)
		}
		if rej != nil {
			in.rejections[i] = rej
			e.rejected.Add(1)
			continue
		}
		valid = append(valid, en)
		if positions != nil {
			positions = append(positions, i)
		}
	}
	if e.cluster != nil {
		in.chain = new(cluster.Chain)
		if after != nil && after.chain != nil {
			in.chain = after.chain
		}
		var err error
		if in.finish, err = e.startCluster(ctx, in.chain, batchID, valid, positions); err != nil {
			return nil, err
		}
		in.pending = holdsPending(valid)
		return in, nil
	}
	e.ingestMu.Lock()
	defer e.ingestMu.Unlock()
	var ok bool
	if in.ids, ok = e.batches.get(batchID, len(valid)); !ok {
		e.reserveIDs(len(valid))
		stored := e.store.Append(valid)
		e.archiveStored(stored)
		in.ids = make([]uint64, len(stored))
		for i, st := range stored {
			in.ids[i] = st.ID
		}
		e.batches.put(batchID, in.ids)
	}
	return in, nil
}

// holdsPending reports whether any of entries, normalised, is PENDING with
// a request id: a later entry may complete it.
func holdsPending(entries []*pxperfv1.Entry) bool {
	return slices.ContainsFunc(entries, func(en *pxperfv1.Entry) bool {
		return en.GetRequestId() != "" && en.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING
	})
}

// Pending reports whether the ingest holds a PENDING entry with a request
// id, which a later batch may complete: that batch must not start before
// this one finishes, or it would not know the PENDING entry's id. Always
// false in embedded mode, where an ingest is done once started.
func (in *Ingesting) Pending() bool { return in.pending }

// Finish is the second half of [Engine.Ingest]: in cluster mode it waits
// for the cluster's stream to take the entries; then it reports each
// entry's fate to result, and returns the Mark to give
// [Engine.WaitApplied]. When it fails, nothing is reported to result.
func (in *Ingesting) Finish(ctx context.Context, result func(i int, id uint64, rej *pxperfv1.Rejection)) (Mark, error) {
	if in.finish != nil {
		var err error
		if in.ids, in.mark, err = in.finish(ctx); err != nil {
			return Mark{}, err
		}
	}
	ids := in.ids
	for i, rej := range in.rejections {
		if rej != nil {
			result(i, 0, rej)
			continue
		}
		result(i, ids[0], nil)
		ids = ids[1:]
	}
	return in.mark, nil
}

// check returns why en cannot be accepted, or nil.
func (e *Engine) check(en *pxperfv1.Entry) *pxperfv1.Rejection {
	var fvs []*pxperfv1.FieldViolation
	var err error
	if !e.entries.ok(en) {
		// Only protovalidate names the fields; it agrees on the verdict.
		fvs, err = Violations(e.validator, en, "")
	}
	if err != nil {
		return &pxperfv1.Rejection{Message: "cannot validate entry: " + err.Error()}
	}
	if len(fvs) == 0 {
		var ee *store.EntryError
		if err := store.Check(en); errors.As(err, &ee) {
			return &pxperfv1.Rejection{
				Message:         err.Error(),
				FieldViolations: []*pxperfv1.FieldViolation{{Field: ee.Field, Description: ee.Reason}},
			}
		}
		return nil
	}
	return &pxperfv1.Rejection{FieldViolations: fvs, Message: Describe(fvs)}
}

// Violations returns the contract's rules that msg breaks, with field
// paths under prefix (none when prefix is ""). The error is for rules that
// cannot be evaluated, a bug in the proto.
func Violations(v protovalidate.Validator, msg proto.Message, prefix string) ([]*pxperfv1.FieldViolation, error) {
	err := v.Validate(msg)
	if err == nil {
		return nil, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return nil, err
	}
	fvs := make([]*pxperfv1.FieldViolation, 0, len(verr.Violations))
	for _, viol := range verr.Violations {
		field := protovalidate.FieldPathString(viol.Proto.GetField())
		if prefix != "" {
			field = strings.TrimSuffix(prefix+"."+field, ".")
		}
		desc := viol.Proto.GetMessage()
		if desc == "" {
			desc = "breaks rule " + viol.Proto.GetRuleId()
		}
		fvs = append(fvs, &pxperfv1.FieldViolation{Field: field, Description: desc})
	}
	return fvs, nil
}

// Describe joins violations into one line: "field: description; …".
func Describe(fvs []*pxperfv1.FieldViolation) string {
	var b strings.Builder
	for i, fv := range fvs {
		if i > 0 {
			b.WriteString("; ")
		}
		if fv.GetField() != "" {
			b.WriteString(fv.GetField())
			b.WriteString(": ")
		}
		b.WriteString(fv.GetDescription())
	}
	return b.String()
}

// archiveStored queues what the store just stored for the archive. The
// caller holds e.ingestMu, so that entries reach the archive in id order.
func (e *Engine) archiveStored(stored []store.Stored) {
	if e.archive == nil || len(stored) == 0 {
		return
	}
	items := make([]archive.Item, len(stored))
	for i, st := range stored {
		items[i] = archive.Item{Entry: st.Entry, Body: st.Body, RequestBody: st.RequestBody}
	}
	if err := e.archive.Append(items); err != nil {
		// Only after Close, at shutdown: the entries are in memory still.
		e.log.Warn("entries not archived", "entries", len(items), "err", err)
		return
	}
	if e.archiveFile != nil {
		e.archiveFile.Touch(0, uint64(len(items)))
	}
}

// reserveIDs has the archive's id lease cover the ids the next n new
// entries may take, so that they are never given again after a crash. The
// caller holds ingestMu, so the store's next id does not move meanwhile.
// When the lease cannot be written (the disk is full), ingest goes on: the
// entries are served from memory, and only a crash before the disk
// recovers could give one of their ids again; the archive counts the
// error and the monitor alerts on it.
func (e *Engine) reserveIDs(n int) {
	if e.archive == nil || n == 0 {
		return
	}
	_, next := e.store.Bounds()
	if err := e.archive.ReserveIDs(next + uint64(n) - 1); err != nil {
		e.log.Warn("cannot reserve ids ahead in the archive's lease", "err", err)
	}
}
