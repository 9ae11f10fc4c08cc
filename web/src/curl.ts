/**
 * Copy as curl: an entry's request as a POSIX shell command line, by the
 * rules of Go's replay.Curl (replay/curl.go and replay/request.go), which
 * `pxperf get ID --curl` prints. The two are held to each other by a
 * differential test: testdata/curl.json holds entries and the command Go
 * writes for each, the Go test checks Go against it and the Node test this
 * module.
 *
 * What is kept from the Go rules: every argument single-quoted; hop-by-hop
 * headers, Content-Length and HTTP/2 pseudo-headers left out; headers
 * recorded as [REDACTED] left out and named in a comment; a Host header
 * kept only when it differs from the URL's; a text body as --data-binary
 * 'TEXT', any other body piped in from printf; a request body recorded in
 * part sent as recorded, with a comment saying so (Go's TruncatedBody
 * option). Left out: the options for headers given again and for a proxy,
 * and Go's checks of header characters (the server has checked them).
 *
 * @module
 */
import type { Body, Entry, Header } from "../../client/ts/src/gen/pxperf/v1/entry_pb.js";

/** The value the server writes for a redacted header. */
export const REDACTED = "[REDACTED]";

/** Headers of one connection, and the others a new request does not carry over. */
const hopHeaders = new Set([
  "Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding", "Te", "Trailer", "Upgrade",
  "Proxy-Authorization", "Proxy-Authenticate", "Content-Length", "Pxperf-Replay-Of",
]);

/** The longest body written as an argument of curl; longer ones go through printf. */
const maxArgBody = 64 << 10;

/** The entry's fields that curl reads: a whole Entry fits, and so does a test's plain object. */
export type CurlEntry = Pick<Entry, "method" | "url" | "tunnel" | "requestHeaders"> & {
  requestBody?: Pick<Body, "data" | "contentType" | "originalSize" | "truncated">;
};

/**
 * curl returns the command line, or throws an Error saying why there is
 * none (a CONNECT tunnel, a URL that is not absolute http or https).
 */
