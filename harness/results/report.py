"""The HTML report: one self-contained file that a reviewer opens from disk.

Built from the results document (``harness.results.document``), never from live objects, so a report
can be rebuilt from any results.json. ``write_report`` writes ``out_dir/index.html``:

- no network and no script: CSS inline, plots as inline SVG, expand/collapse with ``<details>``;
  a Content-Security-Policy forbids scripts and remote loads, as a second line of defence;
- everything that came from the proxy or the backends (names, paths, headers, bodies) is escaped:
  Jinja2 with autoescape on renders every value, and matplotlib escapes the text it puts into an
  SVG; each SVG is also parsed and refused if it holds a script, an event handler or an outside
  link (``_clean_svg``);
- no credentials: the results are redacted when written (``document.redact``), and are
  redacted again here, by key and by the look of the value (tokens, PEM keys, kubeconfig lines),
  because a report may be built from a document someone else wrote. Nothing is read from the
  environment;
- fast to open for hundreds of checks: exact checks are table rows (failing ones expanded with
  their one-screen message, passed ones in a collapsed table), and there is one SVG per weighted
  split and per gap measurement, nothing else.

The document is read as its schema (``harness.results.document.ResultsDocument``, version 2)
says, typed by ``harness.checks.evidence``: each check's stored outcome, summary and evidence,
rendered by the evidence's ``type``: ``exact`` (routing, strip, priority; each answer marked as
the verdict judged it), ``registration`` (the exact verdict of every step), ``weights`` (the split
against the declared weights with confidence intervals) and ``gaps`` (the timeline of the run with
the largest gap, the figures over the runs). Nothing here judges anything again.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import re
import statistics
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jinja2
from markupsafe import Markup, escape

from harness.checks.evidence import (
    GATE_FAILING,
    OUTCOMES,
    CheckRecord,
    ExactEvidence,
    GapRun,
    GapsEvidence,
    ObservedAnswer,
    WeightsEvidence,
)
from harness.intent.model import (
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_DUPLICATE_ROUTER,
    FINDING_EDGE_DEVIATION,
    FINDING_EXPLICIT_PRIORITY,
    FINDING_LEGACY_ANNOTATION,
    FINDING_LEGACY_API,
    FINDING_PREFIX_OUTRANKS_EXACT,
    FINDING_PROVIDER_PRECEDENCE,
    FINDING_REMOVED_API_GROUP,
    FINDING_RULE_LENGTH_ORDER,
    FINDING_TRAILING_SLASH_PREFIX,
    FINDING_UNDEFINED_TIE,
)
from harness.results.document import SECRET_KEYS, ResultsDocument
from harness.results.first_screen import (
    FirstScreen,
    build_first_screen,
    check_anchor,
    register_filters,
)

#: Check kinds in the order their sections appear; other kinds follow, sorted.
KIND_ORDER = ("routing", "strip", "priority", "edge", "registration", "weights", "gaps")
KIND_TITLES = {
    "routing": "Routing: status and backend of every probe",
    "strip": "Strip: upstream path and X-Forwarded-Prefix",
    "priority": "Priority: the route precedence picks",
    "edge": "Edge requests: unusual paths and hosts as Traefik handles them",
    "registration": "Registration: applying and removing Ingresses",
    "weights": "Weighted splits",
    "gaps": "Gaps while a change is applied",
}

#: Finding kinds by the group the report shows them in; unknown kinds go to "other".
FINDING_GROUPS: tuple[tuple[str, str, frozenset[str]], ...] = (
    (
        "spec",
        "Deviations from the Kubernetes Ingress spec (and RFC 3986, before routing)",
        frozenset(
            {
                FINDING_PREFIX_OUTRANKS_EXACT,
                FINDING_CHARACTER_WISE_PREFIX,
                FINDING_TRAILING_SLASH_PREFIX,
                FINDING_RULE_LENGTH_ORDER,
                FINDING_EXPLICIT_PRIORITY,
                FINDING_PROVIDER_PRECEDENCE,
                FINDING_EDGE_DEVIATION,
            }
        ),
    ),
    ("ties", "Undefined ties", frozenset({FINDING_UNDEFINED_TIE, FINDING_DUPLICATE_ROUTER})),
    (
        "legacy",
        "Legacy manifests: annotations and API versions Traefik v3 ignores as written",
        frozenset({FINDING_LEGACY_ANNOTATION, FINDING_LEGACY_API, FINDING_REMOVED_API_GROUP}),
    ),
    ("other", "Other notes", frozenset()),
)

#: Sort rank of outcomes inside a section: failing first, then what is not green.
_RANK = {
    o: i
    for i, o in enumerate(
        ("failed", "error", "invalid", "undefined", "report-only", "passed", "skipped")
    )
}

#: Bounds that keep a report small whatever the evidence holds.
MAX_JSON_CHARS = 20_000
MAX_MESSAGE_CHARS = 8_000
MAX_TIMELINE_BUCKETS = 300
MAX_LABEL_CHARS = 48

# -- redaction ----------------------------------------------------------------------------------

REDACTED = "<redacted>"
#: Keys whose values are never shown (in addition to ``harness.results.document.SECRET_KEYS``).
_SECRET_KEYS = SECRET_KEYS | {
    "access_token",
    "api-key",
    "api_key",
    "apikey",
    "bearer_token",
    "client-certificate-data",
    "client_secret",
    "cookie",
    "credentials",
    "id-token",
    "passwd",
    "private_key",
    "proxy-authorization",
    "refresh-token",
    "refresh_token",
    "secret",
    "set-cookie",
    "x-api-key",
}
_SECRET_VALUES = re.compile(
    r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)"  # PEM keys, certificates
    r"|\beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*"  # JWTs (service-account tokens)
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # user:password@ in URLs
    re.DOTALL,
)
#: Authorization values; "Basic" only before something base64-like, so that prose survives.
_SECRET_SCHEMES = re.compile(
    r"(?i)\b(bearer)\s+[\w.~+/=-]{8,}"
    r"|\b(basic)\s+(?=[a-z0-9+/]*[0-9+/=])[a-z0-9+/]{8,}={0,2}"
)
_SECRET_LINES = re.compile(
    r"(?im)^(\s*-?\s*(?:token|client-key-data|client-certificate-data|password|secret"
    r"|id-token|refresh-token|access-token)\s*:\s*)\S.*$"
)
_SECRET_PARAMS = re.compile(r"(?i)\b(token|access_token|password|secret|api_?key)=[^&\s\"']+")


def _scrub_text(text: str) -> str:
    text = _SECRET_VALUES.sub(REDACTED, text)
    text = _SECRET_SCHEMES.sub(lambda m: f"{m.group(1) or m.group(2)} {REDACTED}", text)
    text = _SECRET_LINES.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def scrub(value: Any) -> Any:
    """A copy of ``value`` without credentials: by key (also in ``[name, value]`` header pairs)
    and by the look of strings (bearer tokens, JWTs, PEM blocks, kubeconfig secret lines)."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in _SECRET_KEYS else scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and value[0].lower() in _SECRET_KEYS:
            return [value[0], REDACTED]
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _scrub_text(value)
    return value


