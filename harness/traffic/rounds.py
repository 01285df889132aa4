"""Sending probes and recording what came back.

Each probe is sent many times, in rounds (every probe once per round), so that repetitions are
spread over the whole phase rather than bunched together, and a configuration reload is made
between two rounds, so a behaviour that differs between reloads (a priority tie resolved one way,
then the other) shows up. Nothing is retried: every answer is recorded.

The whole of it has a deadline (:func:`probing_deadline`): a proxy that stops answering costs a
couple of timeouts, not a timeout per probe and round.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.backends.whoami import parse_whoami
from harness.checks.probes import Probe
from harness.errors import TargetUnreachable
from harness.traefik.entrypoints import Arrival
from harness.traffic.tls import UNVERIFIED, TLSVerify

#: Default number of times each probe is sent.
DEFAULT_ROUNDS = 50
#: What one answer may take on average, beyond the deadline's two timeouts: a probe through a
#: local Traefik takes 1-3 ms here, 20 ms on a loaded machine.
ANSWER_ALLOWANCE_S = 0.05


def probing_deadline(rounds: int, probes: int, timeout: float) -> float:
    """Seconds that ``rounds`` rounds of ``probes`` probes may take (reloads not counted): two
    timeouts plus ``ANSWER_ALLOWANCE_S`` per request."""
    return 2 * timeout + rounds * probes * ANSWER_ALLOWANCE_S


@dataclass(frozen=True)
class Observation:
    """One answer, reduced to what the exact verdicts judge: besides status, backend and path,
    the ``Location``, the Host the backend saw, and the request and response headers the
    probe's expectation names (those a middleware sets or removes; ``()``/None: absent)."""

    status: int | None
    backend: str | None = None
    instance: str | None = None
    upstream_path: str | None = None
    forwarded_prefix: str | None = None
    error: str | None = None
    location: str | None = None
    host: str | None = None
    request_headers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    response_headers: tuple[tuple[str, str | None], ...] = ()
    #: The other request headers the backend received (name, values joined by ", "), sorted:
    #: what the proxy added or changed on the way (X-Forwarded-*, X-Real-Ip, ...). Not judged by
    #: the exact verdicts; the pre-release gate compares them between runs.
    headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        if self.error is not None:
            return f"error {self.error}"
        shown = "".join(
            f", response {k}: {'absent' if v is None else v}" for k, v in self.response_headers
        )
        if self.backend is None:
            to = f" to {self.location}" if self.location is not None else ""
            return f"{self.status}{to} (no backend answered){shown}"
        xfp = f", X-Forwarded-Prefix {self.forwarded_prefix}" if self.forwarded_prefix else ""
        instance = f" ({self.instance})" if self.instance else ""
        seen = "".join(f", {k}: {', '.join(v) if v else 'absent'}" for k, v in self.request_headers)
        return (
            f"{self.status} from {self.backend}{instance} as {self.upstream_path}{xfp}{seen}{shown}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "backend": self.backend,
            "instance": self.instance,
            "upstream_path": self.upstream_path,
            "forwarded_prefix": self.forwarded_prefix,
            "error": self.error,
            "location": self.location,
            "host": self.host,
            "request_headers": {k: list(v) for k, v in self.request_headers},
            "response_headers": dict(self.response_headers),
            "headers": dict(self.headers),
        }


@dataclass
class ProbeRecord:
    """All answers to one probe."""

    probe: Probe
    observations: Counter[Observation] = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return sum(self.observations.values())


@dataclass
class ProbeRun:
    """The result of sending a set of probes in rounds."""

    records: dict[str, ProbeRecord]
    rounds: int
    reload_after_round: int | None
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "reload_after_round": self.reload_after_round,
            "duration": self.duration,
        }


def observe(
    client: httpx.Client, probe: Probe, service_of: Callable[[str | None], str | None]
) -> Observation:
    """Send ``probe`` once. Transport errors are recorded by class, never raised or retried.
    The request-target goes on the wire exactly as the probe has it (httpx would resolve dot
    segments and re-encode it)."""
    headers = {"Host": probe.host, **dict(probe.headers)}
    # Over HTTPS the SNI is the probe's host too (the certificate follows the SNI).
    extensions = {"sni_hostname": probe.host} if client.base_url.scheme == "https" else {}
    try:
        response = client.request(
            probe.method,
            "/",
            headers=headers,
            extensions={**extensions, "target": probe.path.encode("utf-8")},
        )
    except httpx.TimeoutException:
        return Observation(status=None, error="timeout")
    except httpx.ConnectError as exc:
        certificate = _certificate_error(exc)
        if certificate is not None:
            return Observation(status=None, error=f"certificate for {probe.host}: {certificate}")
        return Observation(status=None, error="refused")
    except httpx.RemoteProtocolError:
        return Observation(status=None, error="reset")
    except httpx.HTTPError as exc:
        return Observation(status=None, error=type(exc).__name__)
    # Redirects are answers to judge, not to follow (httpx does not follow them by default).
    location = response.headers.get("location")
    response_headers = tuple(
        (name, response.headers.get(name)) for name in probe.expectation.response_header_names
    )
    try:
        reply = parse_whoami(response.content, response.headers.get("content-type"))
    except ValueError:
        # Not a backend's answer: the proxy's own (404 page, 502, a redirect, ...).
        return Observation(
            status=response.status_code, location=location, response_headers=response_headers
        )
    return Observation(
        status=response.status_code,
        backend=service_of(reply.name),
        instance=reply.hostname,
        upstream_path=reply.path,
        forwarded_prefix=reply.header("X-Forwarded-Prefix"),
        location=location,
        host=reply.host,
        request_headers=tuple(
            (name, reply.header_values(name)) for name in probe.expectation.request_header_names
        ),
        response_headers=response_headers,
        headers=upstream_headers(reply.headers),
    )


