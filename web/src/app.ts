/**
 * The pxperf web UI: a live traffic table with a filter bar and a detail
 * pane, over the gateway that serves the page. See README, "The browser
 * UI".
 *
 * @module
 */
import "./app.css";
import { ConnectError } from "@connectrpc/connect";
import { filterSyntax, isPermissionDenied, isUnauthenticated, lacksRole, newApi, sessionTokens, type FilterSyntaxError } from "./api.js";
import { ConfigPanel } from "./config.js";
import { renderDetail } from "./detail.js";
import { download, har } from "./har.js";
import { StatsPanel } from "./stats.js";
import { columns, el, Table } from "./table.js";
import { TrafficView } from "./view.js";

/** The most entries Download HAR of the view writes. */
const maxHarEntries = 1000;

/** How long the filter waits after the last key before it applies, in ms. */
const filterDelay = 300;

/** byId returns the element with id, which index.html has. */
function byId<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}

/** Frames records requestAnimationFrame deltas for the browser benchmark (window.__pxperf). */
class Frames {
  deltas: number[] = [];
  private last = 0;
  private running = false;

  start(): void {
    this.deltas = [];
    this.last = 0;
    if (this.running) return;
    this.running = true;
    const tick = (t: number) => {
      if (!this.running) return;
      if (this.last) this.deltas.push(t - this.last);
      this.last = t;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  stop(): number[] {
    this.running = false;
    return this.deltas;
  }
}

function main(): void {
  const tokens = sessionTokens();
  const api = newApi(location.origin, tokens);
  const filter = byId<HTMLInputElement>("filter");
  const filterError = byId("filter-error");
  const pause = byId<HTMLButtonElement>("pause");
  const status = byId("status");
  const scroller = byId("scroller");
  const detail = byId("detail");
  const tokenDialog = byId<HTMLDialogElement>("token-dialog");
  const tokenInput = byId<HTMLInputElement>("token");
  const tokenReason = byId("token-reason");
  const clear = byId<HTMLButtonElement>("clear");
  const harButton = byId<HTMLButtonElement>("har");
  const panel = byId("panel");
  const statsToggle = byId<HTMLButtonElement>("stats-toggle");
  const configToggle = byId<HTMLButtonElement>("config-toggle");

  const head = byId("thead");
  for (const [name, title] of columns) head.append(el("span", name, title));

  let paused = false;
  let problem = "";
  let frame = 0;
  const view = new TrafficView(api, {
    changed: () => schedule(),
    failed: (err) => failed(err),
  });
  const table = new Table(scroller, view, (i) => {
    table.select(i);
    void open();
  });

  /** schedule renders on the next frame, once however many changes come before it. */
  function schedule(): void {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      table.render();
      const n = view.total.toLocaleString("en");
      const state = problem ? problem : view.isFrozen ? `${paused ? "paused" : "scrolled back"}${view.arrived ? ` · ${view.arrived.toLocaleString("en")} newer` : ""}` : "following";
      status.textContent = view.ready ? `${n} entries · ${state}` : problem || "connecting…";
      status.classList.toggle("problem", problem !== "");
    });
  }

  function failed(err: unknown): void {
    const syntax = filterSyntax(err);
    if (syntax) {
      showFilterError(syntax);
      problem = "no rows until the filter is fixed";
      schedule();
      return;
    }
    if (isUnauthenticated(err)) {
      askToken();
      return;
    }
    if (isPermissionDenied(err)) {
      askToken(lacksRole(err));
      return;
    }
    problem = ConnectError.from(err).rawMessage;
    schedule();
  }

  /** askToken opens the token prompt, with why when the token given lacks a role. */
  function askToken(reason = ""): void {
    problem = reason ? "the token lacks a role" : "the server wants a token";
    schedule();
    tokenReason.textContent = reason;
    tokenReason.hidden = reason === "";
    if (!tokenDialog.open) {
      tokenInput.value = "";
      tokenDialog.showModal();
    }
  }

  const stats = new StatsPanel(panel, api, askToken);
  const config = new ConfigPanel(panel, api, askToken);
  let shownPanel: "" | "stats" | "config" = "";
  /** showPanel opens the stats or the config panel, or closes the one open when it is asked again. */
  function showPanel(which: "stats" | "config"): void {
    shownPanel = shownPanel === which ? "" : which;
    stats.close();
    statsToggle.setAttribute("aria-pressed", String(shownPanel === "stats"));
    configToggle.setAttribute("aria-pressed", String(shownPanel === "config"));
    panel.hidden = shownPanel === "";
    panel.replaceChildren();
    if (shownPanel === "stats") stats.open();
    if (shownPanel === "config") void config.load();
  }
  statsToggle.addEventListener("click", () => showPanel("stats"));
  configToggle.addEventListener("click", () => showPanel("config"));

  clear.addEventListener("click", () => {
    if (paused) setPaused(false);
    scroller.scrollTop = 0;
    view.clear();
  });

  /** downloadView saves the view's newest rows, bodies included, as HAR. */
  async function downloadView(): Promise<void> {
    harButton.disabled = true;
    try {
      const res = await api.listEntries({ filter: { query: view.filter }, pageSize: maxHarEntries, includeBodies: true });
      const entries = res.entries.filter((e) => e.id > view.cleared);
      download(`pxperf-${entries.length}.har`, JSON.stringify(har(entries), null, 2));
    } catch (err) {
      failed(err);
    } finally {
      harButton.disabled = false;
    }
  }
  harButton.addEventListener("click", () => void downloadView());

