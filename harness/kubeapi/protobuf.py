"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) as their JSON form.

A typed Go client (``kubectl create namespace|configmap|secret|serviceaccount|deployment|service|
ingress|role|rolebinding|clusterrole|clusterrolebinding``, ``kubectl auth can-i``) sends its
body as the ``k8s\\x00`` magic and a ``runtime.Unknown`` envelope (typeMeta, raw, contentEncoding,
contentType) holding the object's protobuf message. This module decodes that message with field
tables taken from Kubernetes' ``generated.proto`` files (field number → JSON name and type) into
the JSON the Go types would print, so validation, defaulting, the store and watches see exactly
what a JSON body would have given them.

Go's JSON rules are kept: a non-pointer scalar tagged ``omitempty`` is left out when zero (the Go
encoder always writes it on the wire), a pointer or a field without ``omitempty`` keeps its zero
(``keep=True``); a message on the wire is always printed (``{}`` when empty, a zero ``Time`` as
``null``). A field number a table does not know is refused with ProtobufError naming the message,
the number and where it was, never dropped: what the user sent is either decoded or refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

MAGIC: Final = b"k8s\x00"
MEDIA_TYPE: Final = "application/vnd.kubernetes.protobuf"

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

FieldType = Literal["string", "int32", "int64", "bool", "bytes", "message", "map"]


class ProtobufError(ValueError):
    """A body that is not a protobuf message the tables decode; the text says what and where."""


class UnsupportedKind(ProtobufError):
    """An envelope whose apiVersion/kind has no table (the body is well formed)."""


@dataclass(frozen=True)
class Message:
    """One protobuf message: its full proto name and its fields by number.

    ``to_json`` turns the decoded fields into the message's JSON when the Go type has its own
    JSON form (Time, IntOrString, Quantity, FieldsV1, map entries)."""

    name: str
    fields: Mapping[int, Field]
    to_json: Callable[[dict[str, Any], str], Any] | None = None


@dataclass(frozen=True)
class Field:
    name: str
    """The JSON name; empty for an embedded struct whose fields Go inlines (``json:",inline"``)."""
    type: FieldType
    message: Message | None = None
    """A message field's message; a map's entry message (key 1, value 2)."""
    repeated: bool = False
    keep: bool = False
    """Print the zero value too (a pointer, or a Go field without ``omitempty``)."""

    @property
    def embedded(self) -> Message:
        if self.message is None:
            raise TypeError(f"field {self.name!r} of type {self.type} has no message")
        return self.message


# -- field constructors: the tables read as the generated.proto files do -------------------------


def string(name: str, *, keep: bool = False) -> Field:
    return Field(name, "string", keep=keep)


def strings(name: str) -> Field:
    return Field(name, "string", repeated=True)


def int32(name: str, *, keep: bool = False) -> Field:
    return Field(name, "int32", keep=keep)


def int64(name: str, *, keep: bool = False) -> Field:
    return Field(name, "int64", keep=keep)


def int64s(name: str) -> Field:
    return Field(name, "int64", repeated=True)


def boolean(name: str, *, keep: bool = False) -> Field:
    return Field(name, "bool", keep=keep)


def message(name: str, of: Message) -> Field:
    return Field(name, "message", of)


def messages(name: str, of: Message) -> Field:
    return Field(name, "message", of, repeated=True)


def inline(of: Message) -> Field:
    return Field("", "message", of)


def _map_entry(name: str, value: Field) -> Message:
    def to_json(decoded: dict[str, Any], where: str) -> Any:
        if "value" in decoded or value.message is None:
            return decoded.get("key", ""), decoded.get("value", "")
        # An entry without its message value holds the value's zero (Quantity: "0").
        zero = value.message.to_json({}, where) if value.message.to_json else {}
        return decoded.get("key", ""), zero

    return Message(f"the map entry of {name}", {1: string("key", keep=True), 2: value}, to_json)


def string_map(name: str) -> Field:
    return Field(name, "map", _map_entry(name, string("value", keep=True)))


def bytes_map(name: str) -> Field:
    return Field(name, "map", _map_entry(name, Field("value", "bytes", keep=True)))


# -- apimachinery: meta/v1, util/intstr, api/resource ---------------------------------------------


def _time_json(decoded: dict[str, Any], where: str) -> str | None:
    if not decoded:
        return None  # Go's zero Time, sent as an empty message and printed as null
    try:
        moment = datetime.fromtimestamp(decoded.get("seconds", 0), UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"{where}: time {decoded} is out of range") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string_json(decoded: dict[str, Any], where: str) -> int | str:
    kind = decoded.get("type", 0)
    if kind not in (0, 1):
        raise ProtobufError(f"{where}: IntOrString type {kind} is neither 0 (int) nor 1 (string)")
    value: int | str = decoded.get("strVal", "") if kind == 1 else decoded.get("intVal", 0)
    return value


