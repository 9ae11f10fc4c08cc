"""Integration tests of pxperf_client against the real server.

The server binary is PXPERF_BIN (ci.sh builds it); without it, the test
builds one with go build from the repository root. Each test runs its own
`pxperf serve` on a free loopback port with a temporary archive directory.
Every wait is bounded.

    PXPERF_BIN=/path/to/pxperf /usr/bin/python3 -m unittest discover -s tests -v
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PKG))
sys.path.insert(0, PKG)

import grpc  # noqa: E402

from pxperf_client import Client, OutOfRangeError, config_pb2, entry_pb2, service_pb2, resume_id  # noqa: E402

START_TIMEOUT = 30.0  # the server says where it listens
STOP_TIMEOUT = 15.0  # the server exits after SIGTERM
WAIT = 20.0  # a watch gets what was published
CALL = 10.0  # one unary call

SERVING = re.compile(r"msg=serving addr=(\S+)")

_built = None


def server_binary():
    """PXPERF_BIN, or a binary built once from the repository."""
    global _built
    if os.environ.get("PXPERF_BIN"):
        return os.environ["PXPERF_BIN"]
    if _built is None:
        d = tempfile.mkdtemp(prefix="pxperf-py-bin")
        _built = os.path.join(d, "pxperf")
        subprocess.run(["go", "build", "-o", _built, "./cmd/pxperf"], cwd=ROOT, check=True, timeout=600)
    return _built


class Server:
    """A running `pxperf serve`: on listen (127.0.0.1:0 picks a free port),
    with its archive in log_dir."""

    def __init__(self, log_dir, listen="127.0.0.1:0", args=()):
        self.log_dir = log_dir
        self.logs = []
        self._lock = threading.Lock()
        addr = queue.Queue()
        self.proc = subprocess.Popen(
            [server_binary(), "serve", "--listen", listen, "--http-listen=", "--log-dir", log_dir, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

        def read():
            for line in self.proc.stderr:
                with self._lock:
                    self.logs.append(line)
                m = SERVING.search(line)
                if m:
                    addr.put(m.group(1))
            addr.put(None)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        try:
            self.addr = addr.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self.stop(signal.SIGKILL)
            raise AssertionError("server did not say where it listens:\n" + self.log())
        if self.addr is None:
            self.stop(signal.SIGKILL)
            raise AssertionError("server exited before serving:\n" + self.log())

    def log(self):
        with self._lock:
            return "".join(self.logs)

    def stop(self, sig=signal.SIGTERM):
        """Stops the server with sig (SIGTERM: as an operator would; SIGKILL:
        a crash), killing it if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        self.proc.stderr.close()


def entry(i, status=200, host="example.com", method="GET"):
    e = entry_pb2.Entry(method=method, url=f"http://{host}/item/{i}", status_code=status)
    e.start_time.GetCurrentTime()
    return e


