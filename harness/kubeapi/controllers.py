"""The workload controllers of the local Kubernetes API: Deployments and ReplicaSets.

Pure API logic, as kube-controller-manager's deployment and replicaset controllers do it,
running in-process against the store (every read and write goes through the store's REST
semantics, so resourceVersions, conflicts and watch events are what clients see from a
cluster):

- the **ReplicaSet controller** keeps ``spec.replicas`` pods per ReplicaSet (``generateName``
  ``<rs>-``, the template's labels including ``pod-template-hash``, a controller
  ownerReference), deleting surplus pods unscheduled-first, and reports ``status`` (replicas,
  fullyLabeledReplicas, readyReplicas, availableReplicas from the pods' Ready condition and
  ``minReadySeconds``, observedGeneration);
- the **Deployment controller** owns ReplicaSets named ``<deployment>-<pod-template-hash>``,
  creates a new one when the template changes, and moves replicas over by the strategy
  (RollingUpdate within maxSurge/maxUnavailable, or Recreate), keeps revisionHistoryLimit old
  ReplicaSets, the ``deployment.kubernetes.io/revision`` annotations, and the status
  ``kubectl rollout status`` reads (observedGeneration, replicas, updatedReplicas,
  readyReplicas, availableReplicas, unavailableReplicas, the Available and Progressing
  conditions with the real reasons, ProgressDeadlineExceeded included).

Pods stay Pending until something else (a node agent) reports them Running and Ready through
the API. Both controllers are level-triggered: every pass reconciles every object, and a pass
runs after each change in the store (and every ``resync`` seconds, for deadlines).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

from harness.kubeapi.store import (
    Kind,
    ListOptions,
    ObjectStore,
    StatusError,
    clone,
    int_or_percent,
)

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

HASH_LABEL: Final = "pod-template-hash"
REVISION: Final = "deployment.kubernetes.io/revision"
_SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_MAX_PASSES: Final = 100  # a pass that still changes something after this many is a bug


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    then = datetime.fromisoformat(stamp)
    return (datetime.now(UTC) - then).total_seconds()


def pod_template_hash(template: Obj, collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a template: FNV-1a (32 bit) of the template and the
    collision count, in the alphabet of apimachinery's SafeEncodeString, like the real one."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(value))


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def _replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 0) or 0)


def _status(obj: Obj, name: str) -> int:
    return int((obj.get("status") or {}).get(name, 0) or 0)


def _revision(rs: Obj) -> int:
    try:
        return int((_meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _controller_uid(obj: Obj) -> str | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _owner_ref(owner: Obj, kind: str) -> Obj:
    meta = _meta(owner)
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_ready_since(pod: Obj) -> str | None:
    """When the pod's Ready condition became True (None: not ready, or terminating)."""
    if _meta(pod).get("deletionTimestamp"):
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return str(condition.get("lastTransitionTime") or "") or _now()
    return None


