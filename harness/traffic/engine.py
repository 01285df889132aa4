"""Bulk HTTP/1.1 traffic, plain or over TLS, every request recorded: the harness's heavy lifting.

The target is any address (an IP or a DNS name, resolved once per run; loopback only when
``HARNESS_LOOPBACK_ONLY=1``, as in the harness's own tests). Over HTTPS one run sends with one
SNI, the Host of its requests, and checks the certificate as its ``tls`` says (default: the
system's CAs; see :mod:`harness.traffic.tls`).

Two ways to drive a proxy:

* closed loop (:func:`run_closed_loop`): ``total`` requests over ``concurrency`` connections, the
  next request going out as soon as one finishes. The fastest way to collect counts (weights).
* open loop (:func:`run_open_loop`): request ``i`` is due at ``t0 + i / rate`` whatever happened
  to the ones before it, and recorded against that scheduled time, so a stall shows up as late
  and failed requests instead of as fewer requests (coordinated omission). The sender's own lag
  is recorded per request, so a run whose sender fell behind can be declared invalid (gaps).

With ``processes`` > 1 a run's requests are split across worker processes, started for the run
or taken from a :class:`SenderPool`, which keeps them for the next run (the gap suite's runs:
starting two workers costs 0.3-0.4 s a run).

Both return :class:`~harness.traffic.samples.Samples`: a 45-byte record per request, including
request that failed (classified, never re-sent) and every one that was never sent.

Why not httpx or aiohttp here: on the 2-core machine the client competes with Traefik for CPU,
so what counts is the client's CPU per request. Measured through Traefik, 64 connections, the
client's CPU per request: wrk 11-16 us, this engine 15-21 us, aiohttp 95 us, httpx ~2,700 us
(aiohttp reached 0.46 of wrk's rate, httpx 0.02; this engine 0.9-1.0). httpx stays the client
for single probes. This engine is a callback-only asyncio Protocol on uvloop with httptools' C
parser: requests are encoded once per spec, each costs one ``transport.write``, responses are
parsed without coroutines or futures, and the whoami body is searched with a handful of
``bytes.find`` calls (cached per distinct body). Two processes reached the same rate with more
CPU per request (26 us) on 2 cores, so one process is the default. ``bench/bench_traffic.py``
measures it against wrk in the same run.

Times are seconds after ``Samples.t0_monotonic`` (``time.monotonic()``): an event observed
elsewhere (a configuration change applied) goes on the same axis as
``time.monotonic() - samples.t0_monotonic``.

Timeouts are enforced by a periodic sweep (every ``min(timeout/4, 50 ms)``) instead of a timer
per request: a request times out between ``timeout`` and ``timeout`` plus one sweep interval
after its scheduled time (open loop: waiting for a free connection counts; see
:func:`run_open_loop` for its latency budget).
Every run is bounded by ``total`` and by ``deadline``; after the deadline, requests in flight
are recorded as ``ABORTED`` and those not started as ``NOT_SENT``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import pickle
import re
import secrets
import select
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httptools
import numpy as np
import numpy.typing as npt
from httptools.parser.errors import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
)

from harness import procs
from harness.backends.whoami import whoami_fields
from harness.errors import ConfigError, TargetUnreachable
from harness.traffic.addresses import ProxyAddress, traffic_target
from harness.traffic.samples import COLUMNS, ErrorClass, Interner, Samples, empty_columns
from harness.traffic.tls import TLSVerify

_uvloop_new_loop: Callable[[], asyncio.AbstractEventLoop] | None
try:  # uvloop is a dependency on Linux/macOS; the engine works (slower) without it.
    from uvloop import new_event_loop as _uvloop_new_loop
except ImportError:  # pragma: no cover - Windows
    _uvloop_new_loop = None

__all__ = [
    "MAX_TOTAL",
    "Progress",
    "ProxyAddress",
    "RequestSpec",
    "SenderPool",
    "check_target",
    "run_closed_loop",
    "run_open_loop",
    "spec_order",
    "traffic_target",
    "whoami_fields",
]

#: Where worker processes reach their parent.
LOOPBACK = "127.0.0.1"
#: Most requests one run may record (45 bytes each: 900 MB).
MAX_TOTAL = 20_000_000
#: Most connections one process keeps open.
MAX_CONNECTIONS = 20_000
#: Most worker processes.
MAX_PROCESSES = 64
#: Progress callbacks are at most this often (a terminal display needs no more).
PROGRESS_INTERVAL = 0.25
#: Bytes of a response body kept for classification; whoami's answer is well below this.
BODY_CAP = 64 * 1024
#: Distinct response bodies remembered with their classification (bounded memory).
BODY_CACHE_MAX = 2048
#: Shortest sleep of the open-loop sender (the event loop's timer resolution).
TICK = 0.001
#: How long worker processes may take to start before the run is abandoned.
WORKER_START_TIMEOUT = 30.0

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_FIELDS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------
# What to send


@dataclass(frozen=True)
class RequestSpec:
    """One kind of request. ``host`` defaults to the target's ``host:port``."""

    method: str = "GET"
    path: str = "/"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        if isinstance(self.headers, Mapping):  # accept a dict too; keep a hashable tuple
            object.__setattr__(self, "headers", tuple(self.headers.items()))

    def label(self) -> str:
        """Short text naming the request, e.g. ``GET cheese.test/cheddar``."""
        return f"{self.method} {self.host or ''}{self.path}"

    def validate(self, where: str) -> None:
        """Raise ConfigError unless this can be sent as written."""
        if not _TOKEN.match(self.method):
            raise ConfigError(f"{where}: method {self.method!r} is not an HTTP token")
        if self.method.upper() in ("HEAD", "CONNECT"):
            # Their answers announce a body that never comes; the bulk parser cannot know that.
            raise ConfigError(
                f"{where}: method {self.method} is not supported by the bulk engine; "
                "use GET (or httpx for single probes)"
            )
        if not (self.path.startswith("/") or self.path == "*") or " " in self.path:
            raise ConfigError(
                f"{where}: path {self.path!r} must start with '/' and contain no spaces "
                "(percent-encode them)"
            )
        fields = [("path", self.path), ("host", self.host or "")]
        fields += [(f"header {name!r}", value) for name, value in self.headers]
        for what, value in fields:
            if _FORBIDDEN_IN_FIELDS.search(value):
                raise ConfigError(f"{where}: {what} contains a control character: {value!r}")
        for name, _ in self.headers:
            if not _TOKEN.match(name):
                raise ConfigError(f"{where}: header name {name!r} is not an HTTP token")
            if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                raise ConfigError(
                    f"{where}: header {name!r} is set by the engine; use RequestSpec.host "
                    "for Host, body for the length, keepalive for Connection"
                )

    def encode(self, default_host: str, *, close: bool) -> bytes:
        """The request as bytes on the wire (encoded once, written many times)."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host or default_host}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        return head + self.body


@dataclass(frozen=True)
class Progress:
    """A snapshot for a live display. ``finished`` = responses + errors recorded."""

    elapsed: float
    total: int
    sent: int
    finished: int
    errors: int
    rate: float


ProgressCallback = Callable[[Progress], None]


# ---------------------------------------------------------------------------------------------
# The plan one process executes (picklable: sent to worker processes)


@dataclass
class _Plan:
    mode: str  # "closed" or "open"
    host: str
    port: int
    requests: list[bytes]
    spec: npt.NDArray[np.uint32]  # spec index of each local request
    scheduled: npt.NDArray[np.float64] | None  # open loop: due times after t0
    concurrency: int  # closed: connections; open: most connections
    keepalive: bool
    timeout: float
    warm: int  # keep-alive connections opened before t0
    latency_budget: float | None = None  # open loop: later answers are SLOW
    worker: int = 0
    workers: int = 1
    tls: TLSVerify | None = None  # None: plain HTTP
    #: Over TLS, the SNI of each connection group; a connection carries requests of its
    #: group only (the Host of its requests is the name its certificate was checked for).
    server_hostnames: tuple[str, ...] = ()
    #: The group of each spec (empty: every spec in group 0).
    spec_groups: tuple[int, ...] = ()


@dataclass
class _Result:
    columns: dict[str, npt.NDArray[Any]]
    backend_names: tuple[str, ...]
    instance_names: tuple[str, ...]
    replica_names: tuple[str, ...]
    path_names: tuple[str, ...]
    connections: int
    deadline_hit: bool
    t0: float
    sent: int
    finished: int
    errors: int
    #: Open loop: where the schedule was cut short (seconds after t0), None if it was not.
    cut_at: float | None = None


#: When an open-loop schedule may end early: polled, returns a monotonic instant or None.
UntilCallback = Callable[[], float | None]


@dataclass
class _Shared:
    """Where an engine reports progress: the user's callback (one process), or ``counts``
    (sent, finished, errors), which a worker process forwards to its parent; and ``until``,
    polled for an early end of the schedule."""

    callback: ProgressCallback | None = None
    counts: Callable[[int, int, int], None] | None = None
    total: int = 0
    until: UntilCallback | None = None


# ---------------------------------------------------------------------------------------------
# The engine: callbacks only, one event loop per process


class _Conn(asyncio.Protocol):
    """One connection; carries at most one request at a time (no pipelining)."""

    __slots__ = (
        "body",
        "due",
        "engine",
        "framed",
        "group",
        "headers_done",
        "j",
        "parser",
        "serial",
        "t_send",
        "task",
        "transport",
    )

    def __init__(self, engine: _Engine, serial: int, group: int) -> None:
        self.engine = engine
        self.serial = serial
        self.group = group  # the SNI group of the requests it carries
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.j = -1  # local index of the request in flight, -1 when none
        self.t_send = 0.0
        self.due = 0.0  # when the request in flight times out (its schedule plus the timeout)
        self.body = b""
        self.framed = False  # the response has Content-Length or Transfer-Encoding
        self.headers_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.engine.opened += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserCallbackError:
            raise  # a bug in the engine, not the peer's fault: let the run fail loudly
        except (HttpParserError, HttpParserUpgrade):
            # Not HTTP/1.x, or a switch of protocols nobody asked for.
            self.engine.fail(self, ErrorClass.PROTOCOL)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Only framing matters here: without it, the body runs until the peer closes.
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, chunk: bytes) -> None:
        if not self.body:
            self.body = chunk
        elif len(self.body) < BODY_CAP:
            self.body += chunk

    def on_message_complete(self) -> None:
        self.engine.complete(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.engine.lost(self, exc)


def _writable(column: npt.NDArray[Any]) -> Any:
    """A memoryview of ``column``: item assignment on it is ~2x faster than on the array."""
    return memoryview(cast(Any, column))


def _connect_error_class(exc: BaseException) -> ErrorClass:
    if isinstance(exc, ConnectionRefusedError):
        return ErrorClass.REFUSED
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, ConnectionError):
        return ErrorClass.RESET
    return ErrorClass.OTHER


class _Engine:
    """Runs one plan to completion, the deadline, or a bug; fills the local columns."""

    def __init__(
        self, plan: _Plan, deadline: float, shared: _Shared, clock: Callable[[], float]
    ) -> None:
        self.plan = plan
        self.t0 = 0.0  # set when sending starts
        self.deadline_s = deadline
        self.deadline = math.inf
        self.shared = shared
        self.clock = clock
        self.open_loop = plan.mode == "open"
        self.budget = plan.latency_budget
        # Open loop: a request still waiting for a connection this long after its scheduled
        # time can no longer be answered in time; it is recorded, not sent late.
        self.expire_after = plan.timeout if self.budget is None else self.budget
        self.expired_class = ErrorClass.TIMEOUT if self.budget is None else ErrorClass.SLOW
        self.keepalive = plan.keepalive
        self.requests = plan.requests
        self.n = len(plan.spec)
        # The plan's arrays become columns as they are: no second copy per request.
        given: dict[str, npt.NDArray[Any]] = {"spec": plan.spec}
        if plan.scheduled is not None:
            given["scheduled"] = plan.scheduled
        self.cols = empty_columns(self.n, given=given)
        c = self.cols
        self.m_sched = _writable(c["scheduled"])
        self.m_sent = _writable(c["sent"])
        self.m_lat = _writable(c["latency"])
        self.m_lag = _writable(c["lag"])
        self.m_status = _writable(c["status"])
        self.m_error = _writable(c["error"])
        self.m_backend = _writable(c["backend"])
        self.m_instance = _writable(c["instance"])
        self.m_replica = _writable(c["replica"])
        self.m_path = _writable(c["path"])
        self.m_spec = _writable(c["spec"])
        self.m_conn = _writable(c["conn"])
        self.backends = Interner()
        self.instances = Interner()
        self.replicas = Interner()
        self.paths = Interner(limit=2**32 - 1)
        self.body_cache: dict[bytes, tuple[int, int, int, int]] = {}
        self.next = 0  # closed: next index to take; open: next index to become due
        # Per SNI group (one without TLS or with one host): an HTTPS connection carries only
        # requests for the host it was opened for.
        groups = max(1, len(plan.server_hostnames))
        self.group_of = list(plan.spec_groups) or [0] * len(plan.requests)
        self.pending: list[deque[int]] = [deque() for _ in range(groups)]  # open loop: due
        self.idle: list[list[_Conn]] = [[] for _ in range(groups)]
        self.conns: set[_Conn] = set()  # connected or connecting
        self.serial = plan.worker  # connection serials: unique across workers
        self.opened = 0  # connections established
        self.in_flight = 0
        self.sent = 0
        self.finished = 0
        self.errors = 0
        self.deadline_hit = False
        self.cut_at: float | None = None
        self.stopped = False
        self.bug: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Future[None] | None = None
        self.timers: dict[str, asyncio.Handle] = {}
        self.sweep_interval = max(0.005, min(plan.timeout / 4, 0.05))
        self.last_progress = (0.0, 0)
        # Built here, in the process that connects (contexts do not pickle).
        self.ssl: ssl.SSLContext | None = None if plan.tls is None else plan.tls.context()

    # -- running -----------------------------------------------------------------------------

    async def run(self, start: Callable[[], float]) -> _Result:
        """Open the warm connections, call ``start`` (which returns t0, perhaps after waiting
        for the other workers), then send until done or the deadline (t0 + deadline)."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.done = loop.create_future()
        loop.set_exception_handler(self._on_loop_error)
        try:
            if self.keepalive and self.plan.warm > 0:
                await self._warm(min(self.plan.warm, self.n))
            self.t0 = start()
            self.deadline = self.t0 + self.deadline_s
            now = self.clock()
            self.last_progress = (now, 0)
            self.timers["deadline"] = loop.call_later(self.deadline - now, self._on_deadline)
            self.timers["sweep"] = loop.call_later(self.sweep_interval, self._sweep)
            if self.open_loop:
                self._tick()
            else:
                self._start_closed_loop(now)
            await self.done
        finally:
            self._shutdown()
            # Let transports deliver connection_lost before the loop closes.
            await asyncio.sleep(0)
        if self.bug is not None:
            raise self.bug
        self._report(self.clock(), final=True)
        return _Result(
            columns=self.cols,
            backend_names=self.backends.decoded(),
            instance_names=self.instances.decoded(),
            replica_names=self.replicas.decoded(),
            path_names=self.paths.decoded(),
            connections=self.opened,
            deadline_hit=self.deadline_hit,
            t0=self.t0,
            sent=self.sent,
            finished=self.finished,
            errors=self.errors,
            cut_at=self.cut_at,
        )

    async def _warm(self, count: int) -> None:
        """Connect ``count`` keep-alive connections before the clock starts, so that the first
        requests do not all pay for (and queue behind) connection set-up. A target that does
        not accept them is not an error here: the requests will record what happens."""
        host, port = self.plan.host, self.plan.port
        groups = len(self.idle)
        conns = [self._new_conn(i % groups) for i in range(count)]
        for conn in conns:
            self.conns.add(conn)

        async def connect(conn: _Conn) -> None:
            await self._create_connection(conn, host, port)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(connect(c) for c in conns), return_exceptions=True),
                self.plan.timeout,
            )
        for conn in conns:
            if conn.transport is not None and conn in self.conns:
                self.idle[conn.group].append(conn)
            else:
                self._discard(conn, abort=True)

    def _start_closed_loop(self, now: float) -> None:
        for _ in range(min(self.plan.concurrency, self.n)):
            j = self._take(now)
            if j < 0:
                break
            idle = self.idle[self._group(j)]
            if idle:
                self._send(idle.pop(), j, now)
            else:
                self._open(j, now)
        self._close_idle()  # more warm connections than requests

    def _close_idle(self) -> None:
        for idle in self.idle:
            for conn in idle:
                self._discard(conn)
            idle.clear()

    def _group(self, j: int) -> int:
        group: int = self.group_of[self.m_spec[j]]
        return group

    def _new_conn(self, group: int) -> _Conn:
        conn = _Conn(self, self.serial, group)
        self.serial += self.plan.workers
        return conn

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError | asyncio.CancelledError):
            return  # a transport's socket error: connection_lost reports it to us
        if self.bug is None:
            self.bug = exc if isinstance(exc, BaseException) else RuntimeError(str(context))
        self._finish()

    def _finish(self) -> None:
        self.stopped = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _shutdown(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        for conn in list(self.conns):
            self._discard(conn, abort=True)
        for idle in self.idle:
            idle.clear()

    def _on_deadline(self) -> None:
        now = self.clock()
        self.deadline_hit = True
        self.stopped = True
        for conn in list(self.conns):
            if conn.j >= 0:
                self._record_error(conn, ErrorClass.ABORTED, now)
            self._discard(conn, abort=True)
        self._finish()

    def _sweep(self) -> None:
        now = self.clock()
        # Deadlines count from the schedule: waiting for a connection, being written and
        # awaiting the answer all use up the same timeout.
        for conn in [c for c in self.conns if c.j >= 0 and c.due < now]:
            self._record_error(conn, ErrorClass.TIMEOUT, now)
            self._discard(conn, abort=True)
            self._next_new(now)
        if any(self.pending):
            limit = now - self.t0 - self.expire_after
            sched = self.m_sched
            for pending in self.pending:
                while pending and sched[pending[0]] < limit:
                    self._expire(pending.popleft())
            self._maybe_done()
        if self.open_loop and self.cut_at is None and self.shared.until is not None:
            end = self.shared.until()
            if end is not None:
                self._cut(end)
        self._report(now)
        if not self.stopped:
            assert self.loop is not None
            self.timers["sweep"] = self.loop.call_later(self.sweep_interval, self._sweep)

    def _cut(self, end: float) -> None:
        """Open loop: the schedule ends at ``end`` (monotonic). Requests due from then on are
        not sent (those already under way when this is learnt are kept)."""
        self.cut_at = end - self.t0
        cut = int(np.searchsorted(self.cols["scheduled"], self.cut_at, side="left"))
        self.n = max(self.next, min(self.n, cut))
        self._maybe_done()

    def _report(self, now: float, *, final: bool = False) -> None:
        last_t, last_finished = self.last_progress
        if not final and now - last_t < PROGRESS_INTERVAL:
            return
        shared = self.shared
        if shared.counts is not None:
            shared.counts(self.sent, self.finished, self.errors)
        if shared.callback is not None:
            rate = (self.finished - last_finished) / (now - last_t) if now > last_t else 0.0
            shared.callback(
                Progress(
                    elapsed=now - self.t0,
                    total=shared.total,
                    sent=self.sent,
                    finished=self.finished,
                    errors=self.errors,
                    rate=rate,
                )
            )
        self.last_progress = (now, self.finished)

    # -- scheduling ----------------------------------------------------------------------------

    def _tick(self) -> None:
        """Open loop: hand every request that is due to a connection, then sleep until the next."""
        if self.stopped:
            return
        assert self.loop is not None
        now = self.clock()
        rel = now - self.t0
        sched = self.m_sched
        n = self.n
        j = self.next
        # At most a few hundred per tick, so a sender that fell behind still reads responses.
        stop = min(n, j + 512)
        t0 = self.t0
        while j < stop and sched[j] <= rel:
            self.next = j + 1
            self._dispatch(j, t0 + sched[j])
            j += 1
        if j >= n:
            self._maybe_done()
            return
        wait = sched[j] - (self.clock() - self.t0)
        if wait <= 0:
            self.timers["tick"] = self.loop.call_soon(self._tick)
        else:
            # Event loop timers tick in milliseconds; a shorter wait would spin the loop (and
            # take CPU from the proxy under test). Sends are never early, at most ~1 ms late.
            self.timers["tick"] = self.loop.call_later(max(wait, TICK), self._tick)

    def _dispatch(self, j: int, ready: float) -> None:
        """Open loop: request ``j`` is due (at ``ready``): send it, or queue it for a
        connection."""
        group = self.group_of[self.m_spec[j]]
        idle = self.idle[group]
        if idle:
            self._send(idle.pop(), j, ready)
        elif len(self.conns) < self.plan.concurrency:
            self._open(j, ready)
        elif parked := next((other for other in self.idle if other), None):
            # Every connection is taken, some by idle ones for another host: one makes room.
            self._discard(parked.pop())
            self._open(j, ready)
        else:
            self.pending[group].append(j)

    def _take(self, now: float) -> int:
        """The next request for a free connection (open loop: the longest-waiting one of any
        group), or -1."""
        if self.stopped:
            return -1
        if self.open_loop:
            limit = now - self.t0 - self.expire_after
            sched = self.m_sched
            first: deque[int] | None = None
            for pending in self.pending:
                while pending and sched[pending[0]] < limit:
                    self._expire(pending.popleft())
                if pending and (first is None or sched[pending[0]] < sched[first[0]]):
                    first = pending
            return -1 if first is None else first.popleft()
        j = self.next
        if j >= self.n:
            return -1
        self.next = j + 1
        self.m_sched[j] = now - self.t0
        return j

    def _maybe_done(self) -> None:
        if self.in_flight == 0 and self.next >= self.n and not any(self.pending):
            self._finish()

    def _next_on(self, conn: _Conn, now: float) -> None:
        """``conn`` is free and reusable: give it the next request (on a new connection when
        that request is for another host), or park or close it."""
        j = self._take(now)
        if j >= 0:
            if self._group(j) == conn.group:
                self._send(conn, j, now)
            else:
                self._discard(conn)
                self._open(j, now)
        elif self.open_loop and not self.stopped:
            self.idle[conn.group].append(conn)
            self._maybe_done()
        else:
            self._discard(conn)
            self._maybe_done()

    def _next_new(self, now: float) -> None:
        """A connection went away: start the next request on a new one, if there is one."""
        j = self._take(now)
        if j >= 0:
            self._open(j, now)
        else:
            self._maybe_done()

    def _start(self, conn: _Conn, j: int, ready: float) -> None:
        """Request ``j`` goes out on ``conn`` now. ``ready``: when it could have gone out at
        the earliest (its scheduled time, or when a connection became free for it); the
        sender's own lateness is measured against it here, when the request is written (or its
        connection started), not when it was taken from the schedule."""
        now = self.clock()
        conn.j = j
        conn.t_send = now
        conn.due = self.t0 + self.m_sched[j] + self.plan.timeout
        self.m_sent[j] = now - self.t0
        self.m_lag[j] = now - ready
        self.m_conn[j] = conn.serial
        self.in_flight += 1
        self.sent += 1

    def _send(self, conn: _Conn, j: int, ready: float) -> None:
        self._start(conn, j, ready)
        assert conn.transport is not None
        conn.transport.write(self.requests[self.m_spec[j]])

    def _open(self, j: int, ready: float) -> None:
        assert self.loop is not None
        conn = self._new_conn(self._group(j))
        self._start(conn, j, ready)
        self.conns.add(conn)
        conn.task = self.loop.create_task(self._connect(conn))

    def _expire(self, j: int) -> None:
        """Open loop: request ``j`` waited for a connection past its latency budget (SLOW) or
        its timeout (TIMEOUT); it is recorded unsent (status 0)."""
        self.finished += 1
        self.errors += 1
        self.m_error[j] = self.expired_class

    async def _create_connection(self, conn: _Conn, host: str, port: int) -> None:
        assert self.loop is not None
        if self.ssl is None:
            await self.loop.create_connection(lambda: conn, host, port)
        else:
            await self.loop.create_connection(
                lambda: conn,
                host,
                port,
                ssl=self.ssl,
                server_hostname=self.plan.server_hostnames[conn.group],
                ssl_handshake_timeout=self.plan.timeout,
            )

    async def _connect(self, conn: _Conn) -> None:
        assert self.loop is not None
        try:
            await self._create_connection(conn, self.plan.host, self.plan.port)
        except asyncio.CancelledError:
            return  # the sweep (timeout) or the deadline cancelled it and recorded why
        except OSError as exc:
            conn.task = None
            self.conns.discard(conn)
            if conn.j >= 0:
                self._record_error(conn, _connect_error_class(exc), self.clock())
                self._next_new(self.clock())
            return
        conn.task = None
        if conn.j < 0 or self.stopped or conn.transport is None:
            self._discard(conn)
            return
        conn.transport.write(self.requests[self.m_spec[conn.j]])

    # -- outcomes ----------------------------------------------------------------------------

    def complete(self, conn: _Conn) -> None:
        """A complete response arrived on ``conn``."""
        j = conn.j
        if j < 0:  # a response nobody asked for: the peer is confused; drop the connection
            self._discard(conn, abort=True)
            return
        status = conn.parser.get_status_code()
        if status < 200:
            if status == 101:  # switched protocols, unasked: no HTTP answer will come
                self.fail(conn, ErrorClass.PROTOCOL)
                return
            # Informational (103 Early Hints, ...): the final answer follows on this connection.
            conn.body = b""
            conn.framed = conn.headers_done = False
            return
        now = self.clock()
        conn.j = -1
        self.in_flight -= 1
        self.finished += 1
        self.m_lat[j] = now - conn.t_send
        self.m_status[j] = status
        if self.budget is not None and now - self.t0 - self.m_sched[j] > self.budget:
            # A complete answer, too late: status and identity are kept, the class says slow.
            self.m_error[j] = ErrorClass.SLOW
            self.errors += 1
        else:
            self.m_error[j] = 0
        body = conn.body
        if body:
            conn.body = b""
            ids = self.body_cache.get(body)
            if ids is None:
                ids = self._classify(body)
            backend, instance, path, replica = ids
            self.m_backend[j] = backend
            self.m_instance[j] = instance
            self.m_path[j] = path
            self.m_replica[j] = replica
        conn.framed = conn.headers_done = False
        if self.keepalive and conn.parser.should_keep_alive():
            self._next_on(conn, now)
        else:
            self._discard(conn)
            self._next_new(now)

    def _classify(self, body: bytes) -> tuple[int, int, int, int]:
        name, hostname, path, replica = whoami_fields(body)
        ids = (
            self.backends(name),
            self.instances(hostname),
            self.paths(path),
            self.replicas(replica),
        )
        if len(self.body_cache) >= BODY_CACHE_MAX:
            self.body_cache.clear()
        self.body_cache[body] = ids
        return ids

    def fail(self, conn: _Conn, error: ErrorClass) -> None:
        """The peer broke the protocol on ``conn``."""
        self._discard(conn, abort=True)
        if conn.j >= 0:  # else its request is recorded already, and its successor started
            now = self.clock()
            self._record_error(conn, error, now)
            self._next_new(now)

    def lost(self, conn: _Conn, exc: Exception | None) -> None:
        self.conns.discard(conn)
        conn.transport = None
        if conn.j < 0:
            idle = self.idle[conn.group]
            if conn in idle:
                idle.remove(conn)
            return
        if exc is None and conn.headers_done and not conn.framed:
            # A body delimited by the end of the connection: that end completes it.
            self.complete(conn)
            return
        now = self.clock()
        self._record_error(conn, ErrorClass.RESET, now)
        self._next_new(now)

    def _record_error(self, conn: _Conn, error: ErrorClass, now: float) -> None:
        j = conn.j
        conn.j = -1
        self.in_flight -= 1
        self.finished += 1
        self.errors += 1
        self.m_lat[j] = now - conn.t_send
        self.m_error[j] = error
        self.m_status[j] = conn.parser.get_status_code() if conn.headers_done else 0

    def _discard(self, conn: _Conn, *, abort: bool = False) -> None:
        """Close ``conn`` for good (its request, if any, must already be recorded).

        ``abort`` (timeouts, protocol errors, the deadline) resets the connection instead of
        closing it politely: nothing more is wanted from that peer.
        """
        self.conns.discard(conn)
        if conn.task is not None:
            conn.task.cancel()
            conn.task = None
        if conn.transport is not None:
            if abort:
                conn.transport.abort()
            else:
                conn.transport.close()
            conn.transport = None


# ---------------------------------------------------------------------------------------------
# Running a plan in this process or in several


def _new_loop() -> asyncio.AbstractEventLoop:
    if _uvloop_new_loop is not None:
        return _uvloop_new_loop()
    return asyncio.new_event_loop()


def _run_engine(
    plan: _Plan, deadline: float, shared: _Shared, start: Callable[[], float] = time.monotonic
) -> _Result:
    engine = _Engine(plan, deadline, shared, time.monotonic)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        return runner.run(engine.run(start))


def _run_here(plan: _Plan, deadline: float, shared: _Shared) -> _Result:
    """Run on a fresh event loop; in a helper thread if this thread already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        return _run_engine(plan, deadline, shared)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="traffic") as pool:
        return pool.submit(_run_engine, plan, deadline, shared).result()


# Worker processes are started with harness.procs.spawn (own session, die with the parent) and
# talk to the parent over one loopback TCP connection: length-prefixed pickles. The parent
# listens, each child connects and proves it is one of ours with a random token from its
# command line; only then does the parent send a plan or read anything from it. A worker runs
# one plan after another (``("run", plan, deadline)``) until told ``("stop",)`` or its parent
# goes away: a SenderPool keeps them for several runs.

_LEN = struct.Struct("!Q")
_WORKER_CODE = "from harness.traffic.engine import _worker_main; _worker_main()"


def _send_msg(sock: socket.socket, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv_msg(sock: socket.socket) -> Any:
    (size,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    return pickle.loads(_recv_exact(sock, size))


def _worker_main() -> None:  # pragma: no cover - runs in a worker process (multi-process tests)
    """Entry point of a worker process: ``python -c ... HOST:PORT TOKEN``."""
    host, _, port = sys.argv[1].rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=WORKER_START_TIMEOUT)
    sock.sendall(sys.argv[2].encode("ascii") + b"\n")
    try:
        while True:
            sock.settimeout(None)  # idle between runs: until the parent sends or goes away
            try:
                message = _recv_msg(sock)
            except EOFError:
                return
            if message[0] == "stop":
                return
            if message[0] == "run":
                _worker_run(sock, message[1], message[2])
            # else: an "until" for a run that had ended already
    finally:
        sock.close()


def _worker_run(sock: socket.socket, plan: _Plan, deadline: float) -> None:  # pragma: no cover
    """One run in a worker process; its result (or error) goes to the parent."""

    def wait_for_go() -> float:
        # Called once the warm connections are open: all workers share one t0.
        _send_msg(sock, ("ready",))
        _, t0 = _recv_msg(sock)
        return float(t0)

    def counts(sent: int, finished: int, errors: int) -> None:
        _send_msg(sock, ("progress", sent, finished, errors))

    def until() -> float | None:
        # The parent writes nothing else once the run has started.
        if not select.select([sock], [], [], 0)[0]:
            return None
        message = _recv_msg(sock)
        return float(message[1]) if message[0] == "until" else None

    try:
        result = _run_engine(plan, deadline, _Shared(counts=counts, until=until), wait_for_go)
    except BaseException as exc:
        _send_msg(sock, ("error", "".join(traceback.format_exception(exc))))
        raise
    _send_msg(sock, ("ok", result))


def _accept_worker(
    listener: socket.socket, token: bytes, children: list[subprocess.Popen[bytes]], give_up: float
) -> socket.socket:
    """The next child's connection, once it has shown the token; fails fast if a child died."""
    while True:
        for child in children:
            if child.poll() is not None:
                raise RuntimeError(
                    f"traffic worker (pid {child.pid}) exited with status {child.returncode} "
                    "before it started; its error is on stderr above"
                )
        if time.monotonic() > give_up:
            raise RuntimeError(f"traffic workers did not start within {WORKER_START_TIMEOUT:g} s")
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            continue
        sock.settimeout(5.0)
        try:
            line = b""
            while not line.endswith(b"\n") and len(line) <= len(token):
                chunk = sock.recv(len(token) + 1 - len(line))
                if not chunk:
                    break
                line += chunk
        except OSError:
            line = b""
        if line == token + b"\n":
            sock.settimeout(WORKER_START_TIMEOUT)
            return sock
        sock.close()  # not one of ours


class SenderPool:
    """``size`` sender worker processes kept for several multi-process runs (pass it as
    ``pool`` to :func:`run_open_loop` or :func:`run_closed_loop` with ``processes=size``), so a
    run does not pay for starting them (a Python process and its imports, 0.2-0.4 s on this
    machine, more under load). Started on first use or by :meth:`start`, stopped by
    :meth:`close` (a context manager closes it on exit, also on failure and Ctrl-C). A run that
    fails stops the workers; the next run starts new ones.

    The workers die with the thread that started them (``PR_SET_PDEATHSIG``): start and use a
    pool from a thread that outlives it. Not for two runs at once.
    """

    def __init__(self, size: int) -> None:
        _check_positive("processes", size, integer=True, upper=MAX_PROCESSES)
        self.size = size
        self.children: list[subprocess.Popen[bytes]] = []
        self._socks: list[socket.socket] = []
        #: How many times workers were started (benchmarks, tests).
        self.starts = 0

    def start(self) -> SenderPool:
        """Start the workers unless they run already."""
        if self._socks and all(c.poll() is None for c in self.children):
            return self
        self.close()
        token = secrets.token_hex(16).encode("ascii")
        # The children import this package: make sure they find the same copy as we did.
        env = procs.python_child_env()
        try:
            with socket.create_server((LOOPBACK, 0)) as listener:
                listener.settimeout(0.1)
                address = f"{LOOPBACK}:{listener.getsockname()[1]}"
                for _ in range(self.size):
                    argv = [sys.executable, "-c", _WORKER_CODE, address, token.decode("ascii")]
                    self.children.append(procs.spawn(argv, env=env))
                give_up = time.monotonic() + WORKER_START_TIMEOUT
                for _ in range(self.size):
                    self._socks.append(_accept_worker(listener, token, self.children, give_up))
        except BaseException:
            self.close()
            raise
        self.starts += 1
        return self

    def close(self) -> None:
        """Tell the workers to stop and make sure they did. Idempotent."""
        socks, children = self._socks, self.children
        self._socks, self.children = [], []
        for sock in socks:
            with contextlib.suppress(OSError):
                _send_msg(sock, ("stop",))
            sock.close()
        for child in children:
            procs.stop(child, grace=2.0)

    def __enter__(self) -> SenderPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        plans: list[_Plan],
        deadline: float,
        total: int,
        callback: ProgressCallback | None,
        until: UntilCallback | None = None,
    ) -> tuple[float, list[_Result]]:
        """Run each plan on its own worker; return the shared t0 and the results in plan
        order."""
        if len(plans) != self.size:
            raise ConfigError(f"a pool of {self.size} senders cannot run {len(plans)} plans")
        self.start()
        try:
            socks = self._socks
            for sock, plan in zip(socks, plans, strict=True):
                _send_msg(sock, ("run", plan, deadline))
            # Starting the workers (and their warm connections) is bounded on its own; the
            # deadline counts from t0, as in a single process.
            for k, sock in enumerate(socks):
                if _recv_msg(sock) != ("ready",):
                    raise RuntimeError(f"traffic worker {k} did not get ready")
            t0 = time.monotonic() + 0.01
            for sock in socks:
                _send_msg(sock, ("go", t0))
            results = _collect(
                socks,
                self.children,
                t0=t0,
                hard_stop=t0 + deadline + 10.0,
                total=total,
                callback=callback,
                until=until,
            )
        except BaseException:
            self.close()  # a worker may be mid-run: none is trusted with the next one
            raise
        return t0, results


