package bench

import (
	"fmt"
	"testing"
	"time"
)

// runCluster measures cluster mode against embedded mode in the
// same run: ingest and the relay to one subscriber through JetStream with
// one replica on one NATS server, and with three on three, on loopback in
// this process; and the freshness of a subscriber on a second node for
// entries published on the first. The goal is R1 ingest at least half of
// embedded mode's.
func runCluster(b *testing.B, opts suiteOptions) ([]row, error) {
	kinds := []kind{pxperf, clusterR1, clusterR3}
	const baseName = "pxperf in embedded mode, the same run"
	ing := timedPair(b, ingest, kinds, opts)
	e2e := timedPair(b, relayBare, kinds, opts)
	rows := []row{
		kindRow("cluster", "cluster ingest R1", "entries/s acknowledged (stored in the stream and applied by the node), archive off", ing, clusterR1, pxperf, baseName, 0.5),
		kindRow("cluster", "cluster ingest R3", "entries/s acknowledged, three replicas on three NATS servers", ing, clusterR3, pxperf, baseName, 0),
		kindRow("cluster", "cluster relay R1", "entries/s delivered to one subscriber on the publisher's node, archive off", e2e, clusterR1, pxperf, baseName, 0),
		kindRow("cluster", "cluster relay R3", "entries/s delivered to one subscriber, three replicas", e2e, clusterR3, pxperf, baseName, 0),
	}
	for i := range rows {
		rows[i].GoalSource = "issue 20"
	}

	// Freshness at 10 000 entries/s with the default throttle, one
	// subscriber: on the node the entries are published to in embedded
	// mode, against on the other node of an R1 cluster.
	const rate = 10_000
	d := freshSeconds(opts)
	embedded := scenario{subscribers: 1, batch: rate / 100, perIteration: rate / 100, config: defaultConfig}
	cross := embedded
	cross.crossNode = true
	base, _, err := freshness(b, pxperf, embedded, d)
	if err != nil {
		return nil, fmt.Errorf("embedded freshness: %w", err)
	}
	lat, arrived, err := freshness(b, clusterR1, cross, d)
	if err != nil {
		return nil, fmt.Errorf("cross-node freshness: %w", err)
	}
	r := latencyPair("cluster", "cluster freshness B of A, 10 k/s",
		"latency from publish on node A to receipt on node B of each entry, R1, default throttle; p99 against embedded mode's on one node",
		lat, base, "embedded mode, subscriber on the publisher's node, the same run", "embedded")
	r.GoalSource = "issue 20"
	r.Note = fmt.Sprintf("%d entries/s for %v; %d of %d entries delivered", rate, d.Round(time.Second), arrived, len(lat))
	r.judge()
	return append(rows, r), nil
}
