"""Nothing the harness starts outlives it: not after a failing test, Ctrl-C, or a killed pytest.

Each case runs a small pytest session in a subprocess that brings up the local stack, publishes
the pids of the stack's child processes, and then fails, waits for SIGINT, or waits to be killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.waiting import wait_until

pytestmark = pytest.mark.stack

INNER_TEST = """
import json, os, threading

def test_hold_the_stack(local_stack):
    path = os.environ["HARNESS_TEST_PIDS"]
    with open(path + ".tmp", "w") as fh:
        json.dump(local_stack.child_pids(), fh)
    os.rename(path + ".tmp", path)
    if os.environ["HARNESS_TEST_MODE"] == "fail":
        raise AssertionError("deliberate failure")
    # Held until the outer test interrupts or kills this session; bounded all the same.
    threading.Event().wait(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _run_inner(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    pids_file = tmp_path / "pids.json"
    env = {**os.environ, "HARNESS_TEST_PIDS": str(pids_file), "HARNESS_TEST_MODE": mode}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: pids_file.exists() or proc.poll() is not None,
            timeout=90,
            what="the inner session to bring up its stack",
        )
    except BaseException:
        proc.kill()
        raise
    if not pids_file.exists():
        out = proc.communicate(timeout=10)[0]
        pytest.fail(f"inner session exited {proc.returncode} before its stack was up:\n{out}")
    pids = json.loads(pids_file.read_text())
    assert pids and all(_alive(pid) for pid in pids)
    return proc, pids


def _all_gone(pids: list[int]) -> None:
    wait_until(
        lambda: not any(_alive(pid) for pid in pids),
        timeout=15,
        what=f"processes {pids} to end",
    )


def test_failing_test_stops_the_stack_and_shows_traefiks_log(tmp_path: Path) -> None:
    proc, pids = _run_inner(tmp_path, "fail")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    assert "deliberate failure" in out
    assert "Traefik log (last lines of" in out
    _all_gone(pids)


def test_ctrl_c_stops_the_stack(tmp_path: Path) -> None:
    proc, pids = _run_inner(tmp_path, "hold")
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2, out  # pytest's exit status for an interrupted session
    assert "KeyboardInterrupt" in out
    _all_gone(pids)


def test_killed_pytest_takes_its_children_along(tmp_path: Path) -> None:
    proc, pids = _run_inner(tmp_path, "hold")
    proc.kill()  # SIGKILL: no teardown runs; PR_SET_PDEATHSIG is the backstop
    proc.communicate(timeout=30)
    _all_gone(pids)
