"""A fault-injecting HTTP/1.1 proxy for the harness's own tests: client → fault proxy → upstream.

It sits in front of a real proxy (the local Traefik) or a backend and, on command, misbehaves in
one of the ways a broken ingress does, so that a test can check that the harness notices, with
the right check and the right figure. Faults (:class:`Fault`, ``kind``):

=============== =============================================================================
refuse          the listening socket is closed (connections are refused) and open connections
                are aborted, for a window; then it listens again on the same port
hang            requests are read and not answered until the window ends, then served (a proxy
                that hangs that long); without a window, never answered (the connection is
                held until the client gives up, at most ``HOLD_S``)
slow            the answer is sent ``delay_s`` late
status          the proxy answers ``status`` itself (e.g. 503), not a whoami body
relabel         the whoami ``Name:`` line of the answer is replaced by ``name``, or removed when
                ``name`` is None (an unknown answerer); ``from_name`` limits it to the answers
                of one backend (a skewed split: some of cheddar's answers claim wensleydale)
rewrite-path    the path the backend reports having received: prefix ``old`` becomes ``new``
drop-header     a header the backend reports having received is removed from its report
add-header      a header (``header: value``) is added to what the backend reports
misroute        the request goes upstream with Host ``to_host`` (and prefix ``old`` of its path
                replaced by ``new``): another route answers it
rewrite-target  every ``old`` in the request-target is replaced by ``new`` on the way upstream
                (a proxy that normalises paths its own way, e.g. ``%5C`` read as ``/``); only
                requests whose target contains ``old`` match
=============== =============================================================================

Which requests a fault hits: ``host`` (the Host header without port; None: any), ``path_prefix``,
a window (``start`` on ``time.monotonic()``, which is one clock for every process of the
machine, and ``duration``; None: from now, until cleared) and a ``share`` of the requests that
match, drawn from a ``random.Random(seed)`` of the fault's own: the k-th matching request gets
the k-th draw, so how many are hit among N matching requests does not depend on their order.
Answer-stage faults (relabel, rewrite-path, the headers) match only whoami text answers (and
``from_name``), so ``matched`` counts exactly the answers they could change.

Control: in-process (:class:`FaultProxy` methods) or over HTTP on a second loopback port, so a
``--change-command`` of a suite run in another process can arm a fault at the moment it runs::

    python tests/faultproxy.py arm CONTROL_URL '{"kind": "refuse", "duration": 0.5}'

``GET /faults`` on the control port lists every armed fault with its counts (``matched``,
``applied``) and, for a refuse, when the listener actually closed and opened again
(``began``/``ended``, monotonic) and when the earliest request it dropped had arrived
(``dropped_from``): the injected truth a test compares the harness's figures with.
``POST /faults`` arms one (``after_s``: its window starts that long after the request),
``PUT /faults`` replaces all with a list, ``DELETE /faults`` clears them, ``GET /clock`` reads
the clock.

Over HTTPS: given a server ``tls`` context, the proxy terminates TLS (clients go to
``https://``) and speaks plain HTTP upstream, as a load balancer in front of an ingress does; a
refuse then also drops the TLS sessions, and the client's reconnections pay a handshake each.

Only loopback: the proxy listens on 127.0.0.1 and refuses an upstream elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import random
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, TypeVar, cast, get_args
from urllib.parse import urlsplit

import httpx

FaultKind = Literal[
    "refuse",
    "hang",
    "slow",
    "status",
    "relabel",
    "rewrite-path",
    "drop-header",
    "add-header",
    "misroute",
    "rewrite-target",
]
KINDS: tuple[str, ...] = get_args(FaultKind)
#: Faults that change an answer that came back from upstream (they need a whoami text body).
ANSWER_KINDS = frozenset({"relabel", "rewrite-path", "drop-header", "add-header"})

LOOPBACK = "127.0.0.1"
#: Longest request or response head accepted.
HEAD_LIMIT = 64 * 1024
#: Largest body relayed (whoami answers are a few hundred bytes).
BODY_LIMIT = 16 * 1024 * 1024
#: A hung request's connection is held this long at most, then aborted.
HOLD_S = 30.0
#: Bound on every read from upstream and every control call.
IO_TIMEOUT_S = 10.0
#: Retries when re-opening the listener after a refuse (the port may be briefly taken).
REOPEN_ATTEMPTS = 50

T = TypeVar("T")


class FaultError(ValueError):
    """A fault that cannot be armed, naming the field at fault."""


@dataclass(frozen=True)
class Fault:
    """One fault and the requests it hits (see the module docstring)."""

    kind: FaultKind
    host: str | None = None
    path_prefix: str = ""
    share: float = 1.0
    start: float | None = None
    duration: float | None = None
    seed: int = 0
    delay_s: float = 0.0
    status: int = 503
    name: str | None = None
    from_name: str | None = None
    old: str = ""
    new: str = ""
    header: str = ""
    value: str = ""
    to_host: str | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> FaultError:
            return FaultError(f"fault {self.kind!r}, field {name}: {why}")

        if self.kind not in KINDS:
            raise FaultError(f"fault kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not 0.0 <= self.share <= 1.0:
            raise bad("share", f"must be in [0, 1], got {self.share!r}")
        if self.duration is not None and not 0 < self.duration <= 3600:
            raise bad("duration", f"must be in (0, 3600] seconds, got {self.duration!r}")
        if self.kind == "refuse":
            if self.duration is None:
                raise bad("duration", "a refuse needs a window (it must listen again)")
            if self.host is not None or self.path_prefix or self.share != 1.0:
                raise bad("host", "a refuse hits connections, not requests: no filter applies")
        if self.kind == "slow" and not 0 < self.delay_s <= 60:
            raise bad("delay_s", f"must be in (0, 60] seconds, got {self.delay_s!r}")
        if self.kind == "status" and not 100 <= self.status <= 599:
            raise bad("status", f"must be an HTTP status, got {self.status!r}")
        if self.kind == "rewrite-path" and not self.old.startswith("/"):
            raise bad("old", f"the reported path prefix to rewrite must start with /: {self.old!r}")
        if self.kind in ("drop-header", "add-header") and not self.header:
            raise bad("header", "name the header")
        if self.kind == "rewrite-target" and not self.old:
            raise bad("old", "say what to replace in the request-target")
        if self.kind == "misroute" and not self.to_host and not self.old:
            raise bad("to_host", "say where to send the requests (to_host, or old/new path)")
        if self.kind == "relabel" and self.name is not None and not self.name.strip():
            raise bad("name", "give a name, or null to remove the Name line")

    @classmethod
    def from_dict(cls, data: object) -> Fault:
        if not isinstance(data, dict):
            raise FaultError(f"a fault is a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultError(f"unknown fault fields {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise FaultError(f"fault {data!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def in_window(self, now: float) -> bool:
        if self.start is not None and now < self.start:
            return False
        end = self.end
        return end is None or now < end

    @property
    def end(self) -> float | None:
        if self.duration is None:
            return None
        return (self.start if self.start is not None else float("-inf")) + self.duration


#: How many standard deviations a share drawn by the fault proxy may stray from its nominal
#: value: 5 sigma is a false alarm once in ~1.7 million rows (two-sided normal tail 5.7e-7);
#: the proxy's draws are seeded, so a given row is deterministic anyway.
Z = 5.0


def binomial_tolerance(p: float, n: int) -> float:
    """Half-width of the share of ``n`` Bernoulli(p) draws at Z sigma, plus one count of
    rounding."""
    return Z * math.sqrt(p * (1.0 - p) / n) + 1.0 / n


@dataclass
class Armed:
    """A fault as the proxy runs it: its draws and what it did."""

    fault: Fault
    rng: random.Random
    matched: int = 0
    applied: int = 0
    began: float | None = None
    ended: float | None = None
    #: A refuse: when the earliest request it dropped unanswered (in flight when the listener
    #: closed) had arrived; the outage it caused starts there, not at ``began``.
    dropped_from: float | None = None
    errors: list[str] = field(default_factory=list)

    def draw(self) -> bool:
        """This matching request is hit (counted)."""
        self.matched += 1
        hit = self.fault.share >= 1.0 or self.rng.random() < self.fault.share
        self.applied += hit
        return hit

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault.to_dict(),
            "matched": self.matched,
            "applied": self.applied,
            "began": self.began,
            "ended": self.ended,
            "dropped_from": self.dropped_from,
            "errors": list(self.errors),
        }


# -- HTTP/1.1 messages ---------------------------------------------------------------------------


@dataclass
class Message:
    """A request or response head: the first line and the header fields, as received."""

    first: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def set(self, name: str, value: str) -> None:
        wanted = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != wanted]
        self.headers.append((name, value))

    def encode(self, body: bytes | None) -> bytes:
        headers = self.headers
        if body is not None:
            drop = {"content-length", "transfer-encoding"}
            headers = [(k, v) for k, v in headers if k.lower() not in drop]
            headers.append(("Content-Length", str(len(body))))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        return f"{self.first}\r\n{head}\r\n".encode("latin-1") + (body or b"")


class BadMessage(Exception):
    """The peer sent something this proxy does not relay."""


def parse_head(raw: bytes) -> Message:
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadMessage(f"malformed header line {line!r}")
        headers.append((name, value.strip()))
    return Message(lines[0], headers)


async def read_head(reader: asyncio.StreamReader) -> Message | None:
    """The next message head, or None when the peer closed cleanly between messages."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise BadMessage("the connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise BadMessage(f"a message head longer than {HEAD_LIMIT} bytes") from None
    return parse_head(raw[:-4])


