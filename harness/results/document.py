"""The results of a run: every check's verdict and evidence, in one versioned JSON document.

Evidence travels like Hypothesis's statistics: a test records it through the ``evidence``
fixture, the plugin puts it on the test report (``report.harness_evidence``, plain JSON, so it
survives pytest-xdist's report serialisation), and the controller collects the reports into a
``RunResults``, written once at the end of the session. Reports (HTML, terminal) are built from
this document, never from live objects.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Bumped on any incompatible change of the document's shape (see README, "results.json").
SCHEMA_VERSION = 1

#: Outcomes of a check. "undefined": the proxy's behaviour is unspecified (a priority tie);
#: reported, neither passed nor failed.
OUTCOMES = ("passed", "failed", "error", "skipped", "undefined")

#: Keys never written to results (credentials); matched case-insensitively anywhere in evidence.
SECRET_KEYS = frozenset({"token", "password", "authorization", "client-key-data", "kubeconfig"})


@dataclass
class CheckResult:
    """One pytest test as the results document records it."""

    nodeid: str
    kind: str
    outcome: str
    duration: float
    message: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunResults:
    """Everything a report shows about a run."""

    run_id: str
    harness_version: str
    started: float
    finished: float = 0.0
    target: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)

    def add(self, check: CheckResult) -> None:
        self.checks.append(check)

    def counts(self) -> dict[str, int]:
        counted = Counter(c.outcome for c in self.checks)
        return {outcome: counted.get(outcome, 0) for outcome in OUTCOMES}

    def findings(self) -> list[dict[str, Any]]:
        """Every finding once (the same finding may be recorded by several checks)."""
        seen: dict[str, dict[str, Any]] = {}
        for check in self.checks:
            for finding in check.findings:
                seen.setdefault(json.dumps(finding, sort_keys=True), finding)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = redact(
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": self.run_id,
                "harness_version": self.harness_version,
                "started": self.started,
                "finished": self.finished,
                "target": self.target,
                "parameters": self.parameters,
                "counts": self.counts(),
                "findings": self.findings(),
                "checks": sorted((asdict(c) for c in self.checks), key=lambda c: c["nodeid"]),
            }
        )
        return document

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


def load(path: Path) -> dict[str, Any]:
    """Read a results document, refusing one of another schema version."""
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: results schema version {version!r}, this harness reads {SCHEMA_VERSION}"
        )
    return data