def _collect(
    socks: list[socket.socket],
    children: list[subprocess.Popen[bytes]],
    *,
    t0: float,
    hard_stop: float,
    total: int,
    callback: ProgressCallback | None,
    until: UntilCallback | None = None,
) -> list[_Result]:
    """Read progress and results from the workers until each has sent its result; tell them
    when ``until`` says the schedule ends."""
    results: dict[int, _Result] = {}
    counts = [(0, 0, 0)] * len(socks)
    waiting = {sock.fileno(): k for k, sock in enumerate(socks)}
    last = (t0, 0)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while waiting:
            if time.monotonic() > hard_stop:
                raise RuntimeError("traffic workers did not finish 10 s after the deadline")
            for key, _ in selector.select(PROGRESS_INTERVAL):
                k = waiting[key.fd]
                sock = socks[k]
                try:
                    message = _recv_msg(sock)
                except (EOFError, OSError):
                    status = children[k].wait(timeout=5)
                    raise RuntimeError(
                        f"traffic worker {k} died (exit status {status}) without results"
                    ) from None
                if message[0] == "progress":
                    counts[k] = message[1:]
                elif message[0] == "ok":
                    results[k] = message[1]
                    counts[k] = (results[k].sent, results[k].finished, results[k].errors)
                    selector.unregister(sock)
                    del waiting[key.fd]
                else:
                    raise RuntimeError(f"traffic worker {k} failed:\n{message[1]}")
            if until is not None:
                end = until()
                if end is not None:
                    until = None
                    for k in waiting.values():
                        with contextlib.suppress(OSError):  # it may have finished meanwhile
                            _send_msg(socks[k], ("until", end))
            now = time.monotonic()
            if callback is not None and (now - last[0] >= PROGRESS_INTERVAL or not waiting):
                sent, finished, errors = (sum(c[i] for c in counts) for i in range(3))
                rate = (finished - last[1]) / (now - last[0]) if now > last[0] else 0.0
                callback(Progress(now - t0, total, sent, finished, errors, rate))
                last = (now, finished)
    return [results[k] for k in range(len(socks))]