async def read_body(reader: asyncio.StreamReader, head: Message, *, to_eof: bool) -> bytes:
    """The body the head announces (Content-Length, chunked, or until EOF if ``to_eof``)."""
    if (head.get("Transfer-Encoding") or "").lower() == "chunked":
        chunks: list[bytes] = []
        size_total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers are dropped
                return b"".join(chunks)
            size_total += size
            if size_total > BODY_LIMIT:
                raise BadMessage("a chunked body over the size limit")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = head.get("Content-Length")
    if length is not None:
        n = int(length)
        if not 0 <= n <= BODY_LIMIT:
            raise BadMessage(f"Content-Length {length!r} out of range")
        return await reader.readexactly(n)
    return await reader.read(BODY_LIMIT) if to_eof else b""


# -- editing whoami text answers -----------------------------------------------------------------


def _whoami_lines(body: bytes) -> tuple[list[bytes], int] | None:
    """The body's lines and the index of its request line (after ``RemoteAddr:``), or None
    when the body is not a whoami text answer."""
    lines = body.split(b"\n")
    for i, line in enumerate(lines[:-1]):
        if line.startswith(b"RemoteAddr: "):
            return lines, i + 1
        if not (line.startswith((b"Name: ", b"Hostname: ", b"IP: "))):
            return None
    return None


