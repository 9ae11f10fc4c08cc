"""Client and Watch: the Python counterparts of client.Client and
client.Client.Watch in the Go client (client/client.go, client/watch.go)."""

from __future__ import annotations

import ipaddress
import random
import threading
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Union

import grpc
from google.protobuf import field_mask_pb2
from pxperf.v1 import config_pb2, entry_pb2, service_pb2, service_pb2_grpc

from ._status import oldest_available, resume_id, status_details

DEFAULT_ADDRESS = "127.0.0.1:50051"
"""The server's default listen address."""

DEFAULT_INITIAL_BACKOFF = 0.1
"""Seconds before the first reconnect of a watch."""

DEFAULT_MAX_BACKOFF = 10.0
"""The longest wait between reconnects of a watch, in seconds."""

FilterLike = Union[None, str, entry_pb2.Filter]


def _filter(f: FilterLike) -> Optional[entry_pb2.Filter]:
    """A Filter from a query string (Filter.query, the filter language of
    README "Filters") or a Filter; None for None."""
    if f is None:
        return None
    if isinstance(f, str):
        return entry_pb2.Filter(query=f)
    if isinstance(f, entry_pb2.Filter):
        return f
    raise TypeError(f"filter must be a query string or an entry_pb2.Filter, not {type(f).__name__}")


def _is_loopback(target: str) -> bool:
    """Whether target names a loopback address or a unix socket."""
    if target.startswith("unix:") or target.startswith("unix-abstract:"):
        return True
    host = target
    if "://" in host:
        host = host.split("://", 1)[1]
        host = host.rsplit("/", 1)[-1] if "/" in host else host
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OutOfRangeError(Exception):
    """What Watch raises when the server no longer keeps the position it
    asked for (OUT_OF_RANGE): start_id is older than anything in memory or
    the archive (oldest is then the oldest id still available), or, rarely,
    beyond the newest id the server has assigned (oldest is then None). The
    grpc.RpcError is its __cause__."""

    def __init__(self, start_id: int, oldest: Optional[int], err: grpc.RpcError):
        self.start_id = start_id
        self.oldest = oldest
        self.err = err
        details = err.details() if hasattr(err, "details") else str(err)
        if oldest is None:
            msg = f"watch: start_id {start_id} is out of range: {details}"
        else:
            msg = f"watch: start_id {start_id} is gone, the oldest id available is {oldest}: {details}"
        super().__init__(msg)


class WatchGaveUp(Exception):
    """What Watch raises when max_retries reconnects in a row failed. The
    last grpc.RpcError is its __cause__ (and its err)."""

    def __init__(self, failures: int, err: grpc.RpcError):
        self.failures = failures
        self.err = err
        super().__init__(f"watch: giving up after {failures} failures in a row: {err.code()}: {err.details()}")


def _retryable(err: grpc.RpcError) -> bool:
    """Whether a stream that ended with err is worth opening again."""
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # grpc's own receive limit: the same message would fail again.
        return "larger than max" not in (err.details() or "")
    return False


