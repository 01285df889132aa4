"""The HTML report: one self-contained file that a reviewer opens from disk.

Built from the results document (``harness/results.py``), never from live objects, so a report
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

Evidence types are rendered by their ``type``: ``exact`` (routing, strip, priority), ``weights``
(the split against the declared weights with confidence intervals) and ``gaps`` (the timeline of
an ingress change). Every key is optional: what is missing is left out, and evidence that cannot
be drawn is shown as JSON.
"""

from __future__ import annotations

import datetime
import io
import itertools
import json
import math
import re
import statistics
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from harness.intent.model import (
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_DUPLICATE_ROUTER,
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
from harness.results.baseline import Comparison, observation_matches
from harness.results.document import OUTCOMES, SECRET_KEYS
from harness.results.first_screen import (
    FirstScreen,
    build_first_screen,
    check_anchor,
    register_filters,
)

#: Check kinds in the order their sections appear; other kinds follow, sorted.
KIND_ORDER = ("routing", "strip", "priority", "registration", "weights", "gaps")
KIND_TITLES = {
    "routing": "Routing: status and backend of every probe",
    "strip": "Strip: upstream path and X-Forwarded-Prefix",
    "priority": "Priority: the route precedence picks",
    "registration": "Registration: applying and removing Ingresses",
    "weights": "Weighted splits",
    "gaps": "Gaps while a change is applied",
}

#: Finding kinds by the group the report shows them in; unknown kinds go to "other".
FINDING_GROUPS: tuple[tuple[str, str, frozenset[str]], ...] = (
    (
        "spec",
        "Deviations from the Kubernetes Ingress spec",
        frozenset(
            {
                FINDING_PREFIX_OUTRANKS_EXACT,
                FINDING_CHARACTER_WISE_PREFIX,
                FINDING_TRAILING_SLASH_PREFIX,
                FINDING_RULE_LENGTH_ORDER,
                FINDING_EXPLICIT_PRIORITY,
                FINDING_PROVIDER_PRECEDENCE,
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

#: Sort rank of outcomes inside a section: failing first.
_RANK = {"failed": 0, "error": 1, "undefined": 2, "passed": 3, "skipped": 4}
_FAILING = frozenset({"failed", "error"})

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
    return _clean_svg(buffer.getvalue(), label)


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
    expected: str
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


def _describe_observation(obs: Mapping[str, Any]) -> str:
    if obs.get("error"):
        return f"error: {obs['error']}"
    parts = [str(obs.get("status", "?"))]
    if obs.get("backend") is None:
        parts.append("(no backend)")
    else:
        backend = str(obs["backend"])
        instance = obs.get("instance")
        parts.append(f"{backend} ({instance})" if instance and instance != backend else backend)
    if obs.get("upstream_path") is not None:
        parts.append(f"as {obs['upstream_path']}")
    if obs.get("forwarded_prefix") is not None:
        parts.append(f"X-Forwarded-Prefix {obs['forwarded_prefix']}")
    return " ".join(parts)


def _exact_view(item: Mapping[str, Any]) -> ExactView:
    probe = _map(item.get("probe"))
    e = _map(probe.get("expectation"))
    decided = _map(e.get("decided_by"))
    observed = []
    unexpected = 0
    for obs in _list(item.get("observed")):
        if not isinstance(obs, Mapping):
            continue
        count = int(_float(obs.get("count")) or 0)
        match = observation_matches(item, obs)
        if match is False:
            unexpected += count
        verdict = {True: "expected", False: "unexpected", None: ""}[match]
        observed.append(ObservedView(count, _describe_observation(obs), verdict))
    observed.sort(key=lambda o: (o.verdict != "unexpected", -o.count))
    priority = ""
    if decided.get("priority") is not None:
        how = "explicit" if decided.get("priority_source") == "explicit" else "rule length"
        priority = f"{decided['priority']} ({how})"
    host = probe.get("host", "")
    method = probe.get("method", "GET")
    path = probe.get("path", "")
    request = f"{method} {host}{path}" if host or path else str(item.get("probe_id", ""))

    def rule_of(c: Any) -> str:
        if not isinstance(c, Mapping):
            return str(c)
        return f"{c.get('rule', '?')} priority {c.get('priority', '?')} ({c.get('route_id', '?')})"

    return ExactView(
        aspect=str(item.get("aspect", "")),
        outcome=str(item.get("outcome", "")),
        request=request,
        scenario=str(item.get("scenario", "")),
        expected=str(item.get("expected", "")),
        observed=observed,
        rule=str(decided.get("rule", "")),
        priority=priority,
        route=str(decided.get("route_id", "")),
        headers=[
            f"{h[0]}: {h[1]}" if isinstance(h, list | tuple) and len(h) == 2 else str(h)
            for h in _list(probe.get("headers"))
        ],
        tied=[rule_of(c) for c in _list(e.get("tied"))],
        competing=[rule_of(c) for c in _list(e.get("competing"))],
        reason=str(e.get("reason", "")),
        message=_clip(item.get("message", "")),
        unexpected=unexpected,
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
    message: str
    svg: Markup | None = None
    plot_error: str = ""


def _weights_rows(item: Mapping[str, Any]) -> list[BackendRow]:
    verdict = _map(item.get("verdict"))
    declared = _map(item.get("declared"))
    names = [str(n) for n in _list(verdict.get("backends"))] or [str(n) for n in declared]
    counts = _list(verdict.get("counts"))
    if not counts:
        # No verdict (an error check): observed shares from the per-instance counts.
        by_backend: dict[str, float] = {}
        for row in _list(item.get("counts_by_instance")):
            if isinstance(row, Mapping):
                name = str(row.get("backend"))
                by_backend[name] = by_backend.get(name, 0.0) + (_float(row.get("count")) or 0.0)
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


def _weights_view(item: Mapping[str, Any], salt: str) -> WeightsView:
    verdict = _map(item.get("verdict"))
    plan = _map(item.get("plan"))
    request = _map(item.get("request"))
    error_check = _map(item.get("error_check"))
    replicas = _map(item.get("replicas"))
    settings = _map(item.get("settings"))
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
    traffic: list[tuple[str, str]] = []
    if item.get("sent") is not None:
        traffic.append(("requests sent", _num(item.get("sent"))))
    if item.get("wall_time") is not None:
        traffic.append(("wall time", _duration(item.get("wall_time"))))
    if item.get("rate") is not None:
        traffic.append(("rate", f"{_num(item.get('rate'), 3)} requests/s"))
    if settings.get("mode") is not None:
        traffic.append(("mode", str(settings.get("mode"))))
    if error_check.get("error_rate") is not None:
        traffic.append(("error rate", _pct(error_check.get("error_rate"), 3)))
    failures_raw = _map(item.get("failures"))
    failures = [
        (str(k), _num(v)) for k, v in sorted(failures_raw.items(), key=lambda kv: str(kv[0]))
    ]
    instances = [
        (str(r.get("backend", "")), str(r.get("instance", "")), _num(r.get("count")))
        for r in _list(item.get("counts_by_instance"))
        if isinstance(r, Mapping)
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
    host, path = request.get("host", ""), request.get("path", "")
    view = WeightsView(
        route=str(item.get("route", "")),
        source=_source(item.get("source")),
        request=f"GET http://{host}{path}" if host or path else "",
        test=str(verdict.get("test", "")),
        verdict=str(verdict.get("verdict", error_check.get("verdict", ""))),
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
        error_summary=str(error_check.get("summary", "")),
        message=_clip(item.get("message", "")),
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

_TIME_KEYS = (
    "bucket_start",
    "bucket_starts",
    "bucket_start_s",
    "bucket_start_ms",
    "starts",
    "start",
    "t",
    "t_s",
    "t_ms",
    "time",
    "times",
    "buckets",
)
_OK_KEYS = ("ok", "good", "success", "successes", "succeeded", "ok_counts", "good_counts")
_FAIL_KEYS = ("failed", "failures", "failed_by_class", "errors", "fail", "failed_counts")
_LATENCY_KEYS = ("latency", "latency_ms", "latencies", "latency_percentiles", "latency_ms_by_p")
_WIDTH_KEYS = ("bucket_width", "bucket", "width", "bucket_s", "bucket_ms", "bucket_width_ms")


@dataclass
class Timeline:
    """A gaps timeline in the shape the plot needs, from whatever shape the evidence has."""

    t: list[float]
    width: float
    unit: str
    offset: float
    ok: list[float] | None
    failed: dict[str, list[float]]
    latency: dict[str, list[float]]
    latency_unit: str
    markers: list[tuple[str, float]]
    gap: tuple[float, float] | None


def _series(value: Any, n: int | None = None) -> list[float] | None:
    if not isinstance(value, list | tuple) or not value:
        return None
    out = []
    for v in value:
        f = _float(v)
        if f is None and v is not None:
            return None
        out.append(math.nan if f is None else f)
    return out[:n] if n is not None else out


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, Any]:
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return key, mapping[key]
    return "", None


def _columns(rows: list[Any]) -> dict[str, Any]:
    """A timeline given as a list of per-bucket rows, as columns (nested mappings too)."""
    out: dict[str, Any] = {}
    n = len(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            continue
        for key, value in row.items():
            if isinstance(value, Mapping):
                inner = out.setdefault(key, {})
                for k, v in value.items():
                    inner.setdefault(str(k), [0.0] * n)[i] = v
            else:
                out.setdefault(key, [None] * n)[i] = value
    return out


def _series_map(value: Any, n: int, default_name: str) -> dict[str, list[float]]:
    if isinstance(value, Mapping):
        out = {}
        for key, inner in value.items():
            series = _series(inner, n)
            if series is not None:
                out[str(key)] = series
        return out
    series = _series(value, n)
    return {default_name: series} if series is not None else {}


def _unit_of(key: str, mapping: Mapping[str, Any]) -> str:
    unit = mapping.get("unit", mapping.get("time_unit"))
    if isinstance(unit, str) and unit:
        return unit
    if key.endswith("_ms"):
        return "ms"
    if key.endswith("_s"):
        return "s"
    return ""


_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_TIME_OF = ("t", "t_s", "t_ms", "time", "time_s", "time_ms", "at", "at_s", "at_ms")
_BOUNDS = (
    ("start", "end"),
    ("from", "to"),
    ("start_s", "end_s"),
    ("from_s", "to_s"),
    ("start_ms", "end_ms"),
    ("from_ms", "to_ms"),
)


def _key_unit(key: str) -> str:
    """The time unit a key names by its suffix (``t_ms``: ms), or ""."""
    return next((u for u in ("ms", "us", "s") if key.endswith("_" + u)), "")


def _convert(value: float, unit: str, target: str) -> float:
    """``value`` from ``unit`` to ``target``; unchanged when either is unknown."""
    if unit in _SCALE and target in _SCALE and unit != target:
        return value * _SCALE[unit] / _SCALE[target]
    return value


def _interval(value: Any, unit: str) -> tuple[float, float] | None:
    """[start, end] or {start, end} (also from/to, with _s or _ms), in ``unit``."""
    start = end = None
    if isinstance(value, Mapping):
        for a, b in _BOUNDS:
            start, end = _float(value.get(a)), _float(value.get(b))
            if start is not None and end is not None:
                start, end = (_convert(v, _key_unit(a), unit) for v in (start, end))
                break
    elif isinstance(value, list | tuple) and len(value) == 2:
        start, end = _float(value[0]), _float(value[1])
    if start is None or end is None or end < start:
        return None
    return start, end


def _markers(value: Any, unit: str) -> list[tuple[str, float]]:
    """Named instants: {name: t}, {name: {t: ...}}, [{name, t}], with any of the time keys."""

    def timed(raw: Any) -> list[float]:
        if isinstance(raw, Mapping):
            key = next((k for k in _TIME_OF if _float(raw.get(k)) is not None), None)
            if key is None:
                return []
            return [_convert(_float(raw[key]) or 0.0, _key_unit(key), unit)]
        values = raw if isinstance(raw, list | tuple) else [raw]
        return [f for f in (_float(v) for v in values) if f is not None]

    out: list[tuple[str, float]] = []
    if isinstance(value, Mapping):
        for name, raw in value.items():
            out.extend((str(name), at) for at in timed(raw))
    elif isinstance(value, list | tuple):
        for m in value:
            if isinstance(m, Mapping):
                name = m.get("name", m.get("label", m.get("kind", "marker")))
                out.extend((str(name), at) for at in timed(m))
    return out


def timeline_of(item: Mapping[str, Any]) -> Timeline | None:
    """The timeline of a gaps evidence item, or None when it has none that can be drawn.

    Accepts columns (``{"t_s": [...], "good": [...], "failed": {class: [...]}, ...}``) or a list
    of per-bucket rows, under the names listed in ``_TIME_KEYS``, ``_OK_KEYS`` and so on; times
    of markers and of the gap are converted to the timeline's unit when their keys name one.
    """
    raw = item.get("timeline")
    if isinstance(raw, list):
        raw = _columns(raw)
    if not isinstance(raw, Mapping):
        return None
    t_key, t_raw = _first(raw, _TIME_KEYS)
    t = _series(t_raw)
    if not t or any(math.isnan(v) for v in t):
        return None
    n = len(t)
    ok = _series(_first(raw, _OK_KEYS)[1], n)
    failed = _series_map(_first(raw, _FAIL_KEYS)[1], n, "failed")
    latency_key, latency_raw = _first(raw, _LATENCY_KEYS)
    latency = _series_map(latency_raw, n, "latency")
    for key, value in raw.items():  # percentiles as their own columns: p50, latency_p99_ms, ...
        if re.fullmatch(r"(latency_)?p\d+(\.\d+)?(_ms)?", str(key)):
            series = _series(value, n)
            if series is not None:
                latency[str(key)] = series
    if ok is None and not failed:
        return None
    unit = _unit_of(t_key, raw)
    steps = [b - a for a, b in itertools.pairwise(t) if b > a]
    width_key, width_raw = _first(raw, _WIDTH_KEYS)
    width = _float(width_raw)
    if steps:
        width = statistics.median(steps)  # the buckets themselves say it, in their own unit
    elif width is not None and width > 0:
        width = _convert(width, _key_unit(width_key), unit)
    else:
        width = 1.0
    figures = _map(item.get("figures"))
    markers = _markers(item.get("markers", raw.get("markers")), unit)
    gap = (
        _interval(item.get("gap"), unit)
        or _interval(raw.get("gap"), unit)
        or _interval(figures.get("gap"), unit)
        or _interval(item.get("gap_interval"), unit)
        or _interval([figures.get("gap_start"), figures.get("gap_end")], unit)
    )
    # Absolute clocks (Unix time) are shown relative to the first bucket.
    offset = t[0] if t[0] > 1e8 else 0.0
    lat_unit = "ms" if "ms" in latency_key or any("ms" in k for k in latency) else ""
    timeline = Timeline(
        t=[v - offset for v in t],
        width=width,
        unit=unit,
        offset=offset,
        ok=ok,
        failed=failed,
        latency=latency,
        latency_unit=lat_unit,
        markers=[(name, at - offset) for name, at in markers],
        gap=None if gap is None else (gap[0] - offset, gap[1] - offset),
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
    tl.ok = None if tl.ok is None else summed(tl.ok)
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
        series = [tl.ok or [0.0] * len(tl.t), *tl.failed.values(), *tl.latency.values()]
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
        if tl.ok is not None:
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
                    label=f"latency {_label(re.sub(r'^latency_|_ms$', '', name))}",
                )
            lat.set_ylabel(f"latency ({tl.latency_unit})" if tl.latency_unit else "latency")
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
        unit = f" ({tl.unit})" if tl.unit else ""
        since = " since the first bucket" if tl.offset else ""
        axes[-1][0].set_xlabel(f"time{unit}{since}")
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


def _figure_text(name: str, value: Any) -> str:
    if isinstance(value, Mapping) and all(_float(v) is not None for v in value.values()):
        return ", ".join(f"{k} {_num(v)}" for k, v in value.items()) or "none"
    if name.endswith("_ms") and _float(value) is not None:
        return f"{_num(value)} ms"
    if name.endswith("_rate") and _float(value) is not None:
        return _pct(value)
    return _plain(value)


#: Keys of a gaps evidence item that are structure, not figures (when it has no "figures").
_GAPS_STRUCTURE = frozenset(
    {
        "type",
        "timeline",
        "markers",
        "gap",
        "repeats",
        "runs",
        "figures",
        "message",
        "summary",
        "name",
        "change",
        "route",
        "scenario",
        "intervals",
        "problems",
        "meta",
        "distribution",
    }
)


def _item_figures(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """An item's figures: its "figures", else its scalar fields (and mappings of scalars)."""
    figures = item.get("figures")
    if isinstance(figures, Mapping):
        return figures
    return {
        k: v
        for k, v in item.items()
        if k not in _GAPS_STRUCTURE
        and (
            isinstance(v, int | float | bool)
            or (isinstance(v, Mapping) and all(isinstance(x, int | float) for x in v.values()))
        )
    }


def _repeat_stats(repeats: list[Any]) -> list[RepeatStat]:
    """min / median / max of every numeric figure over the repeats (one level of nesting
    flattened: ``longest_streak.requests``); failures by class summed."""
    values: dict[str, list[float]] = {}
    for rep in repeats:
        if not isinstance(rep, Mapping):
            continue
        for key, value in _item_figures(rep).items():
            if (f := _float(value)) is not None:
                values.setdefault(str(key), []).append(f)
            elif isinstance(value, Mapping) and key == "failed_by_class":
                total = math.fsum(_float(v) or 0.0 for v in value.values())
                values.setdefault("failed (all classes)", []).append(total)
            elif isinstance(value, Mapping):
                for sub, inner in value.items():
                    if (f := _float(inner)) is not None:
                        values.setdefault(f"{key}.{sub}", []).append(f)
    out = []
    for name, vs in values.items():
        shown = ", ".join(_num(v) for v in vs[:40]) + (" \u2026" if len(vs) > 40 else "")
        out.append(
            RepeatStat(
                name, len(vs), _num(min(vs)), _num(statistics.median(vs)), _num(max(vs)), shown
            )
        )
    return out


def _gap_of(run: Mapping[str, Any]) -> float:
    value = _float(_item_figures(run).get("gap_ms"))
    return -1.0 if value is None else value


def _gaps_view(item: Mapping[str, Any], salt: str) -> GapsView:
    figures = _item_figures(item)
    repeats = _list(item.get("repeats")) or _list(item.get("runs"))
    parts = [str(item[k]) for k in ("name", "change", "route", "scenario") if item.get(k)]
    title = " \u00b7 ".join(dict.fromkeys(parts))  # each once, in order
    # The item's own timeline; else the run with the largest gap among its repeats.
    source, which = item, ""
    if item.get("timeline") is None:
        timed = [r for r in repeats if isinstance(r, Mapping) and r.get("timeline") is not None]
        if timed:
            source = max(timed, key=_gap_of)
            which = (
                f"run {repeats.index(source) + 1} of {len(repeats)}, the one with the largest gap"
            )
    tl: Timeline | None = None
    plot_error = ""
    try:
        tl = timeline_of(source)
    except Exception as exc:  # malformed timeline: shown as JSON below
        plot_error = f"{type(exc).__name__}: {exc}"
    drawn = tl is not None and source is item
    rest = {k: v for k, v in item.items() if k != "timeline"} if drawn else dict(item)
    unit = f" {tl.unit}" if tl is not None and tl.unit else ""
    message = item.get("message") or item.get("summary") or ""
    view = GapsView(
        title=title,
        which=which,
        figures=[(str(k), _figure_text(str(k), v)) for k, v in figures.items()],
        repeats=_repeat_stats(repeats),
        markers=[(name, f"{_num(at)}{unit}") for name, at in (tl.markers if tl else [])],
        gap="" if tl is None or tl.gap is None else f"{_num(tl.gap[0])} to {_num(tl.gap[1])}{unit}",
        message=_clip(message),
        raw=_json(rest),
        plot_error=plot_error,
    )
    if tl is not None:
        try:
            view.svg = _gaps_svg(tl, salt, f"timeline {title}".strip())
        except Exception as exc:  # the figures and the JSON are still shown
            view.plot_error = f"{type(exc).__name__}: {exc}"
    elif not plot_error and source.get("timeline") is not None:
        view.plot_error = "the timeline has no bucket times or counts this report can draw"
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
    other: list[str] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.outcome in _FAILING

    @property
    def expanded(self) -> bool:
        """Open when the page loads: failing checks, and the plots of weights and gaps."""
        return self.failing or bool(self.weights or self.gaps)

    @property
    def block(self) -> bool:
        """Shown as its own block (else: a row of the section's compact table)."""
        return self.outcome not in ("passed", "skipped") or bool(
            self.weights or self.gaps or self.other
        )


@dataclass
class SectionView:
    kind: str
    title: str
    anchor: str
    counts: list[tuple[str, int]]
    blocks: list[CheckView]
    compact: list[CheckView]


def _headline(check: Mapping[str, Any], message: str) -> str:
    """One line that says what happened: the verdict line, or the exception of an error."""
    errors = [line[1:].strip() for line in message.splitlines() if line.startswith("E ")]
    if check.get("outcome") == "error" and errors:
        return errors[-1][:200]
    for raw in message.splitlines():
        line = raw.strip()
        if line and not line.startswith(("Skipped:", "Failed:")):
            return line[:200]
        if line.startswith(("Skipped:", "Failed:")):
            rest = line.split(":", 1)[1].strip().removeprefix("UNDEFINED:").strip()
            if rest:
                return rest[:200]
    return ""


def _check_view(index: int, check: Mapping[str, Any]) -> CheckView:
    nodeid = str(check.get("nodeid", f"check {index}"))
    message = _clip(check.get("message", ""))
    view = CheckView(
        index=index,
        anchor=check_anchor(nodeid),
        nodeid=nodeid,
        name=nodeid.split("::", 1)[-1],
        kind=str(check.get("kind") or "other"),
        outcome=str(check.get("outcome", "")),
        duration=_float(check.get("duration")) or 0.0,
        message=message,
        headline=_headline(check, message),
    )
    for j, item in enumerate(_list(check.get("evidence"))):
        if not isinstance(item, Mapping):
            view.other.append(_json(item))
            continue
        kind = item.get("type")
        salt = f"h{index}x{j}"
        if kind == "exact":
            view.exact.append(_exact_view(item))
        elif kind == "weights":
            view.weights.append(_weights_view(item, salt))
        elif kind == "gaps":
            view.gaps.append(_gaps_view(item, salt))
        else:
            view.other.append(_json(item))
    if not view.headline:
        # Passed checks have no message: say what the evidence says.
        summaries = [w.summary or w.error_summary for w in view.weights]
        summaries += [e.message.split("\n", 1)[0] for e in view.exact]
        summaries += [", ".join(f"{k} {v}" for k, v in g.figures[:3]) for g in view.gaps]
        view.headline = next((s for s in summaries if s), "")[:200]
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
        counted = {o: sum(1 for c in checks if c.outcome == o) for o in OUTCOMES}
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


def _findings(results: Mapping[str, Any]) -> list[FindingGroup]:
    raw = _list(results.get("findings"))
    if not raw:  # documents without the run-level list: collect from the checks, once each
        seen: dict[str, Any] = {}
        for check in _list(results.get("checks")):
            for f in _list(check.get("findings") if isinstance(check, Mapping) else None):
                seen.setdefault(json.dumps(f, sort_keys=True, default=str), f)
        raw = list(seen.values())
    groups = {key: FindingGroup(key, title, []) for key, title, _ in FINDING_GROUPS}
    for f in raw:
        if not isinstance(f, Mapping):
            continue
        kind = str(f.get("kind", ""))
        key = next((k for k, _, kinds in FINDING_GROUPS if kind in kinds), "other")
        groups[key].findings.append(
            FindingView(
                kind=kind,
                severity=str(f.get("severity", "")),
                message=str(f.get("message", "")),
                source=_source(f.get("source")),
                routes=", ".join(str(r) for r in _list(f.get("routes"))),
            )
        )
    for group in groups.values():
        group.findings.sort(key=lambda v: (v.kind, v.source, v.message))
    return [g for g in groups.values() if g.findings]


def gate(results: Mapping[str, Any], comparison: Comparison | None = None) -> tuple[str, list[str]]:
    """The gate verdict of a run ("passed", "failed" or "error") and why.

    Failed: a check failed, or the comparison with the baseline regressed. Error: no check
    failed, but one could not be judged (or no check ran). A ``gate`` the results document
    already carries (``{"verdict": ..., "reasons": [...]}``) is taken as it is.
    """
    given = results.get("gate")
    if isinstance(given, Mapping) and given.get("verdict") in ("passed", "failed", "error"):
        return str(given["verdict"]), [str(r) for r in _list(given.get("reasons"))]
    counts = _counts(results)
    reasons = []
    if counts.get("failed"):
        reasons.append(f"{counts['failed']} check(s) failed")
    if counts.get("error"):
        reasons.append(f"{counts['error']} check(s) could not be judged (error)")
    if not sum(counts.values()):
        reasons.append("no checks ran")
    regressed = comparison is not None and comparison.regressed()
    if comparison is not None:
        reasons.extend(comparison.reasons())
    if counts.get("failed") or regressed:
        return "failed", reasons
    if counts.get("error") or not sum(counts.values()):
        return "error", reasons
    return "passed", reasons


def _counts(results: Mapping[str, Any]) -> dict[str, int]:
    given = results.get("counts")
    if isinstance(given, Mapping):
        return {o: int(_float(given.get(o)) or 0) for o in OUTCOMES}
    checks = [c for c in _list(results.get("checks")) if isinstance(c, Mapping)]
    return {o: sum(1 for c in checks if c.get("outcome") == o) for o in OUTCOMES}


def _target(target: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(headline rows: kind, proxy version, URLs; every field, flattened)."""
    if not isinstance(target, Mapping):
        return [], []
    flat = _flatten(target)
    traefik = _map(target.get("traefik"))
    head = [("kind", str(target.get("target", target.get("kind", "-"))))]
    version = traefik.get("version", target.get("proxy_version", target.get("version")))
    if version is not None:
        head.append(("Traefik version", str(version)))
    head += [(k, v) for k, v in flat if k.rsplit(".", 1)[-1].endswith("url")]
    return head, flat


_WEIGHT_PARAMETERS = (
    "run_alpha",
    "power",
    "min_deviation",
    "mode",
    "max_error_rate",
    "max_requests",
)


def _parameters(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    params = _map(results.get("parameters"))
    rows = _flatten(params) if params else []
    have = {k.rsplit(".", 1)[-1] for k, _ in rows}
    # The statistical settings travel with the weights evidence; show them once at the top.
    for check in _list(results.get("checks")):
        for item in _list(check.get("evidence") if isinstance(check, Mapping) else None):
            settings = item.get("settings") if isinstance(item, Mapping) else None
            if isinstance(settings, Mapping):
                rows += [
                    (k, _plain(settings[k]))
                    for k in _WEIGHT_PARAMETERS
                    if k in settings and k not in have
                ]
                return rows
    return rows


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
    failing: list[CheckView]
    sections: list[SectionView]
    comparison: Comparison | None
    anchors: dict[str, str]
    first_screen: FirstScreen


def build_view(results: Mapping[str, Any], comparison: Comparison | None = None) -> ReportView:
    """Everything the template shows, computed from the (redacted) results document."""
    results = scrub(results)
    checks = [c for c in _list(results.get("checks")) if isinstance(c, Mapping)]
    views = [_check_view(i, c) for i, c in enumerate(checks)]
    counts = _counts(results)
    verdict, reasons = gate(results, comparison)
    started, finished = _float(results.get("started")), _float(results.get("finished"))
    if started and finished and finished >= started:
        duration = _duration(finished - started)
    else:
        duration = _duration(sum(v.duration for v in views)) + " (sum of checks)"
    head, flat = _target(results.get("target"))
    findings = _findings(results)
    return ReportView(
        run_id=str(results.get("run_id", "-")),
        schema_version=str(results.get("schema_version", "-")),
        harness_version=str(results.get("harness_version", "-")),
        started=_when(started),
        finished=_when(finished),
        duration=duration,
        gate=verdict,
        gate_reasons=reasons,
        counts=[(o, counts.get(o, 0)) for o in OUTCOMES],
        total=len(views),
        target_head=head,
        target_all=flat,
        parameters=_parameters(results),
        findings=findings,
        n_findings=sum(len(g.findings) for g in findings),
        failing=sorted((v for v in views if v.failing), key=_section_order),
        sections=_sections(views),
        comparison=comparison,
        anchors={v.nodeid: v.anchor for v in views},
        first_screen=build_first_screen(results, verdict, reasons, comparison),
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


def render_report(results: Mapping[str, Any], *, comparison: Comparison | None = None) -> str:
    """The report as one HTML document (see the module docstring)."""
    view = build_view(results, comparison)
    return _environment().get_template("report.html.j2").render(r=view)


def write_report(
    results: Mapping[str, Any], out_dir: Path, *, comparison: Comparison | None = None
) -> Path:
    """Write ``out_dir/index.html`` (atomically) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report(results, comparison=comparison), "utf-8")
    tmp.replace(path)
    return path
