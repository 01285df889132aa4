"""Echo backends on loopback that answer like ``traefik/whoami``: the local target's upstreams.

Each listener is one backend instance (service ``cheddar``, instance ``cheddar-0``). It answers
every request with whoami's text (Name = service, Hostname = instance, ``IP: <listen address>``,
RemoteAddr, then the request line with the target exactly as received — raw bytes, no
normalisation, no decoding — and the headers), so the traffic engine and the verdicts read the
same format here as from whoami pods on a cluster (see :mod:`harness.backends.whoami`).

Paths, as in whoami: ``/api`` answers the JSON form, ``/health`` answers ``200`` with an empty
body. Our extension: any path answers JSON when the request has ``Accept: application/json``.
Request bodies are read and dropped, not echoed.

Speed matters (weighted-split verdicts need tens of thousands of requests), so the server is an
``asyncio.Protocol`` on uvloop (the default loop when uvloop is missing) with httptools' parser:
keep-alive, pipelining (responses to one read are written with one ``write``), HTTP/1.0,
``Connection: close``, ``Expect: 100-continue``; malformed requests get ``400`` and the connection
is closed. Nothing is logged per request.

Process model: :func:`serve` runs listeners in the current process and reports the bound
addresses as one JSON line on stdout; :func:`start_backends` starts child processes (by default
one per service) and returns a :class:`BackendPool`. For gap measurements a listener can be made
to refuse connections for a while (:meth:`BackendPool.refuse_connections`): the child closes the
listening socket (and, by default, drops open connections, like a crashed instance) and re-opens
the same port later. That goes through a small line-based control listener on loopback.

``python -m harness backends cheddar wensleydale`` runs listeners in the foreground (:func:`cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Any, Literal, cast

import httptools

from harness import procs
from harness.backends.whoami import render_whoami_json, render_whoami_text, whoami_text_head
from harness.errors import BackendStartError, ConfigError, HarnessError, StackError
from harness.traffic.addresses import is_loopback, require_loopback

__all__ = [
    "BackendInstance",
    "BackendPool",
    "BackendProcess",
    "ListenerSpec",
    "ServeInfo",
    "cli",
    "serve",
    "start_backends",
]

ProcessLayout = Literal["per-service", "per-instance", "single"]
_LAYOUTS: tuple[str, ...] = ("per-service", "per-instance", "single")

# Kubernetes Service names are DNS labels; instance names add "-<n>".
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ListenerSpec:
    """One listener to open: a backend instance of a service on a loopback address.

    ``port`` 0 lets the system pick a free port.
    """

    service: str
    instance: str
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True)
class BackendInstance:
    """A running backend instance: where to reach it and what it answers as Name/Hostname."""

    service: str
    instance: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        """``host:port`` (IPv6 in brackets), as in a URL or an EndpointSlice."""
        return _join_host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"


@dataclass(frozen=True)
class ServeInfo:
    """What :func:`serve` reports once every listener is bound."""

    instances: tuple[BackendInstance, ...]
    control: tuple[str, int] | None
    pid: int

    def to_json(self) -> str:
        """The one-line JSON report the parent reads."""
        return json.dumps(
            {
                "listeners": [
                    {"service": i.service, "instance": i.instance, "host": i.host, "port": i.port}
                    for i in self.instances
                ],
                "control": (
                    None
                    if self.control is None
                    else {"host": self.control[0], "port": self.control[1]}
                ),
                "pid": self.pid,
            },
            separators=(",", ":"),
        )


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_spec(spec: ListenerSpec) -> ListenerSpec:
    for what, value in (("service", spec.service), ("instance", spec.instance)):
        if not _NAME_RE.match(value):
            raise ConfigError(
                f"backend {what} name {value!r} is not a DNS label (lower-case letters, digits "
                "and '-', at most 63 characters, starting and ending alphanumeric)"
            )
    if not 0 <= spec.port <= 65535:
        raise ConfigError(f"port {spec.port} of backend {spec.instance!r} is not in 0..65535")
    host = require_loopback(spec.host, "backend host")
    return ListenerSpec(spec.service, spec.instance, host, spec.port)


# ---------------------------------------------------------------------------------------------
# The server (runs in the backend process)

_MAX_TARGET = 64 * 1024
_MAX_HEADERS = 256
_TEXT_TYPE = b"Content-Type: text/plain; charset=utf-8\r\n"
_JSON_TYPE = b"Content-Type: application/json\r\n"
_CORS = b"Access-Control-Allow-Methods: *\r\nAccess-Control-Allow-Origin: *\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 15\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n400 Bad Request"
)
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 35\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n431 Request Header Fields Too Large"
)
# Refreshed once a second by the serving loop; read by every response.
_date_line = b"Date: " + formatdate(usegmt=True).encode() + b"\r\n"


class _TooLarge(Exception):
    """Raised from a parser callback: request target or header count over the limit."""


class _Listener:
    """Runtime state of one listener: what it answers as, its socket, its open connections."""

    def __init__(self, spec: ListenerSpec) -> None:
        self.spec = spec
        self.port = spec.port
        self.ips = (spec.host,)
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[_WhoamiProtocol] = set()
        self.reopen: asyncio.TimerHandle | None = None
        # Bumped by every refuse command, so that a re-open already under way for an earlier
        # command does not open the port before the latest command's time is up.
        self.generation = 0

    def factory(self) -> _WhoamiProtocol:
        return _WhoamiProtocol(self)

    async def open(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.server = await loop.create_server(
                self.factory, self.spec.host, self.port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise BackendStartError(
                f"backend {self.spec.instance!r} cannot listen on "
                f"{_join_host_port(self.spec.host, self.port)}: {exc.strerror or exc}"
            ) from exc
        sockname = self.server.sockets[0].getsockname()
        self.port = int(sockname[1])

    def close(self, *, drop_connections: bool) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if drop_connections:
            for conn in list(self.connections):
                conn.abort()


class _WhoamiProtocol(asyncio.Protocol):
    """One HTTP/1.x connection: parser callbacks collect requests; answers are batched per read."""

    __slots__ = (
        "_closing",
        "_head",
        "_headers",
        "_listener",
        "_out",
        "_parser",
        "_remote",
        "_target",
        "_too_large",
        "_transport",
        "_wants_json",
    )

    def __init__(self, listener: _Listener) -> None:
        self._listener = listener
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._remote = ""
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._wants_json = False
        self._out: list[bytes] = []
        self._closing = False
        self._too_large = False

    # -- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not a check.
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._remote = _join_host_port(peer[0], peer[1]) if peer else ""
        listener = self._listener
        # Everything before the request line is the same for every request on this connection.
        self._head = whoami_text_head(
            listener.spec.service, listener.spec.instance, listener.ips, self._remote
        )
        listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)

    def pause_writing(self) -> None:
        # A client that pipelines without reading: stop reading until it catches up.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def abort(self) -> None:
        if self._transport is not None:
            self._closing = True
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Already answered in on_message_complete; we do not switch protocols.
            self._closing = True
        except httptools.HttpParserError:
            # Data after a "Connection: close" request also lands here: no second answer then.
            if not self._closing:
                self._out.append(_HEADERS_TOO_LARGE if self._too_large else _BAD_REQUEST)
                self._closing = True
        out = self._out
        transport = self._transport
        assert transport is not None
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self._closing:
            transport.close()

    # -- parser callbacks (state is reset after each message, so no on_message_begin)

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > _MAX_TARGET:
            self._too_large = True
            raise _TooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        if len(name) == 6:  # cheap pre-filter for the two names we act on
            lower = name.lower()
            if lower == b"accept":
                if b"application/json" in value.lower():
                    self._wants_json = True
            elif lower == b"expect" and value.strip().lower() == b"100-continue":
                self._out.append(_CONTINUE)
        if len(headers) > _MAX_HEADERS:
            self._too_large = True
            raise _TooLarge

    def on_message_complete(self) -> None:
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        http10 = parser.get_http_version() == "1.0"
        self._out.append(
            self._respond(parser.get_method(), self._target, keep_alive, http10=http10)
        )
        if not keep_alive:
            self._closing = True
        self._target = b""
        self._headers = []
        self._wants_json = False

    # -- the answer

    def _respond(self, method: bytes, target: bytes, keep_alive: bool, *, http10: bool) -> bytes:
        query_at = target.find(b"?")
        path = target if query_at < 0 else target[:query_at]
        extra = b""
        if path == b"/health":
            body = b""
            content_type = b""
        elif path == b"/api" or self._wants_json:
            spec = self._listener.spec
            body = render_whoami_json(
                name=spec.service,
                hostname=spec.instance,
                ips=self._listener.ips,
                remote_addr=self._remote,
                method=method,
                target=target,
                headers=self._headers,
            )
            content_type = _JSON_TYPE
            if path == b"/api":
                extra = _CORS
        else:
            body = render_whoami_text(self._head, method, target, self._headers)
            content_type = _TEXT_TYPE
        # As Go's server does: HTTP/1.0 gets a 1.0 status line and keep-alive only on request.
        if http10:
            status = b"HTTP/1.0 200 OK\r\n"
            connection = b"Connection: keep-alive\r\n" if keep_alive else b""
        else:
            status = b"HTTP/1.1 200 OK\r\n"
            connection = b"" if keep_alive else b"Connection: close\r\n"
        return b"".join(
            (
                status,
                extra,
                connection,
                b"Content-Length: %d\r\n" % len(body),
                content_type,
                _date_line,
                b"\r\n",
                b"" if method == b"HEAD" else body,
            )
        )


class _ControlProtocol(asyncio.Protocol):
    """Line commands from the parent: ``refuse <instance> <seconds> <drop 0|1>`` -> ``ok``."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            reply = self._server.command(line.decode("utf-8", "replace").split())
            if self._transport is not None:
                self._transport.write(reply.encode() + b"\n")