  tokenDialog.addEventListener("close", () => {
    if (tokenDialog.returnValue === "use" && tokenInput.value.trim()) {
      tokens.set(tokenInput.value.trim());
      void apply();
    }
  });

  /** apply starts the view with the filter's text, and marks a syntax error in it. */
  async function apply(): Promise<void> {
    const query = filter.value;
    problem = "";
    try {
      await view.start(query, table.rowsOnScreen);
      if (filter.value === query) showFilterError(undefined);
      schedule();
    } catch (err) {
      failed(err);
    }
  }

  function showFilterError(e: FilterSyntaxError | undefined): void {
    filter.classList.toggle("invalid", e !== undefined);
    filter.setAttribute("aria-invalid", String(e !== undefined));
    if (!e) {
      filterError.hidden = true;
      filterError.replaceChildren();
      return;
    }
    const text = filter.value;
    const end = e.token ? e.offset + e.token.length : e.offset;
    const code = el("code", "query");
    const mark = el("mark", "token", text.slice(e.offset, end) || " ");
    code.append(text.slice(0, e.offset), mark, text.slice(end));
    // The server's message ends with the query and a line of carets under
    // the token, for terminals: the mark does that here.
    filterError.replaceChildren(code, el("span", "message", e.message.split("\n")[0]!));
    filterError.hidden = false;
    if (document.activeElement === filter) filter.setSelectionRange(e.offset, end);
  }

  let filterTimer = 0;
  filter.addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = window.setTimeout(() => void apply(), filterDelay);
  });
  byId<HTMLFormElement>("filter-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearTimeout(filterTimer);
    void apply();
  });

  function setPaused(p: boolean): void {
    paused = p;
    pause.textContent = p ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(p));
    if (p) {
      view.freeze();
    } else {
      scroller.scrollTop = 0;
      view.follow();
    }
    schedule();
  }
  pause.addEventListener("click", () => setPaused(!paused));

  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop > 0) {
      view.freeze();
    } else if (!paused) {
      view.follow();
    }
    schedule();
  });
  new ResizeObserver(() => {
    // The heading lines up with the rows only beside the rows' scrollbar.
    head.style.paddingRight = `${scroller.offsetWidth - scroller.clientWidth}px`;
    view.resize(table.rowsOnScreen);
    schedule();
  }).observe(scroller);

  let shown = 0n;
  async function open(): Promise<void> {
    const id = table.selectedId;
    if (!id) return;
    shown = id;
    detail.hidden = false;
    document.body.classList.add("with-detail");
    try {
      const res = await api.getEntry({ id });
      if (shown !== id || !res.entry) return;
      renderDetail(detail, res.entry);
    } catch (err) {
      if (isUnauthenticated(err) || isPermissionDenied(err)) {
        askToken(isPermissionDenied(err) ? lacksRole(err) : "");
        return;
      }
      detail.replaceChildren(el("p", "problem", ConnectError.from(err).rawMessage));
    }
  }
  function close(): void {
    shown = 0n;
    detail.hidden = true;
    document.body.classList.remove("with-detail");
  }

  /** current returns the selected row's index now: rows move under it while the table follows. */
  function current(): number {
    if (!view.isFrozen && table.selectedId) {
      for (let i = 0; i < view.total && i < 1000; i++) {
        const e = view.row(i);
        if (!e) break;
        if (e.id === table.selectedId) return i;
      }
    }
    return table.selected;
  }

  document.addEventListener("keydown", (ev) => {
    if (tokenDialog.open) return;
    if (ev.target instanceof HTMLElement && ev.target !== scroller && ev.target.closest("#panel")) return;
    if (ev.target === filter) {
      if (ev.key === "Escape") {
        filter.blur();
        scroller.focus();
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const page = table.visibleRows;
    const moves: Record<string, () => number> = {
      ArrowDown: () => current() + 1,
      ArrowUp: () => Math.max(0, current() - 1),
      PageDown: () => current() + page,
      PageUp: () => Math.max(0, current() - page),
      Home: () => 0,
      End: () => view.total - 1,
    };
    const move = moves[ev.key];
    if (move) {
      ev.preventDefault();
      table.select(move());
      if (!detail.hidden) void open();
      return;
    }
    switch (ev.key) {
      case "/":
        ev.preventDefault();
        filter.focus();
        filter.select();
        break;
      case "Enter":
        if (table.selectedId) {
          ev.preventDefault();
          void open();
        }
        break;
      case "Escape":
        close();
        break;
    }
  });

  const frames = new Frames();
  Object.assign(window, {
    __pxperf: {
      startFrames: () => frames.start(),
      stopFrames: () => frames.stop(),
      domRows: () => table.domRows(),
      visibleRows: () => table.visibleRows,
      /** jumpTo scrolls so that row i is the first on screen, as the scrollbar would (paused, the rows stay put). */
      jumpTo: (i: number) => table.scrollToRow(i),
    },
  });

  scroller.focus();
  void apply();
}

main();
