"""Two runs compared per probe and per figure, each difference classified.

The gate answers "does anything behave differently?" between a run *before* (the Traefik we run,
or the manifests we have) and a run *after* (the next Traefik, or the new manifests). It reads
the two results documents only (schema version 2) and compares:

- **probes**: every probe of the exact checks (routing, strip, priority) and of the registration
  steps, by scenario and probe id: the kinds of answer it got (status, backend Service, the path
  and X-Forwarded-Prefix the backend saw, the other request headers it received, transport
  errors), not which instance answered nor how often (balancing, not behaviour);
- **findings** that appear or disappear;
- **weighted splits**: the counts per backend of the two runs, by a chi-square test of
  homogeneity at the run's alpha split over the gate's splits (``homogeneity_test``);
- **gap figures** per strategy (gap ms, failed requests) over the repeats, by an exact
  Mann-Whitney test at ``GAP_ALPHA`` and a step worth a release decision (the baseline's
  thresholds): a difference only where the repeats of one run lie beyond the other's spread.

Each difference is classified:

- ``expected``: the oracle predicts it. Upgrade mode: the expectation recorded in the after run
  differs from the before run's the same way, and each run answered as its own oracle predicts
  (the oracle models each version: harness.traefik.versions ``BEHAVIOUR_CHANGES``). Change
  mode: the oracle's diff of the two intents
  (``route_changes``: routes added, removed, moved to another backend, re-weighted,
  re-prioritised, rule or strip changed) explains it, every change it rests on was announced
  (``announced``; without announcements, every change of the new manifests counts as announced),
  and the after run answered as its oracle predicts;
- ``unexpected``: anything else; it fails the gate;
- ``noise``: a difference the runs' own variation explains (a split within the test's reach, gap
  figures within the repeats' spread, a priority tie answered one way then the other);
- ``not-compared``: a check that has no verdict in one of the runs (an error, an invalid
  measurement, too few repeats): the gate is then incomplete, not passed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.checks.evidence import (
    ExactEvidence,
    FindingRecord,
    GapsEvidence,
    ObservedAnswer,
    Outcome,
    WeightsEvidence,
)
from harness.checks.stats import homogeneity_test, rank_shift_test
from harness.errors import ConfigError
from harness.results.baseline import Thresholds
from harness.results.document import ResultsDocument
from harness.traefik.versions import BehaviourChange, changes_between

Mode = Literal["upgrade", "change"]
Classification = Literal["expected", "unexpected", "noise", "not-compared"]
CLASSIFICATIONS: tuple[Classification, ...] = ("unexpected", "not-compared", "expected", "noise")

#: The gap figures' test level. With 5 repeats per run the smallest two-sided Mann-Whitney p is
#: 2 / C(10, 5) = 0.0079, so the run's alpha (0.001, split further) could never be reached; at
#: 0.01 a difference needs every repeat of one run beyond every repeat of the other.
GAP_ALPHA = 0.01

#: The gap figures compared, with the figure's name in the distribution and the thresholds (an
#: absolute and a relative step, both needed) a shift must exceed.
GAP_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("gap ms", "gap_ms_values", "gap_ms", "gap_pct"),
    ("failed requests", "failed_values", "failed_requests", "failed_requests_pct"),
)

#: The kinds of difference, in the order the gate's table lists them (within a classification).
DIFFERENCE_KINDS = ("probe", "route", "weights", "gaps", "finding", "check")

#: What an announced change may name (``KIND:ROUTE``; a bare ROUTE: any change of it).
CHANGE_KINDS = ("added", "removed", "moved", "re-weighted", "re-prioritised", "rule", "strip")


@dataclass(frozen=True)
class Difference:
    """One row of the gate's differences table."""

    #: One of ``DIFFERENCE_KINDS``.
    kind: str
    scenario: str | None
    #: The probe (``host/path``) or figure (``weights cheeses.minikube/``, ``gap ms patch``).
    item: str
    before: str
    after: str
    classification: Classification
    why: str
    #: The node ids of the checks the row comes from, in the before and the after run.
    nodeids_before: tuple[str, ...] = ()
    nodeids_after: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "nodeids_before": list(self.nodeids_before),
            "nodeids_after": list(self.nodeids_after),
        }


