"""The results of a run: every check's verdict and evidence, in one versioned JSON document.

Evidence travels like Hypothesis's statistics: a check records its verdict through the
``evidence`` fixture, the plugin puts the check's record (``harness.checks.evidence.CheckRecord``)
on the test report (``report.harness_record``, plain JSON, so it survives pytest-xdist's report
serialisation), and the controller collects the records into a ``RunResults``, written once at
the end of the session. Reports (HTML, terminal) and the baseline comparison read this document,
never live objects, and never re-derive a verdict: each check's outcome and comparable figures
are stored in it. ``results.schema.json`` beside this module is its JSON Schema.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, cast

from harness.checks.evidence import GATE_FAILING, OUTCOMES, CheckRecord, FindingRecord, Outcome
from harness.errors import ConfigError

#: Bumped on any incompatible change of the document's shape (see README, "results.json").
SCHEMA_VERSION = 2

#: The JSON Schema of the document, shipped with the package.
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")

#: What names a credential (a key, an environment variable, an option, a header), anywhere in
#: the name and in any case: ``token``, ``GITHUB_TOKEN``, ``--db-password``, ``Authorization``.
SECRET_NAME = (
    r"(?:token|passw(?:or)?d|secret|api[-_]?key|credential|cookie|authoriz(?:ation|e)"
    r"|key-data|private[-_]?key|kubeconfig)"
)
_SECRET_KEY = re.compile(SECRET_NAME, re.IGNORECASE)

#: Key names that are credentials whole (``SECRET_NAME`` matches each of them; the HTML report
#: extends this set for what it shows).
SECRET_KEYS = frozenset({"token", "password", "authorization", "client-key-data", "kubeconfig"})

REDACTED = "<redacted>"

#: A value as a shell or an option writes it: quoted, or up to a space or shell operator.
_VALUE = r"""(?!<redacted>)('[^']*'|"[^"]*"|[^\s'";&|]+)"""

#: Credentials in text, by form: userinfo in a URL; an Authorization (or cookie, API key)
#: header and a bare bearer token; ``--password=x`` / ``--token x``; ``TOKEN=abc`` (an
#: environment assignment, a query parameter).
_SECRET_TEXT = (
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@"), r"\1<redacted>@"),
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token)"
            r"(\s*[:=]\s*)(?:(bearer|basic|digest|token)\s+)?(?!(?:bearer|basic|digest|token)\s)"
            + _VALUE
        ),
        lambda m: f"{m[1]}{m[2]}{m[3] + ' ' if m[3] else ''}{REDACTED}",
    ),
    (
        re.compile(r"(?i)\b(bearer|basic)\s+(?!<redacted>)([A-Za-z0-9._~+/=-]{8,})"),
        r"\1 <redacted>",
    ),
    (re.compile(rf"(?i)(--?[\w-]*{SECRET_NAME}[\w-]*)(=|\s+)" + _VALUE), r"\1\2<redacted>"),
    (re.compile(rf"(?i)\b([\w.-]*{SECRET_NAME}[\w.-]*)=" + _VALUE), r"\1=<redacted>"),
)

#: Credential values known to this process (``register_secrets``), redacted wherever they occur.
_KNOWN_SECRETS: set[str] = set()

#: Shorter values are not redacted by value (it would blank out common words and digits); the
#: forms above still catch them where they are written as credentials.
MIN_SECRET_LENGTH = 6


class Gate(TypedDict):
    """The run's verdict for a release: failed on a failing outcome (``GATE_FAILING``) or a
    regression against the baseline; error when no check failed but one could not be judged, or
    none ran."""

    verdict: Literal["passed", "failed", "error"]
    reasons: list[str]


class ResultsDocument(TypedDict):
    """results.json (``results.schema.json`` describes the same shape)."""

    schema_version: int
    run_id: str
    harness_version: str
    started: float
    finished: float
    target: dict[str, Any]
    parameters: dict[str, Any]
    #: Checks per outcome, every outcome present.
    counts: dict[str, int]
    #: Every finding of the run once.
    findings: list[FindingRecord]
    checks: list[CheckRecord]
    gate: Gate
    #: The comparison with the baseline (``harness.results.baseline.Comparison.to_dict``), or
    #: None when there was none.
    comparison: dict[str, Any] | None
    #: Why the run was not compared with a baseline it had (None: it was, or had none).
    baseline_problem: str | None
    #: Why the checks could not run (the first error that kept them all from running: the
    #: stack did not start, the proxy does not answer; or how pytest ended early), else None.
    problem: NotRequired[str | None]
    #: Which run the comparison used and why (``harness.results.baseline.BaselineChoice``).
    baseline: NotRequired[dict[str, Any] | None]
    #: Ingresses written for ingress-nginx: every annotation and its fate on Traefik's NGINX
    #: provider (``AnnotationFate.to_dict`` with its ``scenario``); absent when there are none.
    migration: NotRequired[list[dict[str, Any]]]


def outcome_reason(outcome: Outcome, n: int) -> str:
    """The gate's reason for ``n`` checks of a gate-failing ``outcome``."""
    return f"{n} check(s) {outcome}"


