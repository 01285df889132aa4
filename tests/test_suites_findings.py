"""Where Traefik differs from the Kubernetes Ingress spec, the suites report it as a finding.

Purpose-built manifests, one host per situation so they do not interact, run through the exact
suites on the local target (a pytest subprocess with its own stack, as a user would run them)
with ``--report-dir``; the findings are read from results.json:

- ``exact.test``: an Exact and a Prefix path on the same ``/cheddar``. Traefik ranks by rule
  length, so ``PathPrefix`` (longer) outranks ``Path``; the spec puts Exact first.
- ``chars.test``: ``/cheddar`` (Prefix) matches ``/cheddarX`` in Traefik, which compares
  characters; the spec's Prefix is element-wise and would answer 404.
- ``tie.test``: two Ingresses with the same host and path to different Services tie on priority:
  the outcome is undefined, reported as such, neither passed nor failed.

Each finding is also backed by traffic: the checks that the oracle derived pass on the real
proxy (it does route /cheddar to the Prefix backend, and /cheddarX to cheddar).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from suite_runs import run_pytest

from harness.intent.model import (
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_PREFIX_OUTRANKS_EXACT,
    FINDING_UNDEFINED_TIE,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]


REPO = Path(__file__).resolve().parent.parent
EXACT_SUITES = [
    f"{REPO}/harness/suites/test_{a}.py::test_{a}" for a in ("routing", "strip", "priority")
]
ROUNDS = 3
#: The run (its own stack, one reload) takes ~10 s here; this only bounds a hung child.
RUN_TIMEOUT = 240.0

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  ports:
  - name: http
    port: 80
"""

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: /cheddar  # {name}
        pathType: {path_type}
        backend:
          service:
            name: {service}
            port:
              name: http
"""

#: (Ingress name, host, pathType, Service) of the purpose-built manifests.
INGRESSES = [
    ("cheddar-exact", "exact.test", "Exact", "cheddar"),
    ("cheddar-prefix", "exact.test", "Prefix", "wensleydale"),
    ("cheddar-chars", "chars.test", "Prefix", "cheddar"),
    ("tie-cheddar", "tie.test", "Prefix", "cheddar"),
    ("tie-wensleydale", "tie.test", "Prefix", "wensleydale"),
]


def route_id(name: str) -> str:
    """The harness's id of the single route of Ingress ``name`` (``<object>:<host><path>``)."""
    host = next(h for n, h, _, _ in INGRESSES if n == name)
    return f"{name}:{host}/cheddar"


