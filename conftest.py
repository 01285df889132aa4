"""Makes the harness plugin active in this checkout even without an installed entry point."""

from __future__ import annotations

import importlib.metadata

# When the package is installed (pip install -e .), pytest loads harness.plugin through the
# pytest11 entry point; loading it twice would register the options twice.
_installed = any(
    ep.value == "harness.plugin" for ep in importlib.metadata.entry_points(group="pytest11")
)
pytest_plugins = [] if _installed else ["harness.plugin"]
