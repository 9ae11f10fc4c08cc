// The README's example: publish an entry, then print the URLs of the last
// 100 entries and stop once the snapshot is complete. Build and run it with
// `npm run build && node dist/examples/tail.js`; PXPERF_URL names the
// server (default http://127.0.0.1:50051), PXPERF_TOKEN its token if any.
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";

import { createPxperfClient, EntrySchema } from "../src/index.js";

// Aborting done closes the connection at the end, so that the program exits.
const done = new AbortController();
const client = createPxperfClient(process.env.PXPERF_URL ?? "http://127.0.0.1:50051", {
  token: process.env.PXPERF_TOKEN,
  signal: done.signal,
});
await client.publish(
  {
    entries: [create(EntrySchema, { startTime: timestampNow(), method: "GET", url: "http://example.com/", statusCode: 200 })],
  },
  { timeoutMs: 10_000 },
);
// The last 100 entries, then a snapshot_end marker; live entries would
// follow, so the loop stops there.
const signal = AbortSignal.timeout(60_000);
for await (const msg of client.subscribe({ start: { case: "tail", value: 100 } }, { signal })) {
  if (msg.event.case === "batch") {
    for (const e of msg.event.value.entries) console.log(`${e.id} ${e.url}`);
  }
  if (msg.event.case === "snapshotEnd") break;
}
done.abort();
