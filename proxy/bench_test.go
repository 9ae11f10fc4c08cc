package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// countingPublisher accepts everything and only counts: the benchmark
// measures the proxy, not a store.
type countingPublisher struct{ n atomic.Int64 }

func (c *countingPublisher) Publish(_ context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
	c.n.Add(int64(len(req.GetEntries())))
	return &pxperfv1.PublishResponse{Results: make([]*pxperfv1.PublishResult, len(req.GetEntries()))}, nil
}

// BenchmarkProxyGET times keep-alive GETs of a 1 KiB response through the
// recording proxy (ns/op), against the same GETs straight to the origin
// (direct-ns/op) and through a bare httputil.ReverseProxy that records
// nothing (bare-ns/op), and reports the ratios (x-direct, x-bare).
func BenchmarkProxyGET(b *testing.B) {
	body := pattern(1 << 10)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	benchThroughProxy(b, origin, func(tr *http.Transport, url string) {
		req, _ := http.NewRequest("GET", url, nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, res.Body); n != int64(len(body)) {
			b.Fatalf("read %d bytes; want %d", n, len(body))
		}
		res.Body.Close()
	})
}

// BenchmarkProxyUpload times keep-alive POSTs of a 1 MiB request body,
// which the origin reads whole, as BenchmarkProxyGET times GETs: the
// recording proxy keeps the first 10 KiB of each upload as it streams.
func BenchmarkProxyUpload(b *testing.B) {
	upload := pattern(1 << 20)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n != int64(len(upload)) {
			http.Error(w, "short upload", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	b.SetBytes(int64(len(upload)))
	benchThroughProxy(b, origin, func(tr *http.Transport, url string) {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(upload))
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			b.Fatalf("status %d; want 204", res.StatusCode)
		}
	})
}

// benchThroughProxy times do, one request to the URL it is given over the
// transport it is given, through the recording proxy (ns/op), against the
// same straight to origin (direct-ns/op) and through a bare
// httputil.ReverseProxy that records nothing (bare-ns/op), and reports the
// ratios (x-direct, x-bare).
func benchThroughProxy(b *testing.B, handler http.Handler, do func(tr *http.Transport, url string)) {
	origin := httptest.NewServer(handler)
	defer origin.Close()
	pub := &countingPublisher{}
	p, err := New(Config{Listen: "127.0.0.1:0", AllowTargets: "127.0.0.1"}, pub, nil)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(lis) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			b.Error(err)
		}
		<-served
	}()

	bareProxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {}})
	defer bareProxy.Close()
	bareURL, _ := url.Parse(bareProxy.URL)

	direct := &http.Transport{}
	bare := &http.Transport{Proxy: http.ProxyURL(bareURL)}
	defer bare.CloseIdleConnections()
	proxied := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: lis.Addr().String()})}
	defer direct.CloseIdleConnections()
	defer proxied.CloseIdleConnections()
	target := origin.URL + "/bench"
	b.StopTimer()
	baseline := func(tr *http.Transport) float64 {
		do(tr, target)
		start := time.Now()
		for range b.N {
			do(tr, target)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(b.N)
	}
	directNs, bareNs := baseline(direct), baseline(bare)
	do(proxied, target)

	b.ReportAllocs()
	b.ResetTimer()
	b.StartTimer()
	start := time.Now()
	for range b.N {
		do(proxied, target)
	}
	proxiedNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.StopTimer()
	b.ReportMetric(directNs, "direct-ns/op")
	b.ReportMetric(bareNs, "bare-ns/op")
	b.ReportMetric(proxiedNs/directNs, "x-direct")
	b.ReportMetric(proxiedNs/bareNs, "x-bare")
	if s := p.Stats(); s.Dropped != 0 {
		b.Logf("dropped %d entries", s.Dropped)
	}
}
