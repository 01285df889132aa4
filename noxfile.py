"""Sessions: ``nox -s tests`` (the harness's own tests), ``verify`` (the suites on the local
target, writing reports/<run>/), ``gate`` (two runs compared: reports/<gate id>/), ``bench``
(figures for the README), ``lint`` (ruff, mypy).

Arguments after ``--`` go to pytest (or to the benchmark): ``nox -s tests -- -k kubeapi``.
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


def _install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


def _pytest(session: nox.Session, *args: str) -> None:
    session.run(
        "python", "-m", "pytest", "--strict-config", "--strict-markers", *args, *session.posargs
    )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The harness's own tests (unit and integration against the local target)."""
    _install(session, "test")
    _pytest(session, "tests")


@nox.session(python=PYTHON)
def verify(session: nox.Session) -> None:
    """Run the verification suites against the local target and write reports/<run id>/: the
    installed ``ingress-harness verify`` (harness/cli/verify.py), with the arguments after --."""
    _install(session)
    session.run("ingress-harness", "verify", *session.posargs)


@nox.session(python=PYTHON)
def gate(session: nox.Session) -> None:
    """The pre-release gate: the suites twice, compared (``ingress-harness gate``); its options
    come after ``--``: ``nox -s gate -- --from-traefik 3.6.0 --to-traefik 3.7.15``."""
    _install(session)
    session.run("python", "-m", "harness", "gate", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Figures for the README: echo backends under wrk; the traffic engine beside wrk through
    the local Traefik (ratio, bytes per request, open-loop rate and lag); the wall time of the
    tutorial's weights check; the gap table and where a gap run's time goes; the default
    verify's wall and CPU time per suite next to its 150 s target, and a gate's (the pinned
    Traefik against itself) next to its 330 s. Needs Debian's `wrk`."""
    if shutil.which("wrk") is None:
        session.error("`wrk` is not installed; install it first: apt-get install -y wrk")
    _install(session)
    session.run("python", "bench/bench_backends.py")
    session.run("python", "bench/bench_traffic.py")
    session.run("python", "bench/bench_weights.py")
    session.run("python", "bench/bench_gaps.py")
    session.run("python", "bench/bench_verify.py", "--gate")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy (strict) over the package, tests and suites."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
