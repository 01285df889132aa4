"""The whoami format: parsing real whoami output (text and JSON) and our own rendering of it."""

from __future__ import annotations

import json

import pytest

from harness.backends.whoami import (
    WhoamiReply,
    canonical_header_key,
    parse_whoami,
    render_whoami_json,
    render_whoami_text,
    whoami_fields,
    whoami_text_head,
)

# Written by hand from traefik/whoami's whoamiHandler: Fprintln lines ("\n"), then Go's
# Request.Write (CRLF): request line with RequestURI, Host, User-Agent, the rest sorted by key.
REAL_TEXT = (
    b"Name: cheddar\n"
    b"Hostname: cheddar-6d4f8b9c7-x2k9p\n"
    b"IP: 127.0.0.1\n"
    b"IP: ::1\n"
    b"IP: 10.42.0.17\n"
    b"IP: fe80::5c1e:42ff:fe8b:1a2b\n"
    b"RemoteAddr: 10.42.0.9:43512\n"
    b"GET /stripped/path?x=1&y=%20 HTTP/1.1\r\n"
    b"Host: cheeses.minikube\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"X-Forwarded-For: 10.42.0.1\r\n"
    b"X-Forwarded-Host: cheeses.minikube\r\n"
    b"X-Forwarded-Port: 80\r\n"
    b"X-Forwarded-Prefix: /cheddar\r\n"
    b"X-Forwarded-Proto: http\r\n"
    b"X-Forwarded-Server: traefik-5b6c9d-abcde\r\n"
    b"X-Real-Ip: 10.42.0.1\r\n"
    b"\r\n"
)

# Go's json.Encoder of whoami's Data: field order as declared, omitempty, sorted header map,
# HTML-safe escaping (\u0026 for &), newline at the end; Host is not among the headers.
REAL_JSON = (
    b'{"hostname":"wensleydale-7f9c-q8z7w","ip":["127.0.0.1","10.42.0.18"],'
    b'"headers":{"Accept":["application/json"],"User-Agent":["curl/8.5.0"],'
    b'"X-Forwarded-Prefix":["/wensleydale"],"X-Multi":["a","b"]},'
    b'"url":"/api?a=1\\u0026b=2","host":"cheeses.minikube","method":"GET",'
    b'"name":"wensleydale","remoteAddr":"10.42.0.9:51234"}\n'
)


def test_parse_real_whoami_text() -> None:
    reply = parse_whoami(REAL_TEXT, "text/plain; charset=utf-8")
    assert reply.name == "cheddar"
    assert reply.hostname == "cheddar-6d4f8b9c7-x2k9p"
    assert reply.ips == ("127.0.0.1", "::1", "10.42.0.17", "fe80::5c1e:42ff:fe8b:1a2b")
    assert reply.remote_addr == "10.42.0.9:43512"
    assert reply.method == "GET"
    assert reply.path == "/stripped/path?x=1&y=%20"
    assert reply.path_only == "/stripped/path"
    assert reply.query == "x=1&y=%20"
    assert reply.host == "cheeses.minikube"
    assert reply.header("x-forwarded-prefix") == "/cheddar"
    assert reply.header("X-REAL-IP") == "10.42.0.1"
    assert reply.header("host") == "cheeses.minikube"
    assert reply.header("X-Missing") is None
    assert "Host" not in reply.headers
    assert reply.headers["User-Agent"] == ("curl/8.5.0",)


def test_parse_real_whoami_text_without_name_and_with_env_lines() -> None:
    # No WHOAMI_NAME: no Name line. ?env=true appends environment lines after the request.
    body = REAL_TEXT.split(b"\n", 1)[1] + b"PATH=/usr/bin\nHOSTNAME=cheddar-x\n"
    reply = parse_whoami(body)
    assert reply.name is None
    assert reply.hostname == "cheddar-6d4f8b9c7-x2k9p"
    assert reply.header("X-Forwarded-Port") == "80"


def test_parse_real_whoami_json() -> None:
    reply = parse_whoami(REAL_JSON, "application/json")
    assert reply.name == "wensleydale"
    assert reply.hostname == "wensleydale-7f9c-q8z7w"
    assert reply.ips == ("127.0.0.1", "10.42.0.18")
    assert reply.remote_addr == "10.42.0.9:51234"
    assert reply.path == "/api?a=1&b=2"
    assert reply.host == "cheeses.minikube"
    assert reply.header("x-forwarded-prefix") == "/wensleydale"
    assert reply.header_values("x-multi") == ("a", "b")
    assert reply.header("X-Multi") == "a"


