package proxy_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/proxy"
	"github.com/pxperf/pxperf/service"
)

// The proxy publishing into a real pxperf in-process: each exchange's
// PENDING entry is completed into one stored entry, nothing is rejected.
func TestPublishIntoService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	// The largest budget: the service evicts entries when the RSS of its
	// process passes 80 % of it, and this process is the whole -race test
	// binary, often above 80 % of the default 500 MiB.
	cfg.Memory.MaxMemoryMb = 1 << 20
	srv, err := service.New(cfg, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	svc := srv.Service()

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // all of it before answering: the proxy has read it all
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=s3cr3t")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls") }))
	defer tlsOrigin.Close()

	p, err := proxy.New(proxy.Config{Listen: "127.0.0.1:0", AllowTargets: "127.0.0.1"}, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(lis) }()
	defer func() {
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	pu := &url.URL{Scheme: "http", Host: lis.Addr().String()}

	// A plain POST of a body three times the capture limit, a TLS tunnel,
	// and a request to an origin that is down.
	tr := tlsOrigin.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(pu)
	client := &http.Client{Transport: tr}
	down := closedAddr(t)
	maxBody := int(cfg.Memory.GetMaxBodySize())
	upload := bytes.Repeat([]byte("0123456789abcdef"), 3*maxBody/16)
	for _, r := range []struct {
		method, url string
		body        []byte
	}{{"POST", origin.URL + "/api", upload}, {"GET", tlsOrigin.URL + "/", nil}, {"GET", "http://" + down + "/", nil}} {
		req, _ := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
		req.Header.Set("Authorization", "Bearer s3cr3t")
		if r.body != nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	tr.CloseIdleConnections() // ends the tunnel

	waitFor(t, ctx, "six entries published", func() bool { return p.Stats().Published == 6 })
	if s := p.Stats(); s.Rejected != 0 || s.Dropped != 0 {
		t.Fatalf("proxy stats %+v; want nothing rejected or dropped", s)
	}
	list, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{Order: pxperfv1.Order_ORDER_OLDEST_FIRST})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetEntries()) != 3 {
		t.Fatalf("the store holds %d entries; want 3, each pending one completed:\n%v", len(list.GetEntries()), list.GetEntries())
	}
	want := []struct {
		url    string
		state  pxperfv1.EntryState
		status int32
		kind   pxperfv1.ErrorKind
	}{
		{origin.URL + "/api", pxperfv1.EntryState_ENTRY_STATE_COMPLETED, 200, 0},
		{tlsOrigin.Listener.Addr().String(), pxperfv1.EntryState_ENTRY_STATE_COMPLETED, 200, 0},
		{"http://" + down + "/", pxperfv1.EntryState_ENTRY_STATE_FAILED, 0, pxperfv1.ErrorKind_ERROR_KIND_CONNECT},
	}
	for i, e := range list.GetEntries() {
		w := want[i]
		if e.GetUrl() != w.url || e.GetState() != w.state || e.GetStatusCode() != w.status || e.GetError().GetKind() != w.kind || e.GetRequestId() == "" {
			t.Errorf("entry %d: %s %v %d %v; want %s %v %d %v", i, e.GetUrl(), e.GetState(), e.GetStatusCode(), e.GetError().GetKind(), w.url, w.state, w.status, w.kind)
		}
	}
	got, err := svc.GetEntry(ctx, &pxperfv1.GetEntryRequest{Id: list.GetEntries()[0].GetId()})
	if err != nil {
		t.Fatal(err)
	}
	e := got.GetEntry()
	if string(e.GetResponseBody().GetData()) != `{"ok":true}` || e.GetResponseBody().GetContentType() != "application/json" {
		t.Errorf("stored body %q (%s); want the origin's JSON", e.GetResponseBody().GetData(), e.GetResponseBody().GetContentType())
	}
	if b := e.GetRequestBody(); !bytes.Equal(b.GetData(), upload[:maxBody]) || b.GetOriginalSize() != int64(len(upload)) ||
		!b.GetTruncated() || b.GetContentType() != "application/octet-stream" {
		t.Errorf("stored request body: %d bytes, original size %d, truncated %v, type %q; want the first %d of %d, truncated, application/octet-stream",
			len(b.GetData()), b.GetOriginalSize(), b.GetTruncated(), b.GetContentType(), maxBody, len(upload))
	}
	for _, hs := range [][]*pxperfv1.Header{e.GetRequestHeaders(), e.GetResponseHeaders()} {
		for _, h := range hs {
			if (h.GetName() == "Authorization" || h.GetName() == "Set-Cookie") && h.GetValue() != "[REDACTED]" {
				t.Errorf("stored header %s: %q; want [REDACTED]", h.GetName(), h.GetValue())
			}
		}
	}
	stats, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st := stats.GetStats().GetStore(); st.GetCompleted() != 3 || st.GetRejected() != 0 || st.GetAccepted() != 3 {
		t.Errorf("store stats: accepted %d completed %d rejected %d; want 3, 3, 0", st.GetAccepted(), st.GetCompleted(), st.GetRejected())
	}
}

func closedAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline", what)
		}
	}
}