def _fields_v1_json(decoded: dict[str, Any], where: str) -> Any:
    try:
        return json.loads(base64.b64decode(decoded.get("Raw", "")) or b"{}")
    except ValueError:
        raise ProtobufError(f"{where}: FieldsV1 is not JSON") from None


_META: Final = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIME: Final = Message(_META + "Time", {1: int64("seconds", keep=True),
                                       2: int32("nanos", keep=True)}, _time_json)  # fmt: skip
INT_OR_STRING: Final = Message(
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    {1: int64("type", keep=True), 2: int32("intVal", keep=True), 3: string("strVal", keep=True)},
    _int_or_string_json,
)
QUANTITY: Final = Message("k8s.io.apimachinery.pkg.api.resource.Quantity",
                          {1: string("string", keep=True)},
                          lambda decoded, _where: decoded.get("string", "0"))  # fmt: skip
FIELDS_V1: Final = Message(_META + "FieldsV1", {1: Field("Raw", "bytes", keep=True)},
                           _fields_v1_json)  # fmt: skip


def quantity_map(name: str) -> Field:
    return Field(name, "map", _map_entry(name, message("value", QUANTITY)))


TYPE_META: Final = Message("k8s.io.apimachinery.pkg.runtime.TypeMeta",
                           {1: string("apiVersion"), 2: string("kind")})  # fmt: skip
OWNER_REFERENCE: Final = Message(_META + "OwnerReference", {
    5: string("apiVersion", keep=True), 1: string("kind", keep=True),
    3: string("name", keep=True), 4: string("uid", keep=True),
    6: boolean("controller", keep=True), 7: boolean("blockOwnerDeletion", keep=True),
})  # fmt: skip
MANAGED_FIELDS_ENTRY: Final = Message(_META + "ManagedFieldsEntry", {
    1: string("manager"), 2: string("operation"), 3: string("apiVersion"),
    4: message("time", TIME), 6: string("fieldsType"), 7: message("fieldsV1", FIELDS_V1),
    8: string("subresource"),
})  # fmt: skip
OBJECT_META: Final = Message(_META + "ObjectMeta", {
    1: string("name"), 2: string("generateName"), 3: string("namespace"), 4: string("selfLink"),
    5: string("uid"), 6: string("resourceVersion"), 7: int64("generation"),
    8: message("creationTimestamp", TIME), 9: message("deletionTimestamp", TIME),
    10: int64("deletionGracePeriodSeconds", keep=True), 11: string_map("labels"),
    12: string_map("annotations"), 13: messages("ownerReferences", OWNER_REFERENCE),
    14: strings("finalizers"), 17: messages("managedFields", MANAGED_FIELDS_ENTRY),
})  # fmt: skip
LABEL_SELECTOR_REQUIREMENT: Final = Message(_META + "LabelSelectorRequirement", {
    1: string("key", keep=True), 2: string("operator", keep=True), 3: strings("values"),
})  # fmt: skip
LABEL_SELECTOR: Final = Message(_META + "LabelSelector", {
    1: string_map("matchLabels"), 2: messages("matchExpressions", LABEL_SELECTOR_REQUIREMENT),
})  # fmt: skip
CONDITION: Final = Message(_META + "Condition", {
    1: string("type", keep=True), 2: string("status", keep=True), 3: int64("observedGeneration"),
    4: message("lastTransitionTime", TIME), 5: string("reason", keep=True),
    6: string("message", keep=True),
})  # fmt: skip
FIELD_SELECTOR_REQUIREMENT: Final = Message(_META + "FieldSelectorRequirement", {
    1: string("key", keep=True), 2: string("operator", keep=True), 3: strings("values"),
})  # fmt: skip

# -- core/v1 ---------------------------------------------------------------------------------------

_CORE: Final = "k8s.io.api.core.v1."
LOCAL_OBJECT_REFERENCE: Final = Message(_CORE + "LocalObjectReference", {1: string("name")})
OBJECT_REFERENCE: Final = Message(_CORE + "ObjectReference", {
    1: string("kind"), 2: string("namespace"), 3: string("name"), 4: string("uid"),
    5: string("apiVersion"), 6: string("resourceVersion"), 7: string("fieldPath"),
})  # fmt: skip
TYPED_LOCAL_OBJECT_REFERENCE: Final = Message(_CORE + "TypedLocalObjectReference", {
    1: string("apiGroup", keep=True), 2: string("kind", keep=True), 3: string("name", keep=True),
})  # fmt: skip

