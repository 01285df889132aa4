"""The harness's own tests send traffic to loopback only (users' runs may go anywhere)."""

from __future__ import annotations

import os

from harness.traffic.addresses import LOOPBACK_ONLY_ENV

# Set before anything runs: the suites' subprocesses and traffic workers inherit it.
os.environ[LOOPBACK_ONLY_ENV] = "1"
