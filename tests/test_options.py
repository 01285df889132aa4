"""Every option is checked at configure time: a bad value (from the command line, the environment
or the ini file) is a usage error naming the option and the value, before any stack starts; and
``pytest --help`` reads nothing (no manifests, no statistical planning, no heavy imports)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from suite_runs import ROOT, PytestRun, run_pytest

from harness.plugin.options import OPTIONS

#: A suite whose checks need the local stack: a run that got past configure would start it.
NEEDS_STACK = "harness/suites/test_routing.py"

#: One bad value per option: (flag, value, what the message must also say). "{tmp}" is this
#: test's temporary folder, which holds "file" (not a folder, not executable).
BAD_VALUES = [
    ("--proxy-url", "ftp://127.0.0.1:8000", "must be http:// or https://"),
    ("--proxy-tls-verify", "{tmp}/file", "is not a readable PEM CA file"),
    ("--manifests", "{tmp}/no-such.yaml", "no such file or folder"),
    ("--scenarios", "{tmp}/file", "no such folder (a folder of scenario files)"),
    ("--backend-map", "cheddar", "expected NAME=SERVICE"),
    ("--probe-rounds", "0", "must be a whole number >= 1, got '0'"),
    ("--strict-prefix-matching", "maybe", "must be true or false, got 'maybe'"),
    ("--nginx-without-class", "sometimes", "must be true or false, got 'sometimes'"),
    ("--run-alpha", "2", "must be a probability strictly between 0 and 1"),
    ("--power", "nan", "must be a positive number, got 'nan'"),
    ("--min-deviation", "-0.1", "must be a positive number, got '-0.1'"),
    ("--max-requests", "1e6", "must be a whole number >= 1, got '1e6'"),
    ("--weights-mode", "often", "must be fixed or sequential, got 'often'"),
    ("--max-error-rate", "1", "must be a fraction in [0, 1), got '1'"),
    ("--backend-instances", "two", "must be a whole number >= 1, got 'two'"),
    ("--report-dir", "{tmp}/file/sub", "must be a folder"),
    ("--baseline", "{tmp}/no-such-run", "no such file or folder"),
    ("--regression-thresholds", "gap_ms=lots", "'lots' is not a number"),
    ("--traefik-binary", "{tmp}/file", "no executable file there"),
    ("--traefik-version", "latest", "--traefik-version must look like 3.7.15"),
    ("--traefik-throttle", "2s", "must be a positive number, got '2s'"),
    ("--traefik-log-level", "LOUD", "must be TRACE, DEBUG, INFO, WARN, ERROR, FATAL or PANIC"),
    ("--gap-rate", "0", "must be a positive number, got '0'"),
    ("--gap-repeats", "1.5", "must be a whole number >= 1, got '1.5'"),
    ("--gap-lanes", "0", "must be a whole number >= 1, got '0'"),
    ("--gap-lag-retries", "-1", "must be a whole number >= 0, got '-1'"),
    ("--gap-max-lag-ms", "inf", "must be a positive number, got 'inf'"),
    ("--gap-budget", "teleport=0", "no strategy 'teleport'"),
    ("--gap-latency-budget-ms", "0", "must be a positive number, got '0'"),
    ("--legacy", "sometimes", "must be translate or as-written, got 'sometimes'"),
    ("--legacy-out", "{tmp}/file/sub", "must be a folder"),
    ("--change-window", "soon", "expected SECONDS (e.g. 6"),
    ("--change-command", " ", "must be a non-empty value"),
    ("--stack-timeout", "-1", "must be a positive number, got '-1'"),
    ("--kubeconfig", "{tmp}/file", "is not a usable kubeconfig"),
    ("--context", " ", "must be a non-empty value"),
    ("--proxy-service", "traefik", "must be NAMESPACE/NAME of a Service"),
    ("--backend-image", "not an image", "must be an image reference"),
    ("--stale-namespace-age", "0", "must be a positive number, got '0'"),
]


def _refused_before_any_stack(run: PytestRun, basetemp: Path, *expected: str) -> None:
    output = run.output
    assert run.returncode == 4, output  # pytest's usage error
    assert "ERROR: ingress-harness: " in run.stderr, output
    for text in expected:
        assert text in run.stderr, output
    assert "Traceback" not in output
    # The local stack's fixture makes its folder under the base temp: it never ran.
    assert not basetemp.exists(), sorted(basetemp.rglob("*"))


def test_the_table_has_one_bad_value_for_every_option() -> None:
    assert sorted(flag for flag, _, _ in BAD_VALUES) == sorted(o.flag for o in OPTIONS)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("not a folder, not a program\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("flag", "value", "expected"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_a_bad_value_is_a_usage_error_naming_the_option(
    tmp: Path, flag: str, value: str, expected: str
) -> None:
    basetemp = tmp / "basetemp"
    value = value.format(tmp=tmp)
    run = run_pytest(NEEDS_STACK, "--basetemp", basetemp, f"{flag}={value}", timeout=120)
    _refused_before_any_stack(run, basetemp, flag, expected)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HARNESS_TRAEFIK_THROTTLE": "soon"},
            "--traefik-throttle (from env HARNESS_TRAEFIK_THROTTLE) must be a positive number, "
            "got 'soon'",
        ),
        (
            {"HARNESS_GAP_BUDGET": "patch=0 replace=lots"},
            "--gap-budget (from env HARNESS_GAP_BUDGET): 'replace=lots'",
        ),
        (
            {"HARNESS_PROXY_URL": "http://ingress.example.com/app"},
            "--proxy-url (from env HARNESS_PROXY_URL): URL 'http://ingress.example.com/app' has "
            "a path or query",
        ),
    ],
    ids=["throttle", "gap-budget", "proxy-url"],
)
def test_a_bad_environment_value_names_the_option_and_the_variable(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    basetemp = tmp_path / "basetemp"
    run = run_pytest(NEEDS_STACK, "--basetemp", basetemp, env=env, timeout=120)
    _refused_before_any_stack(run, basetemp, expected)


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        (
            "harness_stack_timeout = never",
            "--stack-timeout (from ini harness_stack_timeout) must be a positive number, "
            "got 'never'",
        ),
        (
            "harness_traefik_log_level = chatty",
            "--traefik-log-level (from ini harness_traefik_log_level) must be TRACE",
        ),
    ],
    ids=["stack-timeout", "traefik-log-level"],
)
def test_a_bad_ini_value_names_the_option_and_the_ini_key(
    tmp_path: Path, ini: str, expected: str
) -> None:
    config = tmp_path / "pytest.ini"
    config.write_text(f"[pytest]\n{ini}\n", encoding="utf-8")
    basetemp = tmp_path / "basetemp"
    run = run_pytest(NEEDS_STACK, "-c", config, "--basetemp", basetemp, timeout=120)
    _refused_before_any_stack(run, basetemp, expected)


def test_good_values_pass_configure(tmp_path: Path) -> None:
    """The same options with values they accept (other spellings included) get past configure."""
    binary = tmp_path / "traefik"
    binary.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    binary.chmod(0o755)
    run = run_pytest(
        NEEDS_STACK,
        "--collect-only",
        "-q",
        "--traefik-throttle=0.5",
        "--traefik-log-level=debug",
        "--stack-timeout=45",
        "--traefik-binary",
        binary,
        "--strict-prefix-matching=no",
        "--nginx-without-class=yes",
        "--weights-mode=Sequential",
        "--max-error-rate=0",
        "--report-dir",
        tmp_path / "new" / "run",
        "--baseline=none",
        "--regression-thresholds=gap_ms=200,gap_pct=none",
        "--gap-budget",
        "patch=3",
        "delete-create=report",
        timeout=120,
    )
    assert run.returncode == 0, run.output
    assert "test_routing.py::" in run.stdout


def _scenario_folder(folder: Path) -> Path:
    """Two scenarios that contradict each other (the same route to two Services) and a shared
    file of Services: fine one after another, not as one configuration."""
    folder.mkdir()
    services = "".join(
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
        "spec: {ports: [{name: http, port: 80}]}\n"
        for name in ("cheddar", "stilton")
    )
    (folder / "services.yaml").write_text(services, encoding="utf-8")
    for name in ("cheddar", "stilton"):
        (folder / f"to-{name}.yaml").write_text(
            f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop}}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}
""",
            encoding="utf-8",
        )
    return folder


