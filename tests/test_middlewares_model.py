"""The middleware model and the Go regexp translation, without Traefik: parsing and its
refusals (with the field they name), Go's regexp meaning where Python's ``re`` differs, and the
semantics read in Traefik's source (the same ones tests/test_traefik_middlewares.py confirms on
the binary)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness.traefik.goregexp import GoRegexpError, compile_go_regexp
from harness.traefik.middlewares import (
    CONFIRMED_ON,
    INERT_TYPES,
    REFUSED_TYPES,
    AddPrefix,
    Answered,
    Chain,
    ChainRef,
    Forwarded,
    Headers,
    Inert,
    MiddlewareSpecError,
    Redirect,
    RedirectScheme,
    Request,
    StripPrefix,
    Unpredictable,
    apply_middlewares,
    flatten,
    parse_middleware_spec,
)


def _apply(specs: list[dict[str, Any]], target: str, **request: Any) -> Any:
    chain = [parse_middleware_spec(s) for s in specs]
    return apply_middlewares(
        chain, Request(host=request.pop("host", "h.test"), target=target, **request)
    )


# -- Go regexp ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "go_match"),
    [
        ("^/a$", "/a\n", None),  # Python's $ matches before a final newline; Go's does not
        (r"^/\d+", "/\u0663", None),  # Go's \d is ASCII
        (r"\w+", "é", None),
        (r"^/\s", "/\v", None),  # Go's \s has no \v
        (r"\bb", "éb", "b"),  # é is not a word character for Go
        ("(?i)^/k", "/\u212a", "/\u212a"),  # Go folds K (Kelvin sign) like Python
        ("a(?i)b|c", "aB", "aB"),
        ("a(?i)b|C", "c", "c"),  # the flag runs to the end of the group, across |
        ("(?s).", "\n", "\n"),
        (".", "\n", None),
        ("(?m)^b$", "a\nb\nc", "b"),
        ("a{,2}", "a{,2}", "a{,2}"),  # not a Go repetition: literal (Python: a repeated 0..2)
        (r"\Q.*\E+", "..*.*", ".*.*"),
        (r"\x{41}\x42", "AB", "AB"),
        ("(?<year>[0-9]{4})", "in 2024", "2024"),
    ],
)
def test_go_patterns_mean_what_go_means(pattern: str, text: str, go_match: str | None) -> None:
    m = compile_go_regexp(pattern).search(text)
    assert (m.group(0) if m else None) == go_match


def test_the_translation_differs_from_python_where_it_must() -> None:
    # Without the translation these would have matched: the cases above are not vacuous.
    assert re.search("^/a$", "/a\n")
    assert re.search(r"^/\d+", "/\u0663")
    assert re.fullmatch("a{,2}", "aa")


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("a(?=b)", "(?=b"),
        ("a(?!b)", "(?!b"),
        ("(?<=a)b", "(?<="),
        ("(?<!a)b", "(?<!"),
        (r"(a)\1", r"'\1'"),
        ("(?P<n>a)(?P=n)", "(?P="),
        ("(?>a)", "(?>a"),
        ("(?#c)a", "(?#c"),
        ("a*+", "second repetition"),
        ("a**", "second repetition"),
        (r"\pL", r"'\p'"),
        ("[[:alpha:]]", "POSIX"),
        ("(?U)a*", "flag U"),
        (r"[\D]", "negated classes"),
        (r"\Z", r"'\Z'"),
        ("(?P<a>x)(?P<a>y)", "'a'"),
        ("(a", "missing ')'"),
        ("a)", "unbalanced"),
        ("[a", "missing ']'"),
        ("a{1001}", "above 1000"),
        ("(a)*", "repeated group with captures"),
        ("(?:x(?P<n>y)){2}", "repeated group with captures"),
    ],
)
def test_patterns_whose_meaning_could_differ_are_refused_by_construct(
    pattern: str, construct: str
) -> None:
    with pytest.raises(GoRegexpError, match=re.escape(construct)):
        compile_go_regexp(pattern)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$1-$2", "ab-cd"),
        ("${1}x", "abx"),
        ("$1x", ""),  # the group named "1x": none, so empty (Go's rule)
        ("${name}", "cd"),
        ("$name", "cd"),
        ("$$1", "$1"),
        ("$", "$"),  # malformed: literal
        ("${1", "${1"),
        ("$01", ""),  # leading zero: a name, not a number
        ("$9", ""),  # no such group
    ],
)
def test_replacement_templates_follow_go_expand(template: str, expected: str) -> None:
    rx = compile_go_regexp("^(..)(?P<name>..)$")
    assert rx.replace_all("abcd", template) == expected


def test_replace_all_skips_an_empty_match_right_after_a_match_as_go_does() -> None:
    rx = compile_go_regexp("x*")
    assert rx.replace_all("abxd", "-") == "-a-b-d-"
    assert re.sub("x*", "-", "abxd") == "-a-b--d-"  # Python's rule differs


# -- parsing --------------------------------------------------------------------------------


def test_every_modeled_type_parses_to_its_dataclass() -> None:
    assert parse_middleware_spec({"stripPrefix": {"prefixes": [" /a "]}}) == StripPrefix(
        ("/a",), as_written=(" /a ",)
    )
    assert parse_middleware_spec({"addPrefix": {"prefix": "/v1"}}) == AddPrefix("/v1")
    assert parse_middleware_spec(
        {"redirectScheme": {"scheme": "https", "port": "8443", "permanent": True}}
    ) == RedirectScheme("https", "8443", permanent=True)
    assert parse_middleware_spec(
        {"chain": {"middlewares": [{"name": "a"}, {"name": "b", "namespace": "n"}]}}
    ) == Chain((ChainRef("a"), ChainRef("b", "n")))
    headers = parse_middleware_spec(
        {"headers": {"customRequestHeaders": {"X-A": "1"}, "frameDeny": True}}
    )
    assert headers == Headers((("X-A", "1"),), (), cors=False)
    assert parse_middleware_spec({"compress": {}}) == Inert("compress")
    # A set pointer field counts, even at zero, as in Go: the middleware is valid.
    assert parse_middleware_spec({"headers": {"stsSeconds": 0}}) == Headers()


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({}, "", "exactly one type, found 0"),
        ({"addPrefix": {"prefix": "/a"}, "stripPrefix": {"prefixes": ["/"]}}, "", "found 2"),
        ({"stripPrefix": {"prefixes": []}}, "stripPrefix.prefixes", "non-empty list"),
        ({"stripPrefix": {"prefixes": ["/a", 3]}}, "stripPrefix.prefixes[1]", "string"),
        ({"stripPrefix": {"prefix": ["/a"]}}, "stripPrefix.prefix", "not a field"),
        (
            {"stripPrefix": {"prefixes": ["/a"], "forceSlash": "yes"}},
            "stripPrefix.forceSlash",
            "true",
        ),
        ({"stripPrefixRegex": {"regex": ["/a", "(?=x)"]}}, "stripPrefixRegex.regex[1]", "(?=x"),
        ({"addPrefix": {"prefix": ""}}, "addPrefix.prefix", "cannot be empty"),
        ({"replacePathRegex": {"regex": r"(a)\1"}}, "replacePathRegex.regex", "backreference"),
        ({"redirectScheme": {"port": "443"}}, "redirectScheme.scheme", "missing"),
        ({"redirectScheme": {"scheme": "https", "port": 443}}, "redirectScheme.port", "string"),
        ({"headers": {}}, "headers", "sets nothing"),
        ({"headers": {"allowedHosts": ["a"]}}, "headers.allowedHosts", "500"),
        (
            {"headers": {"customRequestHeaders": {"X-Forwarded-For": ""}}},
            "headers.customRequestHeaders.X-Forwarded-For",
            "rewritten",
        ),
        (
            {"headers": {"customRequestHeaders": {"X-A": "1", "x-a": "2"}}},
            "headers.customRequestHeaders.x-a",
            "random",
        ),
        (
            {"headers": {"customResponseHeaders": {"X-A": "a\nb"}}},
            "headers.customResponseHeaders.X-A",
            "control",
        ),
        (
            {"headers": {"customResponseHeaders": {"date": ""}}},
            "headers.customResponseHeaders.date",
            "writes it again",
        ),
        ({"chain": {"middlewares": []}}, "chain.middlewares", "list"),
        ({"chain": {"middlewares": [{"namespace": "n"}]}}, "chain.middlewares[0].name", "missing"),
        ({"buffering": {"maxResponseBodyBytes": 10}}, "buffering.maxResponseBodyBytes", "500"),
        ({"basicAuth": {"users": ["u:p"]}}, "basicAuth", "whether the route answers"),
        ({"stripprefix": {}}, "stripprefix", "not a Middleware type"),
    ],
)
def test_refusals_name_the_field(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(MiddlewareSpecError, match=re.escape(message)) as caught:
        parse_middleware_spec(spec)
    assert caught.value.field_path == field
    assert str(caught.value).startswith(f"spec.{field}")


def test_every_refused_type_is_refused_and_every_inert_one_accepted() -> None:
    for kind in REFUSED_TYPES:
        with pytest.raises(MiddlewareSpecError):
            parse_middleware_spec({kind: {}})
    for kind in INERT_TYPES:
        assert parse_middleware_spec({kind: {}}) == Inert(kind)
    assert CONFIRMED_ON == "3.7.15"


def test_chains_expand_in_order_and_a_cycle_is_refused() -> None:
    specs: dict[str, Any] = {
        "outer": parse_middleware_spec(
            {"chain": {"middlewares": [{"name": "inner"}, {"name": "add"}]}}
        ),
        "inner": parse_middleware_spec({"chain": {"middlewares": [{"name": "strip"}]}}),
        "strip": StripPrefix(("/a",)),
        "add": AddPrefix("/v"),
        "loop": Chain((ChainRef("loop2"),)),
        "loop2": Chain((ChainRef("loop"),)),
    }
    flat = flatten([specs["outer"]], lambda ref: specs[ref.name])
    assert flat == (StripPrefix(("/a",)), AddPrefix("/v"))
    with pytest.raises(MiddlewareSpecError, match="recursion in chain: loop2 -> loop -> loop2"):
        flatten([specs["loop"]], lambda ref: specs[ref.name])
    with pytest.raises(TypeError):
        apply_middlewares([specs["loop"]], Request("h", "/"))


# -- semantics --------------------------------------------------------------------------------


def test_strip_prefix_semantics() -> None:
    strip = {"stripPrefix": {"prefixes": ["/foo"]}}
    assert _apply([strip], "/foo") == Forwarded("/", "h.test", (("X-Forwarded-Prefix", ("/foo",)),))
    assert _apply([strip], "/foobar").target == "/bar"  # character-wise
    assert _apply([strip], "/foo./x") == Answered(
        400, "the path after stripping '/foo', '/./x', is not clean"
    )
    assert _apply([strip], "/bar") == Forwarded("/bar", "h.test")
    # Stripped to nothing, the next middleware sees "" (forceSlash false, the 3.7 default).
    add = {"addPrefix": {"prefix": "/v1"}}
    assert _apply([strip, add], "/foo").target == "/v1"
    forced = {"stripPrefix": {"prefixes": ["/foo"], "forceSlash": True}}
    assert _apply([forced, add], "/foo").target == "/v1/"
    # The raw (escaped) form survives: %2C is not decoded on the way to the backend.
    assert _apply([strip], "/foo/a%2Cb").target == "/a%2Cb"


def test_replace_and_redirect_semantics() -> None:
    rx = {"replacePathRegex": {"regex": "^/foo/(.*)", "replacement": " /bar/$1 "}}
    assert _apply([rx], "/foo/x?q=1") == Forwarded(
        "/bar/x?q=1", "h.test", (("X-Replaced-Path", ("/foo/x",)),)
    )
    assert _apply([{"replacePath": {"path": "/a/../b"}}], "/x").target == "/a/../b"
    bad = {"replacePathRegex": {"regex": "^/foo$", "replacement": "/bad%zz"}}
    assert isinstance(_apply([bad], "/foo"), Answered)
    https = {"redirectScheme": {"scheme": "https"}}
    assert _apply([https], "/p?q", host="h.test:8000") == Redirect(302, "https://h.test/p?q")
    assert _apply([https], "/p", method="POST") == Redirect(307, "https://h.test/p")
    # Already on the target scheme (as X-Forwarded-Proto says): no redirect.
    seen_https = (("X-Forwarded-Proto", "https"),)
    assert isinstance(_apply([https], "/p", headers=seen_https), Forwarded)
    regex = {"redirectRegex": {"regex": "^http://[^/]+/(.*)", "replacement": "/new/$1"}}
    assert _apply([regex], "/a b") == Redirect(302, "/new/a%20b")
    odd = {"redirectRegex": {"regex": ".*", "replacement": "mailto:x"}}
    assert isinstance(_apply([odd], "/p"), Unpredictable)


def test_headers_semantics() -> None:
    headers = {
        "headers": {
            "customRequestHeaders": {"x-set": "v", "X-Gone": "", "Host": "other.test"},
            "customResponseHeaders": {"X-R": "1", "Server": ""},
        }
    }
    out = _apply([headers], "/", headers=(("X-Gone", "client"),))
    assert out == Forwarded(
        "/",
        "other.test",
        (("X-Gone", ()), ("X-Set", ("v",))),
        (("X-R", "1"), ("Server", None)),
    )
    assert out.header("x-set") == ("v",)
    assert out.header("X-Other") is None
    # The earlier headers middleware has the last word on the response, also on a 400.
    first = {"headers": {"customResponseHeaders": {"X-R": "first"}}}
    second = {"headers": {"customResponseHeaders": {"X-R": "second"}}}
    strip = {"stripPrefix": {"prefixes": ["/a"]}}
    answered = _apply([first, second, strip], "/a./x")
    assert isinstance(answered, Answered)
    assert answered.response_headers == (("X-R", "first"),)
