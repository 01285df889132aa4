"""Request conditions (headers, query parameters, method, cookies): how a request is read,
what the oracle predicts, which probes are derived, and the real Traefik agreeing with all of it
(an IngressRoute with ``Header``, ``Query``, ``Method`` and ``HeaderRegexp`` matchers); a
changed condition applied behind the oracle's back fails exactly the probes that carry it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from applied_verdicts import routing_verdicts

from harness.checks.probes import generate_probes, probe_for
from harness.intent.dialects import load_intent
from harness.intent.model import Intent, RequestCondition
from harness.targets.base import LocalTarget
from harness.traefik.conditions import condition_met, parse_cookies, parse_query
from harness.traefik.oracle import expect


def test_the_query_is_read_as_go_reads_it() -> None:
    assert parse_query("a=1&b=x+y&c=%41&d") == [("a", "1"), ("b", "x y"), ("c", "A"), ("d", "")]
    # A pair with a ';' or a malformed escape is dropped, the others kept.
    assert parse_query("a=1;b=2&c=%zz&e=%4&f=3") == [("f", "3")]


def test_cookies_come_from_every_cookie_header() -> None:
    headers = [("Cookie", "a=1; canary=always"), ("cookie", 'b="2"'), ("X", "c=3")]
    assert parse_cookies(headers) == [("a", "1"), ("canary", "always"), ("b", "2")]


@pytest.mark.parametrize(
    ("condition", "method", "headers", "query", "met"),
    [
        (
            RequestCondition("header", "X-Canary", "always"),
            "GET",
            [("x-canary", "always")],
            "",
            True,
        ),
        (
            RequestCondition("header", "X-Canary", "always"),
            "GET",
            [("X-Canary", "Always")],
            "",
            False,
        ),
        # One of the values of a header sent twice is enough.
        (
            RequestCondition("header", "X-Canary", "always"),
            "GET",
            [("X-Canary", "never"), ("X-Canary", "always")],
            "",
            True,
        ),
        # A regex is found anywhere in the value, as Go's MatchString does.
        (
            RequestCondition("header", "X-Id", "[0-9]+", "regex"),
            "GET",
            [("X-Id", "ab12")],
            "",
            True,
        ),
        (
            RequestCondition("header", "X-Id", "^[0-9]+$", "regex"),
            "GET",
            [("X-Id", "ab12")],
            "",
            False,
        ),
        (RequestCondition("query", "v", "2"), "GET", [], "v=1&v=2", True),
        (RequestCondition("query", "v", "2"), "GET", [], "v=1;v=2", False),
        (RequestCondition("method", "", "POST"), "POST", [], "", True),
        (RequestCondition("method", "", "POST"), "GET", [], "", False),
        (
            RequestCondition("cookie", "canary", "always"),
            "GET",
            [("Cookie", "canary=always")],
            "",
            True,
        ),
        (
            RequestCondition("cookie", "canary", "always"),
            "GET",
            [("Cookie", "canary=no")],
            "",
            False,
        ),
    ],
)
def test_conditions_are_met_as_traefik_reads_the_request(
    condition: RequestCondition, method: str, headers: list[tuple[str, str]], query: str, met: bool
) -> None:
    assert condition_met(condition, method, headers, query) is met


SERVICES = "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: http, port: 80}}]}}
"""
    for name in ("cheddar", "wensleydale", "stilton")
)


def _manifest(tmp_path: Path, canary_value: str = "always") -> Path:
    path = tmp_path / f"conditions-{canary_value}.yaml"
    path.write_text(
        SERVICES
        + f"""---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: conditions}}
spec:
  routes:
  - match: Host(`cond.test`) && PathPrefix(`/api`)
    services: [{{name: cheddar, port: 80}}]
  - match: Host(`cond.test`) && PathPrefix(`/api`) && Header(`X-Canary`, `{canary_value}`)
    services: [{{name: wensleydale, port: 80}}]
  - match: Host(`cond.test`) && PathPrefix(`/api`) && Query(`v`, `2`) && Method(`PUT`)
    services: [{{name: stilton, port: 80}}]
  - match: Host(`cond.test`) && Path(`/id`) && HeaderRegexp(`X-Id`, `^[0-9]+$`)
    services: [{{name: stilton, port: 80}}]
"""
    )
    return path