class Watch:
    """An iterator over the messages of Subscribe streams that survives
    broken ones: see Client.watch. Iterate it once; cancel() (from any
    thread) ends the iteration, which then stops without an error."""

    def __init__(
        self,
        stub: service_pb2_grpc.PerformanceServiceStub,
        request: service_pb2.SubscribeRequest,
        metadata: Sequence[tuple],
        *,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: Optional[float] = None,
        max_retries: int = 0,
        resume_from_oldest: bool = False,
        on_retry: Optional[Callable[[grpc.RpcError, int, float], None]] = None,
    ):
        if initial_backoff <= 0:
            raise ValueError(f"initial_backoff {initial_backoff} must be positive")
        if max_backoff is None:
            max_backoff = max(DEFAULT_MAX_BACKOFF, initial_backoff)
        if max_backoff < initial_backoff:
            raise ValueError(f"max_backoff {max_backoff} is below initial_backoff {initial_backoff}")
        if max_retries < 0:
            raise ValueError(f"max_retries {max_retries} is negative")
        self._stub = stub
        self._metadata = list(metadata)
        self._req = service_pb2.SubscribeRequest()
        self._req.CopyFrom(request)  # ours to change; the caller may reuse theirs
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_retries = max_retries
        self._resume_from_oldest = resume_from_oldest
        self._on_retry = on_retry
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call = None
        # The position: the next id to ask for, once known.
        self.known = False
        self.next_id = 0
        self._snapshot_pending = False  # a tail request whose snapshot_end has not been seen
        self._snapshot_cut = False  # yield a snapshot_end before the next message
        self._received = False  # the current stream has delivered a message
        start = self._req.WhichOneof("start")
        if start == "start_id":
            self.known, self.next_id = True, self._req.start_id
        elif start == "tail":
            self._snapshot_pending = True
        self._gen = self._run()

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> service_pb2.SubscribeResponse:
        return next(self._gen)

    def close(self) -> None:
        """Ends the watch from the thread iterating it (like a generator's
        close)."""
        self.cancel()
        self._gen.close()

    def cancel(self) -> None:
        """Ends the watch from any thread: the stream open now is cancelled,
        a backoff wait is cut short, and the iteration stops."""
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def _backoff(self, attempt: int) -> float:
        """The wait before reconnect number attempt (from 1): the
        exponential step, drawn with jitter between half of it and all."""
        step = min(self._initial_backoff * (2 ** min(attempt - 1, 62)), self._max_backoff)
        return random.uniform(step / 2, step)

    def _request(self) -> service_pb2.SubscribeRequest:
        """The caller's request until a position is known, then the
        caller's with start_id at the position."""
        if not self.known:
            return self._req
        r = service_pb2.SubscribeRequest()
        r.CopyFrom(self._req)
        r.start_id = self.next_id  # sets the oneof: clears tail
        return r

    def _run(self) -> Iterator[service_pb2.SubscribeResponse]:
        failures = 0
        while True:
            if self._stop.is_set():
                return
            try:
                yield from self._stream()
                return  # the server ended the stream cleanly (pxperf does not)
            except grpc.RpcError as e:
                err = e
            if self._stop.is_set():
                return
            if self._received:
                failures = 0
            code = err.code()
            if code == grpc.StatusCode.OUT_OF_RANGE:
                oldest = oldest_available(err)
                if not self._resume_from_oldest or not self.known or oldest is None or oldest <= self.next_id:
                    raise OutOfRangeError(self.next_id, oldest, err) from err
                # Ids before the oldest are gone for good: say so, and go on
                # from the oldest at once; waiting would lose more.
                gap = service_pb2.Gap(first_missed_id=self.next_id, last_missed_id=oldest - 1)
                self.next_id = oldest
                yield service_pb2.SubscribeResponse(gap=gap)
                continue
            if not _retryable(err):
                raise err
            # The server's cursor: at or past the position, never behind
            # what it sent. It may be ahead (entries it examined and did not
            # match), or the only position known (a stream from now that
            # ended before its first message).
            rid = resume_id(err)
            if rid is not None and (not self.known or rid > self.next_id):
                self.known, self.next_id = True, rid
            failures += 1
            if self._max_retries and failures > self._max_retries:
                raise WatchGaveUp(failures, err) from err
            delay = max(self._backoff(failures), status_details(err).retry_delay or 0.0)
            if self._on_retry is not None:
                self._on_retry(err, failures, delay)
            if self._stop.wait(delay):
                return

    def _stream(self) -> Iterator[service_pb2.SubscribeResponse]:
        """Opens one stream and yields what it brings until it ends; a
        grpc.RpcError says how it ended."""
        self._received = False
        req = self._request()
        if self.known and self._snapshot_pending:
            # This stream starts at an id inside the snapshot: the server
            # will not mark its end, so the client does.
            self._snapshot_pending, self._snapshot_cut = False, True
        call = self._stub.Subscribe(req, metadata=self._metadata)
        with self._lock:
            self._call = call
            if self._stop.is_set():
                call.cancel()
        try:
            for msg in call:
                if self._stop.is_set():
                    return  # cancelled while the caller held a message
                self._received = True
                if self._snapshot_cut:
                    self._snapshot_cut = False
                    end = service_pb2.SnapshotEnd(next_id=self.next_id)
                    yield service_pb2.SubscribeResponse(snapshot_end=end)
                if not self._track(msg):
                    continue
                yield msg
        finally:
            # Releases the stream however the loop ends, a break in the
            # caller's loop (GeneratorExit) included.
            with self._lock:
                self._call = None
            call.cancel()

    def _advance(self, next_id: int) -> None:
        if not self.known or next_id > self.next_id:
            self.next_id = next_id
        self.known = True

    def _track(self, msg: service_pb2.SubscribeResponse) -> bool:
        """Moves the position past msg, dropping from msg what is below the
        position already; whether anything is left to yield."""
        prev, known = self.next_id, self.known
        kind = msg.WhichOneof("event")
        if kind == "batch":
            b = msg.batch
            if known:
                i = 0
                while i < len(b.entries) and b.entries[i].id < prev:
                    i += 1
                if i:
                    del b.entries[:i]
            self._advance(b.next_id)
            # An empty batch still says where the stream is, if it moved.
            return len(b.entries) + len(b.updates) > 0 or b.updates_lost > 0 or not known or self.next_id > prev
        if kind == "gap":
            g = msg.gap
            if known and g.last_missed_id < prev:
                return False  # reported before
            if known and g.first_missed_id < prev:
                g.first_missed_id = prev
            self._advance(g.last_missed_id + 1)
        elif kind == "progress":
            self._advance(msg.progress.next_id)
        elif kind == "snapshot_end":
            self._snapshot_pending = False
            self._advance(msg.snapshot_end.next_id)
        return True


