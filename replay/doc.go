// Package replay re-sends a recorded request. [Curl] writes an entry's
// request as a curl command line, [Request] builds it as a net/http
// request, and [Do] sends it and describes the new exchange as an entry
// whose replay_of is the original's id, ready to publish. The CLI (pxperf
// get --curl, pxperf replay) and the web UI use it.
//
// What is re-sent is the entry's method, url, request headers and request
// body, by the same rules for all three:
//
//   - Hop-by-hop headers (Connection and the headers it names,
//     Proxy-Connection, Keep-Alive, Transfer-Encoding, TE, Trailer,
//     Upgrade, Proxy-Authorization, Proxy-Authenticate) belonged to the
//     original connection and are not copied; nor are Content-Length,
//     which the body sets, HTTP/2 pseudo-headers (":authority"), or
//     [proxy.ReplayOfHeader]. A Host header is kept when it differs from
//     the url's host.
//   - A header recorded as "[REDACTED]" (credentials: Authorization,
//     Cookie and the server's memory.redact_headers) is left out unless it
//     is given again in the options' Header; [LeftOut] names those. A
//     header given in the options replaces every recorded value of its
//     name, or is added; given with one empty value, it is removed.
//   - A request body recorded in part (cut to memory.max_body_size, or
//     not recorded although Content-Length or Transfer-Encoding says there
//     was one) cannot be reproduced: [ErrTruncatedBody], unless the
//     options' TruncatedBody asks to send the part there is.
//   - A CONNECT tunnel has no request to re-send: [ErrTunnel].
//
// [Do] follows no redirect (a 3xx is the exchange it records) and, with
// its own client, sends no header the recording did not have but those
// every HTTP/1.1 request needs (Host, Content-Length) and a User-Agent
// when the recording had none.
package replay
