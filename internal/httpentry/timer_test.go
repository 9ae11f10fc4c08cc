package httpentry

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestTimer(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ms := func(n int) *durationpb.Duration { return durationpb.New(time.Duration(n) * time.Millisecond) }
	failed := errors.New("failed")
	for _, tc := range []struct {
		name string
		// run calls the hooks of tr, or t's methods, moving the clock
		// with at.
		run  func(tr *httptrace.ClientTrace, t *Timer, at func(ms int))
		end  int // ms after start
		want *pxperfv1.Timings
	}{
		{
			name: "every phase",
			run: func(tr *httptrace.ClientTrace, _ *Timer, at func(int)) {
				at(1)
				tr.DNSStart(httptrace.DNSStartInfo{})
				at(3)
				tr.DNSDone(httptrace.DNSDoneInfo{})
				tr.ConnectStart("tcp", "192.0.2.1:443")
				at(7)
				tr.ConnectDone("tcp", "192.0.2.1:443", nil)
				tr.TLSHandshakeStart()
				at(15)
				tr.TLSHandshakeDone(tls.ConnectionState{}, nil)
				at(20)
				tr.GotFirstResponseByte()
			},
			end:  25,
			want: &pxperfv1.Timings{Dns: ms(2), Connect: ms(4), TlsHandshake: ms(8), TimeToFirstByte: ms(20), Total: ms(25)},
		},
		{
			name: "failed phases not measured",
			run: func(tr *httptrace.ClientTrace, _ *Timer, at func(int)) {
				tr.DNSStart(httptrace.DNSStartInfo{})
				at(1)
				tr.DNSDone(httptrace.DNSDoneInfo{Err: failed})
				tr.ConnectStart("tcp", "192.0.2.1:443")
				at(2)
				tr.ConnectDone("tcp", "192.0.2.1:443", failed)
				tr.TLSHandshakeStart()
				at(3)
				tr.TLSHandshakeDone(tls.ConnectionState{}, failed)
			},
			end:  4,
			want: &pxperfv1.Timings{Total: ms(4)},
		},
		{
			name: "the first of each phase",
			run: func(tr *httptrace.ClientTrace, _ *Timer, at func(int)) {
				tr.ConnectStart("tcp6", "[2001:db8::1]:443")
				at(1)
				tr.ConnectStart("tcp4", "192.0.2.1:443")
				at(3)
				tr.ConnectDone("tcp4", "192.0.2.1:443", nil)
				at(9)
				tr.ConnectDone("tcp6", "[2001:db8::1]:443", nil)
				tr.GotFirstResponseByte()
				at(10)
				tr.GotFirstResponseByte()
			},
			end:  10,
			want: &pxperfv1.Timings{Connect: ms(3), TimeToFirstByte: ms(9), Total: ms(10)},
		},
		{
			name: "a phase with no time counts",
			run: func(tr *httptrace.ClientTrace, _ *Timer, _ func(int)) {
				tr.DNSStart(httptrace.DNSStartInfo{})
				tr.DNSDone(httptrace.DNSDoneInfo{})
			},
			want: &pxperfv1.Timings{Dns: durationpb.New(1), Total: ms(0)},
		},
		{
			name: "a phase that never started is not measured",
			run: func(tr *httptrace.ClientTrace, _ *Timer, at func(int)) {
				at(1)
				tr.TLSHandshakeDone(tls.ConnectionState{}, nil)
			},
			end:  1,
			want: &pxperfv1.Timings{Total: ms(1)},
		},
		{
			name: "set by the caller",
			run: func(tr *httptrace.ClientTrace, tm *Timer, at func(int)) {
				tr.ConnectStart("tcp", "192.0.2.1:443")
				at(2)
				tr.ConnectDone("tcp", "192.0.2.1:443", nil)
				tm.SetConnect(5 * time.Millisecond)
				at(6)
				tm.FirstByte(func() time.Time { return start.Add(6 * time.Millisecond) })
				tm.FirstByte(func() time.Time { panic("FirstByte read the clock with a first byte recorded") })
			},
			end:  8,
			want: &pxperfv1.Timings{Connect: ms(5), TimeToFirstByte: ms(6), Total: ms(8)},
		},
		{
			name: "first byte set in place of the recorded",
			run: func(tr *httptrace.ClientTrace, tm *Timer, at func(int)) {
				at(2)
				tr.GotFirstResponseByte()
				tm.SetFirstByte(start.Add(7 * time.Millisecond))
			},
			end:  9,
			want: &pxperfv1.Timings{TimeToFirstByte: ms(7), Total: ms(9)},
		},
		{
			name: "a connection opened at once",
			run:  func(_ *httptrace.ClientTrace, tm *Timer, _ func(int)) { tm.SetConnect(0) },
			want: &pxperfv1.Timings{Connect: durationpb.New(1), Total: ms(0)},
		},
		{
			name: "times before the start count as 0",
			run: func(tr *httptrace.ClientTrace, _ *Timer, at func(int)) {
				at(-5)
				tr.GotFirstResponseByte()
			},
			end:  -1,
			want: &pxperfv1.Timings{TimeToFirstByte: ms(0), Total: ms(0)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			var tm Timer
			tc.run(tm.Trace(func() time.Time { return now }), &tm, func(n int) {
				now = start.Add(time.Duration(n) * time.Millisecond)
			})
			got := tm.Timings(start, start.Add(time.Duration(tc.end)*time.Millisecond))
			if diff := cmp.Diff(got, tc.want, protocmp.Transform()); diff != "" {
				t.Errorf("Timings (-got +want):\n%s", diff)
			}
		})
	}
}

// TestTimerTransport times real requests over loopback TLS, the
// transport calling the hooks from its own goroutines, beside a second
// trace on the same context.
func TestTimerTransport(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	// Ask for "localhost" so that the name is looked up; the certificate
	// names example.com.
	tr.TLSClientConfig.ServerName = "example.com"
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "https://localhost:" + port + "/"

	for _, tc := range []struct {
		name    string
		newConn bool // a connection is opened for the request
	}{
		{"new connection", true},
		{"reused connection", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var tm Timer
			gotConn := make(chan httptrace.GotConnInfo, 1)
			ctx = httptrace.WithClientTrace(ctx, tm.Trace(time.Now))
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { gotConn <- i }})
			req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body) // so that the connection is kept for the next
			res.Body.Close()
			got := tm.Timings(start, time.Now())
			if i := <-gotConn; i.Reused == tc.newConn {
				t.Fatalf("connection reused: %v; want %v", i.Reused, !tc.newConn)
			}
			measured := func(d *durationpb.Duration) bool { return d.AsDuration() > 0 }
			if measured(got.GetDns()) != tc.newConn || measured(got.GetConnect()) != tc.newConn || measured(got.GetTlsHandshake()) != tc.newConn {
				t.Errorf("Timings %v: dns, connect and tls_handshake measured; want that only for a new connection: %v", got, tc.newConn)
			}
			if ttfb, total := got.GetTimeToFirstByte().AsDuration(), got.GetTotal().AsDuration(); got.GetTimeToFirstByte() == nil || ttfb > total {
				t.Errorf("Timings %v: want a time to first byte within the total", got)
			}
		})
	}
}
