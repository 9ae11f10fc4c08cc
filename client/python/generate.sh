#!/usr/bin/env bash
# client/python/generate.sh generates the Python code of the contract into
# pxperf_client/_gen (or into the directory given as its argument, which
# ci.sh uses to check that the committed code is up to date).
#
# Usage: client/python/generate.sh [OUTDIR] (from anywhere).
#
# Needs Debian's protoc and grpc_python_plugin, in the versions of the
# python3-protobuf and python3-grpcio the code runs on (bookworm: protoc
# 3.21.12, grpc 1.51.1), and libprotobuf-dev for the well-known types'
# .proto files (/usr/include/google/protobuf):
#
#   apt-get install --no-install-recommends \
#     protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
#
# It compiles proto/pxperf/v1 and the non-well-known protos they import
# (buf/validate from third_party/protovalidate, google/api from
# third_party/googleapis): the generated modules import those by absolute
# name, so they must exist for pxperf_client to import. The well-known
# types (google.protobuf.*_pb2) come with python3-protobuf.
set -euo pipefail

cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
out=${1:-pxperf_client/_gen}
out=$(mkdir -p "$out" && cd "$out" && pwd)

wkt=${PROTOC_INCLUDE:-/usr/include}
if [[ ! -f $wkt/google/protobuf/duration.proto ]]; then
	echo "generate.sh: $wkt/google/protobuf/duration.proto not found: install libprotobuf-dev (or set PROTOC_INCLUDE)" >&2
	exit 1
fi
plugin=$(command -v grpc_python_plugin) || {
	echo "generate.sh: grpc_python_plugin not found: install protobuf-compiler-grpc" >&2
	exit 1
}
command -v protoc >/dev/null || {
	echo "generate.sh: protoc not found: install protobuf-compiler" >&2
	exit 1
}

# Start from nothing, so that a proto removed upstream leaves no module
# behind.
rm -rf "$out/pxperf" "$out/buf" "$out/google"

cd "$root"
includes=(-I proto -I third_party/protovalidate -I third_party/googleapis -I "$wkt")
protoc "${includes[@]}" --python_out="$out" \
	proto/pxperf/v1/*.proto \
	third_party/protovalidate/buf/validate/validate.proto \
	third_party/googleapis/google/api/annotations.proto \
	third_party/googleapis/google/api/http.proto
# Only service.proto has a service: the stub alone, not an empty
# *_pb2_grpc.py beside every other module.
protoc "${includes[@]}" --plugin=protoc-gen-grpc_python="$plugin" --grpc_python_out="$out" \
	proto/pxperf/v1/service.proto
