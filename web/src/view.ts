/**
 * The rows of the traffic table, as the server's view of the store:
 * the newest first, filtered by the filter bar's query.
 *
 * While the table follows the newest, its rows come from a live-view
 * Subscribe whose window is the rows on screen, so the page's work is
 * bounded by the window and the message rate whatever the ingest rate.
 * When the user scrolls away from the top, or pauses, the rows freeze:
 * they are read with ListEntries windows of the visible rows plus an
 * overscan, and nothing else is held. The live view still runs then, to
 * keep the count of the view and of the entries that arrived above the
 * frozen rows (the shift: a frozen row i is the view's entry at offset
 * i + shift).
 *
 * The shift is counted from the live view's messages: exact for an
 * unfiltered view; with a filter, a skipped range may hold entries that
 * do not match, so it can count too many. Every ListEntries answer that
 * holds a row already shown corrects it by that row's id.
 *
 * @module
 */
import { ConnectError } from "@connectrpc/connect";
import type { Entry } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import type { Api } from "./api.js";

/** How many rows beyond those on screen are read ahead, each way, when browsing. */
export const overscan = 30;

/** The most entries a live view's window holds (LiveView.window's limit). */
const maxWindow = 1000;

/** ViewEvents are what a TrafficView tells its owner. */
export interface ViewEvents {
  /** The rows, the count or the state changed: render again. */
  changed(): void;
  /** A call failed; the view is stopped until the owner restarts it. */
  failed(err: unknown): void;
}

/** TrafficView holds the rows of the table for one filter. */
export class TrafficView {
  /** The newest rows, newest first, as the live view last sent them. */
  private live: Entry[] = [];
  /** Rows read with ListEntries while frozen, by frozen index. */
  private cache = new Map<number, Entry>();
  /** Entries that arrived above the frozen rows. */
  private shift = 0;
  /** Matching entries in memory, as the server last said. */
  private viewTotal = 0;
  private frozen = false;
  private window = 1;
  private query = "";
  private abort?: AbortController;
  private fetching = false;
  private wanted?: [number, number];
  /** Clear's mark: rows with an id at or below it are hidden; 0 hides none. */
  private floor = 0n;
  /** At most how many matching entries at or below floor are still in memory: the rows hidden at the bottom. */
  private below = 0;
  /** Bumped by every restart: answers to calls of an earlier one are dropped. */
  private generation = 0;

  /** The newest id the server has accepted, matching or not. */
  newestId = 0n;
  /** Whether the first message of the live view has come. */
  ready = false;

  constructor(
    private readonly api: Api,
    private readonly events: ViewEvents,
  ) {}

  /** The number of rows of the table. */
  get total(): number {
    const all = this.frozen ? this.viewTotal - this.shift : this.viewTotal;
    return Math.max(0, all - (this.floor ? this.below : 0));
  }

  /** The newest id hidden by clear, or 0n. */
  get cleared(): bigint {
    return this.floor;
  }

  /**
   * clear hides every row there is now: the entries stay on the server,
   * and the view shows only those newer than the newest id it has seen.
   * It is the client's alone (ListEntries and Subscribe have no lowest-id
   * filter); a new page load shows every row again.
   */
  clear(): void {
    this.floor = this.newestId;
    this.below = this.viewTotal;
    this.follow();
    this.events.changed();
  }

  /** Whether the rows are frozen (paused, or scrolled back). */
  get isFrozen(): boolean {
    return this.frozen;
  }

  /** Entries that arrived since the rows froze. */
  get arrived(): number {
    return this.frozen ? this.shift : 0;
  }

  /**
   * start (re)subscribes with query and window, and resolves when the first
   * message has come, or rejects with the error of the call (a filter
   * syntax error, say). Rows of the previous query are dropped.
   */
  start(query: string, window: number): Promise<void> {
    this.stop();
    const gen = ++this.generation;
    this.query = query;
    this.window = Math.max(1, Math.min(maxWindow, window));
    this.live = [];
    this.cache.clear();
    this.shift = 0;
    this.below = Number.MAX_SAFE_INTEGER;
    this.ready = false;
    const abort = new AbortController();
    this.abort = abort;
    return new Promise((resolve, reject) => {
      const run = async () => {
        const stream = this.api.subscribe(
          { filter: { query }, liveView: { window: this.window } },
          { signal: abort.signal },
        );
        for await (const res of stream) {
          if (res.event.case !== "view") continue;
          this.apply(res.event.value);
          if (!this.ready) {
            this.ready = true;
            resolve();
          }
          this.events.changed();
        }
      };
      run().catch((err: unknown) => {
        if (abort.signal.aborted || gen !== this.generation) return;
        if (!this.ready) {
          reject(err);
        } else {
          this.events.failed(err);
        }
      });
    });
  }

