/**
 * HAR 1.2 export of entries, as `pxperf export --format har` writes it
 * (cmd/pxperf/har.go, entryToHAR): the same fields, the same custom ones
 * (_id, request._bytesSent, request.postData._encoding,
 * response._transferSize, response._error), bodies that are not UTF-8 in
 * base64, and timings derived the same way.
 *
 * @module
 */
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { Body, Entry, Header } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";

/** The entry's fields har reads: a whole Entry fits, and so does a test's plain object. */
export type HarEntryInput = Pick<
  Entry,
  "id" | "method" | "url" | "tunnel" | "statusCode" | "requestHeaders" | "responseHeaders" | "bytesSent" | "bytesReceived"
> & {
  startTime?: Timestamp;
  requestBody?: Pick<Body, "data" | "contentType" | "originalSize">;
  responseBody?: Pick<Body, "data" | "contentType" | "originalSize">;
  timings?: { dns?: Duration; connect?: Duration; tlsHandshake?: Duration; timeToFirstByte?: Duration; total?: Duration };
  error?: { message: string };
};

/** har returns a HAR 1.2 document of entries, in their order. */
export function har(entries: HarEntryInput[], version = "web"): object {
  return { log: { version: "1.2", creator: { name: "pxperf", version }, entries: entries.map(harEntry) } };
}

/** harEntry maps one entry, as entryToHAR does. */
export function harEntry(e: HarEntryInput): object {
  const request: Record<string, unknown> = {
    method: e.method,
    url: e.tunnel ? tunnelURL(e.url) : e.url,
    httpVersion: "",
    cookies: [],
    headers: pairs(e.requestHeaders),
    queryString: queryString(e.url),
    headersSize: -1,
    bodySize: -1,
  };
  const response: Record<string, unknown> = {
    status: e.statusCode,
    statusText: statusText[e.statusCode] ?? "",
    httpVersion: "",
    cookies: [],
    headers: pairs(e.responseHeaders),
    content: { size: 0, mimeType: "" },
    redirectURL: "",
    headersSize: -1,
    bodySize: -1,
  };
  if (e.requestBody) {
    const b = e.requestBody;
    request.bodySize = Math.max(Number(b.originalSize), b.data.length);
    const text = utf8(b.data);
    request.postData = text === undefined ? { mimeType: b.contentType, text: base64(b.data), _encoding: "base64" } : { mimeType: b.contentType, text };
  }
  request._bytesSent = Number(e.bytesSent);
  for (const h of e.responseHeaders) {
    if (h.name.toLowerCase() === "location") response.redirectURL = h.value;
  }
  if (e.responseBody) {
    const b = e.responseBody;
    const content: Record<string, unknown> = { size: Math.max(Number(b.originalSize), b.data.length), mimeType: b.contentType };
    const text = utf8(b.data);
    if (text === undefined) {
      content.text = base64(b.data);
      content.encoding = "base64";
    } else if (text !== "") {
      content.text = text;
    }
    response.content = content;
  }
  response._transferSize = Number(e.bytesReceived);
  if (e.error?.message) response._error = e.error.message;

  const t = e.timings;
  const timings = { blocked: -1, dns: -1, connect: -1, send: 0, wait: 0, receive: 0, ssl: -1 };
  let before = 0; // dns and connect, which come before the request is sent
  if (t?.dns) {
    timings.dns = ms(t.dns);
    before += timings.dns;
  }
  if (t?.tlsHandshake) timings.ssl = ms(t.tlsHandshake);
  if (t?.connect) {
    timings.connect = ms(t.connect) + Math.max(timings.ssl, 0);
    before += timings.connect;
  }
  if (t?.timeToFirstByte) {
    const ttfb = ms(t.timeToFirstByte);
    timings.wait = Math.max(ttfb - before, 0);
    if (t.total) timings.receive = Math.max(ms(t.total) - ttfb, 0);
  } else if (t?.total) {
    timings.wait = Math.max(ms(t.total) - before, 0);
  }
  const out: Record<string, unknown> = {
    startedDateTime: startedDateTime(e.startTime),
    time: before + timings.send + timings.wait + timings.receive,
    request,
    response,
    cache: {},
    timings,
  };
  if (e.id) out._id = Number(e.id);
  return out;
}

/** download saves text as a file named name, through a Blob and an <a download>. */
export function download(name: string, text: string, type = "application/json"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  // The click has started the download; the URL can go once it has been read.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function ms(d: Duration): number {
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** startedDateTime writes t as Go's "2006-01-02T15:04:05.000Z07:00" in UTC. */
function startedDateTime(t: Timestamp | undefined): string {
  const millis = t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
  return new Date(millis).toISOString();
}

function pairs(hs: Header[]): { name: string; value: string }[] {
  return hs.map((h) => ({ name: h.name, value: h.value }));
}

/** utf8 returns data as text, or undefined when it is not UTF-8. */
function utf8(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(data);
  } catch {
    return undefined;
  }
}

function base64(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(s);
}

/** tunnelURL is the absolute URL for a CONNECT tunnel to host:port, as Go's tunnelURL. */
function tunnelURL(hostport: string): string {
  const m = /^(?:\[[^\]]*\]|[^:]*):(\d*)$/.exec(hostport);
  if (!m) return hostport;
  return `${m[1] === "80" ? "http" : "https"}://${hostport}/`;
}

/** queryString returns the query's parameters in order, decoded where they can be, as Go's queryString. */
function queryString(u: string): { name: string; value: string }[] {
  const q = /\?([^#]*)/.exec(u)?.[1] ?? "";
  const out: { name: string; value: string }[] = [];
  for (const kv of q.split("&")) {
    if (kv === "") continue;
    const i = kv.indexOf("=");
    const [k, v] = i < 0 ? [kv, ""] : [kv.slice(0, i), kv.slice(i + 1)];
    out.push({ name: unescape(k), value: unescape(v) });
  }
  return out;
}

/** unescape decodes a query part as url.QueryUnescape, or returns it as it is when it cannot. */
function unescape(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

/** Go's http.StatusText for the codes a proxy sees. */
const statusText: Record<number, string> = {
  100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
  206: "Partial Content", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
  307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
  404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
  413: "Request Entity Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Entity", 429: "Too Many Requests",
  500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
  504: "Gateway Timeout",
};
