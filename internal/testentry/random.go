package testentry

import (
	"math/rand/v2"
	"strings"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Random makes an entry whose every field is, at random, unset, valid,
// at a limit, or just past it.
func Random(r *rand.Rand) *pxperfv1.Entry {
	// Each field is past its limit only now and then, so that about half
	// the entries are valid and both verdicts are exercised.
	str := func(limit int) string {
		switch r.IntN(60) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", limit)
		case 2:
			return strings.Repeat("x", limit+1)
		default:
			return "ok"
		}
	}
	pick := func(vs ...int64) int64 { return vs[r.IntN(len(vs))] }
	rarely := func(good, bad int64) int64 {
		if r.IntN(40) == 0 {
			return bad
		}
		return good
	}
	enum := func() int32 { return int32(rarely(pick(0, 1, 2, 3), pick(99, -1))) }
	dur := func() *durationpb.Duration {
		switch r.IntN(40) {
		case 0:
			return durationpb.New(-time.Millisecond)
		case 1:
			return &durationpb.Duration{Seconds: 1, Nanos: -1} // invalid
		case 2, 3, 4, 5, 6, 7, 8, 9:
			return nil
		default:
			return durationpb.New(time.Duration(r.IntN(1e9)))
		}
	}
	e := &pxperfv1.Entry{
		RequestId:     str(128),
		Method:        []string{"GET", "CONNECT", "QUERY", "POST", "PROPFIND", "get", "BREW", ""}[rarely(int64(r.IntN(5)), int64(5+r.IntN(3)))],
		Url:           str(8192),
		Host:          str(255),
		State:         pxperfv1.EntryState(enum()),
		StatusCode:    int32(rarely(pick(0, 200, 599), pick(600, -1))),
		BytesSent:     rarely(10, -1),
		BytesReceived: rarely(0, -1),
		Priority:      pxperfv1.Priority(enum()),
	}
	if r.IntN(40) > 0 {
		e.StartTime = timestamppb.Now()
	}
	if r.IntN(2) == 0 {
		e.ProxyDecision = &pxperfv1.ProxyDecision{Route: pxperfv1.Route(enum()), Upstream: str(255), Source: pxperfv1.DecisionSource(enum())}
		for range rarely(int64(r.IntN(4)), 17) {
			e.ProxyDecision.FailedUpstreams = append(e.ProxyDecision.FailedUpstreams, str(255))
		}
	}
	if r.IntN(2) == 0 {
		e.UpstreamAuth = &pxperfv1.UpstreamAuth{Method: pxperfv1.AuthMethod(enum()), Outcome: pxperfv1.AuthOutcome(enum())}
	}
	if r.IntN(2) == 0 {
		e.Error = &pxperfv1.EntryError{Kind: pxperfv1.ErrorKind(enum()), Message: str(4096)}
	}
	for range rarely(pick(0, 1, 3), 257) {
		e.RequestHeaders = append(e.RequestHeaders, &pxperfv1.Header{Name: str(256), Value: str(16384)})
	}
	for range pick(0, 2) {
		e.ResponseHeaders = append(e.ResponseHeaders, &pxperfv1.Header{Name: str(256), Value: str(16384)})
	}
	if r.IntN(2) == 0 {
		e.ResponseBody = &pxperfv1.Body{Data: []byte("b"), ContentType: str(256), OriginalSize: rarely(5, -1)}
	}
	if r.IntN(2) == 0 {
		e.Timings = &pxperfv1.Timings{Dns: dur(), Connect: dur(), TlsHandshake: dur(), TimeToFirstByte: dur(), Total: dur()}
	}
	if r.IntN(3) == 0 {
		e.RequestBody = &pxperfv1.Body{Data: []byte("q=1"), ContentType: str(256), OriginalSize: rarely(3, -1)}
	}
	if r.IntN(4) == 0 {
		e.ReplayOf = uint64(1 + r.IntN(1000))
	}
	return e
}
