"""Sending probes and recording what came back.

Each probe is sent many times, in rounds (every probe once per round), so that repetitions are
spread over the whole phase rather than bunched together, and a configuration reload is made
between two rounds, so a behaviour that differs between reloads (a priority tie resolved one way,
then the other) shows up. Nothing is retried: every answer is recorded.

The whole of it has a deadline (:func:`probing_deadline`): a proxy that stops answering costs a
couple of timeouts, not a timeout per probe and round.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.backends.whoami import parse_whoami
from harness.checks.probes import Probe
from harness.errors import TargetUnreachable

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
    """One answer, reduced to what the exact verdicts judge."""

    status: int | None
    backend: str | None = None
    instance: str | None = None
    upstream_path: str | None = None
    forwarded_prefix: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return f"error {self.error}"
        if self.backend is None:
            return f"{self.status} (no backend answered)"
        xfp = f", X-Forwarded-Prefix {self.forwarded_prefix}" if self.forwarded_prefix else ""
        instance = f" ({self.instance})" if self.instance else ""
        return f"{self.status} from {self.backend}{instance} as {self.upstream_path}{xfp}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "backend": self.backend,
            "instance": self.instance,
            "upstream_path": self.upstream_path,
            "forwarded_prefix": self.forwarded_prefix,
            "error": self.error,
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
    try:
        response = client.request(
            probe.method, "/", headers=headers, extensions={"target": probe.path.encode("utf-8")}
        )
    except httpx.TimeoutException:
        return Observation(status=None, error="timeout")
    except httpx.ConnectError:
        return Observation(status=None, error="refused")
    except httpx.RemoteProtocolError:
        return Observation(status=None, error="reset")
    except httpx.HTTPError as exc:
        return Observation(status=None, error=type(exc).__name__)
    try:
        reply = parse_whoami(response.content, response.headers.get("content-type"))
    except ValueError:
        # Not a backend's answer: the proxy's own (404 page, 502, ...).
        return Observation(status=response.status_code)
    return Observation(
        status=response.status_code,
        backend=service_of(reply.name),
        instance=reply.hostname,
        upstream_path=reply.path_only,
        forwarded_prefix=reply.header("X-Forwarded-Prefix"),
    )


def send_in_rounds(
    proxy_url: str,
    probes: Sequence[Probe],
    *,
    rounds: int = DEFAULT_ROUNDS,
    reload: Callable[[], bool] | None = None,
    service_of: Callable[[str | None], str | None] = lambda name: name,
    timeout: float = 5.0,
) -> ProbeRun:
    """Send every probe ``rounds`` times, one round after the other, reloading the proxy's
    configuration once halfway through (when ``reload`` is given and can reload).

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
    with httpx.Client(base_url=proxy_url, timeout=timeout, trust_env=False) as client:
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
                client.timeout = httpx.Timeout(min(timeout, left))
                observation = observe(client, probe, service_of)
                sent += 1
                failed += observation.error is not None
                records[probe.id].observations[observation] += 1
    return ProbeRun(records, rounds, reload_after, time.monotonic() - started)
