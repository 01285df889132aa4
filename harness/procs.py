"""Child processes the harness starts: started so that they cannot outlive it, stopped for sure.

Every child is put in its own session (so a terminal's Ctrl-C reaches only pytest, which then
tears down in order) and gets PR_SET_PDEATHSIG=SIGKILL on Linux (so even a SIGKILLed harness
leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path | None = None,
    stdout: int | IO[Any] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child that dies with this process. Output goes to ``log_path`` when given."""
    out: int | IO[Any] | None = stdout
    log_file = None
    if log_path is not None:
        log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        out = log_file
    try:
        return subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log_path is not None else None,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, no locks taken
        )
    finally:
        if log_file is not None:
            log_file.close()


def stop(proc: subprocess.Popen[Any], *, grace: float = 5.0) -> int | None:
    """Stop a child: SIGTERM, then SIGKILL after ``grace`` seconds. Returns its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=grace)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


def stop_group(proc: subprocess.Popen[Any], *, grace: float = 5.0) -> int | None:
    """Stop a child started by :func:`spawn` and everything in its process group (its own
    session: the shell of a command and whatever the command started): SIGTERM to the group,
    SIGKILL to the group after ``grace`` seconds or once the child itself has exited (so
    nothing it left behind keeps running). Returns the child's exit status."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    # The group outlives its leader while any member lives, and its id is not reused before.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return stop(proc, grace=grace)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def python_child_env() -> dict[str, str]:
    """The environment for a Python child that imports this package: this process's, with the
    folder holding ``harness`` first on PYTHONPATH, so a plain checkout works like an install."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
