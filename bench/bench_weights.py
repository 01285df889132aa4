"""Wall time of the tutorial's weights check at the default settings, on the local target.

Brings up the local stack, applies the tutorial's 75/25 (harness/suites/manifests/weights.yaml), and
runs the weighted-split check as the suite would in a default run (family-wise alpha 0.001
split over the default scenarios' weighted routes, power 0.99, 2-point minimum deviation), in
fixed-N and in sequential mode. Prints a table and one JSON line (``{"bench": "weights", ...}``).

    python bench/bench_weights.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from harness.checks.weights import WeightSettings, check_split
from harness.intent.dialects import load_intent, load_scenarios
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStack, LocalStackOptions
from harness.traffic.addresses import LOOPBACK_ONLY_ENV

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "harness" / "suites" / "manifests"


def main() -> int:
    # The harness's own benchmarks send traffic to this machine only.
    os.environ.setdefault(LOOPBACK_ONLY_ENV, "1")
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="checks per mode (default 3)")
    args = parser.parse_args()
    n_checks = sum(len(i.weighted_routes) for i in load_scenarios(MANIFESTS).values())
    intent = load_intent([MANIFESTS / "services.yaml", MANIFESTS / "weights.yaml"])
    (route,) = intent.weighted_routes
    services = {"stilton": 2, "cheddar": 2, "wensleydale": 2}
    summary: dict[str, object] = {"bench": "weights", "n_checks": n_checks}
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(LocalStackOptions(services=services), Path(tmp)) as stack,
    ):
        target = LocalTarget(stack)
        target.apply_intent(intent)
        for mode in ("fixed", "sequential"):
            settings = WeightSettings(mode=mode)  # type: ignore[arg-type]
            walls, sent, verdicts = [], [], []
            for _ in range(args.repeats):
                result = check_split(
                    stack.proxy_url, intent, route, settings, scenario="weights", n_checks=n_checks
                )
                evidence = result.evidence
                assert evidence["type"] == "weights"
                walls.append(evidence["wall_time"])
                sent.append(evidence["sent"])
                verdicts.append(str(result.outcome))
            print(
                f"{mode:>10}: {statistics.median(walls):6.2f} s median wall time, "
                f"{statistics.median(sent):,.0f} requests, "
                f"{statistics.median(sent) / statistics.median(walls):,.0f} req/s, "
                f"verdicts {verdicts}"
            )
            summary[mode] = {
                "wall_time_median": statistics.median(walls),
                "requests": statistics.median(sent),
                "verdicts": verdicts,
            }
        target.remove_intent(intent)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