class _Server:
    """All listeners of one process, plus the optional control listener."""

    def __init__(self, loop: asyncio.AbstractEventLoop, specs: Sequence[ListenerSpec]) -> None:
        self.loop = loop
        self.listeners = [_Listener(spec) for spec in specs]
        self.by_instance = {listener.spec.instance: listener for listener in self.listeners}
        if len(self.by_instance) != len(self.listeners):
            raise ConfigError("instance names must be unique within one backend process")
        self.control: asyncio.AbstractServer | None = None
        self.date_timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def start(self, *, control: bool) -> ServeInfo:
        self._tick_date()
        try:
            for listener in self.listeners:
                await listener.open(self.loop)
            control_addr = None
            if control:
                self.control = await self.loop.create_server(
                    lambda: _ControlProtocol(self), "127.0.0.1", 0
                )
                control_addr = ("127.0.0.1", int(self.control.sockets[0].getsockname()[1]))
        except BaseException:
            self.close()
            raise
        instances = tuple(
            BackendInstance(lst.spec.service, lst.spec.instance, lst.spec.host, lst.port)
            for lst in self.listeners
        )
        return ServeInfo(instances, control_addr, os.getpid())

    def _tick_date(self) -> None:
        global _date_line  # noqa: PLW0603 - one per process, read by every response
        now = time.time()
        _date_line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        self.date_timer = self.loop.call_later(1.0 - now % 1.0 + 0.001, self._tick_date)

    def command(self, words: list[str]) -> str:
        if len(words) == 4 and words[0] == "refuse":
            listener = self.by_instance.get(words[1])
            if listener is None:
                return f"error unknown instance {words[1]!r}"
            try:
                seconds = float(words[2])
            except ValueError:
                return f"error bad duration {words[2]!r}"
            if not 0 < seconds <= 3600:
                return "error duration must be in (0, 3600] seconds"
            if listener.reopen is not None:
                listener.reopen.cancel()
            listener.generation += 1
            listener.close(drop_connections=words[3] == "1")
            listener.reopen = self.loop.call_later(
                seconds, self._reopen, listener, listener.generation, 0
            )
            return "ok"
        return f"error unknown command {' '.join(words)!r}"

    def _reopen(self, listener: _Listener, generation: int, attempt: int) -> None:
        listener.reopen = None

        async def reopen() -> None:
            try:
                await listener.open(self.loop)
            except BackendStartError as exc:
                if generation != listener.generation:
                    return
                # The port can be briefly taken by someone else; keep trying for ~5 s.
                if attempt < 50:
                    listener.reopen = self.loop.call_later(
                        0.1, self._reopen, listener, generation, attempt + 1
                    )
                else:
                    print(f"echo backend: giving up re-opening: {exc}", file=sys.stderr, flush=True)
                return
            if generation != listener.generation:  # a newer refuse arrived meanwhile
                listener.close(drop_connections=False)

        task = self.loop.create_task(reopen())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        if self.date_timer is not None:
            self.date_timer.cancel()
        if self.control is not None:
            self.control.close()
        for listener in self.listeners:
            if listener.reopen is not None:
                listener.reopen.cancel()
            listener.close(drop_connections=True)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional speed-up
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _print_json_line(info: ServeInfo) -> None:
    sys.stdout.write(info.to_json() + "\n")
    sys.stdout.flush()


