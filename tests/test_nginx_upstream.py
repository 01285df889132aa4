"""ingress-nginx annotations that change what the backend sees and what the client gets, read
without Traefik: upstream-vhost, custom-headers, backend-protocol, server-alias and
x-forwarded-prefix on both oracles (ingress-nginx's meaning and what Traefik's NGINX provider
builds), their fates, and the refusals, each naming file, line and field. The binary's side is
tests/test_nginx_stack.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_nginx import SERVICES, _ingress, _path

from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import FINDING_NGINX_MEANING_CHANGED, FINDING_NOT_MODELED, Intent
from harness.traefik.nginx import nginx_response_headers
from harness.traefik.oracle import expect
from harness.traefik.process import TraefikSettings, static_configuration

ANN = "    nginx.ingress.kubernetes.io/"
HEADERS = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: hdrs}
data: {X-Frame-Options: DENY, X-Team: cheese}
"""


def _load(tmp_path: Path, *docs: str) -> Intent:
    path = tmp_path / "nginx.yaml"
    path.write_text(SERVICES + "".join(docs))
    return load_intent([path])


def _fates(intent: Intent) -> dict[tuple[str, str], str]:
    return {(m.ingress, m.key.rsplit("/", 1)[1]): m.fate for m in intent.migration}


def test_upstream_vhost_and_custom_headers_on_both_oracles(tmp_path: Path) -> None:
    annotations = (
        f"{ANN}upstream-vhost: internal.test\n"
        f"{ANN}custom-headers: default/hdrs\n"
        f"{ANN}backend-protocol: auto_http\n"
    )
    intent = _load(tmp_path, HEADERS, _ingress("prod", _path("/", "prod"), annotations=annotations))
    assert intent.effective is not None
    for side in (intent, intent.effective):
        c = expect(side, "a.test", "/x").decided_by
        assert c is not None and c.host_header == "internal.test"
        assert dict(c.response_headers) == {"X-Frame-Options": "DENY", "X-Team": "cheese"}
    assert set(_fates(intent).values()) == {"honoured"}
    # The ConfigMap is applied (the provider reads it), and the headers must be allowed.
    assert [o.role for o in intent.objects if o.kind == "ConfigMap"] == ["applied"]
    assert nginx_response_headers(intent) == ("X-Frame-Options", "X-Team")


@pytest.mark.parametrize(
    ("path", "path_type", "changed"),
    [("/app(/|$)(.*)", "ImplementationSpecific", False), ("/app", "Prefix", True)],
)
def test_x_forwarded_prefix_with_a_rewrite_target(
    tmp_path: Path, path: str, path_type: str, changed: bool
) -> None:
    # A capture path covers the whole request path: both agree; a plain one does not.
    target = "/v1" if changed else "/$2"
    annotations = f"{ANN}rewrite-target: {target}\n{ANN}x-forwarded-prefix: /app\n"
    intent = _load(
        tmp_path, _ingress("prod", _path(path, "prod", path_type), annotations=annotations)
    )
    assert intent.effective is not None
    declared = expect(intent, "a.test", "/app/users")
    served = expect(intent.effective, "a.test", "/app/users")
    assert declared.forwarded_prefix == "/app"
    assert served.forwarded_prefix == ("/app/users" if changed else "/app")
    assert _fates(intent)["prod", "x-forwarded-prefix"] == ("changed" if changed else "honoured")
    note = intent.route_notes.get(f"prod:a.test{path}", "")
    assert ("x-forwarded-prefix /app: ingress-nginx sets X-Forwarded-Prefix to /app" in note) is (
        changed
    )


def test_x_forwarded_prefix_without_a_rewrite_target_changes_nothing(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        _ingress("prod", _path("/app", "prod"), annotations=f"{ANN}x-forwarded-prefix: /app\n"),
    )
    assert intent.effective is not None
    for side in (intent, intent.effective):
        assert expect(side, "a.test", "/app/x").forwarded_prefix is None
    (fate,) = intent.migration
    assert fate.fate == "honoured" and "only with a rewrite-target" in fate.note


