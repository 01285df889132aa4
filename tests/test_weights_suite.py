"""The weighted-split suite end to end: the tutorial's 75/25 on the local Traefik passes, and the
same proxy checked against a wrongly declared 78/22 fails with evidence that shows the mismatch.

The proxy is configured in this process (the local stack with the tutorial's weights applied);
the suite runs in a subprocess in external mode against it, as a user would verify a proxy the
harness did not set up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from suite_runs import run_pytest

from harness.intent.dialects import load_intent
from harness.targets.base import LocalTarget

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "suites" / "manifests"


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


def _run_suite(tmp_path: Path, proxy_url: str, manifest: Path) -> tuple[int, str, dict[str, Any]]:
    report_dir = tmp_path / "report"
    run = run_pytest(
        ROOT / "suites" / "test_weights.py", "-q",
        "--proxy-url", proxy_url,
        "--manifests", MANIFESTS / "services.yaml", manifest,
        "--report-dir", report_dir,
        timeout=300,
    )  # fmt: skip
    return run.returncode, run.output, run.results(report_dir)


def test_declared_75_25_passes(weighted_proxy: str, tmp_path: Path) -> None:
    status, output, results = _run_suite(tmp_path, weighted_proxy, _declared(tmp_path, 75, 25))
    assert status == 0, output
    (check,) = results["checks"]
    verdict = check["evidence"][0]["verdict"]
    assert verdict["verdict"] == "pass"
    assert check["evidence"][0]["sent"] >= check["evidence"][0]["plan"]["n_fixed"]
    # Every instance of every backend took its part (one server per endpoint address).
    instances = {(r["backend"], r["instance"]) for r in check["evidence"][0]["counts_by_instance"]}
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
    evidence = check["evidence"][0]
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