@dataclass(frozen=True)
class RouteChange:
    """A route's change between the two intents, as the oracle recorded them."""

    scenario: str
    route: str
    kinds: tuple[str, ...]
    description: str
    before: str
    after: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kinds": list(self.kinds)}


@dataclass(frozen=True)
class Announcement:
    """A change the author says the new manifests make: ``moved:cheeses.minikube/cheddar``."""

    kind: str | None
    route: str

    @classmethod
    def parse(cls, text: str) -> Announcement:
        kind, sep, route = text.partition(":")
        if sep and kind in CHANGE_KINDS:
            return cls(kind, route.strip())
        if not text.strip():
            raise ConfigError("--intended: empty; use KIND:ROUTE or ROUTE")
        return cls(None, text.strip())

    def covers(self, change: RouteChange, kind: str) -> bool:
        names = {change.route, change.route.partition(":")[2]}
        return self.route in names and (self.kind is None or self.kind == kind)


@dataclass
class Comparison:
    """What the gate found: the differences, the intents' diff, and the verdict."""

    mode: Mode
    differences: list[Difference]
    route_changes: list[RouteChange]
    announced: list[str]
    problems: list[str] = field(default_factory=list)
    #: Upgrade mode: the behaviour changes the oracle models between the two versions.
    behaviour_changes: tuple[BehaviourChange, ...] = ()

    def counts(self) -> dict[str, int]:
        counted = Counter(d.classification for d in self.differences)
        return {c: counted.get(c, 0) for c in CLASSIFICATIONS}

    @property
    def verdict(self) -> Literal["passed", "failed", "incomplete"]:
        counts = self.counts()
        # A run that could not be made as asked makes every difference meaningless.
        if self.problems:
            return "incomplete"
        if counts["unexpected"]:
            return "failed"
        if counts["not-compared"]:
            return "incomplete"
        return "passed"

    def reasons(self) -> list[str]:
        counts = self.counts()
        out = list(self.problems)
        if counts["unexpected"]:
            out.append(f"{counts['unexpected']} unexpected difference(s)")
        if counts["not-compared"]:
            out.append(f"{counts['not-compared']} check(s) could not be compared")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "verdict": self.verdict,
            "reasons": self.reasons(),
            "counts": self.counts(),
            "announced": list(self.announced),
            "route_changes": [c.to_dict() for c in self.route_changes],
            "behaviour_changes": [asdict(c) for c in self.behaviour_changes],
            "differences": [d.to_dict() for d in self.differences],
        }


# -- probes ------------------------------------------------------------------------------------

Answer = tuple[Any, ...]


def answer_of(obs: ObservedAnswer) -> Answer:
    """What a kind of answer says about behaviour: not which instance gave it, nor how often."""
    headers = tuple(sorted((obs.get("headers") or {}).items()))
    return (
        obs["status"],
        obs["backend"],
        obs["upstream_path"],
        obs["forwarded_prefix"],
        headers,
        obs["error"],
    )


def describe_answer(answer: Answer, *, headers: bool = False) -> str:
    status, backend, path, prefix, hdrs, error = answer
    if error:
        return f"error {error}"
    text = f"{status} " + (f"from {backend} as {path}" if backend else "(no backend)")
    if prefix is not None:
        text += f", X-Forwarded-Prefix {prefix}"
    if headers and hdrs:
        text += "; " + ", ".join(f"{k}: {v}" for k, v in hdrs)
    return text


