"""Gateway API references across namespaces on Traefik's Gateway provider: ReferenceGrant for a
backendRef to another namespace's Service, and a listener's ``allowedRoutes`` namespace
selector over the manifests' Namespace labels. The dialect (what a grant permits, which
namespaces a selector admits, refusals with file:line:field) and the real Traefik 3.7.15:
a permitted backend is served, one no grant permits is answered 500 with ResolvedRefs False
(RefNotPermitted) as the dialect predicts; a grant removed behind the oracle's back fails the
routing probes of that backend only; a route in a namespace the selector does not admit is not
attached (Accepted False, NotAllowedByListeners), and a Namespace relabelled behind the
oracle's back detaches its routes, failing their routing probes only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from applied_verdicts import (
    GATEWAY_SERVICES,
    applied_verdicts,
    routing_verdicts,
)

from harness.checks.probes import generate_probes
from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import FINDING_GATEWAY_REF_NOT_PERMITTED, Intent
from harness.targets.base import LocalTarget, supplied_gateway_classes
from harness.targets.local_stack import LocalStack
from harness.traefik.oracle import expect

NAMESPACES = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {team: a, tier: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b, labels: {team: b}}
---
"""
GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shared-gw}
spec:
  gatewayClassName: traefik
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: Selector
          selector: {selector}
---
"""


def _gateway(selector: str) -> str:
    return GATEWAY.replace("{selector}", selector)


SELECT_TEAM_A = "{matchLabels: {team: a}, matchExpressions: [{key: tier, operator: Exists}]}"
GRANT = """\
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: from-team-a, namespace: {namespace}}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team-a}}]
  to: [{{group: "", kind: Service{name}}}]
---
"""


def _route(name: str, namespace: str, host: str, refs: str) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  parentRefs: [{{name: shared-gw, namespace: default}}]
  hostnames: [{host}]
  rules:
    - backendRefs: {refs}
---
"""


#: team-a's routes: stilton in namespace shared (granted), wensleydale in default (no grant
#: there), cheddar in team-a itself.
SCENARIO = (
    NAMESPACES
    + _gateway(SELECT_TEAM_A)
    + GRANT.format(namespace="shared", name=", name: stilton")
    + _route("granted", "team-a", "granted.test", "[{name: stilton, namespace: shared, port: 80}]")
    + _route(
        "denied", "team-a", "denied.test", "[{name: wensleydale, namespace: default, port: 80}]"
    )
    + _route("local", "team-a", "local.test", "[{name: cheddar, port: 80}]")
)


def _load(tmp_path: Path, text: str, name: str = "refs.yaml") -> Intent:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_intent([path], known_services=GATEWAY_SERVICES)


# -- the dialect ----------------------------------------------------------------------------------


def test_a_grant_permits_the_backend_and_a_missing_one_is_a_500_with_a_finding(
    tmp_path: Path,
) -> None:
    intent = _load(tmp_path, SCENARIO)
    granted = expect(intent, "granted.test", "/").decided_by
    assert granted is not None and [(b.service, b.namespace) for b in granted.backends] == [
        ("stilton", "shared")
    ]
    denied = expect(intent, "denied.test", "/").decided_by
    assert denied is not None and denied.status == 500 and denied.backends == ()
    assert "core/Service/default/wensleydale: missing ReferenceGrant" in str(denied.answer_reason)
    assert intent.refs_not_permitted == (("team-a", "denied"),)
    (finding,) = [f for f in intent.findings if f.kind == FINDING_GATEWAY_REF_NOT_PERMITTED]
    assert "RefNotPermitted" in finding.message and finding.source is not None
    assert {(s.namespace, s.name) for s in intent.services} == {
        ("shared", "stilton"),
        ("team-a", "cheddar"),
    }


@pytest.mark.parametrize(
    ("grant", "permitted"),
    [
        (GRANT.format(namespace="shared", name=""), True),
        (GRANT.format(namespace="shared", name=", name: other"), False),
        (GRANT.format(namespace="team-b", name=""), False),
        (
            GRANT.format(namespace="shared", name="").replace("kind: HTTPRoute", "kind: GRPCRoute"),
            False,
        ),
        (
            GRANT.format(namespace="shared", name="").replace("namespace: team-a", "namespace: x"),
            False,
        ),
        (GRANT.format(namespace="shared", name="").replace('group: ""', "group: core"), True),
    ],
    ids=["any-name", "other-name", "other-namespace", "other-kind", "other-from", "core-group"],
)
def test_what_a_grant_permits_is_what_traefik_matches(
    tmp_path: Path, grant: str, permitted: bool
) -> None:
    text = (
        NAMESPACES
        + _gateway(SELECT_TEAM_A)
        + grant
        + _route("r", "team-a", "r.test", "[{name: stilton, namespace: shared, port: 80}]")
    )
    decided = expect(_load(tmp_path, text), "r.test", "/").decided_by
    assert decided is not None and (decided.status is None) == permitted


