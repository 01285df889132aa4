"""``ingress-harness backends SERVICE... [--instances N] [--host H] [--port P] [--json]``: echo
backends in the whoami format on loopback, in the foreground until Ctrl-C (see
:func:`harness.backends.echo.cli`)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    from harness.backends.echo import cli

    return cli(argv)
