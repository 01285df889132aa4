"""Traffic verification for ingress proxies.

The package follows the flow of data (see README, "Architecture"): manifests are read into
intent, applied to the proxy under test through the Kubernetes API, exercised with traffic,
and judged into verdicts that end up in reports.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
