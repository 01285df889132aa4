"""Gateway listeners on the local target's entry points: the dialect maps each listener port to
an entry point of its own (HTTP ``web`` then ``webalt``, HTTPS ``websecure``) and says so in a
finding, refuses what Traefik would not attach (file:line:field), and the real Traefik 3.7.15
serves each route only on its listener's entry point, in its scheme (an HTTPS listener's routes
over TLS with SNI the listener's hostname, the generated certificate verified), while a route
attached to another listener behind the oracle's back fails exactly its routing probes. The
stack tests share one Traefik with its Gateway provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from applied_verdicts import routing_judgements
from test_gateway import GATEWAY as SHOP_GATEWAY
from test_gateway import SERVICES
from test_gateway import _route as shop_route

from harness.checks.exact import ExactVerdict
from harness.checks.probes import generate_probes
from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import FINDING_GATEWAY_LISTENER_PORT, Intent
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStack
from harness.traefik.entrypoints import WEB, WEBALT, WEBSECURE, Arrival, local_arrivals
from harness.traefik.gateway import listener_entry_points

#: The shop Gateway (HTTP, port 80) with a second HTTP listener and an HTTPS one.
GATEWAY = (
    SHOP_GATEWAY
    + """\
    - name: alt
      port: 8080
      protocol: HTTP
    - name: https
      port: 443
      protocol: HTTPS
      hostname: secure.gw.test
      tls:
        mode: Terminate
        certificateRefs:
          - name: secure-gw-tls
---
apiVersion: v1
kind: Secret
metadata:
  name: secure-gw-tls
type: kubernetes.io/tls
data:
  tls.crt: ""
  tls.key: ""
"""
)


def _route(name: str, parent: str, service: str, hostnames: str) -> str:
    rule = f"""\
    - matches: [{{path: {{type: PathPrefix, value: /shop}}}}]
      backendRefs: [{{name: {service}, port: 80}}]