# -- formatting ---------------------------------------------------------------------------------


def _num(value: Any, digits: int = 4) -> str:
    """A number for people: thousands separated, a few significant digits, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if 1e3 <= abs(value) < 1e15:
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.{max(digits - 1, 1)}g}"  # 0.00025, 1.94e-05
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value * 100:.{digits}f}%"


def _when(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return "-"
    moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: Any) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _source(value: Any) -> str:
    """file:line (field) of a declaration."""
    if not isinstance(value, Mapping):
        return "" if value is None else str(value)
    where = str(value.get("file", "?"))
    if value.get("line") is not None:
        where += f":{value['line']}"
    what = []
    if value.get("kind") or value.get("name"):
        what.append(f"{value.get('kind', '')} {value.get('name', '')!s}".strip())
    if value.get("field"):
        what.append(f"field {value['field']}")
    return f"{where} ({', '.join(what)})" if what else where


def _plain(value: Any, limit: int = 300) -> str:
    """A value for a table cell: scalars as they are, lists joined, anything else as JSON."""
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float | bool) or v is None for v in value
    ):
        text = ", ".join(_plain(v) for v in value)
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, sort_keys=True, default=str)
    elif isinstance(value, float | int):
        text = _num(value)
    else:
        text = "-" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _json(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    text = json.dumps(value, indent=1, sort_keys=True, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n\u2026 ({len(text) - limit:,} more characters)"
    return text


def _clip(value: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + f"\n\u2026 ({len(text) - limit:,} more)"


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings as (dotted key, cell text) rows."""
    if isinstance(value, Mapping) and value:
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, _plain(value))]


def _label(value: Any) -> str:
    """Text for a plot label: short (the tables carry the full text)."""
    text = str(value)
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "\u2026"


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# -- plots --------------------------------------------------------------------------------------

_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text as <text> elements: small, and escaped by matplotlib
    "text.parse_math": False,  # a backend named "a$b$" is text, not mathtext
    "text.usetex": False,
    "font.size": 8.5,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
_OK_COLOR = "#2ca02c"
_FAIL_COLORS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
_MARKER_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))
_SVG_NS = "{http://www.w3.org/2000/svg}"
_UNSAFE_TAGS = frozenset({"script", "foreignobject", "iframe", "object", "embed", "image", "a"})


class UnsafeSVG(ValueError):
    """An SVG that holds something other than drawing (never drawn into a report)."""


def _between(a: list[str], b: list[str], c: list[str], axis: int) -> bool:
    """Whether b lies on the segment a-c, all three on a line parallel to an axis (``axis``: the
    index of the shared coordinate, 1 for x, 2 for y)."""
    if not a[axis] == b[axis] == c[axis]:
        return False
    other = 3 - axis
    va, vb, vc = float(a[other]), float(b[other]), float(c[other])
    return min(va, vc) <= vb <= max(va, vc)


def _short_path(match: re.Match[str]) -> str:
    """Path data at 0.1 pt (a tenth of a CSS pixel and a bit), repeated vertices dropped: stair
    plots of long timelines are most of an SVG's size otherwise."""
    data = re.sub(r"(\d+\.\d)\d+", r"\1", match.group(1))
    out: list[list[str]] = []
    for segment in data.split("\n"):
        parts = segment.split()
        if not parts:
            continue
        if parts[0] == "L" and len(parts) == 3 and out and out[-1][0] in ("M", "L"):
            if parts == out[-1]:
                continue  # a zero-length segment
            # A point between two others on one horizontal or vertical line adds nothing.
            if len(out) >= 2 and out[-1][0] == "L" and out[-2][0] in ("M", "L"):
                a, b = out[-2], out[-1]
                if _between(a, b, parts, 1) or _between(a, b, parts, 2):
                    out[-1] = parts
                    continue
        out.append(parts)
    return ' d="' + " ".join(" ".join(p) for p in out) + '"'