def serve(
    listeners: Sequence[ListenerSpec],
    *,
    ready: Callable[[ServeInfo], None] | None = None,
    control: bool = True,
) -> None:
    """Serve ``listeners`` in this process until SIGTERM or SIGINT (then return normally).

    Binds every listener first (port 0 picks a free port), then calls ``ready`` with the bound
    addresses; the default prints them as one JSON line on stdout
    (``{"listeners": [{"service", "instance", "host", "port"}], "control": {...}, "pid": N}``).
    ``control`` opens the control listener used by :meth:`BackendPool.refuse_connections`.
    Must run in the main thread (signal handlers). Raises BackendStartError when a port cannot
    be bound, ConfigError for bad names or non-loopback hosts.
    """
    specs = [_check_spec(spec) for spec in listeners]
    if not specs:
        raise ConfigError("serve() needs at least one listener")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("serve() must run in the main thread (it handles SIGTERM/SIGINT)")
    loop = _new_loop()
    try:
        loop.run_until_complete(_serve(loop, specs, ready or _print_json_line, control))
    finally:
        loop.close()


async def _serve(
    loop: asyncio.AbstractEventLoop,
    specs: Sequence[ListenerSpec],
    ready: Callable[[ServeInfo], None],
    control: bool,
) -> None:
    stop = asyncio.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in previous:
        loop.add_signal_handler(signum, stop.set)
    try:
        server = _Server(loop, specs)
        info = await server.start(control=control)
        try:
            ready(info)
            await stop.wait()
        finally:
            server.close()
            # Let aborted transports run their connection_lost before the loop closes.
            await asyncio.sleep(0)
    finally:
        # Give the caller its handlers back (serve() may run inside a larger program).
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)