@dataclass
class FindingsRun:
    manifest: Path
    returncode: int
    output: str
    results: dict[str, Any]

    def line_of(self, ingress: str) -> int:
        """The line of Ingress ``ingress``'s path entry (where its route is declared)."""
        marker = f"# {ingress}"
        lines = self.manifest.read_text("utf-8").splitlines()
        (line,) = [i for i, ln in enumerate(lines, 1) if ln.endswith(marker)]
        return line

    def findings(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.results["findings"] if f["kind"] == kind]

    def check(self, aspect: str, probe: str) -> dict[str, Any]:
        """The results.json record of the ``aspect`` check of ``probe``, with its verdict."""
        nodeid = f"harness/suites/test_{aspect}.py::test_{aspect}[manifests:{probe}]"
        (found,) = [c for c in self.results["checks"] if c["nodeid"] == nodeid]
        return found  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def findings_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FindingsRun]:
    """The purpose-built manifests through the exact suites on the local target, once."""
    folder = tmp_path_factory.mktemp("findings")
    manifest = folder / "findings.yaml"
    docs = [SERVICE.format(name=s) for s in ("cheddar", "wensleydale")]
    docs += [INGRESS.format(name=n, host=h, path_type=t, service=s) for n, h, t, s in INGRESSES]
    manifest.write_text("---\n".join(docs), "utf-8")
    report_dir = folder / "report"
    run = run_pytest(
        *EXACT_SUITES,
        "--manifests", manifest,
        "--probe-rounds", str(ROUNDS),
        "--report-dir", report_dir,
        "-q",
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    yield FindingsRun(manifest, run.returncode, run.output, run.results(report_dir))


def test_findings_run_on_the_local_target_passes(findings_run: FindingsRun) -> None:
    """Findings are not failures: the run passes, with the ties counted as undefined."""
    assert findings_run.returncode == 0, findings_run.output[-4000:]
    assert findings_run.results["target"]["target"] == "local"
    counts = findings_run.results["counts"]
    assert counts["failed"] == counts["error"] == 0, counts
    assert counts["passed"] > 0
    assert counts["undefined"] > 0


def test_prefix_outranking_exact_on_the_same_path(findings_run: FindingsRun) -> None:
    prefix, exact = route_id("cheddar-prefix"), route_id("cheddar-exact")
    (finding,) = findings_run.findings(FINDING_PREFIX_OUTRANKS_EXACT)
    assert finding["routes"] == [prefix, exact]
    assert "on the same path" in finding["message"]
    assert finding["source"]["file"] == str(findings_run.manifest)
    assert finding["source"]["line"] == findings_run.line_of("cheddar-prefix")
    # And the proxy did what the finding says: every /cheddar reached the Prefix backend.
    check = findings_run.check("routing", "exact.test/cheddar")
    assert check["outcome"] == "passed"
    verdict = check["evidence"]
    assert {(o["status"], o["backend"]) for o in verdict["observed"]} == {(200, "wensleydale")}
    assert sum(o["count"] for o in verdict["observed"]) == ROUNDS
    assert FINDING_PREFIX_OUTRANKS_EXACT in {f["kind"] for f in check["findings"]}


def test_cheddar_matching_cheddarx(findings_run: FindingsRun) -> None:
    chars = route_id("cheddar-chars")
    found = [
        f for f in findings_run.findings(FINDING_CHARACTER_WISE_PREFIX) if chars in f["routes"]
    ]
    assert len(found) == 1, findings_run.results["findings"]
    (finding,) = found
    assert finding["routes"] == [chars]
    assert "/cheddarX matches PathPrefix(/cheddar)" in finding["message"]
    assert "the Ingress spec answers 404" in finding["message"]
    assert finding["source"]["line"] == findings_run.line_of("cheddar-chars")
    check = findings_run.check("routing", "chars.test/cheddarX")
    assert check["outcome"] == "passed"
    verdict = check["evidence"]
    assert {(o["status"], o["backend"]) for o in verdict["observed"]} == {(200, "cheddar")}


def test_ties_are_reported_as_undefined(findings_run: FindingsRun) -> None:
    tied = [route_id("tie-cheddar"), route_id("tie-wensleydale")]
    ties = findings_run.findings(FINDING_UNDEFINED_TIE)
    assert ties, findings_run.results["findings"]
    assert all(f["routes"] == tied for f in ties)
    # Every request both routes match, and only those, is undefined: not passed, not failed.
    both_match = {f"tie.test/cheddar{suffix}" for suffix in ("", "/", "/x", "X")}
    undefined: set[tuple[str, str]] = set()
    for check in findings_run.results["checks"]:
        verdict = check["evidence"]
        if verdict is not None and verdict["type"] == "exact":
            probe = verdict["probe_id"]
            if probe in both_match:
                assert check["outcome"] == "undefined", check["nodeid"]
                assert verdict["outcome"] == "undefined"
                assert verdict["expected"].startswith("undefined: ")
                # The observed distribution is kept: every answer came from one of the tied.
                assert {o["backend"] for o in verdict["observed"]} <= {"cheddar", "wensleydale"}
                assert sum(o["count"] for o in verdict["observed"]) == ROUNDS
                request = f"{verdict['aspect']} check UNDEFINED: GET http://{probe}"
                assert request in check["message"]
                undefined.add((verdict["aspect"], probe))
            elif check["outcome"] == "undefined":
                pytest.fail(f"{check['nodeid']} is undefined but no tie decides it")
    assert undefined == {(a, p) for a in ("routing", "priority") for p in both_match}
    assert findings_run.results["counts"]["undefined"] == len(undefined)