NAMESPACE_CONDITION: Final = Message(_CORE + "NamespaceCondition", {
    1: string("type", keep=True), 2: string("status", keep=True),
    4: message("lastTransitionTime", TIME), 5: string("reason"), 6: string("message"),
})  # fmt: skip
NAMESPACE: Final = Message(_CORE + "Namespace", {
    1: message("metadata", OBJECT_META),
    2: message("spec", Message(_CORE + "NamespaceSpec", {1: strings("finalizers")})),
    3: message("status", Message(_CORE + "NamespaceStatus", {
        1: string("phase"), 2: messages("conditions", NAMESPACE_CONDITION)})),
})  # fmt: skip
CONFIG_MAP: Final = Message(_CORE + "ConfigMap", {
    1: message("metadata", OBJECT_META), 4: boolean("immutable", keep=True),
    2: string_map("data"), 3: bytes_map("binaryData"),
})  # fmt: skip
SECRET: Final = Message(_CORE + "Secret", {
    1: message("metadata", OBJECT_META), 5: boolean("immutable", keep=True),
    2: bytes_map("data"), 4: string_map("stringData"), 3: string("type"),
})  # fmt: skip
SERVICE_ACCOUNT: Final = Message(_CORE + "ServiceAccount", {
    1: message("metadata", OBJECT_META), 2: messages("secrets", OBJECT_REFERENCE),
    3: messages("imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    4: boolean("automountServiceAccountToken", keep=True),
})  # fmt: skip

SERVICE_PORT: Final = Message(_CORE + "ServicePort", {
    1: string("name"), 2: string("protocol"), 6: string("appProtocol", keep=True),
    3: int32("port", keep=True), 4: message("targetPort", INT_OR_STRING), 5: int32("nodePort"),
})  # fmt: skip
PORT_STATUS: Final = Message(_CORE + "PortStatus", {
    1: int32("port", keep=True), 2: string("protocol", keep=True), 3: string("error", keep=True),
})  # fmt: skip
LOAD_BALANCER_STATUS: Final = Message(_CORE + "LoadBalancerStatus", {
    1: messages("ingress", Message(_CORE + "LoadBalancerIngress", {
        1: string("ip"), 2: string("hostname"), 3: string("ipMode", keep=True),
        4: messages("ports", PORT_STATUS)})),
})  # fmt: skip
SERVICE: Final = Message(_CORE + "Service", {
    1: message("metadata", OBJECT_META),
    2: message("spec", Message(_CORE + "ServiceSpec", {
        1: messages("ports", SERVICE_PORT), 2: string_map("selector"), 3: string("clusterIP"),
        18: strings("clusterIPs"), 4: string("type"), 5: strings("externalIPs"),
        7: string("sessionAffinity"), 8: string("loadBalancerIP"),
        9: strings("loadBalancerSourceRanges"), 10: string("externalName"),
        11: string("externalTrafficPolicy"), 12: int32("healthCheckNodePort"),
        13: boolean("publishNotReadyAddresses"),
        14: message("sessionAffinityConfig", Message(_CORE + "SessionAffinityConfig", {
            1: message("clientIP", Message(_CORE + "ClientIPConfig", {
                1: int32("timeoutSeconds", keep=True)}))})),
        19: strings("ipFamilies"), 17: string("ipFamilyPolicy", keep=True),
        20: boolean("allocateLoadBalancerNodePorts", keep=True),
        21: string("loadBalancerClass", keep=True), 22: string("internalTrafficPolicy", keep=True),
        23: string("trafficDistribution", keep=True),
    })),
    3: message("status", Message(_CORE + "ServiceStatus", {
        1: message("loadBalancer", LOAD_BALANCER_STATUS), 2: messages("conditions", CONDITION)})),
})  # fmt: skip

# The pod template: PodSpec and Container with the fields manifests use (not affinity,
# topologySpreadConstraints, ephemeralContainers, resourceClaims, the Windows options, or the
# volume sources beyond hostPath, emptyDir, secret, configMap and persistentVolumeClaim).
KEY_TO_PATH: Final = Message(_CORE + "KeyToPath", {
    1: string("key", keep=True), 2: string("path", keep=True), 3: int32("mode", keep=True),
    4: int64("user", keep=True),
})  # fmt: skip
VOLUME_SOURCE: Final = Message(_CORE + "VolumeSource", {
    1: message("hostPath", Message(_CORE + "HostPathVolumeSource", {
        1: string("path", keep=True), 2: string("type", keep=True)})),
    2: message("emptyDir", Message(_CORE + "EmptyDirVolumeSource", {
        1: string("medium"), 2: message("sizeLimit", QUANTITY), 3: int32("mode", keep=True)})),
    6: message("secret", Message(_CORE + "SecretVolumeSource", {
        1: string("secretName"), 2: messages("items", KEY_TO_PATH),
        3: int32("defaultMode", keep=True), 4: boolean("optional", keep=True),
        5: int64("defaultUser", keep=True)})),
    10: message("persistentVolumeClaim", Message(_CORE + "PersistentVolumeClaimVolumeSource", {
        1: string("claimName", keep=True), 2: boolean("readOnly")})),
    19: message("configMap", Message(_CORE + "ConfigMapVolumeSource", {
        1: inline(LOCAL_OBJECT_REFERENCE), 2: messages("items", KEY_TO_PATH),
        3: int32("defaultMode", keep=True), 4: boolean("optional", keep=True),
        5: int64("defaultUser", keep=True)})),
})  # fmt: skip
VOLUME: Final = Message(_CORE + "Volume", {1: string("name", keep=True), 2: inline(VOLUME_SOURCE)})


def _key_selector(name: str) -> Message:
    return Message(_CORE + name, {1: inline(LOCAL_OBJECT_REFERENCE), 2: string("key", keep=True),
                                  3: boolean("optional", keep=True)})  # fmt: skip


def _env_source(name: str) -> Message:
    return Message(_CORE + name, {1: inline(LOCAL_OBJECT_REFERENCE),
                                  2: boolean("optional", keep=True)})  # fmt: skip


ENV_VAR: Final = Message(_CORE + "EnvVar", {
    1: string("name", keep=True), 2: string("value"),
    3: message("valueFrom", Message(_CORE + "EnvVarSource", {
        1: message("fieldRef", Message(_CORE + "ObjectFieldSelector", {
            1: string("apiVersion"), 2: string("fieldPath", keep=True)})),
        2: message("resourceFieldRef", Message(_CORE + "ResourceFieldSelector", {
            1: string("containerName"), 2: string("resource", keep=True),
            3: message("divisor", QUANTITY)})),
        3: message("configMapKeyRef", _key_selector("ConfigMapKeySelector")),
        4: message("secretKeyRef", _key_selector("SecretKeySelector")),
    })),
})  # fmt: skip
ENV_FROM_SOURCE: Final = Message(_CORE + "EnvFromSource", {
    1: string("prefix"), 2: message("configMapRef", _env_source("ConfigMapEnvSource")),
    3: message("secretRef", _env_source("SecretEnvSource")),
})  # fmt: skip
RESOURCE_REQUIREMENTS: Final = Message(_CORE + "ResourceRequirements", {
    1: quantity_map("limits"), 2: quantity_map("requests"),
    3: messages("claims", Message(_CORE + "ResourceClaim", {
        1: string("name", keep=True), 2: string("request")})),
})  # fmt: skip
EXEC_ACTION: Final = Message(_CORE + "ExecAction", {1: strings("command")})
HTTP_GET_ACTION: Final = Message(_CORE + "HTTPGetAction", {
    1: string("path"), 2: message("port", INT_OR_STRING), 3: string("host"), 4: string("scheme"),
    5: messages("httpHeaders", Message(_CORE + "HTTPHeader", {
        1: string("name", keep=True), 2: string("value", keep=True)})),
    6: string("protocol", keep=True),
})  # fmt: skip
TCP_SOCKET_ACTION: Final = Message(_CORE + "TCPSocketAction", {
    1: message("port", INT_OR_STRING), 2: string("host"),
})  # fmt: skip
PROBE: Final = Message(_CORE + "Probe", {
    1: inline(Message(_CORE + "ProbeHandler", {
        1: message("exec", EXEC_ACTION), 2: message("httpGet", HTTP_GET_ACTION),
        3: message("tcpSocket", TCP_SOCKET_ACTION),
        4: message("grpc", Message(_CORE + "GRPCAction", {
            1: int32("port", keep=True), 2: string("service", keep=True),
            3: string("mode", keep=True)}))})),
    2: int32("initialDelaySeconds"), 3: int32("timeoutSeconds"), 4: int32("periodSeconds"),
    5: int32("successThreshold"), 6: int32("failureThreshold"),
    7: int64("terminationGracePeriodSeconds", keep=True),
})  # fmt: skip
LIFECYCLE_HANDLER: Final = Message(_CORE + "LifecycleHandler", {
    1: message("exec", EXEC_ACTION), 2: message("httpGet", HTTP_GET_ACTION),
    3: message("tcpSocket", TCP_SOCKET_ACTION),
    4: message("sleep", Message(_CORE + "SleepAction", {1: int64("seconds", keep=True)})),
})  # fmt: skip
SE_LINUX_OPTIONS: Final = Message(_CORE + "SELinuxOptions", {
    1: string("user"), 2: string("role"), 3: string("type"), 4: string("level"),
})  # fmt: skip
SECCOMP_PROFILE: Final = Message(_CORE + "SeccompProfile", {
    1: string("type", keep=True), 2: string("localhostProfile", keep=True),
})  # fmt: skip
APP_ARMOR_PROFILE: Final = Message(_CORE + "AppArmorProfile", {
    1: string("type", keep=True), 2: string("localhostProfile", keep=True),
})  # fmt: skip
SECURITY_CONTEXT: Final = Message(_CORE + "SecurityContext", {
    1: message("capabilities", Message(_CORE + "Capabilities", {
        1: strings("add"), 2: strings("drop")})),
    2: boolean("privileged", keep=True), 3: message("seLinuxOptions", SE_LINUX_OPTIONS),
    4: int64("runAsUser", keep=True), 8: int64("runAsGroup", keep=True),
    5: boolean("runAsNonRoot", keep=True), 6: boolean("readOnlyRootFilesystem", keep=True),
    7: boolean("allowPrivilegeEscalation", keep=True), 9: string("procMount", keep=True),
    11: message("seccompProfile", SECCOMP_PROFILE),
    12: message("appArmorProfile", APP_ARMOR_PROFILE),
})  # fmt: skip
CONTAINER: Final = Message(_CORE + "Container", {
    1: string("name", keep=True), 2: string("image"), 3: strings("command"), 4: strings("args"),
    5: string("workingDir"),
    6: messages("ports", Message(_CORE + "ContainerPort", {
        1: string("name"), 2: int32("hostPort"), 3: int32("containerPort", keep=True),
        4: string("protocol"), 5: string("hostIP")})),
    19: messages("envFrom", ENV_FROM_SOURCE), 7: messages("env", ENV_VAR),
    8: message("resources", RESOURCE_REQUIREMENTS),
    23: messages("resizePolicy", Message(_CORE + "ContainerResizePolicy", {
        1: string("resourceName", keep=True), 2: string("restartPolicy", keep=True)})),
    24: string("restartPolicy", keep=True),
    9: messages("volumeMounts", Message(_CORE + "VolumeMount", {
        1: string("name", keep=True), 2: boolean("readOnly"),
        7: string("recursiveReadOnly", keep=True), 3: string("mountPath", keep=True),
        4: string("subPath"), 5: string("mountPropagation", keep=True), 6: string("subPathExpr"),
        8: strings("bindMountOptions")})),
    21: messages("volumeDevices", Message(_CORE + "VolumeDevice", {
        1: string("name", keep=True), 2: string("devicePath", keep=True)})),
    10: message("livenessProbe", PROBE), 11: message("readinessProbe", PROBE),
    22: message("startupProbe", PROBE),
    12: message("lifecycle", Message(_CORE + "Lifecycle", {
        1: message("postStart", LIFECYCLE_HANDLER), 2: message("preStop", LIFECYCLE_HANDLER),
        3: string("stopSignal", keep=True)})),
    13: string("terminationMessagePath"), 20: string("terminationMessagePolicy"),
    14: string("imagePullPolicy"), 15: message("securityContext", SECURITY_CONTEXT),
    16: boolean("stdin"), 17: boolean("stdinOnce"), 18: boolean("tty"),
})  # fmt: skip
POD_SECURITY_CONTEXT: Final = Message(_CORE + "PodSecurityContext", {
    1: message("seLinuxOptions", SE_LINUX_OPTIONS), 2: int64("runAsUser", keep=True),
    6: int64("runAsGroup", keep=True), 3: boolean("runAsNonRoot", keep=True),
    4: int64s("supplementalGroups"), 12: string("supplementalGroupsPolicy", keep=True),
    5: int64("fsGroup", keep=True),
    7: messages("sysctls", Message(_CORE + "Sysctl", {
        1: string("name", keep=True), 2: string("value", keep=True)})),
    9: string("fsGroupChangePolicy", keep=True), 10: message("seccompProfile", SECCOMP_PROFILE),
    11: message("appArmorProfile", APP_ARMOR_PROFILE),
    13: string("seLinuxChangePolicy", keep=True),
})  # fmt: skip
POD_SPEC: Final = Message(_CORE + "PodSpec", {
    1: messages("volumes", VOLUME), 20: messages("initContainers", CONTAINER),
    2: messages("containers", CONTAINER), 3: string("restartPolicy"),
    4: int64("terminationGracePeriodSeconds", keep=True),
    5: int64("activeDeadlineSeconds", keep=True), 6: string("dnsPolicy"),
    7: string_map("nodeSelector"), 8: string("serviceAccountName"), 9: string("serviceAccount"),
    21: boolean("automountServiceAccountToken", keep=True), 10: string("nodeName"),
    11: boolean("hostNetwork"), 12: boolean("hostPID"), 13: boolean("hostIPC"),
    27: boolean("shareProcessNamespace", keep=True),
    14: message("securityContext", POD_SECURITY_CONTEXT),
    15: messages("imagePullSecrets", LOCAL_OBJECT_REFERENCE), 16: string("hostname"),
    17: string("subdomain"), 19: string("schedulerName"),
    22: messages("tolerations", Message(_CORE + "Toleration", {
        1: string("key"), 2: string("operator"), 3: string("value"), 4: string("effect"),
        5: int64("tolerationSeconds", keep=True)})),
    23: messages("hostAliases", Message(_CORE + "HostAlias", {
        1: string("ip", keep=True), 2: strings("hostnames")})),
    24: string("priorityClassName"), 25: int32("priority", keep=True),
    26: message("dnsConfig", Message(_CORE + "PodDNSConfig", {
        1: strings("nameservers"), 2: strings("searches"),
        3: messages("options", Message(_CORE + "PodDNSConfigOption", {
            1: string("name"), 2: string("value", keep=True)}))})),
    28: messages("readinessGates", Message(_CORE + "PodReadinessGate", {
        1: string("conditionType", keep=True)})),
    29: string("runtimeClassName", keep=True), 30: boolean("enableServiceLinks", keep=True),
    31: string("preemptionPolicy", keep=True), 32: quantity_map("overhead"),
    35: boolean("setHostnameAsFQDN", keep=True),
    36: message("os", Message(_CORE + "PodOS", {1: string("name", keep=True)})),
    37: boolean("hostUsers", keep=True),
    38: messages("schedulingGates", Message(_CORE + "PodSchedulingGate", {
        1: string("name", keep=True)})),
    40: message("resources", RESOURCE_REQUIREMENTS), 41: string("hostnameOverride", keep=True),
})  # fmt: skip
POD_TEMPLATE_SPEC: Final = Message(_CORE + "PodTemplateSpec", {
    1: message("metadata", OBJECT_META), 2: message("spec", POD_SPEC),
})  # fmt: skip

# -- apps/v1 ---------------------------------------------------------------------------------------

_APPS: Final = "k8s.io.api.apps.v1."
DEPLOYMENT: Final = Message(_APPS + "Deployment", {
    1: message("metadata", OBJECT_META),
    2: message("spec", Message(_APPS + "DeploymentSpec", {
        1: int32("replicas", keep=True), 2: message("selector", LABEL_SELECTOR),
        3: message("template", POD_TEMPLATE_SPEC),
        4: message("strategy", Message(_APPS + "DeploymentStrategy", {
            1: string("type"),
            2: message("rollingUpdate", Message(_APPS + "RollingUpdateDeployment", {
                1: message("maxUnavailable", INT_OR_STRING),
                2: message("maxSurge", INT_OR_STRING)}))})),
        5: int32("minReadySeconds"), 6: int32("revisionHistoryLimit", keep=True),
        7: boolean("paused"), 9: int32("progressDeadlineSeconds", keep=True),
    })),
    3: message("status", Message(_APPS + "DeploymentStatus", {
        1: int64("observedGeneration"), 2: int32("replicas"), 3: int32("updatedReplicas"),
        7: int32("readyReplicas"), 4: int32("availableReplicas"),
        5: int32("unavailableReplicas"), 9: int32("terminatingReplicas", keep=True),
        6: messages("conditions", Message(_APPS + "DeploymentCondition", {
            1: string("type", keep=True), 2: string("status", keep=True),
            6: message("lastUpdateTime", TIME), 7: message("lastTransitionTime", TIME),
            4: string("reason"), 5: string("message")})),
        8: int32("collisionCount", keep=True),
    })),
})  # fmt: skip

# -- networking/v1 ---------------------------------------------------------------------------------

_NET: Final = "k8s.io.api.networking.v1."
INGRESS_BACKEND: Final = Message(_NET + "IngressBackend", {
    4: message("service", Message(_NET + "IngressServiceBackend", {
        1: string("name", keep=True),
        2: message("port", Message(_NET + "ServiceBackendPort", {
            1: string("name"), 2: int32("number")}))})),
    3: message("resource", TYPED_LOCAL_OBJECT_REFERENCE),
})  # fmt: skip
INGRESS: Final = Message(_NET + "Ingress", {
    1: message("metadata", OBJECT_META),
    2: message("spec", Message(_NET + "IngressSpec", {
        4: string("ingressClassName", keep=True), 1: message("defaultBackend", INGRESS_BACKEND),
        2: messages("tls", Message(_NET + "IngressTLS", {
            1: strings("hosts"), 2: string("secretName")})),
        3: messages("rules", Message(_NET + "IngressRule", {
            1: string("host"),
            2: inline(Message(_NET + "IngressRuleValue", {
                1: message("http", Message(_NET + "HTTPIngressRuleValue", {
                    1: messages("paths", Message(_NET + "HTTPIngressPath", {
                        1: string("path"), 3: string("pathType", keep=True),
                        2: message("backend", INGRESS_BACKEND)}))}))}))})),
    })),
    3: message("status", Message(_NET + "IngressStatus", {
        1: message("loadBalancer", Message(_NET + "IngressLoadBalancerStatus", {
            1: messages("ingress", Message(_NET + "IngressLoadBalancerIngress", {
                1: string("ip"), 2: string("hostname"),
                4: messages("ports", Message(_NET + "IngressPortStatus", {
                    1: int32("port", keep=True), 2: string("protocol", keep=True),
                    3: string("error", keep=True)}))}))}))})),
})  # fmt: skip

# -- rbac.authorization.k8s.io/v1 ------------------------------------------------------------------

_RBAC: Final = "k8s.io.api.rbac.v1."
POLICY_RULE: Final = Message(_RBAC + "PolicyRule", {
    1: strings("verbs"), 2: strings("apiGroups"), 3: strings("resources"),
    4: strings("resourceNames"), 5: strings("nonResourceURLs"),
})  # fmt: skip
SUBJECT: Final = Message(_RBAC + "Subject", {
    1: string("kind", keep=True), 2: string("apiGroup"), 3: string("name", keep=True),
    4: string("namespace"),
})  # fmt: skip
ROLE_REF: Final = Message(_RBAC + "RoleRef", {
    1: string("apiGroup", keep=True), 2: string("kind", keep=True), 3: string("name", keep=True),
})  # fmt: skip
ROLE: Final = Message(_RBAC + "Role", {
    1: message("metadata", OBJECT_META), 2: messages("rules", POLICY_RULE),
})  # fmt: skip
CLUSTER_ROLE: Final = Message(_RBAC + "ClusterRole", {
    1: message("metadata", OBJECT_META), 2: messages("rules", POLICY_RULE),
    3: message("aggregationRule", Message(_RBAC + "AggregationRule", {
        1: messages("clusterRoleSelectors", LABEL_SELECTOR)})),
})  # fmt: skip


def _binding(name: str) -> Message:
    return Message(_RBAC + name, {1: message("metadata", OBJECT_META),
                                  2: messages("subjects", SUBJECT),
                                  3: message("roleRef", ROLE_REF)})  # fmt: skip


# -- authorization.k8s.io/v1 -----------------------------------------------------------------------

_AUTHZ: Final = "k8s.io.api.authorization.v1."
SELF_SUBJECT_ACCESS_REVIEW: Final = Message(_AUTHZ + "SelfSubjectAccessReview", {
    1: message("metadata", OBJECT_META),
    2: message("spec", Message(_AUTHZ + "SelfSubjectAccessReviewSpec", {
        1: message("resourceAttributes", Message(_AUTHZ + "ResourceAttributes", {
            1: string("namespace"), 2: string("verb"), 3: string("group"), 4: string("version"),
            5: string("resource"), 6: string("subresource"), 7: string("name"),
            8: message("fieldSelector", Message(_AUTHZ + "FieldSelectorAttributes", {
                1: string("rawSelector"),
                2: messages("requirements", FIELD_SELECTOR_REQUIREMENT)})),
            9: message("labelSelector", Message(_AUTHZ + "LabelSelectorAttributes", {
                1: string("rawSelector"),
                2: messages("requirements", LABEL_SELECTOR_REQUIREMENT)}))})),
        2: message("nonResourceAttributes", Message(_AUTHZ + "NonResourceAttributes", {
            1: string("path"), 2: string("verb")})),
    })),
    3: message("status", Message(_AUTHZ + "SubjectAccessReviewStatus", {
        1: boolean("allowed", keep=True), 4: boolean("denied"), 2: string("reason"),
        3: string("evaluationError")})),
})  # fmt: skip

KINDS: Final[Mapping[tuple[str, str], Message]] = {
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Secret"): SECRET,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("v1", "Service"): SERVICE,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("networking.k8s.io/v1", "Ingress"): INGRESS,
    ("rbac.authorization.k8s.io/v1", "Role"): ROLE,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): CLUSTER_ROLE,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): _binding("RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): _binding("ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW,
}
"""(apiVersion, kind) → the object's message: the kinds whose protobuf bodies are decoded."""

