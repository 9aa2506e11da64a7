"""The project's HTML pages as a reader sees them: opened from file:// in headless Chromium
(Debian's ``chromium``, driven by Playwright; no browser is ever downloaded) and measured.

``check_page`` opens one page and returns a :class:`PageReport`: console and page errors,
every request the page made, each plot's rendered size, the marks drawn outside it and the
labels drawn over one another, tables wider than the viewport; it saves a full-page
screenshot under ``SCREENSHOTS``.
``opened`` and ``click_and_count`` serve tests that interact with a page (filters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
# Playwright adds --headless and a fresh temporary profile (--user-data-dir) to each launch.
# Shared memory goes to /tmp: a container's /dev/shm (64 MB under Docker) can crash the renderer.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")  # none of these leaves the machine
TOLERANCE_PX = 0.5  # rounding of layout coordinates
# A text's box spans the font's ascent to descent, a few px more than the ink of most words:
# two labels collide when their boxes share more than this in both directions.
OVERLAP_PX = 2.0

# Runs in the page: every plot's box and the boxes of the marks it draws (an element's
# box is its geometry, before any clipping by the <svg>), every table's visible right edge.
MEASURE = r"""() => {
  const box = r => ({left: r.left, top: r.top, right: r.right, bottom: r.bottom,
                     width: r.width, height: r.height});
  const describe = el => {
    const text = (el.textContent || '').trim().slice(0, 60);
    const at = ['cx', 'cy', 'x', 'y', 'x1', 'y1', 'd'].filter(a => el.hasAttribute(a))
      .map(a => `${a}=${el.getAttribute(a).slice(0, 40)}`).join(' ');
    return `<${el.tagName.toLowerCase()}${text ? ` "${text}"` : ''}${at ? ' ' + at : ''}>`;
  };
  // a text turned by other than a multiple of 90 degrees: its box is not its shape
  const oblique = el => [...(el.getAttribute('transform') || '').matchAll(/rotate\(\s*(-?[\d.]+)/g)]
    .some(m => Number(m[1]) % 90 !== 0);
  const plots = [...document.querySelectorAll('svg, canvas')]
    .filter(el => !el.parentElement.closest('svg'))
    .map((el, index) => ({
      index,
      label: el.getAttribute('aria-label') || el.querySelector('.title')?.textContent || '',
      box: box(el.getBoundingClientRect()),
      marks: el.tagName.toLowerCase() === 'canvas' ? [] :
        [...el.querySelectorAll('circle,ellipse,line,path,polyline,polygon,rect,text,image,use')]
          .map(m => ({what: describe(m), box: box(m.getBoundingClientRect()),
                      text: m.tagName.toLowerCase() === 'text' ? m.textContent.trim() : null,
                      oblique: oblique(m)})),
    }));
  const clipper = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return a;
    }
    return null;
  };
  const tables = [...document.querySelectorAll('table')].map((t, index) => {
    const r = t.getBoundingClientRect(), c = clipper(t);
    return {index, left: r.left, right: c ? Math.min(r.right, c.getBoundingClientRect().right)
                                           : r.right,
            head: (t.querySelector('th')?.textContent || '').trim().slice(0, 40)};
  });
  return {plots, tables, scrollWidth: document.documentElement.scrollWidth,
          viewportWidth: window.innerWidth};
}"""


@dataclass
class Plot:
    """One <svg> or <canvas> as rendered: its box, its words, the marks lying outside it and
    the pairs of labels drawn over one another."""

    label: str
    width: float
    height: float
    texts: list[str]
    outside: list[str]
    overlaps: list[str]


@dataclass
class PageReport:
    """What opening one page showed; each list empty when the page is right."""

    path: Path
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    wide_tables: list[str] = field(default_factory=list)
    scroll_width: int = 0
    viewport_width: int = VIEWPORT["width"]

    @property
    def outside_requests(self) -> list[str]:
        """Requests for anything but the page's own file and inline data."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]

    @property
    def empty_plots(self) -> list[str]:
        return [f"{p.label!r}: {p.width:.0f}x{p.height:.0f}px" for p in self.plots
                if p.width <= 0 or p.height <= 0]

    @property
    def marks_outside(self) -> list[str]:
        return [f"{p.label!r}: {mark}" for p in self.plots for mark in p.outside]

    @property
    def overlapping_labels(self) -> list[str]:
        return [f"{p.label!r}: {pair}" for p in self.plots for pair in p.overlaps]


