"""The schemas of the served kinds: OpenAPI v3 documents and server-side field validation.

Both come from one source, the typed models of the official ``kubernetes`` client (generated
from the real API server's OpenAPI spec: every field's JSON name, type, description and whether
it is required), plus the strategic-merge keys of the table of kinds. So what ``kubectl``
validates and computes its apply patches against is what this server decodes and merges.

Field validation works like the real server's decoder: an unknown field is dropped with a
warning (``fieldValidation=Warn``, the default), dropped silently (``Ignore``) or refused with
400 BadRequest (``Strict``, what ``kubectl apply`` sends); a value of the wrong JSON type is
always a 400. Custom resources (the Traefik CRDs) have no typed model: like a CRD with
``x-kubernetes-preserve-unknown-fields``, every field is kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from kubernetes.client import models

if TYPE_CHECKING:
    from harness.kubeapi.store import Kind

Obj = dict[str, Any]

PRIMITIVE_SET: Final = "<set>"
"""Merge key meaning: a list of primitives merged as a set (``patchStrategy: merge``)."""
RETAIN_KEYS: Final = "<retainKeys>"
"""Merge key meaning: a map whose patch names the keys to keep (``patchStrategy: retainKeys``),
so that switching a Deployment to Recreate drops its rollingUpdate."""

_META_TYPES: Final = frozenset(
    {
        "ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement", "OwnerReference",
        "ManagedFieldsEntry", "Condition", "Status", "StatusDetails", "StatusCause",
        "DeleteOptions", "Preconditions",
    }
)  # fmt: skip
_META_PACKAGE: Final = "io.k8s.apimachinery.pkg.apis.meta.v1"
_GROUP_PACKAGE: Final[Mapping[str, str]] = {
    "": "core",
    "apps": "apps",
    "autoscaling": "autoscaling",
    "authorization.k8s.io": "authorization",
    "discovery.k8s.io": "discovery",
    "networking.k8s.io": "networking",
    "rbac.authorization.k8s.io": "rbac",
}
_MODEL_NAME = re.compile(r"^(?:[A-Z][a-z]+)?V\d+(?:(?:alpha|beta)\d+)?([A-Z]\w*)$")
_REF = re.compile(r"\b(?:[A-Z][a-z]+)?V\d+\w*")
_SCALARS: Final[Mapping[str, Obj]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int32"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "bytes": {"type": "string", "format": "byte"},
}
_GO_TYPES: Final[Mapping[str, str]] = {
    "str": "string", "int": "int32", "float": "float64", "bool": "bool", "datetime": "v1.Time",
    "date": "string", "bytes": "[]uint8",
}  # fmt: skip


def model_for(kind: Kind) -> type | None:
    """The client's typed model of a built-in kind (None: a custom resource)."""
    if kind.custom:
        return None
    prefix = kind.version[:1].upper() + kind.version[1:]
    for name in (f"{prefix}{kind.kind}", f"Core{prefix}{kind.kind}"):
        model = getattr(models, name, None)
        if model is not None:
            return typing.cast(type, model)
    return None


def _model(name: str) -> type | None:
    return typing.cast("type | None", getattr(models, name, None))


def _short_name(model_name: str) -> str:
    match = _MODEL_NAME.match(model_name)
    return match[1] if match else model_name


@functools.cache
def _fields(model_name: str) -> dict[str, tuple[str, Any, str, bool]]:
    """JSON name → (client type string, annotation, description, required) of a model."""
    model = _model(model_name)
    if model is None:
        return {}
    types: Mapping[str, str] = getattr(model, "openapi_types", {})
    names: Mapping[str, str] = getattr(model, "attribute_map", {})
    declared = getattr(model, "model_fields", {})
    out = {}
    for attr, type_string in types.items():
        info = declared.get(attr)
        description = getattr(info, "description", None) or ""
        required = bool(info is not None and info.is_required())
        annotation = getattr(info, "annotation", None)
        out[names.get(attr, attr)] = (type_string, annotation, description, required)
    return out


def _is_int_or_string(annotation: Any) -> bool:
    args = {getattr(a, "__origin__", a) for a in typing.get_args(annotation)}
    return int in args and str in args


# --------------------------------------------------------------------------------------------
# Field validation.