def _without_hash(template: Obj) -> Obj:
    copy = clone(template)
    labels = (copy.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return copy


class WorkloadControllers:
    """The Deployment and ReplicaSet controllers over ``store``; ``start()`` runs them in a
    daemon thread until ``stop()``, ``sync()`` runs one pass (for tests)."""

    def __init__(self, store: ObjectStore, *, resync: float = 1.0) -> None:
        kinds = {(k.group, k.plural): k for k in store.kinds}
        self.store = store
        self.resync = resync
        self.pods: Kind = kinds[("", "pods")]
        self.replicasets: Kind = kinds[("apps", "replicasets")]
        self.deployments: Kind = kinds[("apps", "deployments")]
        self.events: Kind | None = kinds.get(("", "events"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kubeapi-controllers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self.store.wake_watches()
        thread.join(timeout)

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            try:
                self.sync_until_stable()
            except Exception:  # a bug here must not end the controllers silently
                logger.exception("local Kubernetes API: workload controllers failed a pass")
            seen = self.store.wait_for_change(seen, self.resync, self._stop)

    def sync_until_stable(self) -> int:
        """Passes until one changes nothing (bounded); returns the number of passes."""
        for passes in range(1, _MAX_PASSES + 1):
            if not self.sync():
                return passes
        logger.warning("workload controllers: still changing after %d passes", _MAX_PASSES)
        return _MAX_PASSES

    def sync(self) -> bool:
        """One pass over every Deployment, then every ReplicaSet; True if anything changed."""
        before = self.store.resource_version
        for deployment in self._list(self.deployments):
            self._guarded(self._sync_deployment, deployment)
        for rs in self._list(self.replicasets):
            self._guarded(self._sync_replicaset, rs)
        return self.store.resource_version != before

    @staticmethod
    def _guarded(step: Any, obj: Obj) -> None:
        try:
            step(obj)
        except StatusError as exc:
            # Conflicts and races (an object deleted meanwhile) are retried on the next pass.
            if exc.code not in (404, 409):
                raise
            logger.debug("workload controllers: %s (retried)", exc.message)

    def _list(self, kind: Kind, namespace: str = "") -> list[Obj]:
        return list(self.store.list_objects(kind, namespace, ListOptions())["items"])

    def _owned(self, kind: Kind, owner: Obj) -> Iterator[Obj]:
        uid = _meta(owner)["uid"]
        for obj in self._list(kind, _meta(owner)["namespace"]):
            if _controller_uid(obj) == uid:
                yield obj

    def _event(self, obj: Obj, kind: str, reason: str, message: str, component: str) -> None:
        if self.events is None:
            return
        meta = _meta(obj)
        now = _now()
        self.store.create(
            self.events,
            meta["namespace"],
            {
                "metadata": {"generateName": f"{meta['name']}."},
                "involvedObject": {
                    "kind": kind,
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "apiVersion": "apps/v1",
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "type": "Normal",
                "count": 1,
                "source": {"component": component},
                "reportingComponent": component,
                "firstTimestamp": now,
                "lastTimestamp": now,
            },
        )

    def _write_status(self, kind: Kind, obj: Obj, status: Obj) -> None:
        if status == (obj.get("status") or {}):
            return
        updated = clone(obj)
        updated["status"] = status
        meta = _meta(obj)
        self.store.replace(kind, meta["namespace"], meta["name"], updated, subresource="status")

    def _scale(self, kind: Kind, obj: Obj, replicas: int) -> Obj:
        updated = clone(obj)
        updated["spec"]["replicas"] = replicas
        meta = _meta(obj)
        return self.store.replace(kind, meta["namespace"], meta["name"], updated)

    # -- ReplicaSets ----------------------------------------------------------------------

    def _sync_replicaset(self, rs: Obj) -> None:
        meta = _meta(rs)
        if meta.get("deletionTimestamp"):
            return
        namespace, name = meta["namespace"], meta["name"]
        pods = [
            p
            for p in self._owned(self.pods, rs)
            if not _meta(p).get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        template = (rs.get("spec") or {}).get("template") or {}
        diff = len(pods) - _replicas(rs)
        for _ in range(max(0, -diff)):
            pod = self.store.create(
                self.pods,
                namespace,
                {
                    "metadata": {
                        "generateName": f"{name}-",
                        "labels": clone((template.get("metadata") or {}).get("labels") or {}),
                        "annotations": clone(
                            (template.get("metadata") or {}).get("annotations") or {}
                        ),
                        "ownerReferences": [_owner_ref(rs, "ReplicaSet")],
                    },
                    "spec": clone(template.get("spec") or {}),
                },
            )
            pods.append(pod)
            self._event(
                rs,
                "ReplicaSet",
                "SuccessfulCreate",
                f"Created pod: {_meta(pod)['name']}",
                "replicaset-controller",
            )
        if diff > 0:
            # Like getPodsToDelete: unscheduled, then pending, then not ready, newest first.
            def rank(pod: Obj) -> tuple[int, int, int, str]:
                status = pod.get("status") or {}
                return (
                    0 if not (pod.get("spec") or {}).get("nodeName") else 1,
                    0 if status.get("phase") == "Pending" else 1,
                    0 if pod_ready_since(pod) is None else 1,
                    "".join(
                        chr(0x10FFFF - ord(c)) for c in _meta(pod).get("creationTimestamp", "")
                    ),
                )

            for pod in sorted(pods, key=rank)[:diff]:
                self.store.delete(self.pods, namespace, _meta(pod)["name"])
                pods.remove(pod)
                self._event(
                    rs,
                    "ReplicaSet",
                    "SuccessfulDelete",
                    f"Deleted pod: {_meta(pod)['name']}",
                    "replicaset-controller",
                )
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds", 0) or 0)
        ready = [p for p in pods if pod_ready_since(p) is not None]
        available = [p for p in ready if _seconds_since(pod_ready_since(p)) >= min_ready]
        labels = (template.get("metadata") or {}).get("labels") or {}
        status: Obj = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1
                for p in pods
                if all((_meta(p).get("labels") or {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": meta.get("generation", 1),
        }
        # The real controller omits zero counts (omitempty); only replicas is always there.
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        self._write_status(self.replicasets, rs, status)

    # -- Deployments ----------------------------------------------------------------------

    def _sync_deployment(self, deployment: Obj) -> None:
        meta = _meta(deployment)
        if meta.get("deletionTimestamp"):
            return
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        owned = sorted(
            self._owned(self.replicasets, deployment),
            key=lambda rs: (_meta(rs).get("creationTimestamp", ""), _meta(rs)["name"]),
        )
        new = next(
            (
                rs
                for rs in owned
                if _without_hash((rs.get("spec") or {}).get("template") or {}) == template
            ),
            None,
        )
        old = [rs for rs in owned if rs is not new]
        desired = _replicas(deployment)
        created = False
        if new is None and not spec.get("paused"):
            new = self._create_replicaset(deployment, old)
            created = new is not None
        elif new is not None and _revision(new) <= max(map(_revision, old), default=0):
            new = self._bump_revision(new, old)
        if new is not None and not spec.get("paused"):
            strategy = spec.get("strategy") or {}
            if strategy.get("type") == "Recreate":
                self._recreate(deployment, new, old, desired)
            else:
                self._rolling_update(deployment, new, old, desired)
            self._annotate_revision(deployment, new)
        self._cleanup(deployment, old)
        current = self.store.get(self.deployments, meta["namespace"], meta["name"])
        owned_now = list(self._owned(self.replicasets, current))
        new_now = next(
            (rs for rs in owned_now if new is not None and _meta(rs)["uid"] == _meta(new)["uid"]),
            None,
        )
        self._write_status(
            self.deployments, current, self._deployment_status(current, new_now, owned_now, created)
        )

    def _create_replicaset(self, deployment: Obj, old: list[Obj]) -> Obj | None:
        meta, spec = _meta(deployment), deployment.get("spec") or {}
        collisions = _status(deployment, "collisionCount")
        digest = pod_template_hash(spec.get("template") or {}, collisions)
        template = clone(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        revision = max(map(_revision, old), default=0) + 1
        desired = _replicas(deployment)
        replicas = (
            0
            if (spec.get("strategy") or {}).get("type") == "Recreate" and any(map(_replicas, old))
            else self._new_replicas(deployment, None, old, desired)
        )
        surge = self._max_surge(deployment, desired)
        body = {
            "metadata": {
                "name": f"{meta['name']}-{digest}",
                "labels": clone(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(desired),
                    "deployment.kubernetes.io/max-replicas": str(desired + surge),
                },
                "ownerReferences": [_owner_ref(deployment, "Deployment")],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            rs = self.store.create(self.replicasets, meta["namespace"], body)
        except StatusError as exc:
            if exc.code != 409:
                raise
            # A ReplicaSet of that name with another template: hash again with a new count.
            bumped = clone(deployment)
            bumped.setdefault("status", {})["collisionCount"] = collisions + 1
            self.store.replace(
                self.deployments, meta["namespace"], meta["name"], bumped, subresource="status"
            )
            return None
        self._event(
            deployment,
            "Deployment",
            "ScalingReplicaSet",
            f"Scaled up replica set {_meta(rs)['name']} from 0 to {replicas}",
            "deployment-controller",
        )
        return rs

    def _bump_revision(self, rs: Obj, old: list[Obj]) -> Obj:
        # A rollback to an old template makes that ReplicaSet the newest revision again.
        updated = clone(rs)
        annotations = _meta(updated).setdefault("annotations", {})
        annotations[REVISION] = str(max(map(_revision, old), default=0) + 1)
        meta = _meta(rs)
        return self.store.replace(self.replicasets, meta["namespace"], meta["name"], updated)

    def _annotate_revision(self, deployment: Obj, new: Obj) -> None:
        revision = str(_revision(new))
        meta = _meta(deployment)
        current = self.store.get(self.deployments, meta["namespace"], meta["name"])
        if (_meta(current).get("annotations") or {}).get(REVISION) == revision:
            return
        _meta(current).setdefault("annotations", {})[REVISION] = revision
        self.store.replace(self.deployments, meta["namespace"], meta["name"], current)

    def _max_surge(self, deployment: Obj, desired: int) -> int:
        rolling = ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
        return int_or_percent(rolling.get("maxSurge", "25%"), desired, round_up=True) or 0

    def _max_unavailable(self, deployment: Obj, desired: int) -> int:
        strategy = (deployment.get("spec") or {}).get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return 0
        rolling = strategy.get("rollingUpdate") or {}
        unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if not unavailable and not self._max_surge(deployment, desired):
            return 1  # both zero is refused by validation; resolved like the real helper
        return min(unavailable or 0, desired)

    def _new_replicas(self, deployment: Obj, new: Obj | None, old: list[Obj], desired: int) -> int:
        current_new = _replicas(new) if new is not None else 0
        total = current_new + sum(map(_replicas, old))
        max_total = desired + self._max_surge(deployment, desired)
        if total >= max_total:
            return current_new
        return current_new + max(0, min(max_total - total, desired - current_new))

    def _scale_rs(self, deployment: Obj, rs: Obj, replicas: int) -> Obj:
        before = _replicas(rs)
        if before == replicas:
            return rs
        scaled = self._scale(self.replicasets, rs, replicas)
        verb = "up" if replicas > before else "down"
        self._event(
            deployment,
            "Deployment",
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {_meta(rs)['name']} from {before} to {replicas}",
            "deployment-controller",
        )
        return scaled

    def _rolling_update(self, deployment: Obj, new: Obj, old: list[Obj], desired: int) -> None:
        if _replicas(new) > desired:
            new = self._scale_rs(deployment, new, desired)
        else:
            new = self._scale_rs(deployment, new, self._new_replicas(deployment, new, old, desired))
        old_total = sum(map(_replicas, old))
        if not old_total:
            return
        all_rs = [new, *old]
        min_available = desired - self._max_unavailable(deployment, desired)
        new_unavailable = _replicas(new) - _status(new, "availableReplicas")
        max_scaled_down = sum(map(_replicas, all_rs)) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        # cleanupUnhealthyReplicas: unavailable old pods go first, within the budget.
        cleaned = 0
        for i, rs in enumerate(old):
            unhealthy = _replicas(rs) - _status(rs, "availableReplicas")
            if unhealthy <= 0 or cleaned >= max_scaled_down:
                continue
            count = min(unhealthy, max_scaled_down - cleaned)
            old[i] = self._scale_rs(deployment, rs, _replicas(rs) - count)
            cleaned += count
        # scaleDownOldReplicaSetsForRollingUpdate: then available ones, keeping minAvailable.
        available = sum(_status(rs, "availableReplicas") for rs in [new, *old])
        budget = available - min_available
        for i, rs in enumerate(old):
            if budget <= 0:
                break
            count = min(_replicas(rs), budget)
            if count:
                old[i] = self._scale_rs(deployment, rs, _replicas(rs) - count)
                budget -= count

    def _recreate(self, deployment: Obj, new: Obj, old: list[Obj], desired: int) -> None:
        for rs in old:
            if _replicas(rs):
                self._scale_rs(deployment, rs, 0)
        for rs in old:
            for pod in self._owned(self.pods, rs):
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return  # old pods still running (terminating ones too): wait for them
        self._scale_rs(deployment, new, desired)

    def _cleanup(self, deployment: Obj, old: list[Obj]) -> None:
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in old if not _replicas(rs) and not _status(rs, "replicas")]
        for rs in sorted(idle, key=_revision)[: max(0, len(idle) - limit)]:
            meta = _meta(rs)
            self.store.delete(self.replicasets, meta["namespace"], meta["name"])

    def _deployment_status(
        self, deployment: Obj, new: Obj | None, owned: list[Obj], created: bool
    ) -> Obj:
        previous = deployment.get("status") or {}
        desired = _replicas(deployment)
        available = sum(_status(rs, "availableReplicas") for rs in owned)
        status: Obj = {
            "observedGeneration": _meta(deployment).get("generation", 1),
            "replicas": sum(_status(rs, "replicas") for rs in owned),
            "updatedReplicas": _status(new, "replicas") if new is not None else 0,
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in owned),
            "availableReplicas": available,
            "unavailableReplicas": max(desired - available, 0),
        }
        if previous.get("collisionCount"):
            status["collisionCount"] = previous["collisionCount"]
        conditions = {c.get("type"): c for c in previous.get("conditions") or []}
        now = _now()

        def put(kind: str, value: str, reason: str, message: str, *, touch: bool = False) -> None:
            current = conditions.get(kind)
            if (
                current is not None
                and current.get("status") == value
                and (current.get("reason") == reason and not touch)
            ):
                return
            transition = now
            if current is not None and current.get("status") == value:
                transition = current.get("lastTransitionTime", now)
            conditions[kind] = {
                "type": kind,
                "status": value,
                "lastUpdateTime": now,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }

        if available >= desired - self._max_unavailable(deployment, desired):
            put(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            put(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if new is not None:
            name = _meta(new)["name"]
            complete = (
                status["updatedReplicas"] == desired
                and status["replicas"] == desired
                and available == desired
            )
            progressed = (
                status["updatedReplicas"] > previous.get("updatedReplicas", 0)
                or status["replicas"] < previous.get("replicas", 0)
                or status["readyReplicas"] > previous.get("readyReplicas", 0)
                or available > previous.get("availableReplicas", 0)
            )
            progressing = conditions.get("Progressing") or {}
            deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds", 600)
            if complete:
                put(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                )
            elif created:
                put(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    f'Created new replica set "{name}"',
                )
            elif progressed:
                put(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{name}" is progressing.',
                    touch=True,
                )
            elif progressing.get("reason") != "ProgressDeadlineExceeded" and (
                _seconds_since(progressing.get("lastUpdateTime")) > deadline
            ):
                put(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{name}" has timed out progressing.',
                )
            elif not progressing:
                put("Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{name}"')
        order = {"Available": 0, "Progressing": 1}
        status["conditions"] = sorted(conditions.values(), key=lambda c: order.get(c["type"], 2))
        return status
