// Package proxy is pxperf's own traffic source: an HTTP/1.1 forward proxy
// that carries a client's traffic to its targets, directly or through an
// upstream proxy such as px, and records every exchange as a
// [pxperfv1.Entry] published to pxperf.
//
// Plain requests (absolute-form, http://host/path) are forwarded with
// [httputil.ReverseProxy] over an [http.Transport]: keep-alive on both
// sides, chunked bodies, hop-by-hop headers removed, uploads and downloads
// streamed, never buffered. A Via header, "1.1 pxperf-" and an id unique to
// the instance, is added both ways; a request that already carries it is
// refused with 508 (a loop, such as a proxy chained to itself).
// CONNECT requests open a tunnel that is carried byte for byte; the proxy
// never sees inside it (no TLS interception).
//
// Each exchange is published twice under one request_id: a PENDING entry
// when it starts and a COMPLETED or FAILED one when it ends. The second is
// a whole entry, so it stands on its own when the first was dropped: the
// store then keeps it as a new entry instead of completing the first.
// Credential headers are redacted in the entries, never in the traffic.
//
// What an entry says: proxy_decision is DIRECT by DEFAULT (no upstream),
// DIRECT by NO_PROXY (a bypass rule matched) or PROXY by MANUAL with the
// upstream's host:port; upstream_auth, when chained, has the scheme sent
// (NONE, BASIC from the configured URL, or the client's relayed one) and
// FAILED on a 407, SUCCEEDED or NOT_ATTEMPTED otherwise. Timings:
// time_to_first_byte is the first response byte (of the target, inside a
// tunnel), total the end of the response or tunnel, dns, connect and
// tls_handshake when a new connection was opened. bytes_sent and
// bytes_received are body payload plus an estimate of the heads, or the
// exact tunnel bytes. request_body and response_body hold the first
// [Config.MaxBodySize] bytes of each body, kept as it streams through,
// with its media type and the bytes carried as its original_size; a
// request body is read by the transport on a goroutine of its own, and
// what it reads after the entry is made is not counted. A FAILED entry
// keeps any status already received; its error kind is CONNECT (refused),
// DNS, TLS, TIMEOUT (dial, or a tunnel idle past IdleTimeout), UPSTREAM
// (any other failure through the upstream), CLIENT_CLOSED (the client went
// away), DENIED (the target was inside the host) or OTHER (a target that
// broke off, shutdown). A request that got no response is answered 502
// (504 on a timeout, 403 when denied) and its entry has no status.
//
// A proxy is a door into its host and network, so it guards both (see
// [Config.AllowTargets], [Config.Authenticate] and the per-client limits):
// it refuses with 403 any target inside its host — loopback, link-local
// and unspecified addresses, names that resolve to them (judged on the
// address dialled), and the addresses pxperf serves on — unless it is
// allow-listed, and records the refusal with error kind DENIED; with
// client authentication on, it answers 407 to a request without valid
// Basic Proxy-Authorization and records nothing; a client past its
// connection or request limit gets 429. Listening beyond loopback without
// client authentication, it warns and says so in [Stats.Open].
//
// Publishing never holds up traffic: entries go into a bounded queue that
// one goroutine drains in batches; when it is full, entries are dropped and
// counted (see [Stats.Dropped] and [Config.OnAlert]), and traffic flows on.
//
// A client that re-sends a recorded request links the new exchange to the
// old entry with [ReplayOfHeader], which the proxy takes out of the
// request and records as the entry's replay_of.
package proxy
