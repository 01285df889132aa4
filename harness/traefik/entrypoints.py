"""Entry points and TLS: which routers Traefik 3.7 serves to a request, by where it arrived.

A router is bound to entry points (``router.entrypoints``, IngressRoute ``entryPoints``); one
that names none is served on every default entry point (all but the API's ``traefik``, unless
some are marked ``asDefault``). A TLS router (``router.tls``, IngressRoute ``tls``) answers
over HTTPS only, any other router over plain HTTP only: an entry point without TLS of its own
(``http.tls``) serves both kinds side by side, telling them apart by the TLS handshake. So a
request that arrives at an entry point the router is not bound to, or in the other scheme,
gets 404 (confirmed on the binary: ``tests/test_traefik_requests.py``). The certificate
follows the SNI, the router the Host header.

The local target serves :data:`LOCAL_ENTRY_POINTS`, none with TLS of its own (Traefik's
default), so TLS is what each router declares. ``webalt`` exists with the Gateway provider
only: a Gateway's second HTTP listener port is served there (``web`` serves the first,
``websecure`` the HTTPS listener port; :func:`harness.traefik.gateway.listener_entry_points`).
It is probed only when a route is bound to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.intent.model import Intent, Route

WEB = "web"
WEBSECURE = "websecure"
WEBALT = "webalt"
#: The local target's entry points, in the order probes are sent.
LOCAL_ENTRY_POINTS: tuple[str, ...] = (WEB, WEBSECURE, WEBALT)
#: The entry points probed for every intent that declares entry points or TLS (the others:
#: when a route is bound to them).
_ALWAYS_PROBED = (WEB, WEBSECURE)


@dataclass(frozen=True)
class Arrival:
    """Where a request reaches Traefik: an entry point, over HTTPS or plain HTTP."""

    entry_point: str
    https: bool

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    def label(self) -> str:
        """``https@websecure``: how probe ids and messages name it."""
        return f"{self.scheme}@{self.entry_point}"

    def to_dict(self) -> dict[str, Any]:
        return {"entry_point": self.entry_point, "https": self.https}


#: Where the local target's probes go when no route declares entry points or TLS.
PLAIN_WEB = Arrival(WEB, https=False)
#: Every entry point of the local target in both schemes.
LOCAL_ARRIVALS: tuple[Arrival, ...] = tuple(
    Arrival(ep, https) for ep in LOCAL_ENTRY_POINTS for https in (False, True)
)


def serves(route: Route, arrival: Arrival) -> bool:
    """True when Traefik serves ``route`` to a request arriving at ``arrival``."""
    bound = route.entry_points is None or arrival.entry_point in route.entry_points
    return bound and route.tls == arrival.https


def serving_routes(routes: Iterable[Route], arrival: Arrival | None) -> tuple[Route, ...]:
    """The routes a request arriving at ``arrival`` can reach (all of them for None: a target
    whose entry point is not known, such as a proxy URL given by the user)."""
    if arrival is None:
        return tuple(routes)
    return tuple(r for r in routes if serves(r, arrival))


def declares_entry_points_or_tls(intent: Intent) -> bool:
    """True when some route is bound to entry points, is a TLS router or names a certificate."""
    return any(r.entry_points is not None or r.declares_tls for r in intent.routes)


def local_arrivals(intent: Intent) -> tuple[Arrival, ...]:
    """Where the local target probes ``intent``: plain HTTP on ``web`` when no route declares
    entry points or TLS (every route is then served there); otherwise ``web``, ``websecure``
    and each other entry point a route is bound to, in both schemes, so a route is seen to
    answer where it is bound, in its scheme, and 404 elsewhere."""
    if not declares_entry_points_or_tls(intent):
        return (PLAIN_WEB,)
    bound = {ep for r in intent.routes for ep in r.entry_points or ()}
    return tuple(
        a for a in LOCAL_ARRIVALS if a.entry_point in _ALWAYS_PROBED or a.entry_point in bound
    )


def arrival_for(route: Route, arrivals: Sequence[Arrival]) -> Arrival | None:
    """The first of ``arrivals`` that serves ``route`` (where bulk traffic for it goes), or
    None when none does."""
    return next((a for a in arrivals if serves(route, a)), None)
