"""Comparing a run with a baseline run: what failed anew, what got fixed, what got worse.

A nightly job wants to know what changed since last night, and a release gate wants to fail when
it changed for the worse. Both read two results documents (``harness/results.py``): the current
run and a baseline (``--baseline PATH``, or the newest other run under ``reports/``).

Checks are matched by pytest node id, which the suites derive from the intent (scenario, probe,
route), so the same check has the same id from run to run. Besides outcomes, a few figures per
check are compared, only those the evidence carries:

- exact checks (routing, strip, priority): ``unexpected_answers``, the answers that did not match
  the expectation, summed over the check's probes;
- weighted splits: ``share_deviation`` (largest |observed - declared| share, as a fraction) and
  ``error_rate``;
- gaps (an ingress change under open-loop traffic): ``gap_ms``, ``failed_requests``,
  ``worst_window_error_rate``, ``longest_failing_streak``, ``convergence_ms``.

A figure that grew is a *change*; a change that crosses every enabled threshold for its figure is
*worse*, and any worse figure or new failure makes ``Comparison.regressed()`` true (the gate).
Requiring an absolute *and* a relative step for gaps keeps timing noise out of the gate: a gap
going from 2 ms to 5 ms is +150% but nothing to stop a release for, and 2,000 ms to 2,150 ms is
+150 ms but within a repeat's spread.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.results.document import SCHEMA_VERSION

#: Outcomes that fail the gate.
FAILING = frozenset({"failed", "error"})

#: How many items of each list ``summary_lines`` prints before "... and N more".
SUMMARY_LIMIT = 10


# -- thresholds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """When a comparison fails the gate. ``None`` disables a threshold.

    A figure that has an absolute and a relative threshold is worse only when its increase
    crosses both (see the module docstring); disable one to use the other alone.
    """

    #: Any check failing now that passed (or did not exist) in the baseline fails the gate.
    new_failures: bool = True
    #: Gaps: the gap grew by more than this many milliseconds ...
    gap_ms: float | None = 100.0
    #: ... and by more than this percentage of the baseline's gap.
    gap_pct: float | None = 50.0
    #: Gaps: failed requests grew by more than this many ...
    failed_requests: float | None = 10.0
    #: ... and by more than this percentage.
    failed_requests_pct: float | None = 50.0
    #: Weighted splits and gaps: an error rate rose by more than this (a fraction: 0.001 = 0.1%).
    error_rate: float | None = 0.001
    #: Weighted splits: the largest share deviation grew by more than this (0.01 = 1 point).
    share_deviation: float | None = 0.01
    #: Exact checks: unexpected answers grew by more than this many.
    unexpected_answers: float | None = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "new_failures":
                if not isinstance(value, bool):
                    raise ConfigError(
                        f"threshold new_failures must be true or false, got {value!r}"
                    )
            elif value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(
                    f"threshold {f.name} must be a number >= 0 (or 'none' to disable it), "
                    f"got {value!r}"
                )

    @classmethod
    def parse(cls, text: str) -> Thresholds:
        """Thresholds from ``"gap_ms=200,gap_pct=25,new_failures=false"`` (unnamed ones keep
        their defaults; ``none`` disables one). Raises ConfigError naming the bad item."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for raw in text.replace(";", ",").split(","):
            item = raw.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip().replace("-", "_"), value.strip().lower()
            if not sep or name not in known:
                raise ConfigError(
                    f"regression threshold {item!r}: expected NAME=VALUE with NAME one of "
                    f"{', '.join(sorted(known))}"
                )
            if name == "new_failures":
                if value not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ConfigError(f"regression threshold {item!r}: use true or false")
                values[name] = value in {"true", "1", "yes"}
            elif value in {"none", "off", ""}:
                values[name] = None
            else:
                try:
                    values[name] = float(value.removesuffix("%").removesuffix("ms"))
                except ValueError:
                    raise ConfigError(
                        f"regression threshold {item!r}: {value!r} is not a number"
                    ) from None
        return cls(**values)

    def limits(self, figure: str) -> tuple[float | None, float | None]:
        """(absolute, percentage) thresholds of ``figure``; (None, None): informational only."""
        return {
            "gap_ms": (self.gap_ms, self.gap_pct),
            "failed_requests": (self.failed_requests, self.failed_requests_pct),
            "error_rate": (self.error_rate, None),
            "worst_window_error_rate": (self.error_rate, None),
            "share_deviation": (self.share_deviation, None),
            "unexpected_answers": (self.unexpected_answers, None),
        }.get(figure, (None, None))

    def exceeded(self, figure: str, before: float, after: float) -> bool:
        """Whether ``figure`` going from ``before`` to ``after`` crosses its thresholds."""
        absolute, pct = self.limits(figure)
        if (absolute is None and pct is None) or not after > before:
            return False
        delta = after - before
        over_absolute = absolute is None or delta > absolute
        # From a baseline of 0 any growth is infinitely many percent.
        over_pct = pct is None or before <= 0 or delta / before * 100.0 > pct
        return over_absolute and over_pct

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- figures of a check -------------------------------------------------------------------------