def _predicted(expectation: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the oracle predicts a probe's answers are (not which rule decided: a re-prioritised
    route that still answers the same is no difference)."""
    decided = expectation.get("decided_by") or {}
    tied = tuple(
        sorted(json.dumps(c.get("backends"), sort_keys=True) for c in expectation.get("tied", []))
    )
    return (
        expectation.get("outcome"),
        expectation.get("status"),
        tuple(sorted((expectation.get("shares") or {}).items())),
        decided.get("upstream_path"),
        decided.get("forwarded_prefix"),
        tied,
    )


def _describe_prediction(expectation: Mapping[str, Any]) -> str:
    outcome = expectation.get("outcome")
    if outcome == "not-found":
        return "404"
    if outcome == "bad-request":
        return "400"
    if outcome == "undefined":
        return (
            "undefined (tie: "
            + " vs ".join(str(c.get("route_id")) for c in expectation.get("tied", []))
            + ")"
        )
    decided = expectation.get("decided_by") or {}
    services = " or ".join(s for s, share in sorted(expectation["shares"].items()) if share > 0)
    text = f"200 from {services} as {decided.get('upstream_path')}"
    if decided.get("forwarded_prefix") is not None:
        text += f", X-Forwarded-Prefix {decided['forwarded_prefix']}"
    return text


@dataclass
class ProbeView:
    """A probe's answers in one run, over the checks that judged it."""

    scenario: str
    probe_id: str
    expectation: Mapping[str, Any]
    routes: tuple[str, ...]
    answers: Counter[Answer] = field(default_factory=Counter)
    #: Answers some aspect judged unexpected.
    unexpected: int = 0
    nodeids: list[str] = field(default_factory=list)

    def route_ids(self) -> set[str]:
        e = self.expectation
        ids = {c.get("route_id") for c in [e.get("decided_by") or {}, *e.get("tied", [])]}
        return {i for i in ids if i} | set(self.routes)

    def answer_text(self, *, headers: bool = False) -> str:
        return "; ".join(
            f"{n}x {describe_answer(a, headers=headers)}" for a, n in self.answers.most_common()
        )


def _exact_items(doc: ResultsDocument) -> Iterator[tuple[str, str, ExactEvidence]]:
    """(node id, step, evidence) of every probe verdict of the run."""
    for check in doc["checks"]:
        evidence = check["evidence"]
        if evidence is None:
            continue
        if evidence["type"] == "exact":
            yield check["nodeid"], "", evidence
        elif evidence["type"] == "registration":
            for step in evidence["steps"]:
                yield check["nodeid"], step["step"], step["verdict"]


def probes_of(doc: ResultsDocument) -> dict[tuple[str, str], ProbeView]:
    """Every probe of the run, keyed by scenario and probe id (a registration step's probes by
    the step too). The aspects of one probe share its answers: one set is kept, and every
    aspect's unexpected answers are added up."""
    out: dict[tuple[str, str], ProbeView] = {}
    for nodeid, step, evidence in _exact_items(doc):
        probe_id = f"{evidence['probe_id']} ({step})" if step else evidence["probe_id"]
        key = (evidence["scenario"], probe_id)
        probe = evidence["probe"]
        view = out.setdefault(
            key,
            ProbeView(
                evidence["scenario"],
                probe_id,
                probe.get("expectation") or {},
                tuple(probe.get("routes", [])),
            ),
        )
        view.nodeids.append(nodeid)
        view.unexpected += sum(o["count"] for o in evidence["observed"] if o["expected"] is False)
        # The aspects of a probe judge the same requests (one round of probes per scenario), so
        # the first one's answers are the probe's; a registration step sends its own (its key).
        if not view.answers:
            for obs in evidence["observed"]:
                view.answers[answer_of(obs)] += obs["count"]
    return out


# -- the oracle's diff of the two intents ------------------------------------------------------


