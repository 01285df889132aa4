"""The command line: ``ingress-harness COMMAND [ARGS]`` (also ``python -m harness COMMAND``).

Each command is one module of this package exposing ``main(argv: list[str]) -> int`` (``argv``
without the command's name; the return value is the exit status). ``COMMANDS`` lists them with
a one-line summary, so that ``ingress-harness --help`` prints them without importing any: the
help stays fast, and a command's heavy imports happen only when it runs. A new command is a
module here and a row in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Protocol, cast

from harness import __version__

PROG = "ingress-harness"


@dataclass(frozen=True)
class Command:
    """A subcommand: the module that runs it and what ``--help`` says about it."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "verify": Command(
        "harness.cli.verify",
        "run the packaged suites with pytest against the manifests; writes reports/<run id>/",
    ),
    "gate": Command(
        "harness.gate.cli",
        "the pre-release gate: the suites on two Traefik versions, or on old and new manifests, "
        "compared per probe and per figure",
    ),
    "cluster": Command(
        "harness.cluster.cli",
        "the embedded cluster (up, down, status): a local Kubernetes API that runs the pods of "
        "the images it knows, reached through a kubeconfig",
    ),
    "backends": Command(
        "harness.cli.backends",
        "start echo backends (traefik/whoami format) on loopback, to put behind any proxy",
    ),
}


class _CommandModule(Protocol):
    def main(self, argv: list[str]) -> int: ...


def usage() -> str:
    """The top-level help: the commands and their summaries."""
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items())
    return (
        f"usage: {PROG} COMMAND [ARGS...]\n\n"
        "Traffic verification for ingress proxies: what the proxy does against what the "
        "manifests declare.\n\n"
        f"commands:\n{rows}\n\n"
        f"`{PROG} COMMAND --help` describes a command. Options: -h/--help, --version.\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write(usage())
        return 2
    name, rest = args[0], args[1:]
    if name in {"-h", "--help"}:
        sys.stdout.write(usage())
        return 0
    if name == "--version":
        print(f"{PROG} {__version__}")
        return 0
    command = COMMANDS.get(name)
    if command is None:
        sys.stderr.write(
            f"{PROG}: unknown command {name!r}; the commands are: {', '.join(COMMANDS)}\n"
            f"(see `{PROG} --help`)\n"
        )
        return 2
    module = cast("_CommandModule", importlib.import_module(command.module))
    return module.main(rest)