def test_a_scenario_folder_is_one_scenario_per_file(tmp_path: Path) -> None:
    folder = _scenario_folder(tmp_path / "scenarios")
    run = run_pytest(NEEDS_STACK, "--collect-only", "-q", "--scenarios", folder, timeout=120)
    assert run.returncode == 0, run.output
    assert "test_routing[to-cheddar:shop.test/]" in run.stdout, run.stdout
    assert "test_routing[to-stilton:shop.test/]" in run.stdout, run.stdout
    # The same files as one configuration contradict each other.
    run = run_pytest(NEEDS_STACK, "--collect-only", "-q", "--manifests", folder, timeout=120)
    assert run.returncode == 4 and "shop" in run.stderr, run.output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--manifests", "{folder}/to-cheddar.yaml"], "--scenarios and --manifests: give one"),
        (["--proxy-url", "http://127.0.0.1:9"], "--scenarios needs a target the harness applies"),
    ],
    ids=["with-manifests", "with-proxy-url"],
)
def test_a_scenario_folder_is_refused_where_it_cannot_be_run(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    folder = _scenario_folder(tmp_path / "scenarios")
    basetemp = tmp_path / "basetemp"
    args = [a.format(folder=folder) for a in extra]
    run = run_pytest(NEEDS_STACK, "--basetemp", basetemp, "--scenarios", folder, *args)
    _refused_before_any_stack(run, basetemp, expected)


BROKEN_MANIFEST = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: broken}
spec:
  rules:
  - host: cheeses.minikube
    http:
      paths:
      - path: /cheddar
        pathType: Sometimes
        backend: {service: {name: cheddar, port: {number: 80}}}
