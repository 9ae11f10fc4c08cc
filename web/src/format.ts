/**
 * How the UI writes an entry's values: times, durations, sizes, and
 * bodies (JSON pretty-printed, text as text, anything else as hex).
 *
 * @module
 */
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { Body, Entry } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { Route } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import type { ClusterStats, ServerInfo } from "../../client/ts/src/gen/pxperf/v1/stats_pb.js";

/** millis returns a Duration in milliseconds; 0 when unset. */
export function millis(d: Duration | undefined): number {
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0;
}

/** clock writes a Timestamp as the local time of day with milliseconds, "14:03:07.123". */
export function clock(t: Timestamp | undefined): string {
  if (!t) return "";
  const d = new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6));
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** duration writes milliseconds as "850 µs", "42 ms" or "1.25 s". */
export function duration(ms: number): string {
  if (ms <= 0) return "";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** bytes writes a size with 1024-based units, as the filter's larger-than: reads them: "512 B", "47.1 kB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  for (; v >= 1024 && i < units.length - 1; i++) v /= 1024;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/**
 * size is the SIZE column, as the filter's larger-than: reads it: the
 * bytes received, or the response body's original size when the producer
 * did not count them.
 */
export function size(e: Entry): number {
  return Number(e.bytesReceived || e.responseBody?.originalSize || 0n);
}

/** proxy writes the proxy decision: DIRECT, the upstream, or "" when unknown. */
export function proxy(e: Entry): string {
  const d = e.proxyDecision;
  if (!d) return "";
  if (d.route === Route.DIRECT) return "DIRECT";
  if (d.route === Route.PROXY) return d.upstream || "proxy";
  return "";
}

/** RenderedBody is a body as the detail pane shows it. */
export interface RenderedBody {
  /** How it is shown: "json" pretty-printed, "text", "hex", or "none" when empty. */
  kind: "json" | "text" | "hex" | "none";
  text: string;
  /** "truncated: N of M bytes" when not all of it was recorded, else "". */
  note: string;
}

/** The most bytes the detail pane shows as hex. */
const maxHex = 4096;

/** renderBody returns the body for the detail pane. */
export function renderBody(b: Body | undefined): RenderedBody {
  const data = b?.data ?? new Uint8Array();
  const total = Number(b?.originalSize ?? 0n);
  const note = b?.truncated || total > data.length ? `truncated: ${data.length} of ${Math.max(total, data.length)} bytes` : "";
  if (data.length === 0) {
    return { kind: "none", text: "", note };
  }
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    text = undefined;
  }
  if (text !== undefined && !/[\u0000-\u0008\u000e-\u001f]/.test(text)) {
    if (/json/i.test(b?.contentType ?? "") || /^\s*[{[]/.test(text)) {
      try {
        return { kind: "json", text: JSON.stringify(JSON.parse(text), null, 2), note };
      } catch {
        // Not JSON after all (a truncated document, say): shown as text.
      }
    }
    return { kind: "text", text, note };
  }
  return { kind: "hex", text: hexDump(data.subarray(0, maxHex)) + (data.length > maxHex ? `\n… ${data.length - maxHex} more bytes` : ""), note };
}

/** hexDump writes bytes as lines of offset, 16 hex bytes and their printable ASCII. */
export function hexDump(data: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < data.length; off += 16) {
    const row = data.subarray(off, off + 16);
    const hex = Array.from(row, (c) => c.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

/**
 * cluster says where a node of a cluster stands: whether it can publish,
 * the stream, and how far it has followed it.
 */
export function cluster(c: ClusterStats): string {
  const state = c.connected ? `connected to ${c.server}` : `cannot publish: ${c.lastError || "no connection to NATS"}`;
  const failures = c.publishFailures > 0n ? `, ${c.publishFailures} publish failures` : "";
  // The ids in the stream run without a gap from the first to the last.
  const entries = c.firstId > 0n ? c.lastId - c.firstId + 1n : 0n;
  return `${state} · stream ${entries} entries in ${c.streamMessages} messages, ${bytes(Number(c.streamBytes))}, ids ${c.firstId}..${c.lastId} · applied ${c.appliedId}, lag ${c.lag}${failures}`;
}

/** server names a server's build: version, and the revision when known. */
export function server(s: ServerInfo): string {
  const rev = s.revision ? ` (${s.revision.slice(0, 12)}${s.modified ? "-dirty" : ""})` : "";
  return `pxperf ${s.version}${rev}, ${s.goVersion}`;
}
