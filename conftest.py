"""Makes the harness plugin active in this checkout even without an installed entry point."""

from __future__ import annotations

from harness.suites import plugin_installed

pytest_plugins = [] if plugin_installed() else ["harness.plugin"]