def _cut_columns(cols: dict[str, npt.NDArray[Any]], cut_at: float) -> dict[str, npt.NDArray[Any]]:
    """The records of a schedule cut short at ``cut_at``: the requests due before it, and any
    due later that a worker had already taken (every one of those is recorded)."""
    keep = int(np.searchsorted(cols["scheduled"], cut_at, side="left"))
    taken = np.flatnonzero(cols["error"] != ErrorClass.NOT_SENT)
    if taken.size:
        keep = max(keep, int(taken[-1]) + 1)
    return {name: column[:keep].copy() for name, column in cols.items()}


def _merge(
    results: list[_Result], total: int
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, tuple[str, ...]]]:
    """Interleave per-worker columns (worker k did requests k, k+P, ...) and merge name tables.

    Column by column, dropping each worker's copy once merged, so the peak stays near one
    set of columns plus one column.
    """
    table_of = {
        "backend": "backend_names",
        "instance": "instance_names",
        "replica": "replica_names",
        "path": "path_names",
    }
    if len(results) == 1:
        r = results[0]
        return r.columns, {t: getattr(r, t) for t in table_of.values()}
    workers = len(results)
    merged = {t: [""] for t in table_of.values()}
    remaps: dict[tuple[int, str], npt.NDArray[np.int64]] = {}
    for table in table_of.values():
        index = {"": 0}
        for k, r in enumerate(results):
            local: tuple[str, ...] = getattr(r, table)
            remap = np.empty(len(local), np.int64)
            for i, name in enumerate(local):
                if name not in index:
                    index[name] = len(merged[table])
                    merged[table].append(name)
                remap[i] = index[name]
            remaps[k, table] = remap
    cols: dict[str, npt.NDArray[Any]] = {}
    for col, dtype in COLUMNS.items():
        out = np.empty(total, dtype)  # every index belongs to exactly one worker
        for k, r in enumerate(results):
            values = r.columns.pop(col)
            interned = table_of.get(col)
            out[k::workers] = remaps[k, interned][values] if interned is not None else values
        cols[col] = out
    return cols, {t: tuple(v) for t, v in merged.items()}


