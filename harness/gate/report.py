"""The gate's report: gate.json and one self-contained HTML page.

The page opens with the verdict and why, then the differences table (probe or figure, before,
after, the classification and why: unexpected ones first), the oracle's diff of the two intents,
and links to both runs' own reports. Everything in it that came from the proxy or a backend
(answers, headers, summaries) is escaped by the template's autoescaping, and credentials are
redacted in both files (``harness.results.document.redact``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from harness.gate.compare import Comparison
from harness.results.document import redact
from harness.results.first_screen import check_anchor

GATE_SCHEMA_VERSION = 1

_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
).get_template("gate.html.j2")


def gate_document(
    comparison: Comparison, runs: Mapping[str, Mapping[str, Any]], gate_id: str
) -> dict[str, Any]:
    """gate.json: the comparison, and each run's id, Traefik version, results and report."""
    document = {
        "schema_version": GATE_SCHEMA_VERSION,
        "gate_id": gate_id,
        **comparison.to_dict(),
        "runs": dict(runs),
    }
    return dict(redact(document))


def _link(run: Mapping[str, Any], nodeid: str, out_dir: Path) -> str | None:
    report = run.get("report")
    if not report:
        return None
    rel = os.path.relpath(report, out_dir)
    return f"{rel}#{check_anchor(nodeid)}"


def render_gate(document: Mapping[str, Any], out_dir: Path) -> str:
    runs = document["runs"]
    rows = []
    for d in document["differences"]:
        links = [
            (which, _link(runs[which], nodeid, out_dir))
            for which, ids in (("before", d["nodeids_before"]), ("after", d["nodeids_after"]))
            for nodeid in ids[:1]
        ]
        rows.append({**d, "links": [(w, href) for w, href in links if href]})
    run_links = {
        which: os.path.relpath(run["report"], out_dir) if run.get("report") else None
        for which, run in runs.items()
    }
    return _TEMPLATE.render(doc=document, rows=rows, run_links=run_links)


def write_gate(document: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write gate.json and gate.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "gate.json"
    json_path.write_text(json.dumps(redact(document), indent=1) + "\n", "utf-8")
    html_path = out_dir / "gate.html"
    html_path.write_text(render_gate(redact(document), out_dir), "utf-8")
    return json_path, html_path
