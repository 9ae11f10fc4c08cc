package client

import (
	"context"
	"errors"
	"iter"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// TestMain checks that no test leaves a goroutine behind: grpc.NewClient and
// the in-memory servers below start them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testContext returns a context that ends with the test, and within 10 s.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNew(t *testing.T) {
	dialer := grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
		return nil, errors.New("no dialling in this test")
	})
	tests := []struct {
		name       string
		cfg        Config
		wantTarget string
		wantErr    string // substring of the error; empty when New must succeed
	}{
		{name: "empty address takes the default", cfg: Config{}, wantTarget: DefaultAddress},
		{name: "host and port", cfg: Config{Address: "localhost:7000"}, wantTarget: "localhost:7000"},
		{name: "IPv6 host and port", cfg: Config{Address: "[::1]:7000"}, wantTarget: "[::1]:7000"},
		{name: "target with scheme", cfg: Config{Address: "passthrough:///bufnet", DialOptions: []grpc.DialOption{dialer}}, wantTarget: "passthrough:///bufnet"},
		{name: "host without port", cfg: Config{Address: "localhost"}, wantErr: "Config.Address"},
		{name: "empty port", cfg: Config{Address: "localhost:"}, wantErr: "Config.Address"},
		{name: "nil dial option", cfg: Config{DialOptions: []grpc.DialOption{dialer, nil}}, wantErr: "Config.DialOptions[1]"},
		{name: "several nodes", cfg: Config{Addresses: []string{"127.0.0.1:7000", "127.0.0.1:7001"}}, wantTarget: "pxperf-cluster:///cluster"},
		{name: "address and addresses", cfg: Config{Address: "localhost:7000", Addresses: []string{"localhost:7001"}}, wantErr: "not both"},
		{name: "a node with a scheme", cfg: Config{Addresses: []string{"localhost:7000", "dns:///x:7001"}}, wantErr: "Config.Addresses[1]"},
		{name: "a node without port", cfg: Config{Addresses: []string{"localhost"}}, wantErr: "Config.Address"},
		{name: "token to a node beyond loopback", cfg: Config{Addresses: []string{"127.0.0.1:7000", "pxperf.example:7000"}, Token: "t"}, wantErr: "clear text"},
		{name: "token to loopback nodes", cfg: Config{Addresses: []string{"127.0.0.1:7000", "localhost:7001"}, Token: "t"}, wantTarget: "pxperf-cluster:///cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil {
					c.Close()
					t.Fatalf("New(%+v) = nil error, want one containing %q", tt.cfg, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%+v) error = %q, want it to contain %q", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v): %v", tt.cfg, err)
			}
			defer c.Close()
			if got := c.conn.Target(); got != tt.wantTarget {
				t.Errorf("target = %q, want %q", got, tt.wantTarget)
			}
			if c.Service() == nil {
				t.Error("Service() = nil")
			}
		})
	}
}