ENVELOPE: Final = Message("k8s.io.apimachinery.pkg.runtime.Unknown", {
    1: message("typeMeta", TYPE_META), 2: Field("raw", "bytes"), 3: string("contentEncoding"),
    4: string("contentType"),
})  # fmt: skip

# -- decoding --------------------------------------------------------------------------------------


def decode_object(data: bytes) -> dict[str, Any]:
    """A ``k8s\\x00``-enveloped protobuf object as its JSON form (apiVersion and kind from the
    envelope). ProtobufError when malformed or holding a field the tables do not know;
    UnsupportedKind when the envelope's kind has no table."""
    if not data.startswith(MAGIC):
        raise ProtobufError("the body does not start with the k8s protobuf magic (k8s\\x00)")
    envelope = decode_message(data[len(MAGIC) :], ENVELOPE, "the envelope")
    type_meta = envelope.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get("contentEncoding") or envelope.get("contentType", MEDIA_TYPE) != MEDIA_TYPE:
        raise ProtobufError(
            f"the envelope's contentEncoding {envelope.get('contentEncoding', '')!r} and "
            f"contentType {envelope.get('contentType', '')!r} are not plain protobuf"
        )
    schema = KINDS.get((api_version, kind))
    if schema is None:
        known = ", ".join(sorted({k for _, k in KINDS}))
        raise UnsupportedKind(
            f"the local Kubernetes API decodes protobuf for {known}; not for "
            f"{kind or '(no kind)'} in {api_version or '(no apiVersion)'}: send it as "
            "application/json"
        )
    obj = decode_message(base64.b64decode(envelope.get("raw", "")), schema, kind)
    return {"kind": kind, "apiVersion": api_version, **obj}


