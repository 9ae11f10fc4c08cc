// Package wire is the protobuf wire form of pxperf's entries: everything in
// pxperf that knows an Entry's bytes or the field numbers of the messages
// that carry entries, held to protobuf's own code by tests.
//
// Entries come in through [UnmarshalPublish], which decodes the publish
// requests (PublishStreamRequest, PublishRequest) on a fast path written
// for the Entry message: it allocates a handful of objects per entry
// instead of one per field, and redacts credentials as it reads them
// ([Redaction]). On anything it does not expect it leaves the input to
// proto.Unmarshal, so that errors and unknown fields are exactly
// protobuf's.
//
// Entries go out encoded once: the store caches each entry's encoding,
// made by an [Encoder] with the marshalling code protoc-gen-go-vtproto
// generates, as one `entries` field of an EntryBatch, a field that
// ListEntriesResponse and ViewUpdate number the same. [Batch] and
// [List] build the messages around those cached fields without copying
// them: a batch of a subscription, and a page of ListEntries.
//
// Field numbers are read from the contract's descriptors, not written
// here. Tests hold the decoder and the encoder to protobuf's own code:
// every field of the contract (a field added to entry.proto that the
// decoder does not know, or that the generated code lacks, fails them),
// unknown fields, random and hand-made edge cases, and fuzz targets that
// compare the output with protobuf's on any input.
//
// The package knows nothing of gRPC: the server's codec (package service)
// calls it.
package wire
