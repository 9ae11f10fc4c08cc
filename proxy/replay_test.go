package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// ReplayOfHeader links both entries of an exchange to the entry it
// replays, and neither the target nor the entries see the header; a value
// that is not an id is taken out all the same.
func TestReplayOfHeader(t *testing.T) {
	seen := make(chan http.Header, 1)
	origin := newOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name  string
		value string // "": no header
		want  uint64
	}{
		{name: "an id", value: "42", want: 42},
		{name: "no header", value: "", want: 0},
		{name: "not a number", value: "forty-two", want: 0},
		{name: "zero", value: "0", want: 0},
		{name: "negative", value: "-3", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := origin.URL + "/replay/" + strings.ReplaceAll(tc.name, " ", "-")
			req, _ := http.NewRequestWithContext(h.ctx, "GET", u, nil)
			if tc.value != "" {
				req.Header.Set(ReplayOfHeader, tc.value)
			}
			req.Header.Set("X-Other", "kept")
			res, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			got := <-seen
			if v, ok := got[ReplayOfHeader]; ok {
				t.Errorf("origin got %s: %q; want it taken out", ReplayOfHeader, v)
			}
			if got.Get("X-Other") != "kept" {
				t.Errorf("origin got %v; want X-Other", got)
			}
			pending, final := h.pub.exchangeEntries(t, h.ctx, u)
			for _, e := range []*pxperfv1.Entry{pending, final} {
				if e.GetReplayOf() != tc.want {
					t.Errorf("%v entry replay_of %d, want %d", e.GetState(), e.GetReplayOf(), tc.want)
				}
				if v := header(e.GetRequestHeaders(), ReplayOfHeader); v != nil {
					t.Errorf("%v entry records %s: %q; want it left out", e.GetState(), ReplayOfHeader, v)
				}
			}
		})
	}
}

// On a CONNECT, the header links the tunnel's entry.
func TestReplayOfHeaderTunnel(t *testing.T) {
	origin := newOrigin(t, okHandler("ok"))
	h := newHarness(t, nil)
	target := strings.TrimPrefix(origin.URL, "http://")
	c, _, res := rawConnect(t, h.ctx, h.url.Host, target, http.Header{ReplayOfHeader: {"7"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d, want 200", res.StatusCode)
	}
	c.Close()
	pending, final := h.pub.exchangeEntries(t, h.ctx, target)
	for _, e := range []*pxperfv1.Entry{pending, final} {
		if !e.GetTunnel() || e.GetReplayOf() != 7 || header(e.GetRequestHeaders(), ReplayOfHeader) != nil {
			t.Errorf("%v entry: tunnel %v, replay_of %d, headers %v; want a tunnel with replay_of 7 and without the header",
				e.GetState(), e.GetTunnel(), e.GetReplayOf(), e.GetRequestHeaders())
		}
	}
}