def decode_message(data: bytes, schema: Message, where: str) -> dict[str, Any]:
    """One message's fields as JSON, by ``schema``; ``where`` names it in errors (a JSON path).
    The tables have no cycles, so the nesting is bounded by them."""
    out: dict[str, Any] = {}
    for number, values in _read_fields(data, schema, where).items():
        spec = schema.fields.get(number)
        if spec is None:
            raise ProtobufError(
                f"{where}: field number {number} of {schema.name} is not one the local "
                "Kubernetes API decodes (send the object as application/json)"
            )
        at = f"{where}.{spec.name}" if spec.name else where
        if spec.type == "map":
            out[spec.name] = dict(
                _decode_embedded(value, spec.embedded, f"{at}[{i}]", number)
                for i, value in enumerate(values)
            )
        elif spec.type == "message" and spec.repeated:
            out[spec.name] = [
                _decode_embedded(value, spec.embedded, f"{at}[{i}]", number)
                for i, value in enumerate(values)
            ]
        elif spec.type == "message":
            # A message sent more than once is merged, as protobuf does: decode the bytes joined.
            joined = b"".join(_length_delimited(value, at, number) for value in values)
            decoded = _decode_embedded((_LEN, joined), spec.embedded, at, number)
            if spec.name:
                out[spec.name] = decoded
            else:
                out.update(decoded)
        elif spec.repeated:
            out[spec.name] = [item for value in values for item in _scalars(value, spec, at)]
        else:
            [scalar] = _scalars(values[-1], spec, at)  # the last one wins, as in protobuf
            if spec.keep or scalar not in ("", 0, False):
                out[spec.name] = scalar
    return out


