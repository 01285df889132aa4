"""The HTML report (harness/report.py): sections, order, escaping, no credentials, size.

Reports are built from results documents of real runs (``tests/data/``, trimmed: see below) and
from synthetic ones for what real runs do not produce on demand: hostile backends, credentials,
gap timelines, 500 checks. The HTML is read back with the stdlib's HTML parser, the way a browser
would tokenise it, not searched as a string.

Fixtures: ``results-local.json`` is ``nox -s verify``'s run on the local target (``--probe-rounds
6``); ``results-external-faults.json`` is an external-mode run whose "proxy" was a single echo
backend (``python -m harness backends cheddar``), so routing, strip and weights checks fail for
real. Both were trimmed to one check per kind and outcome (all weights checks kept), with the
checkout's absolute path removed.
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

from harness.results.baseline import compare
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


# -- builders (also used by test_report_browser.py) ---------------------------------------------


def gaps_item(
    seed: int = 0, *, name: str = "re-apply cheeses", buckets: int = 120
) -> dict[str, Any]:
    """A gaps evidence item in the shape described for the open-loop timeline: bucket starts,
    successes and failures per class per bucket, latency percentiles, markers, the gap, figures,
    repeats. 20 ms buckets; the route fails between 1.0 s and 1.3 s."""
    start, end = 50, 65
    ok = [0 if start <= i < end else 20 for i in range(buckets)]
    failed = {
        "502": [12 if start <= i < start + 8 else 0 for i in range(buckets)],
        "refused": [8 if start + 8 <= i < end else 0 for i in range(buckets)],
        "404": [20 if i == start + 8 else 0 for i in range(buckets)],
    }
    return {
        "type": "gaps",
        "name": name,
        "scenario": "cheeses",
        "timeline": {
            "bucket_ms": 20,
            "bucket_start_ms": [i * 20 for i in range(buckets)],
            "ok": ok,
            "failed": failed,
            "latency_ms": {
                "p50": [1.0 + (i % 5) * 0.1 for i in range(buckets)],
                "p99": [4.0 + (30 if start <= i < end else 0) for i in range(buckets)],
            },
        },
        "markers": {
            "apply_start": 980,
            "apply_end": 1010,
            "observed_change": 1300,
            "convergence": 1320,
        },
        "gap": [start * 20, end * 20],
        "figures": {
            "gap_ms": 300.0 + seed,
            "failed_by_class": {"502": 96, "refused": 56, "404": 20},
            "longest_failing_streak": 172,
            "worst_window_error_rate": 1.0,
            "convergence_ms": 340.0,
        },
        "repeats": [
            {"gap_ms": 280.0 + 10 * r, "failed_by_class": {"502": 90 + r}, "convergence_ms": 330.0}
            for r in range(5)
        ],
    }


def exact_check(
    nodeid: str,
    outcome: str,
    *,
    backend: str = "cheddar",
    path: str = "/cheddar",
    message: str = "",
) -> dict[str, Any]:
    """A routing check on one probe, in the shape harness.checks.exact writes."""
    observed_backend = backend if outcome == "passed" else "wensleydale"
    return {
        "nodeid": nodeid,
        "kind": "routing",
        "outcome": outcome,
        "duration": 0.001,
        "message": message,
        "evidence": [
            {
                "type": "exact",
                "aspect": "routing",
                "probe_id": f"cheeses.minikube{path}",
                "outcome": outcome,
                "expected": f"200 from {backend}",
                "observed": [
                    {
                        "status": 200,
                        "backend": observed_backend,
                        "instance": f"{observed_backend}-0",
                        "upstream_path": path,
                        "forwarded_prefix": None,
                        "error": None,
                        "count": 6,
                    }
                ],
                "message": message or f"routing check {outcome.upper()}: GET {path}",
                "probe": {
                    "id": f"cheeses.minikube{path}",
                    "method": "GET",
                    "host": "cheeses.minikube",
                    "path": path,
                    "headers": [],
                    "reasons": ["at the path of the route"],
                    "routes": ["cheeses:cheeses.minikube/cheddar"],
                    "kinds": ["route"],
                    "expectation": {
                        "outcome": "routed",
                        "decided_by": {
                            "route_id": "cheeses:cheeses.minikube/cheddar",
                            "rule": 'Host("cheeses.minikube") && PathPrefix("/cheddar")',
                            "priority": 50,
                            "priority_source": "rule-length",
                            "upstream_path": path,
                            "forwarded_prefix": None,
                        },
                        "shares": {backend: 1.0},
                        "competing": [],
                        "tied": [],
                        "reason": "the only route",
                    },
                },
                "scenario": "cheeses",
            }
        ],
        "findings": [],
    }


def big_results(n: int = 500) -> dict[str, Any]:
    """A run of ``n`` checks built from the real fixtures' checks (exact and weights) plus gap
    checks: 6% gaps, 6% weights, the rest exact. About a quarter fail and a third are undefined:
    heavier than a typical run, since failing checks are expanded with their messages."""
    local, faults = load("results-local.json"), load("results-external-faults.json")
    exact = [
        c for c in local["checks"] + faults["checks"] if c["evidence"] and c["kind"] != "weights"
    ]
    weights = [c for c in local["checks"] + faults["checks"] if c["kind"] == "weights"]
    checks = []
    n_gaps, n_weights = n * 6 // 100, n * 6 // 100
    for i in range(n):
        if i < n_gaps:
            check = {
                "nodeid": f"suites/test_gaps.py::test_gap[cheeses:{i}]",
                "kind": "gaps",
                "outcome": "failed" if i % 4 == 0 else "passed",
                "duration": 12.0,
                "message": "",
                "evidence": [gaps_item(i, buckets=300)],
                "findings": [],
            }
        elif i < n_gaps + n_weights:
            check = copy.deepcopy(weights[i % len(weights)])
            check["nodeid"] = check["nodeid"].replace("]", f"-{i}]")
        else:
            check = copy.deepcopy(exact[i % len(exact)])
            check["nodeid"] = check["nodeid"].replace("]", f"-{i}]")
        checks.append(check)
    doc = copy.deepcopy(local)
    doc["checks"] = checks
    doc["counts"] = dict(Counter(c["outcome"] for c in checks))
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
    exact = exact_check(
        f"suites/test_routing.py::test_routing[{SCRIPT_PAYLOAD}]",
        "failed",
        backend=SCRIPT_PAYLOAD,
        path=f"/{IMG_PAYLOAD}",
        message=SVG_PAYLOAD,
    )
    obs = exact["evidence"][0]["observed"][0]
    obs.update(backend=SCRIPT_PAYLOAD, instance=IMG_PAYLOAD, forwarded_prefix=SVG_PAYLOAD)
    exact["evidence"][0]["probe"]["headers"] = [["X-Test", SCRIPT_PAYLOAD]]
    weights = copy.deepcopy(next(c for c in doc["checks"] if c["kind"] == "weights"))
    weights["nodeid"] = f"suites/test_weights.py::test_weights[{IMG_PAYLOAD}]"
    item = weights["evidence"][0]
    item["verdict"]["backends"] = [SCRIPT_PAYLOAD, IMG_PAYLOAD, SVG_PAYLOAD]
    item["declared"] = {SCRIPT_PAYLOAD: 0.5, IMG_PAYLOAD: 0.3, SVG_PAYLOAD: 0.2}
    item["counts_by_instance"] = [{"backend": SCRIPT_PAYLOAD, "instance": IMG_PAYLOAD, "count": 3}]
    item["replicas"] = {"replicas": [{"replica": SCRIPT_PAYLOAD, "n": 3}], "summary": IMG_PAYLOAD}
    item["failures"] = {SCRIPT_PAYLOAD: 1}
    item["route"] = IMG_PAYLOAD
    gaps = gaps_item(name=SCRIPT_PAYLOAD)
    gaps["timeline"]["failed"] = {SCRIPT_PAYLOAD: gaps["timeline"]["failed"]["502"]}
    gaps["markers"] = {IMG_PAYLOAD: 1000, SVG_PAYLOAD: 1200}
    gaps["figures"][SCRIPT_PAYLOAD] = IMG_PAYLOAD
    doc["checks"] += [
        exact,
        weights,
        {
            "nodeid": f"suites/test_gaps.py::test_gap[{IMG_PAYLOAD}]",
            "kind": SCRIPT_PAYLOAD,
            "outcome": "failed",
            "duration": 1.0,
            "message": SCRIPT_PAYLOAD,
            "evidence": [gaps, {"type": SCRIPT_PAYLOAD, "body": IMG_PAYLOAD}],
            "findings": [],
        },
        # Fields the harness writes itself, in case a document was tampered with.
        {
            "nodeid": SVG_PAYLOAD,
            "kind": IMG_PAYLOAD,
            "outcome": IMG_PAYLOAD,
            "duration": SCRIPT_PAYLOAD,
            "message": IMG_PAYLOAD,
            "evidence": [],
            "findings": [],
        },
    ]
    return doc


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
    ):
        assert anchor in audit.ids, anchor
    text = " ".join(audit.text)
    assert "gate: PASSED" in " ".join(text.split())
    assert "3.7.15" in text, "the Traefik version"
    assert "http://127.0.0.1:51705" in text, "the proxy URL"
    # One plot per weighted split, and the numbers next to it.
    weights = [c for c in results["checks"] if c["kind"] == "weights"]
    assert audit.tags["svg"] == len(weights) == 4
    assert "p-value" in text and "planned N" in text and "per proxy replica" in text
    # Findings, grouped, each with its source file:line.
    assert "findings-spec" in audit.ids and "findings-legacy" in audit.ids
    for f in results["findings"]:
        assert f"{f['source']['file']}:{f['source']['line']}" in text


def test_failing_checks_first_and_expanded(tmp_path: Path) -> None:
    results = load("results-external-faults.json")
    html = render_report(results)
    audit = assert_inert(html)
    assert "gate: FAILED" in " ".join(" ".join(audit.text).split())
    failing = {c["nodeid"] for c in results["checks"] if c["outcome"] in ("failed", "error")}
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
    html = write_report(hostile_results(), tmp_path).read_text("utf-8")
    audit = assert_inert(html)
    text = "".join(audit.text)
    for payload in PAYLOADS:
        assert payload in text, f"{payload!r} is shown as text"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html.lower()
    # The plots were drawn with the hostile names in them, as escaped SVG text.
    plots = html.split('<svg class="plot"')[1:]
    assert len(plots) == 3, "the fixture's weights plot, the hostile one, the gaps timeline"
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in p.split("</svg>")[0] for p in plots)
    # The unknown evidence type is shown as JSON text.
    assert "&#34;body&#34;: &#34;\\&#34;&gt;&lt;img" in html or "&quot;body&quot;" in html


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
    check = doc["checks"][0]
    check["message"] = "request had Authorization: Bearer fake-bearer-77aa99"
    item = check["evidence"][0]
    item["probe"]["headers"] = [["Authorization", "Bearer fake-bearer-77aa99"]]
    item["message"] += (
        "\n-----BEGIN RSA PRIVATE KEY-----\nMIIEfakePrivateKeyMaterial\n"
        "-----END RSA PRIVATE KEY-----"
    )
    doc["checks"].append(
        {
            "nodeid": "x::y",
            "kind": "other",
            "outcome": "error",
            "duration": 0.0,
            "message": FAKE_KUBECONFIG,
            "evidence": [
                {
                    "type": "config",
                    "kubeconfig": FAKE_KUBECONFIG,
                    "auth": {"password": "hunter2-fake"},
                }
            ],
            "findings": [],
        }
    )
    html = write_report(doc, tmp_path).read_text("utf-8")
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


def test_gaps_timeline_shapes() -> None:
    """The gaps evidence is drawn when its keys exist, in either layout; otherwise shown as JSON."""
    item = gaps_item()
    tl = timeline_of(item)
    assert tl is not None and tl.unit == "ms" and tl.latency_unit == "ms"
    assert set(tl.failed) == {"502", "refused", "404"} and tl.gap == (1000.0, 1300.0)
    assert [m for m, _ in tl.markers] == [
        "apply_start",
        "apply_end",
        "observed_change",
        "convergence",
    ]
    # Rows instead of columns.
    cols = item["timeline"]
    rows = [
        {
            "t_ms": t,
            "ok": ok,
            "failed": {k: v[i] for k, v in cols["failed"].items()},
            "latency_ms": {"p99": cols["latency_ms"]["p99"][i]},
        }
        for i, (t, ok) in enumerate(zip(cols["bucket_start_ms"], cols["ok"], strict=True))
    ]
    tl_rows = timeline_of({**item, "timeline": rows})
    assert tl_rows is not None and tl_rows.failed["502"] == cols["failed"]["502"]
    # Long timelines are downsampled, counts kept.
    long = gaps_item(buckets=5000)
    tl_long = timeline_of(long)
    assert tl_long is not None and len(tl_long.t) <= 600
    assert sum(tl_long.failed["502"]) == sum(long["timeline"]["failed"]["502"])
    # Unusable timelines: no exception, no plot.
    for broken in ({"timeline": "x"}, {"timeline": {"t": ["a"]}}, {"timeline": {"t": [1, 2]}}, {}):
        assert timeline_of(broken) is None


def test_gaps_and_unknown_evidence_render(tmp_path: Path) -> None:
    doc = load("results-local.json")
    bare = {"type": "gaps", "figures": {"gap_ms": 12.5}, "note": "no timeline yet"}
    broken = {"type": "gaps", "timeline": {"t": [0, 1], "ok": "oops"}, "gap": "?"}
    doc["checks"] += [
        {
            "nodeid": "suites/test_gaps.py::test_gap[a]",
            "kind": "gaps",
            "outcome": "failed",
            "duration": 3.0,
            "message": "gap too long",
            "evidence": [gaps_item(), bare, broken, {"type": "future", "value": [1, 2]}],
            "findings": [],
        },
    ]
    html = render_report(doc)
    audit = assert_inert(html)
    assert "kind-gaps" in audit.ids
    text = " ".join(" ".join(audit.text).split())
    assert "300 ms" in text, "gap_ms shown with its unit"
    assert "over 5 repeats" in text and "280" in text and "320" in text
    assert "12.5 ms" in text and "no timeline yet" in text
    assert "timeline plot unavailable" in text, "the broken timeline says so"
    assert "&#34;future&#34;" in html or "&quot;future&quot;" in html
    weights = sum(1 for c in doc["checks"] if c["kind"] == "weights")
    assert audit.tags["svg"] == weights + 1


def test_weights_error_without_verdict_renders() -> None:
    doc = load("results-external-faults.json")
    check = copy.deepcopy(next(c for c in doc["checks"] if c["kind"] == "weights"))
    item = check["evidence"][0]
    for key in ("verdict", "replicas"):
        item.pop(key, None)
    item["error_check"] = {
        "verdict": "error",
        "error_rate": 0.2,
        "summary": "error: 20% of requests failed",
    }
    check["outcome"] = "error"
    doc["checks"] = [check]
    html = render_report(doc)
    assert_inert(html)
    assert "error: 20% of requests failed" in html
    assert "gate: <strong>FAILED" in html or "gate: <strong>ERROR" in html


def test_comparison_shown(tmp_path: Path) -> None:
    baseline = load("results-external-faults.json")
    current = copy.deepcopy(baseline)
    current["run_id"] = "now"
    passed = next(c for c in current["checks"] if c["outcome"] == "passed")
    passed["outcome"] = "failed"
    html = write_report(current, tmp_path, comparison=compare(current, baseline)).read_text()
    audit = assert_inert(html)
    assert "comparison" in audit.ids
    section = html[html.index('id="comparison"') : html.index('id="findings"')]
    assert passed["nodeid"].split("[")[0] in section and "regressed" in section


def test_missing_keys_do_not_break_the_report() -> None:
    assert "gate: <strong>ERROR" in render_report({})
    html = render_report(
        {
            "checks": [
                {"outcome": "passed"},
                {"evidence": [None, {"type": "exact"}]},
                {"kind": "weights", "evidence": [{"type": "weights"}]},
            ]
        }
    )
    assert_inert(html)


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
    template = next(c for c in doc["checks"] if c["kind"] == "weights")
    checks = []
    for i, verdict in enumerate((sequential, zero.to_dict())):
        check = copy.deepcopy(template)
        check["nodeid"] = f"suites/test_weights.py::test_weights[case-{i}]"
        check["outcome"] = "failed"
        check["evidence"][0]["verdict"] = verdict
        checks.append(check)
    doc["checks"] = checks
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


def run_shaped_gaps(gaps_ms: tuple[float, ...] = (250.0, 400.0)) -> dict[str, Any]:
    """Gap evidence as repeated runs, each with its own figures and timeline in seconds:
    another shape the report must draw without being told (bucket width in ms, times in s)."""
    runs = []
    for gap in gaps_ms:
        n, width = 40, 0.1
        start = 10
        stop = start + round(gap / 100)
        runs.append(
            {
                "gap_ms": gap,
                "failed": 5 * (stop - start),
                "failed_by_class": {"503": 5 * (stop - start)},
                "longest_streak": {"requests": 5 * (stop - start), "from_s": 1.0},
                "worst_window": {"error_rate": 0.5, "from_s": 1.0},
                "convergence_ms": gap + 20,
                "timeline": {
                    "bucket_ms": width * 1e3,
                    "t_s": [round(i * width, 4) for i in range(n)],
                    "good": [0 if start <= i < stop else 5 for i in range(n)],
                    "failed": {"503": [5 if start <= i < stop else 0 for i in range(n)]},
                    "latency_p50_ms": [1.0] * n,
                    "latency_p99_ms": [None if start <= i < stop else 3.0 for i in range(n)],
                    "markers": [
                        {"name": "apply_start", "t_s": 0.95},
                        {"name": "shown", "t_s": 1.3},
                    ],
                    "gap": {"from_s": start * width, "to_s": stop * width},
                },
            }
        )
    return {"type": "gaps", "strategy": "re-apply", "runs": runs}


def test_gaps_runs_shape_draws_the_worst_run() -> None:
    item = run_shaped_gaps()
    tl = timeline_of(item["runs"][1])
    assert tl is not None and tl.unit == "s" and tl.width == pytest.approx(0.1)
    assert tl.markers == [("apply_start", 0.95), ("shown", 1.3)]
    assert tl.gap == (pytest.approx(1.0), pytest.approx(1.4))
    assert set(tl.latency) == {"latency_p50_ms", "latency_p99_ms"} and tl.latency_unit == "ms"
    # Markers in ms on a timeline in s are converted.
    ms = {**item["runs"][0], "markers": [{"name": "x", "t_ms": 500}]}
    ms["timeline"] = {k: v for k, v in ms["timeline"].items() if k != "markers"}
    converted = timeline_of(ms)
    assert converted is not None and converted.markers == [("x", 0.5)]
    doc = load("results-local.json")
    doc["checks"] = [
        {
            "nodeid": "suites/test_gaps.py::test_gap[runs]",
            "kind": "gaps",
            "outcome": "passed",
            "duration": 9.0,
            "message": "",
            "evidence": [item],
            "findings": [],
        }
    ]
    view = build_view(doc).sections[0].blocks[0].gaps[0]
    assert view.which == "run 2 of 2, the one with the largest gap"
    assert view.svg is not None
    stats = {r.name: r for r in view.repeats}
    assert stats["gap_ms"].high == "400" and stats["longest_streak.requests"].n == 2
    html = render_report(doc)
    assert_inert(html)
    assert "timeline of run 2 of 2" in html