# ---------------------------------------------------------------------------------------------
# Public entry points


def _check_positive(
    name: str, value: float, *, integer: bool = False, upper: float | None = None
) -> None:
    if integer and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"`{name}` must be an integer, got {value!r}")
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"`{name}` must be a positive number, got {value!r}")
    if upper is not None and value > upper:
        raise ConfigError(f"`{name}` is {value!r}; at most {upper:g} is supported")


def _normalize_specs(specs: Sequence[RequestSpec | str]) -> list[RequestSpec]:
    if isinstance(specs, str | RequestSpec):
        raise ConfigError("`specs` must be a sequence of RequestSpec (or paths), not a single one")
    out = [RequestSpec(path=s) if isinstance(s, str) else s for s in specs]
    if not out:
        raise ConfigError("`specs` is empty: give at least one request to send")
    for i, spec in enumerate(out):
        if not isinstance(spec, RequestSpec):
            raise ConfigError(f"specs[{i}] is a {type(spec).__name__}, not a RequestSpec or path")
        spec.validate(f"specs[{i}]")
    return out


def spec_order(
    nspecs: int,
    total: int,
    *,
    weights: Sequence[float] | None = None,
    sequence: Sequence[int] | None = None,
    seed: int = 0,
) -> npt.NDArray[np.uint32]:
    """Which spec each request uses: round-robin by default, else drawn with ``weights``
    (seeded: the same seed gives the same order), else ``sequence`` repeated."""
    if weights is not None and sequence is not None:
        raise ConfigError("give `weights` or `sequence`, not both")
    out = np.empty(total, np.uint32)
    if sequence is not None:
        seq = np.asarray(sequence, dtype=np.int64)
        if seq.ndim != 1 or seq.size == 0:
            raise ConfigError("`sequence` must be a non-empty list of spec indices")
        if seq.min() < 0 or seq.max() >= nspecs:
            raise ConfigError(f"`sequence` holds indices outside 0..{nspecs - 1} (one per spec)")
        for start, stop in _chunks(total):
            out[start:stop] = seq[np.arange(start, stop) % seq.size]
        return out
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (nspecs,):
            raise ConfigError(f"`weights` has {w.size} entries for {nspecs} specs")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"`weights` must be finite, non-negative and not all zero: {weights}")
        rng = np.random.default_rng(seed)
        for start, stop in _chunks(total):
            out[start:stop] = rng.choice(nspecs, size=stop - start, p=w / w.sum())
        return out
    for start, stop in _chunks(total):
        out[start:stop] = np.arange(start, stop) % nspecs
    return out


