"""The HTML report (harness/results/report.py): sections, order, escaping, no credentials, size.

Reports are built from results documents of real runs (``tests/data/``, trimmed: see below),
changed where a test needs what real runs do not produce on demand (hostile backends,
credentials, long timelines, 500 checks); every document keeps the results schema. The HTML is
read back with the stdlib's HTML parser, the way a browser would tokenise it, not searched as a
string.

Fixtures: ``results-local.json`` is a run of the suites on the local target (``--probe-rounds 6
--gap-repeats 1``); ``results-external-faults.json`` is an external-mode run whose "proxy" was a
single echo backend (``python -m harness backends cheddar --instances 1``), so routing, strip
and weights checks fail for real. Both were trimmed to one check per kind and outcome (and per
tutorial-named check; all weights checks kept), with the checkout's absolute path removed.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from results_schema import assert_valid

from harness.results.baseline import compare
from harness.results.document import count_outcomes, gate_of
from harness.results.report import (
    UnsafeSVG,
    _clean_svg,
    build_view,
    render_report,
    timeline_of,
    write_report,
)

DATA = Path(__file__).resolve().parent / "data"
SCRIPT_PAYLOAD = "<script>alert(1)</script>"
IMG_PAYLOAD = '"><img src=x onerror=window.__xss=1>'
SVG_PAYLOAD = "<svg/onload=window.__xss=1>"
PAYLOADS = (SCRIPT_PAYLOAD, IMG_PAYLOAD, SVG_PAYLOAD)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text("utf-8"))
    return data


def first(doc: dict[str, Any], kind: str, outcome: str | None = None) -> dict[str, Any]:
    """A copy of the document's first check of ``kind`` (and ``outcome``)."""
    return copy.deepcopy(
        next(
            c
            for c in doc["checks"]
            if c["kind"] == kind and (outcome is None or c["outcome"] == outcome)
        )
    )


