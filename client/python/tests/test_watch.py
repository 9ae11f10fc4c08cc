"""Unit tests of Watch's resuming logic and of the status details reader,
against a fake stub: what a server may send again after a reconnect is
dropped, the position is taken from messages and from the status, and the
errors that end a watch end it."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402
from google.protobuf import any_pb2, duration_pb2  # noqa: E402

from pxperf_client import OutOfRangeError, Watch, WatchGaveUp, entry_pb2, service_pb2  # noqa: E402
from pxperf_client._status import parse_status_details, resume_id  # noqa: E402

DETAILS = "grpc-status-details-bin"


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, data):
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def error_info(reason, **metadata):
    """A serialized google.rpc.ErrorInfo, written by hand: the Debian
    packages have no google.rpc messages."""
    b = _field(1, reason.encode()) + _field(2, b"pxperf")
    for k, v in metadata.items():
        b += _field(3, _field(1, k.encode()) + _field(2, str(v).encode()))
    return any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo", value=b)


def retry_info(seconds):
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=_field(1, d.SerializeToString()))


def status(code, message, *details):
    return _varint(1 << 3) + _varint(code) + _field(2, message.encode()) + b"".join(_field(3, d.SerializeToString()) for d in details)


class FakeError(grpc.RpcError):
    def __init__(self, code, details=None):
        self._code = code
        self._trailers = ((DETAILS, status(code.value[0], "x", *details)),) if details else ()

    def code(self):
        return self._code

    def details(self):
        return "fake"

    def trailing_metadata(self):
        return self._trailers


class FakeCall:
    def __init__(self, msgs, end):
        self._msgs = iter(msgs)
        self._end = end
        self.cancelled = False

    def __iter__(self):
        return self

    def __next__(self):
        for m in self._msgs:
            return m
        if self._end is None:
            raise StopIteration
        raise self._end

    def cancel(self):
        self.cancelled = True


class FakeStub:
    """Answers the n-th Subscribe with streams[n]: (messages, ending error
    or None for a clean end)."""

    def __init__(self, *streams):
        self.streams = list(streams)
        self.requests = []
        self.calls = []

    def Subscribe(self, req, metadata=None):
        self.requests.append(req)
        msgs, end = self.streams.pop(0)
        call = FakeCall(msgs, end)
        self.calls.append(call)
        return call


def batch(ids, next_id):
    return service_pb2.SubscribeResponse(
        batch=service_pb2.EntryBatch(entries=[entry_pb2.Entry(id=i) for i in ids], next_id=next_id)
    )


def gap(first, last):
    return service_pb2.SubscribeResponse(gap=service_pb2.Gap(first_missed_id=first, last_missed_id=last))


UNAVAILABLE = FakeError(grpc.StatusCode.UNAVAILABLE)


def run(stub, req=None, **kw):
    kw.setdefault("initial_backoff", 0.001)
    w = Watch(stub, req or service_pb2.SubscribeRequest(), [], **kw)
    return w, list(w)


def ids_of(msgs):
    return [e.id for m in msgs if m.WhichOneof("event") == "batch" for e in m.batch.entries]


class WatchTest(unittest.TestCase):
    def test_resumes_without_duplicates(self):
        stub = FakeStub(
            ([batch([1, 2], 3)], UNAVAILABLE),
            # A server that sends again what was seen: dropped.
            ([batch([2, 3, 4], 5), gap(3, 6), gap(1, 2), batch([7], 8)], None),
        )
        _, msgs = run(stub, service_pb2.SubscribeRequest(start_id=1))
        self.assertEqual(ids_of(msgs), [1, 2, 3, 4, 7])
        gaps = [(m.gap.first_missed_id, m.gap.last_missed_id) for m in msgs if m.WhichOneof("event") == "gap"]
        self.assertEqual(gaps, [(5, 6)])
        self.assertEqual([r.start_id for r in stub.requests], [1, 3])
        self.assertTrue(all(c.cancelled for c in stub.calls))

    def test_position_from_the_status(self):
        # A stream from now that ends before its first message, with the
        # position in its status: the next stream starts there.
        ended = FakeError(grpc.StatusCode.UNAVAILABLE, [error_info("STREAM_ENDED", start_id=42)])
        stub = FakeStub(([], ended), ([batch([42], 43)], None))
        _, msgs = run(stub, service_pb2.SubscribeRequest(filter=entry_pb2.Filter(query="status:500")))
        self.assertEqual(ids_of(msgs), [42])
        self.assertEqual(stub.requests[0].WhichOneof("start"), None)
        self.assertEqual(stub.requests[1].start_id, 42)
        self.assertEqual(stub.requests[1].filter.query, "status:500")

    def test_tail_cut_before_snapshot_end(self):
        stub = FakeStub(
            ([batch([5, 6], 7)], UNAVAILABLE),
            ([batch([7], 8)], None),
        )
        _, msgs = run(stub, service_pb2.SubscribeRequest(tail=3))
        kinds = [m.WhichOneof("event") for m in msgs]
        self.assertEqual(kinds, ["batch", "snapshot_end", "batch"])
        self.assertEqual(msgs[1].snapshot_end.next_id, 7)
        self.assertEqual(stub.requests[1].start_id, 7)

    def test_out_of_range(self):
        oor = FakeError(grpc.StatusCode.OUT_OF_RANGE, [error_info("START_ID_GONE", oldest_id=100)])
        with self.assertRaises(OutOfRangeError) as cm:
            run(FakeStub(([], oor)), service_pb2.SubscribeRequest(start_id=5))
        self.assertEqual((cm.exception.start_id, cm.exception.oldest), (5, 100))

        stub = FakeStub(([], oor), ([batch([100], 101)], None))
        _, msgs = run(stub, service_pb2.SubscribeRequest(start_id=5), resume_from_oldest=True)
        self.assertEqual(msgs[0].gap.first_missed_id, 5)
        self.assertEqual(msgs[0].gap.last_missed_id, 99)
        self.assertEqual(ids_of(msgs), [100])
        self.assertEqual(stub.requests[1].start_id, 100)

    def test_errors_that_end_it(self):
        aborted = FakeError(grpc.StatusCode.ABORTED)
        with self.assertRaises(grpc.RpcError) as cm:
            run(FakeStub(([batch([1], 2)], aborted)))
        self.assertIs(cm.exception, aborted)

        retries = []
        stub = FakeStub(*[([], UNAVAILABLE)] * 4)
        with self.assertRaises(WatchGaveUp) as cm:
            run(stub, max_retries=3, on_retry=lambda e, n, d: retries.append(n))
        self.assertEqual(cm.exception.failures, 4)
        self.assertEqual(retries, [1, 2, 3])

    def test_backoff(self):
        w = Watch(FakeStub(), service_pb2.SubscribeRequest(), [], initial_backoff=0.1, max_backoff=1)
        for attempt, step in [(1, 0.1), (2, 0.2), (4, 0.8), (5, 1), (100, 1)]:
            d = w._backoff(attempt)
            self.assertTrue(step / 2 <= d <= step, (attempt, d))
        with self.assertRaises(ValueError):
            Watch(FakeStub(), service_pb2.SubscribeRequest(), [], initial_backoff=1, max_backoff=0.5)

    def test_cancel(self):
        stub = FakeStub(([batch([1], 2), batch([2], 3)], None))
        w = Watch(stub, service_pb2.SubscribeRequest(), [])
        self.assertEqual(ids_of([next(w)]), [1])
        w.cancel()
        self.assertTrue(stub.calls[0].cancelled)
        self.assertEqual(list(w), [])


class LoopbackTest(unittest.TestCase):
    def test_is_loopback(self):
        from pxperf_client._client import _is_loopback

        for t in ["127.0.0.1:50051", "localhost:50051", "[::1]:50051", "127.1.2.3:1", "unix:/tmp/s", "dns:///localhost:50051"]:
            self.assertTrue(_is_loopback(t), t)
        for t in ["10.0.0.1:50051", "example.com:50051", "[2001:db8::1]:50051", "dns:///example.com:50051"]:
            self.assertFalse(_is_loopback(t), t)


class StatusTest(unittest.TestCase):
    def test_details(self):
        raw = status(14, "bye", error_info("STREAM_ENDED", start_id=7, other="x"), retry_info(1.5))
        d = parse_status_details(raw)
        self.assertEqual(d.reason, "STREAM_ENDED")
        self.assertEqual(d.error_info, {"start_id": "7", "other": "x"})
        self.assertAlmostEqual(d.retry_delay, 1.5)
        self.assertEqual(resume_id(FakeError(grpc.StatusCode.UNAVAILABLE, [error_info("STREAM_ENDED", start_id=7)])), 7)
        self.assertIsNone(resume_id(UNAVAILABLE))
        self.assertIsNone(resume_id(ValueError("not a call")))
        # Garbage is not an error: nothing is read from it.
        self.assertEqual(parse_status_details(b"\xff\xff\xff").error_info, {})


if __name__ == "__main__":
    unittest.main()