def _chunks(total: int, size: int = 1 << 20) -> Iterator[tuple[int, int]]:
    """(start, stop) pairs covering range(total): big arrays are filled in pieces, so the
    temporaries stay small (the memory budget is per recorded request)."""
    for start in range(0, total, size):
        yield start, min(total, start + size)


def _server_hostnames(
    target: ProxyAddress, specs: Sequence[RequestSpec]
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The SNIs of an HTTPS run and each spec's group: the Host of its requests (a
    certificate is chosen by it; a port is dropped), or the URL's host when they set none."""
    names: dict[str, int] = {}
    groups = tuple(
        names.setdefault(s.host.rsplit(":", 1)[0] if s.host else target.name, len(names))
        for s in specs
    )
    return tuple(names), groups


def _execute(
    *,
    mode: str,
    url: str,
    specs: Sequence[RequestSpec | str],
    total: int,
    scheduled: npt.NDArray[np.float64] | None,
    connections: int,
    warm: int,
    processes: int,
    keepalive: bool,
    timeout: float,
    deadline: float,
    weights: Sequence[float] | None,
    sequence: Sequence[int] | None,
    seed: int,
    progress: ProgressCallback | None,
    meta: dict[str, Any],
    latency_budget: float | None = None,
    until: UntilCallback | None = None,
    tls: TLSVerify | None = None,
    pool: SenderPool | None = None,
) -> Samples:
    target = traffic_target(url)
    spec_list = _normalize_specs(specs)
    server_hostnames, spec_groups = (
        _server_hostnames(target, spec_list) if target.https else ((), ())
    )
    _check_positive("processes", processes, integer=True, upper=MAX_PROCESSES)
    _check_positive("timeout", timeout)
    _check_positive("deadline", deadline)
    order = spec_order(len(spec_list), total, weights=weights, sequence=sequence, seed=seed)
    requests = [s.encode(target.netloc, close=not keepalive) for s in spec_list]
    processes = min(processes, total)
    per_worker = max(1, math.ceil(connections / processes))
    plans = [
        _Plan(
            mode=mode,
            host=target.host,
            port=target.port,
            requests=requests,
            spec=np.ascontiguousarray(order[k::processes]),
            scheduled=None if scheduled is None else np.ascontiguousarray(scheduled[k::processes]),
            concurrency=per_worker,
            keepalive=keepalive,
            timeout=timeout,
            warm=math.ceil(warm / processes),
            latency_budget=latency_budget,
            worker=k,
            workers=processes,
            tls=(tls or TLSVerify()) if target.https else None,
            server_hostnames=server_hostnames,
            spec_groups=spec_groups,
        )
        for k in range(processes)
    ]
    if processes == 1:
        shared = _Shared(callback=progress, total=total, until=until)
        results = [_run_here(plans[0], deadline, shared)]
        t0 = results[0].t0
    elif pool is not None and pool.size == processes:
        t0, results = pool.run(plans, deadline, total, progress, until)
    else:
        with SenderPool(processes) as own:
            t0, results = own.run(plans, deadline, total, progress, until)
    del plans  # their arrays are the columns now (one process) or copies held by workers
    wall_t0 = time.time() - (time.monotonic() - t0)
    cols, tables = _merge(results, total)
    cuts = [r.cut_at for r in results if r.cut_at is not None]
    if cuts:
        cols = _cut_columns(cols, max(cuts))
        meta = {**meta, "scheduled_total": total, "cut_at_s": max(cuts)}
        total = len(cols["error"])
    return Samples(
        columns=cols,
        spec_labels=tuple(s.label() for s in spec_list),
        t0_monotonic=t0,
        t0_wall=wall_t0,
        meta={
            **meta,
            "mode": mode,
            "url": url,
            "total": total,
            "processes": processes,
            "keepalive": keepalive,
            "timeout_s": timeout,
            "deadline_s": deadline,
            "deadline_hit": any(r.deadline_hit for r in results),
            "connections_opened": sum(r.connections for r in results),
            "tls": None
            if not server_hostnames
            else {"sni": list(server_hostnames), "verify": (tls or TLSVerify()).describe()},
            "engine": "uvloop+httptools" if _uvloop_new_loop else "asyncio+httptools",
        },
        **tables,
    )