def with_checks(doc: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` with these checks, its counts and gate as the run would have stored them."""
    out = copy.deepcopy(doc)
    out["checks"] = checks
    out["counts"] = count_outcomes(checks)
    out["gate"] = gate_of(out["counts"])
    return out


def gaps_check(seed: int = 0) -> dict[str, Any]:
    """The real run's gap check with failures (a backend that stops first), its gap moved by
    ``seed`` ms so that copies differ."""
    check = first(load("results-local.json"), "gaps", "report-only")
    check["nodeid"] = check["nodeid"].replace("]", f"-{seed}]")
    check["figures"]["gap_ms"] += seed
    return check


# -- builders (also used by test_report_browser.py) ---------------------------------------------


def big_results(n: int = 500) -> dict[str, Any]:
    """A run of ``n`` checks built from the real fixtures' checks: 6% gaps, 6% weights, the rest
    exact. About half fail or are undefined: heavier than a typical run, since failing checks
    are expanded with their messages."""
    local, faults = load("results-local.json"), load("results-external-faults.json")
    both = local["checks"] + faults["checks"]
    exact = [c for c in both if c["kind"] in ("routing", "strip", "priority") and c["evidence"]]
    weights = [c for c in both if c["kind"] == "weights"]
    checks = []
    n_gaps, n_weights = n * 6 // 100, n * 6 // 100
    for i in range(n):
        if i < n_gaps:
            check = gaps_check(i)
            check["outcome"] = "failed" if i % 4 == 0 else "passed"
        else:
            pool = weights if i < n_gaps + n_weights else exact
            check = copy.deepcopy(pool[i % len(pool)])
            check["nodeid"] = check["nodeid"].replace("]", f"-{i}]")
        checks.append(check)
    doc = with_checks(local, checks)
    doc["findings"] = local["findings"] + faults["findings"]
    return doc


def hostile_results() -> dict[str, Any]:
    """A run where the proxy and backends answered with markup everywhere they could."""
    doc = load("results-external-faults.json")
    doc["run_id"] = SCRIPT_PAYLOAD
    doc["target"] = {
        "target": "external",
        "proxy_url": f"http://127.0.0.1:1/{IMG_PAYLOAD}",
        "backend_map": {SCRIPT_PAYLOAD: IMG_PAYLOAD},
    }
    doc["parameters"] = {"manifests": [IMG_PAYLOAD, SVG_PAYLOAD]}
    doc["findings"].append(
        {
            "kind": SCRIPT_PAYLOAD,
            "severity": IMG_PAYLOAD,
            "message": SCRIPT_PAYLOAD,
            "source": {"file": IMG_PAYLOAD, "line": 1, "field": SVG_PAYLOAD},
            "routes": [SVG_PAYLOAD],
        }
    )
    exact = first(doc, "routing", "failed")
    exact["nodeid"] = f"harness/suites/test_routing.py::test_routing[{SCRIPT_PAYLOAD}]"
    exact["summary"] = exact["message"] = SVG_PAYLOAD
    item = exact["evidence"]
    item["observed"][0].update(
        backend=SCRIPT_PAYLOAD, instance=IMG_PAYLOAD, forwarded_prefix=SVG_PAYLOAD
    )
    item["probe"].update(path=f"/{IMG_PAYLOAD}", headers=[["X-Test", SCRIPT_PAYLOAD]])
    item["expected"] = item["message"] = SCRIPT_PAYLOAD
    weights = first(doc, "weights", "failed")
    weights["nodeid"] = f"harness/suites/test_weights.py::test_weights[{IMG_PAYLOAD}]"
    item = weights["evidence"]
    item["verdict"]["backends"] = [SCRIPT_PAYLOAD, IMG_PAYLOAD, SVG_PAYLOAD][
        : len(item["verdict"]["backends"])
    ]
    item["declared"] = {SCRIPT_PAYLOAD: 0.5, IMG_PAYLOAD: 0.3, SVG_PAYLOAD: 0.2}
    item["counts_by_instance"] = [{"backend": SCRIPT_PAYLOAD, "instance": IMG_PAYLOAD, "count": 3}]
    item["replicas"] = {"replicas": [{"replica": SCRIPT_PAYLOAD, "n": 3}], "summary": IMG_PAYLOAD}
    item["failures"] = {SCRIPT_PAYLOAD: 1}
    item["route"] = IMG_PAYLOAD
    gaps = gaps_check()
    gaps["nodeid"] = f"harness/suites/test_apply_gaps.py::test_gap[{IMG_PAYLOAD}]"
    gaps["message"] = gaps["summary"] = SCRIPT_PAYLOAD
    item = gaps["evidence"]
    item["strategy"], item["title"] = SCRIPT_PAYLOAD, IMG_PAYLOAD
    timeline = item["repeats"][0]["timeline"]
    timeline["failed"] = {SCRIPT_PAYLOAD: timeline["failed"]["502"]}
    timeline["markers"] = [{"name": IMG_PAYLOAD, "t_s": 1.0}, {"name": SVG_PAYLOAD, "t_s": 1.2}]
    item["distribution"]["failed_by_class_total"] = {SVG_PAYLOAD: 3}
    return with_checks(doc, [*doc["checks"], exact, weights, gaps])


# -- reading the HTML back ----------------------------------------------------------------------


class Audit(HTMLParser):
    """Tokenises the report like a browser and records what could run or load something."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.handlers: list[tuple[str, str]] = []
        self.urls: list[str] = []
        self.checks: list[tuple[str, str, bool]] = []  # (section kind, outcome, open)
        self.section: str | None = None
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        a = dict(attrs)
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.handlers.append((tag, name))
            linking = name.lower() in {
                "href",
                "src",
                "xlink:href",
                "action",
                "formaction",
                "srcset",
            }
            if linking and value and not value.startswith("#"):
                self.urls.append(value)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "section" and "kind" in (a.get("class") or "").split():
            self.section = a.get("data-kind")
        if tag == "details" and "check" in (a.get("class") or "").split():
            outcome = (a.get("class") or "").split("o-")[-1]
            self.checks.append((str(self.section), outcome, "open" in a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(html: str) -> Audit:
    """No markup from the data: no script, no event handler, no image, no outside URL."""
    audit = Audit(html)
    assert audit.tags["script"] == 0
    assert audit.handlers == []
    assert audit.tags["img"] == 0 and audit.tags["iframe"] == 0 and audit.tags["object"] == 0
    assert audit.tags["foreignobject"] == 0
    assert audit.urls == []
    assert audit.tags["svg"] == html.count('<svg class="plot"'), "every <svg> is one of our plots"
    assert "Content-Security-Policy" in html and "script-src 'none'" in html
    return audit


# -- tests --------------------------------------------------------------------------------------


def test_real_run_report_has_every_section(tmp_path: Path) -> None:
    results = load("results-local.json")
    path = write_report(results, tmp_path / "run")
    assert path == tmp_path / "run" / "index.html"
    html = path.read_text("utf-8")
    audit = assert_inert(html)
    for anchor in (
        "summary",
        "gate",
        "counts",
        "target",
        "parameters",
        "findings",
        "kind-routing",
        "kind-strip",
        "kind-priority",
        "kind-registration",
        "kind-weights",
        "kind-gaps",
    ):
        assert anchor in audit.ids, anchor
    text = " ".join(" ".join(audit.text).split())
    assert "gate: PASSED" in text
    assert "3.7.15" in text, "the Traefik version"
    assert results["target"]["traefik"]["proxy_url"] in text, "the proxy URL"
    # The gap checks are in the gaps section, none elsewhere.
    assert {section for section, _, _ in audit.checks if "gaps" in section} == {"gaps"}
    assert not any(s.startswith("other") for s, _, _ in audit.checks)
    # One plot per weighted split and per gap check with a timeline, and the numbers next to it.
    weights = [c for c in results["checks"] if c["kind"] == "weights"]
    timed = [
        c
        for c in results["checks"]
        if c["kind"] == "gaps" and c["evidence"] and c["evidence"]["repeats"]
    ]
    assert len(weights) == 4 and len(timed) == 3
    assert audit.tags["svg"] == len(weights) + len(timed)
    assert "p-value" in text and "planned N" in text and "per proxy replica" in text
    assert "gap, median / max" in text and "hitless runs" in text
    # Registration steps and the tutorial's claims are shown with their verdicts.
    assert "before applying cheeses:stilton.minikube/" in text
    assert "tutorial: every answer is 404" in text
    # Findings, grouped, each with its source file:line.
    assert "findings-spec" in audit.ids and "findings-legacy" in audit.ids
    for f in results["findings"]:
        assert f"{f['source']['file']}:{f['source']['line']}" in text


def test_the_stored_outcomes_are_shown() -> None:
    results = load("results-external-faults.json")
    view = build_view(results)
    assert dict(view.counts) == results["counts"]
    shown = {c.nodeid: c.outcome for s in view.sections for c in s.blocks + s.compact}
    assert shown == {c["nodeid"]: c["outcome"] for c in results["checks"]}
    # Each answer is marked as the check's verdict marked it, and only so.
    check = first(results, "routing", "failed")
    (exact,) = next(c for s in view.sections for c in s.blocks if c.nodeid == check["nodeid"]).exact
    marks = {"expected": True, "unexpected": False, "": None}
    assert sorted((o.count, marks[o.verdict]) for o in exact.observed) == sorted(
        (o["count"], o["expected"]) for o in check["evidence"]["observed"]
    )


def test_failing_checks_first_and_expanded(tmp_path: Path) -> None:
    results = load("results-external-faults.json")
    html = render_report(results)
    audit = assert_inert(html)
    assert "gate: FAILED" in " ".join(" ".join(audit.text).split())
    failing = {
        c["nodeid"] for c in results["checks"] if c["outcome"] in ("failed", "error", "invalid")
    }
    assert failing, "the fixture has failures"
    by_section: dict[str, list[tuple[str, bool]]] = {}
    for section, outcome, is_open in audit.checks:
        by_section.setdefault(section, []).append((outcome, is_open))
    for section, blocks in by_section.items():
        ranks = [0 if o in ("failed", "error") else 1 for o, _ in blocks]
        assert ranks == sorted(ranks), f"{section}: failing checks first, got {blocks}"
        for outcome, is_open in blocks:
            # Failing checks are open; so are weights and gaps (their plots are the evidence).
            expected_open = outcome in ("failed", "error") or section in ("weights", "gaps")
            assert is_open == expected_open, (section, outcome)
    # The index at the top links every failing check.
    view = build_view(results)
    assert {c.nodeid for c in view.failing} == failing
    assert (
        html.index('id="failures"') < html.index('id="findings"') < html.index('id="kind-routing"')
    )
    # A failing exact check shows the unexpected answers with their counts.
    assert "v-unexpected" in html


def test_backend_markup_is_escaped_everywhere(tmp_path: Path) -> None:
    results = hostile_results()
    assert_valid(results)
    html = write_report(results, tmp_path).read_text("utf-8")
    audit = assert_inert(html)
    text = "".join(audit.text)
    for payload in PAYLOADS:
        assert payload in text, f"{payload!r} is shown as text"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html.lower()
    # The plots were drawn with the hostile names in them, as escaped SVG text.
    plots = html.split('<svg class="plot"')[1:]
    n_weights = sum(1 for c in results["checks"] if c["kind"] == "weights")
    assert len(plots) == n_weights + 1, "every weights plot and the gaps timeline"
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in p.split("</svg>")[0] for p in plots)


def test_svg_with_active_content_is_refused() -> None:
    base = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" {attrs}>{body}</svg>'
    assert '<svg class="plot"' in _clean_svg(base.format(attrs="", body="<g/>"), "ok")
    for attrs, body in (
        ("", "<script>alert(1)</script>"),
        ('onload="alert(1)"', ""),
        ("", '<use xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="http://x/y#z"/>'),
        ("", "<foreignObject><p>x</p></foreignObject>"),
        ("", '<rect style="fill: url(http://x/y)"/>'),
    ):
        with pytest.raises(UnsafeSVG):
            _clean_svg(base.format(attrs=attrs, body=body), "bad")


FAKE_JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ.eyJzdWIiOiJmYWtlLXNhIn0.ZmFrZS1zaWduYXR1cmU"
FAKE_KUBECONFIG = """apiVersion: v1
kind: Config
users:
- name: ci
  user:
    client-key-data: LS0tLS1CRUdJTi1GQUtFLUtFWS1EQVRB
    token: fake-kube-token-3f9a1c
"""
SECRETS = (
    FAKE_JWT,
    "LS0tLS1CRUdJTi1GQUtFLUtFWS1EQVRB",
    "fake-kube-token-3f9a1c",
    "fake-bearer-77aa99",
    "MIIEfakePrivateKeyMaterial",
    "hunter2-fake",
    "fake-query-token-5521",
    "fake-target-token-0001",
)


def test_no_credentials_in_the_report(tmp_path: Path) -> None:
    doc = load("results-local.json")
    doc["target"] = {
        **doc["target"],
        "kubeconfig": FAKE_KUBECONFIG,
        "token": "fake-target-token-0001",
        "notes": FAKE_KUBECONFIG,  # the same content under an innocent key
        "api_url": "https://admin:hunter2-fake@127.0.0.1:6443/?token=fake-query-token-5521",
        "service_account": FAKE_JWT,
    }
    check = first(doc, "routing")
    check["nodeid"] += "-secret"
    check["outcome"] = "failed"
    check["message"] = "request had Authorization: Bearer fake-bearer-77aa99\n" + FAKE_KUBECONFIG
    item = check["evidence"]
    item["probe"]["headers"] = [["Authorization", "Bearer fake-bearer-77aa99"]]
    item["message"] += (
        "\n-----BEGIN RSA PRIVATE KEY-----\nMIIEfakePrivateKeyMaterial\n"
        "-----END RSA PRIVATE KEY-----\npassword: hunter2-fake"
    )
    html = write_report(with_checks(doc, [*doc["checks"], check]), tmp_path).read_text("utf-8")
    for secret in SECRETS:
        assert secret not in html, f"{secret!r} leaked"
    assert "&lt;redacted&gt;" in html
    # What is not a secret is still there.
    assert "127.0.0.1:6443" in html and "Authorization" in html


def test_500_check_report_is_under_5_mb(tmp_path: Path) -> None:
    results = big_results(500)
    assert len(results["checks"]) == 500
    started = time.perf_counter()
    path = write_report(results, tmp_path)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    print(f"\n500 checks: {size / 1e6:.2f} MB in {seconds:.1f} s")
    assert size < 5_000_000
    html = path.read_text("utf-8")
    audit = assert_inert(html)
    n_plots = sum(1 for c in results["checks"] if c["kind"] in ("weights", "gaps"))
    assert audit.tags["svg"] == n_plots, "one SVG per weights and per gaps check, no more"


def test_gaps_timeline_of_a_real_run() -> None:
    run = gaps_check()["evidence"]["repeats"][0]
    raw = run["timeline"]
    tl = timeline_of(run)
    assert tl is not None and tl.width == pytest.approx(raw["bucket_ms"] / 1e3)
    assert (
        set(tl.failed) == set(raw["failed"]) == {"502"} and sum(tl.failed["502"]) == run["failed"]
    )
    assert tl.gap == (raw["gap"]["from_s"], raw["gap"]["to_s"])
    assert [m for m, _ in tl.markers] == [m["name"] for m in raw["markers"]]
    assert "change start" in dict(tl.markers) and set(tl.latency) == {"p50", "p99"}
    # Long timelines are downsampled, counts kept.
    n = 50 * len(raw["t_s"])
    long = copy.deepcopy(run)
    t = long["timeline"]
    for key in ("requests", "good", "new", "old", "latency_p50_ms", "latency_p99_ms"):
        t[key] = t[key] * 50
    t["failed"] = {k: v * 50 for k, v in t["failed"].items()}
    t["t_s"] = [round(i * t["bucket_ms"] / 1e3, 4) for i in range(n)]
    tl_long = timeline_of(long)
    assert tl_long is not None and len(tl_long.t) <= 300
    assert sum(tl_long.failed["502"]) == 50 * run["failed"]
    # A run kept without its timeline (made again as invalid) has none to draw.
    assert timeline_of({k: v for k, v in run.items() if k != "timeline"}) is None  # type: ignore[arg-type]


def test_gaps_view_draws_the_run_with_the_largest_gap() -> None:
    check = gaps_check()
    runs = check["evidence"]["repeats"]
    calm = copy.deepcopy(runs[0])
    calm.update(gap_ms=0.0, failed=0)
    check["evidence"]["repeats"] = [calm, runs[0]]
    doc = with_checks(load("results-local.json"), [check])
    view = build_view(doc).sections[0].blocks[0].gaps[0]
    assert view.which == "run 2 of 2, the one with the largest gap"
    assert view.svg is not None
    stats = {r.name: r for r in view.repeats}
    assert stats["gap_ms"].n == 2 and stats["gap_ms"].low == "0"
    assert dict(view.figures)["failed requests allowed per run"] == "report only"
    html = render_report(doc)
    assert_inert(html)
    assert "timeline of run 2 of 2" in html
    # The headline figures over the repeats are shown with their labels, outages among them.
    section = html[html.index("timeline of run 2 of 2") :]
    headline = section[: section.index("<details")]
    assert "<td title=" in headline and "gap (ms)</td>" in headline
    assert ">outages</td>" in headline


def test_weights_error_is_counted_as_an_error() -> None:
    """A weights check that ended in ERROR (too many failed requests): no split verdict, the
    error check's summary, and counted as an error (the end-to-end test makes one for real)."""
    doc = load("results-external-faults.json")
    check = first(doc, "weights")
    item = check["evidence"]
    item["verdict"] = item["replicas"] = None
    item["error_check"].update(verdict="error", error_rate=0.2)
    item["error_check"]["summary"] = "error: 20% of requests failed"
    check["outcome"] = "error"
    doc = with_checks(doc, [check])
    assert_valid(doc)
    view = build_view(doc)
    assert dict(view.counts)["error"] == 1 and view.gate == "error"
    assert view.sections[0].counts == [("error", 1)]
    html = render_report(doc)
    assert_inert(html)
    assert "error: 20% of requests failed" in html
    assert "gate: <strong>ERROR" in html


def test_comparison_shown(tmp_path: Path) -> None:
    baseline = load("results-external-faults.json")
    current = copy.deepcopy(baseline)
    current["run_id"] = "now"
    passed = next(c for c in current["checks"] if c["outcome"] == "passed")
    passed["outcome"] = "failed"
    current = with_checks(current, current["checks"])
    # Stored as the collector stores it: the comparison, and the gate decided with it.
    comparison = compare(current, baseline)
    current["comparison"] = comparison.to_dict()
    current["gate"] = gate_of(current["counts"], comparison.reasons())
    assert_valid(current)
    html = write_report(current, tmp_path).read_text()
    audit = assert_inert(html)
    assert "comparison" in audit.ids
    section = html[html.index('id="comparison"') : html.index('id="findings"')]
    assert passed["nodeid"].split("[")[0] in section and "regressed" in section
    # The report shows the stored gate, its reasons the comparison's.
    assert build_view(current).gate_reasons[-1] == comparison.reasons()[-1]


def test_the_gate_is_the_stored_one() -> None:
    doc = load("results-local.json")
    doc["gate"] = {"verdict": "failed", "reasons": ["1 new failure(s) since run yesterday"]}
    view = build_view(doc)
    assert (view.gate, view.gate_reasons) == ("failed", ["1 new failure(s) since run yesterday"])
    assert "gate: <strong>FAILED" in render_report(doc)


def test_not_compared_is_said() -> None:
    doc = load("results-local.json")
    doc["baseline_problem"] = "reports/old/results.json: results schema version 1"
    html = render_report(doc)
    section = html[html.index('id="comparison"') : html.index('id="findings"')]
    assert "not compared: reports/old/results.json: results schema version 1" in section


def test_sequential_and_zero_weight_verdicts_render() -> None:
    """Weights evidence from the statistics module itself: a sequential e-value test that
    rejected a 70/30 split early, and a chi-square check with a weight-0 backend that got hits."""
    from harness.checks.stats import SequentialSplitTest, chi_square_test, plan_sample_size

    plan = plan_sample_size([0.75, 0.25], alpha=0.001, sequential=True)
    test = SequentialSplitTest.from_plan(plan, names=["cheddar", "wensleydale"])
    while not test.state.done:
        test.update([700, 300])
    sequential = test.decide().to_dict()
    zero = chi_square_test([500, 490, 10], [0.5, 0.5, 0.0], 0.001, names=["a", "b", "canary"])
    doc = load("results-local.json")
    checks = []
    for i, verdict in enumerate((sequential, zero.to_dict())):
        check = first(doc, "weights")
        check["nodeid"] = f"harness/suites/test_weights.py::test_weights[case-{i}]"
        check["outcome"] = "failed"
        check["evidence"]["verdict"] = verdict
        checks.append(check)
    doc = with_checks(doc, checks)
    view = build_view(doc)
    seq, chi = (c.weights[0] for c in view.sections[0].blocks)
    seq_stats = dict(seq.stats)
    assert seq_stats["test"] == "sequential e-value" and "e-value" in seq_stats
    assert seq_stats["stopped early"] == "yes" and "p-value" not in seq_stats
    assert [r.name for r in seq.rows] == ["cheddar", "wensleydale"]
    assert seq.rows[0].outside, "75% declared, 70% observed: outside the interval"
    assert chi.zero_weight and "canary" in chi.zero_weight[0]
    assert chi.rows[2].declared == 0.0 and chi.rows[2].count == 10
    html = render_report(doc)
    assert_inert(html)
    assert html.count('<svg class="plot"') == 2
