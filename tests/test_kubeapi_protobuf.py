"""The protobuf decoder of the local Kubernetes API (harness/kubeapi/protobuf.py).

A body kubectl 1.32 sent must decode to the JSON kubectl itself prints for the same object;
bodies built here field by field check Go's JSON rules (omitempty zeros, pointers, inlined
structs, Time, IntOrString, Quantity, bytes), and every malformed or unknown part is refused
with an error naming where, by the decoder and as a 400 (or 415) from the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.kubeapi.protobuf import (
    MAGIC,
    MEDIA_TYPE,
    ProtobufError,
    UnsupportedKind,
    decode_object,
)
from harness.kubeapi.server import KubeAPIServer

# kubectl 1.32 `create deployment w2 --image=traefik/whoami --replicas=3 --port=80 --
# /bin/sh -c echo`, as it POSTs it (captured from the wire).
KUBECTL_DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412d2010a1d0a02773212001a0022002a00"
    "3200380042005a090a036170701202773212a2010803120b0a090a03617070120277321a88010a1b0a001200"
    "1a0022002a003200380042005a090a03617070120277321269124b0a0677686f616d69120e7472616566696b"
    "2f77686f616d691a072f62696e2f73681a022d631a046563686f2a00320a0a001000185022002a0042006a00"
    "7200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c201002202"
    "0a00280038001a0c0800100018002000280038001a002200"
)
# What `kubectl create deployment ... --dry-run=client -o json` prints for the same command.
KUBECTL_DEPLOYMENT_JSON = {
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {"name": "w2", "creationTimestamp": None, "labels": {"app": "w2"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "w2"}},
        "template": {
            "metadata": {"creationTimestamp": None, "labels": {"app": "w2"}},
            "spec": {
                "containers": [
                    {
                        "name": "whoami",
                        "image": "traefik/whoami",
                        "command": ["/bin/sh", "-c", "echo"],
                        "ports": [{"containerPort": 80}],
                        "resources": {},
                    }
                ]
            },
        },
        "strategy": {},
    },
    "status": {},
}


# -- a minimal protobuf writer, to build bodies field by field ------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as 64-bit two's complement, as Go sends them
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def num(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def ld(number: int, *parts: bytes | str) -> bytes:
    """A length-delimited field: a string, bytes, or a message of the parts joined."""
    data = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ld(number, ld(1, key), ld(2, value))


def envelope(api_version: str, kind: str, *fields: bytes, extra: bytes = b"") -> bytes:
    return MAGIC + ld(1, ld(1, api_version), ld(2, kind)) + ld(2, *fields) + extra


def name_meta(name: str, *more: bytes) -> bytes:
    return ld(1, ld(1, name), *more)


# -- decoding ------------------------------------------------------------------------------------


def test_kubectls_deployment_body_decodes_to_kubectls_json() -> None:
    assert decode_object(KUBECTL_DEPLOYMENT) == KUBECTL_DEPLOYMENT_JSON


def test_object_meta_fields() -> None:
    meta = name_meta(
        "web",
        ld(2, "web-"),
        ld(3, "shop"),
        num(7, 0),  # generation: omitempty, the zero is left out
        ld(8, num(1, 1_700_000_000)),
        num(10, 0),  # deletionGracePeriodSeconds is a pointer: its zero is kept
        entry(11, "app", "web"),
        entry(11, "tier", "front"),
        entry(12, "note", ""),
        ld(13, ld(5, "apps/v1"), ld(1, "ReplicaSet"), ld(3, "web-1"), ld(4, "u-1"), num(6, 1)),
        ld(14, "example.com/keep"),
        ld(14, "example.com/other"),
    )
    obj = decode_object(envelope("v1", "ConfigMap", meta, entry(2, "a", "b"), num(4, 1)))
    assert obj == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": "web",
            "generateName": "web-",
            "namespace": "shop",
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": ""},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u-1",
                 "controller": True}
            ],
            "finalizers": ["example.com/keep", "example.com/other"],
        },
        "data": {"a": "b"},
        "immutable": True,
    }  # fmt: skip


def test_secret_bytes_are_base64_as_in_json() -> None:
    obj = decode_object(
        envelope("v1", "Secret", name_meta("s"), entry(2, "key", b"\x00\xffb"), ld(3, "Opaque"))
    )
    assert obj["data"] == {"key": "AP9i"} and obj["type"] == "Opaque"


def test_service_ports_int_or_string_and_zero_rules() -> None:
    port = ld(1, ld(1, "http"), ld(2, "TCP"), num(3, 0), ld(4, num(1, 1), ld(3, "web")), num(5, 0))
    spec = ld(2, port, entry(2, "app", "web"), ld(4, "ClusterIP"), num(13, 0), ld(17, ""))
    obj = decode_object(envelope("v1", "Service", name_meta("web"), spec))
    # port has no omitempty (kept at 0), nodePort and publishNotReadyAddresses are omitempty,
    # ipFamilyPolicy is a pointer (kept empty), targetPort a string IntOrString.
    assert obj["spec"] == {
        "ports": [{"name": "http", "protocol": "TCP", "port": 0, "targetPort": "web"}],
        "selector": {"app": "web"},
        "type": "ClusterIP",
        "ipFamilyPolicy": "",
    }


def test_pod_template_fields() -> None:
    container = ld(
        2,
        ld(1, "app"),
        ld(2, "traefik/whoami"),
        ld(4, "--port"),
        ld(4, "8080"),
        ld(6, num(3, 8080), ld(4, "TCP")),
        ld(7, ld(1, "MODE"), ld(2, "x")),
        ld(7, ld(1, "FROM"), ld(3, ld(3, ld(1, ld(1, "cm")), ld(2, "k")))),  # inlined name
        ld(8, entry(1, "cpu", ld(1, "100m")), entry(2, "memory", ld(1, "50Mi"))),
        ld(11, ld(1, ld(2, ld(1, "/health"), ld(2, num(2, 8080)))), num(4, 5)),
        ld(14, "IfNotPresent"),
    )
    pod_spec = ld(
        2,
        container,
        ld(1, ld(1, "data"), ld(2, ld(2, ld(1, "Memory")))),  # Volume with an inlined emptyDir
        num(4, 30),
        ld(14, num(2, -1), ld(4, varint(1) + varint(2))),  # runAsUser -1, packed groups
    )
    template = ld(3, name_meta(""), pod_spec)
    deployment = envelope("apps/v1", "Deployment", name_meta("web"), ld(2, num(1, 0), template))
    spec = decode_object(deployment)["spec"]
    assert spec["replicas"] == 0  # a pointer: an explicit 0 stays
    assert spec["template"]["metadata"] == {}
    assert spec["template"]["spec"] == {
        "containers": [
            {
                "name": "app",
                "image": "traefik/whoami",
                "args": ["--port", "8080"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "x"},
                    {"name": "FROM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                ],
                "resources": {"limits": {"cpu": "100m"}, "requests": {"memory": "50Mi"}},
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                   "periodSeconds": 5},
                "imagePullPolicy": "IfNotPresent",
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}],
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsUser": -1, "supplementalGroups": [1, 2]},
    }  # fmt: skip


def test_ingress_rules_inline_their_value() -> None:
    backend = ld(2, ld(4, ld(1, "web"), ld(2, ld(1, "http"))))
    rule = ld(3, ld(1, "a.test"), ld(2, ld(1, ld(1, ld(1, "/"), ld(3, "Prefix"), backend))))
    obj = decode_object(envelope("networking.k8s.io/v1", "Ingress", name_meta("i"),
                                 ld(2, ld(4, "traefik"), rule)))  # fmt: skip
    assert obj["spec"] == {
        "ingressClassName": "traefik",
        "rules": [{"host": "a.test", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}],
    }  # fmt: skip


def test_repeated_message_merges_and_last_scalar_wins() -> None:
    # Protobuf merges a message sent twice and keeps the last of a scalar sent twice.
    meta = ld(1, ld(1, "first"), entry(11, "a", "1")) + ld(1, ld(1, "second"), entry(11, "b", "2"))
    obj = decode_object(envelope("v1", "Namespace", meta))
    assert obj["metadata"] == {"name": "second", "labels": {"a": "1", "b": "2"}}


def test_self_subject_access_review() -> None:
    attrs = ld(1, ld(1, "shop"), ld(2, "create"), ld(3, "apps"), ld(5, "deployments"))
    obj = decode_object(envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview",
                                 ld(1), ld(2, attrs)))  # fmt: skip
    attributes = {"namespace": "shop", "verb": "create", "group": "apps", "resource": "deployments"}
    assert obj["spec"] == {"resourceAttributes": attributes}


def test_unknown_field_number_is_refused_naming_message_and_where() -> None:
    container = ld(2, ld(1, "app"), ld(2, "img"), num(99, 1))
    body = envelope("apps/v1", "Deployment", name_meta("web"),
                    ld(2, ld(3, ld(2, container))))  # fmt: skip
    with pytest.raises(ProtobufError) as refused:
        decode_object(body)
    assert str(refused.value).startswith(
        "Deployment.spec.template.spec.containers[0]: field number 99 of "
        "k8s.io.api.core.v1.Container is not one the local Kubernetes API decodes"
    )
    with pytest.raises(ProtobufError, match=r"field number 7 of k8s.io.api.core.v1.Namespace"):
        decode_object(envelope("v1", "Namespace", name_meta("ns"), ld(7, "x")))
    with pytest.raises(ProtobufError, match=r"field number 9 of .*runtime.Unknown"):
        decode_object(envelope("v1", "Namespace", name_meta("ns"), extra=num(9, 1)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "magic"),
        (b"{}", "magic"),
        (MAGIC + b"\x0a", "truncated varint"),
        (MAGIC + b"\x0a\x05ab", "field 1 is truncated (5 bytes announced, 2 left)"),
        (MAGIC + b"\x0b", "wire type 3"),
        (MAGIC + b"\x02\x00", "field number 0"),
        (MAGIC + b"\xff" * 11, "varint longer than 10 bytes"),
        (envelope("v1", "Namespace", ld(1, num(1, 5))), "not length-delimited, for a string"),
        (envelope("v1", "Namespace", ld(1, ld(1, b"\xff"))), "not UTF-8"),
        (envelope("v1", "Namespace", num(1, 3)), "wire type 0, not length-delimited"),
        (envelope("v1", "Namespace", ld(1, ld(7, "x"))), "not a varint, for a int64"),
        (envelope("v1", "Namespace", extra=ld(3, "gzip")), "contentEncoding 'gzip'"),
        (envelope("v1", "Service", ld(2, ld(1, ld(4, num(1, 2))))), "IntOrString type 2"),
        (envelope("v1", "Namespace", ld(1, ld(8, num(1, 1 << 60)))), "out of range"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError) as refused:
        decode_object(body)
    assert message in str(refused.value)


def test_kind_without_a_table_is_unsupported() -> None:
    with pytest.raises(UnsupportedKind, match=r"not for Pod in v1: send it as application/json"):
        decode_object(envelope("v1", "Pod", name_meta("p")))


# -- through the server ----------------------------------------------------------------------------


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with KubeAPIServer() as srv, httpx.Client(base_url=srv.url, timeout=10.0) as session:
        yield session


def post(http: httpx.Client, path: str, body: bytes) -> httpx.Response:
    headers = {"Content-Type": MEDIA_TYPE, "Accept": f"{MEDIA_TYPE},application/json"}
    return http.post(path, content=body, headers=headers)


def test_server_creates_from_protobuf_and_answers_json(http: httpx.Client) -> None:
    created = post(http, "/apis/apps/v1/namespaces/default/deployments", KUBECTL_DEPLOYMENT)
    assert created.status_code == 201 and created.headers["Content-Type"] == "application/json"
    stored = http.get("/apis/apps/v1/namespaces/default/deployments/w2").json()
    assert stored["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "/bin/sh", "-c", "echo"
    ]  # fmt: skip
    assert stored["spec"]["replicas"] == 3 and stored["metadata"]["labels"] == {"app": "w2"}


def test_server_refuses_bad_protobuf_with_status(http: httpx.Client) -> None:
    unknown = envelope("v1", "ConfigMap", name_meta("cm"), ld(9, "x"))
    refused = post(http, "/api/v1/namespaces/default/configmaps", unknown)
    assert refused.status_code == 400
    status: dict[str, Any] = refused.json()
    assert status["reason"] == "BadRequest"
    assert "field number 9 of k8s.io.api.core.v1.ConfigMap" in status["message"]
    malformed = post(http, "/api/v1/namespaces/default/configmaps", MAGIC + b"\x0a\x7f")
    assert malformed.status_code == 400 and "truncated" in malformed.json()["message"]
    pod = post(http, "/api/v1/namespaces/default/pods", envelope("v1", "Pod", name_meta("p")))
    assert pod.status_code == 415 and pod.json()["reason"] == "UnsupportedMediaType"
    # The kind in the envelope must match the URL's, as with JSON.
    wrong = post(http, "/api/v1/namespaces", envelope("v1", "ConfigMap", name_meta("cm")))
    assert (
        wrong.status_code == 400 and "does not match the expected kind" in wrong.json()["message"]
    )
    # Nothing was stored by the refused requests, and the server still answers.
    listed = json.loads(http.get("/api/v1/namespaces/default/configmaps").content)
    assert listed["items"] == []
