"""Whether a request meets a route's conditions besides host and path: headers, query
parameters, the method and cookies (:class:`harness.intent.model.RequestCondition`).

The request is read as Go's ``net/http`` reads it, since that is what Traefik's matchers look
at: header names case-insensitively, every value of a repeated header; the query by
``url.ParseQuery`` (``&``-separated, ``+`` is a space, a pair with a ``;`` or a malformed escape
is dropped, as ``URL.Query()`` drops it); cookies from every ``Cookie`` header, ``name=value``
pairs separated by ``;``. A ``regex`` condition is Go's ``regexp.MatchString``: found anywhere
in the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote_plus

from harness.intent.model import RequestCondition
from harness.traefik.goregexp import cached_go_regexp

__all__ = ["condition_met", "conditions_met", "parse_cookies", "parse_query"]

_HEX = frozenset("0123456789abcdefABCDEF")


def _valid_escapes(s: str) -> bool:
    i = s.find("%")
    while i != -1:
        if len(s) < i + 3 or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
            return False
        i = s.find("%", i + 3)
    return True


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """``url.ParseQuery``'s pairs in order, without the ones it rejects."""
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part or ";" in part:
            continue
        key, _, value = part.partition("=")
        if not (_valid_escapes(key) and _valid_escapes(value)):
            continue
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def parse_cookies(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (name, value) pairs of every ``Cookie`` header, in order."""
    out: list[tuple[str, str]] = []
    for key, value in headers:
        if key.lower() != "cookie":
            continue
        for part in value.split(";"):
            name, eq, val = part.strip().partition("=")
            if name and eq:
                out.append((name, val.strip('"')))
    return out


def _value_met(condition: RequestCondition, values: Sequence[str]) -> bool:
    if condition.match == "exact":
        return condition.value in values
    regexp = cached_go_regexp(condition.value)
    return any(regexp.search(v) for v in values)


def condition_met(
    condition: RequestCondition,
    method: str,
    headers: Sequence[tuple[str, str]],
    raw_query: str,
) -> bool:
    """Whether a request with ``method``, ``headers`` (as sent) and the query ``raw_query``
    (after the ``?``, undecoded) meets ``condition``."""
    if condition.kind == "method":
        return _value_met(condition, [method])
    if condition.kind == "header":
        name = condition.name.lower()
        return _value_met(condition, [v for k, v in headers if k.lower() == name])
    if condition.kind == "query":
        return _value_met(condition, [v for k, v in parse_query(raw_query) if k == condition.name])
    return _value_met(condition, [v for k, v in parse_cookies(headers) if k == condition.name])


def conditions_met(
    conditions: Sequence[RequestCondition],
    method: str,
    headers: Sequence[tuple[str, str]],
    raw_query: str,
) -> bool:
    """Whether the request meets every one of ``conditions`` (True for none)."""
    return all(condition_met(c, method, headers, raw_query) for c in conditions)
