package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/natstest"
	"github.com/pxperf/pxperf/internal/testserve"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// clusterEntries returns n entries numbered from first.
func clusterEntries(first, n int) []*pxperfv1.Entry {
	es := make([]*pxperfv1.Entry, n)
	for i := range es {
		es[i] = &pxperfv1.Entry{
			StartTime:  timestamppb.Now(),
			Method:     "GET",
			Url:        fmt.Sprintf("http://example.com/%d", first+i),
			StatusCode: 200,
		}
	}
	return es
}

// Two pxperf processes on a three-server NATS cluster with three replicas:
// a client.Watch given both nodes goes on on node B when node A is killed,
// with no gap and no duplicate; node A, killed with SIGKILL and started
// again, catches up from the stream under the same ids.
func TestClusterFailoverAndCatchUp(t *testing.T) {
	nc := natstest.Start(t, 3)
	args := func(url string) []string { return []string{"--nats", url, "--nats-replicas", "3"} }
	a := testserve.Start(t, args(nc.URLs()[0])...)
	b := testserve.Start(t, args(nc.URLs()[1])...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	pub, err := client.New(client.Config{Address: b.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(first, n int) {
		t.Helper()
		res, err := pub.Publish(ctx, clusterEntries(first, n)...)
		if err != nil {
			t.Fatalf("publish on B: %v", err)
		}
		for i, r := range res {
			if r.GetId() != uint64(first+i+1) {
				t.Fatalf("entry %d got id %d, want %d", first+i, r.GetId(), first+i+1)
			}
		}
	}

	watcher, err := client.New(client.Config{Addresses: []string{a.Addr, b.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	got := make(chan uint64, 1000)
	watchErr := make(chan error, 1)
	go func() {
		req := &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}}
		for res, err := range watcher.Watch(wctx, req, client.WatchOptions{InitialBackoff: 50 * time.Millisecond}) {
			if err != nil {
				watchErr <- err
				return
			}
			if g := res.GetGap(); g != nil {
				watchErr <- fmt.Errorf("gap %v", g)
				return
			}
			for _, e := range res.GetBatch().GetEntries() {
				got <- e.GetId()
			}
		}
	}()
	next := uint64(1)
	receive := func(upTo uint64) {
		t.Helper()
		for next <= upTo {
			select {
			case id := <-got:
				if id != next {
					t.Fatalf("watch got id %d, want %d: a gap or a duplicate", id, next)
				}
				next++
			case err := <-watchErr:
				t.Fatalf("watch ended: %v", err)
			case <-ctx.Done():
				t.Fatalf("watch stopped at id %d, want up to %d", next-1, upTo)
			}
		}
	}

	publish(0, 50)
	receive(50)
	// The watcher is on A, the first address: kill A under it.
	if err := a.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Cmd.Wait()
	publish(50, 50)
	receive(100)

	// A started again (a fresh process, memory empty) catches up.
	a2 := testserve.Start(t, args(nc.URLs()[2])...)
	c2, err := client.New(client.Config{Address: a2.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	publish(100, 10)
	for {
		res, err := c2.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: 1000, Order: pxperfv1.Order_ORDER_OLDEST_FIRST})
		if err != nil {
			t.Fatal(err)
		}
		es := res.GetEntries()
		if len(es) == 110 {
			for i, e := range es {
				if e.GetId() != uint64(i+1) || e.GetUrl() != fmt.Sprintf("http://example.com/%d", i) {
					t.Fatalf("restarted node's entry %d: id %d url %q", i, e.GetId(), e.GetUrl())
				}
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restarted node holds %d entries, want 110", len(es))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
