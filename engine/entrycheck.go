package engine

import (
	"slices"

	"github.com/pxperf/pxperf/internal/contract"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// entryChecker answers, fast, whether an entry obeys every rule that the
// contract (proto/pxperf/v1/entry.proto) sets on it. Evaluating the rules
// with protovalidate took about half of the ingest path's CPU; this plain
// Go takes a few percent. It only ever says yes or "ask protovalidate":
// an entry it refuses is checked again by protovalidate, which names the
// fields that break a rule, so the two cannot disagree on what a client
// sees, only on speed. It also refuses invalid timestamps and durations
// (nanos out of range), which protovalidate lets through and store.Check
// then refuses. TestEntryCheckerAgreesWithProtovalidate and
// FuzzEntryChecker hold it to protovalidate's verdict.
type entryChecker struct {
	methods []string // Entry.method's "in" list, read from the contract
}

// newEntryChecker reads the rules it cannot hard-code from the contract.
func newEntryChecker() entryChecker {
	return entryChecker{methods: contract.Rules(&pxperfv1.Entry{}, "method").GetString().GetIn()}
}

// ok reports whether e obeys every rule on Entry and the messages in it.
func (c entryChecker) ok(e *pxperfv1.Entry) bool {
	switch {
	case len(e.RequestId) > 128,
		e.StartTime == nil,
		!slices.Contains(c.methods, e.Method),
		e.Url == "", len(e.Url) > 8192,
		len(e.Host) > 255,
		!defined(pxperfv1.EntryState_name, int32(e.State)),
		e.StatusCode < 0, e.StatusCode > 599,
		len(e.RequestHeaders) > 256, len(e.ResponseHeaders) > 256,
		e.BytesSent < 0, e.BytesReceived < 0,
		!defined(pxperfv1.Priority_name, int32(e.Priority)),
		// The message-level rules.
		e.State == pxperfv1.EntryState_ENTRY_STATE_COMPLETED && e.StatusCode == 0,
		e.State == pxperfv1.EntryState_ENTRY_STATE_FAILED && e.GetError().GetKind() == pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED:
		return false
	}
	if d := e.ProxyDecision; d != nil {
		if !defined(pxperfv1.Route_name, int32(d.Route)) || len(d.Upstream) > 255 ||
			len(d.FailedUpstreams) > 16 || !defined(pxperfv1.DecisionSource_name, int32(d.Source)) {
			return false
		}
		for _, u := range d.FailedUpstreams {
			if len(u) > 255 {
				return false
			}
		}
	}
	if a := e.UpstreamAuth; a != nil && (!defined(pxperfv1.AuthMethod_name, int32(a.Method)) || !defined(pxperfv1.AuthOutcome_name, int32(a.Outcome))) {
		return false
	}
	if er := e.Error; er != nil && (!defined(pxperfv1.ErrorKind_name, int32(er.Kind)) || len(er.Message) > 4096) {
		return false
	}
	if !headersOK(e.RequestHeaders) || !headersOK(e.ResponseHeaders) {
		return false
	}
	if !bodyOK(e.ResponseBody) || !bodyOK(e.RequestBody) {
		return false
	}
	if e.StartTime.CheckValid() != nil {
		return false // store.Check names it
	}
	if t := e.Timings; t != nil {
		for _, d := range []*durationpb.Duration{t.Dns, t.Connect, t.TlsHandshake, t.TimeToFirstByte, t.Total} {
			// An invalid duration goes to the slow path too; store.Check
			// refuses it.
			if d != nil && !(d.CheckValid() == nil && d.Seconds >= 0 && d.Nanos >= 0) {
				return false
			}
		}
	}
	return true
}

func headersOK(hs []*pxperfv1.Header) bool {
	for _, h := range hs {
		// A name's min_len of 1 counts characters: any byte makes one.
		if h.Name == "" || len(h.Name) > 256 || len(h.Value) > 16384 {
			return false
		}
	}
	return true
}

// bodyOK reports whether b, a response or request body, obeys the rules
// on Body; nil does.
func bodyOK(b *pxperfv1.Body) bool {
	return b == nil || len(b.ContentType) <= 256 && b.OriginalSize >= 0
}

// defined reports whether v is a value of the enum whose names are names.
func defined(names map[int32]string, v int32) bool {
	_, ok := names[v]
	return ok
}
