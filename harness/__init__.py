"""Traffic verification for ingress proxies.

The package follows the flow of data (see README, "Architecture"): manifests are read into
intent, applied to the proxy under test through the Kubernetes API, exercised with traffic,
and judged into verdicts that end up in reports.

PYTEST_DONT_REWRITE: ``ingress-harness verify`` runs pytest from inside this package, so pytest
finds it imported when it marks the plugin's distribution for assertion rewriting; the marker
keeps it from warning about this module (which has no asserts).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