def observation_matches(item: Mapping[str, Any], obs: Mapping[str, Any]) -> bool | None:
    """Whether one observed answer of an exact evidence item is what the oracle expected.

    Mirrors ``harness.checks.exact`` on the plain JSON: True (expected), False (unexpected), None
    (not judged: an undefined expectation, or a strip check's answer from another backend, which
    the routing check judges). None as well when the evidence lacks what it takes to tell.
    """
    probe = item.get("probe")
    e = probe.get("expectation") if isinstance(probe, Mapping) else None
    if not isinstance(e, Mapping):
        return None
    outcome = e.get("outcome")
    status, backend = obs.get("status"), obs.get("backend")
    if outcome == "not-found":
        return bool(status == 404 and backend is None)
    if outcome == "bad-request":
        return bool(status == 400 and backend is None)
    if outcome != "routed":
        return None
    shares = e.get("shares")
    allowed = {s for s, share in shares.items() if share} if isinstance(shares, Mapping) else set()
    if item.get("aspect") == "strip":
        decided = e.get("decided_by")
        if backend not in allowed or not isinstance(decided, Mapping):
            return None
        return bool(
            obs.get("upstream_path") == decided.get("upstream_path")
            and obs.get("forwarded_prefix") == decided.get("forwarded_prefix")
        )
    return bool(status == 200 and backend in allowed)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _unexpected(item: Mapping[str, Any]) -> float | None:
    if item.get("outcome") == "undefined":
        return None
    observed = item.get("observed")
    if not isinstance(observed, list):
        return None
    total = 0.0
    for obs in observed:
        if not isinstance(obs, Mapping):
            return None
        if observation_matches(item, obs) is False:
            total += _number(obs.get("count")) or 0.0
    return total