func TestPublishWithoutEntriesDoesNotDial(t *testing.T) {
	var dials atomic.Int32
	c, err := New(Config{DialOptions: []grpc.DialOption{
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("no dialling in this test")
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	results, err := c.Publish(testContext(t))
	if !errors.Is(err, ErrNoEntries) {
		t.Errorf("Publish() error = %v, want %v", err, ErrNoEntries)
	}
	if results != nil {
		t.Errorf("Publish() results = %v, want nil", results)
	}
	if got := dials.Load(); got != 0 {
		t.Errorf("dialled %d times, want 0", got)
	}
	if got := c.conn.GetState(); got != connectivity.Idle {
		t.Errorf("connection state = %v, want %v", got, connectivity.Idle)
	}
}

// fakeServer answers the RPCs whose func is set; the others are
// UNIMPLEMENTED.
type fakeServer struct {
	pxperfv1.UnimplementedPerformanceServiceServer
	publish     func(context.Context, *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error)
	subscribe   func(*pxperfv1.SubscribeRequest, pxperfv1.PerformanceService_SubscribeServer) error
	listEntries func(context.Context, *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error)
	getEntry    func(context.Context, *pxperfv1.GetEntryRequest) (*pxperfv1.GetEntryResponse, error)
}

func (f *fakeServer) Publish(ctx context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
	if f.publish == nil {
		return f.UnimplementedPerformanceServiceServer.Publish(ctx, req)
	}
	return f.publish(ctx, req)
}

func (f *fakeServer) Subscribe(req *pxperfv1.SubscribeRequest, stream pxperfv1.PerformanceService_SubscribeServer) error {
	if f.subscribe == nil {
		return f.UnimplementedPerformanceServiceServer.Subscribe(req, stream)
	}
	return f.subscribe(req, stream)
}

func (f *fakeServer) ListEntries(ctx context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
	if f.listEntries == nil {
		return f.UnimplementedPerformanceServiceServer.ListEntries(ctx, req)
	}
	return f.listEntries(ctx, req)
}

func (f *fakeServer) GetEntry(ctx context.Context, req *pxperfv1.GetEntryRequest) (*pxperfv1.GetEntryResponse, error) {
	if f.getEntry == nil {
		return f.UnimplementedPerformanceServiceServer.GetEntry(ctx, req)
	}
	return f.getEntry(ctx, req)
}

// newTestClient serves srv in memory over bufconn and returns a Client
// connected to it. Both are stopped when the test ends.
func newTestClient(t *testing.T, srv pxperfv1.PerformanceServiceServer) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	pxperfv1.RegisterPerformanceServiceServer(s, srv)
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c, err := New(Config{
		Address: "passthrough:///bufnet",
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func testEntry(method, url string) *pxperfv1.Entry {
	return &pxperfv1.Entry{Method: method, Url: url, StartTime: timestamppb.New(time.Unix(1_700_000_000, 0))}
}

func TestPublish(t *testing.T) {
	c := newTestClient(t, &fakeServer{
		publish: func(_ context.Context, req *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
			resp := &pxperfv1.PublishResponse{}
			for i, e := range req.GetEntries() {
				if e.GetMethod() == "" {
					resp.Results = append(resp.Results, &pxperfv1.PublishResult{Rejection: &pxperfv1.Rejection{Message: "method is required"}})
					continue
				}
				resp.Results = append(resp.Results, &pxperfv1.PublishResult{Id: uint64(100 + i)})
			}
			return resp, nil
		},
	})
	results, err := c.Publish(testContext(t), testEntry("GET", "http://a/"), testEntry("", "http://b/"), testEntry("POST", "http://c/"))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	want := []*pxperfv1.PublishResult{
		{Id: 100},
		{Rejection: &pxperfv1.Rejection{Message: "method is required"}},
		{Id: 102},
	}
	if len(results) != len(want) {
		t.Fatalf("Publish returned %d results, want %d", len(results), len(want))
	}
	for i := range want {
		if !proto.Equal(results[i], want[i]) {
			t.Errorf("results[%d] = %v, want %v", i, results[i], want[i])
		}
	}
}

func TestPublishErrors(t *testing.T) {
	tests := []struct {
		name     string
		publish  func(context.Context, *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error)
		wantCode codes.Code
	}{
		{
			name: "server status passes through",
			publish: func(context.Context, *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
				return nil, status.Error(codes.ResourceExhausted, "too many entries")
			},
			wantCode: codes.ResourceExhausted,
		},
		{
			name: "too few results",
			publish: func(context.Context, *pxperfv1.PublishRequest) (*pxperfv1.PublishResponse, error) {
				return &pxperfv1.PublishResponse{Results: []*pxperfv1.PublishResult{{Id: 1}}}, nil
			},
			wantCode: codes.Unknown, // found by the client: no status
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, &fakeServer{publish: tt.publish})
			results, err := c.Publish(testContext(t), testEntry("GET", "http://a/"), testEntry("GET", "http://b/"))
			if err == nil {
				t.Fatalf("Publish = %v, nil error; want an error", results)
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("status.Code(%v) = %v, want %v", err, got, tt.wantCode)
			}
		})
	}
}

// subscribeResult is what a range loop over Subscribe saw.
type subscribeResult struct {
	nextIDs []uint64 // next_id of each batch, in order
	errs    []error
}

func collect(seq iter.Seq2[*pxperfv1.SubscribeResponse, error]) subscribeResult {
	var r subscribeResult
	for msg, err := range seq {
		if err != nil {
			r.errs = append(r.errs, err)
			continue // Subscribe must end the loop itself after an error
		}
		r.nextIDs = append(r.nextIDs, msg.GetBatch().GetNextId())
	}
	return r
}

func batch(nextID uint64) *pxperfv1.SubscribeResponse {
	return &pxperfv1.SubscribeResponse{Event: &pxperfv1.SubscribeResponse_Batch{Batch: &pxperfv1.EntryBatch{NextId: nextID}}}
}

func TestSubscribe(t *testing.T) {
	tests := []struct {
		name        string
		send        int   // messages the server sends, next_id 1..send
		end         error // what the server's handler returns after them
		wantNextIDs []uint64
		wantCode    codes.Code // of the one error the loop gets; OK for none
	}{
		{name: "clean end", send: 3, end: nil, wantNextIDs: []uint64{1, 2, 3}, wantCode: codes.OK},
		{name: "no messages", send: 0, end: nil, wantNextIDs: nil, wantCode: codes.OK},
		{name: "error after messages", send: 2, end: status.Error(codes.OutOfRange, "start_id 1 is older than 5"), wantNextIDs: []uint64{1, 2}, wantCode: codes.OutOfRange},
		{name: "error at once", send: 0, end: status.Error(codes.InvalidArgument, "bad filter"), wantNextIDs: nil, wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, &fakeServer{
				subscribe: func(_ *pxperfv1.SubscribeRequest, stream pxperfv1.PerformanceService_SubscribeServer) error {
					for i := 1; i <= tt.send; i++ {
						if err := stream.Send(batch(uint64(i))); err != nil {
							return err
						}
					}
					return tt.end
				},
			})
			got := collect(c.Subscribe(testContext(t), nil))
			if !slices.Equal(got.nextIDs, tt.wantNextIDs) {
				t.Errorf("batches with next_id %v, want %v", got.nextIDs, tt.wantNextIDs)
			}
			switch {
			case tt.wantCode == codes.OK && len(got.errs) != 0:
				t.Errorf("errors %v, want none", got.errs)
			case tt.wantCode != codes.OK && len(got.errs) != 1:
				t.Errorf("errors %v, want exactly one with code %v", got.errs, tt.wantCode)
			case tt.wantCode != codes.OK && status.Code(got.errs[0]) != tt.wantCode:
				t.Errorf("error %v has code %v, want %v", got.errs[0], status.Code(got.errs[0]), tt.wantCode)
			}
		})
	}
}

func TestSubscribeBreakEndsStream(t *testing.T) {
	serverDone := make(chan error, 1)
	c := newTestClient(t, &fakeServer{
		subscribe: func(req *pxperfv1.SubscribeRequest, stream pxperfv1.PerformanceService_SubscribeServer) error {
			// Send until the client goes away, as a live stream does.
			for i := uint64(1); ; i++ {
				if err := stream.Send(batch(i)); err != nil {
					serverDone <- stream.Context().Err()
					return err
				}
			}
		},
	})
	// The stream's context has no deadline (a deadline would reach the
	// server and end the stream there too) and stays live until the test
	// ends: only the break can end the stream. The wait below is bounded.
	ctx := t.Context()
	seen := 0
	for msg, err := range c.Subscribe(ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}) {
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		seen++
		if msg.GetBatch().GetNextId() == 2 {
			break
		}
	}
	if seen != 2 {
		t.Errorf("saw %d messages, want 2", seen)
	}
	select {
	case err := <-serverDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server stream context error = %v, want %v", err, context.Canceled)
		}
	case <-testContext(t).Done():
		t.Fatal("server stream still open 10 s after break")
	}
}