def whoami_name(body: bytes) -> str | None:
    """The Name line's value; None without one (or for a body that is not whoami text)."""
    parsed = _whoami_lines(body)
    if parsed is None or not parsed[0][0].startswith(b"Name: "):
        return None
    return parsed[0][0][6:].decode("utf-8", "replace")


def edit_answer(body: bytes, fault: Fault) -> bytes | None:
    """The answer with ``fault`` applied, or None when it does not apply to this answer."""
    parsed = _whoami_lines(body)
    if parsed is None:
        return None
    lines, request_at = parsed
    if fault.kind == "relabel":
        has_name = lines[0].startswith(b"Name: ")
        if fault.from_name is not None and whoami_name(body) != fault.from_name:
            return None
        others = lines[1:] if has_name else lines
        label = [b"Name: " + fault.name.encode()] if fault.name is not None else []
        return b"\n".join(label + others)
    if fault.kind == "rewrite-path":
        method, _, rest = lines[request_at].partition(b" ")
        target, sep, version = rest.rpartition(b" ")
        old = fault.old.encode()
        if not sep or not target.startswith(old):
            return None
        lines[request_at] = b" ".join((method, fault.new.encode() + target[len(old) :], version))
        return b"\n".join(lines)
    # The reported request headers: from the line after the request line to the blank line.
    end = next((i for i in range(request_at + 1, len(lines)) if lines[i] in (b"\r", b"")), None)
    if end is None:
        return None
    prefix = fault.header.lower().encode() + b":"
    if fault.kind == "drop-header":
        kept = [ln for ln in lines[request_at + 1 : end] if not ln.lower().startswith(prefix)]
        if len(kept) == end - request_at - 1:
            return None
        return b"\n".join(lines[: request_at + 1] + kept + lines[end:])
    added = f"{fault.header}: {fault.value}\r".encode()
    return b"\n".join([*lines[:end], added, *lines[end:]])


# -- the proxy -----------------------------------------------------------------------------------


def _loopback_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise FaultError(f"upstream {url!r}: expected http://127.x.x.x:PORT")
    if not ipaddress.ip_address(parts.hostname).is_loopback:
        raise FaultError(f"upstream {url!r}: only loopback is a traffic target here")
    return parts.hostname, parts.port


def _host_of(head: Message) -> str:
    host = head.get("Host") or ""
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


