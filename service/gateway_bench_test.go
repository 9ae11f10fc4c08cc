package service_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkGatewayUnary is one ListEntries call of 50 entries (the
// benchmarks' ~300-byte entry, no bodies) over loopback TCP: over gRPC, the baseline, and over the HTTP gateway as
// Connect with JSON and with binary protobuf, and as REST. Each
// sub-benchmark's ns/op over grpc's is the gateway's cost.
func BenchmarkGatewayUnary(b *testing.B) {
	cfg := config.Default()
	cfg.Logs.Enabled = false
	cfg.Logs.Directory = b.TempDir()
	srv, err := service.New(cfg, service.Options{})
	if err != nil {
		b.Fatal(err)
	}
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(glis) }()
	go func() { errc <- srv.ServeGateway(hlis) }()
	b.Cleanup(func() {
		srv.Shutdown()
		for range 2 {
			if err := <-errc; err != nil {
				b.Error(err)
			}
		}
	})
	conn, err := grpc.NewClient(glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	svc := pxperfv1.NewPerformanceServiceClient(conn)
	ctx := context.Background()
	entries := make([]*pxperfv1.Entry, 1000)
	for i := range entries {
		entries[i] = testentry.Proxied(i)
	}
	if _, err := svc.Publish(ctx, &pxperfv1.PublishRequest{Entries: entries}); err != nil {
		b.Fatal(err)
	}
	req := &pxperfv1.ListEntriesRequest{PageSize: 50}
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	base := "http://" + hlis.Addr().String()
	check := func(b *testing.B, n int) {
		if n != 50 {
			b.Fatalf("%d entries, want 50", n)
		}
	}

	b.Run("grpc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := svc.ListEntries(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(resp.GetEntries()))
		}
	})
	for _, c := range []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect-json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"connect-proto", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := connect.NewClient[pxperfv1.ListEntriesRequest, pxperfv1.ListEntriesResponse](hc,
				base+"/pxperf.v1.PerformanceService/ListEntries", c.opts...)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.CallUnary(ctx, connect.NewRequest(req))
				if err != nil {
					b.Fatal(err)
				}
				check(b, len(resp.Msg.GetEntries()))
			}
		})
	}
	b.Run("rest", func(b *testing.B) {
		var buf bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			resp, err := hc.Get(base + "/v1/entries?page_size=50")
			if err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			_, err = io.Copy(&buf, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatal(fmt.Sprint(resp.StatusCode, err))
			}
		}
	})
}