"""


def test_help_reads_no_manifests(tmp_path: Path) -> None:
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(BROKEN_MANIFEST, encoding="utf-8")
    env = {"HARNESS_MANIFESTS": str(manifest)}
    helped = run_pytest("--help", env=env, timeout=120)
    assert helped.returncode == 0, helped.output
    assert "--traefik-throttle" in helped.stdout  # the plugin is loaded
    assert "broken.yaml" not in helped.output
    # Without --help the same environment is read, and refused.
    configured = run_pytest("--collect-only", "-q", NEEDS_STACK, env=env, timeout=120)
    assert configured.returncode == 4, configured.output
    assert f"ERROR: ingress-harness: {manifest}:10" in configured.stderr, configured.output


HEAVY = ("scipy", "numpy", "matplotlib", "kubernetes", "yaml", "harness.intent.dialects")

PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    import pytest
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(sys.argv[1:] + ["-p", "no:cacheprovider"])
    print(json.dumps({"code": int(code), "loaded": [m for m in HEAVY if m in sys.modules]}))
    """
)


def _modules_after(*args: str) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], result["loaded"]


def test_help_imports_nothing_heavy() -> None:
    code, loaded = _modules_after("--help")
    assert (code, loaded) == (0, [])
    # The check can tell: reading the settings (here for a collection) does import them.
    code, loaded = _modules_after("--collect-only", "-q", "harness/suites/test_weights.py")
    assert code == 0
    assert {"scipy", "harness.intent.dialects"} <= set(loaded)
