package cluster

import (
	"context"
	"encoding/json"
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
// of 100 as a PublishStream message brings them, one batch at a time, on
// one NATS server in process (R1, file storage): a message of the stream
// per batch. Beside it, the same entries published straight to a JetStream
// stream a message per entry, with the client's async publish and with
// JetStream's fast batch publish: the ceiling a message per entry would
// leave on this machine.
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
		_, js := rawStream(b, jetstream.StreamConfig{})
		b.SetBytes(int64(batch * len(raw[0])))
		for b.Loop() {
			fs := make([]jetstream.PubAckFuture, batch)
			for i, d := range raw {
				var err error
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
	// fastbatch is nats-server's fast batch publish (2.14+, the stream's
	// allow_batched): one reply subject per message says the batch, its
	// sequence and the operation, and the server answers with flow acks
	// and one PubAck for the commit. nats.go 1.56 has no client for it, so
	// the reply subjects are written here as the server's own tests write
	// them. A measure of what ingest through it could reach, not used by
	// Log.
	b.Run("fastbatch", func(b *testing.B) {
		conn, _ := rawStream(b, jetstream.StreamConfig{AllowBatchPublish: true})
		inbox := nats.NewInbox()
		acks := make(chan *nats.Msg, 1024)
		sub, err := conn.ChanSubscribe(inbox+".>", acks)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		b.SetBytes(int64(batch * len(raw[0])))
		n := 0
		for b.Loop() {
			n++
			id := fmt.Sprintf("b%d", n)
			for i, d := range raw {
				op := 1 // append
				switch {
				case i == len(raw)-1:
					op = 2 // commit, which a batch of one starts too
				case i == 0:
					op = 0 // start
				}
				m := &nats.Msg{Subject: "raw", Data: d, Reply: fmt.Sprintf("%s.%s.%d.fail.%d.%d.$FI", inbox, id, 0, i+1, op)}
				if err := conn.PublishMsg(m); err != nil {
					b.Fatal(err)
				}
			}
			// Flow acks ({"type":"ack"…}) come every few messages; the
			// PubAck of the commit ends the batch.
			for {
				var ack struct {
					Batch string `json:"batch"`
					Count int    `json:"count"`
					Error any    `json:"error"`
				}
				m := <-acks
				if err := json.Unmarshal(m.Data, &ack); err != nil || ack.Error != nil {
					b.Fatalf("fast batch %s: %s", id, m.Data)
				}
				if ack.Batch == id {
					if ack.Count != len(raw) {
						b.Fatalf("fast batch %s stored %d of %d", id, ack.Count, len(raw))
					}
					break
				}
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
	})
}

// rawStream starts a NATS server with JetStream and makes cfg a stream
// named RAW, on subject raw, in file storage, for publishing to straight;
// it returns the connection, closed when b ends, and its JetStream.
func rawStream(b *testing.B, cfg jetstream.StreamConfig) (*nats.Conn, jetstream.JetStream) {
	b.Helper()
	nc := natstest.Start(b, 1)
	conn, err := nats.Connect(nc.URLs()[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	js, err := jetstream.New(conn, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Name, cfg.Subjects, cfg.Storage = "RAW", []string{"raw"}, jetstream.FileStorage
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	return conn, js
}