  /** stop ends the live view. */
  stop(): void {
    this.abort?.abort();
    this.abort = undefined;
  }

  /** resize changes the window when the rows on screen change; it restarts the live view. */
  resize(window: number): void {
    const w = Math.max(1, Math.min(maxWindow, window));
    if (w !== this.window && this.abort && this.ready) {
      void this.start(this.query, w).catch((err: unknown) => this.events.failed(err));
    }
  }

  private apply(v: {
    entries: Entry[];
    updates: Entry[];
    total: bigint;
    newestId: bigint;
    skippedFirstId: bigint;
    skippedLastId: bigint;
  }): void {
    const skipped = v.skippedLastId > 0n ? Number(v.skippedLastId - v.skippedFirstId) + 1 : 0;
    if (this.frozen && this.ready) {
      this.shift += v.entries.length + skipped;
    }
    this.live = v.entries.concat(this.live).slice(0, this.window);
    for (const u of v.updates) {
      const i = this.live.findIndex((e) => e.id === u.id);
      if (i >= 0) this.live[i] = u;
    }
    this.viewTotal = Number(v.total);
    this.newestId = v.newestId;
    this.countBelow();
  }

  /**
   * countBelow updates how many rows clear hides: exactly when the live
   * rows reach down to the floor (the ids are newest first), else no more
   * than there were, less what eviction took.
   */
  private countBelow(): void {
    if (!this.floor) return;
    const above = this.live.findIndex((e) => e.id <= this.floor);
    this.below = above >= 0 ? this.viewTotal - above : Math.max(0, Math.min(this.below, this.viewTotal - this.live.length));
  }

  /** freeze stops the rows moving: from now on they are read with ListEntries. */
  freeze(): void {
    if (this.frozen) return;
    this.frozen = true;
    this.shift = 0;
    this.cache.clear();
    this.live.forEach((e, i) => this.cache.set(i, e));
  }

  /** follow shows the newest again. */
  follow(): void {
    if (!this.frozen) return;
    this.frozen = false;
    this.cache.clear();
    this.shift = 0;
    this.events.changed();
  }

  /** row returns row i (0 is the newest), or undefined while it is being read. */
  row(i: number): Entry | undefined {
    const e = this.frozen ? this.cache.get(i) : this.live[i];
    return e && e.id > this.floor ? e : undefined;
  }

  /** The filter the view shows. */
  get filter(): string {
    return this.query;
  }

  /**
   * need says that rows first..last are on screen: when frozen, it reads
   * those missing (with an overscan) and drops every other.
   */
  need(first: number, last: number): void {
    if (!this.frozen) return;
    const from = Math.max(0, first - overscan);
    const to = Math.min(this.total - 1, last + overscan);
    for (const i of this.cache.keys()) {
      if (i < from || i > to) this.cache.delete(i);
    }
    let missing = false;
    for (let i = first; i <= Math.min(last, this.total - 1); i++) {
      if (!this.cache.has(i)) {
        missing = true;
        break;
      }
    }
    if (!missing) return;
    this.wanted = [from, to];
    if (!this.fetching) void this.fetch();
  }

  private async fetch(): Promise<void> {
    const gen = this.generation;
    this.fetching = true;
    try {
      while (this.wanted && this.frozen && gen === this.generation) {
        const [from, to] = this.wanted;
        this.wanted = undefined;
        const offset = from + this.shift;
        const res = await this.api.listEntries({
          filter: { query: this.query },
          offset: BigInt(offset),
          pageSize: Math.min(maxWindow, to - from + 1),
        });
        if (gen !== this.generation || !this.frozen) return;
        // A row already shown puts the answer in place: its id says
        // where the view has moved since the shift was counted.
        const byId = new Map<bigint, number>();
        for (const [i, e] of this.cache) byId.set(e.id, i);
        let shift = this.shift;
        for (let j = 0; j < res.entries.length; j++) {
          const k = byId.get(res.entries[j]!.id);
          if (k !== undefined) {
            shift = offset + j - k;
            break;
          }
        }
        if (shift !== this.shift) {
          this.shift = shift;
          this.cache.clear();
        }
        res.entries.forEach((e, j) => this.cache.set(offset + j - shift, e));
        this.viewTotal = Number(res.totalSize);
        this.below = Math.min(this.below, this.viewTotal);
        this.events.changed();
      }
    } catch (err) {
      if (gen === this.generation && !(err instanceof ConnectError && err.code === 1)) {
        this.events.failed(err);
      }
    } finally {
      this.fetching = false;
    }
  }
}
