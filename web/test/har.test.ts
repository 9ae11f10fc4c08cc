// The HAR builder against what cmd/pxperf/har.go's entryToHAR writes for
// the same entry: one with both bodies, the response one not UTF-8.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { EntrySchema } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { har, harEntry } from "../src/har.js";

const entry = create(EntrySchema, {
  id: 42n,
  method: "POST",
  url: "https://api.example.com/v1/items?q=a%20b&x",
  statusCode: 201,
  startTime: { seconds: 1796032800n, nanos: 123_000_000 },
  requestHeaders: [{ name: "Content-Type", value: "application/json" }],
  responseHeaders: [{ name: "Location", value: "/v1/items/7" }],
  bytesSent: 120n,
  bytesReceived: 300n,
  requestBody: { data: new TextEncoder().encode('{"name":"é"}'), contentType: "application/json", originalSize: 13n },
  responseBody: { data: new Uint8Array([0xff, 0x00, 0x01]), contentType: "application/octet-stream", originalSize: 10n },
  timings: {
    dns: { nanos: 2_000_000 },
    connect: { nanos: 3_000_000 },
    tlsHandshake: { nanos: 4_000_000 },
    timeToFirstByte: { nanos: 20_000_000 },
    total: { nanos: 25_000_000 },
  },
});

test("har: one entry with both bodies", () => {
  assert.deepEqual(JSON.parse(JSON.stringify(harEntry(entry))), {
    startedDateTime: "2026-11-30T10:00:00.123Z",
    time: 25,
    request: {
      method: "POST",
      url: "https://api.example.com/v1/items?q=a%20b&x",
      httpVersion: "",
      cookies: [],
      headers: [{ name: "Content-Type", value: "application/json" }],
      queryString: [{ name: "q", value: "a b" }, { name: "x", value: "" }],
      headersSize: -1,
      bodySize: 13,
      postData: { mimeType: "application/json", text: '{"name":"é"}' },
      _bytesSent: 120,
    },
    response: {
      status: 201,
      statusText: "Created",
      httpVersion: "",
      cookies: [],
      headers: [{ name: "Location", value: "/v1/items/7" }],
      content: { size: 10, mimeType: "application/octet-stream", text: "/wAB", encoding: "base64" },
      redirectURL: "/v1/items/7",
      headersSize: -1,
      bodySize: -1,
      _transferSize: 300,
    },
    cache: {},
    timings: { blocked: -1, dns: 2, connect: 7, send: 0, wait: 11, receive: 5, ssl: 4 },
    _id: 42,
  });
});

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
