/**
 * TypeScript client of pxperf's gRPC service, pxperf.v1.PerformanceService.
 *
 * The messages and the service descriptor are generated from
 * proto/pxperf/v1 into ./gen by protoc-gen-es (see buf.gen.ts.yaml at the
 * repository root); never edit them by hand. This module adds only
 * {@link createPxperfClient}, which makes a Connect client that speaks
 * plain gRPC over HTTP/2, so it talks to the Go server as any gRPC client
 * would.
 *
 * Errors from the server are thrown (or, on streams, raised by the
 * iterator) as `ConnectError` from `@connectrpc/connect`: its `code` is the
 * gRPC status code, and `findDetails` reads details such as
 * `google.rpc.BadRequest`.
 *
 * @module
 */
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { PerformanceService } from "./gen/pxperf/v1/service_pb.js";

export * from "./gen/pxperf/v1/config_pb.js";
export * from "./gen/pxperf/v1/entry_pb.js";
export * from "./gen/pxperf/v1/service_pb.js";
export * from "./gen/pxperf/v1/stats_pb.js";

/** A client of PerformanceService: one async method per RPC. */
export type PxperfClient = Client<typeof PerformanceService>;

/** Options of {@link createPxperfClient}. */
export interface PxperfClientOptions {
  /**
   * Bearer token sent as "authorization: Bearer TOKEN" on every call, for a
   * server started with --tokens. Unset or empty sends none, which is right
   * for a server without auth (the default, on loopback).
   */
  token?: string;
  /**
   * Further interceptors, run after the one that adds the token.
   */
  interceptors?: Interceptor[];
  /**
   * Closes the client's HTTP/2 connection when aborted, ending the calls
   * in flight. Without it the connection stays open until it has been
   * idle for 15 minutes, which keeps a script's process alive: a program
   * that is done with the client aborts it.
   */
  signal?: AbortSignal;
}

/**
 * createPxperfClient returns a client of the pxperf server at baseUrl, for
 * example "http://127.0.0.1:50051" (plaintext HTTP/2, as the server speaks
 * by default) or "https://pxperf.example:50051" for a server with
 * --tls-cert. It does not connect until the first call; the HTTP/2
 * session is shared by all calls and closes when idle.
 *
 * Every call takes Connect's call options, among them `signal` (an
 * AbortSignal) and `timeoutMs`; give streams such as Subscribe a signal to
 * end them. A program that is done with the client aborts the signal of
 * its options, so that the connection closes and the process can exit.
 */
export function createPxperfClient(baseUrl: string, options: PxperfClientOptions = {}): PxperfClient {
  const interceptors: Interceptor[] = [];
  if (options.token) {
    interceptors.push(bearer(options.token));
  }
  interceptors.push(...(options.interceptors ?? []));
  // The gRPC transport always speaks HTTP/2 (there is no httpVersion
  // option to set, unlike the Connect transport).
  const sessionManager = new Http2SessionManager(baseUrl);
  options.signal?.addEventListener("abort", () => sessionManager.abort(), { once: true });
  const transport = createGrpcTransport({ baseUrl, interceptors, sessionManager });
  return createClient(PerformanceService, transport);
}

/** bearer returns an interceptor that sends token as a bearer token. */
function bearer(token: string): Interceptor {
  const value = `Bearer ${token}`;
  return (next) => async (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}
