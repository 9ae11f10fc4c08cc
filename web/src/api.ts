/**
 * The UI's client of PerformanceService: the Connect protocol with binary
 * protobuf over the gateway the page came from, a bearer token from the
 * tab's sessionStorage on every call, and the reading of the errors the UI
 * acts on.
 *
 * @module
 */
import { createClient, Code, ConnectError, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { PerformanceService } from "../../client/ts/src/gen/pxperf/v1/service_pb.js";

/** A client of PerformanceService: one async method per RPC. */
export type Api = Client<typeof PerformanceService>;

/** Where the bearer token is kept: sessionStorage, so for this tab only. */
const tokenKey = "pxperf.token";

/** TokenStore holds the bearer token of the tab; get returns "" when there is none. */
export interface TokenStore {
  get(): string;
  set(token: string): void;
}

/** sessionTokens keeps the token in the tab's sessionStorage. */
export function sessionTokens(storage: Storage = sessionStorage): TokenStore {
  return {
    get: () => storage.getItem(tokenKey) ?? "",
    set: (token) => (token ? storage.setItem(tokenKey, token) : storage.removeItem(tokenKey)),
  };
}

/**
 * bearer returns an interceptor that sends the store's token, when there
 * is one, in the Authorization header: the only place the gateway reads
 * it from.
 */
export function bearer(tokens: TokenStore): Interceptor {
  return (next) => async (req) => {
    const token = tokens.get();
    if (token) {
      req.header.set("Authorization", `Bearer ${token}`);
    }
    return next(req);
  };
}

/** newApi returns a client of the gateway at baseUrl (the page's origin). */
export function newApi(baseUrl: string, tokens: TokenStore): Api {
  const transport = createConnectTransport({
    baseUrl,
    useBinaryFormat: true,
    interceptors: [bearer(tokens)],
  });
  return createClient(PerformanceService, transport);
}

/** isUnauthenticated reports whether err is the server asking for a (valid) token. */
export function isUnauthenticated(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unauthenticated;
}

/** isPermissionDenied reports whether err is the server refusing the token: it is valid but lacks the role. */
export function isPermissionDenied(err: unknown): boolean {
  return ConnectError.from(err).code === Code.PermissionDenied;
}

/** lacksRole is the token prompt's reason for a PERMISSION_DENIED err: the server's message names the role. */
export function lacksRole(err: unknown): string {
  return `The token lacks the role this needs: ${ConnectError.from(err).rawMessage}`;
}

/** FieldViolation is one field a request got wrong, from a google.rpc.BadRequest. */
export interface FieldViolation {
  /** The field's path, such as "config.memory.max_entries". */
  field: string;
  description: string;
}

/** fieldViolations returns the field violations of every google.rpc.BadRequest err carries. */
export function fieldViolations(err: unknown): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const d of ConnectError.from(err).details) {
    if ("type" in d && d.type === "google.rpc.BadRequest") out.push(...decodeBadRequest(d.value));
  }
  return out;
}

/**
 * decodeBadRequest reads a google.rpc.BadRequest (field_violations = 1,
 * each with field = 1 and description = 2) from its wire form, by hand
 * for the same reason as decodeErrorInfo.
 */
export function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const r = new BinaryReader(bytes);
  const out: FieldViolation[] = [];
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field !== 1 || wireType !== 2) {
      r.skip(wireType);
      continue;
    }
    const v = new BinaryReader(r.bytes());
    const fv = { field: "", description: "" };
    while (v.pos < v.len) {
      const [f, wt] = v.tag();
      if (f === 1 && wt === 2) fv.field = v.string();
      else if (f === 2 && wt === 2) fv.description = v.string();
      else v.skip(wt);
    }
    out.push(fv);
  }
  return out;
}

/** FilterSyntaxError is where a filter's text is wrong, from the server's ErrorInfo. */
export interface FilterSyntaxError {
  /** The server's message. */
  message: string;
  /** Where the offending token starts, in UTF-16 code units, as JavaScript strings count. */
  offset: number;
  /** The offending token; "" at the end of the text. */
  token: string;
}

/**
 * filterSyntax returns the filter syntax error err carries (INVALID_ARGUMENT
 * with a google.rpc.ErrorInfo of reason FILTER_SYNTAX), or undefined.
 */
export function filterSyntax(err: unknown): FilterSyntaxError | undefined {
  const ce = ConnectError.from(err);
  if (ce.code !== Code.InvalidArgument) {
    return undefined;
  }
  for (const d of ce.details) {
    if (!("type" in d) || d.type !== "google.rpc.ErrorInfo") {
      continue;
    }
    const info = decodeErrorInfo(d.value);
    if (info.reason === "FILTER_SYNTAX") {
      return {
        message: ce.rawMessage,
        offset: Number(info.metadata.get("utf16_offset") ?? 0),
        token: info.metadata.get("token") ?? "",
      };
    }
  }
  return undefined;
}

/**
 * decodeErrorInfo reads a google.rpc.ErrorInfo (reason = 1, domain = 2,
 * metadata = 3, a map of strings) from its wire form. The UI reads this
 * one detail, so it decodes it here rather than generate googleapis'
 * error_details.proto for it.
 */
export function decodeErrorInfo(bytes: Uint8Array): { reason: string; domain: string; metadata: Map<string, string> } {
  const r = new BinaryReader(bytes);
  const out = { reason: "", domain: "", metadata: new Map<string, string>() };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === 2) {
      out.reason = r.string();
    } else if (field === 2 && wireType === 2) {
      out.domain = r.string();
    } else if (field === 3 && wireType === 2) {
      const entry = new BinaryReader(r.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [f, wt] = entry.tag();
        if (f === 1 && wt === 2) key = entry.string();
        else if (f === 2 && wt === 2) value = entry.string();
        else entry.skip(wt);
      }
      out.metadata.set(key, value);
    } else {
      r.skip(wireType);
    }
  }
  return out;
}
