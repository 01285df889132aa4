"""The loopback policy: on this machine only loopback (127.0.0.0/8, ::1) is a traffic target.

Every place that decides "is this loopback" asks here: the traffic engine's URL check, the
``--proxy-url`` check at configure time, the echo backends' and the local Kubernetes API's
listen addresses. ``localhost`` counts as loopback and is used as 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.errors import ConfigError

#: What the policy allows, as error messages say it.
POLICY = "only loopback (127.0.0.0/8, ::1 or localhost) is ever a traffic target"


def loopback_ip(host: str) -> str | None:
    """``host`` as a loopback IP literal (``localhost`` -> 127.0.0.1, ``[::1]`` -> ::1), or
    None when it is not a loopback address (another address, or a name)."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if bare.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


def is_loopback(host: str) -> bool:
    return loopback_ip(host) is not None


def require_loopback(host: str, what: str) -> str:
    """``host`` as a loopback IP literal; ConfigError naming ``what`` otherwise."""
    ip = loopback_ip(host)
    if ip is None:
        raise ConfigError(f"{what} {host!r} is not a loopback address: {POLICY}")
    return ip


def proxy_base_url(url: str) -> str:
    """A proxy's base URL as the user gives it (``--proxy-url``): http or https, a host, no
    path; any address (a load balancer, a DNS name): where traffic goes is the user's call.
    The trailing slash is dropped."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port, raising on a bad one
    except ValueError as exc:
        raise ConfigError(f"URL {url!r} cannot be parsed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"URL {url!r} must be http:// or https:// (got {parts.scheme!r})")
    if not parts.hostname:
        raise ConfigError(f"URL {url!r} has no host; e.g. http://ingress.example.com:8080")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"URL {url!r} has a path or query; give the proxy's base URL (scheme, host, port)"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class ProxyAddress:
    """Where traffic goes: a loopback address and port; ``netloc`` is the default Host."""

    host: str
    port: int
    netloc: str


def loopback_target(url: str) -> ProxyAddress:
    """Parse ``http://127.0.0.1:PORT`` (or ``[::1]``, ``localhost``); refuse anything else.

    The engine can send tens of thousands of requests a second; it must never be pointed at a
    machine other than this one.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"traffic URL {url!r} cannot be parsed: {exc}") from None
    if parts.scheme != "http":
        raise ConfigError(
            f"traffic URL {url!r}: only plain http:// is supported by the bulk engine "
            f"(got scheme {parts.scheme!r})"
        )
    if not parts.hostname:
        raise ConfigError(f"traffic URL {url!r} has no host; e.g. http://127.0.0.1:8000")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"traffic URL {url!r} has a path or query; give the proxy's base URL "
            "(http://127.0.0.1:PORT) and put paths in the request specs"
        )
    host = require_loopback(parts.hostname, f"traffic URL {url!r}: host")
    netloc = parts.netloc.rpartition("@")[2]
    return ProxyAddress(host=host, port=80 if port is None else port, netloc=netloc)