def _decode_embedded(
    value: tuple[int, bytes | int], schema: Message, where: str, number: int
) -> Any:
    decoded = decode_message(_length_delimited(value, where, number), schema, where)
    return schema.to_json(decoded, where) if schema.to_json else decoded


def _length_delimited(value: tuple[int, bytes | int], where: str, number: int) -> bytes:
    wire, payload = value
    if wire != _LEN or not isinstance(payload, bytes):
        raise ProtobufError(f"{where}: field {number} has wire type {wire}, not length-delimited")
    return payload


def _scalars(value: tuple[int, bytes | int], spec: Field, where: str) -> list[Any]:
    wire, payload = value
    if spec.type in ("string", "bytes"):
        if wire != _LEN or not isinstance(payload, bytes):
            raise ProtobufError(
                f"{where}: wire type {wire}, not length-delimited, for a {spec.type}"
            )
        if spec.type == "bytes":
            return [base64.b64encode(payload).decode()]
        try:
            return [payload.decode()]
        except UnicodeDecodeError:
            raise ProtobufError(f"{where}: the string is not UTF-8") from None
    if wire == _LEN and spec.repeated and isinstance(payload, bytes):
        numbers = _varints(payload, where)  # a packed repeated field
    elif wire == _VARINT and isinstance(payload, int):
        numbers = [payload]
    else:
        raise ProtobufError(f"{where}: wire type {wire}, not a varint, for a {spec.type}")
    if spec.type == "bool":
        return [n != 0 for n in numbers]
    bits = 32 if spec.type == "int32" else 64
    # Go sends negative numbers as 64-bit two's complement and keeps the low bits of an int32.
    return [((n & ((1 << bits) - 1)) ^ (1 << (bits - 1))) - (1 << (bits - 1)) for n in numbers]