def run_closed_loop(
    url: str,
    specs: Sequence[RequestSpec | str],
    *,
    total: int,
    concurrency: int = 64,
    processes: int = 1,
    keepalive: bool = True,
    timeout: float = 5.0,
    deadline: float = 60.0,
    weights: Sequence[float] | None = None,
    sequence: Sequence[int] | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    tls: TLSVerify | None = None,
    pool: SenderPool | None = None,
) -> Samples:
    """Send ``total`` requests over ``concurrency`` connections, each as soon as one finishes.

    ``url`` is the proxy's base URL (``http(s)://HOST[:PORT]``, any address; over HTTPS the
    certificate is checked as ``tls`` says, default the system's CAs); ``specs`` are the
    requests, used round-robin, or drawn with ``weights``, or in the order of ``sequence`` (spec
    indices, repeated). ``keepalive=False`` opens a new connection for every request (and sends
    ``Connection: close``). ``timeout`` bounds each request (connect included); ``deadline``
    bounds the whole run, in seconds from the first send (starting worker processes is bounded
    apart). ``processes`` > 1 splits the requests across worker processes (request i goes to
    worker i mod processes) and merges their records; they are started for the run and stopped
    after it, or taken from ``pool`` (a :class:`SenderPool` of that many: kept for the next
    run). ``progress`` is called about 4 times a second.
    Every request is in the result exactly once.
    """
    _check_positive("total", total, integer=True, upper=MAX_TOTAL)
    _check_positive("concurrency", concurrency, integer=True, upper=MAX_CONNECTIONS)
    return _execute(
        mode="closed",
        url=url,
        specs=specs,
        total=total,
        scheduled=None,
        connections=concurrency,
        warm=concurrency,
        processes=processes,
        keepalive=keepalive,
        timeout=timeout,
        deadline=deadline,
        weights=weights,
        sequence=sequence,
        seed=seed,
        progress=progress,
        meta={"concurrency": concurrency},
        tls=tls,
        pool=pool,
    )


