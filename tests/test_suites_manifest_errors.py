"""What ``--manifests`` does before any traffic: it decides the checks, or stops with an error.

- Adding a route to a manifest adds checks without touching test code: the suites are collected
  (``--collect-only``) with a manifest and with the same manifest plus one path, and exactly the
  new route's probes appear as new test ids.
- A bad manifest (invalid YAML, unknown kind or apiVersion, a backend Service that does not
  exist, a non-numeric priority, weights that do not add up) stops pytest with a usage error
  (exit status 4) whose message names the file, line and field and says what to do, and no
  traceback.

Both run pytest in a subprocess, as a user would, and need no stack: they take a second or two
each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from suite_runs import PytestRun, run_pytest

REPO = Path(__file__).resolve().parent.parent
SUITES = REPO / "harness" / "suites"
#: The exact suites' derived checks (the ids this file compares; other suites have their own).
DERIVED = ("test_routing", "test_strip", "test_priority")
#: Exit status of a pytest usage error (pytest.ExitCode.USAGE_ERROR).
USAGE_ERROR = 4
RUN_TIMEOUT = 120.0


def run_suites(*args: str) -> PytestRun:
    """pytest on the suites in a subprocess; only the command line configures the harness."""
    return run_pytest(SUITES, *args, timeout=RUN_TIMEOUT)


def line_of(text: str, marker: str) -> int:
    """The 1-based line of ``text`` that contains ``marker`` (exactly one must)."""
    lines = [i for i, ln in enumerate(text.splitlines(), 1) if marker in ln]
    assert len(lines) == 1, f"{marker!r} is on lines {lines}"
    return lines[0]


SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: cheddar
spec:
  ports:
  - name: http
    port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: wensleydale
spec:
  ports:
  - name: http
    port: 80
"""


# -- adding a route adds checks -----------------------------------------------------------------

CHEESES = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: strip
spec:
  stripPrefix:
    prefixes: [/cheddar, /wensleydale]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: cheeses
  annotations:
    traefik.ingress.kubernetes.io/router.middlewares: default-strip@kubernetescrd
spec:
  rules:
  - host: cheeses.test
    http:
      paths:
{paths}"""

PATH = """\
      - path: {path}
        pathType: Prefix
        backend:
          service:
            name: {service}
            port:
              name: http
"""


def cheeses_manifest(paths: list[tuple[str, str]]) -> str:
    return (
        SERVICES
        + "---\n"
        + CHEESES.format(paths="".join(PATH.format(path=p, service=s) for p, s in paths))
    )


def collected_checks(manifest: Path) -> set[str]:
    """The ids of the derived checks pytest collects for ``manifest``."""
    proc = run_suites("--collect-only", "-q", "--manifests", str(manifest))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = {
        line.strip()
        for line in proc.stdout.splitlines()
        if line.startswith("harness/suites/")
        and "[manifests:" in line
        and line.partition("::")[2].partition("[")[0] in DERIVED
    }
    assert ids, proc.stdout
    return ids


def _ids(test: str, probes: set[str]) -> set[str]:
    return {f"harness/suites/{test}.py::{test}[manifests:{p}]" for p in probes}


def _around(host: str, path: str) -> set[str]:
    return {f"{host}{path}{suffix}" for suffix in ("", "/", "/x", "X")}


@pytest.mark.parametrize(
    ("new_path", "expected"),
    [
        # A path of its own: its routing and strip probes, and the same path on an unknown host.
        pytest.param(
            "/wensleydale",
            _ids("test_routing", _around("cheeses.test", "/wensleydale"))
            | _ids("test_routing", {"unknown.invalid/wensleydale"})
            | _ids("test_strip", _around("cheeses.test", "/wensleydale")),
            id="separate-path",
        ),
        # A path under /cheddar: the same, plus the priority checks of the requests both match.
        pytest.param(
            "/cheddar/wensleydale",
            _ids("test_routing", _around("cheeses.test", "/cheddar/wensleydale"))
            | _ids("test_routing", {"unknown.invalid/cheddar/wensleydale"})
            | _ids("test_strip", _around("cheeses.test", "/cheddar/wensleydale"))
            | _ids("test_priority", _around("cheeses.test", "/cheddar/wensleydale")),
            id="overlapping-path",
        ),
    ],
)
def test_adding_a_route_adds_its_checks(new_path: str, expected: set[str], tmp_path: Path) -> None:
    manifest = tmp_path / "cheeses.yaml"
    manifest.write_text(cheeses_manifest([("/cheddar", "cheddar")]), "utf-8")
    before = collected_checks(manifest)
    # The same file, one more path in the Ingress: the user's edit; no test code changes.
    manifest.write_text(
        cheeses_manifest([("/cheddar", "cheddar"), (new_path, "wensleydale")]), "utf-8"
    )
    after = collected_checks(manifest)
    assert before <= after
    assert after - before == expected
    assert before == _ids("test_routing", _around("cheeses.test", "/cheddar")) | _ids(
        "test_routing", {"cheeses.test/no-such-route", "unknown.invalid/cheddar"}
    ) | _ids("test_strip", _around("cheeses.test", "/cheddar"))


# -- bad manifests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad manifest and what its error must say."""

    name: str
    text: str
    marker: str  # text on the line the error must point at
    says: tuple[str, ...]  # the field (or column), the problem, what to do


