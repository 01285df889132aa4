"""The weighted-split suite end to end: the tutorial's 75/25 on the local Traefik passes, the
same proxy checked against a wrongly declared 78/22 fails with evidence that shows the mismatch,
and a backend instance that is down (Traefik answers 502 for its share) makes the check an
error, not a failed split, in results.json, the terminal summary and the HTML report.

The proxy is configured in this process (the local stack with the tutorial's weights applied);
the suite runs in a subprocess in external mode against it, as a user would verify a proxy the
harness did not set up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from suite_runs import run_pytest

from harness.intent.dialects import load_intent
from harness.targets.base import LocalTarget
from harness.waiting import wait_until

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "harness" / "suites" / "manifests"


@pytest.fixture(scope="module")
def weighted_proxy(local_stack: Any) -> Iterator[str]:
    """The local Traefik serving the tutorial's 75/25 split."""
    target = LocalTarget(local_stack)
    intent = load_intent([MANIFESTS / "services.yaml", MANIFESTS / "weights.yaml"])
    target.apply_intent(intent)
    yield target.proxy_url
    target.remove_intent(intent)


def _declared(tmp_path: Path, cheddar: int, wensleydale: int) -> Path:
    text = (MANIFESTS / "weights.yaml").read_text()
    text = text.replace("cheddar: 75%", f"cheddar: {cheddar}%")
    text = text.replace("wensleydale: 25%", f"wensleydale: {wensleydale}%")
    path = tmp_path / f"weights-{cheddar}-{wensleydale}.yaml"
    path.write_text(text)
    return path


def _run_suite(
    tmp_path: Path, proxy_url: str, manifest: Path, *extra: str
) -> tuple[int, str, dict[str, Any]]:
    report_dir = tmp_path / "report"
    run = run_pytest(
        ROOT / "harness" / "suites" / "test_weights.py", "-q",
        "--proxy-url", proxy_url,
        "--manifests", MANIFESTS / "services.yaml", manifest,
        "--report-dir", report_dir, "--baseline", "none",
        *extra,
        timeout=300,
    )  # fmt: skip
    return run.returncode, run.output, run.results(report_dir)


def test_declared_75_25_passes(weighted_proxy: str, tmp_path: Path) -> None:
    status, output, results = _run_suite(tmp_path, weighted_proxy, _declared(tmp_path, 75, 25))
    assert status == 0, output
    (check,) = results["checks"]
    verdict = check["evidence"]["verdict"]
    assert verdict["verdict"] == "pass"
    assert check["evidence"]["sent"] >= check["evidence"]["plan"]["n_fixed"]
    # Every instance of every backend took its part (one server per endpoint address).
    instances = {(r["backend"], r["instance"]) for r in check["evidence"]["counts_by_instance"]}
    assert instances == {
        (svc, f"{svc}-{n}") for svc in ("cheddar", "wensleydale") for n in range(2)
    }


def test_declared_78_22_fails_with_the_mismatch_in_the_message(
    weighted_proxy: str, tmp_path: Path
) -> None:
    status, output, results = _run_suite(tmp_path, weighted_proxy, _declared(tmp_path, 78, 22))
    assert status == 1, output
    (check,) = results["checks"]
    assert check["outcome"] == "failed"
    evidence = check["evidence"]
    verdict = evidence["verdict"]
    assert verdict["verdict"] == "fail"
    shares = dict(zip(verdict["backends"], verdict["observed"], strict=True))
    # Traefik's WRR is deterministic: the observed share is 75 % to within a request or two.
    assert shares["cheddar"] == pytest.approx(0.75, abs=0.005)
    assert verdict["p_value"] < verdict["alpha"]
    # The message names the route, where it was declared, the declared and observed shares.
    assert "weights-78-22.yaml" in output
    assert "cheddar 78.00%" in output
    assert f"cheddar {shares['cheddar']:.2%}" in output
    assert "largest deviation" in output


def _answers_from(proxy_url: str, instance: str) -> bool:
    """Whether a few requests to the weighted route reach ``instance`` (Traefik rotates its
    servers, so a handful covers every one of them)."""
    with httpx.Client(base_url=proxy_url, timeout=5.0, trust_env=False) as client:
        return any(
            f"Hostname: {instance}" in client.get("/", headers={"Host": "cheeses.minikube"}).text
            for _ in range(12)
        )


@pytest.fixture
def cheddar_instance_down(weighted_proxy: str, local_stack: Any) -> Iterator[str]:
    """A third cheddar instance that Traefik routes to, then stopped: its share gets 502s
    (connection refused) until its endpoint is withdrawn."""
    process = local_stack.start_extra_backend("cheddar", "cheddar-down", host="127.0.10.9")
    (instance,) = process.instances
    local_stack.publish_endpoint(instance)
    try:
        wait_until(
            lambda: _answers_from(weighted_proxy, "cheddar-down"),
            timeout=30,
            what="Traefik to route to the third cheddar instance",
        )
        process.stop()
        yield weighted_proxy
    finally:
        process.stop()
        local_stack.withdraw_endpoint(instance)


def test_backend_down_is_an_error_not_a_failed_split(
    cheddar_instance_down: str, tmp_path: Path
) -> None:
    status, output, results = _run_suite(
        tmp_path,
        cheddar_instance_down,
        _declared(tmp_path, 75, 25),
        "--max-error-rate", "0.01",
    )  # fmt: skip
    assert status == 1, output
    (check,) = results["checks"]
    assert check["kind"] == "weights" and check["outcome"] == "error"
    assert results["counts"]["error"] == 1 and results["counts"]["failed"] == 0
    assert results["gate"]["verdict"] == "error"
    evidence = check["evidence"]
    # A third of cheddar's 75%: about a quarter of the requests got 502.
    assert evidence["failures"].get("502", 0) > 0.01 * evidence["sent"]
    assert evidence["error_check"]["verdict"] == "error"
    assert evidence["verdict"] is None, "no split verdict on a check that could not be judged"
    assert check["figures"]["error_rate"] > 0.01
    # The terminal summary counts it as an error ...
    assert "1 error" in output and "gate: ERROR" in output
    # ... and so does the report.
    html = (tmp_path / "report" / "index.html").read_text("utf-8")
    assert 'data-outcome="error"><b>1</b> error' in html
    assert 'data-outcome="failed"><b>0</b> failed' in html