def _varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError(f"{where}: truncated varint")
        if shift > 63:
            raise ProtobufError(f"{where}: varint longer than 10 bytes")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _varints(data: bytes, where: str) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos, where)
        out.append(value)
    return out


def _read_fields(
    data: bytes, schema: Message, where: str
) -> dict[int, list[tuple[int, bytes | int]]]:
    """The raw fields of one message by number, in order: (wire type, varint or bytes)."""
    fields: dict[int, list[tuple[int, bytes | int]]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos, f"{where} ({schema.name})")
        number, wire = tag >> 3, tag & 7
        value: bytes | int
        if number == 0:
            raise ProtobufError(f"{where} ({schema.name}): field number 0 is invalid")
        if wire == _VARINT:
            value, pos = _varint(data, pos, f"{where} ({schema.name}) field {number}")
        elif wire == _LEN:
            size, pos = _varint(data, pos, f"{where} ({schema.name}) field {number}")
            if pos + size > len(data):
                raise ProtobufError(
                    f"{where} ({schema.name}): field {number} is truncated ({size} bytes "
                    f"announced, {len(data) - pos} left)"
                )
            value, pos = data[pos : pos + size], pos + size
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if pos + size > len(data):
                raise ProtobufError(f"{where} ({schema.name}): field {number} is truncated")
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ProtobufError(
                f"{where} ({schema.name}): field {number} has wire type {wire} (groups are not "
                "used by Kubernetes)"
            )
        fields.setdefault(number, []).append((wire, value))
    return fields
