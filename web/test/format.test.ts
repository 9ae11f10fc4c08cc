// Tests of format.ts: how values and bodies are written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { BodySchema } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { bytes, cluster, duration, hexDump, renderBody, server } from "../src/format.js";
import { ClusterStatsSchema, ServerInfoSchema } from "../../client/ts/src/gen/pxperf/v1/stats_pb.js";
import { decodeErrorInfo } from "../src/api.js";

test("renderBody", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const cases = [
    { name: "empty", body: {}, kind: "none", text: "", note: "" },
    { name: "JSON by type", body: { data: enc('{"a":[1,2]}'), contentType: "application/json" }, kind: "json", text: '{\n  "a": [\n    1,\n    2\n  ]\n}', note: "" },
    { name: "JSON by look", body: { data: enc("[1]") }, kind: "json", text: "[\n  1\n]", note: "" },
    { name: "truncated JSON is text", body: { data: enc('{"a":'), contentType: "application/json", originalSize: 100n, truncated: true }, kind: "text", text: '{"a":', note: "truncated: 5 of 100 bytes" },
    { name: "text", body: { data: enc("héllo\n"), contentType: "text/plain" }, kind: "text", text: "héllo\n", note: "" },
    { name: "binary", body: { data: new Uint8Array([0, 1, 0xff, 0x41]) }, kind: "hex", text: `00000000  ${"00 01 ff 41".padEnd(47)}  ...A`, note: "" },
  ] as const;
  for (const c of cases) {
    const got = renderBody(create(BodySchema, c.body));
    assert.deepEqual(got, { kind: c.kind, text: c.text, note: c.note }, c.name);
  }
});

test("hexDump lines", () => {
  const lines = hexDump(new Uint8Array(20)).split("\n");
  assert.equal(lines.length, 2);
  assert.ok(lines[1]!.startsWith("00000010  00 00 00 00"));
});

test("bytes and duration", () => {
  for (const [n, want] of [[0, "0 B"], [1023, "1023 B"], [1536, "1.5 kB"], [48213, "47 kB"], [5 * 1024 * 1024, "5.0 MB"]] as const) {
    assert.equal(bytes(n), want);
  }
  for (const [ms, want] of [[0, ""], [0.25, "250 µs"], [4.2, "4.2 ms"], [42.4, "42 ms"], [1250, "1.25 s"]] as const) {
    assert.equal(duration(ms), want);
  }
});

test("decodeErrorInfo", () => {
  // reason "FILTER_SYNTAX", domain "pxperf", metadata {token: "x", utf16_offset: "3"}, as Go's proto.Marshal writes it.
  const w: number[] = [];
  const str = (field: number, s: string) => {
    const b = new TextEncoder().encode(s);
    w.push((field << 3) | 2, b.length, ...b);
  };
  str(1, "FILTER_SYNTAX");
  str(2, "pxperf");
  for (const [k, v] of [["token", "x"], ["utf16_offset", "3"]] as const) {
    const inner: number[] = [];
    for (const [f, s] of [[1, k], [2, v]] as const) {
      const b = new TextEncoder().encode(s);
      inner.push((f << 3) | 2, b.length, ...b);
    }
    w.push((3 << 3) | 2, inner.length, ...inner);
  }
  const info = decodeErrorInfo(new Uint8Array(w));
  assert.equal(info.reason, "FILTER_SYNTAX");
  assert.equal(info.domain, "pxperf");
  assert.deepEqual([...info.metadata], [["token", "x"], ["utf16_offset", "3"]]);
});

test("cluster", () => {
  const up = create(ClusterStatsSchema, {
    connected: true, server: "nats://127.0.0.1:4222", streamMessages: 2n, streamBytes: 2048n,
    firstId: 1n, lastId: 21n, appliedId: 20n, lag: 1n,
  });
  assert.equal(cluster(up), "connected to nats://127.0.0.1:4222 · stream 21 entries in 2 messages, 2.0 kB, ids 1..21 · applied 20, lag 1");
  const down = create(ClusterStatsSchema, { lastError: "nats: timeout", publishFailures: 2n });
  assert.equal(cluster(down), "cannot publish: nats: timeout · stream 0 entries in 0 messages, 0 B, ids 0..0 · applied 0, lag 0, 2 publish failures");
});

test("server", () => {
  assert.equal(server(create(ServerInfoSchema, { version: "v1.2.3", revision: "0123456789abcdef", modified: true, goVersion: "go1.26.8" })),
    "pxperf v1.2.3 (0123456789ab-dirty), go1.26.8");
  assert.equal(server(create(ServerInfoSchema, { version: "(devel)", goVersion: "go1.26.8" })), "pxperf (devel), go1.26.8");
});
