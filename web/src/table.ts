/**
 * The traffic table: a virtually scrolled list of fixed-height rows. The
 * DOM holds one pool of row elements, as many as fit on screen plus two,
 * and each render writes the rows now on screen into them; the scrollbar's
 * extent is the view's total, set as the height of an empty spacer.
 *
 * Browsers cap an element's height (Chromium near 2^25 px), so past
 * maxHeight the scroll position maps to a row by proportion instead of by
 * row height.
 *
 * @module
 */
import type { Entry } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import { EntryState } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";
import * as fmt from "./format.js";

/** A row's height in CSS pixels; app.css sets the same (--row-height). */
export const rowHeight = 22;

/** The tallest spacer set, below every browser's cap. */
const maxHeight = 16_000_000;

/** The columns, in order: class name and heading. */
export const columns: [string, string][] = [
  ["id", "ID"],
  ["time", "Time"],
  ["method", "Method"],
  ["status", "Status"],
  ["duration", "Duration"],
  ["size", "Size"],
  ["host", "Host"],
  ["url", "URL"],
  ["proxy", "Proxy"],
];

/** Rows is where the table's rows come from. */
export interface Rows {
  readonly total: number;
  row(i: number): Entry | undefined;
  need(first: number, last: number): void;
}

/** Table renders rows into a scroller element. */
export class Table {
  private readonly spacer: HTMLElement;
  private readonly layer: HTMLElement;
  private pool: HTMLElement[] = [];
  private first = 0;
  /** The selected row's index, or -1. */
  selected = -1;
  /** The selected row's entry id, kept while the row moves. */
  selectedId = 0n;

  constructor(
    private readonly scroller: HTMLElement,
    private readonly rows: Rows,
    private readonly onPick: (i: number) => void,
  ) {
    this.spacer = el("div", "spacer");
    this.layer = el("div", "rows");
    this.spacer.append(this.layer);
    scroller.append(this.spacer);
    this.layer.addEventListener("click", (ev) => {
      const row = (ev.target as HTMLElement).closest<HTMLElement>(".row");
      if (row?.dataset.index) this.onPick(Number(row.dataset.index));
    });
  }

  /** The number of whole rows on screen. */
  get visibleRows(): number {
    return Math.max(1, Math.floor(this.scroller.clientHeight / rowHeight));
  }

  /** The number of rows on screen, the partly shown ones included: the live view's window. */
  get rowsOnScreen(): number {
    return Math.ceil(this.scroller.clientHeight / rowHeight) + 1;
  }

  /** The index of the first row on screen. */
  get firstVisible(): number {
    return this.first;
  }

  /** render writes the rows now on screen; call it after a scroll, a resize or new data. */
  render(): void {
    const total = this.rows.total;
    const height = Math.min(total * rowHeight, maxHeight);
    if (this.spacer.style.height !== `${height}px`) {
      this.spacer.style.height = `${height}px`;
    }
    const view = this.scroller.clientHeight;
    const top = this.scroller.scrollTop;
    const scaled = total * rowHeight > maxHeight;
    const onScreen = this.rowsOnScreen;
    let offsetInRow = 0;
    if (scaled) {
      const range = Math.max(1, height - view);
      this.first = Math.round((Math.min(top, range) / range) * Math.max(0, total - onScreen + 1));
    } else {
      this.first = Math.floor(top / rowHeight);
      offsetInRow = top % rowHeight;
    }
    this.layer.style.transform = `translateY(${top - offsetInRow}px)`;
    while (this.pool.length < onScreen) {
      const row = el("div", "row");
      for (const [name] of columns) row.append(el("span", name));
      this.layer.append(row);
      this.pool.push(row);
    }
    const last = Math.min(total, this.first + onScreen) - 1;
    this.rows.need(this.first, last);
    this.pool.forEach((row, k) => {
      const i = this.first + k;
      const e = i < total ? this.rows.row(i) : undefined;
      row.hidden = i >= total;
      row.dataset.index = String(i);
      fill(row, e);
      row.classList.toggle("selected", e !== undefined && e.id === this.selectedId);
    });
  }

  /** select selects row i and scrolls it into view. */
  select(i: number): void {
    const total = this.rows.total;
    if (total === 0) return;
    i = Math.max(0, Math.min(total - 1, i));
    this.selected = i;
    this.selectedId = this.rows.row(i)?.id ?? 0n;
    const visible = this.visibleRows;
    if (i < this.first) {
      this.scrollToRow(i);
    } else if (i >= this.first + visible) {
      this.scrollToRow(i - visible + 1);
    }
    this.render();
  }

  /** scrollToRow scrolls so that row i is the first on screen. */
  scrollToRow(i: number): void {
    const total = this.rows.total;
    if (total * rowHeight > maxHeight) {
      const range = Math.max(1, maxHeight - this.scroller.clientHeight);
      this.scroller.scrollTop = (i / Math.max(1, total - this.visibleRows)) * range;
    } else {
      this.scroller.scrollTop = i * rowHeight;
    }
  }

  /** domRows returns the number of row elements in the DOM. */
  domRows(): number {
    return this.pool.length;
  }
}

/** fill writes e into row's cells, only when the row shows another entry than before. */
function fill(row: HTMLElement, e: Entry | undefined): void {
  const key = e ? `${e.id}:${e.state}` : "";
  if (row.dataset.key === key) return;
  row.dataset.key = key;
  const cells = row.children;
  const text = e ? values(e) : columns.map(() => "");
  for (let c = 0; c < text.length; c++) {
    (cells[c] as HTMLElement).textContent = text[c]!;
  }
  if (e) {
    cells[2]!.className = "method";
    cells[3]!.className = `status s${Math.floor(e.statusCode / 100)}xx${e.state === EntryState.FAILED ? " failed" : ""}`;
  }
  row.classList.toggle("loading", !e);
}

/** values returns the cells of e's row. */
function values(e: Entry): string[] {
  const status =
    e.state === EntryState.FAILED ? "failed" : e.state === EntryState.PENDING ? "…" : e.statusCode ? String(e.statusCode) : "";
  return [
    String(e.id),
    fmt.clock(e.startTime),
    e.method,
    status,
    fmt.duration(fmt.millis(e.timings?.total)),
    fmt.bytes(fmt.size(e)),
    e.host,
    e.url,
    fmt.proxy(e),
  ];
}

/** el returns a new element with a class. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}
