"""The local target end to end: the real Traefik routes from the local Kubernetes API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.backends.whoami import parse_whoami
from harness.targets.local_stack import SYSTEM_NAMESPACE, canaries_served
from harness.traefik.process import enabled_routers

pytestmark = pytest.mark.stack


def _ingress(name: str, host: str, path: str, service: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ]
        },
    }


def _serves(host: str, path: str) -> Any:
    def predicate(routers: list[dict[str, Any]]) -> bool:
        return any(host in r["rule"] and path in r["rule"] for r in enabled_routers(routers))

    return predicate


@pytest.fixture
def change_ingress(applier: Any) -> Iterator[dict[str, Any]]:
    obj = _ingress("change-me", "change.test", "/a", "stilton")
    yield obj
    applier.delete(obj)


def test_stack_is_ready_with_both_providers_synced(local_stack: Any, traefik: Any) -> None:
    assert traefik.is_running()
    assert canaries_served(traefik.routers())
    info = local_stack.describe()
    assert info["target"] == "local"
    assert set(info["backends"]) >= {"stilton", "cheddar", "wensleydale"}


def test_backends_are_registered_as_services_with_endpoint_slices(
    kube_client: Any, local_stack: Any
) -> None:
    from kubernetes import client as k8s

    services = k8s.CoreV1Api(kube_client).list_namespaced_service("default")
    assert {s.metadata.name for s in services.items} >= {"stilton", "cheddar", "wensleydale"}
    slices = k8s.DiscoveryV1Api(kube_client).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=cheddar"
    )
    instances = local_stack.backends.by_service()["cheddar"]
    assert len(slices.items) == len(instances)  # one slice per instance: each has its own port
    ports = {s.ports[0].port for s in slices.items}
    assert ports == {i.port for i in instances}
    (endpoint,) = slices.items[0].endpoints
    assert endpoint.addresses[0].startswith("127.")
    assert endpoint.conditions.ready is True


def test_canaries_live_in_their_own_namespace(kube_client: Any) -> None:
    from kubernetes import client as k8s

    names = {n.metadata.name for n in k8s.CoreV1Api(kube_client).list_namespace().items}
    assert SYSTEM_NAMESPACE in names


def test_applied_change_reaches_traefik_and_is_detected(
    applier: Any, traefik: Any, proxy_client: httpx.Client, change_ingress: dict[str, Any]
) -> None:
    applier.apply(change_ingress)
    traefik.wait_for_routers(_serves("change.test", "/a"), timeout=20, what="route change.test/a")
    first = proxy_client.get("/a/x", headers={"Host": "change.test"})
    assert first.status_code == 200
    assert parse_whoami(first.content).name == "stilton"

    moved = _ingress("change-me", "change.test", "/b", "cheddar")
    applier.apply(moved)
    traefik.wait_for_routers(_serves("change.test", "/b"), timeout=20, what="route change.test/b")
    second = proxy_client.get("/b/x", headers={"Host": "change.test"})
    assert second.status_code == 200
    assert parse_whoami(second.content).name == "cheddar"
    assert proxy_client.get("/a/x", headers={"Host": "change.test"}).status_code == 404


def test_deleted_route_disappears(
    applier: Any, traefik: Any, proxy_client: httpx.Client, change_ingress: dict[str, Any]
) -> None:
    applier.apply(change_ingress)
    traefik.wait_for_routers(_serves("change.test", "/a"), timeout=20, what="route change.test/a")
    applier.delete(change_ingress)
    traefik.wait_for_routers(
        lambda routers: not _serves("change.test", "/a")(routers),
        timeout=20,
        what="route change.test/a to disappear",
    )
    assert proxy_client.get("/a", headers={"Host": "change.test"}).status_code == 404
