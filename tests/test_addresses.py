"""The loopback policy: one function decides what counts as loopback, for every user of it."""

from __future__ import annotations

import pytest

from harness.backends.echo import start_backends
from harness.errors import ConfigError
from harness.kubeapi.server import KubeAPIServer
from harness.traffic.addresses import is_loopback, loopback_ip, require_loopback, traffic_target


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.8.9.10", "127.8.9.10"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("localhost", "127.0.0.1"),
        ("LOCALHOST", "127.0.0.1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("10.1.2.3", None),
        ("0.0.0.0", None),
        ("::", None),
        ("2001:db8::1", None),
        ("example.com", None),
        ("127.0.0.1.nip.io", None),
        ("", None),
    ],
)
def test_loopback_ip(host: str, ip: str | None) -> None:
    assert loopback_ip(host) == ip
    assert is_loopback(host) is (ip is not None)


def test_require_loopback_names_what_was_refused() -> None:
    with pytest.raises(ConfigError, match=r"backend host '10\.0\.0\.1' is not a loopback"):
        require_loopback("10.0.0.1", "backend host")


@pytest.mark.parametrize("host", ["10.1.2.3", "example.com", "::"])
def test_every_user_applies_the_same_policy(host: str) -> None:
    """The traffic engine's URL check, the local Kubernetes API and the echo backends refuse
    the same hosts, with the same words."""
    netloc = f"[{host}]" if ":" in host else host
    with pytest.raises(ConfigError, match="not a loopback address"):
        traffic_target(f"http://{netloc}:8080")  # the harness's tests: loopback only
    with pytest.raises(ConfigError, match="not a loopback address"):
        KubeAPIServer(host=host)
    with pytest.raises(ConfigError, match="not a loopback address"):
        start_backends({"cheddar": 1}, host=host)


def test_traffic_target_keeps_the_netloc_without_userinfo() -> None:
    target = traffic_target("http://user:pw@localhost:8081")
    assert (target.host, target.port, target.netloc) == ("127.0.0.1", 8081, "localhost:8081")