export function curl(e: CurlEntry): string {
  if (e.tunnel || e.method === "CONNECT") {
    throw new Error("a CONNECT tunnel cannot be replayed: the requests inside it were never seen");
  }
  const m = /^(https?):\/\/([^/?#]*)([^?#]*)/i.exec(e.url);
  const authority = m?.[2]?.replace(/^.*@/, "") ?? "";
  if (!m || authority === "") {
    throw new Error(`url ${JSON.stringify(e.url)} is not an absolute http or https URL`);
  }
  const path = escapedPath(m[3] ?? "");
  const url = `${m[1]}://${m[2]}${path}${e.url.slice(m[0].length)}`;

  const skip = new Set(hopHeaders);
  for (const h of e.requestHeaders) {
    if (h.name.toLowerCase() === "connection") {
      for (const name of h.value.split(",")) {
        skip.add(canonicalKey(name.trim()));
      }
    }
  }
  let host = "";
  let typed = false;
  const header: [string, string][] = [];
  const leftOut: string[] = [];
  const placed = new Set<string>();
  for (const h of e.requestHeaders) {
    const key = canonicalKey(h.name);
    if (h.name.startsWith(":") || skip.has(key) || placed.has(key)) {
      continue;
    }
    if (h.value === REDACTED) {
      if (!leftOut.includes(h.name)) {
        leftOut.push(h.name);
      }
      continue;
    }
    if (key === "Host") {
      host = h.value === authority ? "" : h.value;
      placed.add(key);
      continue;
    }
    typed ||= key === "Content-Type";
    header.push([h.name, h.value]);
  }

  const b = e.requestBody;
  const data = b?.data ?? new Uint8Array();
  const size = Number(b?.originalSize ?? 0n);
  let partial = "";
  if (size > data.length) {
    partial = `${data.length} of its ${size} bytes were recorded`;
  } else if (b?.truncated) {
    partial = `only its first ${data.length} bytes were recorded`;
  } else if (data.length === 0) {
    const had = announced(e.requestHeaders);
    if (had !== "") {
      partial = `the request had one (${had}) but it was not recorded`;
    }
  }
  const body = data.length > 0 ? data : undefined;
  if (body && !typed && b?.contentType) {
    header.push(["Content-Type", b.contentType]);
    typed = true;
  }

  let out = "";
  if (leftOut.length > 0) {
    out += `# Left out, redacted when recorded: ${leftOut.join(", ")}. Give them with -H 'Name: value'.\n`;
  }
  if (partial !== "") {
    out += `# The request body was not recorded whole (${partial}): this sends the part that was.\n`;
  }
  const stdin = body !== undefined && !textBody(body);
  let head = "curl " + quote(url);
  if (stdin) {
    head = "printf " + quote(printfFormat(body)) + " | " + head;
  }
  const args = [head];
  if (/[[\]{}]/.test(url)) {
    args.push("--globoff");
  }
  if (path.split("/").some((seg) => seg === "." || seg === "..")) {
    args.push("--path-as-is");
  }
  if (e.method === "HEAD" && !body) {
    args.push("--head");
  } else if (!((e.method === "GET" && !body) || (e.method === "POST" && body))) {
    args.push("-X " + word(e.method));
  }
  if (host !== "") {
    args.push("-H " + quote("Host: " + host));
  }
  for (const [name, value] of header) {
    args.push("-H " + quote(value === "" ? name + ";" : name + ": " + value));
  }
  if (body) {
    if (!typed) {
      args.push("-H " + quote("Content-Type:"));
    }
    args.push(stdin ? "--data-binary @-" : "--data-binary " + quote(new TextDecoder().decode(body)));
  }
  return out + args.join(" \\\n  ") + "\n";
}

/**
 * escapedPath returns a URL's path as Go's url.URL.EscapedPath writes it
 * after url.Parse: as recorded when it is validly escaped, else unescaped
 * and escaped again, every byte but the unreserved ones and $&+,/:;=@ as
 * %XX.
 */
function escapedPath(raw: string): string {
  if (/^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@[\]/]|%[0-9A-Fa-f]{2})*$/.test(raw)) {
    return raw;
  }
  const bytes: number[] = [];
  for (const part of raw.split(/(%[0-9A-Fa-f]{2})/)) {
    if (/^%[0-9A-Fa-f]{2}$/.test(part)) bytes.push(parseInt(part.slice(1), 16));
    else bytes.push(...new TextEncoder().encode(part));
  }
  let out = "";
  for (const c of bytes) {
    const ch = String.fromCharCode(c);
    out += /[A-Za-z0-9\-._~$&+,/:;=@]/.test(ch) ? ch : "%" + c.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** quote single-quotes s for a POSIX shell; a single quote becomes '\''. */
export function quote(s: string): string {
  return "'" + s.replaceAll("'", "'\\''") + "'";
}

/** word returns s bare when the shell gives it no special meaning, else quoted. */
function word(s: string): string {
  return s !== "" && /^[A-Za-z0-9._-]+$/.test(s) ? s : quote(s);
}

/**
 * canonicalKey is Go's textproto.CanonicalMIMEHeaderKey: the first letter
 * and each after a hyphen upper case, the rest lower case; a name with a
 * space or other character outside a token is returned as it is.
 */
function canonicalKey(name: string): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
    return name;
  }
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}

/** bidiControls are the Unicode Bidi_Control characters, which reorder how text shows. */
const bidiControls = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * textBody reports whether body can go as one single-quoted argument that
 * shows what it is: UTF-8 text without control or bidi control characters
 * but tab and newline, not starting with @, short enough.
 */
function textBody(body: Uint8Array): boolean {
  if (body.length > maxArgBody || body[0] === 0x40) {
    return false;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return false;
  }
  // Go's unicode.IsControl: C0, DEL and C1.
  return !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(text) && !bidiControls.test(text);
}

/**
 * printfFormat returns a printf format that writes exactly body: printable
 * ASCII as itself (% and \ doubled); every other byte, the single quote
 * and a leading '-' as a three-digit octal escape.
 */
function printfFormat(body: Uint8Array): string {
  let s = "";
  body.forEach((c, i) => {
    if ((i === 0 && c === 0x2d) || c === 0x27 || c < 0x20 || c > 0x7e) {
      s += "\\" + c.toString(8).padStart(3, "0");
    } else if (c === 0x25) {
      s += "%%";
    } else if (c === 0x5c) {
      s += "\\\\";
    } else {
      s += String.fromCharCode(c);
    }
  });
  return s;
}

/** announced returns the recorded header saying the request had a body, as "Name: value", or "". */
function announced(headers: Header[]): string {
  for (const h of headers) {
    const key = canonicalKey(h.name);
    if (key === "Content-Length" && /^\s*\d+\s*$/.test(h.value) && Number(h.value) > 0) {
      return "Content-Length: " + h.value;
    }
    if (key === "Transfer-Encoding" && h.value.trim().toLowerCase() !== "identity") {
      return "Transfer-Encoding: " + h.value;
    }
  }
  return "";
}
