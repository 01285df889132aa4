"""The intent model: rule strings and priorities as Traefik 3.7 builds them, shares, JSON."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from harness.intent.dialects import load_scenarios
from harness.intent.model import (
    PROVIDER_CRD,
    PROVIDER_INGRESS,
    Intent,
    Route,
    Source,
    WeightedBackend,
    go_quote,
)

MANIFESTS = Path(__file__).resolve().parents[1] / "harness" / "suites" / "manifests"
SRC = Source("m.yaml", 1, 3, "spec.rules[0]", "Ingress", "x")


def _route(**kw: object) -> Route:
    base: dict[str, object] = {
        "id": "x:h/p",
        "host": "cheeses.minikube",
        "path": "/cheddar",
        "match": "prefix",
        "middlewares": (),
        "priority": None,
        "backends": (WeightedBackend("cheddar", 80, 1),),
        "provider": PROVIDER_INGRESS,
        "source": SRC,
    }
    base.update(kw)
    return Route(**base)  # type: ignore[arg-type]


def test_go_quote_matches_go_percent_q() -> None:
    assert go_quote("/cheddar") == '"/cheddar"'
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("tab\there") == '"tab\\there"'
    assert go_quote("\x01") == '"\\x01"'


def test_ingress_rule_string_is_traefiks() -> None:
    # Format from pkg/provider/kubernetes/ingress/kubernetes.go (loadRouter, buildRule) and its
    # tests: `Host("traefik.tchouk") && PathPrefix("/bar")`.
    route = _route()
    assert route.rule == 'Host("cheeses.minikube") && PathPrefix("/cheddar")'
    assert route.effective_priority == len(route.rule) == 50
    assert _route(match="exact").rule == 'Host("cheeses.minikube") && Path("/cheddar")'
    assert _route(host=None).rule == 'PathPrefix("/cheddar")'
    assert _route(path=None).rule == 'Host("cheeses.minikube")'


def test_strict_prefix_matching_changes_rule_and_priority() -> None:
    route = _route(path="/cheddar/")
    strict = route.rule_for(strict_prefix_matching=True)
    assert strict == 'Host("cheeses.minikube") && (Path("/cheddar") || PathPrefix("/cheddar/"))'
    assert route.priority_for(strict_prefix_matching=True) == len(strict)
    assert _route(path="/").rule_for(strict_prefix_matching=True).endswith('PathPrefix("/")')
    # Exact paths and CRD routes are not rewritten.
    assert _route(match="exact").rule_for(strict_prefix_matching=True).endswith('Path("/cheddar")')
    crd = _route(provider=PROVIDER_CRD)
    assert crd.rule_for(strict_prefix_matching=True) == crd.rule


def test_crd_rule_uses_backticks_and_verbatim_match() -> None:
    crd = _route(provider=PROVIDER_CRD)
    assert crd.rule == "Host(`cheeses.minikube`) && PathPrefix(`/cheddar`)"
    # Same length as the Ingress form, so translating a route keeps its default priority.
    assert len(crd.rule) == len(_route().rule)
    verbatim = _route(provider=PROVIDER_CRD, match_rule="PathPrefix(`/cheddar`)  &&  Host(`x`)")
    assert verbatim.rule == "PathPrefix(`/cheddar`)  &&  Host(`x`)"
    assert verbatim.effective_priority == len(verbatim.rule)


def test_explicit_priority_wins_and_zero_is_default() -> None:
    assert _route(priority=2).effective_priority == 2
    assert _route(priority=-5).effective_priority == -5
    assert _route(priority=0).effective_priority == len(_route().rule)


def test_shares_ignore_non_positive_weights() -> None:
    route = _route(
        backends=(
            WeightedBackend("cheddar", 80, 3),
            WeightedBackend("wensleydale", 80, 1),
            WeightedBackend("stilton", 80, 0),
        )
    )
    assert route.weighted
    assert route.exact_shares() == {
        "cheddar": Fraction(3, 4),
        "wensleydale": Fraction(1, 4),
        "stilton": Fraction(0),
    }
    assert route.shares()["cheddar"] == pytest.approx(0.75)


def test_intent_lookup_and_json() -> None:
    scenarios = load_scenarios(MANIFESTS)
    intent = scenarios["weights"]
    route = intent.route("cheeses:cheeses.minikube/")
    assert intent.weighted_routes == (route,)
    assert "ingress-v1beta1" in intent.dialects
    with pytest.raises(KeyError, match=r"no route 'nope'.*cheeses:cheeses\.minikube/"):
        intent.route("nope")
    for scenario in scenarios.values():
        data = json.loads(json.dumps(scenario.to_dict()))
        assert [r["id"] for r in data["routes"]] == [r.id for r in scenario.routes]
        assert all(r["source"]["line"] > 0 for r in data["routes"])
    weights = json.loads(json.dumps(intent.to_dict()))["routes"][0]
    assert weights["shares"] == {"cheddar": 0.75, "wensleydale": 0.25}
    assert weights["rule"] == route.rule


def test_empty_intent() -> None:
    intent = Intent(routes=())
    assert intent.weighted_routes == ()
    assert intent.to_dict()["routes"] == []
