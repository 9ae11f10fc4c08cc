// The differential test of har.ts against cmd/pxperf/har.go's entryToHAR:
// for every entry in testdata/har.json, harEntry writes the HAR the Go code
// wrote (TestHARTestdata in cmd/pxperf holds Go to the same file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { EntrySchema } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { har, harEntry } from "../src/har.js";

const file = JSON.parse(readFileSync(new URL("../testdata/har.json", import.meta.url), "utf8")) as {
  cases: { name: string; entry: JsonValue; har: unknown }[];
};

for (const c of file.cases) {
  test(`har: ${c.name}`, () => {
    assert.deepEqual(JSON.parse(JSON.stringify(harEntry(fromJson(EntrySchema, c.entry)))), c.har);
  });
}

const entry = fromJson(EntrySchema, file.cases[0]!.entry);

test("har: the document", () => {
  const doc = har([entry], "test") as { log: { version: string; creator: unknown; entries: unknown[] } };
  assert.equal(doc.log.version, "1.2");
  assert.deepEqual(doc.log.creator, { name: "pxperf", version: "test" });
  assert.equal(doc.log.entries.length, 1);
});

test("har: a tunnel's url is absolute", () => {
  const t = create(EntrySchema, { method: "CONNECT", url: "example.com:443", tunnel: true });
  assert.equal((harEntry(t) as { request: { url: string } }).request.url, "https://example.com:443/");
});