@pytest.mark.parametrize(
    ("selector", "admitted"),
    [
        ("{matchLabels: {team: a}}", True),
        ("{matchLabels: {team: b}}", False),
        ("{}", True),
        ("{matchExpressions: [{key: team, operator: NotIn, values: [a]}]}", False),
        ("{matchExpressions: [{key: tier, operator: DoesNotExist}]}", False),
        ("{matchExpressions: [{key: team, operator: In, values: [b, a]}]}", True),
        ("{matchLabels: {kubernetes.io/metadata.name: team-a}}", True),
    ],
    ids=["labels", "other-labels", "empty", "not-in", "does-not-exist", "in", "name-label"],
)
def test_a_selector_admits_the_namespaces_whose_labels_match(
    tmp_path: Path, selector: str, admitted: bool
) -> None:
    text = (
        NAMESPACES
        + _gateway(selector)
        + _route("r", "team-a", "r.test", "[{name: cheddar, port: 80}]")
    )
    if admitted:
        assert [r.id for r in _load(tmp_path, text).routes] == ["r:r.test/"]
        return
    with pytest.raises(ManifestError) as err:
        _load(tmp_path, text)
    assert "attaches to no listener" in str(err.value)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        (
            NAMESPACES
            + _gateway(SELECT_TEAM_A)
            + _route("r", "team-c", "r.test", "[{name: cheddar, port: 80}]"),
            "spec.parentRefs[0]",
            "Add the Namespace 'team-c'",
        ),
        (
            NAMESPACES
            + _gateway("{matchExpressions: [{key: team, operator: In}]}")
            + _route("r", "team-a", "r.test", "[{name: cheddar, port: 80}]"),
            "spec.listeners[0].allowedRoutes.namespaces.selector.matchExpressions[0]",
            "In and NotIn need values",
        ),
        (
            NAMESPACES
            + _gateway(SELECT_TEAM_A).replace("          selector: ", "          x: ")
            + _route("r", "team-a", "r.test", "[{name: cheddar, port: 80}]"),
            "spec.listeners[0].allowedRoutes.namespaces.x",
            "unknown field",
        ),
        (
            NAMESPACES
            + _gateway(SELECT_TEAM_A)
            + GRANT.format(namespace="shared", name="")
            + _route(
                "r",
                "team-a",
                "r.test",
                "[{name: stilton, namespace: shared, port: 80}, "
                "{name: wensleydale, namespace: default, port: 80}]",
            ),
            "spec.rules[0].backendRefs[1]",
            "a share of 500s",
        ),
        (
            NAMESPACES
            + _gateway(SELECT_TEAM_A)
            + GRANT.format(namespace="shared", name="")
            + _route("r", "team-a", "r.test", "[{name: stilton, namespace: shared, port: 80}]")
            + _route("s", "team-a", "s.test", "[{name: stilton, port: 80}]"),
            "spec.rules[0]",
            "could not say which of the two answered",
        ),
        (
            NAMESPACES
            + _gateway(SELECT_TEAM_A)
            + GRANT.format(namespace="shared", name=', name: ""')
            + _route("r", "team-a", "r.test", "[{name: stilton, namespace: shared, port: 80}]"),
            "spec.to[0].name",
            "empty name",
        ),
    ],
    ids=[
        "undeclared-namespace",
        "in-without-values",
        "unknown-field",
        "mixed-split",
        "one-name-two-namespaces",
        "empty-grant-name",
    ],
)
def test_what_is_refused_names_file_line_field(
    tmp_path: Path, text: str, field: str, says: str
) -> None:
    with pytest.raises(ManifestError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "refs.yaml:" in message and f"field {field}" in message and says in message


# -- the real Traefik -----------------------------------------------------------------------------


@pytest.mark.stack
def test_traefik_serves_the_granted_backend_and_answers_500_without_a_grant(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    intent = _load(tmp_path, SCENARIO)
    probes = generate_probes(intent)
    status: dict[str, Any] = {}

    def read_status() -> None:
        status["conditions"] = gateway_stack.route_conditions(intent)
        status["rejected"] = gateway_stack.rejected_routes(intent)

    # The denied route's ResolvedRefs False (RefNotPermitted) is expected: no rejection.
    verdicts = applied_verdicts(
        LocalTarget(gateway_stack),
        probes,
        intent,
        intent,
        "references",
        ("routing", "strip", "edge"),
        read_status,
    )
    assert len(verdicts) > 10 and all(verdicts.values()), [k for k, v in verdicts.items() if not v]
    assert {p.id for p in probes} >= {"granted.test/", "denied.test/", "local.test/"}
    conditions = status["conditions"]
    assert status["rejected"] == []
    assert conditions[("granted", "ResolvedRefs")] == ("True", "ResolvedRefs")
    assert conditions[("denied", "ResolvedRefs")] == ("False", "RefNotPermitted")
    assert conditions[("denied", "Accepted")] == ("True", "Accepted")


@pytest.mark.stack
def test_a_grant_removed_behind_the_oracles_back_fails_that_backends_probes(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    declared = _load(tmp_path, SCENARIO)
    grant = GRANT.format(namespace="shared", name=", name: stilton")
    applied = _load(tmp_path, SCENARIO.replace(grant, ""), "applied.yaml")
    verdicts = routing_verdicts(
        LocalTarget(gateway_stack), generate_probes(declared), declared, applied, "references"
    )
    failed = {pid for pid, ok in verdicts.items() if ok is False}
    assert failed and all(pid.startswith("granted.test") for pid in failed), verdicts
    assert all(ok for pid, ok in verdicts.items() if not pid.startswith("granted.test"))


def _objects(stack: LocalStack, intent: Intent) -> list[dict[str, Any]]:
    return stack.local_listeners([o.body for o in intent.objects if o.role == "applied"])


@pytest.mark.stack
def test_a_route_in_a_namespace_the_selector_does_not_admit_is_not_attached(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    # The dialect refuses such a route (it attaches to nothing); applied by hand, beside one
    # the selector admits, Traefik leaves it unattached.
    admitted = _route("local", "team-a", "local.test", "[{name: cheddar, port: 80}]")
    intent = _load(tmp_path, NAMESPACES + _gateway(SELECT_TEAM_A) + admitted)
    outside = _load(
        tmp_path,
        NAMESPACES
        + _gateway("{}")
        + _route("outside", "team-b", "outside.test", "[{name: cheddar, port: 80}]"),
        "outside.yaml",
    )
    target = LocalTarget(gateway_stack)
    target.apply_intent(intent)
    applier = gateway_stack.running_applier()
    (route,) = [o for o in _objects(gateway_stack, outside) if o["kind"] == "HTTPRoute"]
    for obj in supplied_gateway_classes(outside):
        applier.put(obj)
    target.register_services(outside)
    applier.apply(route)
    try:
        conditions = gateway_stack.route_conditions(
            Intent(routes=(), objects=tuple(o for o in outside.objects if o.kind == "HTTPRoute"))
        )
        answer = httpx.get(
            target.proxy_url + "/", headers={"Host": "outside.test"}, trust_env=False
        )
        served = httpx.get(target.proxy_url + "/", headers={"Host": "local.test"}, trust_env=False)
    finally:
        applier.delete(route)
        target.remove_intent(intent)
    assert conditions[("outside", "Accepted")] == ("False", "NotAllowedByListeners")
    assert answer.status_code == 404
    assert served.status_code == 200 and "Name: cheddar" in served.text


@pytest.mark.stack
def test_a_namespace_relabelled_behind_the_oracles_back_detaches_its_routes(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    both = "{matchExpressions: [{key: team, operator: In, values: [a, b]}]}"
    intent = _load(
        tmp_path,
        NAMESPACES
        + _gateway(both)
        + _route("local", "team-a", "local.test", "[{name: cheddar, port: 80}]")
        + _route("other", "team-b", "other.test", "[{name: wensleydale, port: 80}]"),
    )
    relabelled = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"team": "c", "tier": "web"}},
    }

    def relabel() -> None:
        gateway_stack.running_applier().put(relabelled)
        gateway_stack.running_traefik().wait_for_routers(
            lambda routers: not any("local.test" in str(r.get("rule")) for r in routers),
            timeout=30,
            what="Traefik to detach team-a's route",
        )

    verdicts = routing_verdicts(
        LocalTarget(gateway_stack),
        generate_probes(intent),
        intent,
        intent,
        "references",
        relabel,
    )
    failed = {pid for pid, ok in verdicts.items() if ok is False}
    assert failed and all(pid.startswith("local.test") for pid in failed), verdicts
    assert any(pid.startswith("other.test") and ok for pid, ok in verdicts.items())
