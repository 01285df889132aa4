"""The HTML report in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

What a reviewer would notice is checked where it happens: the page loads from disk without a
console error, without a single network request, with its key elements present, and a run of
500 checks loads in under 2 s (the requirement; the measured figures are printed, see ``-s``).
Screenshots are saved to the test's tmp folder; those of the report's first screen (a passing and
a failing run at 1400x900) are also kept under ``reports/screenshots/`` (git ignores ``reports/``)
as the run's artifacts, and the test prints where.

Chromium comes from Debian (``apt-get install -y chromium``). When it is missing the test tries
that command itself (as root, with apt-get present) and skips, saying why, only if that fails too.
The DevTools connection uses websocket-client, which the ``kubernetes`` client already requires.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from harness import procs
from harness.checks.evidence import OUTCOMES
from harness.results.report import write_report
from harness.waiting import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "data"
#: The requirement (issue 6): a report of 500 checks opens in under 2 s.
LOAD_BOUND_S = 2.0
#: The first screen: what a reviewer sees without scrolling, and where its screenshots are kept.
SCREEN_WIDTH, SCREEN_HEIGHT = 1400, 900
SCREENSHOTS = HERE.parent / "reports" / "screenshots"
#: Bounds on Chromium itself: start-up, and any one DevTools call.
START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
APT_COMMAND = ["apt-get", "install", "-y", "chromium"]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
#: Installing Chromium on a fresh machine (download included) took ~60 s here.
APT_TIMEOUT = 900.0


def _load_test_report(name: str = "test_report.py") -> ModuleType:
    """A test module of the report (``tests/test_report.py`` by default), for its builders of
    results documents (loaded by path, so it works under every pytest import mode)."""
    spec = importlib.util.spec_from_file_location(f"_builders_{name[:-3]}", HERE / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Debian's Chromium; installed with apt-get when missing and possible, else a skip."""
    found = _find_chromium()
    if found:
        return found
    command = " ".join(APT_COMMAND)
    why = "Chromium is not installed"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log = tmp_path_factory.mktemp("apt") / "apt-get.log"
        proc = procs.spawn(APT_COMMAND, log_path=log, env={**os.environ, **APT_ENV})
        try:
            code = proc.wait(timeout=APT_TIMEOUT)
        except subprocess.TimeoutExpired:
            procs.stop(proc)
            code = None
        found = _find_chromium()
        if found:
            return found
        tail = log.read_text(errors="replace")[-300:]
        why += f"; `{command}` {'timed out' if code is None else f'exited {code}'}: {tail}"
    else:
        why += " and cannot be installed here (needs root and apt-get)"
    pytest.skip(f"{why}. Install it with: apt-get update && {command}")


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol (CDP)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        import websocket

        profile = workdir / "profile"
        profile.mkdir(parents=True)
        self.proc = procs.spawn(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
                "about:blank",
            ],
            log_path=workdir / "chromium.log",
        )
        port_file = profile / "DevToolsActivePort"

        def port() -> int | None:
            if self.proc.poll() is not None:
                log = (workdir / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium exited with {self.proc.returncode}:\n{log}")
            lines = port_file.read_text().split() if port_file.exists() else []
            return int(lines[0]) if lines else None

        try:
            number = wait_until(port, timeout=START_TIMEOUT, what="Chromium's DevTools port")
            pages = wait_until(
                lambda: [
                    t
                    for t in httpx.get(
                        f"http://127.0.0.1:{number}/json/list", timeout=5.0, trust_env=False
                    ).json()
                    if t.get("type") == "page"
                ],
                timeout=START_TIMEOUT,
                what="Chromium's first page",
            )
            self.ws = websocket.create_connection(
                pages[0]["webSocketDebuggerUrl"], timeout=CALL_TIMEOUT, suppress_origin=True
            )
        except BaseException:
            procs.stop(self.proc)
            raise
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + CALL_TIMEOUT
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)
        raise TimeoutError(f"no answer to {method} within {CALL_TIMEOUT} s")

    def wait_event(self, method: str, *, timeout: float) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(deadline - time.monotonic(), 0.01))
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                self.ws.settimeout(CALL_TIMEOUT)
                return message
        raise TimeoutError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def load(self, path: Path) -> float:
        """Open ``path``; return the wall time (s) from navigation to the load event and a
        complete layout of the page (forced by reading its height)."""
        self.events.clear()
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.events.clear()
        started = time.monotonic()
        self.call("Page.navigate", url=path.as_uri())
        self.wait_event("Page.loadEventFired", timeout=LOAD_BOUND_S * 10)
        self.evaluate("document.documentElement.getBoundingClientRect().height")
        return time.monotonic() - started

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params.get("exceptionDetails"))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text"))[:500])
        return errors

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def viewport(self, width: int, height: int) -> None:
        """Lay the page out as in a window of this size (CSS pixels)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        if not full_page:
            data = self.call("Page.captureScreenshot", format="png")["data"]
            path.write_bytes(base64.b64decode(data))
            return path
        # The report renders off-screen blocks lazily (content-visibility), so the whole page is
        # put on screen first: a viewport as tall as the page (bounded at 12,000 px), grown
        # until the height settles, as blocks render at their real size.
        height = 0
        for _ in range(5):
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            new = min(int(size["height"]), 12_000)
            if new == height:
                break
            height = new
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            self.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")
        try:
            data = self.call("Page.captureScreenshot", format="png")["data"]
        finally:
            self.call("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # already gone: stop() below makes sure
            pass
        finally:
            self.ws.close()
            procs.stop(self.proc)


@pytest.fixture
def browser(chromium_binary: str, tmp_path: Path) -> Iterator[Browser]:
    b = Browser(chromium_binary, tmp_path / "chromium")
    try:
        yield b
    finally:
        b.close()


#: What the page says about itself, read in the page (DevTools evaluation is not page script,
#: so the report's CSP, which forbids scripts, does not stop it).
INSPECT = """JSON.stringify({
  gate: document.querySelector('#gate') && document.querySelector('#gate').dataset.verdict,
  counts: Array.from(document.querySelectorAll('#counts [data-outcome]')).map(
      e => [e.dataset.outcome, e.textContent.trim()]),
  target: !!document.querySelector('#target'),
  parameters: !!document.querySelector('#parameters'),
  findings: !!document.querySelector('#findings'),
  sections: Array.from(document.querySelectorAll('section.kind')).map(s => s.dataset.kind),
  checks: document.querySelectorAll('details.check').length,
  open_checks: document.querySelectorAll('details.check[open]').length,
  failing_open: Array.from(document.querySelectorAll('details.check.o-failed')).every(d => d.open),
  plots: document.querySelectorAll('svg.plot').length,
  scripts: document.scripts.length,
  handlers: Array.from(document.querySelectorAll('*')).filter(
      e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
  images: document.images.length,
  xss: typeof window.__xss !== 'undefined',
  text: document.body.innerText.length,
  timing: performance.getEntriesByType('navigation')[0].toJSON(),
  paint: performance.getEntriesByType('paint').map(p => [p.name, p.startTime]),
})"""


def test_fixture_reports_render_without_errors(browser: Browser, tmp_path: Path) -> None:
    """Both real-run fixtures: no console errors, no network, key elements present."""
    for name in ("results-local.json", "results-external-faults.json"):
        results = json.loads((FIXTURES / name).read_text("utf-8"))
        out = write_report(results, tmp_path / name.removesuffix(".json"))
        seconds = browser.load(out)
        page = json.loads(browser.evaluate(INSPECT))
        shot = browser.screenshot(tmp_path / f"{name}.png")
        browser.screenshot(tmp_path / f"{name}-full.png", full_page=True)
        print(f"\n{name}: loaded in {seconds * 1000:.0f} ms; screenshot {shot}")
        assert browser.console_errors() == []
        assert [u for u in browser.requests() if u != out.as_uri()] == []
        assert page["gate"] == results["gate"]["verdict"]
        assert page["target"] and page["parameters"] and page["findings"]
        assert list(dict(page["counts"])) == [str(o) for o in OUTCOMES]
        assert page["scripts"] == 0 and page["handlers"] == 0 and page["images"] == 0
        assert "weights" in page["sections"]
        assert page["plots"] >= 1, "every weighted split gets its plot"
        assert page["failing_open"], "failing checks are expanded"
        assert shot.stat().st_size > 10_000


def test_failures_are_shown_first_and_open(browser: Browser, tmp_path: Path) -> None:
    results = json.loads((FIXTURES / "results-external-faults.json").read_text("utf-8"))
    out = write_report(results, tmp_path / "faults")
    browser.load(out)
    page = json.loads(browser.evaluate(INSPECT))
    assert page["gate"] == "failed"
    # Open: the failing checks, and the weights checks (their plot is the evidence).
    assert page["open_checks"] == sum(
        1
        for c in results["checks"]
        if c["outcome"] in ("failed", "error") or c["kind"] == "weights"
    )
    # In every section the first check block is a failing one when the section has any.
    order = browser.evaluate(
        """JSON.stringify(Array.from(document.querySelectorAll('section.kind')).map(
             s => Array.from(s.querySelectorAll('details.check')).map(d => d.className)))"""
    )
    for classes in json.loads(order):
        outcomes = [c.split("o-")[-1] for c in classes]
        failing = [o in ("failed", "error") for o in outcomes]
        assert failing == sorted(failing, reverse=True), outcomes


def test_hostile_backend_cannot_run_script(browser: Browser, tmp_path: Path) -> None:
    builders = _load_test_report()
    results = builders.hostile_results()
    out = write_report(results, tmp_path / "hostile")
    browser.load(out)
    page = json.loads(browser.evaluate(INSPECT))
    browser.screenshot(tmp_path / "hostile.png", full_page=True)
    assert page["xss"] is False
    assert page["scripts"] == 0 and page["handlers"] == 0 and page["images"] == 0
    text = browser.evaluate("document.body.innerText")
    assert builders.SCRIPT_PAYLOAD in text, "the payload is shown as text"
    assert browser.console_errors() == []


def test_500_check_report_loads_under_2_seconds(browser: Browser, tmp_path: Path) -> None:
    builders = _load_test_report()
    results = builders.big_results(500)
    started = time.perf_counter()
    out = write_report(results, tmp_path / "big")
    written = time.perf_counter() - started
    size = out.stat().st_size
    wall = browser.load(out)
    page = json.loads(browser.evaluate(INSPECT))
    timing = page["timing"]
    load_ms = timing["loadEventEnd"] - timing["startTime"]
    shot = browser.screenshot(tmp_path / "big.png")
    print(
        f"\n500-check report: {size / 1e6:.2f} MB written in {written:.1f} s; "
        f"load event after {load_ms:.0f} ms (navigation timing), "
        f"{wall * 1000:.0f} ms wall from navigate to load event and full layout; "
        f"DOMContentLoaded {timing['domContentLoadedEventEnd'] - timing['startTime']:.0f} ms; "
        f"paints {page['paint']}; screenshot {shot}"
    )
    assert browser.console_errors() == []
    assert page["checks"] + 1 > 0 and page["plots"] >= 1
    assert size < 5_000_000
    assert wall < LOAD_BOUND_S, f"loaded in {wall:.2f} s, bound {LOAD_BOUND_S} s"
    assert load_ms < LOAD_BOUND_S * 1000


#: Where the first screen's parts are, in CSS pixels of the viewport, and whether it scrolled.
FIRST_SCREEN = """JSON.stringify({
  scrolled: window.scrollY,
  viewport: [window.innerWidth, window.innerHeight],
  gate: document.querySelector('#gate').dataset.verdict,
  boxes: Object.fromEntries(['gate', 'gate-reasons', 'target-line', 'matrix',
      'comparison-summary'].map(id => {
    const r = document.getElementById(id).getBoundingClientRect();
    return [id, {top: r.top, bottom: r.bottom, left: r.left, right: r.right}];
  })),
  marks: document.querySelectorAll('#matrix td.cell a').length,
  matrix_rows: document.querySelectorAll('#matrix tbody tr:not(.scenario)').length,
})"""


@pytest.mark.parametrize("which", ["passing", "failing"])
def test_first_screen_shows_gate_matrix_and_comparison(
    browser: Browser, tmp_path: Path, which: str
) -> None:
    """At 1400x900 the gate, the matrix of a ~10-scenario, ~30-route run and the comparison
    are all on screen before any scrolling; the screenshots are kept as artifacts."""
    builders = _load_test_report("test_first_screen.py")
    results = builders.passing_run() if which == "passing" else builders.failing_run()
    out = write_report(results, tmp_path / which)
    browser.viewport(SCREEN_WIDTH, SCREEN_HEIGHT)
    browser.load(out)
    page = json.loads(browser.evaluate(FIRST_SCREEN))
    shot = browser.screenshot(tmp_path / f"first-screen-{which}.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOTS / shot.name
    shutil.copyfile(shot, kept)
    print(f"\nfirst screen ({which}): {kept} (also {shot}); boxes {page['boxes']}")
    assert browser.console_errors() == []
    assert page["scrolled"] == 0 and page["viewport"] == [SCREEN_WIDTH, SCREEN_HEIGHT]
    assert (
        page["gate"]
        == results["gate"]["verdict"]
        == which.removesuffix("ing").replace("pass", "passed").replace("fail", "failed")
    )
    for name, box in page["boxes"].items():
        assert box["top"] >= 0 and box["bottom"] <= SCREEN_HEIGHT, (name, box)
        assert box["left"] >= 0 and box["right"] <= SCREEN_WIDTH, (name, box)
    # Every row of the run is in the matrix, each with a mark per checked kind.
    assert page["matrix_rows"] == 50 and page["marks"] >= 50
    # The gaps section opens with the strategy table, above the first strategy's details.
    order = json.loads(
        browser.evaluate(
            """(() => {
              const section = document.getElementById('kind-gaps');
              section.scrollIntoView();
              const table = document.getElementById('gap-strategies').getBoundingClientRect();
              const first = section.querySelector('details.check').getBoundingClientRect();
              return JSON.stringify([table.top, table.bottom, first.top,
                  section.querySelectorAll('#gap-strategies tr').length]);
            })()"""
        )
    )
    gaps_shot = browser.screenshot(tmp_path / f"gaps-{which}.png")
    shutil.copyfile(gaps_shot, SCREENSHOTS / gaps_shot.name)
    assert order[0] < order[1] <= order[2], order
    assert order[3] == 1 + len(builders.STRATEGY_RUNS)