def test_server_alias_serves_the_hosts_locations_and_lengthens_the_rule(tmp_path: Path) -> None:
    front = _ingress(
        "front",
        _path("/", "prod"),
        annotations=f'{ANN}server-alias: "www.a.test, b.test, www.a.test"\n',
    )
    api = _ingress("api", _path("/api", "cheddar"))
    other = _ingress("other", _path("/", "canary"), host="b.test")
    intent = _load(tmp_path, front, api, other)
    assert intent.effective is not None
    # b.test is a host of a rule: both drop that alias.
    assert any(
        f.kind == FINDING_NOT_MODELED and "server-alias b.test is a host" in f.message
        for f in intent.findings
    )
    served = {r.rule for r in intent.effective.routes if r.source.name == "front"}
    assert served == {'(Host("a.test") || Host("www.a.test")) && PathPrefix("/")'}
    # ingress-nginx: every location of a.test on www.a.test, the longest first.
    for host in ("a.test", "www.a.test"):
        assert [b.service for b in expect(intent, host, "/api/x").backends] == ["cheddar"]
        # Traefik: the alias router's longer rule outranks /api on both hosts.
        assert [b.service for b in expect(intent.effective, host, "/api/x").backends] == ["prod"]
    assert expect(intent, "b.test", "/").backends[0].service == "canary"
    assert _fates(intent)["front", "server-alias"] == "changed"
    assert any(f.kind == FINDING_NGINX_MEANING_CHANGED for f in intent.findings)
    assert "lengthens its router's rule" in intent.route_notes["api:a.test/api"]
    assert "adds www.a.test only to the routers" in intent.route_notes["api:www.a.test/api"]


def test_server_alias_on_the_only_ingress_of_a_host_is_honoured(tmp_path: Path) -> None:
    front = _ingress("front", _path("/", "prod"), annotations=f"{ANN}server-alias: www.a.test\n")
    intent = _load(tmp_path, front)
    assert _fates(intent) == {("front", "server-alias"): "honoured"}
    assert not intent.route_notes
    assert expect(intent.effective or intent, "www.a.test", "/x").backends[0].service == "prod"


def test_static_configuration_allows_the_custom_response_headers() -> None:
    settings = TraefikSettings(
        kube_endpoint="http://127.0.0.1:1",
        binary=Path("/bin/true"),
        nginx_provider="beside",
        nginx_allowed_response_headers=("X-Team",),
    )
    nginx = static_configuration(settings, 1, 2)["providers"]["kubernetesIngressNGINX"]
    assert nginx["globalAllowedResponseHeaders"] == ["X-Team"]


@pytest.mark.parametrize(
    ("annotations", "extra", "error"),
    [
        (f"{ANN}backend-protocol: HTTPS\n", "", "echo backends speak plain HTTP/1.1"),
        (f"{ANN}backend-protocol: GRPC\n", "", "HTTP/2 cleartext"),
        (f"{ANN}backend-protocol: FCGI\n", "", "Traefik's NGINX provider plain HTTP"),
        (f"{ANN}backend-protocol: SPDY\n", "", "none of HTTP, HTTPS"),
        (f'{ANN}x-forwarded-prefix: "/a b"\n', "", "is not a path of letters"),
        (f'{ANN}upstream-vhost: "$host"\n', "", "nginx variables"),
        (f"{ANN}custom-headers: default/nope\n", "", "not in the manifests"),
        (f"{ANN}custom-headers: other/hdrs\n", HEADERS, "of another namespace"),
        (f"{ANN}custom-headers: hdrs\n", HEADERS, "is not <namespace>/<configmap>"),
        (
            f"{ANN}custom-headers: default/hdrs\n",
            HEADERS.replace("X-Team: cheese", 'X-Team: "caf\\u00e9"'),
            "printable values",
        ),
        (f'{ANN}server-alias: "*.a.test"\n', "", "is not a lowercase DNS name"),
    ],
)
def test_refusals_name_file_line_and_field(
    tmp_path: Path, annotations: str, extra: str, error: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, extra, _ingress("prod", _path("/", "prod"), annotations=annotations))
    message = str(caught.value)
    assert error in message and "nginx.yaml:" in message
    assert "metadata.annotations" in message or "data" in message


def test_two_aliases_for_one_host_are_refused(tmp_path: Path) -> None:
    one = _ingress("one", _path("/", "prod"), annotations=f"{ANN}server-alias: x.test\n")
    two = _ingress("two", _path("/b", "prod"), annotations=f"{ANN}server-alias: y.test\n")
    with pytest.raises(ManifestError, match=r"a second server-alias for host a\.test"):
        _load(tmp_path, one, two)


def test_a_rewrite_target_equal_to_its_path_rewrites_nothing_on_either_side(
    tmp_path: Path,
) -> None:
    """ingress-nginx's buildProxyPass and the provider's buildRewriteTarget both skip a
    rewrite to the path itself (and its X-Forwarded-Prefix): /app/x reaches the backend as
    /app/x, not /app."""
    annotations = f"{ANN}rewrite-target: /app\n{ANN}x-forwarded-prefix: /p\n"
    intent = _load(tmp_path, _ingress("prod", _path("/app", "prod"), annotations=annotations))
    assert intent.effective is not None
    for side in (intent, intent.effective):
        e = expect(side, "a.test", "/app/x")
        assert (e.upstream_path, e.forwarded_prefix) == ("/app/x", None)
    assert _fates(intent)["prod", "rewrite-target"] == "honoured"
