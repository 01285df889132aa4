"""Regex routes (IngressRoute ``PathRegexp``) and regex request conditions: Traefik's semantics
as confirmed on the binary (found anywhere in the routing path, not anchored), the refusals, the
values generated from a pattern, and the real Traefik agreeing with the probes derived from
them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.errors import ConfigError, ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import PROVIDER_INGRESS, Intent
from harness.traefik.oracle import expect, spec_matches, traefik_matches
from harness.traefik.render import render_manifests
from harness.traefik.requests import at_entry_point, path_matches

SERVICES = "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{port: 80}}]}}
"""
    for name in ("cheddar", "wensleydale", "stilton")
)


def _ingressroute(tmp_path: Path, *matches: str, name: str = "regex.yaml") -> Path:
    routes = "".join(
        f"  - match: {m}\n    services: [{{name: {svc}, port: 80}}]\n"
        for m, svc in zip(matches, ("cheddar", "wensleydale", "stilton"), strict=False)
    )
    path = tmp_path / name
    path.write_text(
        SERVICES
        + "---\napiVersion: traefik.io/v1alpha1\nkind: IngressRoute\n"
        + f"metadata: {{name: regex}}\nspec:\n  routes:\n{routes}"
    )
    return path


# -- semantics (confirmed on Traefik 3.7.15 with the file provider, raw requests) ---------------


@pytest.mark.parametrize(
    ("pattern", "target", "matches"),
    [
        # Go's MatchString: found anywhere, not anchored.
        ("/b", "/b", True),
        ("/b", "/a/bc", True),
        ("/b", "/x", False),
        ("^/p/x$", "/p/x", True),
        # Matched on the routing path: %2F and %3A stay encoded, %20 and %41 are decoded.
        ("^/p/x$", "/p%2Fx", False),
        ("^/p%2Fx$", "/p%2Fx", True),
        ("^/p:x$", "/p%3Ax", False),
        ("^/p%3Ax$", "/p%3Ax", True),
        ("^/p x$", "/p%20x", True),
        ("^/p%20x$", "/p%20x", False),
        ("^/AB$", "/%41B", True),
        # Case-sensitive; after the entry point's cleaning.
        ("^/AB$", "/ab", False),
        ("^/p/x$", "/p//x", True),
        ("^/p/x$", "/p/./x", True),
        ("^/x/$", "/x/.", False),
    ],
)
def test_path_regexp_is_found_anywhere_in_the_routing_path(
    pattern: str, target: str, matches: bool
) -> None:
    assert path_matches("regex", pattern, at_entry_point(target, "h.test")) is matches


def test_an_ingressroute_path_regexp_is_read_and_rendered_as_written(tmp_path: Path) -> None:
    intent = load_intent(
        [_ingressroute(tmp_path, "Host(`rx.test`) && PathRegexp(`^/api/v[0-9]+$`)")]
    )
    (route,) = intent.routes
    assert (route.match, route.path) == ("regex", "^/api/v[0-9]+$")
    assert route.rule == "Host(`rx.test`) && PathRegexp(`^/api/v[0-9]+$`)"
    assert traefik_matches(route, "rx.test", "/api/v12")
    assert not traefik_matches(route, "rx.test", "/api/v12/x")
    # Rendered by the harness (no rule as written): the same matcher.
    rendered = dataclasses.replace(route, match_rule=None)
    assert rendered.rule == route.rule
    objects = render_manifests(Intent(routes=(rendered,)), "default")
    assert [o["spec"]["routes"][0]["match"] for o in objects] == [route.rule]
    # The Ingress spec has no regex: a regex route makes the spec comparison not applicable.
    assert expect(intent, "rx.test", "/api/v1").spec.outcome == "not-applicable"
    assert spec_matches(route, "rx.test", "/api/v1") is False


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("^/a(?=b)", "'(?=b'"),
        (r"^/(a)\1", r"'\1'"),
        (r"^/\p{L}", r"'\p'"),
        ("^/a{2,1}", "{2,1}"),
        ("^/[[:alpha:]]", "POSIX class"),
        ("^/(a", "missing ')'"),
    ],
)
def test_a_pattern_go_refuses_or_python_reads_differently_is_refused(
    tmp_path: Path, pattern: str, construct: str
) -> None:
    manifest = _ingressroute(tmp_path, f"Host(`rx.test`) && PathRegexp(`{pattern}`)")
    with pytest.raises(ManifestError) as err:
        load_intent([manifest])
    message = str(err.value)
    assert f"{manifest.name}:" in message and "spec.routes[0].match" in message, message
    assert "PathRegexp" in message and construct in message, message


def test_the_ingress_provider_cannot_render_a_regex_path(tmp_path: Path) -> None:
    intent = load_intent([_ingressroute(tmp_path, "Host(`rx.test`) && PathRegexp(`^/a`)")])
    route = dataclasses.replace(intent.routes[0], match_rule=None, provider=PROVIDER_INGRESS)
    with pytest.raises(ConfigError, match="Ingress provider cannot serve"):
        render_manifests(Intent(routes=(route,)), "default")
