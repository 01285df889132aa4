"""Command line: ``python -m harness <command>``.

backends NAME...   start echo backends (whoami format) on loopback, to put behind any proxy
gate ...           run the suites twice (two Traefik versions, or old and new manifests) and compare
cluster up|down    the embedded cluster in the background, reached through a kubeconfig
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["backends", "cluster", "gate"], help="what to run")
    ns, _rest = parser.parse_known_args(args[:1])
    if ns.command == "backends":
        from harness.backends.echo import cli

        return cli(args[1:])
    if ns.command == "gate":
        from harness.gate.cli import main as gate_main

        return gate_main(args[1:])
    if ns.command == "cluster":
        from harness.cluster.cli import main as cluster_main

        return cluster_main(args[1:])
    parser.error(f"unknown command {ns.command!r}")


if __name__ == "__main__":
    sys.exit(main())