def _weights_figures(item: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    verdict = item.get("verdict")
    if isinstance(verdict, Mapping):
        observed, expected = verdict.get("observed"), verdict.get("expected")
        if isinstance(observed, list) and isinstance(expected, list) and observed:
            pairs = [(_number(o), _number(e)) for o, e in zip(observed, expected, strict=False)]
            deviations = [abs(o - e) for o, e in pairs if o is not None and e is not None]
            if deviations:
                out["share_deviation"] = max(deviations)
    check = item.get("error_check")
    if isinstance(check, Mapping) and (rate := _number(check.get("error_rate"))) is not None:
        out["error_rate"] = rate
    return out


#: Figure names of gap evidence, each with the other names (or name.field) it may carry.
_GAP_ALIASES: dict[str, tuple[str, ...]] = {
    "gap_ms": ("gap_ms",),
    "worst_window_error_rate": ("worst_window_error_rate", "worst_window.error_rate"),
    "longest_failing_streak": (
        "longest_failing_streak",
        "longest_streak.requests",
        "longest_streak",
    ),
    "convergence_ms": ("convergence_ms",),
}


def _lookup(figures: Mapping[str, Any], name: str) -> float | None:
    key, _, sub = name.partition(".")
    value = figures.get(key)
    if sub:
        value = value.get(sub) if isinstance(value, Mapping) else None
    return _number(value)


def _gap_figures(figures: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, aliases in _GAP_ALIASES.items():
        found = next((v for v in (_lookup(figures, a) for a in aliases) if v is not None), None)
        if found is not None:
            out[name] = found
    by_class = figures.get("failed_by_class")
    failed = _number(figures.get("failed_requests", figures.get("failed")))
    if failed is not None:
        out["failed_requests"] = failed
    elif isinstance(by_class, Mapping):
        counts = [_number(v) for v in by_class.values()]
        out["failed_requests"] = sum(c for c in counts if c is not None)
    return out


def _own_figures(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A gaps item's (or run's) figures: its "figures", else its own fields."""
    figures = item.get("figures")
    return figures if isinstance(figures, Mapping) else item


def _gaps_figures(item: Mapping[str, Any]) -> dict[str, float]:
    out = _gap_figures(_own_figures(item))
    # Repeats: the median over them, for the figures the item itself does not carry.
    repeats = item.get("repeats", item.get("runs"))
    if isinstance(repeats, list) and repeats:
        per_repeat: dict[str, list[float]] = {}
        for rep in repeats:
            if isinstance(rep, Mapping):
                for name, value in _gap_figures(_own_figures(rep)).items():
                    per_repeat.setdefault(name, []).append(value)
        for name, values in per_repeat.items():
            out.setdefault(name, float(statistics.median(values)))
    return out


def check_figures(check: Mapping[str, Any]) -> dict[str, float]:
    """The comparable figures of one check (see the module docstring); higher is worse."""
    out: dict[str, float] = {}
    unexpected: float | None = None
    for item in check.get("evidence") or []:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "exact":
            n = _unexpected(item)
            if n is not None:
                unexpected = (unexpected or 0.0) + n
        elif kind == "weights":
            for name, value in _weights_figures(item).items():
                out[name] = max(value, out.get(name, value))
        elif kind == "gaps":
            for name, value in _gaps_figures(item).items():
                out[name] = max(value, out.get(name, value))
    if unexpected is not None:
        out["unexpected_answers"] = unexpected
    return out


# -- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRef:
    """A check named in a comparison, with its outcome now and in the baseline."""

    nodeid: str
    kind: str
    outcome: str | None
    baseline_outcome: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FigureChange:
    """A figure of a check that grew (got worse) since the baseline."""

    nodeid: str
    kind: str
    figure: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def pct(self) -> float | None:
        """Relative growth in percent; None when the baseline was 0."""
        return self.delta / self.before * 100.0 if self.before else None

    def describe(self) -> str:
        pct = f", {self.pct:+.0f}%" if self.pct is not None else ""
        return (
            f"{self.nodeid}: {self.figure} {_fmt(self.before)} -> {_fmt(self.after)} "
            f"({self.delta:+.4g}{pct})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "pct": self.pct}


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:.4g}"


@dataclass
class Comparison:
    """The current run against a baseline run."""

    current_run_id: str
    baseline_run_id: str
    thresholds: Thresholds
    baseline_path: str | None = None
    new_failures: list[CheckRef] = field(default_factory=list)
    fixed: list[CheckRef] = field(default_factory=list)
    still_failing: list[CheckRef] = field(default_factory=list)
    #: Checks of the baseline that this run did not have.
    missing: list[CheckRef] = field(default_factory=list)
    #: Checks this run has that the baseline did not.
    added: int = 0
    #: Every figure that grew, whether or not past its threshold.
    changes: list[FigureChange] = field(default_factory=list)

    def worse(self, thresholds: Thresholds | None = None) -> list[FigureChange]:
        """The changes that cross their thresholds (the comparison's own by default)."""
        t = thresholds or self.thresholds
        return [c for c in self.changes if t.exceeded(c.figure, c.before, c.after)]

    def reasons(self, thresholds: Thresholds | None = None) -> list[str]:
        """Why the gate fails on this comparison (empty: it does not)."""
        t = thresholds or self.thresholds
        out = []
        if t.new_failures and self.new_failures:
            out.append(f"{len(self.new_failures)} new failure(s) since run {self.baseline_run_id}")
        worse = self.worse(t)
        if worse:
            out.append(
                f"{len(worse)} figure(s) worse than run {self.baseline_run_id} beyond the "
                "regression thresholds"
            )
        return out

    def regressed(self, thresholds: Thresholds | None = None) -> bool:
        """For the gate: a new failure (unless disabled) or a figure worse beyond thresholds."""
        return bool(self.reasons(thresholds))

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_run_id": self.current_run_id,
            "baseline_run_id": self.baseline_run_id,
            "baseline_path": self.baseline_path,
            "thresholds": self.thresholds.to_dict(),
            "regressed": self.regressed(),
            "reasons": self.reasons(),
            "new_failures": [c.to_dict() for c in self.new_failures],
            "fixed": [c.to_dict() for c in self.fixed],
            "still_failing": [c.to_dict() for c in self.still_failing],
            "missing": [c.to_dict() for c in self.missing],
            "added": self.added,
            "worse": [c.to_dict() for c in self.worse()],
            "changes": [c.to_dict() for c in self.changes],
        }

    def summary_lines(self) -> list[str]:
        """The comparison for the terminal: one screen at most."""
        where = f" ({self.baseline_path})" if self.baseline_path else ""
        lines = [f"compared with run {self.baseline_run_id}{where}"]

        def listing(title: str, items: list[str]) -> None:
            if not items:
                return
            lines.append(f"  {title}: {len(items)}")
            lines.extend(f"    {text}" for text in items[:SUMMARY_LIMIT])
            if len(items) > SUMMARY_LIMIT:
                lines.append(f"    ... and {len(items) - SUMMARY_LIMIT} more")

        listing(
            "new failures",
            [
                f"{c.nodeid} ({c.outcome}; was {c.baseline_outcome or 'absent'})"
                for c in self.new_failures
            ],
        )
        listing("worse", [c.describe() for c in self.worse()])
        listing("fixed", [c.nodeid for c in self.fixed])
        if self.still_failing:
            lines.append(f"  still failing: {len(self.still_failing)}")
        if self.missing:
            lines.append(f"  not run this time: {len(self.missing)}")
        if self.added:
            lines.append(f"  new checks: {self.added}")
        reasons = self.reasons()
        lines.append(
            "  regression gate: " + ("FAILED: " + "; ".join(reasons) if reasons else "passed")
        )
        return lines


def _checks(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    checks = doc.get("checks")
    out: dict[str, Mapping[str, Any]] = {}
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, Mapping) and isinstance(check.get("nodeid"), str):
            out[check["nodeid"]] = check
    return out


def compare(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    *,
    thresholds: Thresholds | None = None,
    baseline_path: Path | str | None = None,
) -> Comparison:
    """Compare two results documents (as ``harness.results.document.load`` returns them)."""
    now, before = _checks(current), _checks(baseline)
    comparison = Comparison(
        current_run_id=str(current.get("run_id", "")),
        baseline_run_id=str(baseline.get("run_id", "")),
        thresholds=thresholds or Thresholds(),
        baseline_path=None if baseline_path is None else str(baseline_path),
    )
    for nodeid, check in now.items():
        kind = str(check.get("kind", ""))
        outcome = str(check.get("outcome", ""))
        old = before.get(nodeid)
        old_outcome = None if old is None else str(old.get("outcome", ""))
        ref = CheckRef(nodeid, kind, outcome, old_outcome)
        if old is None:
            comparison.added += 1
        if outcome in FAILING:
            if old_outcome in FAILING:
                comparison.still_failing.append(ref)
            else:
                comparison.new_failures.append(ref)
        elif old_outcome in FAILING and outcome == "passed":
            comparison.fixed.append(ref)
        if old is None:
            continue
        old_figures = check_figures(old)
        for figure, value in sorted(check_figures(check).items()):
            prior = old_figures.get(figure)
            if prior is not None and value > prior:
                comparison.changes.append(FigureChange(nodeid, kind, figure, prior, value))
    for nodeid, old in before.items():
        if nodeid not in now:
            comparison.missing.append(
                CheckRef(nodeid, str(old.get("kind", "")), None, str(old.get("outcome", "")))
            )
    return comparison


# -- finding the baseline -----------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any] | None:
    """A results document, or None if the file is not one this harness can compare with."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return None
    return data


def _candidates(reports_root: Path) -> Iterable[Path]:
    try:
        found = [p for p in reports_root.glob("*/results.json") if p.is_file()]
    except OSError:
        return []
    # Newest first: a run's results.json is written once, when the run ends.
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.parent.name), reverse=True)


def find_previous(reports_root: Path, current_run_id: str) -> Path | None:
    """The results.json of the newest other run under ``reports_root`` (``reports/<run>/``).

    Unreadable files and documents of another schema version are passed over; the current run is
    recognised by its folder name and by the run id inside.
    """
    for path in _candidates(reports_root):
        if path.parent.name == current_run_id:
            continue
        data = _read(path)
        if data is not None and data.get("run_id") != current_run_id:
            return path
    return None


def load_baseline(path: Path) -> dict[str, Any]:
    """The baseline given by the user (a results.json or the run folder holding one).

    Raises ConfigError saying what is wrong with it and what to give instead.
    """
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"--baseline {path}: no such file; give a results.json or a reports/<run id>/ folder"
        )
    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--baseline {file}: not a readable results document ({exc})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"--baseline {file}: results schema version {version!r}, this harness compares "
            f"version {SCHEMA_VERSION}; use a baseline written by this harness version"
        )
    assert isinstance(data, dict)
    return data