class ServerTest(unittest.TestCase):
    """Starts a server with a fresh archive directory for each test, with
    server_args."""

    server_args = ()

    def setUp(self):
        self._problems_before = self._problems()
        self.dir = tempfile.mkdtemp(prefix="pxperf-py-test")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.server = Server(os.path.join(self.dir, "logs"), args=self.server_args)
        self.addCleanup(self._stop_server)
        self.client = Client(self.server.addr)
        self.addCleanup(self.client.close)

    def _problems(self):
        """How many failures and errors the run has had so far."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return len(result.failures) + len(result.errors) if result is not None else 0

    def _stop_server(self):
        self.server.stop()
        if self._problems() > self._problems_before:
            sys.stderr.write(f"{self.id()}: server log:\n" + self.server.log())

    def publish(self, entries):
        # wait_for_ready: right after a restart the channel may still be in
        # its reconnect backoff, where a call would fail at once.
        results = self.client.publish(entries, timeout=CALL, wait_for_ready=True)
        for r in results:
            self.assertFalse(r.HasField("rejection"), f"rejected: {r.rejection.message}")
        return [r.id for r in results]


class PublishTest(ServerTest):
    def test_publish_and_get(self):
        ids = self.publish([entry(i) for i in range(1, 4)])
        # A new server (empty archive directory) numbers from 1.
        self.assertEqual(ids, [1, 2, 3])
        got = self.client.get_entry(2, timeout=CALL)
        self.assertEqual((got.id, got.method, got.url, got.status_code), (2, "GET", "http://example.com/item/2", 200))
        with self.assertRaises(ValueError):
            self.client.publish([])
        with self.assertRaises(grpc.RpcError) as cm:
            self.client.get_entry(999, timeout=CALL)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)


class ListTest(ServerTest):
    def test_list_with_filter(self):
        self.publish(
            [
                entry(1, 200, "api.example.com"),
                entry(2, 404, "api.example.com"),
                entry(3, 500, "cdn.example.com"),
                entry(4, 503, "api.example.com", method="POST"),
                entry(5, 301, "api.example.com"),
            ]
        )
        resp = self.client.list_entries("status:>=400 host:api.example.com", timeout=CALL)
        self.assertEqual([e.id for e in resp.entries], [4, 2])  # newest first
        self.assertEqual(resp.total_size, 2)

        resp = self.client.list_entries(
            "status:5xx OR method:POST", order=service_pb2.ORDER_OLDEST_FIRST, page_size=1, timeout=CALL
        )
        self.assertEqual([e.id for e in resp.entries], [3])
        self.assertEqual(resp.total_size, 2)
        self.assertTrue(resp.next_page_token)

        # A structured filter works as well as a query.
        resp = self.client.list_entries(entry_pb2.Filter(methods=["POST"]), timeout=CALL)
        self.assertEqual([e.id for e in resp.entries], [4])

        with self.assertRaises(grpc.RpcError) as cm:
            self.client.list_entries("status:", timeout=CALL)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


class ConfigTest(ServerTest):
    def test_update_config(self):
        before = self.client.get_config(timeout=CALL)
        self.assertNotEqual(before.memory.max_entries, 5000, "already 5000: the update would prove nothing")
        cfg = config_pb2.Config()
        cfg.memory.max_entries = 5000
        got = self.client.update_config(cfg, ["memory.max_entries"], timeout=CALL)
        self.assertEqual(got.memory.max_entries, 5000)
        # Fields not in the mask keep their values.
        self.assertEqual(got.throttle.max_updates_per_second, before.throttle.max_updates_per_second)
        self.assertEqual(self.client.get_config(timeout=CALL).memory.max_entries, 5000)

        bad = config_pb2.Config()
        bad.memory.max_entries = 0
        with self.assertRaises(grpc.RpcError) as cm:
            self.client.update_config(bad, ["memory.max_entries"], timeout=CALL)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.client.get_config(timeout=CALL).memory.max_entries, 5000)
        with self.assertRaises(ValueError):
            self.client.update_config(cfg, [])


class WatchTest(ServerTest):
    def test_watch_resumes_across_restarts(self):
        """A watch goes on across a clean restart (SIGTERM: the status names
        where to resume) and a crash (SIGKILL: the connection just breaks),
        on the same port and archive, without gap or duplicate."""
        retries = []
        w = self.client.watch(start_id=1, on_retry=lambda err, n, d: retries.append((err.code(), resume_id(err))))
        msgs = queue.Queue()

        def consume():
            try:
                for m in w:
                    msgs.put(m)
            except BaseException as e:  # handed to the test thread
                msgs.put(e)
            msgs.put(None)

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        self.addCleanup(t.join, STOP_TIMEOUT)
        self.addCleanup(w.cancel)

        got, gaps = [], []

        def receive(want):
            """Reads messages until the entries with the ids in want came."""
            deadline = time.monotonic() + WAIT
            want = set(want)
            while not want <= set(e.id for e in got):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail(f"watch got {[e.id for e in got]}, still waiting for {sorted(want)}")
                try:
                    m = msgs.get(timeout=left)
                except queue.Empty:
                    continue
                if m is None:
                    self.fail("watch ended")
                if isinstance(m, BaseException):
                    raise m
                kind = m.WhichOneof("event")
                if kind == "batch":
                    got.extend(m.batch.entries)
                elif kind == "gap":
                    gaps.append((m.gap.first_missed_id, m.gap.last_missed_id))

        published = self.publish([entry(i) for i in range(1, 4)])
        receive(published)

        for n, sig in enumerate([signal.SIGTERM, signal.SIGKILL]):
            addr = self.server.addr
            self.server.stop(sig)
            self.server = Server(os.path.join(self.dir, "logs"), listen=addr)
            self.assertEqual(self.server.addr, addr)
            ids = self.publish([entry(10 * (n + 1) + i) for i in range(3)])
            published += ids
            receive(ids)

        w.cancel()
        t.join(STOP_TIMEOUT)
        self.assertFalse(t.is_alive(), "the watch did not end after cancel")

        got_ids = [e.id for e in got]
        self.assertEqual(got_ids, published, "entries missed, repeated or out of order")
        self.assertEqual(len(set(e.url for e in got)), len(published))
        for first, last in gaps:
            for id_ in published:
                self.assertFalse(first <= id_ <= last, f"gap {first}..{last} covers published id {id_}")
        self.assertGreaterEqual(len(retries), 2, "the watch should have reconnected after each stop")
        for code, _ in retries:
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        # The clean stop said where to resume: after the last entry sent.
        self.assertEqual(retries[0][1], published[2] + 1, retries)

    def test_watch_filter_and_out_of_range(self):
        self.publish([entry(1, 200), entry(2, 500), entry(3, 404)])
        w = self.client.watch("status:>=400", start_id=1)
        self.addCleanup(w.cancel)
        ids = []
        deadline = time.monotonic() + WAIT
        # The watch runs on this thread: a timer ends it if entries never come.
        timer = threading.Timer(WAIT, w.cancel)
        timer.start()
        self.addCleanup(timer.cancel)
        for m in w:
            ids.extend(e.id for e in m.batch.entries)
            if len(ids) >= 2 or time.monotonic() > deadline:
                break
        w.close()
        self.assertEqual(ids, [2, 3])

        # A start id beyond anything the server assigned: OUT_OF_RANGE ends
        # the watch at once, it is not retried.
        w = self.client.watch(start_id=10**9)
        timer = threading.Timer(WAIT, w.cancel)
        timer.start()
        self.addCleanup(timer.cancel)
        with self.assertRaises(OutOfRangeError) as cm:
            for _ in w:
                pass
        self.assertEqual(cm.exception.start_id, 10**9)


ADMIN_TOKEN = "a" * 32
VIEW_TOKEN = "v" * 32


class TokenTest(ServerTest):
    """A server with --tokens: the client's token is sent on every call,
    a watch included, and the roles apply."""

    def setUp(self):
        fd, path = tempfile.mkstemp(prefix="pxperf-py-tokens")
        with os.fdopen(fd, "w") as f:
            f.write(f"admin ops {ADMIN_TOKEN}\nview ui {VIEW_TOKEN}\n")
        os.chmod(path, 0o600)
        self.addCleanup(os.remove, path)
        self.server_args = ("--tokens", path)
        super().setUp()

    def test_tokens(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.client.get_config(timeout=CALL)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

        admin = Client(self.server.addr, token=ADMIN_TOKEN)
        self.addCleanup(admin.close)
        ids = admin.publish([entry(1)], timeout=CALL)
        self.assertEqual([r.id for r in ids], [1])
        cfg = config_pb2.Config()
        cfg.memory.max_entries = 4000
        self.assertEqual(admin.update_config(cfg, ["memory.max_entries"], timeout=CALL).memory.max_entries, 4000)

        view = Client(self.server.addr, token=VIEW_TOKEN)
        self.addCleanup(view.close)
        self.assertEqual(view.get_config(timeout=CALL).memory.max_entries, 4000)
        with self.assertRaises(grpc.RpcError) as cm:
            view.update_config(cfg, ["memory.max_entries"], timeout=CALL)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        w = view.watch(start_id=1)
        timer = threading.Timer(WAIT, w.cancel)
        timer.start()
        self.addCleanup(timer.cancel)
        for m in w:
            if m.batch.entries:
                self.assertEqual(m.batch.entries[0].id, 1)
                break
        else:
            self.fail("the watch ended without the entry")
        w.close()

        # An unauthenticated watch is not retried: it ends with the error.
        w = self.client.watch(start_id=1)
        timer = threading.Timer(WAIT, w.cancel)
        timer.start()
        self.addCleanup(timer.cancel)
        with self.assertRaises(grpc.RpcError) as cm:
            for _ in w:
                pass
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

        # A token is not sent in clear text off loopback.
        with self.assertRaises(ValueError):
            Client("pxperf.example.com:50051", token=ADMIN_TOKEN)


class ExampleTest(ServerTest):
    def test_example_prints_entries(self):
        self.publish([entry(1, 200), entry(2, 404, method="DELETE")])
        out = subprocess.run(
            [sys.executable, os.path.join(PKG, "example.py"), "--server", self.server.addr, "--tail", "10", "--count", "2"],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(
            out.stdout.splitlines(),
            ["1 GET 200 http://example.com/item/1", "2 DELETE 404 http://example.com/item/2"],
        )


if __name__ == "__main__":
    unittest.main()
