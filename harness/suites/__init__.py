"""The verification suites (``test_*.py``, collected by pytest: ``ingress-harness verify`` or
``pytest --pyargs harness.suites``) and the tutorial's scenarios (``manifests/``, package data).

The folders are found through ``importlib.resources``, so the same lookup works from a
checkout, an editable install and an installed wheel.
"""

from __future__ import annotations

import importlib.metadata
from importlib.resources import files
from pathlib import Path


def _package_folder() -> Path:
    folder = files(__name__)
    if not isinstance(folder, Path):
        # The intent loader reports file:line and pytest collects files: both need a real
        # folder, which an install from a zip archive does not give.
        raise ImportError(
            f"{__name__} is not a folder on disk ({folder!r}); install ingress-harness from a "
            "wheel or a checkout, not a zip archive"
        )
    return folder


#: This package's folder: the suites pytest collects.
SUITES: Path = _package_folder()
#: The tutorial's scenarios, one per file plus shared files (see manifests/README.md): the
#: default of ``--manifests``.
MANIFESTS: Path = SUITES / "manifests"
#: The pytest configuration of ``ingress-harness verify`` (given with ``-c``).
VERIFY_INI: Path = SUITES / "verify.ini"


def plugin_installed() -> bool:
    """Whether an installed distribution registers the harness's pytest plugin (the ``pytest11``
    entry point), so that pytest loads it by itself: a run adds ``-p harness.plugin`` only when
    not (loading it twice would register its options twice). False in a checkout that was never
    installed."""
    return any(
        ep.value == "harness.plugin" for ep in importlib.metadata.entry_points(group="pytest11")
    )
