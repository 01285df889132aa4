"""Child processes: the system under test runs at a lower priority than the senders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness import procs
from harness.backends.echo import BackendProcess, ListenerSpec

_REPORT = (
    "import os\n"
    "print(os.nice(0))\n"
    "try:\n"
    "    print(open('/proc/self/autogroup').read().split()[-1])\n"
    "except OSError:\n"
    "    print('none')\n"
)


def _priorities(tmp_path: Path, niceness: int) -> tuple[int, str]:
    log = tmp_path / f"nice-{niceness}.log"
    proc = procs.spawn([sys.executable, "-c", _REPORT], log_path=log, niceness=niceness)
    assert proc.wait(30) == 0, log.read_text()
    own, group = log.read_text().split()
    return int(own), group


def test_a_child_with_a_niceness_runs_at_a_lower_priority_and_so_does_its_session(
    tmp_path: Path,
) -> None:
    own, group = _priorities(tmp_path, 7)
    assert own == os.nice(0) + 7
    if group != "none":  # a kernel without autogroups has nothing more to lower
        assert group == "7"


def test_a_child_without_one_keeps_the_harness_priority(tmp_path: Path) -> None:
    own, group = _priorities(tmp_path, 0)
    assert own == os.nice(0)
    if group != "none":
        assert group == "0"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_echo_backends_run_at_the_system_under_test_niceness() -> None:
    backend = BackendProcess.start([ListenerSpec("cheddar", "cheddar-0", "127.0.0.1", 0)])
    try:
        # Field 19 of /proc/PID/stat is the niceness (after the command's parenthesis).
        fields = Path(f"/proc/{backend.pid}/stat").read_text().rpartition(")")[2].split()
        assert int(fields[16]) == os.nice(0) + procs.SYSTEM_UNDER_TEST_NICENESS
    finally:
        backend.stop()


def test_a_child_asking_for_a_higher_priority_gets_it_where_allowed(tmp_path: Path) -> None:
    own, group = _priorities(tmp_path, -3)
    # Raising a priority needs root, CAP_SYS_NICE or RLIMIT_NICE; elsewhere it stays as it was.
    assert own in (os.nice(0) - 3, os.nice(0))
    if group != "none":
        assert group in ("-3", "0")
