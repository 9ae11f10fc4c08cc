/**
 * The stats panel: a WatchStats stream while the panel is open, drawn as
 * the score (total and parts, with their explanations), the active
 * alerts and the recent alert events, the server's build and, in cluster
 * mode, its place in the cluster, and sparklines of the ingest rate,
 * memory and subscribers over the last samples.
 *
 * @module
 */
import { AlertState, type Alert, type Stats } from "../../client/ts/src/gen/pxperf/v1/stats_pb.js";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code } from "@connectrpc/connect";
import { isPermissionDenied, isUnauthenticated, lacksRole, type Api } from "./api.js";
import * as fmt from "./format.js";
import { el } from "./table.js";

/** How many samples the sparklines keep. */
export const maxSamples = 120;

/** How many alert events the panel lists. */
const maxEvents = 10;

/** Sample is what the sparklines draw of one Stats. */
export interface Sample {
  /** When, in ms since the epoch. */
  time: number;
  accepted: number;
  /** Entries accepted per second since the sample before; 0 for the first. */
  rate: number;
  rss: number;
  storeBytes: number;
  budget: number;
  subscribers: number;
}

/** sample reads s, with prev, the sample before, for the rate. */
export function sample(s: Stats, prev: Sample | undefined): Sample {
  const time = s.sampleTime ? Number(s.sampleTime.seconds) * 1000 + s.sampleTime.nanos / 1e6 : Date.now();
  const accepted = Number(s.store?.accepted ?? 0n);
  const dt = prev ? (time - prev.time) / 1000 : 0;
  return {
    time,
    accepted,
    rate: prev && dt > 0 ? Math.max(accepted - prev.accepted, 0) / dt : 0,
    rss: Number(s.process?.rssBytes ?? 0n),
    storeBytes: Number(s.store?.bytes ?? 0n),
    budget: Number(s.store?.budgetBytes ?? 0n),
    subscribers: Number(s.throttle?.subscribers ?? 0n),
  };
}

/** StatsPanel draws the stats stream into pane while it is open. */
export class StatsPanel {
  private samples: Sample[] = [];
  /** Recent alert events and config changes, newest first. */
  private events: { kind: "firing" | "cleared" | "config"; text: string }[] = [];
  private last?: Stats;
  private abort?: AbortController;
  private problem = "";

  constructor(
    private readonly pane: HTMLElement,
    private readonly api: Api,
    private readonly askToken: (message: string) => void,
  ) {}

  /** open starts the stream; a second call restarts it. */
  open(): void {
    this.close();
    const abort = new AbortController();
    this.abort = abort;
    this.problem = "";
    this.render();
    const run = async () => {
      for await (const res of this.api.watchStats({}, { signal: abort.signal })) {
        const ev = res.event;
        if (ev.case === "stats") {
          this.last = ev.value;
          this.samples.push(sample(ev.value, this.samples.at(-1)));
          if (this.samples.length > maxSamples) this.samples.splice(0, this.samples.length - maxSamples);
        } else if (ev.case === "alert") {
          this.event(alertEvent(ev.value));
        } else if (ev.case === "configChanged") {
          const paths = ev.value.changedFields?.paths.join(", ") ?? "";
          this.event({ kind: "config", text: `${fmt.clock(timestampNow())} config changed: ${paths}` });
        }
        this.render();
      }
    };
    run().catch((err: unknown) => {
      if (abort.signal.aborted || ConnectError.from(err).code === Code.Canceled) return;
      if (isUnauthenticated(err) || isPermissionDenied(err)) {
        this.askToken(isPermissionDenied(err) ? lacksRole(err) : "");
      }
      this.problem = ConnectError.from(err).rawMessage;
      this.render();
    });
  }

  private event(e: { kind: "firing" | "cleared" | "config"; text: string }): void {
    this.events.unshift(e);
    this.events.length = Math.min(this.events.length, maxEvents);
  }

  /** close ends the stream. */
  close(): void {
    this.abort?.abort();
    this.abort = undefined;
  }

