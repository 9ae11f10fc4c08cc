/**
 * The detail pane: one entry, whole (GetEntry), with its headers, bodies,
 * a waterfall of its timings and its request as a curl command.
 *
 * @module
 */
import type { Body, Entry, Header } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { EntryState } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { curl } from "./curl.js";
import { download, har } from "./har.js";
import * as fmt from "./format.js";
import { el } from "./table.js";

/** renderDetail fills pane with e. */
export function renderDetail(pane: HTMLElement, e: Entry): void {
  pane.replaceChildren();
  const title = el("h2", "title");
  title.append(el("span", "method", e.method), " ", el("span", "url", e.url));
  pane.append(title);

  const facts: [string, string][] = [
    ["Id", String(e.id)],
    ["Status", e.state === EntryState.FAILED ? `failed: ${e.error?.message ?? ""}` : e.statusCode ? String(e.statusCode) : "pending"],
    ["Started", e.startTime ? new Date(Number(e.startTime.seconds) * 1000 + e.startTime.nanos / 1e6).toISOString() : ""],
    ["Proxy", fmt.proxy(e) || "unknown"],
    ["Sent · received", `${fmt.bytes(Number(e.bytesSent))} · ${fmt.bytes(Number(e.bytesReceived))}`],
  ];
  if (e.replayOf) facts.push(["Replay of", String(e.replayOf)]);
  const save = el("button", "har", "Download HAR");
  save.type = "button";
  save.id = "detail-har";
  save.addEventListener("click", () => download(`pxperf-${e.id}.har`, JSON.stringify(har([e]), null, 2)));
  pane.append(save);

  const dl = el("dl", "facts");
  for (const [k, v] of facts) dl.append(el("dt", "", k), el("dd", "", v));
  pane.append(dl);

  pane.append(section("Timings", waterfall(e)));

  const copy = el("button", "copy", "Copy as curl");
  copy.type = "button";
  const command = el("pre", "curl");
  try {
    command.textContent = curl(e);
  } catch (err) {
    command.textContent = `# ${(err as Error).message}`;
    copy.disabled = true;
  }
  copy.addEventListener("click", () => {
    void navigator.clipboard?.writeText(command.textContent ?? "").then(
      () => (copy.textContent = "Copied"),
      () => (copy.textContent = "Copy failed: select the text below"),
    );
  });
  const curlBox = el("div");
  curlBox.append(copy, command);
  pane.append(section("Request as curl", curlBox));

  pane.append(section("Request headers", headers(e.requestHeaders)));
  pane.append(section("Request body", body(e.requestBody)));
  pane.append(section("Response headers", headers(e.responseHeaders)));
  pane.append(section("Response body", body(e.responseBody)));
}

/** section returns a headed part of the pane. */
function section(title: string, content: HTMLElement): HTMLElement {
  const s = el("section");
  s.append(el("h3", "", title), content);
  return s;
}

/** headers returns a table of headers; redacted values show as the server wrote them, [REDACTED]. */
function headers(hs: Header[]): HTMLElement {
  if (hs.length === 0) return el("p", "none", "none");
  const table = el("table", "headers");
  for (const h of hs) {
    const tr = el("tr");
    const value = el("td", h.value === "[REDACTED]" ? "value redacted" : "value", h.value);
    tr.append(el("th", "", h.name), value);
    table.append(tr);
  }
  return table;
}

/** body returns a body as renderBody writes it, with its content type and truncation. */
function body(b: Body | undefined): HTMLElement {
  const r = fmt.renderBody(b);
  const box = el("div", "body");
  const meta = [b?.contentType, r.kind === "none" ? "" : r.kind, r.note].filter(Boolean).join(" · ");
  if (meta) box.append(el("p", r.note ? "meta truncated" : "meta", meta));
  box.append(r.kind === "none" ? el("p", "none", "none") : el("pre", `content ${r.kind}`, r.text));
  return box;
}

/** waterfall returns the timings as bars on one scale: dns, connect, tls, then waiting to the first byte, then the rest. */
function waterfall(e: Entry): HTMLElement {
  const t = e.timings;
  const dns = fmt.millis(t?.dns);
  const connect = fmt.millis(t?.connect);
  const tls = fmt.millis(t?.tlsHandshake);
  const ttfb = fmt.millis(t?.timeToFirstByte);
  const total = fmt.millis(t?.total);
  const end = Math.max(total, ttfb, dns + connect + tls);
  if (end <= 0) return el("p", "none", "no timings recorded");
  const bars: [string, number, number][] = [
    ["dns", 0, dns],
    ["connect", dns, connect],
    ["tls", dns + connect, tls],
    ["ttfb", 0, ttfb],
    ["total", 0, total],
  ];
  const box = el("div", "waterfall");
  for (const [name, start, length] of bars) {
    const track = el("div", "track");
    const bar = el("div", `bar ${name}`);
    // Set through the CSSOM, which the page's CSP allows (style attributes in markup it does not).
    bar.style.marginLeft = `${(start / end) * 100}%`;
    bar.style.width = `${Math.max((length / end) * 100, length > 0 ? 0.5 : 0)}%`;
    track.append(bar);
    box.append(el("span", "label", name), track, el("span", "ms", length > 0 ? fmt.duration(length) : "–"));
  }
  return box;
}
