"""Traefik process management: binary lookup, static configuration, start failures, stop."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError, TraefikStartError
from harness.traefik.process import (
    TraefikProcess,
    TraefikSettings,
    find_traefik_binary,
    static_configuration,
    traefik_version,
)

# Nothing listens here: Traefik starts and answers /ping without a reachable Kubernetes API.
NO_API = "http://127.0.0.1:9"


def test_pinned_binary_is_found_and_is_traefik_v3() -> None:
    binary = find_traefik_binary()
    assert traefik_version(binary).startswith("3.")


def test_missing_binary_is_a_config_error_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--traefik-binary .*nope.*no executable file"):
        find_traefik_binary(tmp_path / "nope")


def test_binary_that_is_not_traefik_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "traefik"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(TraefikStartError, match="does not look like Traefik"):
        traefik_version(fake)


def test_static_configuration_points_both_providers_at_the_api() -> None:
    settings = TraefikSettings(
        kube_endpoint="http://127.0.0.1:1234",
        binary=Path("/x"),
        throttle_seconds=0.5,
        strict_prefix_matching=True,
        extra={"providers": {"kubernetesCRD": {"allowCrossNamespace": True}}},
    )
    config = static_configuration(settings, web_port=1000, api_port=1001)
    assert config["entryPoints"]["web"]["address"] == "127.0.0.1:1000"
    assert config["entryPoints"]["traefik"]["address"] == "127.0.0.1:1001"
    assert config["providers"]["providersThrottleDuration"] == "0.5s"
    assert config["providers"]["kubernetesIngress"]["endpoint"] == "http://127.0.0.1:1234"
    assert config["providers"]["kubernetesIngress"]["strictPrefixMatching"] is True
    assert config["providers"]["kubernetesCRD"] == {
        "endpoint": "http://127.0.0.1:1234",
        "allowCrossNamespace": True,
    }


def test_start_answers_ping_and_stop_leaves_no_process(tmp_path: Path) -> None:
    settings = TraefikSettings(kube_endpoint=NO_API, binary=find_traefik_binary())
    proc = TraefikProcess(settings, tmp_path)
    with proc:
        pid = proc.pid
        assert pid is not None and proc.is_running()
        written = yaml.safe_load(proc.config_path.read_text())
        assert written["entryPoints"]["web"]["address"].endswith(f":{proc.web_port}")
    assert not proc.is_running()
    assert not _alive(pid)
    assert "Traefik version" in proc.log_path.read_text()


def test_port_in_use_gives_one_paragraph_with_cause_and_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = TraefikSettings(
            kube_endpoint=NO_API, binary=find_traefik_binary(), web_port=port
        )
        proc = TraefikProcess(settings, tmp_path)
        with pytest.raises(TraefikStartError) as info:
            proc.start(timeout=15)
    message = str(info.value)
    assert "did not get ready" in message
    assert "address already in use" in message
    assert f"Web port {port}" in message
    assert str(proc.log_path) in message
    assert not proc.is_running()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
