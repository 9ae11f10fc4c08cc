package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

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
