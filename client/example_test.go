package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// Example publishes an entry to a server on the default address, then reads
// the last ten entries back from a Subscribe stream. It needs a running
// server (pxperf serve), so it is compiled but not run by go test.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(client.Config{}) // 127.0.0.1:50051, plaintext
	if err != nil {
		log.Print(err)
		return
	}
	defer c.Close()

	results, err := c.Publish(ctx, &pxperfv1.Entry{
		Method:    "GET",
		Url:       "https://example.com/",
		StartTime: timestamppb.Now(),
	})
	if err != nil {
		log.Print(err) // the call failed: status.Code(err) says why
		return
	}
	for _, r := range results {
		if r.GetRejection() != nil {
			fmt.Println("rejected:", r.GetRejection().GetMessage())
			continue
		}
		fmt.Println("published as id", r.GetId())
	}

	// The last 10 entries, then live ones. Breaking out of the loop ends the
	// stream.
	req := &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 10}}
	for msg, err := range c.Subscribe(ctx, req) {
		if err != nil {
			log.Print(err)
			return
		}
		if batch := msg.GetBatch(); batch != nil {
			for _, e := range batch.GetEntries() {
				fmt.Println(e.GetId(), e.GetMethod(), e.GetUrl())
			}
			fmt.Println("resume from id", batch.GetNextId())
			break
		}
	}
}

// ExampleClient_Watch follows every entry from id 1 across dropped
// connections and server restarts, remembering where it is so that a later
// run can resume there. It needs a running server, so it is compiled but not
// run by go test.
func ExampleClient_Watch() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	req := &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}
	opts := client.WatchOptions{
		OnRetry: func(err error, attempt int, delay time.Duration) {
			log.Printf("stream broke (%v); reconnecting in %v (attempt %d)", err, delay, attempt)
		},
	}
	for msg, err := range c.Watch(ctx, req, opts) {
		if oe, ok := errors.AsType[*client.OutOfRangeError](err); ok {
			log.Fatalf("entries from %d are gone; the oldest kept is %d", oe.StartID, oe.Oldest)
		}
		if err != nil {
			log.Fatal(err) // not worth retrying, or ctx ended
		}
		switch ev := msg.GetEvent().(type) {
		case *pxperfv1.SubscribeResponse_Batch:
			for _, e := range ev.Batch.GetEntries() {
				fmt.Println(e.GetId(), e.GetMethod(), e.GetUrl(), e.GetStatusCode())
			}
			for _, e := range ev.Batch.GetUpdates() {
				fmt.Println("completed:", e.GetId(), e.GetStatusCode())
			}
		case *pxperfv1.SubscribeResponse_Gap:
			fmt.Printf("missed %d..%d\n", ev.Gap.GetFirstMissedId(), ev.Gap.GetLastMissedId())
		}
	}
}

// ExampleOutOfRangeError shows what to do when the position to resume from
// is gone: go on from the oldest entry kept, which WatchOptions.ResumeFromOldest
// also does by itself.
func ExampleOutOfRangeError() {
	ctx := context.Background()
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var next uint64 = 1 // for example, saved by an earlier run
	for {
		req := &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: next}}
		for msg, err := range c.Watch(ctx, req, client.WatchOptions{}) {
			if oe, ok := errors.AsType[*client.OutOfRangeError](err); ok && oe.Oldest != 0 {
				fmt.Printf("entries %d..%d are gone\n", next, oe.Oldest-1)
				next = oe.Oldest
				break
			}
			if err != nil {
				log.Fatal(err)
			}
			if b := msg.GetBatch(); b != nil {
				next = b.GetNextId()
			}
		}
	}
}

// ExampleOldestAvailable reads the oldest id a server keeps from the error
// of a plain Subscribe stream.
func ExampleOldestAvailable() {
	st, _ := status.New(codes.OutOfRange, "start_id 1 is older than anything kept").WithDetails(&errdetails.ErrorInfo{
		Reason: "ENTRIES_EVICTED", Domain: "pxperf.v1", Metadata: map[string]string{"oldest_id": "4001"},
	})
	if oldest, ok := client.OldestAvailable(st.Err()); ok {
		fmt.Println("resume from", oldest)
	}
	// Output: resume from 4001
}

// ExampleClient_NewPublisher publishes entries as a recording proxy would:
// Add never blocks the proxy, and Close sends the rest and says what became
// of everything. It needs a running server, so it is compiled but not run by
// go test.
func ExampleClient_NewPublisher() {
	ctx := context.Background()
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	p, err := c.NewPublisher(ctx, client.PublisherConfig{BatchSize: 200, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	dropped := 0
	for i := range 1000 {
		err := p.Add(&pxperfv1.Entry{
			Method:    "GET",
			Url:       fmt.Sprintf("https://example.com/%d", i),
			StartTime: timestamppb.Now(),
		})
		if errors.Is(err, client.ErrQueueFull) {
			dropped++ // pxperf is slower than the traffic: count, do not wait
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sum, err := p.Close(closeCtx)
	fmt.Printf("accepted %d (ids %d..%d), rejected %d, failed %d, unknown %d, dropped %d\n",
		sum.Accepted, sum.FirstID, sum.LastID, sum.Rejected, sum.Failed, sum.Unknown, dropped)
	for _, r := range sum.Rejections {
		fmt.Println("rejected:", r.Entry.GetUrl(), r.Rejection.GetMessage())
	}
	if err != nil {
		log.Print(err) // a whole batch failed: see Failed and Unknown
	}
}

// ExampleClient_SetConfigField changes config fields live, from strings as a
// command line gives them. It needs a running server, so it is compiled but
// not run by go test.
func ExampleClient_SetConfigField() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Token: os.Getenv("PXPERF_TOKEN")}) // admin role, if auth is on
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if _, err := c.SetConfigField(ctx, "memory.max_entries", "5000"); err != nil {
		log.Fatal(err) // an unknown field or a bad value names the path
	}
	// Several fields at once: all change, or none does.
	cfg, err := c.SetConfigFields(ctx, map[string]string{
		"throttle.mode":          "fixed",
		"throttle.batch_timeout": "250ms",
		"logs.policies":          "count,time",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.GetThrottle().GetMode(), cfg.GetThrottle().GetBatchTimeout().AsDuration())
	v, err := c.ConfigField(ctx, "memory.max_entries")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("memory.max_entries =", v)
}

// ExampleParseConfigField builds a config and its update mask from strings,
// as a command line gives them, and writes the fields back. It needs no
// server: the result is for [client.Client.SetConfig].
func ExampleParseConfigField() {
	cfg := &pxperfv1.Config{}
	var mask []string
	for _, kv := range [][2]string{
		{"memory.maxEntries", "5000"},
		{"throttle.mode", "fixed"},
		{"throttle.batch_timeout", "1.5s"},
	} {
		path, err := client.ParseConfigField(cfg, kv[0], kv[1])
		if err != nil {
			log.Fatal(err) // an unknown field or a bad value names the path
		}
		mask = append(mask, path)
	}
	for _, path := range mask {
		v, err := client.FormatConfigField(cfg, path)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(path, "=", v)
	}
	// A group lists its fields.
	fields, err := client.ConfigFieldPaths("cleanup")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(fields)
	// Output:
	// memory.max_entries = 5000
	// throttle.mode = THROTTLE_MODE_FIXED
	// throttle.batch_timeout = 1.5s
	// [cleanup.cleanup_interval cleanup.resource_timeout cleanup.max_resources cleanup.producer_rate_limit]
}
