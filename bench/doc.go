// Package bench measures pxperf against baselines in the same run, over
// real loopback TCP, so that its figures can be quoted as ratios (issues 5
// and 10; DESIGN.md, "Where the speed comes from").
//
// # The suite
//
// BenchmarkSuite runs every scenario of issue 10 once, each beside its
// baseline, and prints one table (scenario | pxperf | baseline | ratio |
// goal | met?), written as JSON too with -suite.json:
//
//	go test -run '^$' -bench Suite -benchtime 1x -timeout 60m ./bench -args -suite.json=/tmp/bench.json
//
// It takes about nine minutes on two cores, most of it the flood and the
// cluster. Its scenarios are sub-benchmarks, so -bench
// 'Suite/(ingest|fanout)' runs some: ingest, e2e, relay, fanout,
// freshness, liveview, idle, window, throttled, flood, cluster.
// After -args:
//
//   - -suite.seconds=2: how long each server runs, per round, in the
//     timed scenarios (ingest, e2e, relay, fanout, idle);
//   - -suite.rounds=5: rounds of the timed scenarios; in each round every
//     server gets a fresh instance and fresh clients, in an order
//     that rotates from round to round, so that load from elsewhere on a
//     shared machine falls on each about equally. Rates are pooled over
//     the rounds (all entries over all seconds); the note under the table
//     gives the spread of the per-round ratios;
//   - -suite.json=FILE: the report as JSON (rows with every figure, the
//     machine, the command, PXPERF_* variables, load averages);
//   - -suite.profiles=DIR: a CPU profile per scenario, DIR/NAME.cpu, the
//     throttled fan-out server's own, DIR/throttled.cpu, and the liveview
//     subscriber process's, DIR/liveview-client.cpu.
//
// Every goroutine carries the labels side=server or side=client and
// kind=bare, pxperf or nats (see serverLabels and clientLabels). The split
// of a scenario's CPU time, and the pxperf server's share alone (the
// comma-separated filters must all match, on "key:value"):
//
//	go tool pprof -tags DIR/fanout.cpu
//	go tool pprof -top -nodecount 25 -tagfocus 'side:server,kind:pxperf' DIR/fanout.cpu
//
// The scenarios, each judged as ratio = pxperf / baseline against issue
// 10's goal, or issue 5's for relay (a floor for throughput, a ceiling for
// the rest):
//
//   - ingest: BenchmarkIngest's load (one PublishStream, messages of 100
//     ~300-byte entries, archive off) against the bare server, which only
//     counts; entries/s acknowledged. Goal ≥ 0.6.
//   - e2e: BenchmarkRelay's (ingest, archive on, one subscriber) against
//     the bare relay; entries/s delivered. Goal ≥ 0.5.
//   - relay: the same with pxperf's archive off, issue 5's end-to-end
//     figure (the update throttler's path: ingest, store, one subscriber).
//     Goal ≥ 0.5.
//     Rows of pxperf with its archive on (e2e, fanout) also say how many
//     MiB of lines the archive wrote and how many of them were in rotated
//     files still waiting for compression when the rounds ended.
//   - fanout: BenchmarkFanout's (100 subscribers, archive on) against the
//     bare relay (goal ≥ 0.8) and against an embedded nats-server (goal
//     ≥ 1.0); entries/s delivered, summed over subscribers. The NATS side
//     (nats_test.go) publishes each 100-entry PublishStream message as one
//     NATS message, as pxperf sends batches; its 100 subscribers, one
//     connection each, count the entries of each payload in place.
//   - freshness: entries published at a steady rate (a message every 10
//     ms) to one subscriber, each timed from its PublishStream message to
//     the Subscribe message that brings it, for 2.5 × -suite.seconds; p50
//     and p99. At pxperf's default config (archive off), at 10 000 and
//     100 000 entries/s, against issue 17's goals (p99 ≤ 250 and ≤ 500
//     ms): entries that have not arrived 10 s after the last publish count
//     as that late, a lower bound. At the suite's fast config, 100 000
//     entries/s, against the bare relay at the same rate (p99 ≤ 2 ×),
//     the two taking turns for -suite.seconds in each of -suite.rounds
//     rounds, their latencies pooled.
//   - liveview: one live-view subscriber (live_view window 50, no filter)
//     of a pxperf server at its default config (archive off), while
//     100 000 entries/s are published as freshness publishes them, for
//     2.5 × -suite.seconds. Each PublishStream message is timed from its
//     send to the receipt of the first view message whose newest entry
//     is at or past its last id (entries a later message superseded count
//     until that message); p50 and p99, judged at p99 against one interval
//     of the throttle (1 s / throttle.max_updates_per_second, at least
//     min_update_interval: 33.3 ms at the default) plus 5 ms. The
//     subscriber runs in a child process, this test binary again
//     (TestLiveViewSubscriberProcess), decoding each message with the
//     generated client and checking that every id is carried or skipped
//     once; its CPU time (getrusage, user + system) from the start of
//     publishing to its end, over that time, is the client CPU row, goal
//     ≤ 0.05 of a core. A row with no goal sets the messages a second it
//     received beside the throttle's cap, with entries and bytes per
//     message, and the interval the server kept at the end.
//   - idle: the ingest load (archive off; entries/s acknowledged) on a
//     pxperf server holding 1000, then 10 000, idle subscribers, against
//     the same server with none: Subscribe streams, 100 to a connection,
//     whose filter (host nomatch.invalid) matches no entry, read as a UI
//     reads them. The three servers (none, 1000, 10 000) take turns as
//     the timed scenarios' do, each fresh in each round, with
//     cleanup.max_resources raised to 100 000 for all three. Goal ≥ 0.9.
//     A second row per count is the server's memory per idle subscriber,
//     goal ≤ 16 KiB: runtime.MemStats HeapInuse + StackInuse, each after a
//     GC, before the subscriptions open and once they have been open and
//     idle for a second (before any ingest),
//     the difference over their count, median over the rounds. The
//     subscribers run in a child process, this test binary again
//     (TestIdleSubscriberProcess), so that the figure is the server's
//     alone: its stream goroutines, its subscriptions, and its share of
//     the connections' buffers. Each stream asks for the last matching
//     entry (tail 1); there is none, so its first message is the
//     snapshot_end marker, which says the server has registered it, and
//     GetStats must count every subscriber before the memory is read and
//     again after the ingest.
//   - window: 50-row ListEntries windows at random offsets over 1 M
//     entries, unfiltered, and filtered to 1 % by host both on a first
//     call (full pass) and on a cached view; p50, p90, p99 through the RPC
//     on loopback and through Service.ListEntries in-process. The
//     baseline of these rows is the goal (0.5 ms unfiltered, 20 ms
//     filtered), judged at p99. The unfiltered windows are also asked,
//     call for call, of a bare gRPC server that returns them from a slice
//     of the same entries: a row with no goal sets pxperf's RPC latency
//     beside it, which shows what gRPC and the client's decoding cost on
//     the machine.
//   - throttled: runs BenchmarkThrottledFanout of ./cmd/pxperf with go
//     test (the real binary in its own process): 100 subscribers at 30
//     msgs/s while 100 000 entries/s are published for PXPERF_BENCH_SECONDS
//     (10). Delivered share of the worst subscriber (goal: all), most
//     messages in any second (goal ≤ 30), server CPU (issue 5: < 1 core).
//   - flood: runs BenchmarkFlood of ./cmd/pxperf: PXPERF_FLOOD_GB GiB (4) of
//     64 KiB bodies into a 256 MiB budget, live memory checked for pressure
//     every 100 ms; peak RSS over the budget, goal ≤ 1.3; and the store's
//     accounted bytes over the budget, sampled every 100 ms and averaged
//     over the flood, goal ≥ 0.6 (the store keeps its history while the
//     process is busy).
//   - cluster: pxperf in cluster mode (issue 20) against pxperf in embedded
//     mode, the same loads in the same run: ingest and relay as above,
//     through JetStream with one replica on one NATS server and with three
//     on three (nats-server in this process, file storage, loopback), the
//     three kinds taking turns; goal ≥ 0.5 for R1 ingest. And the freshness
//     at 10 000 entries/s, default config, of a subscriber on a second node
//     of an R1 cluster against one on the publisher's node in embedded mode.
//
// A missed goal is a "NO" in the table, with the shortfall, not a failed
// benchmark; a lost entry, a harness error, or a cmd/pxperf that does not
// build is an error (an ERROR row and a failed benchmark).
//
// # The pairs
//
// BenchmarkIngest, BenchmarkRelay and BenchmarkFanout are the same loads
// as pairs of sub-benchmarks, bare then pxperf, for benchstat and quick
// profiles. Every scenario, three times each:
//
//	go test -run '^$' -bench '^Benchmark(Ingest|Relay|Fanout)$' -benchtime 3x -count 3 ./bench
//
// Each benchmark takes a few seconds per run. One scenario, with a CPU
// profile of the server side only:
//
//	go test -run '^$' -bench 'BenchmarkFanout/pxperf' -benchtime 3x -o /tmp/bench.test -cpuprofile /tmp/fanout.cpu ./bench
//	go tool pprof -top -nodecount 25 -tagfocus side=server /tmp/bench.test /tmp/fanout.cpu
//
// Every goroutine a server under test starts carries the pprof labels
// side=server and kind=bare, pxperf or nats (see serverLabels), and the
// clients' side=client; -tagfocus side=client shows the clients. The
// garbage collector's background workers carry no label: their share shows
// only in the unfiltered profile. Use more iterations (-benchtime 20x) for
// a profile with enough samples.
//
// On a shared machine, other load moves the figures by tens of percent
// from one run to the next; the ratio is only as good as the two runs
// beside each other. Repeating the whole command keeps each bare run next
// to its pxperf run, where -count N runs the N bare runs first:
//
//	for i in 1 2 3; do go test -run '^$' -bench '^Benchmark(Ingest|Relay|Fanout)$' -benchtime 3x ./bench; done
//
// # What is compared
//
// Each benchmark is a pair of sub-benchmarks run back to back in one
// process: bare, then pxperf. Both serve pxperf.v1.PerformanceService on
// 127.0.0.1 and get the same clients sending and receiving the same wire
// messages.
//
//   - bare is the baseline (bare.go): grpc.NewServer with pxperf's message
//     size limits (16 MiB) and nothing else. PublishStream counts each
//     message's entries and hands them, as decoded, to every open Subscribe
//     stream through a bounded channel (64 messages); the relay blocks the
//     publisher while a channel is full. Each Subscribe stream sends each
//     message's entries as one SubscribeResponse batch. No validation,
//     storage, ids, filter, throttle or coalescing: the cost of gRPC and
//     protobuf alone, decode once and encode once per subscriber.
//   - pxperf is the real server, service.New with config.Default() changed
//     for throughput: memory.max_entries 1000000 and max_memory_mb 4096, so
//     that nothing is evicted in a run of a few iterations;
//     throttle.max_updates_per_second 1000, max_batch_size and batch_size
//     10000, the highest the contract allows; and, so that the subscribers
//     are unthrottled in the issues' sense, throttle.mode FIXED (adaptive
//     mode slows subscribers when the CPU is busy, which a benchmark always
//     makes it), min_update_interval and batch_timeout 1ms (their lowest: the
//     default 33ms would cap a subscriber at 30 messages a second, and a
//     batch waiting 100ms to fill would add its wait to every iteration);
//     cleanup.max_resources 1000, room for 100 subscribers and a publisher.
//     The archive (logs) is off for BenchmarkIngest, as issue 10 asks, and at
//     its default (on, in a temporary directory) for the others. Subscribers
//     ask for 1000 messages a second of up to 10000 entries (pxperf also
//     stops a batch at 1 MiB, about 3 300 of these entries), and start at
//     the next id to be assigned (start_id), so none can miss an entry
//     however late its stream opens.
//
// The entries are ~300 bytes marshalled (TestEntrySize logs the exact
// figure): a completed GET with a CDN URL, host, start time, status 200,
// two request headers and one response header, timings.total, byte counts
// and a priority. Host, state and priority are set as pxperf would derive
// them, so pxperf relays the same bytes as bare but for the id it adds. A
// pool of 10000 distinct entries is built once and published in cycles.
//
// # The clients
//
// Clients and server share the machine's cores, so the clients must cost
// as little as possible or the figures measure them: decoding every entry
// into Go messages, as the generated client does, costs more than a bare
// relay of it (measured: half the process's CPU in the bare fan-out). So the
// publisher sends messages encoded once, and the subscribers read each
// SubscribeResponse in place, in the buffers gRPC received it in, counting
// entries and, for pxperf, checking that ids are consecutive, without
// building a message. Both servers see ordinary gRPC proto traffic; see
// wire_test.go. Every subscriber has its own connection, as separate UIs
// would. The clients still take about a third of the CPU in the fan-out
// (mostly gRPC reading the sockets): the same work per entry for both
// servers, plus a little per message, of which bare sends more.
//
// # Scenarios
//
// One iteration (b.Loop) is a fixed amount of work: publish perIteration
// entries on one PublishStream, in messages of 100 entries, wait for the
// server's summary, and wait until every subscriber has received every one
// of them. Before timing starts, one warm-up message opens every stream.
//
//   - BenchmarkIngest: one publisher, no subscriber; 100000 entries an
//     iteration. entries/s: entries acknowledged per second (the
//     PublishStream summary's accepted count, checked against the server's
//     own count at the end: GetStats store.accepted for pxperf).
//   - BenchmarkRelay: one publisher and one subscriber; 100000 entries an
//     iteration. entries/s: entries delivered to the subscriber per second.
//   - BenchmarkFanout: one publisher and 100 subscribers; 10000 entries an
//     iteration (a million deliveries). entries/s: entries delivered per
//     second, summed over the subscribers.
//
// Besides entries/s, the relay scenarios report entries/msg, the average
// entries per SubscribeResponse batch: always 100 for bare, larger for
// pxperf when a subscriber behind the store gets what has piled up in one
// message. Each pxperf result also reports pxperf/bare: its entries/s over
// the median entries/s of the bare runs of the same benchmark in this
// process. With -count N the N bare runs come first, then the N pxperf
// runs. Running only the pxperf half (-bench 'Relay/pxperf') gives no
// ratio. The goals (issue 10) are floors for these ratios: ingest 0.6,
// relay 0.5, fan-out to 100 subscribers 0.8.
//
// # Losses fail the benchmark
//
// A gap message, an id out of sequence (lost, repeated or reordered), a
// subscriber stream that ends, an iteration that does not complete within
// two minutes, a rejected entry, or at the end any subscriber with fewer or
// more entries than were published, fails the benchmark. With many more
// iterations than -benchtime 3x, pxperf starts evicting its oldest entries
// past a million; subscribers have received them by then, so this costs no
// loss, but the log line reports evictions.
//
// go test ./bench, without -bench, runs each scenario at a small scale
// against both servers (TestScenarios), the NATS side (TestNATSFanout),
// the window scenario (TestWindow), the idle one (TestIdle: 50 idle
// subscribers, two short rounds) and the live view (TestLiveView: 10 000
// entries/s for a second) at a small scale, checks the report and
// the parsing of cmd/pxperf's output, and checks with goleak that every
// goroutine ends. It runs no server binary and takes a few seconds.
package bench