def _clean_svg(svg: str, label: str) -> Markup:
    """matplotlib's SVG made fit to inline: no prolog, comments or metadata; refused when it
    holds a script, an event handler or a link to anything but itself."""
    start = svg.find("<svg")
    if start < 0:
        raise UnsafeSVG("not an SVG document")
    svg = svg[start:]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = re.sub(r"\n\s+", "\n", svg)
    svg = re.sub(r' d="([^"]*)"', _short_path, svg)
    root = ET.fromstring(svg)
    for element in root.iter():
        tag = str(element.tag).removeprefix(_SVG_NS).lower()
        if tag in _UNSAFE_TAGS:
            raise UnsafeSVG(f"SVG holds a <{tag}> element")
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                raise UnsafeSVG(f"SVG holds an event handler attribute {local!r}")
            if local == "href" and not value.startswith("#"):
                raise UnsafeSVG("SVG links outside itself")
            if "url(" in value and re.search(r"url\(\s*(?!#)", value):
                raise UnsafeSVG("SVG refers to an outside resource")
    head = f'<svg class="plot" role="img" aria-label="{escape(label)}"'
    return Markup(head + svg[len("<svg") :])


def _render_svg(
    draw: Any, salt: str, label: str, figsize: tuple[float, float], *, constrained: bool = True
) -> Markup:
    """Draw a figure with ``draw(fig)`` on an Agg canvas and return it as a clean inline SVG.

    ``constrained``: lay out with matplotlib's constrained layout (labels of any length fit);
    otherwise ``draw`` places the axes and the figure is cropped to what it drew (a third
    faster, for the larger timelines)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Per-figure hash salt: ids of clip paths and markers stay unique across inline SVGs.
    rc: Any = {**_RC, "svg.hashsalt": salt}
    # Warnings about glyphs missing from the font that measures text are noise here: the text
    # is written as text and the browser draws it with its own fonts.
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig = Figure(figsize=figsize, layout="constrained" if constrained else None)
        FigureCanvasAgg(fig)
        draw(fig)
        buffer = io.StringIO()
        fig.savefig(
            buffer,
            format="svg",
            metadata={"Date": None},
            bbox_inches=None if constrained else "tight",
            pad_inches=0.05,
        )
    return _clean_svg(_scoped_ids(buffer.getvalue(), salt), label)


def _scoped_ids(svg: str, salt: str) -> str:
    """Every id of one figure prefixed with its salt, and the references to them: matplotlib
    names its groups ``figure_1``, ``axes_1``, ... in every figure, and ids must be unique in
    the page the SVGs are inlined into."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def scoped(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group(1) + (f"{salt}-{name}" if name in ids else name)

    svg = re.sub(r'(\bid=")([^"]+)', scoped, svg)
    return re.sub(r'(url\(#|href="#)([^)"]+)', scoped, svg)


# -- view of exact evidence ---------------------------------------------------------------------


@dataclass
class ObservedView:
    count: int
    text: str
    #: "expected", "unexpected" or "" (not judged by this aspect).
    verdict: str


@dataclass
class ExactView:
    aspect: str
    outcome: str
    request: str
    scenario: str
    #: The registration step this verdict was made at ("" for an exact check).
    step: str
    expected: str
    #: A tutorial-named check's own claim ("" for a derived check).
    claim: str
    observed: list[ObservedView]
    rule: str
    priority: str
    route: str
    headers: list[str]
    tied: list[str]
    competing: list[str]
    reason: str
    message: str
    unexpected: int


def _describe_observation(obs: ObservedAnswer) -> str:
    if obs["error"]:
        return f"error: {obs['error']}"
    parts = [str(obs["status"])]
    backend, instance = obs["backend"], obs["instance"]
    if backend is None:
        parts.append("(no backend)")
    else:
        parts.append(f"{backend} ({instance})" if instance and instance != backend else backend)
    if obs["upstream_path"] is not None:
        parts.append(f"as {obs['upstream_path']}")
    if obs["forwarded_prefix"] is not None:
        parts.append(f"X-Forwarded-Prefix {obs['forwarded_prefix']}")
    if obs.get("location") is not None:
        parts.append(f"to {obs.get('location')}")
    for name, values in (obs.get("request_headers") or {}).items():
        parts.append(f"{name}: {', '.join(values) if values else 'absent'}")
    for name, value in (obs.get("response_headers") or {}).items():
        parts.append(f"response {name}: {'absent' if value is None else value}")
    return " ".join(parts)


_ANSWER_VERDICT = {True: "expected", False: "unexpected", None: ""}


def _exact_view(item: ExactEvidence, step: str = "") -> ExactView:
    probe = item["probe"]
    e = probe["expectation"]
    decided = e.get("decided_by") or {}
    observed = [
        ObservedView(obs["count"], _describe_observation(obs), _ANSWER_VERDICT[obs["expected"]])
        for obs in item["observed"]
    ]
    observed.sort(key=lambda o: (o.verdict != "unexpected", -o.count))
    priority = ""
    if decided.get("priority") is not None:
        how = "explicit" if decided.get("priority_source") == "explicit" else "rule length"
        priority = f"{decided['priority']} ({how})"

    def rule_of(c: Mapping[str, Any]) -> str:
        return f"{c['rule']} priority {c['priority']} ({c['route_id']})"

    return ExactView(
        aspect=item["aspect"],
        outcome=item["outcome"],
        request=f"{probe['method']} {probe['host']}{probe['path']}",
        scenario=item["scenario"],
        step=step,
        expected=item["expected"],
        claim=item.get("claim", ""),
        observed=observed,
        rule=str(decided.get("rule", "")),
        priority=priority,
        route=str(decided.get("route_id", "")),
        headers=[f"{name}: {value}" for name, value in probe["headers"]],
        tied=[rule_of(c) for c in e.get("tied", [])],
        competing=[rule_of(c) for c in e.get("competing", [])],
        reason=str(e.get("reason", "")),
        message=_clip(item["message"]),
        unexpected=item["unexpected"],
    )