def _routes_of(doc: ResultsDocument) -> dict[tuple[str, str], dict[str, Any]]:
    """What the oracle recorded of each route (rule, priority, backends, strip), by scenario."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for _, _, evidence in _exact_items(doc):
        e = evidence["probe"].get("expectation") or {}
        for c in [e.get("decided_by"), *e.get("competing", []), *e.get("tied", [])]:
            if not c or not c.get("route_id"):
                continue
            out.setdefault((evidence["scenario"], c["route_id"]), c)
    for check in doc["checks"]:
        ev = check["evidence"]
        if ev is not None and ev["type"] == "weights":
            out.setdefault((ev["scenario"], ev["route"]), {}).setdefault(
                "declared", dict(ev["declared"])
            )
    return out


def _backend_text(route: Mapping[str, Any]) -> str:
    backends = route.get("backends") or []
    if not backends and route.get("declared"):
        return "/".join(f"{s} {w:g}" for s, w in sorted(route["declared"].items()))
    return ", ".join(f"{b['service']} (weight {b['weight']})" for b in backends) or "none"


def route_changes(before: ResultsDocument, after: ResultsDocument) -> list[RouteChange]:
    """The oracle's diff of the two runs' intents, route by route."""
    a, b = _routes_of(before), _routes_of(after)
    out: list[RouteChange] = []
    for key in sorted({*a, *b}):
        scenario, route = key
        if key not in a:
            text = _backend_text(b[key])
            out.append(RouteChange(scenario, route, ("added",), f"added: {text}", "absent", text))
            continue
        if key not in b:
            text = _backend_text(a[key])
            out.append(RouteChange(scenario, route, ("removed",), "removed", text, "absent"))
            continue
        ra, rb = a[key], b[key]
        parts: list[tuple[str, str, Any, Any]] = []
        services_a = {x["service"] for x in ra.get("backends") or []} or set(ra.get("declared", {}))
        services_b = {x["service"] for x in rb.get("backends") or []} or set(rb.get("declared", {}))
        if services_a != services_b:
            parts.append(("moved", "backend", _backend_text(ra), _backend_text(rb)))
        elif _backend_text(ra) != _backend_text(rb):
            parts.append(("re-weighted", "weights", _backend_text(ra), _backend_text(rb)))
        if ra.get("priority") != rb.get("priority"):
            parts.append(("re-prioritised", "priority", ra.get("priority"), rb.get("priority")))
        if ra.get("rule") != rb.get("rule"):
            parts.append(("rule", "rule", ra.get("rule"), rb.get("rule")))
        # The prefix a route strips is the route's; the upstream path is the request's.
        if ra.get("forwarded_prefix") != rb.get("forwarded_prefix"):
            prefixes = (ra.get("forwarded_prefix"), rb.get("forwarded_prefix"))
            parts.append(("strip", "X-Forwarded-Prefix", *prefixes))
        if parts:
            out.append(
                RouteChange(
                    scenario,
                    route,
                    tuple(p[0] for p in parts),
                    "; ".join(f"{label} {x} -> {y}" for _, label, x, y in parts),
                    "; ".join(f"{label} {x}" for _, label, x, _ in parts),
                    "; ".join(f"{label} {y}" for _, label, _, y in parts),
                )
            )
    return out


# -- the comparison ----------------------------------------------------------------------------


@dataclass
class _Classifier:
    mode: Mode
    changes: dict[tuple[str, str], RouteChange]
    announcements: list[Announcement]
    #: Upgrade mode: the modeled behaviour changes between the two versions.
    behaviour_changes: tuple[BehaviourChange, ...] = ()

    def unannounced(self, change: RouteChange) -> list[str]:
        if not self.announcements:
            return []
        return [k for k in change.kinds if not any(a.covers(change, k) for a in self.announcements)]

    def by_routes(self, scenario: str | None, routes: Iterable[str]) -> tuple[Classification, str]:
        """Expected when every change of these routes was announced (and one changed at all)."""
        changed = [
            self.changes[(scenario or "", r)]
            for r in sorted(set(routes))
            if (scenario or "", r) in self.changes
        ]
        if not changed:
            return "unexpected", "no route it depends on changed"
        missing = [
            f"{c.route}: {', '.join(self.unannounced(c))} ({c.description})"
            for c in changed
            if self.unannounced(c)
        ]
        if missing:
            return "unexpected", "predicted by an unannounced change: " + "; ".join(missing)
        return "expected", "predicted by the change: " + "; ".join(
            f"{c.route} {c.description}" for c in changed
        )


def _balanced(view: ProbeView, split: set[str]) -> set[Answer]:
    """A probe's kinds of answer with the backend left out where it is one of a split's."""
    return {(a[0], "(split)" if a[1] in split else a[1], *a[2:]) for a in view.answers}


def _compare_probe(
    a: ProbeView | None, b: ProbeView | None, classify: _Classifier
) -> Difference | None:
    some = a or b
    assert some is not None
    scenario, item = some.scenario, some.probe_id
    nodeids = (tuple(a.nodeids) if a else (), tuple(b.nodeids) if b else ())
    if a is None or b is None:
        classification, why = classify.by_routes(scenario, some.route_ids())
        where = "after" if a is None else "before"
        before = a.answer_text() if a else "not probed"
        after = b.answer_text() if b else "not probed"
        why = f"probed {where} only; {why}"
        return Difference("probe", scenario, item, before, after, classification, why, *nodeids)
    same_answers = set(a.answers) == set(b.answers)
    predicted_a, predicted_b = _predicted(a.expectation), _predicted(b.expectation)
    consistent_b = b.unexpected == 0
    if same_answers and (predicted_a == predicted_b or consistent_b):
        return None
    # The headers are shown where they are what differs.
    headers = same_answers or {x[:4] for x in a.answers} == {x[:4] for x in b.answers}
    before, after = a.answer_text(headers=headers), b.answer_text(headers=headers)

    def row(classification: Classification, why: str) -> Difference:
        return Difference("probe", scenario, item, before, after, classification, why, *nodeids)

    expected_a, expected_b = (
        _describe_prediction(a.expectation),
        _describe_prediction(b.expectation),
    )
    if same_answers:
        return row(
            "unexpected",
            f"the oracle predicts {expected_b} after (before: {expected_a}), but the answers "
            "did not change",
        )
    if predicted_a == predicted_b:
        if a.expectation.get("outcome") == "undefined":
            tied = {x["service"] for c in b.expectation.get("tied", []) for x in c["backends"]}
            if {x[1] for x in [*a.answers, *b.answers]} <= tied:
                return row(
                    "noise",
                    "a priority tie: Traefik picks one of the tied routes at each reload, any "
                    "of them is allowed",
                )
        split = {s for s, share in (b.expectation.get("shares") or {}).items() if share > 0}
        if len(split) > 1 and _balanced(a, split) == _balanced(b, split):
            return row(
                "noise",
                f"a weighted route: which of {', '.join(sorted(split))} answered is the split's "
                "(compared as weights), the answers are otherwise the same",
            )
        return row("unexpected", f"the oracle predicts the same in both runs: {expected_b}")
    if not consistent_b:
        return row(
            "unexpected",
            f"the oracle predicts {expected_b} after, and the proxy answered otherwise",
        )
    if a.unexpected:
        return row(
            "unexpected",
            f"the oracle predicts {expected_a} before, and the proxy answered otherwise",
        )
    if classify.mode == "upgrade":
        why = f"the oracle of each run predicts its answers: {expected_a} -> {expected_b}"
        if classify.behaviour_changes:
            why += " (Traefik's behaviour changes between the versions: "
            why += ", ".join(c.name for c in classify.behaviour_changes) + ")"
        return row("expected", why)
    classification, why = classify.by_routes(scenario, a.route_ids() | b.route_ids())
    return row(classification, f"{why} ({expected_a} -> {expected_b})")


def _compare_probes(
    before: ResultsDocument, after: ResultsDocument, classify: _Classifier
) -> list[Difference]:
    pa, pb = probes_of(before), probes_of(after)
    # A probe whose check recorded nothing in the other run is that check's row, not a probe
    # "probed in one run only".
    unjudged = {c["nodeid"] for d in (before, after) for c in d["checks"] if c["evidence"] is None}
    out: list[Difference] = []
    for key in sorted({*pa, *pb}):
        one = pa.get(key) if key not in pb else pb[key] if key not in pa else None
        if one is not None and set(one.nodeids) <= unjudged:
            continue
        diff = _compare_probe(pa.get(key), pb.get(key), classify)
        if diff is not None:
            out.append(diff)
    return out


def _finding_key(f: FindingRecord) -> tuple[str, ...]:
    routes = tuple(sorted(f.get("routes") or []))
    # A finding about routes is the same finding whatever file:line its message names.
    return (f["kind"], *routes) if routes else (f["kind"], f["message"])


def _compare_findings(
    before: ResultsDocument, after: ResultsDocument, classify: _Classifier
) -> list[Difference]:
    fa = {_finding_key(f): f for f in before["findings"]}
    fb = {_finding_key(f): f for f in after["findings"]}
    out: list[Difference] = []
    for key in sorted(set(fa) ^ set(fb)):
        finding = fa.get(key) or fb[key]
        scenario = None
        item = f"{finding['kind']}: {', '.join(finding.get('routes') or []) or finding['message']}"
        before_text = fa[key]["message"] if key in fa else "absent"
        after_text = fb[key]["message"] if key in fb else "absent"
        if classify.mode == "upgrade":
            classification: Classification = "expected"
            why = "the oracle of the after run records it (findings come from the oracle)"
        else:
            routes = finding.get("routes") or []
            if routes:
                scenarios = {s for s, r in classify.changes if r in routes}
                classification, why = "unexpected", "no route it names changed"
                for scenario in sorted(scenarios):
                    classification, why = classify.by_routes(scenario, routes)
                    if classification == "unexpected":
                        break
            else:
                classification = "expected"
                why = "the new manifests' own finding (it names no route)"
        out.append(
            Difference("finding", scenario, item, before_text, after_text, classification, why)
        )
    return out


def _by_nodeid(doc: ResultsDocument, kind: str) -> dict[str, Any]:
    return {
        c["nodeid"]: c
        for c in doc["checks"]
        if c["evidence"] is not None and c["evidence"]["type"] == kind
    }


def _counts_by_backend(evidence: WeightsEvidence) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in evidence["counts_by_instance"]:
        counts[row["backend"]] += row["count"]
    return dict(counts)


def _shares_text(counts: Mapping[str, int], declared: Mapping[str, float]) -> str:
    n = sum(counts.values())
    observed = ", ".join(f"{k} {v / n:.2%}" for k, v in sorted(counts.items())) if n else "none"
    return (
        f"{observed} (n={n:,}; declared {'/'.join(f'{v:g}' for _, v in sorted(declared.items()))})"
    )


def _compare_weights(
    before: ResultsDocument, after: ResultsDocument, classify: _Classifier
) -> list[Difference]:
    wa, wb = _by_nodeid(before, "weights"), _by_nodeid(after, "weights")
    common = sorted(set(wa) & set(wb))
    run_alpha = float(after["parameters"].get("run_alpha") or 0.001)
    alpha = run_alpha / max(1, len(common))
    out: list[Difference] = []
    for nodeid in common:
        ca, cb = wa[nodeid], wb[nodeid]
        ea, eb = ca["evidence"], cb["evidence"]
        item = ea["route"]
        ids = ((nodeid,), (nodeid,))
        if ea["verdict"] is None or eb["verdict"] is None:
            which = "before" if ea["verdict"] is None else "after"
            why = f"no split verdict in the {which} run (too many failed requests)"
            out.append(
                Difference(
                    "weights",
                    ea["scenario"],
                    item,
                    ca["summary"],
                    cb["summary"],
                    "not-compared",
                    why,
                    *ids,
                )
            )
            continue
        counts_a, counts_b = _counts_by_backend(ea), _counts_by_backend(eb)
        if counts_a == counts_b and ea["declared"] == eb["declared"]:
            continue  # a deterministic balancer: the same counts, no difference at all
        test = homogeneity_test(counts_a, counts_b, alpha)
        before_text = _shares_text(counts_a, ea["declared"])
        after_text = _shares_text(counts_b, eb["declared"])
        redeclared = ea["declared"] != eb["declared"]
        classification: Classification
        if not test.differs and not redeclared:
            classification, why = "noise", f"{test.summary}"
        elif not redeclared:
            classification, why = "unexpected", f"the declared split is the same; {test.summary}"
        elif Outcome(cb["outcome"]) is not Outcome.PASSED:
            classification = "unexpected"
            why = f"re-declared, but the after run's split check {cb['outcome']}; {test.summary}"
        elif classify.mode == "upgrade":
            classification, why = (
                "expected",
                f"the oracle of the after run predicts it; {test.summary}",
            )
        else:
            classification, why = classify.by_routes(ea["scenario"], [ea["route"]])
            why += f"; {test.summary}"
        out.append(
            Difference(
                "weights", ea["scenario"], item, before_text, after_text, classification, why, *ids
            )
        )
    return out


def _values(evidence: GapsEvidence, name: str) -> list[float] | None:
    raw = dict(evidence["distribution"]).get(name)
    if not isinstance(raw, list) or any(v is None for v in raw):
        return None
    return [float(v) for v in raw]


def _compare_gaps(before: ResultsDocument, after: ResultsDocument) -> list[Difference]:
    ga, gb = _by_nodeid(before, "gaps"), _by_nodeid(after, "gaps")
    thresholds = Thresholds()
    out: list[Difference] = []
    for nodeid in sorted(set(ga) & set(gb)):
        ca, cb = ga[nodeid], gb[nodeid]
        ea, eb = ca["evidence"], cb["evidence"]
        ids = ((nodeid,), (nodeid,))
        invalid = [
            w
            for w, c in (("before", ca), ("after", cb))
            if Outcome(c["outcome"]) in (Outcome.INVALID, Outcome.ERROR)
        ]
        if invalid:
            out.append(
                Difference(
                    "gaps",
                    ea["scenario"],
                    ea["strategy"],
                    ca["summary"],
                    cb["summary"],
                    "not-compared",
                    f"the measurement of the {' and '.join(invalid)} run is invalid or an error",
                    *ids,
                )
            )
            continue
        for label, name, abs_name, pct_name in GAP_FIGURES:
            va, vb = _values(ea, name), _values(eb, name)
            item = f"{label} {ea['strategy']}"
            if va is None or vb is None:
                if va != vb:
                    out.append(
                        Difference(
                            "gaps",
                            ea["scenario"],
                            item,
                            str(va),
                            str(vb),
                            "not-compared",
                            "a repeat without the figure (the route never recovered)",
                            *ids,
                        )
                    )
                continue
            if sorted(va) == sorted(vb):
                continue
            test = rank_shift_test(va, vb, GAP_ALPHA)
            before_text, after_text = _repeats_text(va), _repeats_text(vb)
            if not test.decidable:
                out.append(
                    Difference(
                        "gaps",
                        ea["scenario"],
                        item,
                        before_text,
                        after_text,
                        "not-compared",
                        f"{test.summary}: run the gate with --gap-repeats 5 or more (the default)",
                        *ids,
                    )
                )
                continue
            shift = abs(_median(vb) - _median(va))
            step_abs, step_pct = getattr(thresholds, abs_name), getattr(thresholds, pct_name)
            base = max(_median(va), _median(vb))
            large = shift > step_abs and (base == 0 or 100 * shift / base > step_pct)
            if test.differs and large:
                classification: Classification = "unexpected"
                why = f"beyond the repeats' spread: {test.summary}"
            else:
                classification = "noise"
                why = (
                    test.summary
                    if not test.differs
                    else (
                        f"{test.summary}; a shift of {shift:g} is below the step of "
                        f"{step_abs:g} and {step_pct:g}%"
                    )
                )
            out.append(
                Difference(
                    "gaps", ea["scenario"], item, before_text, after_text, classification, why, *ids
                )
            )
    return out


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _repeats_text(values: Sequence[float]) -> str:
    return f"median {_median(values):g} ({', '.join(f'{v:g}' for v in values)})"


def _compare_unjudged(before: ResultsDocument, after: ResultsDocument) -> list[Difference]:
    """Checks that recorded no evidence in one run (an error in their setup), or ran in one run
    only without probes of their own to compare."""
    a = {c["nodeid"]: c for c in before["checks"]}
    b = {c["nodeid"]: c for c in after["checks"]}
    out: list[Difference] = []
    for nodeid in sorted(set(a) | set(b)):
        ca, cb = a.get(nodeid), b.get(nodeid)
        if ca is None or cb is None:
            continue  # its probes (or its absence) are compared as probes
        missing = [
            w
            for w, c in (("before", ca), ("after", cb))
            if c["evidence"] is None and Outcome(c["outcome"]) is Outcome.ERROR
        ]
        if missing:
            out.append(
                Difference(
                    "check",
                    ca["subject"]["scenario"],
                    nodeid,
                    ca["summary"],
                    cb["summary"],
                    "not-compared",
                    f"no evidence in the {' and '.join(missing)} run (an error)",
                    (nodeid,),
                    (nodeid,),
                )
            )
    return out


def _unannounced_changes(changes: Sequence[RouteChange], classify: _Classifier) -> list[Difference]:
    """Change mode: every change of the new manifests nobody announced is unexpected, whether
    or not a probe shows it (the manifests must do what their author says and nothing else)."""
    out = []
    for change in changes:
        missing = classify.unannounced(change)
        if missing:
            why = f"the new manifests change this route ({', '.join(missing)}) unannounced"
            out.append(
                Difference(
                    "route",
                    change.scenario,
                    change.route,
                    change.before,
                    change.after,
                    "unexpected",
                    why,
                )
            )
    return out


def _all_unjudged(doc: ResultsDocument) -> bool:
    return bool(doc["checks"]) and all(c["evidence"] is None for c in doc["checks"])


def _problems(before: ResultsDocument, after: ResultsDocument, mode: Mode) -> list[str]:
    out = []
    for which, doc in (("before", before), ("after", after)):
        if doc.get("problem"):
            out.append(f"the {which} run's checks could not run: {doc['problem']}")
        elif not doc["checks"]:
            out.append(f"the {which} run has no checks")
        elif _all_unjudged(doc):
            first = doc["checks"][0]
            out.append(
                f"the {which} run's checks could not run: all {len(doc['checks'])} ended in an "
                f"error before recording any evidence (first: {first['summary']})"
            )
    pa = {k: v for k, v in before["parameters"].items() if k != "manifests"}
    pb = {k: v for k, v in after["parameters"].items() if k != "manifests"}
    if mode == "upgrade" and before["parameters"] != after["parameters"]:
        differ = sorted(
            k
            for k in {*before["parameters"], *after["parameters"]}
            if before["parameters"].get(k) != after["parameters"].get(k)
        )
        out.append(f"the runs' parameters differ ({', '.join(differ)}): not an upgrade alone")
    elif mode == "change":
        differ = sorted(k for k in {*pa, *pb} if k != "scenarios" and pa.get(k) != pb.get(k))
        if differ:
            out.append(f"the runs' parameters differ ({', '.join(differ)}): not a change alone")
        version_a = (before["target"].get("traefik") or {}).get("version")
        version_b = (after["target"].get("traefik") or {}).get("version")
        if version_a != version_b:
            out.append(f"the runs ran different Traefik versions ({version_a}, {version_b})")
    return out


def compare(
    before: ResultsDocument,
    after: ResultsDocument,
    *,
    mode: Mode,
    announced: Sequence[str] = (),
) -> Comparison:
    """Every difference between the two runs, classified (see the module docstring)."""
    announcements = [Announcement.parse(a) for a in announced]
    changes = route_changes(before, after)
    versions = [(d["target"].get("traefik") or {}).get("version") for d in (before, after)]
    crossed = changes_between(*versions) if mode == "upgrade" else ()
    classify = _Classifier(
        mode, {(c.scenario, c.route): c for c in changes}, announcements, crossed
    )
    differences: list[Difference] = []
    # A run whose checks could not run has nothing to compare: the gate is incomplete (problems).
    if not (_all_unjudged(before) or _all_unjudged(after)):
        differences = _compare_probes(before, after, classify)
        differences += _compare_findings(before, after, classify)
        differences += _compare_weights(before, after, classify)
        differences += _compare_gaps(before, after)
        differences += _compare_unjudged(before, after)
        differences += _unannounced_changes(changes, classify)
    order = {c: i for i, c in enumerate(CLASSIFICATIONS)}
    kinds = {k: i for i, k in enumerate(DIFFERENCE_KINDS)}
    differences.sort(
        key=lambda d: (order[d.classification], kinds[d.kind], d.scenario or "", d.item)
    )
    return Comparison(
        mode=mode,
        differences=differences,
        route_changes=changes,
        announced=list(announced),
        problems=_problems(before, after, mode),
        behaviour_changes=crossed,
    )
