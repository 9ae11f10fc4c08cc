// The config panel's reading and writing of durations, and the limits it
// reads from the buf.validate rules on the generated descriptors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryConfigSchema } from "../../client/ts/src/gen/pxperf/v1/config_pb.js";
import { duration, limits, parseDuration } from "../src/config.js";

test("config: durations as Go writes and reads them", () => {
  for (const [text, seconds, nanos, back] of [
    ["1.5s", 1n, 500_000_000, "1.5s"],
    ["250ms", 0n, 250_000_000, "250ms"],
    ["1h30m", 5400n, 0, "1h30m0s"],
    ["0", 0n, 0, "0s"],
  ] as const) {
    const d = parseDuration(text);
    assert.equal(d.seconds, seconds, text);
    assert.equal(d.nanos, nanos, text);
    assert.equal(duration(d), back, text);
  }
  assert.throws(() => parseDuration("5"), /want a duration/);
  assert.throws(() => parseDuration(""), /want a duration/);
});

test("config: limits from the descriptors", () => {
  const f = (name: string) => MemoryConfigSchema.fields.find((f) => f.name === name)!;
  assert.equal(limits(f("max_entries")), "1..10000000");
  assert.equal(limits(f("max_body_size")), "≤ 67108864");
  assert.equal(limits(f("cleanup_interval")), "100ms..1h0m0s");
  assert.equal(limits(f("redact_headers")), "");
});