# -- view of weights evidence -------------------------------------------------------------------


@dataclass
class BackendRow:
    name: str
    declared: float | None
    observed: float | None
    ci_low: float | None
    ci_high: float | None
    count: float | None
    expected_count: float | None
    #: observed - declared, in points.
    deviation: float | None
    #: The declared share lies outside the interval.
    outside: bool


@dataclass
class WeightsView:
    route: str
    source: str
    request: str
    test: str
    verdict: str
    summary: str
    rows: list[BackendRow]
    stats: list[tuple[str, str]]
    plan: list[tuple[str, str]]
    traffic: list[tuple[str, str]]
    failures: list[tuple[str, str]]
    instances: list[tuple[str, str, str]]
    replicas: list[dict[str, str]]
    replica_summary: str
    zero_weight: list[str]
    error_summary: str
    svg: Markup | None = None
    plot_error: str = ""


def _weights_rows(item: WeightsEvidence) -> list[BackendRow]:
    verdict = item["verdict"] or {}
    declared = item["declared"]
    names = [str(n) for n in _list(verdict.get("backends"))] or list(declared)
    counts = _list(verdict.get("counts"))
    if not counts:
        # No verdict (an error check): observed shares from the per-instance counts.
        by_backend: dict[str, float] = {}
        for row in item["counts_by_instance"]:
            by_backend[row["backend"]] = by_backend.get(row["backend"], 0.0) + row["count"]
        names += [n for n in sorted(by_backend) if n not in names]
        counts = [by_backend.get(n, 0.0) for n in names]
    total = sum(_float(c) or 0.0 for c in counts)
    observed = _list(verdict.get("observed")) or [
        (_float(c) or 0.0) / total if total else None for c in counts
    ]
    expected = _list(verdict.get("expected")) or [_float(declared.get(n)) for n in names]
    low, high = _list(verdict.get("ci_low")), _list(verdict.get("ci_high"))
    exp_counts = _list(verdict.get("expected_counts"))

    def at(seq: list[Any], i: int) -> float | None:
        return _float(seq[i]) if i < len(seq) else None

    rows = []
    for i, name in enumerate(names):
        d, o, lo, hi = at(expected, i), at(observed, i), at(low, i), at(high, i)
        if d is None:
            d = _float(declared.get(name))
        outside = d is not None and lo is not None and hi is not None and not lo <= d <= hi
        rows.append(
            BackendRow(
                name=name,
                declared=d,
                observed=o,
                ci_low=lo,
                ci_high=hi,
                count=at(counts, i),
                expected_count=at(exp_counts, i),
                deviation=None if d is None or o is None else (o - d) * 100.0,
                outside=outside,
            )
        )
    return rows


def _weights_view(item: WeightsEvidence, salt: str) -> WeightsView:
    verdict = item["verdict"] or {}
    plan = item["plan"]
    request = item["request"]
    error_check = item["error_check"]
    replicas = item["replicas"] or {}
    settings = item["settings"]
    rows = _weights_rows(item)

    stats: list[tuple[str, str]] = []

    def stat(label: str, value: Any, text: str | None = None) -> None:
        if value is not None:
            stats.append((label, text if text is not None else _num(value)))

    stat("test", verdict.get("test"), str(verdict.get("test", "")))
    stat("N (successful answers)", verdict.get("n"))
    stat("planned N", verdict.get("planned_n"))
    stat("sequential cap", verdict.get("max_n"))
    stat("stopped early", verdict.get("stopped_early"))
    if verdict.get("statistic") is not None:
        df = f" (df {verdict['df']})" if verdict.get("df") is not None else ""
        stat("chi-square", verdict.get("statistic"), _num(verdict.get("statistic")) + df)
    stat("p-value", verdict.get("p_value"))
    stat("e-value", verdict.get("e_value"))
    stat("log10 e-value", verdict.get("log10_e_value"))
    stat("reject at e-value", verdict.get("threshold"))
    stat("alpha (this check)", verdict.get("alpha", plan.get("alpha")))
    stat("planned power", verdict.get("power", plan.get("power")))
    stat("power reached", verdict.get("achieved_power"))
    stat("minimum deviation", verdict.get("min_deviation", plan.get("min_deviation")))
    stat("max |count - n share|", verdict.get("max_abs_deviation"))
    stat("interval level", verdict.get("ci_level"))

    plan_rows = [
        (key, _plain(plan[key]))
        for key in (
            "n",
            "n_fixed",
            "n_sequential",
            "n_zero_weight",
            "n_ncx2",
            "power_fixed",
            "alternative",
            "critical_value",
            "df",
            "concentration",
            "max_requests",
        )
        if plan.get(key) is not None
    ]
    traffic: list[tuple[str, str]] = [
        ("requests sent", _num(item["sent"])),
        ("wall time", _duration(item["wall_time"])),
        ("rate", f"{_num(item['rate'], 3)} requests/s"),
        ("mode", str(settings.get("mode", "-"))),
        ("error rate", _pct(error_check["error_rate"], 3)),
    ]
    failures = [(k, _num(v)) for k, v in sorted(item["failures"].items())]
    instances = [
        (r["backend"], r["instance"], _num(r["count"])) for r in item["counts_by_instance"]
    ]
    replica_rows = [
        {
            "replica": str(r.get("replica", "")),
            "n": _num(r.get("n")),
            "counts": _plain(r.get("counts")),
            "deviation": _num(r.get("max_abs_deviation")),
            "bound": _num(r.get("schedule_bound")),
            "within": _plain(r.get("within_schedule_bound")),
        }
        for r in _list(replicas.get("replicas"))
        if isinstance(r, Mapping)
    ]
    zero = [
        str(z.get("summary", ""))
        for z in _list(verdict.get("zero_weight"))
        if isinstance(z, Mapping)
    ]
    view = WeightsView(
        route=item["route"],
        source=_source(item["source"]),
        request=f"GET http://{request['host']}{request['path']}",
        test=str(verdict.get("test", "")),
        verdict=str(verdict.get("verdict", error_check["verdict"])),
        summary=str(verdict.get("summary", "")),
        rows=rows,
        stats=stats,
        plan=plan_rows,
        traffic=traffic,
        failures=failures,
        instances=instances,
        replicas=replica_rows,
        replica_summary=str(replicas.get("summary", "")),
        zero_weight=zero,
        error_summary=error_check["summary"],
    )
    if any(r.observed is not None or r.declared is not None for r in rows):
        try:
            view.svg = _weights_svg(rows, salt, f"observed shares of {view.route}")
        except Exception as exc:  # a report is still written when one plot cannot be drawn
            view.plot_error = f"{type(exc).__name__}: {exc}"
    return view


