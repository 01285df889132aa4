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

#: Keys never written to results (credentials); matched case-insensitively anywhere in evidence.
SECRET_KEYS = frozenset({"token", "password", "authorization", "client-key-data", "kubeconfig"})


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


def gate_of(
    counts: Mapping[str, int], regressions: Sequence[str] = (), problem: str | None = None
) -> Gate:
    """The gate, decided here and nowhere else, from the counts per outcome, the reasons the
    baseline comparison regressed (``Comparison.reasons()``) and the run's ``problem`` (why the
    checks could not run: an error at least)."""
    reasons = [f"checks could not run: {problem}"] if problem else []
    reasons += [
        f"{counts[o]} check(s) {o}" for o in OUTCOMES if o in GATE_FAILING and counts.get(o)
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


def redact(value: Any) -> Any:
    """A copy of ``value`` with credential-like keys replaced by ``"<redacted>"``."""
    if isinstance(value, Mapping):
        return {
            k: "<redacted>" if str(k).lower() in SECRET_KEYS else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
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
