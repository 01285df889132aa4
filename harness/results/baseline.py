"""Comparing a run with a baseline run: what failed anew, what got fixed, what got worse.

A nightly job wants to know what changed since last night, and a release gate wants to fail when
it changed for the worse. Both read two results documents (``harness.results.document``, schema
version 2, and nothing else): the current run and a baseline (``--baseline PATH``, or the newest
earlier run under ``reports/`` with a passing gate, the same target kind and the same parameters:
``choose_baseline``). A baseline of another schema version is refused with a message
saying so; the run is then "not compared".

Checks are matched by pytest node id, which the suites derive from the intent (scenario, probe,
route), so the same check has the same id from run to run. Besides the stored outcomes, the
figures each check stored (``CheckRecord.figures``, computed where the check ran) are compared:

- exact checks (routing, strip, priority) and registration: ``unexpected_answers``, the answers
  that did not match the expectation, summed over the check's probes;
- weighted splits: ``share_deviation`` (largest |observed - declared| share, as a fraction) and
  ``error_rate``;
- gaps (an ingress change under open-loop traffic): ``gap_ms``, ``failed_requests``,
  ``worst_window_error_rate``, ``longest_failing_streak``, ``convergence_ms`` (medians over the
  strategy's runs).

A figure that grew is a *change*; a change that crosses every enabled threshold for its figure is
*worse*, and any worse figure or new failure makes ``Comparison.regressed()`` true (the gate).
Requiring an absolute *and* a relative step for gaps keeps timing noise out of the gate: a gap
going from 2 ms to 5 ms is +150% but nothing to stop a release for, and 2,000 ms to 2,150 ms is
+150 ms but within a repeat's spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from harness.checks.evidence import GATE_FAILING, CheckRecord, Outcome
from harness.errors import ConfigError
from harness.results.document import ResultsDocument, load

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


def check_figures(check: CheckRecord) -> dict[str, float]:
    """The comparable figures of one check, as the check stored them; higher is worse."""
    return {name: float(value) for name, value in check["figures"].items()}


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


def compare(
    current: ResultsDocument,
    baseline: ResultsDocument,
    *,
    thresholds: Thresholds | None = None,
    baseline_path: Path | str | None = None,
) -> Comparison:
    """Compare two results documents (as ``harness.results.document.load`` returns them)."""
    now = {c["nodeid"]: c for c in current["checks"]}
    before = {c["nodeid"]: c for c in baseline["checks"]}
    comparison = Comparison(
        current_run_id=current["run_id"],
        baseline_run_id=baseline["run_id"],
        thresholds=thresholds or Thresholds(),
        baseline_path=None if baseline_path is None else str(baseline_path),
    )
    for nodeid, check in now.items():
        kind, outcome = str(check["kind"]), str(check["outcome"])
        old = before.get(nodeid)
        old_outcome = None if old is None else str(old["outcome"])
        ref = CheckRef(nodeid, kind, outcome, old_outcome)
        if old is None:
            comparison.added += 1
        if outcome in GATE_FAILING:
            if old_outcome in GATE_FAILING:
                comparison.still_failing.append(ref)
            else:
                comparison.new_failures.append(ref)
        elif old_outcome in GATE_FAILING and outcome == Outcome.PASSED:
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
            comparison.missing.append(CheckRef(nodeid, str(old["kind"]), None, str(old["outcome"])))
    return comparison


# -- finding the baseline -----------------------------------------------------------------------


#: How many skipped runs a choice lists by name (the count says the rest).
SKIPPED_LIMIT = 20


@dataclass(frozen=True)
class SkippedRun:
    """An earlier run that was not taken as the baseline, and why."""

    path: str
    run_id: str | None
    reason: str


@dataclass
class BaselineChoice:
    """Which run a comparison uses and why (results.json ``baseline``)."""

    path: Path | None
    run_id: str | None
    how: Literal["given", "newest-passing-same-parameters"]
    skipped: list[SkippedRun] = field(default_factory=list)
    #: Skipped runs beyond ``SKIPPED_LIMIT`` (not listed).
    more_skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": None if self.path is None else str(self.path),
            "run_id": self.run_id,
            "how": self.how,
            "skipped": [asdict(s) for s in self.skipped],
        }

    def summary(self) -> str:
        """One line: which run, and the runs passed over on the way."""
        if self.how == "given":
            head = f"baseline {self.run_id} ({self.path}), as given by --baseline"
        elif self.path is None:
            head = "no earlier run qualifies as the baseline (a passing gate, the same target "
            head += "and parameters)"
        else:
            head = f"baseline {self.run_id}: the newest earlier run with a passing gate and the "
            head += "same target and parameters"
        if not self.skipped:
            return head
        listed = "; ".join(f"{s.run_id or s.path}: {s.reason}" for s in self.skipped)
        more = f"; and {self.more_skipped} more" if self.more_skipped else ""
        return f"{head}; skipped {listed}{more}"


def _candidates(reports_root: Path) -> Iterable[Path]:
    try:
        found = [p for p in reports_root.glob("*/results.json") if p.is_file()]
    except OSError:
        return []
    # Newest first: a run's results.json is written once, when the run ends.
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.parent.name), reverse=True)


def _why_not_comparable(
    candidate: Mapping[str, object], target_kind: str, parameters: dict[str, Any]
) -> str | None:
    """Why an earlier run cannot be the baseline of a run of ``target_kind`` and
    ``parameters`` (None: it can)."""
    gate = candidate.get("gate")
    verdict = gate.get("verdict") if isinstance(gate, dict) else None
    if verdict != "passed":
        return f"its gate {verdict or 'is missing'}, not passed"
    target = candidate.get("target")
    kind = target.get("target") if isinstance(target, dict) else None
    if kind != target_kind:
        return f"target {kind or 'unknown'}, not {target_kind}"
    theirs = candidate.get("parameters")
    theirs = theirs if isinstance(theirs, dict) else {}
    differing = sorted(
        k for k in set(parameters) | set(theirs) if parameters.get(k) != theirs.get(k)
    )
    if differing:
        return "other parameters: " + ", ".join(
            f"{k} {theirs.get(k)!r} (now {parameters.get(k)!r})" for k in differing
        )
    return None


def choose_baseline(
    reports_root: Path, current_run_id: str, *, target_kind: str, parameters: dict[str, Any]
) -> BaselineChoice:
    """The default baseline: the results.json of the newest earlier run under ``reports_root``
    (``reports/<run>/``) with a passing gate, the same target kind (``local``, ``external``)
    and the same parameters (scenarios, manifests, statistical parameters: a regression or a
    run of other parameters never becomes the baseline). The runs passed over on the way are
    listed with the reason. The current run is recognised by its folder name and its run id.
    """
    choice = BaselineChoice(path=None, run_id=None, how="newest-passing-same-parameters")
    for path in _candidates(reports_root):
        if path.parent.name == current_run_id:
            continue
        try:
            candidate = load(path)
        except ConfigError as exc:
            reason: str | None = str(exc).removeprefix(f"{path}: ")
            run_id = None
        else:
            run_id = candidate.get("run_id")
            if run_id == current_run_id:
                continue
            reason = _why_not_comparable(candidate, target_kind, parameters)
        if reason is None:
            choice.path, choice.run_id = path, run_id
            return choice
        if len(choice.skipped) < SKIPPED_LIMIT:
            choice.skipped.append(SkippedRun(str(path), run_id, reason))
        else:
            choice.more_skipped += 1
    return choice


def load_baseline(path: Path) -> ResultsDocument:
    """The baseline given by the user (a results.json or the run folder holding one).

    Raises ConfigError saying what is wrong with it and what to give instead.
    """
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"--baseline {path}: no such file; give a results.json or a reports/<run id>/ folder"
        )
    try:
        return load(file)
    except ConfigError as exc:
        raise ConfigError(f"baseline {exc}; or give --baseline none") from None