def check_fields(kind: Kind, obj: Obj) -> tuple[list[str], list[str]]:
    """(unknown field paths, type errors) of ``obj``; unknown fields are removed from it."""
    model = model_for(kind)
    unknown: list[str] = []
    errors: list[str] = []
    if model is not None:
        _check_object(model.__name__, obj, "", unknown, errors)
    return unknown, errors


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_object(
    model_name: str, value: Obj, path: str, unknown: list[str], errors: list[str]
) -> None:
    fields = _fields(model_name)
    for name in list(value):
        spec = fields.get(name)
        if spec is None:
            unknown.append(_join(path, name))
            del value[name]
            continue
        if value[name] is None:
            # Decoded into a Go struct, a null is the zero value: omitted when encoded again
            # (kubectl sends `creationTimestamp: null` in templates; the stored one has none).
            del value[name]
            continue
        type_string, annotation, _, _ = spec
        go_field = f"{_short_name(model_name)}.{_join(path, name)}"
        if type_string == "datetime" and isinstance(value[name], str):
            # metav1.Time: any RFC 3339 form in, seconds in UTC with "Z" out.
            try:
                stamp = datetime.fromisoformat(value[name])
            except ValueError:
                errors.append(
                    f'parsing time "{value[name]}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                    f"(field {go_field})"
                )
                continue
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            value[name] = stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            continue
        _check_value(
            type_string,
            annotation,
            value[name],
            _join(path, name),
            go_field=go_field,
            unknown=unknown,
            errors=errors,
        )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _check_value(
    type_string: str,
    annotation: Any,
    value: Any,
    path: str,
    *,
    go_field: str,
    unknown: list[str],
    errors: list[str],
) -> None:
    if value is None:
        return

    def wrong(go_type: str) -> None:
        errors.append(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field {go_field} of "
            f"type {go_type}"
        )

    if type_string.startswith("List["):
        inner = type_string[5:-1]
        if not isinstance(value, list):
            wrong(f"[]{_GO_TYPES.get(inner, _short_name(inner))}")
            return
        for i, item in enumerate(value):
            _check_value(
                inner, None, item, f"{path}[{i}]", go_field=go_field, unknown=unknown, errors=errors
            )
    elif type_string.startswith("Dict["):
        inner = type_string[type_string.index(",") + 1 : -1].strip()
        if not isinstance(value, dict):
            wrong(f"map[string]{_GO_TYPES.get(inner, _short_name(inner))}")
            return
        if inner != "str":  # Dict[str, str] also holds quantities, which may be numbers
            for key, item in value.items():
                _check_value(
                    inner,
                    None,
                    item,
                    f"{path}[{key}]",
                    go_field=go_field,
                    unknown=unknown,
                    errors=errors,
                )
    elif type_string == "object":
        if _is_int_or_string(annotation) and _json_type(value) not in ("number", "string"):
            wrong("intstr.IntOrString")
    elif type_string in ("int", "float"):
        if _json_type(value) != "number" or (type_string == "int" and value != int(value)):
            wrong(_GO_TYPES[type_string])
    elif type_string == "bool":
        if not isinstance(value, bool):
            wrong("bool")
    elif type_string in _SCALARS:
        if _json_type(value) not in ("string", "number"):
            wrong(_GO_TYPES[type_string])
    elif isinstance(value, dict):
        _check_object(type_string, value, path, unknown, errors)
    else:
        wrong(f"v1.{_short_name(type_string)}")


# --------------------------------------------------------------------------------------------
# OpenAPI v3.


def _schema_names(kinds: Iterable[Kind]) -> dict[str, str]:
    """Client model name → schema name (``io.k8s.api.apps.v1.Deployment``), walking the kinds
    in table order so that a shared type is named after the first group that uses it (core)."""
    names: dict[str, str] = {}

    def walk(model_name: str, package: str) -> None:
        if model_name in names or _model(model_name) is None:
            return
        short = _short_name(model_name)
        names[model_name] = (
            f"{_META_PACKAGE}.{short}" if short in _META_TYPES else f"{package}.{short}"
        )
        for type_string, *_ in _fields(model_name).values():
            for ref in _REF.findall(type_string):
                walk(ref, package)

    for kind in kinds:
        model = model_for(kind)
        if model is not None:
            package = f"io.k8s.api.{_GROUP_PACKAGE.get(kind.group, kind.group)}.{kind.version}"
            walk(model.__name__, package)
    for extra in ("V1Status", "V1DeleteOptions"):
        walk(extra, _META_PACKAGE)
    walk("V1Scale", "io.k8s.api.autoscaling.v1")
    return names


