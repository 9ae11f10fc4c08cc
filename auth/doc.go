// Package auth secures the pxperf gRPC server: TLS and mutual TLS transport
// credentials ([ServerCredentials]), bearer tokens that carry roles
// ([Tokens], [LoadTokens]) checked by server interceptors ([Interceptors]),
// and helpers that name the caller of an RPC ([FromContext], [PeerName],
// [Owner]) and judge a listen address ([IsLoopback]).
//
// # Roles
//
// A token grants one or more roles. [RequiredRole] says which role each
// method needs:
//
//   - [RoleView]: the read-only RPCs of pxperf.v1.PerformanceService —
//     Subscribe, ListEntries, GetEntry, GetStats, WatchStats, GetConfig,
//     ListResources, ListLogFiles and ReadArchive.
//   - [RolePublish]: Publish and PublishStream, and nothing else; a producer
//     cannot read what others published unless it also holds view.
//   - [RoleAdmin]: every method, including UpdateConfig, Optimize and
//     CloseResource, which need it, and the recording proxy.
//   - [RoleProxy]: the recording proxy, with HTTP Basic credentials (the
//     token's name and the token: see [Tokens.LookupBasic]), and no RPC.
//
// grpc.health.v1.Health and the grpc.reflection services need no token. Any
// other method, including one added to PerformanceService later and not
// yet listed, needs admin: the table fails closed.
//
// # Transport and tokens together
//
// Tokens travel in request metadata ("authorization: bearer <token>"), in
// clear text unless the connection uses TLS. Without TLS they are safe only
// on a loopback address. Mutual TLS alone authenticates the client (any
// certificate signed by the client CA is accepted) but grants no roles; use
// tokens for roles.
package auth
