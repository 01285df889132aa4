"""Manifests verified as written: what the local target applies, the legacy modes, and the loop
closed (Traefik is configured by the user's own objects, so a misreading by the harness's
parser fails a check instead of being applied to both sides).

The Kubernetes documentation's Ingress examples (tests/data/k8s-docs/) run end to end through the
suites in a pytest subprocess, as a user would run them with ``--manifests``.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from suite_runs import run_pytest

from harness.checks.exact import judge
from harness.checks.probes import generate_probes
from harness.errors import ManifestError
from harness.intent.dialects import load_intent, load_scenarios
from harness.intent.model import FINDING_LEGACY_AS_WRITTEN, Intent
from harness.targets.base import LocalTarget
from harness.traefik.render import manifests_to_apply, write_translations
from harness.traffic.rounds import send_in_rounds

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "harness" / "suites" / "manifests"
K8S_DOCS = Path(__file__).resolve().parent / "data" / "k8s-docs"
EXACT = [f"harness/suites/test_{a}.py::test_{a}" for a in ("routing", "strip", "priority")]


def _tutorial(name: str, legacy: Any) -> Intent:
    return load_intent([MANIFESTS / "services.yaml", MANIFESTS / f"{name}.yaml"], legacy=legacy)


# -- what is applied ----------------------------------------------------------------------------


def test_v3_manifests_are_applied_as_written() -> None:
    intent = load_intent([K8S_DOCS / "simple-fanout.yaml"])
    roles = {(o.kind, o.name): o.role for o in intent.objects}
    assert roles == {
        ("Service", "service1"): "applied",
        ("Service", "service2"): "applied",
        ("Ingress", "simple-fanout-example"): "applied",
    }
    ingress = next(o for o in intent.objects if o.kind == "Ingress")
    # The bytes as written (parsed), namespace filled in; nothing of the harness added.
    written = yaml.safe_load_all((K8S_DOCS / "simple-fanout.yaml").read_text())
    expected = next(d for d in written if d["kind"] == "Ingress")
    expected["metadata"]["namespace"] = "default"
    assert ingress.body == expected
    assert manifests_to_apply(intent) == [ingress.body]
    assert intent.effective is None and intent.served is intent


def test_legacy_translate_replaces_legacy_objects_by_the_rendering() -> None:
    intent = _tutorial("cheeses", "translate")
    assert {o.kind: o.role for o in intent.objects} == {
        "Service": "applied",
        "Ingress": "translated",
    }
    applied = manifests_to_apply(intent)
    kinds = sorted(o["kind"] for o in applied)
    assert kinds == ["Ingress", "Ingress", "Ingress", "Middleware", "Middleware", "Middleware"]
    assert intent.effective is None
    assert intent.legacy_note(intent.routes[0]) is None


def test_legacy_as_written_applies_the_converted_ingress_with_its_annotations() -> None:
    intent = _tutorial("cheeses", "as-written")
    ingress = next(o for o in intent.objects if o.kind == "Ingress")
    assert ingress.role == "converted"
    assert ingress.body["apiVersion"] == "networking.k8s.io/v1"
    assert ingress.body["metadata"]["annotations"] == {
        "traefik.frontend.rule.type": "PathPrefixStrip"
    }
    paths = ingress.body["spec"]["rules"][1]["http"]["paths"]
    assert paths[0] == {
        "path": "/cheddar",
        "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": "cheddar", "port": {"name": "http"}}},
    }
    assert manifests_to_apply(intent) == [ingress.body]
    # Declared: strip /cheddar. Served by v3 as written: no strip at all.
    declared = {r.id: r.strip_prefixes for r in intent.routes}
    served = {r.id: r.strip_prefixes for r in intent.served.routes}
    assert declared["cheeses:cheeses.minikube/cheddar"] == ("/cheddar",)
    assert served["cheeses:cheeses.minikube/cheddar"] == ()
    note = intent.legacy_note(intent.route("cheeses:cheeses.minikube/cheddar"))
    assert note is not None and "Traefik v3 ignores traefik.frontend.rule.type" in note
    assert any(f.kind == FINDING_LEGACY_AS_WRITTEN for f in intent.findings)


def test_legacy_as_written_serves_what_v3_builds() -> None:
    weights = _tutorial("weights", "as-written")
    (declared,) = weights.routes
    assert [(b.service, b.weight) for b in declared.backends] == [
        ("cheddar", 3),
        ("wensleydale", 1),
    ]
    # service-weights ignored: two identical paths in one Ingress are one router, the last wins.
    (served,) = weights.served.routes
    assert [b.service for b in served.backends] == ["wensleydale"]
    priorities = _tutorial("priority-explicit", "as-written")
    assert {r.priority for r in priorities.routes} == {1, 2}
    assert {r.priority for r in priorities.served.routes} == {None}


def test_legacy_out_writes_a_translation_that_reads_back_as_v3(tmp_path: Path) -> None:
    scenarios = load_scenarios(MANIFESTS, legacy="translate")
    written = write_translations(scenarios, tmp_path)
    legacy = {n for n, i in scenarios.items() if any(o.role == "translated" for o in i.objects)}
    assert legacy and {p.stem for p in written} == legacy
    back = load_intent([tmp_path / "cheeses.yaml"], legacy="as-written")
    assert not back.has_legacy
    original = scenarios["cheeses"]
    assert {(r.host, r.path, r.strip_prefixes) for r in back.routes} == {
        (r.host, r.path, r.strip_prefixes) for r in original.routes
    }


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "is not a valid Kubernetes object name"),
        ("Cheeses", "is not a valid Kubernetes object name"),
        ("cheeses-", "is not a valid Kubernetes object name"),
    ],
)
def test_invalid_object_names_are_refused_with_file_and_line(
    tmp_path: Path, name: str, says: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: "{name}"
            spec:
              defaultBackend:
                service: {{name: cheddar, port: {{number: 80}}}}
            """
        )
    )
    with pytest.raises(ManifestError, match=rf"bad\.yaml:4:.*metadata\.name.*{says}"):
        load_intent([MANIFESTS / "services.yaml", path])


