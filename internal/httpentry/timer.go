package httpentry

import (
	"crypto/tls"
	"net/http/httptrace"
	"sync"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Timer records how long the phases of one HTTP exchange take: the DNS
// lookup, the connection, the TLS handshake, and when the first byte of
// the response came. The transport reports them through the hooks of
// [Timer.Trace]; a caller that does the work itself reports it with
// [Timer.SetConnect], [Timer.FirstByte] and [Timer.SetFirstByte].
// [Timer.Timings] gives the entry's timings. The zero value is ready to
// use. A Timer is safe for concurrent use: the transport calls the hooks
// from its own goroutines.
type Timer struct {
	mu             sync.Mutex // guards what follows
	dnsStart       time.Time
	dns            time.Duration
	connStart      time.Time
	connect        time.Duration
	handshakeStart time.Time
	handshake      time.Duration
	firstByte      time.Time
}

// Trace returns hooks that time the transport's DNS lookup, connection,
// TLS handshake and first response byte by now. Only the first of each is
// timed, and only if it succeeds: a duration of 0 means not measured.
//
// The trace is the caller's own, a new one each call. To add hooks, set
// those it leaves nil, or attach a second trace to the request's context
// with httptrace.WithClientTrace, which calls both.
func (t *Timer) Trace(now func() time.Time) *httptrace.ClientTrace {
	mark := func(at *time.Time) {
		t.mu.Lock()
		if at.IsZero() {
			*at = now()
		}
		t.mu.Unlock()
	}
	done := func(start *time.Time, d *time.Duration, ok bool) {
		t.mu.Lock()
		if !start.IsZero() && *d == 0 && ok {
			*d = max(now().Sub(*start), 1)
		}
		t.mu.Unlock()
	}
	return &httptrace.ClientTrace{
		DNSStart:             func(httptrace.DNSStartInfo) { mark(&t.dnsStart) },
		DNSDone:              func(i httptrace.DNSDoneInfo) { done(&t.dnsStart, &t.dns, i.Err == nil) },
		ConnectStart:         func(_, _ string) { mark(&t.connStart) },
		ConnectDone:          func(_, _ string, err error) { done(&t.connStart, &t.connect, err == nil) },
		TLSHandshakeStart:    func() { mark(&t.handshakeStart) },
		TLSHandshakeDone:     func(_ tls.ConnectionState, err error) { done(&t.handshakeStart, &t.handshake, err == nil) },
		GotFirstResponseByte: func() { t.FirstByte(now) },
	}
}

// FirstByte records now() as when the first byte of the response came,
// unless a time is recorded already; now is called only then.
func (t *Timer) FirstByte(now func() time.Time) {
	t.mu.Lock()
	if t.firstByte.IsZero() {
		t.firstByte = now()
	}
	t.mu.Unlock()
}

// SetFirstByte records at as when the first byte of the response came, in
// place of any recorded: for a tunnel through an upstream proxy, the
// target's first byte comes after the upstream's answer to the CONNECT.
func (t *Timer) SetFirstByte(at time.Time) {
	t.mu.Lock()
	t.firstByte = at
	t.mu.Unlock()
}

// SetConnect records d as the time it took to open the connection, in
// place of any recorded, for a connection the transport did not open (a
// tunnel's). A d under 1ns counts as 1ns, since 0 means not measured.
func (t *Timer) SetConnect(d time.Duration) {
	t.mu.Lock()
	t.connect = max(d, 1)
	t.mu.Unlock()
}

// Timings returns the timings of an exchange that started at start and
// ended at end: the phases measured, time to first byte if a byte came,
// and the total. A negative span counts as 0.
func (t *Timer) Timings(start, end time.Time) *pxperfv1.Timings {
	dur := func(d time.Duration) *durationpb.Duration {
		if d <= 0 {
			return nil
		}
		return durationpb.New(d)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := &pxperfv1.Timings{
		Dns:          dur(t.dns),
		Connect:      dur(t.connect),
		TlsHandshake: dur(t.handshake),
		Total:        durationpb.New(max(end.Sub(start), 0)),
	}
	if !t.firstByte.IsZero() {
		out.TimeToFirstByte = durationpb.New(max(t.firstByte.Sub(start), 0))
	}
	return out
}
