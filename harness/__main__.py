"""``python -m harness COMMAND``: the same as the ``ingress-harness`` script
(:mod:`harness.cli`)."""

from __future__ import annotations

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