# -- the loop is closed ---------------------------------------------------------------------------


STRIPPED = """\
apiVersion: v1
kind: Service
metadata: {name: cheddar}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip-cheddar}
spec:
  stripPrefix: {prefixes: [/cheddar]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: loop
  annotations:
    traefik.ingress.kubernetes.io/router.middlewares: default-strip-cheddar@kubernetescrd
spec:
  rules:
  - host: loop.test
    http:
      paths:
      - path: /cheddar
        pathType: Prefix
        backend:
          service: {name: cheddar, port: {name: http}}
"""


@pytest.mark.stack
def test_a_misreading_parser_is_caught_because_traefik_gets_the_users_objects(
    local_stack: Any, tmp_path: Path
) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(STRIPPED, "utf-8")
    intent = load_intent([path])
    # A parser bug, injected: the stripPrefix Middleware is not seen (as if it were misread).
    buggy = dataclasses.replace(
        intent, routes=tuple(dataclasses.replace(r, middlewares=()) for r in intent.routes)
    )
    target = LocalTarget(local_stack)

    def strip_verdicts(applied: Intent) -> set[str]:
        probes = [p for p in generate_probes(buggy) if p.path == "/cheddar/x"]
        target.apply_intent(applied)
        try:
            run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
        finally:
            target.remove_intent(applied)
        return {
            judge("routing", run.records[p.id], buggy, scenario="loop", context="").outcome
            for p in probes
        } | {
            judge("strip", run.records[p.id], buggy, scenario="loop", context="").outcome
            for p in probes
        }

    # Applied as written: Traefik strips (the user's Middleware), the buggy reading expects the
    # path untouched, and the check fails.
    assert "failed" in strip_verdicts(buggy)
    # The old way, rendering the harness's own reading, hides the bug: everything agrees.
    rendered = dataclasses.replace(buggy, objects=())
    assert strip_verdicts(rendered) == {"passed"}


# -- end to end, as a user runs it ----------------------------------------------------------------


def _outcomes(document: dict[str, Any]) -> dict[str, str]:
    return {c["nodeid"]: str(c["outcome"]) for c in document["checks"]}


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.parametrize(
    "example",
    ["simple-fanout", "simple-fanout-class", "name-virtual-host", "default-backend", "tls"],
)
def test_kubernetes_documentation_examples_pass_as_written(example: str, tmp_path: Path) -> None:
    run = run_pytest(
        *EXACT,
        "--manifests",
        K8S_DOCS / f"{example}.yaml",
        "--probe-rounds",
        "3",
        "--report-dir",
        tmp_path,
    )
    assert run.returncode == 0, run.output[-3000:]
    document = run.results(tmp_path)
    outcomes = _outcomes(document)
    assert outcomes and set(outcomes.values()) <= {"passed", "skipped", "undefined"}
    if example == "tls":
        # Judged at both entry points in both schemes: served over HTTP (no router.tls), and
        # HTTPS answers 404, as the finding says.
        assert {n.split("[", 1)[1].split(":")[1] for n in outcomes if "@" in n} == {
            "http@web",
            "https@web",
            "http@websecure",
            "https@websecure",
        }
        assert "tls-without-router-tls" in {f["kind"] for f in document["findings"]}