def run_open_loop(
    url: str,
    specs: Sequence[RequestSpec | str],
    *,
    rate: float,
    duration: float | None = None,
    total: int | None = None,
    max_connections: int = 128,
    warm_connections: int | None = None,
    processes: int = 1,
    keepalive: bool = True,
    timeout: float = 2.0,
    latency_budget: float | None = None,
    deadline: float | None = None,
    weights: Sequence[float] | None = None,
    sequence: Sequence[int] | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    until: UntilCallback | None = None,
    tls: TLSVerify | None = None,
    pool: SenderPool | None = None,
) -> Samples:
    """Send request i at ``t0 + i / rate`` regardless of earlier responses; record each against
    its scheduled time.

    ``until`` ends the schedule early: polled every few tens of milliseconds (a quarter second
    with several processes); once it returns a monotonic instant, requests due from then on are
    not part of the run (the result holds those due before it, and any already taken when the
    end was learnt; ``meta`` says ``cut_at_s`` and ``scheduled_total``). ``duration`` or
    ``total`` is then the longest the run may be.

    Every request's ``timeout`` counts from its scheduled time, whether it waits for a free
    connection, is being written or awaits its answer. With ``latency_budget`` (seconds, at most
    ``timeout``), a complete answer that came later than that after the scheduled time is
    recorded as ``SLOW`` (its status and backend kept), and a request still waiting for a
    connection by then is recorded as ``SLOW`` without being sent (it can no longer be on
    time; sending it would only delay the requests behind it). Without a budget, a request that
    waits for a connection until its timeout is recorded as ``TIMEOUT``, unsent.

    Give ``duration`` (seconds) or ``total`` (requests). A due request goes out on an idle
    keep-alive connection, else on a new connection while fewer than ``max_connections`` are
    open, else it waits for the next free one (that wait shows in ``sent - scheduled``; the
    sender's own lateness, measured when it is written, in the ``lag`` column). The default
    of 128 is deliberate: with 512, a brief stall of Traefik at 8,000/s made the sender open
    hundreds of connections at once, which took enough CPU to push its own p99 lag from 2 ms to
    10-40 ms. With keep-alive,
    ``warm_connections`` are opened before the clock starts (default: enough for 5 ms of
    requests), so the first requests do not queue behind connection set-up. ``deadline``
    defaults to the schedule's length plus ``timeout`` plus 2 s. Other arguments as for
    :func:`run_closed_loop`.
    """
    _check_positive("rate", rate, upper=10_000_000)
    if (duration is None) == (total is None):
        raise ConfigError("give exactly one of `duration` (seconds) and `total` (requests)")
    if duration is not None:
        _check_positive("duration", duration)
        total = max(1, round(duration * rate))
    assert total is not None
    _check_positive("total", total, integer=True, upper=MAX_TOTAL)
    _check_positive("max_connections", max_connections, integer=True, upper=MAX_CONNECTIONS)
    if latency_budget is not None:
        _check_positive("latency_budget", latency_budget, upper=timeout)
    if warm_connections is None:
        warm_connections = max(2, math.ceil(rate * 0.005))
    elif not isinstance(warm_connections, int) or warm_connections < 0:
        raise ConfigError(f"`warm_connections` must be an integer >= 0, got {warm_connections!r}")
    warm_connections = min(warm_connections, max_connections)
    span = total / rate
    if deadline is None:
        deadline = span + timeout + 2.0
    elif deadline <= span:
        raise ConfigError(
            f"`deadline` {deadline:g} s ends before the schedule does ({total} requests at "
            f"{rate:g}/s take {span:g} s); raise it or send fewer requests"
        )
    scheduled = np.arange(total, dtype=np.float64)
    scheduled /= rate  # in place: no second array of the run's length
    return _execute(
        mode="open",
        url=url,
        specs=specs,
        total=total,
        scheduled=scheduled,
        connections=max_connections,
        warm=warm_connections,
        processes=processes,
        keepalive=keepalive,
        timeout=timeout,
        deadline=deadline,
        weights=weights,
        sequence=sequence,
        seed=seed,
        progress=progress,
        meta={
            "rate": rate,
            "max_connections": max_connections,
            "latency_budget_s": latency_budget,
        },
        latency_budget=latency_budget,
        until=until,
        tls=tls,
        pool=pool,
    )


def check_target(
    url: str,
    spec: RequestSpec | str = "/",
    *,
    timeout: float = 2.0,
    tls: TLSVerify | None = None,
) -> int:
    """Send one request the way the bulk runs will; return the HTTP status it got.

    Meant for before a measurement: a proxy that is down or a wrong URL raises
    TargetUnreachable here, instead of yielding a timeline full of failures.
    """
    samples = run_closed_loop(
        url, [spec], total=1, concurrency=1, timeout=timeout, deadline=timeout + 1.0, tls=tls
    )
    error = ErrorClass(int(samples.error[0]))
    if error != ErrorClass.NONE:
        label = samples.spec_labels[0]
        raise TargetUnreachable(
            f"{url}: `{label}` got no HTTP answer ({error.label}, timeout {timeout:g} s). "
            "Is the proxy running, and is this its URL?"
        )
    return int(samples.status[0])