def gate_of(
    counts: Mapping[str, int], regressions: Sequence[str] = (), problem: str | None = None
) -> Gate:
    """The gate, decided here and nowhere else, from the counts per outcome, the reasons the
    baseline comparison regressed (``Comparison.reasons()``) and the run's ``problem`` (why the
    checks could not run: an error at least)."""
    reasons = [f"checks could not run: {problem}"] if problem else []
    reasons += [
        outcome_reason(o, counts[o]) for o in OUTCOMES if o in GATE_FAILING and counts.get(o)
    ]
    ran = sum(counts.values())
    if not ran:
        reasons.append("no checks ran")
    reasons.extend(regressions)
    if counts.get(Outcome.FAILED) or counts.get(Outcome.INVALID) or regressions:
        return Gate(verdict="failed", reasons=reasons)
    if counts.get(Outcome.ERROR) or not ran or problem:
        return Gate(verdict="error", reasons=reasons)
    return Gate(verdict="passed", reasons=reasons)


def count_outcomes(checks: Iterable[CheckRecord]) -> dict[str, int]:
    counted = Counter(str(c["outcome"]) for c in checks)
    return {str(outcome): counted.get(outcome, 0) for outcome in OUTCOMES}


@dataclass
class RunResults:
    """Everything a report shows about a run: the records of its checks, as they came."""

    run_id: str
    harness_version: str
    started: float
    finished: float = 0.0
    target: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckRecord] = field(default_factory=list)
    problem: str | None = None

    def add(self, check: CheckRecord) -> None:
        """Add a check's record; a second record of the same check (its teardown failed) makes
        it an error, unless it already failed the gate, and adds its message."""
        for i, known in enumerate(self.checks):
            if known["nodeid"] == check["nodeid"]:
                merged = CheckRecord(**known)
                if Outcome(known["outcome"]) not in GATE_FAILING:
                    merged["outcome"] = check["outcome"]
                    merged["summary"] = check["summary"]
                merged["message"] = f"{known['message']}\n\n{check['message']}".strip()
                merged["duration"] = known["duration"] + check["duration"]
                self.checks[i] = merged
                return
        self.checks.append(check)

    def counts(self) -> dict[str, int]:
        return count_outcomes(self.checks)

    def findings(self) -> list[FindingRecord]:
        """Every finding once (the same finding may be recorded by several checks)."""
        seen: dict[str, FindingRecord] = {}
        for check in self.checks:
            for finding in check["findings"]:
                seen.setdefault(json.dumps(finding, sort_keys=True), finding)
        return list(seen.values())

    def to_dict(self) -> ResultsDocument:
        counts = self.counts()
        document = ResultsDocument(
            schema_version=SCHEMA_VERSION,
            run_id=self.run_id,
            harness_version=self.harness_version,
            started=self.started,
            finished=self.finished,
            target=self.target,
            parameters=self.parameters,
            counts=counts,
            findings=self.findings(),
            checks=sorted(self.checks, key=lambda c: c["nodeid"]),
            gate=gate_of(counts, problem=self.problem),
            comparison=None,
            baseline_problem=None,
            problem=self.problem,
            baseline=None,
        )
        return cast(ResultsDocument, redact(document))

    def write(self, path: Path) -> Path:
        return write_document(self.to_dict(), path)


def write_document(document: Mapping[str, Any], path: Path) -> Path:
    """Write a results document atomically (a reader never sees half of it); credentials are
    redacted once more on the way out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(redact(document), indent=1) + "\n", "utf-8")
    os.replace(tmp, path)
    return path


def register_secrets(values: Iterable[str]) -> None:
    """Credential values to redact wherever they occur from now on (in this process)."""
    _KNOWN_SECRETS.update(v for v in values if len(v) >= MIN_SECRET_LENGTH)


def secrets_in_environment(environ: Mapping[str, str]) -> list[str]:
    """The values of environment variables named like credentials (``API_TOKEN``,
    ``DB_PASSWORD``): a change command inherits them, and may print them."""
    return [value for name, value in environ.items() if _SECRET_KEY.search(name) and value]


def secrets_in_text(text: str) -> list[str]:
    """The credential values ``text`` writes (a URL's userinfo, ``TOKEN=abc``, ``--password x``,
    ``Authorization: Bearer ...``): to redact by value where they turn up without their name
    (a command echoing its token)."""
    userinfo = [m[0].split("://", 1)[1][:-1] for m in _SECRET_TEXT[0][0].finditer(text)]
    found = userinfo + [u.partition(":")[2] for u in userinfo]
    for pattern, _ in _SECRET_TEXT[1:]:
        found += [m[m.lastindex or 0].strip("'\"") for m in pattern.finditer(text)]
    return [v for v in found if v and v != REDACTED]


def redact_text(text: str) -> str:
    """``text`` with every credential replaced by ``<redacted>``: the known values
    (``register_secrets``), then every form ``_SECRET_TEXT`` recognises."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of credential-like keys replaced by ``"<redacted>"``
    and credentials in every string redacted (``redact_text``)."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def load(path: Path) -> ResultsDocument:
    """Read a results document. Raises ConfigError naming the file when it is not one, or is of
    another schema version (saying what to do)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable results document ({exc})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: results schema version {version!r}, but this harness reads version "
            f'{SCHEMA_VERSION} only (see README, "results.json"); run the suites again with '
            "this harness to get a results.json it can read"
        )
    return cast(ResultsDocument, data)