def _merge_keys_by_field(kind: Kind) -> dict[tuple[str, str], str]:
    """(model name, JSON field) → merge key, from the kind's dotted strategic-merge paths."""
    model = model_for(kind)
    out: dict[tuple[str, str], str] = {}
    if model is None:
        return out
    for dotted, key in kind.all_merge_keys().items():
        current = model.__name__
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            spec = _fields(current).get(part)
            if spec is None:
                break
            if i == len(parts) - 1:
                out[(current, part)] = key
                break
            refs = _REF.findall(spec[0])
            if not refs:
                break
            current = refs[0]
    return out


def _ref(schema_name: str) -> Obj:
    return {"allOf": [{"$ref": f"#/components/schemas/{schema_name}"}], "default": {}}


def _property(type_string: str, annotation: Any, names: Mapping[str, str]) -> Obj:
    if type_string.startswith("List["):
        return {"type": "array", "items": _property(type_string[5:-1], None, names)}
    if type_string.startswith("Dict["):
        inner = type_string[type_string.index(",") + 1 : -1].strip()
        return {"type": "object", "additionalProperties": _property(inner, None, names)}
    if type_string == "object":
        if _is_int_or_string(annotation):
            return {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if type_string in _SCALARS:
        return dict(_SCALARS[type_string])
    return _ref(names[type_string]) if type_string in names else {"type": "object"}


def _model_schema(
    model_name: str, names: Mapping[str, str], merge_keys: Mapping[tuple[str, str], str]
) -> Obj:
    properties: Obj = {}
    required = []
    for field_name, (type_string, annotation, description, is_required) in _fields(
        model_name
    ).items():
        prop = _property(type_string, annotation, names)
        if description:
            prop["description"] = description
        key = merge_keys.get((model_name, field_name))
        if key == PRIMITIVE_SET:
            prop["x-kubernetes-patch-strategy"] = "merge"
            prop["x-kubernetes-list-type"] = "set"
        elif key == RETAIN_KEYS:
            prop["x-kubernetes-patch-strategy"] = "retainKeys"
        elif key is not None:
            prop["x-kubernetes-patch-strategy"] = "merge"
            prop["x-kubernetes-patch-merge-key"] = key
            prop["x-kubernetes-list-type"] = "map"
            prop["x-kubernetes-list-map-keys"] = [key]
        properties[field_name] = prop
        if is_required:
            required.append(field_name)
    schema: Obj = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _gvk(kind: Kind) -> Obj:
    return {"group": kind.group, "version": kind.version, "kind": kind.kind}


def _parameter(name: str, where: str = "query", kind: str = "string") -> Obj:
    return {"name": name, "in": where, "schema": {"type": kind, "uniqueItems": True}}


_MUTATING: Final = [_parameter("dryRun"), _parameter("fieldManager"),
                    _parameter("fieldValidation")]  # fmt: skip
_LISTING: Final = [
    _parameter("allowWatchBookmarks", kind="boolean"), _parameter("continue"),
    _parameter("fieldSelector"), _parameter("labelSelector"),
    _parameter("limit", kind="integer"), _parameter("resourceVersion"),
    _parameter("resourceVersionMatch"), _parameter("sendInitialEvents", kind="boolean"),
    _parameter("timeoutSeconds", kind="integer"), _parameter("watch", kind="boolean"),
]  # fmt: skip


def _operation(
    gvk: Obj, action: str, op_id: str, schema: Obj, params: list[Obj], *, body: Obj | None = None
) -> Obj:
    op: Obj = {
        "operationId": op_id,
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema}}}
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body is not None:
        op["requestBody"] = {"content": body, "required": True}
    return op


def _patch_types(kind: Kind) -> list[str]:
    types = ["application/json-patch+json", "application/merge-patch+json"]
    return types if kind.custom else [*types, "application/strategic-merge-patch+json"]


