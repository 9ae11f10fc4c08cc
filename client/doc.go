// Package client is the Go client of pxperf's gRPC service,
// pxperf.v1.PerformanceService.
//
// [New] makes a [Client] from a [Config]; it does not connect until the first
// call. The helpers cover the common calls: [Client.Publish] to send entries,
// [Client.Subscribe] to read a stream of batches with a range loop,
// [Client.ListEntries], [Client.GetEntry] and [Client.GetConfig]. Every other
// RPC is reached through [Client.Service], the generated stub.
//
// Errors from the server are returned as they come: they carry a gRPC status,
// so [google.golang.org/grpc/status.Code] and
// [google.golang.org/grpc/status.FromError] work on them, field violations
// and all. Errors the client finds itself (an invalid [Config], an empty
// publish) do not carry a status.
//
// For now the client speaks plaintext only, which is right for the server's
// default of listening on loopback. To reach a server over a network, pass
// TLS credentials in [Config.DialOptions] with
// [google.golang.org/grpc.WithTransportCredentials].
package client