"""
    return shop_route(name, rule, hostnames, parent)


#: One route per listener: by sectionName, by port, by the HTTPS listener's sectionName (its
#: hostnames are the listener's).
ROUTES = (
    _route("main", "{name: shop, sectionName: http}", "cheddar", "[main.gw.test]")
    + _route("alt", "{name: shop, port: 8080}", "stilton", "[alt.gw.test]")
    + _route("secure", "{name: shop, sectionName: https}", "wensleydale", "[]")
)


def _load(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Intent:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_intent([path], known_services=SERVICES)


# -- the dialect ----------------------------------------------------------------------------------


def test_each_listener_port_gets_an_entry_point_of_its_own() -> None:
    assert listener_entry_points(
        [("HTTP", 80), ("HTTPS", 443), ("HTTP", 80), ("HTTP", 8080), ("HTTP", 9090)]
    ) == {("HTTP", 80): WEB, ("HTTPS", 443): WEBSECURE, ("HTTP", 8080): WEBALT}
    # One protocol per port: HTTPS on the HTTP listener's port gets none.
    assert listener_entry_points([("HTTP", 80), ("HTTPS", 80)]) == {("HTTP", 80): WEB}


def test_routes_are_bound_to_their_listeners_entry_point_and_scheme(tmp_path: Path) -> None:
    intent = _load(tmp_path, GATEWAY + ROUTES)
    bound = {r.id: (r.host, r.entry_points, r.tls) for r in intent.routes}
    assert bound == {
        "main:main.gw.test/shop": ("main.gw.test", (WEB,), False),
        "alt:alt.gw.test/shop": ("alt.gw.test", (WEBALT,), False),
        "secure:secure.gw.test/shop": ("secure.gw.test", (WEBSECURE,), True),
    }
    said = [f.message for f in intent.findings if f.kind == FINDING_GATEWAY_LISTENER_PORT]
    assert len(said) == 3, said
    assert any("'alt' (HTTP, port 8080) is served on the local target's entry point 'webalt'" in m
               for m in said)  # fmt: skip
    assert any("'https' (HTTPS, port 443)" in m and "'websecure' over HTTPS" in m for m in said)
    # The probes go to webalt too (a route is bound to it), in both schemes.
    arrivals = local_arrivals(intent)
    assert Arrival(WEBALT, False) in arrivals and Arrival(WEBALT, True) in arrivals
    probes = {p.id: p.expectation for p in generate_probes(intent, None, arrivals)}
    assert probes["http@webalt:alt.gw.test/shop"].route_id == "alt:alt.gw.test/shop"
    assert probes["https@websecure:secure.gw.test/shop"].route_id == "secure:secure.gw.test/shop"
    for elsewhere in ("http@web", "https@webalt", "http@websecure"):
        assert probes[f"{elsewhere}:alt.gw.test/shop"].status == 404
    # The HTTPS listener's route does not answer plain HTTP, not even on its own entry point.
    assert probes["http@websecure:secure.gw.test/shop"].status == 404


def test_without_webalt_routes_the_probes_stay_on_web_and_websecure(tmp_path: Path) -> None:
    intent = _load(tmp_path, GATEWAY + _route("main", "{name: shop}", "cheddar", "[a.test]"))
    # A parentRef without sectionName attaches to the three listeners.
    assert {r.entry_points for r in intent.routes} == {(WEB,), (WEBALT,)}
    only = _load(
        tmp_path, GATEWAY + _route("m", "{name: shop, sectionName: http}", "cheddar", "[a.test]")
    )
    assert {a.entry_point for a in local_arrivals(only)} == {WEB, WEBSECURE}


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        ("port: 443\n      protocol: HTTPS", "port: 9090\n      protocol: HTTP",
         "spec.listeners[2].port", "has none left for it"),
        ("port: 443", "port: 80", "spec.listeners[2].port", "one protocol per port"),
        ("mode: Terminate", "mode: Passthrough", "spec.listeners[2].tls.mode",
         "UnsupportedProtocol"),
        ("protocol: HTTPS", "protocol: TLS", "spec.listeners[2].protocol",
         "TLSRoutes (TLS), TCPRoutes and UDPRoutes"),
        ("protocol: HTTPS", "protocol: UDP", "spec.listeners[2].protocol", "not HTTPRoutes"),
        ("certificateRefs:\n          - name: secure-gw-tls\n", "certificateRefs: []\n",
         "spec.listeners[2].tls.certificateRefs", "InvalidCertificateRef"),
        ("          - name: secure-gw-tls", "          - {name: secure-gw-tls, kind: ConfigMap}",
         "spec.listeners[2].tls.certificateRefs[0].kind", "from Secrets only"),
        ("          - name: secure-gw-tls", "          - {name: secure-gw-tls, namespace: other}",
         "spec.listeners[2].tls.certificateRefs[0].namespace", "another namespace"),
        ("      protocol: HTTP\n    - name: alt",
         "      protocol: HTTP\n      tls: {mode: Terminate}\n    - name: alt",
         "spec.listeners[0].tls", "InvalidTLSConfiguration"),
    ],
    ids=["third-http-port", "https-on-an-http-port", "passthrough", "tls", "udp",
         "no-certificate", "configmap", "cross-namespace-secret", "tls-on-http"],
)  # fmt: skip
def test_what_traefik_would_not_attach_is_refused_with_file_line_field(
    tmp_path: Path, old: str, new: str, field: str, says: str
) -> None:
    assert old in GATEWAY
    with pytest.raises(ManifestError) as err:
        _load(tmp_path, GATEWAY.replace(old, new, 1) + ROUTES)
    message = str(err.value)
    assert "gateway.yaml:" in message and f"field {field}" in message and says in message


# -- on the real Traefik --------------------------------------------------------------------------


def _verdicts(target: LocalTarget, declared: Intent, applied: Intent) -> list[ExactVerdict]:
    """The routing verdict of each of ``declared``'s probes at every arrival, with ``applied``
    on Traefik (HTTPS verified against the stack's CA, SNI the probe's host)."""
    probes = generate_probes(declared, None, local_arrivals(declared))
    return list(routing_judgements(target, probes, declared, applied, "listeners").values())


@pytest.mark.stack
def test_each_route_answers_only_on_its_listeners_entry_point(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    intent = _load(tmp_path, GATEWAY + ROUTES)
    target = LocalTarget(gateway_stack)
    verdicts = _verdicts(target, intent, intent)
    failed = [v.message for v in verdicts if not v.passed]
    assert len(verdicts) >= 18 and not failed, failed
    by_id = {v.probe.id: v for v in verdicts}
    # Served where bound: each by its own backend; over HTTPS the generated certificate was
    # verified for secure.gw.test (the SNI).
    for probe_id, service in (
        ("http@web:main.gw.test/shop", "cheddar"),
        ("http@webalt:alt.gw.test/shop", "stilton"),
        ("https@websecure:secure.gw.test/shop", "wensleydale"),
    ):
        observed = "; ".join(o.describe() for o, _, _ in by_id[probe_id].observed)
        assert f"200 from {service}" in observed, (probe_id, observed)
    # 404 elsewhere, the HTTPS listener's route over plain HTTP included.
    for probe_id in (
        "http@webalt:main.gw.test/shop",
        "http@web:alt.gw.test/shop",
        "http@websecure:secure.gw.test/shop",
        "https@websecure:alt.gw.test/shop",
    ):
        observed = "; ".join(o.describe() for o, _, _ in by_id[probe_id].observed)
        assert observed.startswith("404"), (probe_id, observed)
    # (Applying read back each route's status: Accepted and ResolvedRefs True, else it raises.)
    assert "webalt_url" in gateway_stack.describe()["traefik"]


@pytest.mark.stack
def test_a_route_moved_to_another_listener_fails_exactly_its_probes(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    declared = _load(tmp_path, GATEWAY + ROUTES)
    # Behind the oracle's back: the alt route attaches to the port 80 listener instead.
    moved = ROUTES.replace("{name: shop, port: 8080}", "{name: shop, port: 80}")
    applied = _load(tmp_path, GATEWAY + moved, "moved.yaml")
    verdicts = _verdicts(LocalTarget(gateway_stack), declared, applied)
    failed = {v.probe.id for v in verdicts if not v.passed}
    # Its probes at webalt (expected stilton: 404) and at web (expected 404: stilton) only.
    assert {"http@webalt:alt.gw.test/shop", "http@web:alt.gw.test/shop"} <= failed, failed
    assert all(p.startswith(("http@webalt:alt.", "http@web:alt.")) for p in failed), failed
    message = next(v.message for v in verdicts if v.probe.id == "http@webalt:alt.gw.test/shop")
    assert "at entry point webalt" in message and "stilton" in message, message
