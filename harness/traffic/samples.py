"""Samples: one compact record per request sent by the traffic engine, in numpy columns.

Every verdict downstream (weights, gaps) is computed from these records, so they must account
for every request the engine was asked to make: a request that failed is recorded with its error
class, one that was never sent is recorded as ``NOT_SENT``. Nothing is dropped or re-sent.

Layout (45 bytes per request; the budget is 64)::

    column     dtype    meaning
    scheduled  float64  when the request was due, seconds after ``t0`` (open loop: t0 + i/rate;
                        closed loop: when a connection became free for it); NaN if never due
    sent       float64  when the engine started it (connect start if it needed a new connection,
                        else the write), seconds after ``t0``; NaN if not sent
    latency    float32  seconds from ``sent`` to the end of the response (or to the error)
    lag        float32  how late the sender itself was, taken at ``sent``: ``sent`` minus when the
                        request could have gone out (``scheduled``, or, when it had to wait for
                        a free connection, the moment one became free). Waiting for a connection
                        is not the sender's lateness: it is the target's, and it counts in the
                        request's response time (``sent - scheduled - lag`` is that wait)
    status     uint16   HTTP status received (0 if none); a response counts only if error == NONE
    error      uint8    ErrorClass
    backend    uint16   index into ``backend_names`` (whoami ``Name:``; 0 = unknown)
    instance   uint16   index into ``instance_names`` (whoami ``Hostname:``; 0 = unknown)
    replica    uint16   index into ``replica_names`` (``X-Forwarded-Server`` echoed; 0 = unknown)
    path       uint32   index into ``path_names`` (request target the backend saw; 0 = unknown)
    spec       uint32   index into ``spec_labels`` (which request spec was sent)
    conn       uint32   serial number of the connection it went on (unique within a run)

Times are seconds after ``t0`` on the monotonic clock (``t0_monotonic``; ``t0_wall`` is the same
instant as a Unix time), so records from several processes and several runs line up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "COLUMNS",
    "ErrorClass",
    "Interner",
    "Samples",
    "empty_columns",
]


class ErrorClass(IntEnum):
    """Why a request did not yield a complete HTTP response (NONE: it did)."""

    NONE = 0
    #: No complete response within the timeout, counted from the scheduled time (waiting for a
    #: connection, connecting, writing and awaiting the answer all count; never sent if it
    #: was still waiting for a connection).
    TIMEOUT = 1
    #: Connection refused (nothing listening).
    REFUSED = 2
    #: Connection reset or closed before the response was complete.
    RESET = 3
    #: The peer answered something that is not HTTP/1.x.
    PROTOCOL = 4
    #: Never sent: the run's deadline came first.
    NOT_SENT = 5
    #: Sent, still in flight when the run's deadline passed.
    ABORTED = 6
    #: Any other failure to connect or send (e.g. out of ports or file descriptors).
    OTHER = 7
    #: No answer within the open loop's latency budget, counted from the scheduled time: a
    #: complete answer that came too late (its status, backend and latency are kept), or a
    #: request still waiting for a free connection when its budget ran out (status 0, unsent).
    SLOW = 8

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


#: Column name -> dtype, in record order.
COLUMNS: Mapping[str, np.dtype[Any]] = {
    "scheduled": np.dtype(np.float64),
    "sent": np.dtype(np.float64),
    "latency": np.dtype(np.float32),
    "lag": np.dtype(np.float32),
    "status": np.dtype(np.uint16),
    "error": np.dtype(np.uint8),
    "backend": np.dtype(np.uint16),
    "instance": np.dtype(np.uint16),
    "replica": np.dtype(np.uint16),
    "path": np.dtype(np.uint32),
    "spec": np.dtype(np.uint32),
    "conn": np.dtype(np.uint32),
}

#: Name tables and the column they index.
_TABLES = {
    "backend": "backend_names",
    "instance": "instance_names",
    "replica": "replica_names",
    "path": "path_names",
    "spec": "spec_labels",
}

#: Largest index each interned column can hold.
_TABLE_LIMITS = {col: int(np.iinfo(COLUMNS[col]).max) for col in _TABLES}


def empty_columns(
    n: int, given: Mapping[str, npt.NDArray[Any]] | None = None
) -> dict[str, npt.NDArray[Any]]:
    """Columns for ``n`` requests, every one recorded as not sent (so nothing can go missing).

    ``given`` columns (e.g. the spec index, the schedule) are used as they are, not copied.
    """
    given = given or {}
    cols: dict[str, npt.NDArray[Any]] = {}
    for name, dtype in COLUMNS.items():
        array = given.get(name)
        if array is None:
            cols[name] = np.zeros(n, dtype)
            if name == "scheduled":
                cols[name].fill(np.nan)
        else:
            if array.dtype != dtype or array.shape != (n,) or not array.flags.writeable:
                raise ValueError(f"column {name!r} must be a writable {dtype} array of {n}")
            cols[name] = array
    cols["sent"].fill(np.nan)
    cols["latency"].fill(np.nan)
    cols["error"].fill(ErrorClass.NOT_SENT)
    return cols


class Interner:
    """Maps names (bytes as received) to small integers; index 0 is the unknown name ''."""

    __slots__ = ("_index", "limit", "names")

    def __init__(self, limit: int = 65535) -> None:
        self._index: dict[bytes, int] = {b"": 0}
        self.names: list[bytes] = [b""]
        self.limit = limit

    def __call__(self, name: bytes) -> int:
        index = self._index.get(name)
        if index is None:
            index = len(self.names)
            if index > self.limit:
                # More distinct names than the column can hold: lump the rest as unknown rather
                # than wrap around and misattribute them.
                return 0
            self._index[name] = index
            self.names.append(name)
        return index

    def decoded(self) -> tuple[str, ...]:
        return tuple(n.decode("utf-8", "replace") for n in self.names)


def _remap(
    local: Sequence[str], index: dict[str, int], table: list[str], limit: int
) -> npt.NDArray[np.int64]:
    """Index array turning local table indices into indices of the merged ``table``."""
    out = np.zeros(len(local), np.int64)
    for i, name in enumerate(local):
        j = index.get(name)
        if j is None:
            j = len(table)
            if j > limit:
                j = 0
            else:
                index[name] = j
                table.append(name)
        out[i] = j
    return out


def _quantiles(values: npt.NDArray[Any], qs: Sequence[float]) -> dict[str, float | None]:
    keys = [f"p{q * 100:g}" for q in qs]
    if values.size == 0:
        return dict.fromkeys(keys)
    found = np.quantile(values.astype(np.float64), qs)
    return {k: float(v) for k, v in zip(keys, found, strict=True)}


@dataclass(frozen=True, eq=False)
class Samples:
    """The records of one traffic run (or several, concatenated). See the module docstring."""

    columns: Mapping[str, npt.NDArray[Any]]
    backend_names: tuple[str, ...] = ("",)
    instance_names: tuple[str, ...] = ("",)
    replica_names: tuple[str, ...] = ("",)
    path_names: tuple[str, ...] = ("",)
    spec_labels: tuple[str, ...] = ()
    t0_monotonic: float = 0.0
    t0_wall: float = 0.0
    #: How the run was made (mode, url, rate, concurrency, ...) and how it ended.
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(COLUMNS) - set(self.columns)
        if missing:
            raise ValueError(f"Samples is missing columns {sorted(missing)}")
        sizes = {len(self.columns[c]) for c in COLUMNS}
        if len(sizes) > 1:
            raise ValueError(f"Samples columns differ in length: {sizes}")

    # -- columns ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.columns["error"])

    @property
    def scheduled(self) -> npt.NDArray[np.float64]:
        return self.columns["scheduled"]

    @property
    def sent(self) -> npt.NDArray[np.float64]:
        return self.columns["sent"]

    @property
    def latency(self) -> npt.NDArray[np.float32]:
        return self.columns["latency"]

    @property
    def lag(self) -> npt.NDArray[np.float32]:
        return self.columns["lag"]

    @property
    def status(self) -> npt.NDArray[np.uint16]:
        return self.columns["status"]

    @property
    def error(self) -> npt.NDArray[np.uint8]:
        return self.columns["error"]

    @property
    def backend(self) -> npt.NDArray[np.uint16]:
        return self.columns["backend"]

    @property
    def instance(self) -> npt.NDArray[np.uint16]:
        return self.columns["instance"]

    @property
    def replica(self) -> npt.NDArray[np.uint16]:
        return self.columns["replica"]

    @property
    def path(self) -> npt.NDArray[np.uint32]:
        return self.columns["path"]

    @property
    def spec(self) -> npt.NDArray[np.uint32]:
        return self.columns["spec"]

    @property
    def conn(self) -> npt.NDArray[np.uint32]:
        return self.columns["conn"]

    @property
    def nbytes(self) -> int:
        """Memory held by the columns (the name tables are small and bounded)."""
        return int(sum(a.nbytes for a in self.columns.values()))

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        """Requests that got a complete HTTP response (any status) in time (not ``SLOW``)."""
        mask: npt.NDArray[np.bool_] = self.error == ErrorClass.NONE
        return mask

    @property
    def finished(self) -> npt.NDArray[np.float64]:
        """When each request ended (response or error), seconds after t0; NaN if not sent."""
        return self.sent + self.latency.astype(np.float64)

    @property
    def response_time(self) -> npt.NDArray[np.float64]:
        """End minus *scheduled* time: latency including any wait the sender imposed (what a
        user of an open-loop service experiences; coordinated omission cannot hide here)."""
        return self.finished - self.scheduled

    # -- counting ----------------------------------------------------------------------------

    def _good(self) -> npt.NDArray[np.bool_]:
        """Complete, in-time answers with a success status (2xx/3xx): an answer of an error
        status is a failure (see :meth:`failure_counts`), whoever sent it."""
        mask: npt.NDArray[np.bool_] = self.ok & (self.status >= 200) & (self.status < 400)
        return mask

    def _classified(self) -> npt.NDArray[np.bool_]:
        mask: npt.NDArray[np.bool_] = self._good() & (self.backend != 0)
        return mask

    def unattributed_count(self) -> int:
        """Good answers that name no backend (no whoami ``Name:`` line): an unknown answerer,
        which a split check counts against the split, never drops."""
        return int(np.count_nonzero(self._good() & (self.backend == 0)))

    def counts_by_backend(self) -> dict[str, int]:
        """Good answers (2xx/3xx) that name their backend, per backend (the weights' input)."""
        counts = np.bincount(self.backend[self._classified()], minlength=len(self.backend_names))
        return {self.backend_names[i]: int(n) for i, n in enumerate(counts) if i and n}

    def counts_by_instance(self) -> dict[tuple[str, str], int]:
        """Good answers (2xx/3xx) per (backend, instance)."""
        mask = self._good() & (self.instance != 0)
        pairs = self.backend[mask].astype(np.int64) << 16 | self.instance[mask]
        keys, counts = np.unique(pairs, return_counts=True)
        return {
            (self.backend_names[k >> 16], self.instance_names[k & 0xFFFF]): int(n)
            for k, n in zip(keys.tolist(), counts.tolist(), strict=True)
        }

    def counts_by_replica(self) -> dict[str, dict[str, int]]:
        """Successful classified responses per proxy replica ('' = not known), then per backend."""
        mask = self._classified()
        out: dict[str, dict[str, int]] = {}
        reps, backs = self.replica[mask], self.backend[mask]
        for r in np.unique(reps).tolist():
            counts = np.bincount(backs[reps == r], minlength=len(self.backend_names))
            out[self.replica_names[r]] = {
                self.backend_names[i]: int(n) for i, n in enumerate(counts) if i and n
            }
        return out

    def error_counts(self) -> dict[str, int]:
        """Requests per error class, every class listed (zeros too), 'none' = got a response."""
        counts = np.bincount(self.error, minlength=len(ErrorClass))
        return {e.label: int(counts[e]) for e in ErrorClass}

    def status_counts(self) -> dict[int, int]:
        """Complete responses per HTTP status."""
        statuses, counts = np.unique(self.status[self.ok], return_counts=True)
        return dict(zip(statuses.tolist(), counts.tolist(), strict=True))

    def failure_counts(self, *, good: Iterable[int] = range(200, 400)) -> dict[str, int]:
        """Failed requests by kind: an HTTP status outside ``good`` ('404', '502', ...) or an
        error class ('refused', 'reset', 'timeout', 'not sent', ...). Zero counts omitted."""
        good_set = set(good)
        out = {str(s): n for s, n in self.status_counts().items() if s not in good_set}
        for label, n in self.error_counts().items():
            if label != "none" and n:
                out[label] = n
        return out

    # -- summaries ---------------------------------------------------------------------------

    def span(self) -> float:
        """Seconds from the first send to the last end (0 when nothing was sent)."""
        sent = self.sent[~np.isnan(self.sent)]
        if sent.size == 0:
            return 0.0
        ends = self.finished
        return float(np.nanmax(ends) - sent.min())

    def rate(self) -> float:
        """Complete responses per second over :meth:`span`."""
        span = self.span()
        return float(np.count_nonzero(self.ok) / span) if span > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: counts, classes, per-backend counts, latency, sender lag."""
        ok = self.ok
        lat = self.latency[ok]
        sent_mask = ~np.isnan(self.sent)
        lag = self.lag[sent_mask]
        span = self.span()
        return {
            "requests": len(self),
            "responses": int(np.count_nonzero(ok)),
            "errors": self.error_counts(),
            "statuses": {str(k): v for k, v in self.status_counts().items()},
            "failures": self.failure_counts(),
            "by_backend": self.counts_by_backend(),
            "by_instance": {f"{b}/{i}": n for (b, i), n in self.counts_by_instance().items()},
            "by_replica": self.counts_by_replica(),
            "span_s": span,
            "rate_per_s": self.rate(),
            "latency_s": _quantiles(lat, (0.5, 0.9, 0.99, 0.999)),
            "lag_s": _quantiles(lag, (0.5, 0.99)),
            "connections": int(np.unique(self.conn[sent_mask]).size),
            "nbytes": self.nbytes,
            "bytes_per_request": self.nbytes / len(self) if len(self) else math.nan,
            "meta": dict(self.meta),
        }

    # -- combining ---------------------------------------------------------------------------

    def subset(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]) -> Samples:
        """The records selected by a boolean mask or an index array (name tables kept)."""
        return replace(self, columns={k: v[mask] for k, v in self.columns.items()})

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        """One Samples with the records of ``parts`` in order, name tables merged, times rebased
        to the earliest ``t0``."""
        if not parts:
            raise ValueError("Samples.concat needs at least one part")
        t0 = min(p.t0_monotonic for p in parts)
        first = min(parts, key=lambda p: p.t0_monotonic)
        tables: dict[str, list[str]] = {t: [""] for t in _TABLES.values()}
        tables["spec_labels"] = []
        indexes: dict[str, dict[str, int]] = {t: {"": 0} for t in _TABLES.values()}
        indexes["spec_labels"] = {}
        cols: dict[str, list[npt.NDArray[Any]]] = {c: [] for c in COLUMNS}
        for part in parts:
            shift = part.t0_monotonic - t0
            for col, dtype in COLUMNS.items():
                values = part.columns[col]
                table_name = _TABLES.get(col)
                if table_name is not None:
                    remap = _remap(
                        getattr(part, table_name),
                        indexes[table_name],
                        tables[table_name],
                        _TABLE_LIMITS[col],
                    )
                    values = remap[values].astype(dtype) if len(remap) else values
                elif col in ("scheduled", "sent") and shift:
                    values = values + shift
                cols[col].append(values)
        return cls(
            columns={c: np.concatenate(v).astype(COLUMNS[c], copy=False) for c, v in cols.items()},
            backend_names=tuple(tables["backend_names"]),
            instance_names=tuple(tables["instance_names"]),
            replica_names=tuple(tables["replica_names"]),
            path_names=tuple(tables["path_names"]),
            spec_labels=tuple(tables["spec_labels"]),
            t0_monotonic=t0,
            t0_wall=first.t0_wall,
            meta={**first.meta, "parts": len(parts)},
        )

    def __add__(self, other: Samples) -> Samples:
        return Samples.concat([self, other])