  private render(): void {
    const s = this.last;
    const out: HTMLElement[] = [el("h2", "", "Stats")];
    if (this.problem) out.push(el("p", "problem", this.problem));
    if (!s) {
      out.push(el("p", "none", this.problem ? "" : "waiting for the first sample…"));
      this.pane.replaceChildren(...out);
      return;
    }
    const score = el("section", "score");
    const total = el("p", "total");
    total.id = "score-total";
    total.append(el("strong", "", (s.score?.total ?? 0).toFixed(0)), " / 100");
    score.append(el("h3", "", "Score"), total);
    const parts = el("dl", "parts");
    for (const p of s.score?.parts ?? []) {
      parts.append(el("dt", "", `${p.name} ${p.points.toFixed(1)} / ${p.maxPoints}`), el("dd", "", p.explanation));
    }
    score.append(parts);
    out.push(score);

    const alerts = el("section", "alerts");
    alerts.append(el("h3", "", "Alerts and changes"));
    if (s.activeAlerts.length === 0) alerts.append(el("p", "none", "none active"));
    for (const a of s.activeAlerts) alerts.append(el("p", "alert firing", `${a.name}: ${a.message}`));
    if (this.events.length) {
      const list = el("ul", "events");
      for (const e of this.events) list.append(el("li", e.kind, e.text));
      alerts.append(list);
    }
    out.push(alerts);

    const node = el("section", "node");
    node.append(el("h3", "", "Server"));
    if (s.server) node.append(el("p", "build", fmt.server(s.server)));
    if (s.cluster) {
      const line = el("p", s.cluster.connected ? "cluster" : "cluster problem", `Cluster: ${fmt.cluster(s.cluster)}`);
      line.id = "cluster-state";
      node.append(line);
    }
    out.push(node);

    const last = this.samples.at(-1)!;
    const charts = el("section", "charts");
    charts.append(el("h3", "", `Last ${this.samples.length} samples`));
    charts.append(
      chart("Ingest", `${last.rate.toFixed(1)}/s`, [{ name: "rate", values: this.samples.map((x) => x.rate) }]),
      chart("Memory", `RSS ${fmt.bytes(last.rss)} · store ${fmt.bytes(last.storeBytes)} of ${fmt.bytes(last.budget)}`, [
        { name: "rss", values: this.samples.map((x) => x.rss) },
        { name: "store", values: this.samples.map((x) => x.storeBytes) },
        { name: "budget", values: this.samples.map((x) => x.budget) },
      ]),
      chart("Subscribers", String(last.subscribers), [{ name: "subscribers", values: this.samples.map((x) => x.subscribers) }]),
    );
    out.push(charts);
    this.pane.replaceChildren(...out);
  }
}

/** alertEvent writes an alert starting or clearing for the list of events. */
function alertEvent(a: Alert): { kind: "firing" | "cleared"; text: string } {
  const cleared = a.state === AlertState.CLEARED;
  const at = cleared ? a.clearTime : a.startTime;
  return { kind: cleared ? "cleared" : "firing", text: `${fmt.clock(at)} ${a.name} ${cleared ? "cleared" : "started"}: ${a.message}` };
}

/** timestampNow is the time now as a Timestamp, for fmt.clock. */
function timestampNow(): Timestamp {
  return timestampFromMs(Date.now());
}

const svgNS = "http://www.w3.org/2000/svg";

/** chart returns a titled sparkline of one or more series on one scale, from 0 to their largest value. */
function chart(title: string, now: string, series: { name: string; values: number[] }[]): HTMLElement {
  const box = el("div", "chart");
  box.append(el("span", "label", title), el("span", "now", now));
  const w = 240;
  const h = 36;
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${now}`);
  const top = Math.max(1e-9, ...series.flatMap((s) => s.values));
  for (const s of series) {
    const line = document.createElementNS(svgNS, "polyline");
    const n = s.values.length;
    const points = s.values.map((v, i) => `${(w - ((n - 1 - i) / (maxSamples - 1)) * w).toFixed(1)},${(h - 1 - (v / top) * (h - 2)).toFixed(1)}`);
    line.setAttribute("points", points.join(" "));
    line.setAttribute("class", s.name);
    svg.append(line);
  }
  box.append(svg);
  return box;
}