class FaultProxy:
    """The proxy, run on an event loop of its own in a daemon thread (see the module docstring).

    ``with FaultProxy(upstream) as proxy:`` starts it; ``proxy.url`` is where clients go,
    ``proxy.control_url`` where faults are armed over HTTP.
    """

    def __init__(
        self,
        upstream: str,
        *,
        port: int = 0,
        control_port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = _loopback_address(upstream)
        self._tls = tls
        self._port = port
        self._control_port = control_port
        self._armed: list[Armed] = []
        self._clients: set[asyncio.StreamWriter] = set()
        #: When each connection's request now being answered arrived.
        self._in_flight: dict[asyncio.StreamWriter, float] = {}
        self._server: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._refusing = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._handles: set[asyncio.TimerHandle] = set()

    # -- lifecycle (any thread) ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{LOOPBACK}:{self._port}"

    @property
    def control_url(self) -> str:
        return f"http://{LOOPBACK}:{self._control_port}"

    def start(self, timeout: float = 10.0) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the fault proxy did not start within {timeout:g} s")
        if self._start_error is not None:
            raise RuntimeError(f"the fault proxy did not start: {self._start_error}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has stopped already
            self._call(self._shutdown(), timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults (any thread) ---------------------------------------------------------------------

    def arm(self, fault: Fault, *, after_s: float | None = None) -> int:
        """Arm ``fault`` (its window starts ``after_s`` from now when given); its index."""
        return self._call(self._arm(fault, after_s), IO_TIMEOUT_S)

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace every armed fault by ``faults``."""
        self._call(self._set(list(faults)), IO_TIMEOUT_S)

    def clear(self) -> None:
        self.set_faults([])

    def stats(self) -> list[dict[str, Any]]:
        """Every armed fault with its counts and window (the injected truth)."""
        return self._call(self._stats(), IO_TIMEOUT_S)

    @contextlib.contextmanager
    def faults(self, *faults: Fault) -> Iterator[FaultProxy]:
        """``faults`` armed for the block, cleared after it."""
        self.set_faults(faults)
        try:
            yield self
        finally:
            self.clear()

    def _call(self, coro: Awaitable[T], timeout: float) -> T:
        if self._loop is None:
            raise RuntimeError("the fault proxy is not running")

        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    # -- on the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)  # this thread's loop (gather at shutdown needs it)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            # Handlers still waiting (a slow answer, a held hang) end with the proxy.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _listen(self) -> None:
        self._server = await self._start_listener()
        self._port = self._server.sockets[0].getsockname()[1]
        self._control = await asyncio.start_server(
            self._serve_control, LOOPBACK, self._control_port, limit=HEAD_LIMIT
        )
        self._control_port = self._control.sockets[0].getsockname()[1]

    async def _start_listener(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._serve_client,
            LOOPBACK,
            self._port,
            limit=HEAD_LIMIT,
            reuse_address=True,
            ssl=self._tls,
        )

    async def _shutdown(self) -> None:
        for handle in self._handles:
            handle.cancel()
        for server in (self._server, self._control):
            if server is not None:
                server.close()
        for writer in list(self._clients):
            writer.transport.abort()

    async def _arm(self, fault: Fault, after_s: float | None) -> int:
        if after_s is not None:
            fault = replace(fault, start=time.monotonic() + after_s)
        elif fault.start is None and fault.duration is not None:
            fault = replace(fault, start=time.monotonic())
        armed = Armed(fault, random.Random(fault.seed))
        self._armed.append(armed)
        if fault.kind == "refuse":
            self._schedule_refuse(armed)
        return len(self._armed) - 1

    async def _set(self, faults: list[Fault]) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        self._armed = []
        if self._refusing:
            self._refusing = 0
            await self._reopen(None)
        for fault in faults:
            await self._arm(fault, None)

    async def _stats(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self._armed]

    def _later(self, at: float, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        handle = self._loop.call_later(max(0.0, at - time.monotonic()), callback)
        self._handles.add(handle)

    def _schedule_refuse(self, armed: Armed) -> None:
        fault = armed.fault
        assert fault.start is not None and fault.end is not None
        loop = self._loop
        assert loop is not None

        def close() -> None:
            self._refusing += 1
            if self._server is not None:
                self._server.close()
            armed.began = time.monotonic()
            armed.dropped_from = min(self._in_flight.values(), default=None)
            for writer in list(self._clients):
                writer.transport.abort()
                armed.applied += 1

        def reopen() -> None:
            self._refusing -= 1
            if not self._refusing:
                loop.create_task(self._reopen(armed))

        self._later(fault.start, close)
        self._later(fault.end, reopen)

    async def _reopen(self, armed: Armed | None) -> None:
        for attempt in range(REOPEN_ATTEMPTS):
            try:
                self._server = await self._start_listener()
            except OSError as exc:
                if armed is not None:
                    armed.errors.append(f"re-listening, attempt {attempt + 1}: {exc}")
                await asyncio.sleep(0.01)
                continue
            if armed is not None:
                armed.ended = time.monotonic()
            return

    def _matching(self, head: Message, kinds: frozenset[str], now: float) -> list[Armed]:
        target = head.first.split(" ")
        path = target[1] if len(target) == 3 else ""
        host = _host_of(head)
        return [
            a
            for a in self._armed
            if a.fault.kind in kinds
            and a.fault.in_window(now)
            and (a.fault.host is None or a.fault.host == host)
            and path.startswith(a.fault.path_prefix)
            and (a.fault.kind != "rewrite-target" or a.fault.old in path)
        ]

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await _serve_control_for(self, reader, writer)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._clients.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                if self._refusing:
                    # Accepted just before the listener closed, its handler started after the
                    # refuse aborted the open connections: it must not carry traffic either.
                    writer.transport.abort()
                    return
                try:
                    head = await read_head(reader)
                    if head is None:
                        return
                    if self._refusing:  # arrived on a connection the refuse has not reached
                        writer.transport.abort()
                        return
                    if (head.get("Transfer-Encoding") or "").lower() == "chunked":
                        raise BadMessage("chunked request bodies are not relayed")
                    body = await read_body(reader, head, to_eof=False)
                except (BadMessage, ValueError, asyncio.IncompleteReadError) as exc:
                    writer.write(_plain(400, f"fault proxy: {exc}\n", close=True))
                    return
                keep = (head.get("Connection") or "").lower() != "close"
                self._in_flight[writer] = time.monotonic()
                answer, upstream = await self._answer(head, body, upstream)
                if answer is None:  # hung: hold the connection until the client gives up
                    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                        await asyncio.wait_for(reader.read(), HOLD_S)
                    writer.transport.abort()
                    return
                writer.write(answer)
                await writer.drain()
                self._in_flight.pop(writer, None)
                if not keep:
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, OSError, RuntimeError):
            # RuntimeError: uvloop's answer to writing on a transport a refuse has aborted.
            writer.transport.abort()
        finally:
            self._clients.discard(writer)
            self._in_flight.pop(writer, None)
            if upstream is not None:
                upstream[1].transport.abort()
            if not writer.transport.is_closing():
                writer.close()  # politely: the last answer may still be on its way

    async def _answer(
        self,
        head: Message,
        body: bytes,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[bytes | None, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        """The bytes to send back for one request (None: hang), and the upstream connection."""
        now = time.monotonic()
        delay = 0.0
        request_kinds = frozenset({"hang", "status", "slow", "misroute", "rewrite-target"})
        for armed in self._matching(head, request_kinds, now):
            if not armed.draw():
                continue
            fault = armed.fault
            if fault.kind == "hang":
                if fault.end is None:
                    return None, upstream  # hung for good: held until the client gives up
                # Answered nothing until the window ends, then served: a hang of that length.
                await asyncio.sleep(max(0.0, fault.end - time.monotonic()))
                continue
            if fault.kind == "status":
                return _plain(fault.status, f"fault proxy: injected {fault.status}\n"), upstream
            if fault.kind == "slow":
                delay += fault.delay_s
            elif fault.kind == "rewrite-target":
                method, target, version = head.first.split(" ")
                head.first = f"{method} {target.replace(fault.old, fault.new)} {version}"
            else:
                _misroute(head, fault)
        if delay:
            await asyncio.sleep(delay)
        if upstream is None or upstream[0].at_eof():
            if upstream is not None:
                upstream[1].transport.abort()
            upstream = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, limit=HEAD_LIMIT), IO_TIMEOUT_S
            )
        up_reader, up_writer = upstream
        up_writer.write(head.encode(body if body or head.get("Content-Length") else None))
        response = await asyncio.wait_for(read_head(up_reader), IO_TIMEOUT_S)
        if response is None:
            raise ConnectionResetError("upstream closed the connection")
        status = int(response.first.split(" ")[1])
        bodiless = head.first.startswith("HEAD ") or status in (204, 304) or status < 200
        upstream_closes = (response.get("Connection") or "").lower() == "close"
        answer = (
            b""
            if bodiless
            else await asyncio.wait_for(read_body(up_reader, response, to_eof=True), IO_TIMEOUT_S)
        )
        if upstream_closes:
            up_writer.transport.abort()
            upstream = None
        for armed in self._matching(head, ANSWER_KINDS, time.monotonic()):
            edited = edit_answer(answer, armed.fault)
            if edited is not None and armed.draw():
                answer = edited
        return response.encode(None if bodiless else answer), upstream


def _misroute(head: Message, fault: Fault) -> None:
    if fault.to_host:
        head.set("Host", fault.to_host)
    if fault.old:
        method, target, version = head.first.split(" ")
        if target.startswith(fault.old):
            head.first = f"{method} {fault.new}{target[len(fault.old) :]} {version}"


def _plain(status: int, text: str, *, close: bool = False) -> bytes:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if close:
        headers.append(("Connection", "close"))
    return Message(f"HTTP/1.1 {status} Fault", headers).encode(text.encode())


# -- control over HTTP ---------------------------------------------------------------------------


def _json_answer(status: int, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    return Message(
        f"HTTP/1.1 {status} {'OK' if status < 400 else 'Bad Request'}",
        [("Content-Type", "application/json"), ("Connection", "close")],
    ).encode(body)


async def _control_reply(proxy: FaultProxy, head: Message, body: bytes) -> bytes:
    method, path = head.first.split(" ")[:2]
    if path == "/clock" and method == "GET":
        return _json_answer(200, {"monotonic": time.monotonic()})
    if path != "/faults":
        return _json_answer(404, {"error": f"no {method} {path}; see tests/faultproxy.py"})
    try:
        data = json.loads(body or b"null")
        if method == "GET":
            return _json_answer(200, await proxy._stats())
        if method == "DELETE":
            await proxy._set([])
            return _json_answer(200, {"armed": 0})
        if method == "PUT":
            if not isinstance(data, list):
                raise FaultError("PUT /faults takes a JSON list of faults")
            await proxy._set([Fault.from_dict(d) for d in data])
            return _json_answer(200, {"armed": len(data)})
        if method == "POST":
            if not isinstance(data, dict):
                raise FaultError("POST /faults takes one fault as a JSON object")
            after = data.pop("after_s", None)
            index = await proxy._arm(Fault.from_dict(data), None if after is None else float(after))
            return _json_answer(200, {"index": index})
    except (FaultError, ValueError, TypeError) as exc:
        return _json_answer(400, {"error": str(exc)})
    return _json_answer(405, {"error": f"{method} /faults is not supported"})


async def _serve_control_for(
    proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(read_head(reader), IO_TIMEOUT_S)
        if head is not None:
            body = await asyncio.wait_for(read_body(reader, head, to_eof=False), IO_TIMEOUT_S)
            writer.write(await _control_reply(proxy, head, body))
            await writer.drain()
    except (TimeoutError, BadMessage, ValueError, ConnectionError) as exc:
        with contextlib.suppress(ConnectionError):
            writer.write(_json_answer(400, {"error": str(exc)}))
    finally:
        writer.close()


def arm_remote(control_url: str, fault: dict[str, Any]) -> int:
    """Arm a fault on a running proxy through its control port (used by change commands)."""
    reply = httpx.post(f"{control_url}/faults", json=fault, timeout=IO_TIMEOUT_S, trust_env=False)
    payload = cast(dict[str, Any], reply.json())
    if reply.status_code != 200:
        raise FaultError(f"{control_url} refused {fault}: {payload.get('error')}")
    return int(payload["index"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faultproxy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    arm = sub.add_parser("arm", help="arm a fault on a running proxy")
    arm.add_argument("control_url")
    arm.add_argument("fault", help='the fault as JSON, e.g. \'{"kind": "refuse", ...}\'')
    serve = sub.add_parser("serve", help="run a proxy in front of UPSTREAM until Ctrl-C")
    serve.add_argument("upstream")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "arm":
        try:
            data = json.loads(args.fault)
            if not isinstance(data, dict):
                raise FaultError("the fault is a JSON object")
            print(arm_remote(args.control_url, data))
        except (FaultError, ValueError, httpx.HTTPError) as exc:
            print(f"faultproxy arm: {exc}", file=sys.stderr)
            return 2
        return 0
    with FaultProxy(args.upstream, port=args.port, control_port=args.control_port) as proxy:
        print(json.dumps({"url": proxy.url, "control_url": proxy.control_url}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