@contextlib.contextmanager
def launched() -> Iterator[Browser]:
    """One headless Chromium; skips the test when Debian's chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def opened(browser: Browser, path: Path,
           name: str | None = None) -> Iterator[tuple[Page, PageReport]]:
    """``path`` loaded in a fresh 1280px-wide context, with a report collecting its errors
    and requests while the caller works with the page; its screenshot will be
    ``SCREENSHOTS/<name>.png`` (``name`` defaults to the file's stem)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    report = PageReport(path=path, screenshot=SCREENSHOTS / f"{name or path.stem}.png")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.on("request", lambda request: report.requests.append(request.url))
    context.route(lambda url: not url.startswith(LOCAL_SCHEMES), lambda route: route.abort())
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            report.console_errors.append(f"{message.text} ({where.get('url', '')}:"
                                         f"{where.get('lineNumber', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: report.page_errors.append(str(error)))
    page.on("websocket", lambda socket: report.requests.append(socket.url))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        yield page, report
    finally:
        context.close()


def check_page(browser: Browser, path: Path, name: str | None = None) -> PageReport:
    """Open ``path`` with every <details> expanded (so folded plots and tables are measured
    too), measure it and save a full-page screenshot (``PageReport.screenshot``)."""
    with opened(browser, path, name) as (page, report):
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        measured = page.evaluate(MEASURE)
        page.screenshot(path=str(report.screenshot), full_page=True)
    report.plots = [_plot(p) for p in measured["plots"]]
    report.scroll_width = measured["scrollWidth"]
    report.viewport_width = measured["viewportWidth"]
    report.wide_tables = [
        f"table {t['index']} ({t['head']!r}): spans {t['left']:.1f}..{t['right']:.1f}px"
        for t in measured["tables"]
        if t["left"] < -TOLERANCE_PX or t["right"] > report.viewport_width + TOLERANCE_PX]
    return report


def _plot(measured: dict) -> Plot:
    frame, marks = measured["box"], measured["marks"]
    outside = [f"{mark['what']} at {_where(mark['box'])}; plot {_where(frame)}"
               for mark in marks if not _inside(mark["box"], frame)]
    labels = [mark for mark in marks if mark["text"] and not mark["oblique"]]
    overlaps = [f"{a['what']} at {_where(a['box'])} and {b['what']} at {_where(b['box'])}"
                for i, a in enumerate(labels) for b in labels[i + 1:]
                if _overlap(a["box"], b["box"])]
    return Plot(measured["label"] or f"plot {measured['index']}", frame["width"],
                frame["height"], [m["text"] for m in marks if m["text"]], outside, overlaps)


def _where(box: dict) -> str:
    return (f"x {box['left']:.1f}..{box['right']:.1f}, "
            f"y {box['top']:.1f}..{box['bottom']:.1f}")


def _overlap(a: dict, b: dict) -> bool:
    shared_x = min(a["right"], b["right"]) - max(a["left"], b["left"])
    shared_y = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return shared_x > OVERLAP_PX and shared_y > OVERLAP_PX


def _inside(box: dict, frame: dict) -> bool:
    return (box["left"] >= frame["left"] - TOLERANCE_PX
            and box["right"] <= frame["right"] + TOLERANCE_PX
            and box["top"] >= frame["top"] - TOLERANCE_PX
            and box["bottom"] <= frame["bottom"] + TOLERANCE_PX)


def visible_count(page: Page, selector: str) -> int:
    """How many elements matching ``selector`` are shown (not display:none, not
    visibility:hidden, not inside a hidden ancestor)."""
    return page.evaluate(
        "s => [...document.querySelectorAll(s)]"
        ".filter(e => e.checkVisibility({visibilityProperty: true})).length", selector)


def click_and_count(page: Page, control: str, rows: str, value: str | None = None) -> int:
    """Operate the filter ``control`` and return how many ``rows`` are then shown: a
    <select> gets ``value`` selected, a text <input> gets ``value`` typed, anything else
    (checkbox, radio, button, link) is clicked."""
    target = page.locator(control)
    kind = target.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    if kind.startswith("select:"):
        target.select_option(value)
    elif kind in ("input:text", "input:search", "input:number"):
        target.fill(value or "")
    else:
        target.click()
    return visible_count(page, rows)
