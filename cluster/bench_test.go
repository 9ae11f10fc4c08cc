package cluster

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pxperf/pxperf/internal/natstest"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/proto"
)

// BenchmarkAppend appends entries of ~300 B through Log.Append, in batches
// of 100 as a PublishStream message brings them, on one NATS server in
// process (R1, file storage), against the same messages published
// straight to a JetStream stream with the client's async publish: the
// ceiling a message per entry leaves, on this machine.
func BenchmarkAppend(b *testing.B) {
	batch := 100
	if n, err := strconv.Atoi(os.Getenv("PXPERF_APPEND_BATCH")); err == nil {
		batch = n
	}
	entries := make([]Message, batch)
	raw := make([][]byte, batch)
	for i := range entries {
		e := testentry.Proxied(i)
		entries[i] = Message{Entry: e}
		raw[i], _ = proto.Marshal(e)
	}
	b.Run("log", func(b *testing.B) {
		nc := natstest.Start(b, 1)
		l, err := Open(context.Background(), testConfig(nc.URLs(), 1))
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.SetBytes(int64(batch * len(raw[0])))
		for b.Loop() {
			if _, err := l.Append(context.Background(), entries); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("jetstream", func(b *testing.B) {
		nc := natstest.Start(b, 1)
		conn, err := nats.Connect(nc.URLs()[0])
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		js, err := jetstream.New(conn, jetstream.WithPublishAsyncMaxPending(16384))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Storage: jetstream.FileStorage}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(batch * len(raw[0])))
		for b.Loop() {
			fs := make([]jetstream.PubAckFuture, batch)
			for i, d := range raw {
				if fs[i], err = js.PublishAsync("raw", d); err != nil {
					b.Fatal(err)
				}
			}
			for _, f := range fs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(fmt.Errorf("publish: %w", err))
				}
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
	})
}