def _paths(kind: Kind, schema_name: str, scale_name: str | None) -> Obj:
    base = f"/apis/{kind.group}/{kind.version}" if kind.group else "/api/v1"
    scope = f"{base}/namespaces/{{namespace}}" if kind.namespaced else base
    op = kind.kind
    gvk = _gvk(kind)
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    list_ref = {"$ref": f"#/components/schemas/{schema_name}List"}
    status = {"$ref": f"#/components/schemas/{_META_PACKAGE}.Status"}
    json_body = {"application/json": {"schema": ref}}
    patch_body = {t: {"schema": {"type": "object"}} for t in _patch_types(kind)}
    path_params = [_parameter("name", "path")] + (
        [_parameter("namespace", "path")] if kind.namespaced else []
    )
    collection_params = path_params[1:]
    collection: Obj = {
        "get": _operation(gvk, "list", f"list{op}", list_ref, _LISTING),
        "post": _operation(gvk, "post", f"create{op}", ref, _MUTATING, body=json_body),
        "parameters": collection_params,
    }
    if kind.deletecollection:
        collection["delete"] = _operation(
            gvk, "deletecollection", f"deleteCollection{op}", status, _LISTING
        )
    item: Obj = {
        "get": _operation(gvk, "get", f"read{op}", ref, []),
        "put": _operation(gvk, "put", f"replace{op}", ref, _MUTATING, body=json_body),
        "patch": _operation(gvk, "patch", f"patch{op}", ref, _MUTATING, body=patch_body),
        "delete": _operation(gvk, "delete", f"delete{op}", status, _MUTATING[:1]),
        "parameters": path_params,
    }
    paths: Obj = {f"{scope}/{kind.plural}": collection, f"{scope}/{kind.plural}/{{name}}": item}
    if kind.namespaced:
        paths[f"{base}/{kind.plural}"] = {
            "get": _operation(gvk, "list", f"list{op}ForAllNamespaces", list_ref, _LISTING)
        }
    if kind.status_subresource:
        paths[f"{scope}/{kind.plural}/{{name}}/status"] = {
            "get": _operation(gvk, "get", f"read{op}Status", ref, []),
            "put": _operation(gvk, "put", f"replace{op}Status", ref, _MUTATING, body=json_body),
            "patch": _operation(gvk, "patch", f"patch{op}Status", ref, _MUTATING, body=patch_body),
            "parameters": path_params,
        }
    if kind.scale_subresource and scale_name is not None:
        scale_kind: Obj = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        scale_ref = {"$ref": f"#/components/schemas/{scale_name}"}
        scale_body = {"application/json": {"schema": scale_ref}}
        paths[f"{scope}/{kind.plural}/{{name}}/scale"] = {
            "get": _operation(scale_kind, "get", f"read{op}Scale", scale_ref, []),
            "put": _operation(
                scale_kind, "put", f"replace{op}Scale", scale_ref, _MUTATING, body=scale_body
            ),
            "patch": _operation(
                scale_kind, "patch", f"patch{op}Scale", scale_ref, _MUTATING, body=patch_body
            ),
            "parameters": path_params,
        }
    if kind.create_only:
        paths = {f"{scope}/{kind.plural}": {"post": collection["post"]}}
    return paths


def _custom_schema(kind: Kind) -> Obj:
    meta = _ref(f"{_META_PACKAGE}.ObjectMeta")
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": meta,
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "x-kubernetes-group-version-kind": [_gvk(kind)],
    }


def group_version_document(
    all_kinds: tuple[Kind, ...], group: str, version: str, server_version: str
) -> Obj:
    """The OpenAPI v3 document of one group/version, as ``/openapi/v3/apis/<g>/<v>`` serves."""
    names = _schema_names(all_kinds)
    kinds = [k for k in all_kinds if (k.group, k.version) == (group, version)]
    wanted = {"V1Status", "V1DeleteOptions", "V1ObjectMeta", "V1ListMeta"}
    merge_keys: dict[tuple[str, str], str] = {}
    for kind in kinds:
        model = model_for(kind)
        if model is not None:
            wanted.add(model.__name__)
            merge_keys.update(_merge_keys_by_field(kind))
        if kind.scale_subresource:
            wanted.add("V1Scale")
    closure: set[str] = set()
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name in closure or _model(name) is None:
            continue
        closure.add(name)
        for type_string, *_ in _fields(name).values():
            pending.extend(_REF.findall(type_string))
    schemas: Obj = {}
    for name in sorted(closure):
        schemas[names[name]] = _model_schema(name, names, merge_keys)
    paths: Obj = {}
    for kind in kinds:
        model = model_for(kind)
        if model is None:
            schema_name = f"{'.'.join(reversed(kind.group.split('.')))}.{kind.version}.{kind.kind}"
            schemas[schema_name] = _custom_schema(kind)
        else:
            schema_name = names[model.__name__]
            schemas[schema_name]["x-kubernetes-group-version-kind"] = [_gvk(kind)]
        schemas[f"{schema_name}List"] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": _ref(f"{_META_PACKAGE}.ListMeta"),
                "items": {"type": "array", "items": _ref(schema_name)},
            },
            "x-kubernetes-group-version-kind": [{**_gvk(kind), "kind": kind.list_kind}],
        }
        paths.update(_paths(kind, schema_name, names["V1Scale"]))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def document_hash(document: Obj) -> str:
    """The hash the real server puts in ``serverRelativeURL`` (SHA-512, upper-case hex)."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(data).hexdigest().upper()
