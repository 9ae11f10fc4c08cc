// The differential test of curl.ts against Go's replay.Curl: for every
// entry in testdata/curl.json, curl writes the command Go wrote (the Go
// test in web/curl_test.go checks Go against the same file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { EntrySchema } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { curl, quote } from "../src/curl.js";

const file = JSON.parse(readFileSync(new URL("../testdata/curl.json", import.meta.url), "utf8")) as {
  cases: { name: string; entry: JsonValue; curl: string }[];
};

for (const c of file.cases) {
  test(`curl: ${c.name}`, () => {
    assert.equal(curl(fromJson(EntrySchema, c.entry)), c.curl);
  });
}

test("curl refuses a tunnel and a relative URL", () => {
  const e = fromJson(EntrySchema, { method: "CONNECT", url: "example.com:443", tunnel: true });
  assert.throws(() => curl(e), /CONNECT tunnel/);
  assert.throws(() => curl(fromJson(EntrySchema, { method: "GET", url: "/relative" })), /not an absolute http or https URL/);
});

test("quote", () => {
  for (const [s, want] of [
    ["", "''"],
    ["plain", "'plain'"],
    ["it's", "'it'\\''s'"],
    ["$HOME `x` \\n", "'$HOME `x` \\n'"],
  ]) {
    assert.equal(quote(s!), want);
  }
});