def _weights_svg(rows: Sequence[BackendRow], salt: str, label: str) -> Markup:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        for y, row in zip(ys, rows, strict=True):
            color = "#d62728" if row.outside else "#1f77b4"
            if row.observed is not None:
                if row.ci_low is not None and row.ci_high is not None:
                    err = [
                        [max(row.observed - row.ci_low, 0)],
                        [max(row.ci_high - row.observed, 0)],
                    ]
                    ax.errorbar(
                        [row.observed], [y], xerr=err, fmt="o", color=color, capsize=4, ms=5
                    )
                else:
                    ax.plot([row.observed], [y], "o", color=color, ms=5)
            if row.declared is not None:
                ax.plot([row.declared], [y], "|", color="black", ms=16, mew=2)
        ax.set_yticks(ys, labels=[_label(r.name) for r in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        shares = [v for r in rows for v in (r.observed, r.declared, r.ci_low, r.ci_high) if v]
        top = max(shares, default=1.0)
        # A little room on both sides, so that a dot at 0% or 100% is drawn whole.
        ax.set_xlim(-0.02, min(1.03, top * 1.15 + 0.03) if top < 0.8 else 1.03)
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x * 100:.0f}%")
        ax.set_xlabel("share of successful answers: observed (dot, interval) vs declared (bar)")
        ax.grid(axis="y", visible=False)

    return _render_svg(draw, salt, label, (7.0, 0.9 + 0.32 * max(len(rows), 1)))


# -- view of gaps evidence ----------------------------------------------------------------------


@dataclass
class Timeline:
    """A run's timeline as the plot draws it: seconds since the traffic started."""

    t: list[float]
    width: float
    ok: list[float]
    failed: dict[str, list[float]]
    latency: dict[str, list[float]]
    markers: list[tuple[str, float]]
    gap: tuple[float, float] | None


def _series(values: Sequence[float | int | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def timeline_of(run: GapRun) -> Timeline | None:
    """The timeline of one run of a change (None: the run kept none, or it is empty)."""
    raw = run.get("timeline")
    if raw is None or not raw["t_s"]:
        return None
    gap = raw["gap"]
    start, end = (None, None) if gap is None else (gap.get("from_s"), gap.get("to_s"))
    timeline = Timeline(
        t=_series(raw["t_s"]),
        width=raw["bucket_ms"] / 1e3,
        ok=_series(raw["good"]),
        failed={label: _series(v) for label, v in raw["failed"].items()},
        latency={
            "p50": _series(raw["latency_p50_ms"]),
            "p99": _series(raw["latency_p99_ms"]),
        },
        markers=[(m["name"], m["t_s"]) for m in raw["markers"] if m["t_s"] is not None],
        gap=None if start is None or end is None else (start, end),
    )
    return _downsample(timeline)


def _downsample(tl: Timeline) -> Timeline:
    """At most MAX_TIMELINE_BUCKETS buckets: counts summed, latency the worst of each group."""
    n = len(tl.t)
    if n <= MAX_TIMELINE_BUCKETS:
        return tl
    k = math.ceil(n / MAX_TIMELINE_BUCKETS)

    def summed(s: list[float]) -> list[float]:
        return [math.fsum(v for v in s[i : i + k] if not math.isnan(v)) for i in range(0, n, k)]

    def worst(s: list[float]) -> list[float]:
        return [
            max((v for v in s[i : i + k] if not math.isnan(v)), default=math.nan)
            for i in range(0, n, k)
        ]

    tl.t = tl.t[::k]
    tl.width *= k
    tl.ok = summed(tl.ok)
    tl.failed = {c: summed(s) for c, s in tl.failed.items()}
    tl.latency = {p: worst(s) for p, s in tl.latency.items()}
    return tl


def _gaps_svg(tl: Timeline, salt: str, label: str) -> Markup:
    def draw(fig: Any) -> None:
        import numpy as np

        rows = 2 if tl.latency else 1
        axes = fig.subplots(
            rows,
            1,
            sharex=True,
            squeeze=False,
            height_ratios=[2, 1][:rows],
            gridspec_kw={"left": 0.1, "right": 0.98, "top": 0.98, "bottom": 0.12, "hspace": 0.1},
        )
        ax = axes[0][0]
        # Runs of identical buckets become one step (a steady phase is one segment, not 300).
        series = [tl.ok, *tl.failed.values(), *tl.latency.values()]
        table = np.nan_to_num(np.array(series, dtype=float), nan=-1.0)
        keep = np.ones(len(tl.t), dtype=bool)
        keep[1:] = np.any(table[:, 1:] != table[:, :-1], axis=0)
        edges = np.array([*np.array(tl.t)[keep], tl.t[-1] + tl.width])

        def cut(values: list[float]) -> Any:
            return np.array(values, dtype=float)[keep]

        # Steps drawn as fill_between/plot with step="post": the value of a bucket holds until
        # the next edge, so the last one is repeated at the end edge. (stairs() is much slower:
        # it computes the data limits segment by segment.)
        def step(values: Any) -> Any:
            return np.append(values, values[-1:])

        base = np.zeros(int(keep.sum()))
        layers: list[tuple[str, Any, str]] = []
        layers.append(("succeeded", np.nan_to_num(cut(tl.ok)), _OK_COLOR))
        for i, (name, failed) in enumerate(sorted(tl.failed.items())):
            values = np.nan_to_num(cut(failed))
            if values.any():
                color = _FAIL_COLORS[i % len(_FAIL_COLORS)]
                layers.append((f"failed: {_label(name)}", values, color))
        for name, values, color in layers:
            ax.fill_between(
                edges,
                step(base),
                step(base + values),
                step="post",
                color=color,
                lw=0,
                alpha=0.85,
                label=name,
            )
            base = base + values
        ax.set_ylabel("requests per bucket")
        ax.set_ylim(0, max(float(base.max()), 1.0) * 1.05)
        if tl.latency:
            lat = axes[1][0]
            # Latency as a line through the middle of each bucket: half the vertices of steps.
            middles = (edges[:-1] + edges[1:]) / 2
            for name, latency in sorted(tl.latency.items()):
                lat.plot(
                    middles,
                    cut(latency),
                    lw=1.2,
                    label=f"latency {name}",
                )
            lat.set_ylabel("latency of good answers (ms)")
        for row in axes:
            a = row[0]
            if tl.gap is not None:
                a.axvspan(
                    *tl.gap, color="#d62728", alpha=0.15, lw=0, label="gap" if a is ax else None
                )
            for i, (name, at) in enumerate(tl.markers):
                a.axvline(
                    at,
                    color="black",
                    lw=1,
                    ls=_MARKER_STYLES[i % len(_MARKER_STYLES)],
                    label=_label(name) if a is ax else None,
                )
        axes[-1][0].set_xlabel("scheduled time since the traffic started (s)")
        handles: list[Any] = []
        labels: list[str] = []
        for row in axes:
            h, lab = row[0].get_legend_handles_labels()
            handles += h
            labels += lab
        if handles:
            fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.99, 0.98), fontsize=7.5)

    return _render_svg(draw, salt, label, (7.0, 3.6 if tl.latency else 2.4), constrained=False)


@dataclass
class RepeatStat:
    #: The figure's field (``_RUN_FIGURES``); the report shows its label.
    name: str
    n: int
    low: str
    median: str
    high: str
    values: str


@dataclass
class GapsView:
    title: str
    #: Which run the timeline shows, when it is one of the repeats.
    which: str
    figures: list[tuple[str, str]]
    repeats: list[RepeatStat]
    markers: list[tuple[str, str]]
    gap: str
    message: str
    raw: str
    svg: Markup | None = None
    plot_error: str = ""


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{_num(value)} ms"


def _gap_figures(evidence: GapsEvidence) -> list[tuple[str, str]]:
    """The strategy's figures over its runs, with a label and unit for a person."""
    d = evidence["distribution"]
    runs = d["runs"]
    failed, gap, conv = d["failed"], d["gap_ms"], d["convergence_ms"]
    outages, together = d["outages"], d["outage_total_ms"]
    by_class = ", ".join(f"{k} {_num(v)}" for k, v in d["failed_by_class_total"].items())
    budget = evidence["budget"]
    return [
        ("failed requests allowed per run", "report only" if budget is None else _num(budget)),
        ("failed requests, median / max", f"{_num(failed['median'])} / {_num(failed['max'])}"),
        ("failed requests by class, all runs", by_class or "none"),
        ("gap, median / max", f"{_ms(gap['median'])} / {_ms(gap['max'])}"),
        ("outages, median / max", f"{_num(outages['median'])} / {_num(outages['max'])}"),
        (
            "outages together, median / max",
            f"{_ms(together['median'])} / {_ms(together['max'])}",
        ),
        (
            "convergence, median (min to max)",
            f"{_ms(conv['median'])} ({_ms(conv['min'])} to {_ms(conv['max'])})",
        ),
        ("hitless runs", f"{d['hitless_runs']} of {runs}"),
        ("runs that never recovered", f"{d['unrecovered_runs']} of {runs}"),
        ("invalid runs (sender lag, requests lost)", f"{d['invalid_runs']} of {runs}"),
    ]


#: Per-run figures shown over the repeats: the field (its dotted path in ``GapRun``, the key of
#: its label and definition), and how to read it from a run.
_RUN_FIGURES: tuple[tuple[str, Callable[[GapRun], float | None]], ...] = (
    ("failed", lambda r: r["failed"]),
    ("gap_ms", lambda r: r["gap_ms"]),
    ("outages", lambda r: r["outages"]),
    ("outage_total_ms", lambda r: r["outage_total_ms"]),
    ("convergence_ms", lambda r: r["convergence_ms"]),
    ("shown_ms", lambda r: r["shown_ms"]),
    ("change_call_ms", lambda r: r["change_call_ms"]),
    ("longest_streak.requests", lambda r: r["longest_streak"].get("requests")),
    ("worst_window.error_rate", lambda r: r["worst_window"].get("error_rate")),
    ("mixed_after_convergence", lambda r: r["mixed_after_convergence"]),
    ("sender.lag_p99_ms", lambda r: r["sender"].get("lag_p99_ms")),
)


def _repeat_stats(runs: Sequence[GapRun]) -> list[RepeatStat]:
    """min / median / max of each per-run figure over the runs that have it."""
    out = []
    for name, read in _RUN_FIGURES:
        values = [float(v) for v in (read(r) for r in runs) if v is not None]
        if not values:
            continue
        shown = ", ".join(_num(v) for v in values[:40]) + (" \u2026" if len(values) > 40 else "")
        out.append(
            RepeatStat(
                name,
                len(values),
                _num(min(values)),
                _num(statistics.median(values)),
                _num(max(values)),
                shown,
            )
        )
    return out


def _gaps_view(evidence: GapsEvidence, salt: str) -> GapsView:
    runs = evidence["repeats"]
    parts = [evidence["strategy"], evidence["title"], evidence["route"] or evidence["command"]]
    title = " \u00b7 ".join(p for p in parts if p)
    # The timeline of the run with the largest gap.
    timed = [r for r in runs if r.get("timeline") is not None]
    which, tl = "", None
    if timed:
        worst = max(timed, key=lambda r: -1.0 if r["gap_ms"] is None else r["gap_ms"])
        which = f"run {runs.index(worst) + 1} of {len(runs)}, the one with the largest gap"
        tl = timeline_of(worst)
    raw = {
        **evidence,
        "repeats": [{k: v for k, v in r.items() if k != "timeline"} for r in runs],
    }
    view = GapsView(
        title=title,
        which=which,
        figures=_gap_figures(evidence),
        repeats=_repeat_stats(runs),
        markers=[(name, f"{_num(at)} s") for name, at in (tl.markers if tl else [])],
        gap="" if tl is None or tl.gap is None else f"{_num(tl.gap[0])} to {_num(tl.gap[1])} s",
        message=_clip(evidence["summary"]),
        raw=_json(raw),
    )
    if tl is not None:
        try:
            view.svg = _gaps_svg(tl, salt, f"timeline {title}".strip())
        except Exception as exc:  # the figures and the JSON are still shown
            view.plot_error = f"{type(exc).__name__}: {exc}"
    return view


# -- checks, sections, summary ------------------------------------------------------------------


@dataclass
class CheckView:
    index: int
    anchor: str
    nodeid: str
    name: str
    kind: str
    outcome: str
    duration: float
    message: str
    headline: str
    exact: list[ExactView] = field(default_factory=list)
    weights: list[WeightsView] = field(default_factory=list)
    gaps: list[GapsView] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.outcome in GATE_FAILING

    @property
    def expanded(self) -> bool:
        """Open when the page loads: failing checks, and the plots of weights and gaps."""
        return self.failing or bool(self.weights or self.gaps)

    @property
    def block(self) -> bool:
        """Shown as its own block (else: a row of the section's compact table)."""
        return self.outcome not in ("passed", "skipped") or bool(self.weights or self.gaps)


@dataclass
class SectionView:
    kind: str
    title: str
    anchor: str
    counts: list[tuple[str, int]]
    blocks: list[CheckView]
    compact: list[CheckView]


def _check_view(index: int, check: CheckRecord) -> CheckView:
    nodeid = check["nodeid"]
    view = CheckView(
        index=index,
        anchor=check_anchor(nodeid),
        nodeid=nodeid,
        name=nodeid.split("::", 1)[-1],
        kind=check["kind"],
        outcome=check["outcome"],
        duration=check["duration"],
        message=_clip(check["message"]),
        headline=check["summary"][:200],
    )
    evidence = check["evidence"]
    salt = f"h{index}"
    if evidence is None:
        pass  # the check ended in its setup: its message says why
    elif evidence["type"] == "exact":
        view.exact.append(_exact_view(evidence))
    elif evidence["type"] == "registration":
        view.exact += [_exact_view(s["verdict"], s["step"]) for s in evidence["steps"]]
    elif evidence["type"] == "weights":
        view.weights.append(_weights_view(evidence, salt))
    else:
        view.gaps.append(_gaps_view(evidence, salt))
    return view


def _sort_key(view: CheckView) -> tuple[int, str]:
    return (_RANK.get(view.outcome, 5), view.nodeid)


def _section_order(view: CheckView) -> tuple[int, str, int, str]:
    """The order of the sections, then failing first: the index lists checks as the page does."""
    known = KIND_ORDER.index(view.kind) if view.kind in KIND_ORDER else len(KIND_ORDER)
    return (known, view.kind if known == len(KIND_ORDER) else "", *_sort_key(view))


def _sections(views: list[CheckView]) -> list[SectionView]:
    by_kind: dict[str, list[CheckView]] = {}
    for view in views:
        by_kind.setdefault(view.kind, []).append(view)
    order = [k for k in KIND_ORDER if k in by_kind] + sorted(
        k for k in by_kind if k not in KIND_ORDER
    )
    sections = []
    for i, kind in enumerate(order):
        checks = sorted(by_kind[kind], key=_sort_key)
        counted = {str(o): sum(1 for c in checks if c.outcome == o) for o in OUTCOMES}
        sections.append(
            SectionView(
                kind=kind,
                title=KIND_TITLES.get(kind, f"Other checks: {kind}"),
                anchor=f"kind-{kind}" if kind in KIND_TITLES else f"kind-other-{i}",
                counts=[(o, n) for o, n in counted.items() if n],
                blocks=[c for c in checks if c.block],
                compact=[c for c in checks if not c.block],
            )
        )
    return sections


@dataclass
class FindingView:
    kind: str
    severity: str
    message: str
    source: str
    routes: str


@dataclass
class FindingGroup:
    key: str
    title: str
    findings: list[FindingView]


def _findings(results: ResultsDocument) -> list[FindingGroup]:
    groups = {key: FindingGroup(key, title, []) for key, title, _ in FINDING_GROUPS}
    for f in results["findings"]:
        key = next((k for k, _, kinds in FINDING_GROUPS if f["kind"] in kinds), "other")
        groups[key].findings.append(
            FindingView(
                kind=f["kind"],
                severity=f["severity"],
                message=f["message"],
                source=_source(f.get("source")),
                routes=", ".join(f.get("routes", [])),
            )
        )
    for group in groups.values():
        group.findings.sort(key=lambda v: (v.kind, v.source, v.message))
    return [g for g in groups.values() if g.findings]


@dataclass
class MigrationRow:
    """One annotation of an ingress-nginx Ingress and its fate on Traefik's NGINX provider."""

    scenario: str
    ingress: str
    key: str
    value: str
    fate: str
    note: str
    source: str
    #: The failed (or error) checks of the routes that depend on it: (anchor, label).
    failed: list[tuple[str, str]]


def _migration(results: ResultsDocument) -> list[MigrationRow]:
    """The migration section: each annotation found, its fate, and the checks of its routes
    that failed (those it may have caused; a changed or ignored annotation is the suspect)."""
    failing = [c for c in results["checks"] if c["outcome"] in GATE_FAILING]
    rows = []
    for m in results.get("migration") or []:
        routes, scenario = set(m.get("routes", [])), str(m.get("scenario", ""))
        failed = [
            (check_anchor(c["nodeid"]), f"{c['kind']} {c['summary'][:120]}")
            for c in failing
            if c["subject"]["scenario"] == scenario and c["subject"]["route"] in routes
        ]
        rows.append(
            MigrationRow(
                scenario=scenario,
                ingress=str(m.get("ingress", "")),
                key=str(m.get("key", "")),
                value=_plain(m.get("value", ""), 120),
                fate=str(m.get("fate", "")),
                note=_plain(m.get("note", "")),
                source=_source(m.get("source")),
                failed=failed,
            )
        )
    order = {"changed": 0, "ignored": 1, "honoured": 2}
    rows.sort(key=lambda r: (order.get(r.fate, 3), r.scenario, r.ingress, r.key))
    return rows


def _target(target: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(headline rows: kind, proxy version, URLs; every field, flattened)."""
    flat = _flatten(target)
    head = [("kind", str(target.get("target", "-")))]
    version = _map(target.get("traefik")).get("version")
    if version is not None:
        head.append(("Traefik version", str(version)))
    head += [(k, v) for k, v in flat if k.rsplit(".", 1)[-1].endswith("url")]
    return head, flat


@dataclass
class ReportView:
    run_id: str
    schema_version: str
    harness_version: str
    started: str
    finished: str
    duration: str
    gate: str
    gate_reasons: list[str]
    counts: list[tuple[str, int]]
    total: int
    target_head: list[tuple[str, str]]
    target_all: list[tuple[str, str]]
    parameters: list[tuple[str, str]]
    findings: list[FindingGroup]
    n_findings: int
    migration: list[MigrationRow]
    failing: list[CheckView]
    sections: list[SectionView]
    #: The stored comparison with the baseline (``Comparison.to_dict``), or None.
    comparison: dict[str, Any] | None
    anchors: dict[str, str]
    first_screen: FirstScreen
    #: Why the run was not compared with its baseline (None: it was, or had none).
    baseline_problem: str | None


def build_view(results: ResultsDocument) -> ReportView:
    """Everything the template shows, from the (redacted) results document alone: its stored
    gate and comparison, never decided again here."""
    results = cast(ResultsDocument, scrub(results))
    views = [_check_view(i, c) for i, c in enumerate(results["checks"])]
    counts = results["counts"]
    first_screen = build_first_screen(results)
    started, finished = results["started"], results["finished"]
    duration = _duration(finished - started) if finished >= started > 0 else "-"
    head, flat = _target(results["target"])
    findings = _findings(results)
    return ReportView(
        run_id=results["run_id"],
        schema_version=str(results["schema_version"]),
        harness_version=results["harness_version"],
        started=_when(started),
        finished=_when(finished),
        duration=duration,
        gate=first_screen.verdict,
        gate_reasons=first_screen.reasons,
        counts=[(str(o), counts.get(o, 0)) for o in OUTCOMES],
        total=len(views),
        target_head=head,
        target_all=flat,
        parameters=_flatten(results["parameters"]),
        findings=findings,
        n_findings=sum(len(g.findings) for g in findings),
        migration=_migration(results),
        failing=sorted((v for v in views if v.failing), key=_section_order),
        sections=_sections(views),
        comparison=results["comparison"],
        anchors={v.nodeid: v.anchor for v in views},
        first_screen=first_screen,
        baseline_problem=results["baseline_problem"],
    )


# -- rendering ----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.results", "templates"),
        autoescape=True,  # every value is escaped unless it is Markup made here (the SVGs)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, pct=_pct, when=_when, duration=_duration, source=_source)
    register_filters(env)
    return env


def render_report(results: ResultsDocument) -> str:
    """The report as one HTML document (see the module docstring)."""
    view = build_view(results)
    return _environment().get_template("report.html.j2").render(r=view)


def write_report(results: ResultsDocument, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` (atomically) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report(results), "utf-8")
    tmp.replace(path)
    return path
