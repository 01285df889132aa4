"""Results of a run: the document (results.json), the comparison with a baseline, the report.

A run is named by its id, which is also its folder under ``reports/``.
"""

from __future__ import annotations

import os
import time


def run_id() -> str:
    """This run's id: ``$HARNESS_RUN_ID``, else the UTC time to the second."""
    return os.environ.get("HARNESS_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
