"""Where traffic goes, and the loopback policy.

The harness's own servers (echo backends, the local Kubernetes API) listen on loopback only.
Traffic goes where the user says: ``--proxy-url`` may be any address (an IP, a DNS name, a load
balancer), over HTTP or HTTPS (:func:`traffic_target`). Only the harness's own tests and
benchmarks keep their traffic on loopback: they set ``HARNESS_LOOPBACK_ONLY=1`` (the test
suite's conftest does), and then a traffic target that is not loopback is refused. Every place
that decides "is this loopback" asks here. ``localhost`` counts as loopback and is used as
127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.errors import ConfigError

#: What the policy allows, as error messages say it.
POLICY = "only loopback (127.0.0.0/8, ::1 or localhost) is ever a traffic target"
#: Set to 1, traffic may go to loopback only (the harness's own tests and benchmarks).
LOOPBACK_ONLY_ENV = "HARNESS_LOOPBACK_ONLY"


def loopback_only() -> bool:
    """True when ``HARNESS_LOOPBACK_ONLY`` is 1 (0 or unset: any address)."""
    value = os.environ.get(LOOPBACK_ONLY_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ConfigError(f"{LOOPBACK_ONLY_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


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
    """Where traffic goes: the address connected to (resolved once), its port, whether over
    TLS, and ``netloc``, the default Host (and, over TLS, the default SNI)."""

    host: str
    port: int
    netloc: str
    https: bool = False
    name: str = ""  # the host as given (a DNS name, or the IP)


def traffic_target(url: str) -> ProxyAddress:
    """Parse ``http(s)://HOST[:PORT]`` (an IP or a DNS name, resolved once here, so the bulk
    engine does not look it up per connection); refuse a non-loopback one when
    :func:`loopback_only`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"traffic URL {url!r} cannot be parsed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"traffic URL {url!r} must be http:// or https:// (got scheme {parts.scheme!r})"
        )
    if not parts.hostname:
        raise ConfigError(f"traffic URL {url!r} has no host; e.g. http://ingress.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"traffic URL {url!r} has a path or query; give the proxy's base URL "
            "(scheme, host, port) and put paths in the request specs"
        )
    https = parts.scheme == "https"
    port = port if port is not None else (443 if https else 80)
    netloc = parts.netloc.rpartition("@")[2]
    if loopback_only():
        host = require_loopback(parts.hostname, f"traffic URL {url!r}: host")
        return ProxyAddress(host, port, netloc, https, parts.hostname)
    literal = loopback_ip(parts.hostname)
    if literal is None:
        try:
            literal = str(ipaddress.ip_address(parts.hostname))
        except ValueError:
            literal = _resolve(parts.hostname, port, url)
    return ProxyAddress(literal, port, netloc, https, parts.hostname)


def _resolve(name: str, port: int, url: str) -> str:
    """The first address of ``name`` (the resolver's own timeout bounds the wait)."""
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"traffic URL {url!r}: cannot resolve {name!r} ({exc})") from None
    return str(infos[0][4][0])
