"""Waiting for a condition with a deadline: the only way the harness waits for anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import WaitTimeout

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    max_interval: float = 0.25,
) -> T:
    """Poll ``condition`` until it returns something truthy; return that value.

    Raises WaitTimeout naming ``what`` when ``timeout`` seconds pass first. Exceptions raised by
    the condition propagate: a condition that cannot be evaluated is a bug, not a wait.
    The poll interval grows geometrically up to ``max_interval`` so short waits stay short.
    """
    if timeout <= 0:
        raise ValueError("`timeout` must be positive")
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = condition()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 1.5, max_interval)