# ---------------------------------------------------------------------------------------------
# The parent side

# The child makes its stderr the same pipe as stdout before importing anything, so that even an
# import error reaches the parent, which keeps reading the pipe (nothing can block on it).
_CHILD_CODE = (
    "import os, sys; os.dup2(1, 2); "
    "from harness.backends.echo import _child_main; sys.exit(_child_main(sys.argv[1:]))"
)
_OUTPUT_LINES = 200


class BackendProcess:
    """One child process serving one or more listeners; its output is kept for diagnostics."""

    def __init__(self, proc: subprocess.Popen[bytes], *, what: str) -> None:
        """Take over a started child whose stdout is a pipe; call :meth:`wait_ready` next."""
        if proc.stdout is None:
            raise ValueError("the backend process needs stdout=subprocess.PIPE")
        self.what = what
        self.instances: list[BackendInstance] = []
        self.control: tuple[str, int] | None = None
        self._proc = proc
        self._lines: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._report: dict[str, Any] | None = None
        self._done = threading.Event()
        self._reader = threading.Thread(
            target=self._read, name=f"backend-output-{proc.pid}", daemon=True
        )
        self._reader.start()

    @classmethod
    def spawn(cls, listeners: Sequence[ListenerSpec]) -> BackendProcess:
        """Start a child serving ``listeners`` without waiting for it."""
        specs = [_check_spec(spec) for spec in listeners]
        if not specs:
            raise ConfigError("a backend process needs at least one listener")
        payload = json.dumps([asdict(spec) for spec in specs])
        env = procs.python_child_env()
        proc = procs.spawn(
            [sys.executable, "-c", _CHILD_CODE, payload], stdout=subprocess.PIPE, env=env
        )
        services = sorted({spec.service for spec in specs})
        return cls(proc, what=f"echo backends {', '.join(services)}")

    @classmethod
    def start(
        cls, listeners: Sequence[ListenerSpec], *, startup_timeout: float = 10.0
    ) -> BackendProcess:
        """Start a child serving ``listeners`` and wait until it reports its addresses."""
        process = cls.spawn(listeners)
        process.wait_ready(startup_timeout)
        return process

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The child itself, for a supervisor that signals and polls it without waiting (the
        embedded cluster's node agent)."""
        return self._proc

    def output(self) -> str:
        """The child's last output lines (stdout and stderr), without its JSON report."""
        return "\n".join(self._lines)

    def _read(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if self._report is None and line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        report = json.loads(line)
                        if isinstance(report, dict) and "listeners" in report:
                            self._report = report
                            self._done.set()
                            continue
                self._lines.append(line)
        except (OSError, ValueError):
            pass  # the stream was closed by stop()
        finally:
            self._done.set()

    def wait_ready(self, timeout: float) -> None:
        """Wait for the child's JSON report; BackendStartError (child stopped) if none comes."""
        if not self._done.wait(max(timeout, 0.0)):
            self.stop()
            raise BackendStartError(
                f"{self.what} (pid {self.pid}) did not report its listeners within {timeout:g} s"
                f"; its output:\n{self.output() or '(none)'}"
            )
        report = self._report
        if report is None:
            code = self.stop()
            self._reader.join(timeout=5.0)
            raise BackendStartError(
                f"{self.what} (pid {self.pid}) exited with code {code} before reporting its "
                f"listeners; its output:\n{self.output() or '(none)'}"
            )
        try:
            self.instances = [
                BackendInstance(
                    str(d["service"]), str(d["instance"]), str(d["host"]), int(d["port"])
                )
                for d in report["listeners"]
            ]
            ctl = report.get("control")
            self.control = None if ctl is None else (str(ctl["host"]), int(ctl["port"]))
        except (KeyError, TypeError, ValueError) as exc:
            self.stop()
            raise BackendStartError(
                f"{self.what} sent a malformed report {report!r}: {exc}"
            ) from exc

    def refuse_connections(
        self, instance: str, seconds: float, *, drop_connections: bool = True, timeout: float = 5.0
    ) -> None:
        """Make ``instance`` refuse new connections for ``seconds``, then listen again.

        Returns once the listening socket is closed. With ``drop_connections`` (default) open
        connections are aborted too, as when an instance crashes; otherwise they keep working.
        """
        if self.control is None:
            raise StackError(f"{self.what} has no control listener")
        if not 0 < seconds <= 3600:
            raise ConfigError(f"`seconds` must be in (0, 3600], got {seconds!r}")
        command = f"refuse {instance} {seconds!r} {int(drop_connections)}\n".encode()
        try:
            with socket.create_connection(self.control, timeout=timeout) as sock:
                sock.sendall(command)
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as exc:
            raise StackError(f"cannot reach the control listener of {self.what}: {exc}") from exc
        text = reply.decode("utf-8", "replace").strip()
        if text != "ok":
            raise ConfigError(
                f"{self.what} refused the command {command.decode().strip()!r}: {text}"
            )

    def stop(self) -> int | None:
        """Stop the child (SIGTERM, then SIGKILL); returns its exit status."""
        code = procs.stop(self._proc)
        self._reader.join(timeout=5.0)
        return code


class BackendPool:
    """The running echo backends of a run: several processes, seen as one list of instances."""

    def __init__(self, processes: Sequence[BackendProcess]) -> None:
        self.processes = list(processes)
        self.instances: list[BackendInstance] = [i for p in self.processes for i in p.instances]

    def by_service(self) -> dict[str, list[BackendInstance]]:
        """Instances grouped by service, in start order."""
        grouped: dict[str, list[BackendInstance]] = {}
        for instance in self.instances:
            grouped.setdefault(instance.service, []).append(instance)
        return grouped

    def instance(self, name: str) -> BackendInstance:
        for instance in self.instances:
            if instance.instance == name:
                return instance
        raise ConfigError(f"no backend instance named {name!r}")

    def refuse_connections(
        self, instance: str, seconds: float, *, drop_connections: bool = True, timeout: float = 5.0
    ) -> None:
        """See :meth:`BackendProcess.refuse_connections`."""
        for process in self.processes:
            if any(i.instance == instance for i in process.instances):
                process.refuse_connections(
                    instance, seconds, drop_connections=drop_connections, timeout=timeout
                )
                return
        raise ConfigError(f"no backend instance named {instance!r}")

    def stop(self) -> None:
        """Stop every child process (idempotent)."""
        for process in self.processes:
            process.stop()

    def __iter__(self) -> Iterator[BackendInstance]:
        return iter(self.instances)

    def __enter__(self) -> BackendPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def instance_address(host: str, n: int) -> str:
    """The loopback address of instance ``n``: ``host`` advanced by ``n`` (127.0.0.1, .2, ...).

    Like pods, instances of one Service need addresses of their own: Traefik keeps one server
    per endpoint address of a Service, so two instances on one address with different ports
    would be served as one.
    """
    address = ipaddress.ip_address(host)
    if n and (address.version != 4 or not is_loopback(host)):
        raise ConfigError(
            f"several instances per Service need distinct loopback addresses; {host!r} has "
            "none to spare (use an IPv4 loopback address such as 127.0.0.1)"
        )
    return str(address + n)


def _listener_specs(
    services: Mapping[str, int], host: str, first_port: int = 0, *, distinct: bool = False
) -> list[ListenerSpec]:
    specs: list[ListenerSpec] = []
    for service, count in services.items():
        if not isinstance(count, int) or count < 1:
            raise ConfigError(
                f"instance count of service {service!r} must be a positive integer, got {count!r}"
            )
        for n in range(count):
            port = 0 if first_port == 0 else first_port + len(specs)
            address = instance_address(host, n) if distinct else host
            specs.append(ListenerSpec(service, f"{service}-{n}", address, port))
    return [_check_spec(spec) for spec in specs]


def start_backends(
    services: Mapping[str, int],
    *,
    host: str = "127.0.0.1",
    processes: ProcessLayout = "per-service",
    startup_timeout: float = 10.0,
    distinct_addresses: bool = False,
) -> BackendPool:
    """Start echo backends: ``{"cheddar": 2}`` gives instances ``cheddar-0`` and ``cheddar-1``.

    ``processes``: ``per-service`` (default; the instances of a service are listeners of one
    process), ``per-instance`` or ``single``. The children start in parallel; if any fails,
    the others are stopped and BackendStartError says which and shows its output.
    ``distinct_addresses``: instance n listens on ``host`` + n (127.0.0.1, 127.0.0.2, ...), as
    pods of one Service have addresses of their own (see ``instance_address``).
    """
    if processes not in _LAYOUTS:
        raise ConfigError(f"`processes` must be one of {', '.join(_LAYOUTS)}, got {processes!r}")
    if startup_timeout <= 0:
        raise ConfigError("`startup_timeout` must be positive")
    if not services:
        raise ConfigError("start_backends() needs at least one service")
    specs = _listener_specs(services, host, distinct=distinct_addresses)
    groups: list[list[ListenerSpec]]
    if processes == "single":
        groups = [specs]
    elif processes == "per-instance":
        groups = [[spec] for spec in specs]
    else:
        by_service: dict[str, list[ListenerSpec]] = {}
        for spec in specs:
            by_service.setdefault(spec.service, []).append(spec)
        groups = list(by_service.values())
    started: list[BackendProcess] = []
    try:
        for group in groups:
            started.append(BackendProcess.spawn(group))
        deadline = time.monotonic() + startup_timeout
        for process in started:
            process.wait_ready(deadline - time.monotonic())
    except BaseException:
        for process in started:
            process.stop()
        raise
    return BackendPool(started)


def _child_main(argv: list[str]) -> int:
    """Entry point of a child started by :class:`BackendProcess`: argv[0] is the JSON spec list."""
    try:
        specs = [ListenerSpec(**d) for d in json.loads(argv[0])]
        serve(specs, control=True)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Command line


def cli(argv: list[str]) -> int:
    """``python -m harness backends NAME... [--instances N] [--host H] [--port P] [--json]``."""
    parser = argparse.ArgumentParser(
        prog="python -m harness backends",
        description="Run echo backends (traefik/whoami format) on loopback until Ctrl-C.",
    )
    parser.add_argument(
        "services", nargs="+", metavar="SERVICE", help="service names, e.g. cheddar"
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="instances per service (default 1)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port of the first listener, the next ones follow on (default 0: free ports)",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the listeners as one JSON line"
    )
    ns = parser.parse_args(argv)

    def ready(info: ServeInfo) -> None:
        width_s = max(len(i.service) for i in info.instances)
        width_i = max(len(i.instance) for i in info.instances)
        for i in info.instances:
            print(f"{i.service:<{width_s}}  {i.instance:<{width_i}}  {i.url}")
        if ns.json:
            print(info.to_json())
        print(
            f"serving {len(info.instances)} listener(s) in pid {info.pid}; Ctrl-C stops",
            file=sys.stderr,
        )
        sys.stdout.flush()

    try:
        if ns.instances < 1:
            raise ConfigError(f"--instances must be at least 1, got {ns.instances}")
        count = len(ns.services) * ns.instances
        if ns.port and not 1 <= ns.port <= 65536 - count:
            raise ConfigError(f"--port {ns.port} leaves no room for {count} consecutive ports")
        if len(set(ns.services)) != len(ns.services):
            raise ConfigError("a service name is given twice")
        specs = _listener_specs(dict.fromkeys(ns.services, ns.instances), ns.host, ns.port)
        serve(specs, ready=ready, control=False)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the loop took over SIGINT
        return 0
    return 0
