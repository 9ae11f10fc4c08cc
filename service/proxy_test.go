package service_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// A request through the recording proxy reaches the origin and comes back
// as one completed entry, with the proxy's figures in GetStats.
func TestRecordingProxy(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no credentials reached the origin", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "hello from the origin")
	}))
	defer origin.Close()
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *pxperfv1.Config) { c.Proxy.ListenAddress = plis.Addr().String() })
	served := make(chan error, 1)
	go func() { served <- h.srv.ServeProxy(plis) }()
	t.Cleanup(func() {
		h.srv.Shutdown()
		if err := <-served; err != nil {
			t.Errorf("ServeProxy: %v", err)
		}
	})
	ctx := testContext(t)

	proxyURL := &url.URL{Scheme: "http", Host: plis.Addr().String()}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+"/path", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello from the origin" {
		t.Fatalf("through the proxy: %d %q", resp.StatusCode, body)
	}

	// The proxy counts an entry published once the call returns, after the
	// store has it: wait for both.
	st := h.waitStats(t, "the entry to be completed", func(st *pxperfv1.Stats) bool {
		return st.GetStore().GetCompleted() == 1 && st.GetProxy().GetPublished() == 2
	})
	if p := st.GetProxy(); p.GetRequests() != 1 || p.GetPublished() != 2 || p.GetDropped() != 0 {
		t.Errorf("proxy stats %v, want 1 request, 2 entries published (pending, completed), none dropped", p)
	}
	list, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetEntries()) != 1 {
		t.Fatalf("entries %v, want one", list.GetEntries())
	}
	e := list.GetEntries()[0]
	if e.GetState() != pxperfv1.EntryState_ENTRY_STATE_COMPLETED || e.GetStatusCode() != 200 || e.GetUrl() != origin.URL+"/path" {
		t.Errorf("entry %v, want the completed GET of /path", e)
	}
	for _, hd := range e.GetRequestHeaders() {
		if hd.GetName() == "Authorization" && hd.GetValue() == "Bearer secret" {
			t.Error("the credential was stored; want it redacted")
		}
	}
}
