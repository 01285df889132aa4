"""Faults on the proxy side make the right exact check fail, with a message that explains it.

External mode is how users verify a proxy the harness did not set up: ``--proxy-url`` plus the
manifests that say what the proxy should do. These tests play that user. The session's local
stack stands in for "a Traefik someone else configured": the tutorial's intent is rendered to
Traefik v3 objects, one thing is broken in them (a route dropped, a strip dropped, priorities
swapped, a path sent to another Service), that is applied, and the suites run in a pytest
subprocess against it with the *correct* manifests. The run must exit 1, the failing checks must
be exactly the ones about the fault (read from results.json, not from the terminal), and each
failure message must name the route, the manifest file:line, the request, what was expected and
what came back. A control run against the correct configuration must pass.

Only the derived exact checks are selected (``test_routing``/``test_strip``/``test_priority``):
that is the part whose failures the faults are about, and it keeps each run to a few seconds.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from suite_runs import run_pytest

from harness.intent.dialects import load_intent, render_manifests
from harness.traefik.process import enabled_routers

pytestmark = [pytest.mark.stack, pytest.mark.slow]


REPO = Path(__file__).resolve().parent.parent
MANIFESTS = REPO / "harness" / "suites" / "manifests"
#: The derived exact checks, and nothing else (see the module docstring).
EXACT_SUITES = [
    f"{REPO}/harness/suites/test_{a}.py::test_{a}" for a in ("routing", "strip", "priority")
]
NAMESPACE = "default"
ROUNDS = 3
#: Applying or removing objects shows in Traefik after a throttle window (2 s) plus the watch.
APPLY_TIMEOUT = 30.0
#: One external-mode run takes ~3 s here; this only bounds a hung child.
RUN_TIMEOUT = 180.0

#: The scenarios the faults are built on: the tutorial's own manifests.
SCENARIOS: dict[str, list[Path]] = {
    "cheeses": [MANIFESTS / "services.yaml", MANIFESTS / "cheeses.yaml"],
    "priority-explicit": [MANIFESTS / "services.yaml", MANIFESTS / "priority-explicit.yaml"],
}

ANN_PRIORITY = "traefik.ingress.kubernetes.io/router.priority"
ANN_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
# The note a strip check adds when routing went wrong and the strip could not be seen at all.
STRIP_UNSEEN = "no answer came from the expected backend"


def _probes(host: str, path: str) -> frozenset[str]:
    """The probe ids the harness derives for a prefix route: at, with '/', under, boundary."""
    return frozenset(f"{host}{path}{suffix}" for suffix in ("", "/", "/x", "X"))


CHEDDAR = _probes("cheeses.minikube", "/cheddar")
WENSLEYDALE = _probes("cheeses.minikube", "/wensleydale")
CHEDDAR_WENSLEYDALE = _probes("cheeses.minikube", "/cheddar/wensleydale")


# -- the faults ---------------------------------------------------------------------------------


def _ingress(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == "Ingress" and o["metadata"]["name"] == name]
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "Ingress"]
    assert len(found) == 1, f"rendered Ingresses are {names}; the fault needs {name!r}"
    return found[0]


def drop_ingress(name: str) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(objs: list[dict[str, Any]]) -> None:
        objs.remove(_ingress(objs, name))

    return mutate


def drop_strip(name: str) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(objs: list[dict[str, Any]]) -> None:
        annotations = _ingress(objs, name)["metadata"]["annotations"]
        assert annotations.pop(ANN_MIDDLEWARES), f"{name} had no middleware to drop"

    return mutate


def swap_priorities(a: str, b: str) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(objs: list[dict[str, Any]]) -> None:
        ann_a = _ingress(objs, a)["metadata"]["annotations"]
        ann_b = _ingress(objs, b)["metadata"]["annotations"]
        assert ann_a[ANN_PRIORITY] != ann_b[ANN_PRIORITY]
        ann_a[ANN_PRIORITY], ann_b[ANN_PRIORITY] = ann_b[ANN_PRIORITY], ann_a[ANN_PRIORITY]

    return mutate


def retarget(name: str, service: str) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(objs: list[dict[str, Any]]) -> None:
        for rule in _ingress(objs, name)["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                path["backend"]["service"]["name"] = service

    return mutate


@dataclass(frozen=True)
class Sample:
    """One failing check whose message is read in full: what it must say."""

    aspect: str
    probe: str
    route: str
    declared: tuple[str, str]  # (manifest file name, the line the route's path is on)
    says: tuple[str, ...]


@dataclass(frozen=True)
class Fault:
    """A fault on the proxy side and the checks it must fail (exactly)."""

    name: str
    scenario: str
    mutate: Callable[[list[dict[str, Any]]], None]
    failing: dict[str, frozenset[str]]
    sample: Sample
    #: Strip checks may also fail on requests that routing already fails, saying the strip
    #: could not be seen (no answer from the expected backend): the request never got there.
    strip_unseen_allowed: bool = False


FAULTS = [
    Fault(
        "route-missing",
        "cheeses",
        drop_ingress("cheeses-wensleydale"),
        {"routing": WENSLEYDALE, "strip": frozenset(), "priority": frozenset()},
        Sample(
            "routing",
            "cheeses.minikube/wensleydale/x",
            "cheeses:cheeses.minikube/wensleydale",
            ("cheeses.yaml", "- path: /wensleydale"),
            ("expected  200 from wensleydale", f"{ROUNDS} x 404 (no backend answered)"),
        ),
        strip_unseen_allowed=True,
    ),
    Fault(
        "strip-missing",
        "cheeses",
        drop_strip("cheeses-cheddar"),
        {"routing": frozenset(), "strip": CHEDDAR, "priority": frozenset()},
        Sample(
            "strip",
            "cheeses.minikube/cheddar/x",
            "cheeses:cheeses.minikube/cheddar",
            ("cheeses.yaml", "- path: /cheddar"),
            (
                "expected  upstream path /x, X-Forwarded-Prefix /cheddar",
                f"{ROUNDS} x 200 from cheddar as /cheddar/x",
            ),
        ),
    ),
    Fault(
        "priority-reversed",
        "priority-explicit",
        swap_priorities("cheddar", "wensleydale"),
        # The requests both routes match: precedence now picks the other route, so the same
        # requests also reach the wrong backend (routing), and nothing else changes.
        {
            "routing": CHEDDAR_WENSLEYDALE,
            "strip": frozenset(),
            "priority": CHEDDAR_WENSLEYDALE,
        },
        Sample(
            "priority",
            "cheeses.minikube/cheddar/wensleydale/x",
            "cheddar:cheeses.minikube/cheddar",
            ("priority-explicit.yaml", "- path: /cheddar"),
            (
                'decided   by Host("cheeses.minikube") && PathPrefix("/cheddar") with priority 2 '
                "(explicit)",
                'outranks  Host("cheeses.minikube") && PathPrefix("/cheddar/wensleydale") with '
                "priority 1",
                "expected  200 from cheddar",
                f"{ROUNDS} x 200 from wensleydale",
            ),
        ),
        strip_unseen_allowed=True,
    ),
    Fault(
        "wrong-service",
        "cheeses",
        retarget("cheeses-wensleydale", "stilton"),
        {"routing": WENSLEYDALE, "strip": frozenset(), "priority": frozenset()},
        Sample(
            "routing",
            "cheeses.minikube/wensleydale/x",
            "cheeses:cheeses.minikube/wensleydale",
            ("cheeses.yaml", "- path: /wensleydale"),
            ("expected  200 from wensleydale", f"{ROUNDS} x 200 from stilton"),
        ),
        strip_unseen_allowed=True,
    ),
]


# -- configuring the proxy, and knowing it serves what was applied ------------------------------


def _router_signature(objs: list[dict[str, Any]]) -> set[tuple[str, str, tuple[str, ...], int]]:
    """(rule, service, middlewares, priority) of every router Traefik 3.7's Ingress provider
    builds from these v1 Ingresses (rule and service names as in its ``loadRouter``)."""
    out: set[tuple[str, str, tuple[str, ...], int]] = set()
    for obj in objs:
        if obj["kind"] != "Ingress":
            continue
        annotations = obj["metadata"].get("annotations", {})
        middlewares = tuple(m for m in annotations.get(ANN_MIDDLEWARES, "").split(",") if m)
        for rule in obj["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                matcher = "Path" if path["pathType"] == "Exact" else "PathPrefix"
                # json.dumps quotes plain ASCII exactly like Go's %q, which Traefik uses.
                text = f"Host({json.dumps(rule['host'])}) && {matcher}({json.dumps(path['path'])})"
                backend = path["backend"]["service"]
                service = f"{NAMESPACE}-{backend['name']}-{backend['port']['number']}"
                priority = int(annotations.get(ANN_PRIORITY, 0)) or len(text)
                out.add((text, service, middlewares, priority))
    return out


def _served(routers: list[dict[str, Any]]) -> set[tuple[str, str, tuple[str, ...], int]]:
    return {
        (
            str(r["rule"]),
            str(r["service"]),
            tuple(r.get("middlewares") or ()),
            int(r["priority"]),
        )
        for r in enabled_routers(routers)
        if str(r.get("name", "")).startswith(f"{NAMESPACE}-")
    }


def _wait_served(traefik: Any, wanted: set[tuple[str, str, tuple[str, ...], int]]) -> None:
    traefik.wait_for_routers(
        lambda routers: _served(routers) == wanted,
        timeout=APPLY_TIMEOUT,
        what=f"Traefik to serve exactly {sorted(wanted)} in namespace {NAMESPACE}",
    )


@contextlib.contextmanager
def configured(applier: Any, traefik: Any, objs: list[dict[str, Any]]) -> Iterator[None]:
    """The proxy serving exactly ``objs`` (from a clean namespace); removed afterwards."""
    _wait_served(traefik, set())
    try:
        applier.apply_all(objs)
        _wait_served(traefik, _router_signature(objs))
        yield
    finally:
        applier.delete_all(objs)
        _wait_served(traefik, set())


# -- running the suites as a user would ---------------------------------------------------------


@dataclass
class SuiteRun:
    returncode: int
    output: str
    results: dict[str, Any]

    def verdicts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(aspect, probe id) → the check's record in results.json."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for check in self.results["checks"]:
            item = check["evidence"]
            if item is not None and item["type"] == "exact":
                out[(item["aspect"], item["probe_id"])] = check
        return out

    def failing(self) -> dict[str, set[str]]:
        failed: dict[str, set[str]] = {"routing": set(), "strip": set(), "priority": set()}
        for (aspect, probe), check in self.verdicts().items():
            if check["outcome"] == "failed":
                failed[aspect].add(probe)
        return failed


def run_external(proxy_url: str, manifests: list[Path], report_dir: Path) -> SuiteRun:
    """The exact suites in a pytest subprocess, external mode; their results.json."""
    run = run_pytest(
        *EXACT_SUITES,
        "--proxy-url", proxy_url,
        "--manifests", *manifests,
        "--probe-rounds", str(ROUNDS),
        "--report-dir", report_dir,
        "-q",
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    return SuiteRun(run.returncode, run.output, run.results(report_dir))


def _line_of(file: Path, text: str) -> int:
    lines = [
        i for i, ln in enumerate(file.read_text("utf-8").splitlines(), 1) if ln.strip() == text
    ]
    assert len(lines) == 1, f"{text!r} is on lines {lines} of {file}"
    return lines[0]


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_correct_configuration_passes(
    scenario: str, applier: Any, traefik: Any, tmp_path: Path
) -> None:
    """The control: the proxy configured as the manifests say passes every derived check."""
    manifests = SCENARIOS[scenario]
    objs = render_manifests(load_intent(manifests), NAMESPACE)
    with configured(applier, traefik, objs):
        run = run_external(traefik.proxy_url, manifests, tmp_path)
    assert run.returncode == 0, run.output[-4000:]
    assert run.results["target"] == {
        "target": "external",
        "proxy_url": traefik.proxy_url,
        "backend_map": {},
    }
    counts = run.results["counts"]
    assert counts["passed"] > 0
    assert counts["failed"] == counts["error"] == counts["undefined"] == 0, counts
    assert {check["outcome"] for check in run.verdicts().values()} == {"passed"}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_fails_the_right_checks(
    fault: Fault, applier: Any, traefik: Any, tmp_path: Path
) -> None:
    manifests = SCENARIOS[fault.scenario]
    objs = copy.deepcopy(render_manifests(load_intent(manifests), NAMESPACE))
    fault.mutate(objs)
    with configured(applier, traefik, objs):
        run = run_external(traefik.proxy_url, manifests, tmp_path)

    assert run.returncode == 1, run.output[-4000:]
    assert run.results["counts"]["error"] == 0, run.output[-4000:]
    failing = run.failing()
    verdicts = run.verdicts()

    # Exactly the checks about the fault fail; every other check of the run passed.
    assert failing["routing"] == fault.failing["routing"]
    assert failing["priority"] == fault.failing["priority"]
    assert failing["strip"] == fault.failing["strip"]
    # A strip cannot be seen where the wrong backend (or none) answered: those strip checks are
    # not judged (skipped, saying why); the routing check of the same request fails instead.
    unseen = {
        probe for (aspect, probe), check in verdicts.items()
        if aspect == "strip" and check["outcome"] == "skipped"
    }  # fmt: skip
    if unseen:
        assert fault.strip_unseen_allowed, f"strip checks not judged: {sorted(unseen)}"
        assert unseen <= failing["routing"]
        for probe in unseen:
            assert STRIP_UNSEEN in verdicts[("strip", probe)]["message"]
    failed_total = sum(len(v) for v in failing.values())
    assert run.results["counts"]["failed"] == failed_total
    assert run.results["counts"]["passed"] == len(verdicts) - failed_total - len(unseen)

    # The one-screen message: route, file:line, request, expected, observed.
    sample = fault.sample
    check = verdicts[(sample.aspect, sample.probe)]
    assert check["outcome"] == "failed"
    message = check["message"]
    file_name, path_line = sample.declared
    manifest = next(m for m in manifests if m.name == file_name)
    host, _, path = sample.probe.partition("/")
    assert f"{sample.aspect} check FAILED: GET http://{host}/{path}" in message
    assert f"route     {sample.route}, declared at {manifest}:{_line_of(manifest, path_line)} " in (
        message
    )
    assert f"observed  ({ROUNDS} requests in {ROUNDS} rounds, no reload):" in message
    for text in sample.says:
        assert text in message, f"{text!r} not in:\n{message}"
    # What the user sees in the terminal names the failing check too.
    assert (
        f"FAILED harness/suites/test_{sample.aspect}.py::"
        f"test_{sample.aspect}[manifests:{sample.probe}]" in (run.output)
    )
