/**
 * The config panel: every field of the effective config (GetConfig),
 * grouped by its section, with its unit and limits read from the
 * generated descriptors (the buf.validate rules are options on them), an
 * input for each scalar field, and Apply, which sends UpdateConfig with a
 * mask of the fields that changed and shows a refusal beside them.
 *
 * @module
 */
import { create, getOption, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { DurationSchema, FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { field as fieldRules } from "../../client/ts/src/gen/buf/validate/validate_pb.js";
import { ConfigSchema, type Config } from "../../client/ts/src/gen/pxperf/v1/config_pb.js";
import { fieldViolations, isPermissionDenied, isUnauthenticated, lacksRole, type Api } from "./api.js";
import { el } from "./table.js";

/** An editable field: where it is, how to read its input, and what it held. */
interface Input {
  path: string;
  group: DescField;
  field: DescField;
  control: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
  initial: string;
  read: () => unknown;
}

/** ConfigPanel shows the config in pane and applies edits; askToken is called when the server wants one. */
export class ConfigPanel {
  private inputs: Input[] = [];
  private config?: Config;
  private readonly top = el("p", "config-message");
  private readonly form = el("form", "config");

  constructor(
    private readonly pane: HTMLElement,
    private readonly api: Api,
    private readonly askToken: (message: string) => void,
  ) {
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.apply();
    });
  }

  /** load reads the config and renders it. */
  async load(): Promise<void> {
    try {
      const res = await this.api.getConfig({});
      this.render(res.config);
    } catch (err) {
      this.failed(err);
    }
  }

  /** changed lists the inputs whose value differs from the config's. */
  private changed(): Input[] {
    return this.inputs.filter((i) => inputValue(i.control) !== i.initial);
  }

  private render(config: Config | undefined, message = ""): void {
    this.config = config;
    this.inputs = [];
    this.form.replaceChildren();
    if (!config) return;
    const head = el("div", "config-head");
    const apply = el("button", "apply", "Apply");
    apply.type = "submit";
    apply.id = "config-apply";
    head.append(el("h2", "", "Config"), apply);
    this.top.textContent = message;
    this.top.classList.remove("problem");
    this.form.append(head, this.top);
    for (const group of ConfigSchema.fields) {
      if (group.fieldKind !== "message") continue;
      const value = (config as unknown as Record<string, unknown>)[group.localName] as Record<string, unknown> | undefined;
      const fs = el("fieldset", "group");
      fs.append(el("legend", "", group.name));
      if (!value) fs.append(el("p", "none", "not set"));
      else for (const f of group.message.fields) fs.append(this.row(group, f, value[f.localName]));
      this.form.append(fs);
    }
    this.pane.replaceChildren(this.form);
  }

  /** row returns one field's label, input (or value, for the ones not edited here), unit and limits. */
  private row(group: DescField, f: DescField, value: unknown): HTMLElement {
    const path = `${group.name}.${f.name}`;
    const row = el("div", "field");
    row.dataset.path = path;
    const label = el("label", "name", f.name);
    const error = el("span", "violation");
    const hint = [unit(f), limits(f)].filter(Boolean).join(" · ");
    const control = this.control(f, value);
    if (control) {
      control.id = `config-${path.replace(".", "-")}`;
      control.setAttribute("aria-describedby", `${control.id}-error`);
      error.id = `${control.id}-error`;
      label.htmlFor = control.id;
      this.inputs.push({ path, group, field: f, control, error, initial: inputValue(control), read: () => parse(f, control) });
      row.append(label, control);
    } else {
      row.append(label, el("span", "value", show(f, value)));
    }
    row.append(el("span", "hint", hint), error);
    return row;
  }

  /** control returns an input for a scalar, enum or Duration field, or undefined for the others. */
  private control(f: DescField, value: unknown): HTMLInputElement | HTMLSelectElement | undefined {
    if (f.fieldKind === "enum") {
      const s = el("select");
      for (const v of f.enum.values) {
        const o = el("option", "", v.name);
        o.value = String(v.number);
        s.append(o);
      }
      s.value = String(value);
      return s;
    }
    const input = el("input");
    if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.Duration") {
      input.value = value ? duration(value as Duration) : "";
      input.placeholder = "1.5s";
      return input;
    }
    if (f.fieldKind !== "scalar") return undefined;
    if (typeof value === "boolean") {
      input.type = "checkbox";
      input.checked = value;
      return input;
    }
    input.value = String(value);
    if (typeof value === "number" || typeof value === "bigint") input.inputMode = "decimal";
    return input;
  }

  /** apply sends UpdateConfig with the changed fields, and shows the result or the refusal. */
  async apply(): Promise<void> {
    const changed = this.changed();
    for (const i of this.inputs) {
      i.error.textContent = "";
      i.control.classList.remove("invalid");
    }
    if (changed.length === 0) {
      this.say("nothing changed");
      return;
    }
    const config = create(ConfigSchema) as unknown as Record<string, Record<string, unknown>>;
    for (const i of changed) {
      let v: unknown;
      try {
        v = i.read();
      } catch (err) {
        this.mark(i, (err as Error).message);
        this.say("fix the marked fields", true);
        return;
      }
      config[i.group.localName] ??= create(i.group.message as DescMessage) as unknown as Record<string, unknown>;
      config[i.group.localName]![i.field.localName] = v;
    }
    try {
      const paths = changed.map((i) => i.path);
      const res = await this.api.updateConfig({ config: config as unknown as Config, updateMask: create(FieldMaskSchema, { paths }) });
      this.render(res.config, `applied: ${paths.join(", ")}`);
    } catch (err) {
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    if (isUnauthenticated(err) || isPermissionDenied(err)) {
      this.askToken(isPermissionDenied(err) ? lacksRole(err) : "");
    }
    const ce = ConnectError.from(err);
    let marked = false;
    for (const v of fieldViolations(err)) {
      const i = this.inputs.find((i) => v.field === i.path || v.field.endsWith(`.${i.path}`));
      if (i) {
        this.mark(i, v.description);
        marked = true;
      }
    }
    if (ce.code === Code.FailedPrecondition) {
      for (const i of this.inputs) {
        if (ce.rawMessage.includes(`config.${i.path}`)) {
          this.mark(i, "not live: restart the server to change it");
          marked = true;
        }
      }
    }
    this.say(marked ? `refused: ${ce.rawMessage}` : ce.rawMessage, true);
    if (!this.config) this.pane.replaceChildren(this.top);
  }

  private mark(i: Input, message: string): void {
    i.error.textContent = message;
    i.control.classList.add("invalid");
  }

  private say(message: string, problem = false): void {
    this.top.textContent = message;
    this.top.classList.toggle("problem", problem);
  }
}

