"""The command line (``ingress-harness COMMAND``): the command table, a fast ``--help``, and
``verify``'s pytest command line. The installed command's real run is in test_packaging.py."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_options import HEAVY

from harness.cli import COMMANDS, main
from harness.cli.verify import pytest_args

REPO = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from harness.cli import main
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(sys.argv[1:])
    print(json.dumps({"code": code, "out": out.getvalue(),
                      "loaded": [m for m in HEAVY if m in sys.modules]}))
    """
)


def _cli_in_subprocess(*args: str, cwd: Path = REPO) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_help_lists_every_command_and_imports_nothing_heavy(tmp_path: Path) -> None:
    result = _cli_in_subprocess("--help")
    assert (result["code"], result["loaded"]) == (0, [])
    out = str(result["out"])
    for name, command in COMMANDS.items():
        assert f"  {name}" in out and command.summary in out
    # The check can tell: running a command does import what it needs.
    ran = _cli_in_subprocess("verify", "--collect-only", "-q", "-k", "x", cwd=tmp_path)
    loaded = ran["loaded"]
    assert isinstance(loaded, list) and {"scipy", "harness.intent.dialects"} <= set(loaded)


def test_every_command_is_a_module_with_main() -> None:
    assert {"verify", "backends"} <= set(COMMANDS)
    for name, command in COMMANDS.items():
        module = importlib.import_module(command.module)
        assert callable(getattr(module, "main", None)), name


def test_unknown_or_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'nope'" in err and "verify, gate, cluster, backends" in err
    assert main([]) == 2
    assert "usage: ingress-harness COMMAND" in capsys.readouterr().err


def test_verify_help_shows_the_harness_options_and_writes_nothing(tmp_path: Path) -> None:
    result = _cli_in_subprocess("verify", "--help", cwd=tmp_path)
    assert result["code"] == 0
    out = str(result["out"])
    assert out.startswith("usage: ingress-harness verify")
    assert "--manifests" in out and "--probe-rounds" in out  # the plugin's options
    assert list(tmp_path.iterdir()) == []


def test_verify_runs_the_packaged_suites_with_the_users_arguments_last(tmp_path: Path) -> None:
    args = pytest_args(["-k", "routing", "--report-dir", "elsewhere"], tmp_path / "r")
    suites = REPO / "harness" / "suites"
    assert Path(args[0]) == suites
    assert args[args.index("-c") + 1] == str(suites / "verify.ini")
    # Node ids relative to the folder holding the package: the same from a checkout and a wheel.
    assert args[args.index("--rootdir") + 1] == str(REPO)
    assert f"--junitxml={tmp_path / 'r' / 'junit.xml'}" in args
    assert args[-4:] == ["-k", "routing", "--report-dir", "elsewhere"]
    # --help: no reports.
    assert not any(a.startswith(("--junitxml", "--report-dir")) for a in pytest_args([], None))
