"""End-to-end smoke test of the local target: the tutorial's routes, applied with the official
``kubernetes`` client, answer through the real Traefik.

This proves the chain (Kubernetes API -> Traefik's providers -> routing -> backends -> parsing)
before the intent-driven suites derive their checks from manifests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from harness.backends.whoami import parse_whoami
from harness.traefik.process import enabled_routers

NAMESPACE = "default"
STRIP = "smoke-strip"


def _path(path: str, service: str) -> k8s.V1HTTPIngressPath:
    return k8s.V1HTTPIngressPath(
        path=path,
        path_type="Prefix",
        backend=k8s.V1IngressBackend(
            service=k8s.V1IngressServiceBackend(
                name=service, port=k8s.V1ServiceBackendPort(name="http")
            )
        ),
    )


@pytest.fixture(scope="module")
def tutorial_routes(kube_client: Any, traefik: Any) -> Iterator[None]:
    """The tutorial's first Ingress, in today's form: a v1 Ingress plus a stripPrefix Middleware."""
    custom = k8s.CustomObjectsApi(kube_client)
    networking = k8s.NetworkingV1Api(kube_client)
    custom.create_namespaced_custom_object(
        "traefik.io",
        "v1alpha1",
        NAMESPACE,
        "middlewares",
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": STRIP},
            "spec": {"stripPrefix": {"prefixes": ["/cheddar", "/wensleydale"]}},
        },
    )
    ingress = k8s.V1Ingress(
        metadata=k8s.V1ObjectMeta(
            name="smoke-cheeses",
            annotations={
                "traefik.ingress.kubernetes.io/router.middlewares": (
                    f"{NAMESPACE}-{STRIP}@kubernetescrd"
                )
            },
        ),
        spec=k8s.V1IngressSpec(
            rules=[
                k8s.V1IngressRule(
                    host="stilton.minikube",
                    http=k8s.V1HTTPIngressRuleValue(paths=[_path("/", "stilton")]),
                ),
                k8s.V1IngressRule(
                    host="cheeses.minikube",
                    http=k8s.V1HTTPIngressRuleValue(
                        paths=[_path("/cheddar", "cheddar"), _path("/wensleydale", "wensleydale")]
                    ),
                ),
            ]
        ),
    )
    networking.create_namespaced_ingress(NAMESPACE, ingress)
    traefik.wait_for_routers(
        lambda routers: (
            sum("smoke-cheeses" in str(r["name"]) for r in enabled_routers(routers)) == 3
        ),
        timeout=30,
        what="Traefik to serve the three routes of Ingress default/smoke-cheeses",
    )
    yield
    networking.delete_namespaced_ingress("smoke-cheeses", NAMESPACE)
    custom.delete_namespaced_custom_object(
        "traefik.io", "v1alpha1", NAMESPACE, "middlewares", STRIP
    )


@pytest.mark.usefixtures("tutorial_routes")
@pytest.mark.parametrize(
    ("host", "path", "backend", "upstream_path", "forwarded_prefix"),
    [
        ("stilton.minikube", "/", "stilton", "/", None),
        ("cheeses.minikube", "/cheddar", "cheddar", "/", "/cheddar"),
        ("cheeses.minikube", "/cheddar/", "cheddar", "/", "/cheddar"),
        ("cheeses.minikube", "/cheddar/rind", "cheddar", "/rind", "/cheddar"),
        ("cheeses.minikube", "/wensleydale/", "wensleydale", "/", "/wensleydale"),
    ],
)
def test_route_reaches_backend(
    proxy_client: httpx.Client,
    host: str,
    path: str,
    backend: str,
    upstream_path: str,
    forwarded_prefix: str | None,
) -> None:
    response = proxy_client.get(path, headers={"Host": host})
    assert response.status_code == 200, response.text
    reply = parse_whoami(response.content, response.headers.get("content-type"))
    assert (reply.name, reply.path) == (backend, upstream_path)
    assert reply.header("X-Forwarded-Prefix") == forwarded_prefix


@pytest.mark.usefixtures("tutorial_routes")
@pytest.mark.parametrize(
    ("host", "path"),
    [("unknown.minikube", "/"), ("cheeses.minikube", "/"), ("cheeses.minikube", "/brie")],
)
def test_unrouted_request_gets_404(proxy_client: httpx.Client, host: str, path: str) -> None:
    assert proxy_client.get(path, headers={"Host": host}).status_code == 404