/** inputValue is what a control holds, as text, to tell whether it changed. */
function inputValue(c: HTMLInputElement | HTMLSelectElement): string {
  return c instanceof HTMLInputElement && c.type === "checkbox" ? String(c.checked) : c.value;
}

/** parse reads a control as the value of f, or throws an Error saying what is wrong. */
function parse(f: DescField, c: HTMLInputElement | HTMLSelectElement): unknown {
  if (f.fieldKind === "enum") return Number(c.value);
  if (f.fieldKind === "message") return parseDuration(c.value);
  if (c instanceof HTMLInputElement && c.type === "checkbox") return c.checked;
  const text = c.value.trim();
  if (f.fieldKind !== "scalar") return text;
  switch (f.scalar) {
    case 9: // string
      return c.value;
    case 1: // double
    case 2: // float
      if (text === "" || !Number.isFinite(Number(text))) throw new Error("want a number");
      return Number(text);
    case 3: // int64
    case 4: // uint64
    case 6: // fixed64
    case 16: // sfixed64
    case 18: // sint64
      if (!/^-?\d+$/.test(text)) throw new Error("want a whole number");
      return BigInt(text);
    default:
      if (!/^-?\d+$/.test(text)) throw new Error("want a whole number");
      return Number(text);
  }
}

/** The units of a Go duration, in nanoseconds. */
const units: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** parseDuration reads a Go duration such as "1.5s", "250ms" or "1h30m". */
export function parseDuration(text: string): Duration {
  const s = text.trim();
  if (s === "0") return create(DurationSchema);
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let ns = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new Error(`want a duration such as 1.5s, 250ms or 1h30m, not ${JSON.stringify(text)}`);
    ns += Number(m[1]) * units[m[2]!]!;
    pos = re.lastIndex;
  }
  if (s === "") throw new Error("want a duration such as 1.5s");
  const whole = Math.round(ns);
  return create(DurationSchema, { seconds: BigInt(Math.floor(whole / 1e9)), nanos: whole % 1e9 });
}