class Client:
    """A connection to a pxperf server with helpers for the common RPCs.

    target is host:port (or any target grpc accepts). token, when set, is
    sent as "authorization: bearer <token>" on every call, for a server with
    --tokens; it is refused in clear text to anything but a loopback address
    unless credentials (grpc.ssl_channel_credentials(...)) are given or
    allow_token_without_tls is true. Without credentials the channel is
    plaintext, which suits the server's loopback default. options are extra
    grpc channel options.

    The connection is made on the first call, and remade as needed. Use it
    as a context manager, or call close(). Every helper takes timeout=, in
    seconds (None: no deadline), and wait_for_ready=: True makes a call made
    while the server cannot be reached wait for it (within timeout) instead
    of failing at once with UNAVAILABLE. service is the generated stub, for
    the RPCs without a helper.
    """

    def __init__(
        self,
        target: str = DEFAULT_ADDRESS,
        token: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        allow_token_without_tls: bool = False,
        options: Sequence[tuple] = (),
    ):
        if not target:
            target = DEFAULT_ADDRESS
        if token and credentials is None and not allow_token_without_tls and not _is_loopback(target):
            raise ValueError(
                f"client: refusing to send a token in clear text to {target!r}: "
                "give credentials (TLS), or allow_token_without_tls=True"
            )
        opts = [
            # Come back quickly once a restarted server listens again: grpc's
            # own reconnect backoff would otherwise reach two minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", int(DEFAULT_MAX_BACKOFF * 1000)),
        ]
        opts += list(options)
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        else:
            self._channel = grpc.insecure_channel(target, options=opts)
        self._metadata: List[tuple] = [("authorization", f"bearer {token}")] if token else []
        self.service = service_pb2_grpc.PerformanceServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel: calls and streams in flight end."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call_args(self, timeout: Optional[float], wait_for_ready: Optional[bool]) -> dict:
        return {"timeout": timeout, "metadata": self._metadata, "wait_for_ready": wait_for_ready}

    @property
    def metadata(self) -> List[tuple]:
        """The metadata sent on every call (the token), for calls made on
        service directly."""
        return list(self._metadata)

    def publish(
        self,
        entries: Iterable[entry_pb2.Entry],
        *,
        timeout: Optional[float] = None,
        wait_for_ready: Optional[bool] = None,
    ) -> List[service_pb2.PublishResult]:
        """Sends entries in one Publish call and returns one result per
        entry, in order: results[i].id is the id given to entries[i], or
        results[i].rejection says why the server refused it (a rejected
        entry does not make the call fail). No entries is a ValueError."""
        entries = list(entries)
        if not entries:
            raise ValueError("client: publish: no entries")
        req = service_pb2.PublishRequest(entries=entries)
        resp = self.service.Publish(req, **self._call_args(timeout, wait_for_ready))
        if len(resp.results) != len(entries):
            raise RuntimeError(f"client: publish: server returned {len(resp.results)} results for {len(entries)} entries")
        return list(resp.results)

    def list_entries(
        self,
        filter: FilterLike = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        offset: int = 0,
        order: int = service_pb2.ORDER_UNSPECIFIED,
        include_bodies: bool = False,
        timeout: Optional[float] = None,
        wait_for_ready: Optional[bool] = None,
    ) -> service_pb2.ListEntriesResponse:
        """A window of the filtered view of the server's entries (newest
        first unless order=service_pb2.ORDER_OLDEST_FIRST), with the view's
        total size. filter is a query string ("status:>=400 host:api") or an
        entry_pb2.Filter."""
        req = service_pb2.ListEntriesRequest(
            page_size=page_size,
            page_token=page_token,
            offset=offset,
            order=order,
            include_bodies=include_bodies,
        )
        f = _filter(filter)
        if f is not None:
            req.filter.CopyFrom(f)
        return self.service.ListEntries(req, **self._call_args(timeout, wait_for_ready))

    def get_entry(
        self, id: int, *, timeout: Optional[float] = None, wait_for_ready: Optional[bool] = None
    ) -> entry_pb2.Entry:
        """The entry with this id, whole, with its bodies; NOT_FOUND when the
        server does not keep it."""
        req = service_pb2.GetEntryRequest(id=id)
        return self.service.GetEntry(req, **self._call_args(timeout, wait_for_ready)).entry

    def get_config(
        self, *, timeout: Optional[float] = None, wait_for_ready: Optional[bool] = None
    ) -> config_pb2.Config:
        """The server's effective config, every field set."""
        return self.service.GetConfig(service_pb2.GetConfigRequest(), **self._call_args(timeout, wait_for_ready)).config

    def update_config(
        self,
        config: config_pb2.Config,
        paths: Sequence[str],
        *,
        timeout: Optional[float] = None,
        wait_for_ready: Optional[bool] = None,
    ) -> config_pb2.Config:
        """Changes, live, the config fields named by paths (such as
        "memory.max_entries" or "throttle") to their values in config, and
        returns the effective config. All change or none does:
        INVALID_ARGUMENT names fields at fault, FAILED_PRECONDITION fields
        that cannot change live. No paths is a ValueError."""
        paths = list(paths)
        if not paths:
            raise ValueError("client: config: no fields to change")
        req = service_pb2.UpdateConfigRequest(config=config, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return self.service.UpdateConfig(req, **self._call_args(timeout, wait_for_ready)).config

    def subscribe(
        self,
        request: Optional[service_pb2.SubscribeRequest] = None,
        *,
        timeout: Optional[float] = None,
        wait_for_ready: Optional[bool] = None,
    ):
        """One Subscribe stream, as the generated stub returns it (iterate
        it; cancel() it to end it early). It does not resume: see watch."""
        req = request or service_pb2.SubscribeRequest()
        return self.service.Subscribe(req, **self._call_args(timeout, wait_for_ready))

    def watch(
        self,
        filter: FilterLike = None,
        *,
        start_id: Optional[int] = None,
        tail: Optional[int] = None,
        max_batch_size: int = 0,
        max_updates_per_second: int = 0,
        include_bodies: bool = False,
        request: Optional[service_pb2.SubscribeRequest] = None,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: Optional[float] = None,
        max_retries: int = 0,
        resume_from_oldest: bool = False,
        on_retry: Optional[Callable[[grpc.RpcError, int, float], None]] = None,
    ) -> Watch:
        """Subscribe that survives broken streams, as the Go client's Watch:
        it yields every SubscribeResponse (batch, gap, progress,
        snapshot_end), and when a stream fails in a way worth retrying it
        opens a new one with start_id at the position reached, after a
        backoff, so that the loop sees every matching entry once, in id
        order, and every gap the server reported, as if the stream had never
        broken.

        The request: filter (a query string or an entry_pb2.Filter), and
        where to start: from now (the default), start_id (resume: the
        next_id of the last message seen) or tail (the last N matching
        entries, then snapshot_end, then live). request, when given, is
        used instead of these fields.

        The position is the next id to ask for, taken from each message
        (EntryBatch.next_id, Gap.last_missed_id + 1, Progress.next_id,
        SnapshotEnd.next_id), and from the status that ended the stream
        when it names one further on (ErrorInfo start_id, see resume_id).
        What a server sends again below the position is dropped: entries
        with an id below it, and gaps or the parts of gaps below it.
        EntryBatch.updates are not dropped (later versions of entries below
        the position, by design).

        What ends a stream decides what the watch does:

        - UNAVAILABLE (connection lost, server restarting) and
          RESOURCE_EXHAUSTED (subscriber limit, a stuck subscriber) are
          retried after a backoff: initial_backoff seconds (0.1), doubled
          after each failure in a row up to max_backoff (10), with jitter
          (between half and all of it), or longer if the server's RetryInfo
          asks; a message received resets it. on_retry(err, attempt, delay)
          is called before each wait. After max_retries failures in a row
          (0: no limit) it raises WatchGaveUp.
        - OUT_OF_RANGE raises OutOfRangeError (with .oldest), unless
          resume_from_oldest: it then yields a Gap made by the client, from
          the position to the oldest id minus one, and goes on from the
          oldest.
        - Any other code (ABORTED, INVALID_ARGUMENT, UNAUTHENTICATED, ...)
          raises the grpc.RpcError.
        - Watch.cancel() (from any thread) or a break out of the loop ends
          it, and releases the stream.

        A resumed tail request asks for start_id, not a second snapshot: if
        the stream broke before snapshot_end, that message is yielded by
        the client just before the first message of the resumed stream. If
        a stream broke before any message and its status names no position,
        the request is sent again as it was; for a request from now,
        entries published in between are then not delivered. Completions of
        entries below the position that happen while reconnecting are not
        sent again (the Go client has the same limit).
        """
        if request is None:
            if start_id is not None and tail is not None:
                raise ValueError("give start_id or tail, not both")
            request = service_pb2.SubscribeRequest(
                max_batch_size=max_batch_size,
                max_updates_per_second=max_updates_per_second,
                include_bodies=include_bodies,
            )
            f = _filter(filter)
            if f is not None:
                request.filter.CopyFrom(f)
            if start_id is not None:
                request.start_id = start_id
            elif tail is not None:
                request.tail = tail
        return Watch(
            self.service,
            request,
            self._metadata,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            max_retries=max_retries,
            resume_from_oldest=resume_from_oldest,
            on_retry=on_retry,
        )

    def watch_entries(self, filter: FilterLike = None, **kwargs) -> Iterator[entry_pb2.Entry]:
        """The entries of watch(filter, **kwargs), one by one, in id order:
        for a consumer that wants entries alone. Gaps, progress, updates of
        entries already passed and snapshot_end are left out; use watch to
        see them."""
        w = self.watch(filter, **kwargs)
        try:
            for msg in w:
                if msg.WhichOneof("event") == "batch":
                    yield from msg.batch.entries
        finally:
            w.close()