def _ingress(
    annotations: str = "", api: str = "networking.k8s.io/v1", service: str = "cheddar"
) -> str:
    v1 = api == "networking.k8s.io/v1"
    backend = (
        f"          service:\n            name: {service}  # backend\n"
        "            port:\n              name: http\n"
        if v1
        else f"          serviceName: {service}  # backend\n          servicePort: http\n"
    )
    return (
        f"apiVersion: {api}\nkind: Ingress\nmetadata:\n  name: cheeses\n"
        + (f"  annotations:\n{annotations}" if annotations else "")
        + "spec:\n  rules:\n  - host: cheeses.test\n    http:\n      paths:\n"
        + "      - path: /\n"
        + ("        pathType: Prefix\n" if v1 else "")
        + "        backend:\n"
        + backend
    )


def _two_paths(annotations: str) -> str:
    """The tutorial's weighted form: one Ingress, the same path to two Services."""
    one = _ingress(annotations, api="extensions/v1beta1")
    second = "      - path: /\n        backend:\n          serviceName: wensleydale\n"
    return one + second + "          servicePort: http\n"


def _with_middleware(spec: str, extra: str = "") -> str:
    """A Middleware ``mw`` with ``spec`` (YAML under spec:, indented 2) used by the Ingress."""
    return (
        "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: mw\nspec:\n"
        + spec
        + extra
        + "---\n"
        + _ingress(
            "    traefik.ingress.kubernetes.io/router.middlewares: default-mw@kubernetescrd\n"
        )
    )


BAD = [
    Bad(
        "refused-middleware-type",
        _with_middleware("  basicAuth:  # refused\n    secret: users\n"),
        "# refused",
        (
            "Middleware 'mw', field spec.basicAuth",
            "Middleware type 'basicAuth' answers 401 without credentials",
            "Verify such routes separately",
        ),
    ),
    Bad(
        "middleware-header-not-modeled",
        _with_middleware(
            "  headers:\n    customRequestHeaders:\n      X-Forwarded-For: 10.0.0.1  # here\n"
        ),
        "# here",
        (
            "field spec.headers.customRequestHeaders.X-Forwarded-For",
            "X-Forwarded-For is rewritten by Traefik's proxy after the middlewares",
        ),
    ),
    Bad(
        "chain-member-missing",
        _with_middleware("  chain:\n    middlewares:\n    - name: nowhere  # member\n"),
        "# member",
        ("Middleware 'nowhere' (namespace 'default') is not in the manifests",),
    ),
    Bad(
        "invalid-yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: cheeses\n"
        " spec:  # misindented\n  rules: []\n",
        "misindented",
        ("invalid YAML at column 2", "Fix the YAML syntax"),
    ),
    Bad(
        "unknown-kind",
        "apiVersion: networking.k8s.io/v1\nkind: Ingres\nmetadata:\n  name: cheeses\nspec: {}\n",
        "kind: Ingres",
        (
            "document 1 Ingres 'cheeses', field kind",
            "unknown kind 'Ingres'",
            "fix the kind",
        ),
    ),
    Bad(
        "unknown-apiVersion",
        _ingress(api="networking.k8s.io/v2"),
        "apiVersion:",
        (
            "field apiVersion",
            "unknown apiVersion 'networking.k8s.io/v2' for Ingress",
            "Use one of: networking.k8s.io/v1",
        ),
    ),
    Bad(
        "missing-service",
        _ingress(service="chedar"),
        "# backend",
        (
            "field spec.rules[0].http.paths[0].backend.service.name",
            "backend Service 'chedar' (namespace 'default') is not in the manifests",
            "Add its Service object to one of the --manifests files, or fix the name",
        ),
    ),
    Bad(
        "non-numeric-priority",
        _ingress('    traefik.ingress.kubernetes.io/router.priority: "high"\n'),
        "router.priority",
        (
            "field metadata.annotations['traefik.ingress.kubernetes.io/router.priority']",
            "priority 'high' is not a whole number",
            "Write a number",
        ),
    ),
    Bad(
        "non-numeric-legacy-priority",
        _ingress('    traefik.ingress.kubernetes.io/priority: "two"\n', api="extensions/v1beta1"),
        "priority:",
        (
            "field metadata.annotations['traefik.ingress.kubernetes.io/priority']",
            "priority 'two' is not a whole number",
            "Write a number",
        ),
    ),
    Bad(
        "weights-below-100",
        _two_paths(
            "    traefik.ingress.kubernetes.io/service-weights: |\n"
            "      cheddar: 60%\n      wensleydale: 30%\n"
        ),
        "service-weights",
        (
            "field metadata.annotations['traefik.ingress.kubernetes.io/service-weights']",
            "service-weights for cheeses.test/ add up to 90%, not 100%",
            "Make them add up to 100%",
        ),
    ),
    Bad(
        "weights-above-100",
        _two_paths(
            "    traefik.ingress.kubernetes.io/service-weights: |\n"
            "      cheddar: 75%\n      wensleydale: 50%\n"
        ),
        "service-weights",
        (
            "field metadata.annotations['traefik.ingress.kubernetes.io/service-weights']",
            "add up to 125% (more than 100%)",
            "Lower the percentages",
        ),
    ),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_manifest_is_a_usage_error_naming_file_line_and_field(bad: Bad, tmp_path: Path) -> None:
    services = tmp_path / "services.yaml"
    services.write_text(SERVICES, "utf-8")
    manifest = tmp_path / f"{bad.name}.yaml"
    manifest.write_text(bad.text, "utf-8")
    proc = run_suites("--manifests", str(services), str(manifest))
    output = proc.stdout + proc.stderr
    assert proc.returncode == USAGE_ERROR, output
    where = f"ERROR: ingress-harness: {manifest}:{line_of(bad.text, bad.marker)}:"
    assert where in proc.stderr, output
    message = proc.stderr[proc.stderr.index(where) :]
    for text in bad.says:
        assert text in message, f"{text!r} not in:\n{message}"
    assert "Traceback" not in output
    assert 'File "' not in output  # no stack frame either
    assert str(REPO / "harness") not in output
