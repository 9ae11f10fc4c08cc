"""Reading the details of a gRPC status: the ErrorInfo and RetryInfo that
pxperf puts in the statuses ending a Subscribe stream.

The details travel in the trailer grpc-status-details-bin as a serialized
google.rpc.Status. Debian's python3-grpcio and python3-protobuf do not ship
the google.rpc messages (googleapis-common-protos), so the few fields needed
are read here from the wire format directly: Status.details (3, repeated
Any), Any.type_url (1) and value (2), ErrorInfo.reason (1), domain (2) and
metadata (3, map<string, string>), RetryInfo.retry_delay (1, Duration:
seconds 1, nanos 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass
class StatusDetails:
    """The details of a status that this client reads."""

    # ErrorInfo.metadata of every ErrorInfo detail, merged.
    error_info: Dict[str, str] = field(default_factory=dict)
    # ErrorInfo.reason of the first ErrorInfo detail.
    reason: str = ""
    # RetryInfo.retry_delay in seconds; None when there is none.
    retry_delay: Optional[float] = None


def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _fields(buf: bytes) -> Iterator[Tuple[int, object]]:
    """Yields (field number, value) for each field of a message: an int for
    varint and fixed fields, bytes for length-delimited ones."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            yield num, v
        elif wire == 1:
            yield num, int.from_bytes(buf[i : i + 8], "little")
            i += 8
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            yield num, buf[i : i + n]
            i += n
        elif wire == 5:
            yield num, int.from_bytes(buf[i : i + 4], "little")
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def parse_status_details(raw: bytes) -> StatusDetails:
    """Parses a serialized google.rpc.Status; what it cannot read it
    leaves out."""
    out = StatusDetails()
    try:
        for num, any_ in _fields(raw):
            if num != 3 or not isinstance(any_, bytes):
                continue
            type_url, value = "", b""
            for n, v in _fields(any_):
                if n == 1 and isinstance(v, bytes):
                    type_url = v.decode("utf-8", "replace")
                elif n == 2 and isinstance(v, bytes):
                    value = v
            if type_url == _ERROR_INFO:
                for n, v in _fields(value):
                    if n == 1 and isinstance(v, bytes) and not out.reason:
                        out.reason = v.decode("utf-8", "replace")
                    elif n == 3 and isinstance(v, bytes):
                        k = val = ""
                        for en, ev in _fields(v):
                            if en == 1 and isinstance(ev, bytes):
                                k = ev.decode("utf-8", "replace")
                            elif en == 2 and isinstance(ev, bytes):
                                val = ev.decode("utf-8", "replace")
                        out.error_info[k] = val
            elif type_url == _RETRY_INFO:
                for n, v in _fields(value):
                    if n == 1 and isinstance(v, bytes):
                        seconds = nanos = 0
                        for dn, dv in _fields(v):
                            if dn == 1 and isinstance(dv, int):
                                seconds = dv
                            elif dn == 2 and isinstance(dv, int):
                                nanos = dv
                        out.retry_delay = seconds + nanos / 1e9
    except ValueError:
        pass
    return out


def status_details(err: BaseException) -> StatusDetails:
    """The details of a grpc.RpcError's status (empty when it has none, or
    when err is not a call that ended with a status)."""
    trailers: List[Tuple[str, object]] = []
    getter = getattr(err, "trailing_metadata", None)
    if callable(getter):
        try:
            trailers = list(getter() or ())
        except Exception:  # not a finished call
            trailers = []
    for key, value in trailers:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return parse_status_details(value)
    return StatusDetails()


def _metadata_id(err: BaseException, key: str) -> Optional[int]:
    v = status_details(err).error_info.get(key)
    if v is None or not v.isdigit():
        return None
    n = int(v)
    return n if 0 < n < 1 << 64 else None


def resume_id(err: BaseException) -> Optional[int]:
    """The start_id the server said to resume from in the status that ended
    a Subscribe stream (ErrorInfo metadata "start_id"), or None."""
    return _metadata_id(err, "start_id")


def oldest_available(err: BaseException) -> Optional[int]:
    """The oldest id the server still keeps, from an OUT_OF_RANGE status of
    a Subscribe stream (ErrorInfo metadata "oldest_id"), or None."""
    return _metadata_id(err, "oldest_id")
