"""Running pytest in a subprocess, as a user would, for the harness's own end-to-end tests.

The child is configured only by its command line: this run's HARNESS_* and PYTEST_* settings
are not passed on. Imported by test modules (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results_schema import assert_valid

from harness.results.document import load

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PytestRun:
    """What a pytest subprocess did: its exit status and everything it printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self, report_dir: Path) -> dict[str, Any]:
        """The results.json it wrote, checked against the shipped JSON Schema (fails the
        calling test, with the output, when missing or invalid)."""
        path = report_dir / "results.json"
        assert path.is_file(), (
            f"no results.json in {report_dir}; the run said:\n{self.output[-3000:]}"
        )
        document = load(path)
        assert_valid(document)
        return dict(document)


def run_pytest(
    *args: str | os.PathLike[str],
    timeout: float = 600.0,
    env: Mapping[str, str] | None = None,
) -> PytestRun:
    """``python -m pytest ARGS`` in the repository, without the cache plugin; ``env`` is added
    to the environment (after this run's HARNESS_* and PYTEST_* settings are removed)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_"))}
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PytestRun(proc.returncode, proc.stdout, proc.stderr)
