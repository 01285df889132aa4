"""Applying manifests through the Kubernetes API, with the official ``kubernetes`` client.

One code path for every target: the local API stand-in and a real cluster are both reached
through ``kubernetes.dynamic.DynamicClient``, which discovers the served kinds like kubectl does.
``apply`` behaves like ``kubectl apply`` (client-side): create when absent, otherwise a three-way
patch computed against the ``last-applied-configuration`` annotation, strategic merge for built-in
kinds and JSON merge for custom resources.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from harness.errors import ConfigError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: API groups whose kinds take strategic merge patches; custom resources take JSON merge patches.
_BUILTIN_GROUPS = frozenset({"", "apps", "discovery.k8s.io", "networking.k8s.io", "batch"})

#: Every request to the API has a deadline (connect, read), in seconds.
REQUEST_TIMEOUT = (5.0, 30.0)


def api_client_for_url(url: str, *, token: str | None = None) -> k8s.ApiClient:
    """A client for an API server at ``url`` (the local stand-in: plain HTTP on loopback)."""
    configuration = k8s.Configuration()
    configuration.host = url
    if token:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return k8s.ApiClient(configuration)


def api_client_from_kubeconfig(path: str | None, context: str | None) -> k8s.ApiClient:
    """A client for a real cluster, from a kubeconfig file and context (None: the defaults)."""
    try:
        api_client: k8s.ApiClient = k8s_config.new_client_from_config(
            config_file=path, context=context
        )
        return api_client
    except (k8s_config.ConfigException, OSError) as exc:
        raise ConfigError(f"--kubeconfig {path or '(default)'} context {context!r}: {exc}") from exc


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class Applier:
    """Creates, applies, replaces and deletes objects given as manifest dicts."""

    def __init__(self, api_client: k8s.ApiClient, *, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.api_client = api_client
        # Discovery is cached per target in the run's folder, not in a shared /tmp file.
        self.dynamic = DynamicClient(api_client, cache_file=str(cache_dir / "discovery.json"))

    def _resource(self, obj: Mapping[str, Any]) -> Any:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise ConfigError(
                f"the Kubernetes API does not serve kind {kind!r} in apiVersion {api_version!r}"
            ) from None

    @staticmethod
    def _namespace(obj: Mapping[str, Any], resource: Any, namespace: str | None) -> str | None:
        if not resource.namespaced:
            return None
        return str(obj.get("metadata", {}).get("namespace") or namespace or "default")

    def is_namespaced(self, obj: Mapping[str, Any]) -> bool:
        """Whether objects of ``obj``'s kind live in a namespace (as the API's discovery says)."""
        return bool(self._resource(obj).namespaced)

    def resource_name(self, obj: Mapping[str, Any]) -> tuple[str, str]:
        """(API group, resource plural) of ``obj``'s kind, as RBAC names it."""
        resource = self._resource(obj)
        return str(resource.group or ""), str(resource.name)

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """The live objects of a kind (in ``namespace`` for a namespaced kind)."""
        resource = self._resource({"apiVersion": api_version, "kind": kind})
        found = resource.get(
            namespace=namespace if resource.namespaced else None,
            label_selector=label_selector,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return [dict(item) for item in found.to_dict().get("items") or []]

    def get(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any] | None:
        """The live object named like ``obj``, or None when it does not exist."""
        resource = self._resource(obj)
        try:
            live = resource.get(
                name=obj["metadata"]["name"],
                namespace=self._namespace(obj, resource, namespace),
                _request_timeout=REQUEST_TIMEOUT,
            )
        except NotFoundError:
            return None
        return dict(live.to_dict())

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        resource = self._resource(obj)
        body = _with_last_applied(obj)
        created = resource.create(
            body=body,
            namespace=self._namespace(obj, resource, namespace),
            _request_timeout=REQUEST_TIMEOUT,
        )
        return dict(created.to_dict())

    def apply(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Like ``kubectl apply``: create if absent, else a three-way patch."""
        resource = self._resource(obj)
        ns = self._namespace(obj, resource, namespace)
        live = self.get(obj, namespace)
        if live is None:
            return self.create(obj, namespace)
        previous_raw = live.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED)
        previous = json.loads(previous_raw) if previous_raw else {}
        patch = three_way_patch(previous, _with_last_applied(obj))
        content_type = (
            "application/strategic-merge-patch+json"
            if _group(str(obj.get("apiVersion", ""))) in _BUILTIN_GROUPS
            else "application/merge-patch+json"
        )
        patched = resource.patch(
            body=patch,
            name=obj["metadata"]["name"],
            namespace=ns,
            content_type=content_type,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return dict(patched.to_dict())

    def replace(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """PUT the whole object (``kubectl replace``), with the live resourceVersion."""
        resource = self._resource(obj)
        live = self.get(obj, namespace)
        body = _with_last_applied(obj)
        if live is not None:
            body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        replaced = resource.replace(
            body=body,
            name=obj["metadata"]["name"],
            namespace=self._namespace(obj, resource, namespace),
            _request_timeout=REQUEST_TIMEOUT,
        )
        return dict(replaced.to_dict())

    def put(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Make the object exactly ``obj``: create it, or replace the whole live one (nothing of
        an earlier version is merged in)."""
        if self.get(obj, namespace) is None:
            return self.create(obj, namespace)
        return self.replace(obj, namespace)

    def delete(self, obj: Mapping[str, Any], namespace: str | None = None) -> bool:
        """Delete; True when it existed."""
        resource = self._resource(obj)
        try:
            resource.delete(
                name=obj["metadata"]["name"],
                namespace=self._namespace(obj, resource, namespace),
                _request_timeout=REQUEST_TIMEOUT,
            )
        except NotFoundError:
            return False
        return True

    def apply_all(
        self, objs: Iterable[Mapping[str, Any]], namespace: str | None = None
    ) -> list[dict[str, Any]]:
        return [self.apply(obj, namespace) for obj in objs]

    def delete_all(self, objs: Iterable[Mapping[str, Any]], namespace: str | None = None) -> None:
        for obj in reversed(list(objs)):
            self.delete(obj, namespace)


def _with_last_applied(obj: Mapping[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(dict(obj))
    metadata = body.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    original = copy.deepcopy(body)
    original.get("metadata", {}).pop("resourceVersion", None)
    annotations[LAST_APPLIED] = json.dumps(original, sort_keys=True, separators=(",", ":"))
    metadata["annotations"] = annotations
    return body


def three_way_patch(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that sets everything in ``desired`` and removes what only ``previous`` had.

    This is the part of kubectl's three-way merge that matters for manifests: fields dropped from
    the manifest since the last apply are deleted (set to null); fields others set are kept.
    """
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        before = previous.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = three_way_patch(before, value)
        else:
            patch[key] = copy.deepcopy(value)
    for key in previous:
        if key not in desired:
            patch[key] = None
    return patch