def _backend(intent: Intent, path: str, **kw: Any) -> str | None:
    backends = expect(intent, "cond.test", path, **kw).backends
    return backends[0].service if backends else None


def test_the_oracle_routes_on_the_conditions(tmp_path: Path) -> None:
    intent = load_intent([_manifest(tmp_path)])
    canary = next(r for r in intent.routes if r.conditions and r.conditions[0].kind == "header")
    assert canary.conditions[0].source is not None and canary.conditions[0].source.line > 0
    assert _backend(intent, "/api/x") == "cheddar"
    assert _backend(intent, "/api/x", headers=[("X-Canary", "always")]) == "wensleydale"
    assert _backend(intent, "/api/x", headers=[("X-Canary", "never")]) == "cheddar"
    assert _backend(intent, "/api?v=2", method="PUT") == "stilton"
    assert _backend(intent, "/api?v=2") == "cheddar"
    assert _backend(intent, "/id", headers=[("X-Id", "42")]) == "stilton"
    assert expect(intent, "cond.test", "/id", headers=[("X-Id", "4a")]).status == 404


def test_probes_carry_each_condition_and_break_each_one(tmp_path: Path) -> None:
    probes = {p.id: p for p in generate_probes(load_intent([_manifest(tmp_path)]), edge=False)}
    carried = probes["cond.test/api [X-Canary: always]"]
    assert carried.headers == (("X-Canary", "always"),)
    assert carried.expectation.backends[0].service == "wensleydale"
    assert probes["cond.test/api [X-Canary: always-not]"].expectation.backends[0].service == (
        "cheddar"
    )
    put = probes["cond.test/api?v=2 PUT"]
    assert put.method == "PUT" and put.expectation.backends[0].service == "stilton"
    # Broken one at a time: the method, then the query parameter (another value, left out).
    assert "cond.test/api?v=2" in probes
    assert "cond.test/api?v=2-not PUT" in probes and "cond.test/api PUT" in probes
    # Both canaries overlap only where both hold: one request carries both conditions.
    both = probes["cond.test/api?v=2 PUT [X-Canary: always]"]
    assert "precedence" in both.kinds


@pytest.mark.stack
def test_traefik_agrees_and_a_changed_condition_fails_only_its_probes(
    local_stack: Any, tmp_path: Path
) -> None:
    declared = load_intent([_manifest(tmp_path)])
    probes = generate_probes(declared, edge=False)
    target = LocalTarget(local_stack)

    def verdicts(applied: Intent) -> dict[str, bool | None]:
        return routing_verdicts(target, probes, declared, applied, "conditions")

    correct = verdicts(declared)
    assert len(correct) > 10 and all(correct.values()), [k for k, v in correct.items() if not v]
    changed = verdicts(load_intent([_manifest(tmp_path, canary_value="yes")]))
    failed = sorted(k for k, v in changed.items() if not v)
    assert failed and all("X-Canary: always]" in k for k in failed), failed


def test_a_conditioned_routes_registration_probe_meets_its_conditions(tmp_path: Path) -> None:
    """The registration check probes each route at its own path: a route behind a header, a
    query and a method must be sent them, or the "applied" probe reaches the plain route (or
    none) and a registered route looks absent."""
    intent = load_intent([_manifest(tmp_path)])
    for route in intent.routes:
        probe = probe_for(intent, route)
        assert probe.expectation.route_id == route.id, (route.id, probe.id)
    put = next(r for r in intent.routes if any(c.kind == "method" for c in r.conditions))
    probe = probe_for(intent, put)
    assert (probe.method, probe.path) == ("PUT", "/api?v=2")