/** duration writes a Duration as Go does: "1.5s", "250ms", "1h30m0s". */
export function duration(d: Duration): string {
  const ns = Number(d.seconds) * 1e9 + d.nanos;
  if (ns === 0) return "0s";
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6)}ms`;
  let s = ns / 1e9;
  let out = "";
  if (s >= 3600) {
    out += `${Math.floor(s / 3600)}h`;
    s %= 3600;
  }
  if (out || s >= 60) {
    out += `${Math.floor(s / 60)}m`;
    s %= 60;
  }
  return `${out}${trim(s)}s`;
}

function trim(n: number): string {
  return String(Math.round(n * 1e9) / 1e9);
}

/** unit is what a field's name or type says its unit is. */
function unit(f: DescField): string {
  if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.Duration") return "duration";
  const m = /_(mb|ms|bytes|percent|size)$/.exec(f.name);
  return m ? ({ mb: "MB", ms: "ms", bytes: "bytes", percent: "%", size: "bytes" } as Record<string, string>)[m[1]!]! : "";
}

/** limits writes a field's buf.validate bounds, "1..10000000" or "≤ 67108864", or "". */
export function limits(f: DescField): string {
  const t = getOption(f, fieldRules)?.type;
  if (!t?.case || !t.value) return "";
  if (t.case === "string") {
    const s = t.value as { minLen?: bigint; maxLen?: bigint; maxBytes?: bigint };
    return [s.minLen ? `at least ${s.minLen} chars` : "", s.maxLen ? `at most ${s.maxLen} chars` : "", s.maxBytes ? `at most ${s.maxBytes} bytes` : ""]
      .filter(Boolean)
      .join(", ");
  }
  const rules = t.value as unknown as Record<string, { case?: string; value?: unknown } | undefined>;
  const bound = (k: "greaterThan" | "lessThan") => {
    const b = rules[k];
    if (!b?.case || b.value === undefined) return undefined;
    const v = b.value;
    return { op: b.case, text: typeof v === "object" && v !== null && "seconds" in v ? duration(v as Duration) : String(v) };
  };
  const lo = bound("greaterThan");
  const hi = bound("lessThan");
  if (lo?.op === "gte" && hi?.op === "lte") return `${lo.text}..${hi.text}`;
  const sym: Record<string, string> = { gt: ">", gte: "≥", lt: "<", lte: "≤" };
  return [lo, hi].flatMap((b) => (b ? [`${sym[b.op] ?? b.op} ${b.text}`] : [])).join(", ");
}

/** show writes a value that has no input here: a repeated field or a message. */
function show(f: DescField, value: unknown): string {
  if (Array.isArray(value)) {
    if (f.fieldKind === "list" && f.listKind === "enum") return value.map((v) => f.enum.value[v as number]?.name ?? String(v)).join(", ") || "none";
    return value.map(String).join(", ") || "none";
  }
  if (value === undefined) return "not set";
  if (typeof value === "object" && value !== null && "$typeName" in value) {
    return JSON.stringify(value, (k, v: unknown) => (k === "$typeName" ? undefined : typeof v === "bigint" ? String(v) : v));
  }
  return String(value);
}
