"""``ingress-harness verify [--manifests PATH...] [pytest options]``: the packaged suites
(:mod:`harness.suites`) run by pytest in this process, writing ``reports/<run id>/`` (junit.xml,
results.json, index.html) under the current folder; the exit status is pytest's.

Everything after ``verify`` is a pytest argument, the harness's options included (``--manifests``,
``--proxy-url``, ``--probe-rounds``, ``-k``, ``-n``, ...); ``--report-dir`` replaces the default
folder. The run uses the harness's own pytest configuration (``harness/suites/verify.ini``)
whatever folder it runs in, and its rootdir is the folder holding the ``harness`` package, so a
check has the same node id (``harness/suites/test_routing.py::...``) from a checkout and from an
installed wheel: the comparison with an earlier run matches checks by it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INTRO = """\
usage: ingress-harness verify [--manifests PATH...] [--report-dir DIR] [pytest options]

Runs the packaged verification suites against the manifests (default: the tutorial's
scenarios) and writes reports/<run id>/ (junit.xml, results.json, index.html) under the current
folder. Without --proxy-url, the embedded local target (a real Traefik) is started. Every
argument is pytest's; the harness's options are listed under "ingress-harness" below.

"""


def pytest_args(
    argv: list[str], report_dir: Path | None, suites: list[str] | None = None
) -> list[str]:
    """The pytest command line of a verification run: the suites (``suites``: these files of
    the package's suites, default all), the harness's pytest configuration, the reports into
    ``report_dir`` (None: no reports, for ``--help``), then the user's ``argv`` (which come
    last, so that a repeated option of theirs wins)."""
    from harness.suites import SUITES, VERIFY_INI, plugin_installed

    return [
        *([str(SUITES)] if suites is None else [str(SUITES / name) for name in suites]),
        "-c",
        str(VERIFY_INI),
        "--rootdir",
        str(SUITES.parents[1]),
        # The cache (--lf, --ff) beside the reports, not in the installed package's folder.
        "-o",
        f"cache_dir={Path.cwd() / '.pytest_cache'}",
        *([] if plugin_installed() else ["-p", "harness.plugin"]),
        *(
            []
            if report_dir is None
            else [f"--junitxml={report_dir / 'junit.xml'}", f"--report-dir={report_dir}"]
        ),
        *argv,
    ]


@contextmanager
def _run_id_in_env(run_id: str) -> Iterator[None]:
    """The run id for the plugin (and pytest-xdist's workers) to name the run as its folder."""
    before = os.environ.get("HARNESS_RUN_ID")
    os.environ["HARNESS_RUN_ID"] = run_id
    try:
        yield
    finally:
        if before is None:
            del os.environ["HARNESS_RUN_ID"]
        else:
            os.environ["HARNESS_RUN_ID"] = before


def main(argv: list[str]) -> int:
    import pytest

    from harness.results import run_id

    own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    own.add_argument("-h", "--help", action="store_true")
    own.add_argument("--report-dir")
    ns, _ = own.parse_known_args(argv)
    if ns.help:
        sys.stdout.write(INTRO)
        sys.stdout.flush()
        return int(pytest.main(pytest_args(argv, None)))
    this_run = run_id()
    report_dir = Path(ns.report_dir) if ns.report_dir else Path("reports", this_run)
    report_dir = report_dir.resolve()
    # The plugin's summary names the report it wrote (or why it wrote none).
    with _run_id_in_env(this_run):
        return int(pytest.main(pytest_args(argv, report_dir)))