def test_json_is_detected_without_content_type_and_empty_fields_are_none() -> None:
    body = json.dumps({"hostname": "h", "url": "/", "method": "GET"}).encode()
    reply = parse_whoami(body)
    assert (reply.name, reply.host, reply.remote_addr, reply.ips) == (None, None, None, ())
    assert dict(reply.headers) == {}


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"404 page not found\n", "text/plain; charset=utf-8", "Hostname"),
        (b"Bad Gateway", None, "Hostname"),
        (b"<html><body>503</body></html>", "text/html", "Hostname"),
        (b"", None, "Hostname"),
        (b"Hostname: h\nIP: 1.2.3.4\n", None, "request line is missing"),
        (b"Hostname: h\nnot a request line\n", None, "request line"),
        (b"Hostname: h\nGET / HTTP/1.1\r\nHost: x\r\n", None, "truncated"),
        (b"Hostname: h\nGET / HTTP/1.1\r\nno colon here\r\n\r\n", None, "Key: value"),
        (b"{not json", None, "invalid JSON"),
        (b"[1, 2]", "application/json", "not an object"),
        (b'{"url": "/", "method": "GET"}', None, "'hostname'"),
        (b'{"hostname": 3, "url": "/", "method": "GET"}', None, "not a string"),
        (b'{"hostname": "h", "url": "/", "method": "GET", "headers": {"A": "x"}}', None, "'A'"),
    ],
)
def test_not_whoami_output_raises_value_error(
    body: bytes, content_type: str | None, reason: str
) -> None:
    with pytest.raises(ValueError, match="not whoami output") as info:
        parse_whoami(body, content_type)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (b"x-forwarded-prefix", b"X-Forwarded-Prefix"),
        (b"X-FORWARDED-FOR", b"X-Forwarded-For"),
        (b"user-agent", b"User-Agent"),
        (b"content-md5", b"Content-Md5"),
        (b"x--y", b"X--Y"),
        (b"foo bar", b"foo bar"),  # not a token: Go leaves it alone
        (b"x-\xe9", b"x-\xe9"),
    ],
)
def test_canonical_header_key_matches_go(raw: bytes, canonical: bytes) -> None:
    assert canonical_header_key(raw) == canonical


