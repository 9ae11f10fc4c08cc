// Package client is the Go client of pxperf's gRPC service,
// pxperf.v1.PerformanceService.
//
// [New] makes a [Client] from a [Config]; it does not connect until the first
// call. Every method takes a context first: it bounds the call, or the whole
// stream or publisher it starts.
//
// # Reading entries
//
// [Client.Watch] follows the server's entries with a range loop and survives
// broken connections and server restarts: it reconnects with backoff and
// resumes from the last position it delivered, so the loop sees every
// matching entry once, in id order, with the gaps the server reported. When
// the position is gone from the server, it ends with an [*OutOfRangeError]
// carrying the oldest id still kept (see also [OldestAvailable]), or goes on
// from there with [WatchOptions.ResumeFromOldest]. [Client.Subscribe] is
// one stream, without resume. [Client.ListEntries] and [Client.GetEntry]
// read what the server holds.
//
// # Publishing entries
//
// [Client.Publish] sends one batch and returns each entry's id or rejection.
// A [Publisher], from [Client.NewPublisher], batches for a producer: Add
// never blocks, batches go out when full or after a flush interval, and a
// [PublishSummary] counts what was accepted, rejected, failed, or is of
// unknown fate. Delivery is at most once; see [Publisher].
//
// # Config
//
// [Client.GetConfig] returns the server's config and [Client.ConfigField]
// one field of it by path. [Client.SetConfig] changes fields by update mask;
// [Client.SetConfigField] and [Client.SetConfigFields] set fields by path
// from strings ("memory.max_entries" to "5000", "throttle.mode" to
// "fixed"). The text form is that of [ParseConfigField] and
// [FormatConfigField], which work on a *pxperfv1.Config without a call;
// [ConfigFieldPaths] lists the fields of a group. Every other RPC is
// reached through [Client.Service], the generated stub.
//
// # Errors
//
// Errors from the server are returned as they come, or wrapped with %w: they
// carry a gRPC status, so [google.golang.org/grpc/status.Code] and
// [google.golang.org/grpc/status.FromError] work on them, field violations
// and all. Errors the client finds itself (an invalid [Config], an empty
// publish, a config value that does not parse) do not carry a status. When a
// context ends, Watch and the Publisher return ctx.Err() as it is.
//
// # Security
//
// [Config.TLS] turns on TLS (nil is plaintext, right for the server's
// loopback default). [Config.Token] sends a bearer token on every call for
// a server with token auth on; the client refuses to send it in clear text
// to an address that is not loopback unless told to with
// [Config.AllowTokenWithoutTLS].
package client
