// Package wire is the protobuf wire form of pxperf's entries: everything in
// pxperf that knows an Entry's bytes, held to protobuf's own code by tests.
//
// [UnmarshalPublish] decodes the publish requests (PublishStreamRequest,
// PublishRequest) on a fast path written for the Entry message, which
// allocates a handful of objects per entry instead of one per field and
// redacts credentials as it reads them ([Redaction]); on anything it does
// not expect it leaves the input to proto.Unmarshal, so that errors and
// unknown fields are exactly protobuf's.
//
// Tests hold each fast path to protobuf: every field of the contract
// (a field added to entry.proto that the code does not know fails them),
// random and hand-made edge cases, and fuzz targets that compare the
// output with protobuf's on any input.
//
// The package knows nothing of gRPC: the server's codec (package service)
// calls it.
package wire