func TestSubscribeCancel(t *testing.T) {
	started := make(chan struct{})
	c := newTestClient(t, &fakeServer{
		subscribe: func(_ *pxperfv1.SubscribeRequest, stream pxperfv1.PerformanceService_SubscribeServer) error {
			close(started)
			<-stream.Context().Done()
			return stream.Context().Err()
		},
	})
	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-started
		cancel()
	}()
	got := collect(c.Subscribe(ctx, nil))
	if len(got.nextIDs) != 0 || len(got.errs) != 1 || status.Code(got.errs[0]) != codes.Canceled {
		t.Errorf("got batches %v and errors %v, want one error with code %v", got.nextIDs, got.errs, codes.Canceled)
	}
}

func TestUnaryHelpers(t *testing.T) {
	stored := testEntry("GET", "http://a/")
	stored.Id = 7
	c := newTestClient(t, &fakeServer{
		getEntry: func(_ context.Context, req *pxperfv1.GetEntryRequest) (*pxperfv1.GetEntryResponse, error) {
			if req.GetId() != stored.GetId() {
				return nil, status.Errorf(codes.NotFound, "entry %d is not kept", req.GetId())
			}
			return &pxperfv1.GetEntryResponse{Entry: stored}, nil
		},
		listEntries: func(_ context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
			return &pxperfv1.ListEntriesResponse{Entries: []*pxperfv1.Entry{stored}, TotalSize: int64(req.GetPageSize())}, nil
		},
	})
	ctx := testContext(t)

	t.Run("GetEntry", func(t *testing.T) {
		got, err := c.GetEntry(ctx, 7)
		if err != nil {
			t.Fatalf("GetEntry(7): %v", err)
		}
		if !proto.Equal(got, stored) {
			t.Errorf("GetEntry(7) = %v, want %v", got, stored)
		}
	})
	t.Run("GetEntry not found", func(t *testing.T) {
		got, err := c.GetEntry(ctx, 8)
		if status.Code(err) != codes.NotFound {
			t.Errorf("GetEntry(8) = %v, %v; want code %v", got, err, codes.NotFound)
		}
	})
	t.Run("ListEntries", func(t *testing.T) {
		got, err := c.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: 3})
		if err != nil {
			t.Fatalf("ListEntries: %v", err)
		}
		want := &pxperfv1.ListEntriesResponse{Entries: []*pxperfv1.Entry{stored}, TotalSize: 3}
		if !proto.Equal(got, want) {
			t.Errorf("ListEntries = %v, want %v", got, want)
		}
	})
	t.Run("ListEntries nil request", func(t *testing.T) {
		if _, err := c.ListEntries(ctx, nil); err != nil {
			t.Errorf("ListEntries(nil): %v", err)
		}
	})
	t.Run("GetConfig unimplemented", func(t *testing.T) {
		got, err := c.GetConfig(ctx)
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("GetConfig = %v, %v; want code %v", got, err, codes.Unimplemented)
		}
	})
}
