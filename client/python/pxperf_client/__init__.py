"""pxperf_client is the Python client of pxperf: the code generated from
proto/pxperf/v1 (by Debian's protoc and grpc_python_plugin, see
generate.sh), and a Client with helpers for the common RPCs and a watch that
survives server restarts.

    from pxperf_client import Client

    with Client("127.0.0.1:50051") as c:
        for msg in c.watch(filter="status:>=400"):
            for e in msg.batch.entries:
                print(e.id, e.method, e.status_code, e.url)

The generated modules are re-exported here: entry_pb2 (Entry, Filter),
config_pb2 (Config), service_pb2 (the requests and responses), stats_pb2
and service_pb2_grpc (PerformanceServiceStub).
"""

import os as _os
import sys as _sys

# protoc's Python output imports its dependencies by their proto package
# (`from pxperf.v1 import entry_pb2`, `from buf.validate import ...`,
# `from google.api import ...`), so the directory holding them must be on
# sys.path. It is appended, not put first, so that nothing installed is
# shadowed; google.api and google.protobuf are namespace packages and merge.
_GEN = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "_gen")
if _GEN not in _sys.path:
    _sys.path.append(_GEN)

from pxperf.v1 import config_pb2, entry_pb2, service_pb2, service_pb2_grpc, stats_pb2  # noqa: E402

from ._client import (  # noqa: E402
    DEFAULT_ADDRESS,
    Client,
    OutOfRangeError,
    Watch,
    WatchGaveUp,
)
from ._status import oldest_available, resume_id  # noqa: E402

__all__ = [
    "DEFAULT_ADDRESS",
    "Client",
    "OutOfRangeError",
    "Watch",
    "WatchGaveUp",
    "config_pb2",
    "entry_pb2",
    "oldest_available",
    "resume_id",
    "service_pb2",
    "service_pb2_grpc",
    "stats_pb2",
]
