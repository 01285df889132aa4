"""Who may do what on the local Kubernetes API: a small per-token table, answered like RBAC.

A table maps a bearer token to a user name and a list of rules (verbs, API groups, resources,
namespaces; ``*`` matches all, a resource may name a subresource as ``deployments/scale``).
With a table, a request is allowed when one rule of its token matches; otherwise it gets the
real server's 403 Forbidden, and SelfSubjectAccessReview answers from the same rules. An
unknown token is 401 Unauthorized; a request without a token is ``system:anonymous``, who has
no rules. Discovery, ``/openapi``, ``/version`` and the health endpoints are open to every
user, and every authenticated user may create a SelfSubjectAccessReview, as the default
``system:discovery``, ``system:public-info-viewer`` and ``system:basic-user`` roles allow.

Without a table (the default) every request is allowed, whatever the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from harness.errors import ConfigError
from harness.kubeapi.store import StatusError

ANONYMOUS: Final = "system:anonymous"
VERBS: Final = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class AccessRule:
    """One rule: it allows the request when every one of its four lists matches."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    namespaces: tuple[str, ...] = ()
    """Empty or ``*``: every namespace and the cluster scope."""

    def allows(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        _, _, sub = resource.partition("/")
        return (
            _matches(self.verbs, verb)
            and _matches(self.api_groups, group)
            and (
                _matches(self.resources, resource)
                or (bool(sub) and f"*/{sub}" in self.resources)
                or (not sub and "*" in self.resources)
            )
            and (not self.namespaces or _matches(self.namespaces, namespace))
        )


def _matches(allowed: Sequence[str], value: str) -> bool:
    return "*" in allowed or value in allowed


@dataclass(frozen=True)
class TokenAccess:
    """What one bearer token is: a user name and its rules."""

    user: str
    rules: tuple[AccessRule, ...]

    def allows(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        return any(rule.allows(verb, group, resource, namespace) for rule in self.rules)


class AccessTable:
    """Bearer token → TokenAccess; ``None`` tokens: every request is allowed."""

    def __init__(self, tokens: Mapping[str, TokenAccess] | None = None) -> None:
        self.tokens = dict(tokens) if tokens is not None else None

    @property
    def open(self) -> bool:
        return self.tokens is None

    @staticmethod
    def from_mapping(data: Any, source: str = "access table") -> AccessTable:
        """Read ``{TOKEN: {user: NAME, rules: [{verbs, apiGroups, resources, namespaces}]}}``;
        a malformed entry is a ConfigError naming ``source`` and the field."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: must map bearer tokens to {{user, rules}}")
        tokens: dict[str, TokenAccess] = {}
        for index, (token, entry) in enumerate(data.items()):
            where = f"{source}: token #{index + 1}"  # never the token itself: it is a secret
            if not isinstance(token, str) or not token:
                raise ConfigError(f"{where}: the token must be a non-empty string")
            if not isinstance(entry, Mapping) or not isinstance(entry.get("user"), str):
                raise ConfigError(f"{where}: field `user` must be a string")
            rules = entry.get("rules", [])
            if not isinstance(rules, list):
                raise ConfigError(f"{where}: field `rules` must be a list")
            parsed = []
            for r, rule in enumerate(rules):
                rule_where = f"{where}, rules[{r}]"
                if not isinstance(rule, Mapping):
                    raise ConfigError(f"{rule_where}: must be a mapping")
                unknown = set(rule) - {"verbs", "apiGroups", "resources", "namespaces"}
                if unknown:
                    raise ConfigError(f"{rule_where}: unknown field `{sorted(unknown)[0]}`")
                lists = {}
                for name in ("verbs", "apiGroups", "resources", "namespaces"):
                    value = rule.get(name, [])
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise ConfigError(f"{rule_where}: field `{name}` must be a list of strings")
                    if name != "namespaces" and not value:
                        raise ConfigError(f"{rule_where}: field `{name}` is required")
                    lists[name] = tuple(value)
                bad = [v for v in lists["verbs"] if v != "*" and v not in VERBS]
                if bad:
                    raise ConfigError(
                        f"{rule_where}: field `verbs`: unknown verb {bad[0]!r} (one of "
                        f"{', '.join(VERBS)}, or *)"
                    )
                parsed.append(
                    AccessRule(lists["verbs"], lists["apiGroups"], lists["resources"],
                               lists["namespaces"])
                )  # fmt: skip
            tokens[token] = TokenAccess(entry["user"], tuple(parsed))
        return AccessTable(tokens)

    def authenticate(self, authorization: str | None) -> TokenAccess | None:
        """The caller of a request by its Authorization header; None when the table is open.
        An unknown token is a 401, as from a real server's token authenticator."""
        if self.tokens is None:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if not authorization:
            return TokenAccess(ANONYMOUS, ())
        access = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if access is None:
            raise StatusError(401, "Unauthorized", "Unauthorized")
        return access


def forbidden(
    user: str, *, verb: str, group: str, resource: str, namespace: str, name: str | None
) -> StatusError:
    """The real server's 403 for an RBAC denial."""
    plural = resource.split("/", 1)[0]
    qualified = f"{plural}.{group}" if group else plural
    subject = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return StatusError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API '
        f'group "{group}" {scope}',
        {"name": name or "", "group": group, "kind": plural},
    )


def review(table: AccessTable, caller: TokenAccess | None, body: Any) -> dict[str, Any]:
    """The answer to a SelfSubjectAccessReview ``body`` for ``caller``."""
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise StatusError(
            422,
            "Invalid",
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec: Invalid value: '
            "{}: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    spec = body["spec"]
    attrs = spec.get("resourceAttributes")
    if caller is None:
        status = {"allowed": True, "reason": "the local API has no access table: all allowed"}
    elif attrs is None:
        status = {"allowed": caller.user != ANONYMOUS}
    else:
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource = f"{resource}/{attrs['subresource']}"
        allowed = caller.allows(
            attrs.get("verb", ""), attrs.get("group", ""), resource, attrs.get("namespace", "")
        )
        status = {"allowed": allowed}
        if allowed:
            status["reason"] = f'allowed by the access table for user "{caller.user}"'
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