def _render(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    head = whoami_text_head("cheddar", "cheddar-0", ["127.0.0.1"], "127.0.0.1:5555")
    return render_whoami_text(head, method, target, headers)


def test_render_text_orders_like_go_and_round_trips() -> None:
    headers = [
        (b"x-forwarded-prefix", b"/cheddar"),
        (b"Host", b"cheese.local"),
        (b"accept-encoding", b"gzip"),
        (b"accept", b"*/*"),
        (b"X-Multi", b"one"),
        (b"user-agent", b"probe/1"),
        (b"x-multi", b"two"),
    ]
    body = _render(b"GET", b"/cheddar/../x?q=%2F", headers)
    lines = body.split(b"\r\n")
    assert lines[0].endswith(b"GET /cheddar/../x?q=%2F HTTP/1.1")
    assert lines[1:3] == [b"Host: cheese.local", b"User-Agent: probe/1"]
    # Sorted by canonical key (a key before its extensions); values of a key keep their order.
    assert lines[3:8] == [
        b"Accept: */*",
        b"Accept-Encoding: gzip",
        b"X-Forwarded-Prefix: /cheddar",
        b"X-Multi: one",
        b"X-Multi: two",
    ]
    assert body.endswith(b"\r\n\r\n")
    reply = parse_whoami(body)
    assert reply == WhoamiReply(
        name="cheddar",
        hostname="cheddar-0",
        ips=("127.0.0.1",),
        remote_addr="127.0.0.1:5555",
        method="GET",
        path="/cheddar/../x?q=%2F",
        host="cheese.local",
        headers=reply.headers,
    )
    assert dict(reply.headers) == {
        "User-Agent": ("probe/1",),
        "Accept": ("*/*",),
        "Accept-Encoding": ("gzip",),
        "X-Forwarded-Prefix": ("/cheddar",),
        "X-Multi": ("one", "two"),
    }


def test_render_text_transfer_headers_like_go() -> None:
    # No User-Agent: Go's Request.Write prints its default one.
    get = parse_whoami(_render(b"GET", b"/", [(b"Host", b"h")]))
    assert get.header("User-Agent") == "Go-http-client/1.1"
    assert get.header("Content-Length") is None
    # POST without a body still gets "Content-Length: 0"; a body length is printed as sent.
    assert parse_whoami(_render(b"POST", b"/", [])).header("Content-Length") == "0"
    sized = parse_whoami(_render(b"PUT", b"/", [(b"content-length", b"12")]))
    assert sized.header("Content-Length") == "12"
    chunked = _render(b"POST", b"/", [(b"Transfer-Encoding", b"chunked")])
    assert b"\r\nTransfer-Encoding: chunked\r\n" in chunked
    assert b"Content-Length" not in chunked
    # HTTP/1.0 without Host: Go prints an empty Host line; the parser reports no host.
    assert parse_whoami(_render(b"GET", b"/", [])).host is None


def test_render_json_round_trips_and_escapes_like_go() -> None:
    body = render_whoami_json(
        name="cheddar",
        hostname="cheddar-1",
        ips=["127.0.0.1"],
        remote_addr="127.0.0.1:4000",
        method=b"GET",
        target=b"/api?a=<b>&c",
        headers=[(b"host", b"h"), (b"x-forwarded-prefix", b"/p"), (b"accept", b"a/b")],
    )
    assert body.endswith(b"}\n")
    assert b"\\u003cb\\u003e\\u0026c" in body
    assert list(json.loads(body)) == [
        "hostname",
        "ip",
        "headers",
        "url",
        "host",
        "method",
        "name",
        "remoteAddr",
    ]
    assert list(json.loads(body)["headers"]) == ["Accept", "X-Forwarded-Prefix"]
    reply = parse_whoami(body)
    assert (reply.name, reply.hostname, reply.path, reply.host) == (
        "cheddar",
        "cheddar-1",
        "/api?a=<b>&c",
        "h",
    )
    assert reply.header("X-Forwarded-Prefix") == "/p"


def test_render_json_omits_empty_fields() -> None:
    data = json.loads(
        render_whoami_json(
            name=None, hostname="h", ips=[], remote_addr="", method=b"GET", target=b"/", headers=[]
        )
    )
    assert data == {"hostname": "h", "url": "/", "method": "GET"}


_REAL_PATH = b"/stripped/path?x=1&y=%20"
_REAL_REPLICA = b"traefik-5b6c9d-abcde"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (REAL_TEXT, (b"cheddar", b"cheddar-6d4f8b9c7-x2k9p", _REAL_PATH, _REAL_REPLICA)),
        (
            REAL_TEXT.split(b"\n", 1)[1],
            (b"", b"cheddar-6d4f8b9c7-x2k9p", _REAL_PATH, _REAL_REPLICA),
        ),
        (
            b"Name: cheddar\nHostname: cheddar-7d9f\nIP: 127.0.0.1\nRemoteAddr: 10.0.0.1:5\n"
            b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-Server: traefik-1\r\n\r\n",
            (b"cheddar", b"cheddar-7d9f", b"/x?y=1", b"traefik-1"),
        ),
        (
            b'{"hostname":"h-1","ip":["127.0.0.1"],"headers":{"X-Forwarded-Server":["t-2"]},'
            b'"url":"/api?q","host":"a","method":"GET","name":"stilton"}\n',
            (b"stilton", b"h-1", b"/api?q", b"t-2"),
        ),
        (b'{"hostname":"h","url":"/","method":"GET"}', (b"", b"h", b"/", b"")),
        # An escaped value (\u0026) is left to the full parser.
        (REAL_JSON, (b"wensleydale", b"wensleydale-7f9c-q8z7w", b"", b"")),
        (b"404 page not found\n", (b"", b"", b"", b"")),
        (b"Name: x\n", (b"", b"", b"", b"")),
        (b"Name: x", (b"", b"", b"", b"")),
        (b"Hostname: trunc", (b"", b"", b"", b"")),
        (b"{}", (b"", b"", b"", b"")),
    ],
)
def test_whoami_fields(body: bytes, expected: tuple[bytes, bytes, bytes, bytes]) -> None:
    assert whoami_fields(body) == expected


@pytest.mark.parametrize("json_form", [False, True])
def test_whoami_fields_agree_with_the_full_parse(json_form: bool) -> None:
    headers = [(b"Host", b"h"), (b"X-Forwarded-Server", b"traefik-0")]
    if json_form:
        body = render_whoami_json(
            name="cheddar",
            hostname="cheddar-0",
            ips=["127.0.0.1"],
            remote_addr="127.0.0.1:5555",
            method=b"GET",
            target=b"/x?q=1",
            headers=headers,
        )
    else:
        body = _render(b"GET", b"/x?q=1", headers)
    parsed = parse_whoami(body)
    assert whoami_fields(body) == (
        (parsed.name or "").encode(),
        parsed.hostname.encode(),
        parsed.path.encode(),
        (parsed.header("X-Forwarded-Server") or "").encode(),
    )