@pytest.mark.stack
@pytest.mark.slow
def test_legacy_as_written_fails_strip_weights_and_priority_saying_v3_ignores_them(
    tmp_path: Path,
) -> None:
    run = run_pytest(
        "harness/suites/test_strip.py::test_strip",
        "harness/suites/test_priority.py::test_priority",
        "harness/suites/test_weights.py",
        "--legacy",
        "as-written",
        "--probe-rounds",
        "3",
        "--report-dir",
        tmp_path,
    )
    assert run.returncode == 1, run.output[-3000:]
    document = run.results(tmp_path)
    # The mode that ran is said in the header, in results.json and on the report's first screen.
    assert "legacy manifests: --legacy as-written" in run.stdout
    assert document["parameters"]["legacy"] == "as-written"
    assert "legacy manifests: as-written" in (tmp_path / "index.html").read_text()
    failed = [c for c in document["checks"] if c["outcome"] == "failed"]
    kinds = {str(c["kind"]) for c in failed}
    assert {"strip", "priority", "weights"} <= kinds
    for check in failed:
        assert "Traefik v3 ignores" in check["message"], check["message"]
    # The weights of the tutorial: as written, wensleydale gets everything.
    weights = next(c for c in failed if "test_weights[weights:" in c["nodeid"])
    assert "wensleydale 100.00%" in weights["message"]


# -- every field accounted for --------------------------------------------------------------------

FANOUT = (K8S_DOCS / "simple-fanout.yaml").read_text()


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    assert old in FANOUT
    path = tmp_path / "edited.yaml"
    path.write_text(FANOUT.replace(old, new, 1), "utf-8")
    return path


def _line_of(path: Path, marker: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line)


@pytest.mark.parametrize(
    ("old", "new", "marker", "says"),
    [
        pytest.param(
            "  name: simple-fanout-example\n",
            "  name: simple-fanout-example\n  annotations:\n"
            "    traefik.ingress.kubernetes.io/router.tls.certresolver: letsencrypt\n",
            "router.tls.certresolver",
            "a certificate resolver (ACME)",
            id="certresolver-annotation",
        ),
        pytest.param(
            "  name: simple-fanout-example\n",
            "  name: simple-fanout-example\n  annotations:\n"
            '    traefik.ingress.kubernetes.io/router.priorty: "10"\n',
            "router.priorty",
            "unknown Traefik annotation",
            id="misspelt-annotation",
        ),
        pytest.param(
            "          service:\n            name: service1",
            "          service:\n            nam: x\n            name: service1",
            "nam: x",
            "unknown field 'nam'",
            id="unknown-field",
        ),
        pytest.param(
            "  name: simple-fanout-example\n",
            "  name: simple-fanout-example\n  annotations:\n"
            "    traefik.ingress.kubernetes.io/router.tls.options: default-modern@kubernetescrd\n",
            "router.tls.options",
            "TLS options",
            id="tls-options-annotation",
        ),
    ],
)
def test_a_field_that_changes_traffic_is_modeled_or_refused_with_file_line_field(
    tmp_path: Path, old: str, new: str, marker: str, says: str
) -> None:
    path = _edited(tmp_path, old, new)
    with pytest.raises(ManifestError) as info:
        load_intent([path])
    message = str(info.value)
    assert f"edited.yaml:{_line_of(path, marker)}:" in message
    assert says in message


def test_inert_fields_are_accepted_and_said_to_be(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        "  name: simple-fanout-example\n",
        "  name: simple-fanout-example\n  annotations:\n"
        '    traefik.ingress.kubernetes.io/router.observability.accesslogs: "false"\n',
    )
    intent = load_intent([path])
    assert any(
        "router.observability.accesslogs is accepted as inert" in f.message for f in intent.findings
    )


@pytest.mark.stack
def test_a_run_with_an_unknown_traffic_field_is_refused_before_any_traffic(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        "  name: simple-fanout-example\n",
        "  name: simple-fanout-example\n  annotations:\n"
        "    traefik.ingress.kubernetes.io/service.serversscheme: https\n",
    )
    run = run_pytest(*EXACT, "--manifests", path, "--report-dir", tmp_path / "out")
    assert run.returncode == 4, run.output[-2000:]
    assert f"edited.yaml:{_line_of(path, 'serversscheme')}:" in run.output
    assert "Traceback" not in run.output
