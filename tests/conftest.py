"""The harness's own tests send traffic to loopback only (users' runs may go anywhere); the
Gateway API tests' local stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from harness.traffic.addresses import LOOPBACK_ONLY_ENV

if TYPE_CHECKING:
    from harness.targets.local_stack import LocalStack

# Set before anything runs: the suites' subprocesses and traffic workers inherit it.
os.environ[LOOPBACK_ONLY_ENV] = "1"


@pytest.fixture(scope="module")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack whose Traefik runs its Gateway provider (backends cheddar, stilton,
    wensleydale), shared by the tests of one module."""
    # Here, not at the top: `pytest --help` loads this file and must import nothing heavy.
    from applied_verdicts import start_gateway_stack

    yield from start_gateway_stack(tmp_path_factory.mktemp("gateway-stack"))