def upstream_headers(headers: Mapping[str, Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """The request headers a backend reports, as :attr:`Observation.headers` records them:
    every one but X-Forwarded-Prefix (a field of its own), values joined, sorted by name."""
    return tuple(sorted((k, ", ".join(v)) for k, v in headers.items() if k != "X-Forwarded-Prefix"))


def _certificate_error(exc: httpx.ConnectError) -> str | None:
    """Why the proxy's certificate was refused, or None when the connection failed otherwise."""
    cause: BaseException | None = exc
    for _ in range(5):  # httpx -> httpcore -> ssl
        if cause is None:
            return None
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None


class _Clients:
    """One httpx client per base URL and certificate check, opened when first needed."""

    def __init__(self, timeout: float, tls: TLSVerify) -> None:
        self.timeout = timeout
        self.contexts = {True: tls.context(), False: UNVERIFIED.context()}
        self.open: dict[tuple[str, bool], httpx.Client] = {}

    def get(self, base_url: str, verify: bool) -> httpx.Client:
        key = (base_url, verify and base_url.startswith("https:"))
        client = self.open.get(key)
        if client is None:
            client = httpx.Client(
                base_url=base_url,
                timeout=self.timeout,
                trust_env=False,
                verify=self.contexts[key[1]],
            )
            self.open[key] = client
        return client

    def close(self) -> None:
        for client in self.open.values():
            client.close()


def send_in_rounds(
    proxy_url: str,
    probes: Sequence[Probe],
    *,
    rounds: int = DEFAULT_ROUNDS,
    reload: Callable[[], bool] | None = None,
    service_of: Callable[[str | None], str | None] = lambda name: name,
    timeout: float = 5.0,
    url_at: Callable[[Arrival], str] | None = None,
    tls: TLSVerify | None = None,
) -> ProbeRun:
    """Send every probe ``rounds`` times, one round after the other, reloading the proxy's
    configuration once halfway through (when ``reload`` is given and can reload).

    A probe with an arrival goes to ``url_at(arrival)`` (its entry point, in its scheme), one
    without to ``proxy_url``. Over HTTPS the SNI is the probe's host; the certificate is
    checked (``tls``, default: the system's CAs) on probes a route is expected to answer, so a
    certificate that is not for the host fails them; on the others only the status counts.

    Raises TargetUnreachable when the probing takes longer than :func:`probing_deadline` (the
    reload's own time is not counted: it is bounded by its own waits); no request waits past
    the deadline."""
    if rounds < 1:
        raise ValueError("`rounds` must be at least 1")
    records = {p.id: ProbeRecord(p) for p in probes}
    reload_after: int | None = None
    started = time.monotonic()
    allowed = probing_deadline(rounds, len(probes), timeout)
    deadline = started + allowed
    sent = failed = 0
    clients = _Clients(timeout, tls or TLSVerify())
    with contextlib.closing(clients):
        for index in range(rounds):
            if reload is not None and index == rounds // 2 and index > 0:
                reload_started = time.monotonic()
                if reload():
                    reload_after = index
                deadline += time.monotonic() - reload_started
            for probe in probes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TargetUnreachable(
                        f"{proxy_url}: probing did not finish within {allowed:g} s ({rounds} "
                        f"rounds of {len(probes)} probes, timeout {timeout:g} s each): after "
                        f"{sent} requests, in round {index + 1}, {failed} had got no answer. "
                        "Has the proxy stopped answering?"
                    )
                base = (
                    proxy_url if probe.arrival is None or url_at is None else url_at(probe.arrival)
                )
                client = clients.get(base, probe.expectation.decided_by is not None)
                client.timeout = httpx.Timeout(min(timeout, left))
                observation = observe(client, probe, service_of)
                sent += 1
                failed += observation.error is not None
                records[probe.id].observations[observation] += 1
    return ProbeRun(records, rounds, reload_after, time.monotonic() - started)
