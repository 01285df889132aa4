"""A local Kubernetes API server on loopback: the part of the REST API ingress controllers use.

The local target (README, "What runs where") runs the real Traefik binary with its Kubernetes
providers pointed at this server, and the harness applies manifests to it with the official
``kubernetes`` client, exactly as it would against a cluster. So this is not a mock: for what it
serves (discovery, list, watch with ``sendInitialEvents`` and bookmarks, get, create, replace,
patch, delete, resourceVersions, conflicts, selectors) it answers like kube-apiserver, in JSON.
The semantics live in ``harness.kubeapi.store``; this module is the HTTP face: routing, content
types, chunked watch streams, and a clean start/stop.

Beyond the REST verbs it serves what ``kubectl`` needs: OpenAPI v3 (``harness.kubeapi.openapi``,
so that ``kubectl apply`` validates, with server-side field validation), server-side printing
(``harness.kubeapi.tables``), the ``/scale`` subresource, and SelfSubjectAccessReview with 403s
from a per-token access table (``harness.kubeapi.access``; without one, every token may do
everything).

Stdlib HTTP (ThreadingHTTPServer, HTTP/1.1 keep-alive, one daemon thread per connection), run
in-process in a background thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from harness.errors import ConfigError, KubeAPIError
from harness.kubeapi import openapi, protobuf, tables
from harness.kubeapi.access import (
    AccessTable,
    TokenAccess,
    forbidden,
    review,
)
from harness.kubeapi.controllers import WorkloadControllers
from harness.kubeapi.store import (
    Kind,
    ListOptions,
    ObjectStore,
    StatusError,
    Watch,
    bad_request,
    bool_param,
    method_not_allowed,
    not_found_path,
)
from harness.traffic.addresses import require_loopback

__all__ = ["KubeAPIServer", "ObjectStore"]

logger = logging.getLogger(__name__)

KUBERNETES_VERSION: Final = ("1", "34", "v1.34.0")
"""The version /version reports; Traefik 3.7 does not ask, the dynamic client does."""

_MAX_BODY: Final = 3 * 1024 * 1024  # kube-apiserver's request body limit
_IDLE_POLL: Final = 1.0  # seconds between client-gone checks on an idle watch


class KubeAPIServer:
    """The local Kubernetes API, serving ``store`` at ``url`` until ``stop()``.

    ``bookmark_interval``: seconds between BOOKMARK events on watches that allow them.
    ``event_history``: changes kept for watches and continue tokens (older ones get 410).
    ``watch_list``: serve streaming lists (``sendInitialEvents``); off, clients fall back to
    paginated lists, as against a server with the WatchList feature gate off.
    ``access``: who may do what, per bearer token (default: everyone everything).
    ``workload_controllers``: run the Deployment and ReplicaSet controllers in-process.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 5.0,
        *,
        event_history: int = 100_000,
        watch_list: bool = True,
        access: AccessTable | None = None,
        workload_controllers: bool = True,
    ) -> None:
        require_loopback(host, "KubeAPIServer host")
        if not 0 <= port <= 65535:
            raise ConfigError(f"KubeAPIServer port must be 0..65535, got {port}")
        if not bookmark_interval > 0:
            raise ConfigError(
                f"`bookmark_interval` must be positive seconds, got {bookmark_interval}"
            )
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.store = ObjectStore(event_history=event_history)
        self.store.watch_list = watch_list
        self.access = access or AccessTable()
        self.controllers = WorkloadControllers(self.store) if workload_controllers else None
        self._openapi: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._openapi_lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conn_lock = threading.Condition()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._streaming: set[socket.socket] = set()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._httpd is None:
            raise KubeAPIError("the local Kubernetes API is not running (call start() first)")
        host, port = _host_port(self._httpd)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> None:
        """Bind (port 0: the OS picks a free port, no race) and serve in a daemon thread."""
        if self._httpd is not None:
            raise KubeAPIError("the local Kubernetes API is already running")
        self.stopping.clear()
        server_cls = _Server6 if ":" in self.host else _Server
        try:
            httpd = server_cls((self.host, self.port), _Handler)
        except OSError as exc:
            raise KubeAPIError(
                f"the local Kubernetes API could not listen on {self.host}:{self.port}: {exc}"
            ) from exc
        httpd.api = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"kubeapi-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        if self.controllers is not None:
            self.controllers.start()
        logger.debug("local Kubernetes API listening at %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """End every watch and connection, stop serving, join threads (bounded by ``timeout``)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        deadline = time.monotonic() + timeout
        if self.controllers is not None:
            self.controllers.stop(timeout)
        self.stopping.set()
        self.store.wake_watches()
        httpd.shutdown()
        with self._conn_lock:
            # Watches end on their own once woken (with a proper last chunk); wait for that
            # before cutting the idle keep-alive connections.
            self._conn_lock.wait_for(
                lambda: not self._streaming, timeout=max(0.0, deadline - time.monotonic())
            )
            connections = dict(self._connections)
        for conn in connections:
            # Wakes handlers blocked reading the next request of an idle keep-alive connection.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in [thread, *connections.values()]:
            if worker is not None and worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))
        httpd.server_close()
        self._httpd = None
        self._thread = None
        alive = [t.name for t in connections.values() if t.is_alive()]
        if alive:
            logger.warning("local Kubernetes API: %d handler threads still running", len(alive))

    def openapi_document(self, group: str, version: str) -> tuple[dict[str, Any], str]:
        """The OpenAPI v3 document of a served group/version and its hash (built once)."""
        with self._openapi_lock:
            if (group, version) not in self._openapi:
                doc = openapi.group_version_document(
                    self.store.kinds, group, version, KUBERNETES_VERSION[2]
                )
                self._openapi[(group, version)] = (doc, openapi.document_hash(doc))
            return self._openapi[(group, version)]

    def __enter__(self) -> KubeAPIServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _register(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections[conn] = threading.current_thread()

    def _unregister(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.pop(conn, None)

    def _streaming_watch(self, conn: socket.socket, active: bool) -> None:
        with self._conn_lock:
            if active:
                self._streaming.add(conn)
            else:
                self._streaming.discard(conn)
                self._conn_lock.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Traefik opens ~20 watch connections at once; with socketserver's default backlog of 5
    # the kernel drops SYNs and the client retries a second later.
    request_queue_size = 128
    api: KubeAPIServer


class _Server6(_Server):
    address_family = socket.AF_INET6


def _host_port(server: _Server) -> tuple[str, int]:
    host, port = server.server_address[:2]
    return (host.decode() if isinstance(host, bytes) else str(host)), int(port)


# --------------------------------------------------------------------------------------------
# Discovery documents.


def _version_body() -> dict[str, Any]:
    major, minor, git_version = KUBERNETES_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _group_versions(store: ObjectStore) -> dict[str, list[str]]:
    """Served API groups (other than core) and their versions, in table order."""
    groups: dict[str, list[str]] = {}
    for kind in store.kinds:
        if kind.group and kind.version not in groups.setdefault(kind.group, []):
            groups[kind.group].append(kind.version)
    return groups


def _api_group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def _resource_list(store: ObjectStore, group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for kind in store.kinds:
        if (kind.group, kind.version) != (group, version):
            continue
        entry: dict[str, Any] = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": kind.verbs(),
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        if (kind.group, kind.plural) == ("", "pods"):
            resources.append(
                {"name": "pods/binding", "singularName": "", "namespaced": True,
                 "kind": "Binding", "verbs": ["create"]}
            )  # fmt: skip
        if kind.scale_subresource:
            resources.append(
                {
                    "name": f"{kind.plural}/scale",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
        if kind.status_subresource:
            resources.append(
                {
                    "name": f"{kind.plural}/status",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# --------------------------------------------------------------------------------------------
# The request handler.


@dataclass(frozen=True)
class _Request:
    """A request routed to a resource: what the verb handlers need."""

    method: str
    kind: Kind
    namespace: str
    name: str | None  # None: the collection
    subresource: str
    query: dict[str, str]
    body: bytes
    watch_path: bool  # the legacy /watch/ prefix
    dry_run: bool
    caller: TokenAccess | None  # None: no access table, everything allowed

    @property
    def watch(self) -> bool:
        return self.watch_path or bool_param(self.query.get("watch"))

    @property
    def verb(self) -> str:
        """The authorization verb, as the real server derives it from method and path."""
        if self.method == "GET":
            return "watch" if self.watch else ("list" if self.name is None else "get")
        if self.method == "DELETE":
            return "deletecollection" if self.name is None else "delete"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(self.method, "")

    @property
    def field_validation(self) -> str:
        value = self.query.get("fieldValidation", "") or "Warn"
        supported = ("Ignore", "Warn", "Strict")
        if value not in supported:
            raise bad_request(
                f'fieldValidation: Unsupported value: "{value}": supported values: '
                + ", ".join(f'"{v}"' for v in supported)
            )
        return value


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _unsupported_media(media: str, why: str) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({media}) - accepted media types "
        f"include: application/json, application/yaml, {protobuf.MEDIA_TYPE}{why}",
    )


def _wants_table(accept: str) -> bool:
    """Content negotiation: True when the first acceptable media range asks for a Table.

    Ranges are taken in the client's order; JSON (any ``*/*``, ``application/*`` or ``*json``
    range without ``as=``) or a ``meta.k8s.io`` Table (v1 or v1beta1) are served; anything else
    is skipped; nothing acceptable is a 406."""
    if not accept.strip():
        return False
    for part in accept.split(","):
        media, *raw = [p.strip() for p in part.split(";")]
        params = dict(p.split("=", 1) for p in raw if "=" in p)
        media = media.lower()
        if not (media in ("*/*", "application/*") or media.endswith("json")):
            continue
        shape = params.get("as")
        if shape is None:
            return False
        if (
            shape == "Table"
            and params.get("g") == "meta.k8s.io"
            and params.get("v")
            in (
                "v1",
                "v1beta1",
            )
        ):
            return True
    raise StatusError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, "
        "application/json;as=Table;v=v1;g=meta.k8s.io (the local Kubernetes API serves JSON "
        "only)",
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "ingress-harness-kubeapi"

    def setup(self) -> None:
        super().setup()
        # Responses and watch frames are small writes; without NODELAY each one after the first
        # waits for the client's delayed ACK (~40 ms on Linux).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.api._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per request is logged by _handle, with the time taken

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        self._code = 0
        self._sent_headers = False
        self._warnings: list[str] = []
        self._as_table = False
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            self._as_table = _wants_table(self.headers.get("Accept", ""))
            self._dispatch(method, url.path, query, body)
        except StatusError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:
            logger.exception("local Kubernetes API: internal error on %s %s", method, self.path)
            if not self._sent_headers:
                error = StatusError(500, "InternalError", "internal error in the local API server")
                self._send_json(500, error.status())
            self.close_connection = True
        finally:
            logger.debug(
                "%s %s -> %s in %.1f ms (%s)",
                method,
                self.path,
                self._code,
                (time.monotonic() - started) * 1000,
                self.headers.get("User-Agent", "-"),
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > _MAX_BODY:
                    raise StatusError(413, "RequestEntityTooLarge", "request entity too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            raise StatusError(413, "RequestEntityTooLarge", "request entity too large")
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self._code = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for warning in self._warnings:
            self.send_header("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        self.end_headers()
        self._sent_headers = True
        self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self._code = code
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._sent_headers = True
        self.wfile.write(data)

    def _decode_body(self, body: bytes) -> Any:
        media = _media_type(self.headers.get("Content-Type"))
        if media in ("application/json", ""):
            try:
                return json.loads(body or b"null")
            except ValueError as exc:
                raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        if media in ("application/yaml", "application/x-yaml"):
            try:
                return yaml.safe_load(body)
            except yaml.YAMLError as exc:
                raise bad_request(f"couldn't get version/kind; yaml parse error: {exc}") from None
        if media == protobuf.MEDIA_TYPE:
            try:
                return protobuf.decode_object(body)
            except protobuf.UnsupportedKind as exc:
                raise _unsupported_media(media, f" ({exc})") from None
            except protobuf.ProtobufError as exc:
                raise bad_request(f"the protobuf body could not be decoded: {exc}") from None
        raise _unsupported_media(media, "")

    # -- routing --------------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        store = self.server.api.store
        parts = [unquote(p) for p in path.split("/") if p]
        if parts in (["healthz"], ["readyz"], ["livez"]):
            self._send_text(200, "ok")
            return
        caller = self.server.api.access.authenticate(self.headers.get("Authorization"))
        if parts[:2] == ["openapi", "v3"]:
            if method != "GET":
                raise method_not_allowed()
            self._send_json(200, self._openapi_v3(store, parts[2:]))
            return
        discovery = self._discovery(store, parts)
        if discovery is not None:
            if method != "GET":
                raise method_not_allowed()
            self._send_json(200, discovery)
            return
        if len(parts) >= 2 and parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise not_found_path()
        watch_path = bool(rest) and rest[0] == "watch"
        kind, namespace, name, sub = self._route(store, group, version, rest[watch_path:])
        req = _Request(
            method,
            kind,
            namespace,
            name,
            sub,
            query,
            body,
            watch_path,
            self._dry_run(query),
            caller,
        )
        self._authorize(req)
        if kind.create_only:
            self._review(req)
        elif sub:
            self._subresource(store, req)
        elif name is None:
            self._collection(store, req)
        else:
            self._item(store, req)

    def _authorize(self, req: _Request) -> None:
        caller = req.caller
        if caller is None or (req.kind.create_only and caller.user != "system:anonymous"):
            return
        resource = f"{req.kind.plural}/{req.subresource}" if req.subresource else req.kind.plural
        if not caller.allows(req.verb, req.kind.group, resource, req.namespace):
            raise forbidden(
                caller.user,
                verb=req.verb,
                group=req.kind.group,
                resource=resource,
                namespace=req.namespace,
                name=req.name,
            )

    def _review(self, req: _Request) -> None:
        if req.method != "POST" or req.name is not None or req.watch_path:
            raise method_not_allowed()
        answer = review(self.server.api.access, req.caller, self._decode_body(req.body))
        self._send_json(201, answer)

    def _openapi_v3(self, store: ObjectStore, rest: list[str]) -> dict[str, Any]:
        api = self.server.api
        served = [("", "v1"), *((g, v) for g, vs in _group_versions(store).items() for v in vs)]
        if not rest:
            paths = {}
            for group, version in served:
                key = f"apis/{group}/{version}" if group else "api/v1"
                _doc, digest = api.openapi_document(group, version)
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            return {"paths": paths}
        if rest == ["api", "v1"]:
            return api.openapi_document("", "v1")[0]
        if len(rest) == 3 and rest[0] == "apis" and (rest[1], rest[2]) in served:
            return api.openapi_document(rest[1], rest[2])[0]
        raise not_found_path()

    def _discovery(self, store: ObjectStore, parts: list[str]) -> dict[str, Any] | None:
        if parts == ["version"]:
            return _version_body()
        if parts == ["api"]:
            host, port = _host_port(self.server)
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}
                ],
            }
        if parts == ["api", "v1"]:
            return _resource_list(store, "", "v1")
        groups = _group_versions(store)
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_api_group(g, vs) for g, vs in groups.items()],
            }
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                **_api_group(parts[1], groups[parts[1]]),
            }
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []):
            return _resource_list(store, parts[1], parts[2])
        return None

    def _route(
        self, store: ObjectStore, group: str, version: str, rest: list[str]
    ) -> tuple[Kind, str, str | None, str]:
        """(kind, namespace, name or None for the collection, subresource or '')."""
        if len(rest) >= 3 and rest[0] == "namespaces":
            kind = store.find_kind(group, version, rest[2])
            if kind is not None and kind.namespaced and len(rest) <= 5:
                name = rest[3] if len(rest) > 3 else None
                sub = rest[4] if len(rest) > 4 else ""
                self._check_sub(kind, sub)
                return kind, rest[1], name, sub
        if rest:
            kind = store.find_kind(group, version, rest[0])
            if kind is not None and len(rest) <= 3 and not (kind.namespaced and len(rest) > 1):
                name = rest[1] if len(rest) > 1 else None
                sub = rest[2] if len(rest) > 2 else ""
                self._check_sub(kind, sub)
                return kind, "", name, sub
        raise not_found_path()

    @staticmethod
    def _check_sub(kind: Kind, sub: str) -> None:
        served = (
            (sub == "status" and kind.status_subresource)
            or (sub == "scale" and kind.scale_subresource)
            or (sub == "binding" and (kind.group, kind.plural) == ("", "pods"))
        )
        if sub and not served:
            raise not_found_path()

    @staticmethod
    def _dry_run(query: dict[str, str]) -> bool:
        value = query.get("dryRun", "")
        if value not in ("", "All"):
            raise bad_request(f'Invalid dry run value: "{value}": supported values: "All"')
        return value == "All"

    def _collection(self, store: ObjectStore, req: _Request) -> None:
        kind, namespace = req.kind, req.namespace
        all_namespaces = kind.namespaced and not namespace
        if req.method == "GET":
            options = ListOptions.from_query(req.query, watch=req.watch_path)
            if options.watch:
                self._stream_watch(store, req, options)
            else:
                listed = store.list_objects(kind, namespace, options)
                if self._as_table:
                    listed = self._table(kind, listed["items"], listed["metadata"], req)
                self._send_json(200, listed)
        elif req.method == "POST" and not all_namespaces and not req.watch_path:
            obj = store.create(
                kind,
                namespace,
                self._decode_body(req.body),
                dry_run=req.dry_run,
                field_validation=req.field_validation,
                warnings=self._warnings,
            )
            self._send_json(201, obj)
        elif (
            req.method == "DELETE"
            and kind.deletecollection
            and not all_namespaces
            and not req.watch_path
        ):
            options = ListOptions.from_query(req.query)
            result = store.delete_collection(kind, namespace, options, dry_run=req.dry_run)
            self._send_json(200, result)
        else:
            raise method_not_allowed()

    def _item(self, store: ObjectStore, req: _Request) -> None:
        kind, namespace, name, dry_run = req.kind, req.namespace, req.name or "", req.dry_run
        if req.method == "GET" and (req.watch_path or ListOptions.from_query(req.query).watch):
            # Watching one object is a watch with a name field selector, as on the real server.
            fields = ",".join(
                filter(None, [req.query.get("fieldSelector"), f"metadata.name={name}"])
            )
            options = ListOptions.from_query({**req.query, "fieldSelector": fields}, watch=True)
            self._stream_watch(store, req, options)
        elif req.watch_path:
            raise method_not_allowed()
        elif req.method == "GET":
            obj = store.get(kind, namespace, name)
            if self._as_table:
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                obj = self._table(kind, [obj], meta, req)
            self._send_json(200, obj)
        elif req.method == "PUT":
            body = self._decode_body(req.body)
            obj = store.replace(
                kind,
                namespace,
                name,
                body,
                dry_run=dry_run,
                field_validation=req.field_validation,
                warnings=self._warnings,
            )
            self._send_json(200, obj)
        elif req.method == "PATCH":
            media = _media_type(self.headers.get("Content-Type"))
            obj = store.patch(
                kind,
                namespace,
                name,
                req.body,
                media,
                dry_run=dry_run,
                field_validation=req.field_validation,
                warnings=self._warnings,
            )
            self._send_json(200, obj)
        elif req.method == "DELETE":
            options = self._decode_body(req.body) if req.body.strip() else {}
            if not isinstance(options, dict):
                raise bad_request("the body of a DELETE must be a DeleteOptions object")
            dry_run = dry_run or "All" in (options.get("dryRun") or [])
            code, result = store.delete(kind, namespace, name, options=options, dry_run=dry_run)
            self._send_json(code, result)
        else:
            raise method_not_allowed()

    def _subresource(self, store: ObjectStore, req: _Request) -> None:
        kind, namespace, name, sub = req.kind, req.namespace, req.name or "", req.subresource
        media = _media_type(self.headers.get("Content-Type"))
        if sub == "binding":
            if req.method != "POST":
                raise method_not_allowed()
            store.bind_pod(namespace, name, self._decode_body(req.body))
            self._send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success", "code": 201})  # fmt: skip
        elif sub == "scale" and req.method == "GET":
            self._send_json(200, store.get_scale(kind, namespace, name))
        elif sub == "scale" and req.method in ("PUT", "PATCH"):
            if req.method == "PUT":
                scale = store.update_scale(
                    kind, namespace, name, body=self._decode_body(req.body), dry_run=req.dry_run
                )
            else:
                scale = store.update_scale(
                    kind, namespace, name, patch=(req.body, media), dry_run=req.dry_run
                )
            self._send_json(200, scale)
        elif req.method == "GET":
            self._send_json(200, store.get(kind, namespace, name))
        elif req.method == "PUT":
            body = self._decode_body(req.body)
            obj = store.replace(
                kind,
                namespace,
                name,
                body,
                subresource=sub,
                dry_run=req.dry_run,
                field_validation=req.field_validation,
                warnings=self._warnings,
            )
            self._send_json(200, obj)
        elif req.method == "PATCH":
            obj = store.patch(
                kind,
                namespace,
                name,
                req.body,
                media,
                subresource=sub,
                dry_run=req.dry_run,
                field_validation=req.field_validation,
                warnings=self._warnings,
            )
            self._send_json(200, obj)
        else:
            raise method_not_allowed()

    # -- watch streams --------------------------------------------------------------------

    def _table(
        self, kind: Kind, items: list[dict[str, Any]], meta: dict[str, Any], req: _Request
    ) -> dict[str, Any]:
        include = req.query.get("includeObject", "") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise bad_request(
                f'includeObject: Unsupported value: "{include}": supported values: "None", '
                '"Metadata", "Object"'
            )
        return tables.table(kind, items, meta, include)

    def _stream_watch(self, store: ObjectStore, req: _Request, options: ListOptions) -> None:
        api = self.server.api
        watch = store.watch(req.kind, req.namespace, options)  # refusals happen before the 200
        self._watch_req = req
        api._streaming_watch(self.connection, True)
        try:
            self._stream(watch, options)
        finally:
            api._streaming_watch(self.connection, False)

    def _stream(self, watch: Watch, options: ListOptions) -> None:
        api = self.server.api
        self._code = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._sent_headers = True
        now = time.monotonic()
        deadline = now + options.timeout_seconds if options.timeout_seconds else None
        interval = api.bookmark_interval if options.allow_bookmarks else None
        next_bookmark = now + interval if interval else None
        sent = len(watch.initial)
        self._write_frames(watch.initial)
        logger.debug("watch %s: opened at %d, %d initial frames", self.path, watch.position, sent)
        while not watch.closed and not api.stopping.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = min(
                _IDLE_POLL,
                deadline - now if deadline is not None else _IDLE_POLL,
                max(0.0, next_bookmark - now) if next_bookmark is not None else _IDLE_POLL,
            )
            frames = watch.next_frames(wait, api.stopping)
            if next_bookmark is not None and interval and time.monotonic() >= next_bookmark:
                frames.append(watch.bookmark())
                next_bookmark = time.monotonic() + interval
            if frames:
                self._write_frames(frames)
                sent += len(frames)
            elif self._client_gone():
                self.close_connection = True
                logger.debug("watch %s: client went away after %d frames", self.path, sent)
                return
        if api.stopping.is_set():
            self.close_connection = True
        self.wfile.write(b"0\r\n\r\n")
        logger.debug("watch %s: ended after %d frames", self.path, sent)

    def _write_frames(self, frames: list[dict[str, Any]]) -> None:
        if not frames:
            return
        if self._as_table:
            req = self._watch_req
            frames = [
                f if f["type"] in ("BOOKMARK", "ERROR") else {
                    "type": f["type"],
                    "object": self._table(
                        req.kind,
                        [f["object"]],
                        {"resourceVersion": f["object"]["metadata"].get("resourceVersion", "")},
                        req,
                    ),
                }
                for f in frames
            ]  # fmt: skip
        data = b"".join(json.dumps(f, separators=(",", ":")).encode() + b"\n" for f in frames)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _client_gone(self) -> bool:
        """True when the client closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True
