"""The HTML pages shiftbench writes, opened in headless Chromium (tests/browser.py): no
errors, no request leaving the page, plots with a size, their marks inside and their labels
apart, tables within a 1280px-wide window. Screenshots: reports/screenshots/<page>.png."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from browser import PageReport, check_page, click_and_count, opened, visible_count
from test_generation import write_data
from test_generation import write_suite as write_generation_suite
from test_mitigate import write_suite
from test_monitor import labelled_rows, write_jsonl

from shiftbench.cli import main

PAGES = ["report", "compare", "examples", "monitor", "history", "mitigate", "generation"]
BROWSERS = ["report", "examples", "mitigate", "generation"]  # pages with a failure browser
PLOTTED = [name for name in PAGES if name != "examples"]  # the gate's examples: a table


def report_page(folder: Path, encoder: Path) -> Path:
    """report.html of a real run: three severities, a domain split with a long name (as
    users name them), movement and drift (embedded with the tiny encoder, not MiniLM)."""
    suite = write_suite(folder)
    spec = yaml.safe_load(suite.read_text())
    spec["shifts"][1]["name"] = "food reviews from a second site"
    spec["shifts"][0]["severity"] = [1, 2, 4]
    spec["shifts"].insert(1, {"shift": "word_delete", "severity": [2]})
    spec["detectors"] = [{"name": "mmd", "params": {"n_permutations": 200}}, {"name": "bbsd"}]
    suite.write_text(yaml.safe_dump(spec))
    return run(suite, "sklearn:tfidf", "browser", encoder) / "report.html"


def generation_page(folder: Path, generator: Path, encoder: Path) -> Path:
    """report.html of a generation run (the tiny random T5 writing titles): its failure
    browser compares chrF, without a class filter."""
    write_data(folder)
    suite = write_generation_suite(folder, limit=None, metrics=["chrf", "bleu"])
    return run(suite, f"hf-seq2seq:{generator}", "generation", encoder) / "report.html"


def run(suite: Path, model: str, run_id: str, encoder: Path) -> Path:
    """The run folder of ``model`` on ``suite``, under ``reports/`` beside the suite; its
    failure browser holds 3 examples per split, the rest are in failures.js."""
    from shiftbench.run import RunOptions, run_suite
    from shiftbench.runtime import Runtime

    options = RunOptions(reports_dir=suite.parent / "reports", run_id=run_id,
                         encoder=str(encoder), runtime=Runtime(progress=False),
                         failures_inline=3)
    return run_suite(suite, model, options)


def compare_page(report: Path, encoder: Path) -> Path:
    """compare.html of the report's run beside a second model's run of the same suite."""
    suite = next(folder / "tiny.yaml" for folder in report.parents
                 if (folder / "tiny.yaml").exists())
    other = run(suite, f"probe:{encoder}", "browser-probe", encoder)
    out = suite.parent / "compare"
    assert main(["compare", str(report.parent), str(other), "--out", str(out)]) == 0
    return out / "compare.html"


def examples_page(compare: Path) -> Path:
    """The gate's examples.html: the probe run as candidate against the TF-IDF run, failing
    a no-worse rule and a robustness rule under typos (point decisions: the runs are tiny);
    2 examples per check in the page, the rest in examples.js."""
    runs = sorted(p for p in compare.parents[1].glob("reports/*/*") if p.is_dir())
    baseline, candidate = (next(r for r in runs if r.name == name)
                           for name in ("browser", "browser-probe"))
    policy = compare.parent / "gate.yaml"
    policy.write_text(yaml.safe_dump({"rules": [
        {"name": "no worse under typos", "kind": "non_inferiority", "split": "keyboard@4",
         "margin": 0.0, "decide": "point"},
        {"name": "typo drop", "kind": "robustness", "split": "keyboard@4", "max_drop": 0.05,
         "decide": "point"}]}))
    out = compare.parent / "gate"
    assert main(["gate", str(policy), "--baseline", str(baseline), "--candidate",
                 str(candidate), "--out", str(out), "--failures-inline", "2"]) == 1
    return out / "examples.html"


def monitor_page(folder: Path) -> Path:
    """monitor.html of a check with a model: detectors, calibration, positive controls and
    the label-free accuracy estimates."""
    reference = write_jsonl(folder / "reference.jsonl", labelled_rows(160, seed=11))
    current = write_jsonl(folder / "current.jsonl", labelled_rows(60, seed=12, shout=True))
    code = main(["monitor", "check", str(reference), str(current), "--label-column", "label",
                 "--model", "sklearn:tfidf", "--detector", "mmd", "--detector", "ks",
                 "--detector", "bbsd", "--control", "keyboard:2", "--calibrate-repeats", "10",
                 "--out", str(folder / "check"), "--cache-dir", str(folder / "cache"),
                 "--no-progress"])
    assert code in (0, 1)
    return folder / "check" / "monitor.html"


def history_page(folder: Path, encoder: Path) -> Path:
    """`monitor history --plot` of a stream whose last windows drift."""
    reference = write_jsonl(folder / "ref.jsonl", labelled_rows(300, seed=13))
    log = write_jsonl(folder / "log.jsonl",
                      labelled_rows(90, seed=14) + labelled_rows(60, seed=15, shout=True))
    store = folder / "history.sqlite"
    assert main(["monitor", "stream", str(reference), str(log), "--window", "30", "--ert", "20",
                 "--store", str(store), "--encoder", str(encoder), "--cache-dir",
                 str(folder / "cache"), "--no-progress"]) in (0, 1)
    assert main(["monitor", "history", "--store", str(store), "--plot",
                 str(folder / "history.html")]) == 0
    return folder / "history.html"


def mitigate_page(folder: Path, encoder: Path) -> Path:
    """mitigate.html of DANN against ERM over two seeds: training curves and before/after,
    2 examples per group in the page (the rest in mitigate.failures.js)."""
    suite = write_suite(folder)
    assert main(["mitigate", str(suite), "--model", f"probe:{encoder}", "--method", "dann",
                 "--out", str(folder / "out"), "--cache-dir", str(folder / "cache"),
                 "--device", "cpu", "--seeds", "2", "--param", "max_epochs=3",
                 "--param", "hidden=8", "--failures-inline", "2"]) == 0
    return folder / "out" / "mitigate.html"


@pytest.fixture(scope="module")
def pages(chromium, tiny_encoder_dir: Path, tiny_seq2seq_dir: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageReport]:
    """Each page built once and checked once; the tests below read the reports."""
    report = report_page(tmp_path_factory.mktemp("report"), tiny_encoder_dir)
    compare = compare_page(report, tiny_encoder_dir)
    made = {
        "report": report,
        "compare": compare,
        "examples": examples_page(compare),
        "monitor": monitor_page(tmp_path_factory.mktemp("monitor")),
        "history": history_page(tmp_path_factory.mktemp("history"), tiny_encoder_dir),
        "mitigate": mitigate_page(tmp_path_factory.mktemp("mitigate"), tiny_encoder_dir),
        "generation": generation_page(tmp_path_factory.mktemp("generation"), tiny_seq2seq_dir,
                                      tiny_encoder_dir),
    }
    return {name: check_page(chromium, path, name) for name, path in made.items()}


ROWS = "#fb-table tbody tr.fb-row"


def shown_count(page) -> int:
    """The failure browser's own count of shown rows (#fb-shown)."""
    return int(page.locator("#fb-shown").inner_text())


def hidden_rows_agree(page) -> bool:
    """Rows are hidden by their ``hidden`` attribute, and only those are out of sight."""
    return page.evaluate(f"""() => [...document.querySelectorAll('{ROWS}')].every(
        r => r.hidden === !r.checkVisibility())""")


@pytest.mark.parametrize("name", BROWSERS)
def test_the_failure_browser_filters_change_what_is_shown(chromium, pages, name: str) -> None:
    """Each filter's every option shows just its rows, counted right by #fb-shown; "all"
    brings them back; a group and a direction together show their intersection, fewer
    rows than all when the page has two groups or directions with rows. A generation
    page has no class filter."""
    with opened(chromium, pages[name].path, f"{name}-filters") as (page, report):
        every = visible_count(page, ROWS)
        assert every > 0 and shown_count(page) == every
        rows = page.evaluate(f"""() => [...document.querySelectorAll('{ROWS}')].map(
            r => [r.dataset.group, r.dataset.direction, r.dataset.class])""")
        for column, control in enumerate(("#fb-group", "#fb-direction", "#fb-class")):
            if control == "#fb-class" and name == "generation":
                assert page.locator(control).count() == 0
                continue
            values = page.eval_on_selector_all(f"{control} option", "os => os.map(o => o.value)")
            assert values[0] == "" and len(values) >= 2, (control, values)
            for value in values[1:]:  # a group may hold none (its option says "(0)")
                expected = sum(row[column] == value for row in rows)
                assert click_and_count(page, control, ROWS, value) == expected, value
                assert shown_count(page) == expected and hidden_rows_agree(page)
            assert click_and_count(page, control, ROWS, "") == every
        group, direction = rows[-1][0], rows[-1][1]
        page.locator("#fb-group").select_option(group)
        both = click_and_count(page, "#fb-direction", ROWS, direction)
        assert both == shown_count(page) == sum(r[:2] == [group, direction] for r in rows)
        assert 0 < both < every or len({tuple(r[:2]) for r in rows}) == 1
    assert report.console_errors == report.page_errors == report.outside_requests == []


def test_split_names_in_the_failure_table_are_not_broken_mid_word(chromium, pages) -> None:
    """'word_delete@2' read 'word_dele / te@2' in a column too narrow for it."""
    with opened(chromium, pages["report"].path, "report-names") as (page, _):
        lines = page.evaluate(f"""() => [...document.querySelectorAll('{ROWS} td:first-child')]
            .filter(td => !/\\s/.test(td.textContent.trim())).map(td => {{
                const range = document.createRange(); range.selectNodeContents(td);
                return [td.textContent.trim(), range.getClientRects().length]; }})""")
    assert lines and [name for name, n in lines if n != 1] == []


@pytest.mark.parametrize("name", BROWSERS)
def test_show_all_loads_the_rest_from_the_sidecar(chromium, pages, name: str) -> None:
    """#fb-more reads the sidecar beside the page (a file:// script): more rows, the button
    gone, the filters still counting right, nothing but local files requested."""
    with opened(chromium, pages[name].path, f"{name}-more") as (page, report):
        before = visible_count(page, ROWS)
        sidecar = page.locator("#fb-more").get_attribute("data-src")
        page.locator("#fb-more").click()
        page.wait_for_selector("#fb-more", state="detached")
        after = visible_count(page, ROWS)
        assert after > before and shown_count(page) == after
        direction = page.eval_on_selector_all("#fb-direction option",
                                              "os => os.map(o => o.value)")[1]
        assert click_and_count(page, "#fb-direction", ROWS, direction) == shown_count(page)
    assert (pages[name].path.parent / sidecar).exists()
    assert any(url.endswith("/" + sidecar) and url.startswith("file:")
               for url in report.requests)
    assert report.console_errors == report.page_errors == report.outside_requests == []


@pytest.mark.parametrize("name", PAGES)
def test_no_console_or_page_errors(pages: dict[str, PageReport], name: str) -> None:
    report = pages[name]
    assert report.console_errors == [] and report.page_errors == [], report.screenshot


@pytest.mark.parametrize("name", PAGES)
def test_no_request_leaves_the_page(pages: dict[str, PageReport], name: str) -> None:
    report = pages[name]
    assert report.requests[0] == report.path.resolve().as_uri()
    assert report.outside_requests == []


@pytest.mark.parametrize("name", PLOTTED)
def test_every_plot_has_a_size_and_its_marks_inside(pages: dict[str, PageReport],
                                                    name: str) -> None:
    report = pages[name]
    assert report.plots, f"{name}: no plot found"
    assert report.empty_plots == [], report.screenshot
    assert report.marks_outside == [], report.screenshot


@pytest.mark.parametrize("name", PAGES)
def test_plot_labels_do_not_overlap(pages: dict[str, PageReport], name: str) -> None:
    assert pages[name].overlapping_labels == [], pages[name].screenshot


@pytest.mark.parametrize("name", PAGES)
def test_tables_fit_the_page_width(pages: dict[str, PageReport], name: str) -> None:
    report = pages[name]
    assert report.wide_tables == [], report.screenshot
    assert report.scroll_width <= report.viewport_width, report.screenshot


def test_every_scatter_names_every_shifted_split(pages: dict[str, PageReport]) -> None:
    report = pages["report"]
    run = json.loads((report.path.parent / "report.json").read_text())
    shifted = {s["name"] for s in run["splits"] if s["kind"] != "reference"}
    scatters = [p for p in report.plots if p.label.startswith("Δ accuracy vs")]
    assert len(scatters) == 2
    unnamed = {p.label: sorted(shifted - set(p.texts)) for p in scatters}
    assert unnamed == {p.label: [] for p in scatters}


@pytest.mark.parametrize("name", PAGES)
def test_a_full_page_screenshot_is_kept(pages: dict[str, PageReport], name: str) -> None:
    shot = pages[name].screenshot
    assert shot.name == f"{name}.png" and shot.read_bytes().startswith(b"\x89PNG")


# -- the harness sees what it is meant to see --------------------------------------------------

BROKEN = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<svg viewBox="0 0 100 50" width="100" height="50" aria-label="broken plot">
  <circle cx="50" cy="25" r="3"/><circle cx="120" cy="25" r="3"/>
  <text x="95" y="20">cut off</text>
  <text x="5" y="40">one</text><text x="9" y="42">two</text>
  <text transform="translate(60,45) rotate(-35)">tilted</text><text x="60" y="45">ok</text></svg>
<svg width="0" height="0" aria-label="empty plot"></svg>
<table><tr><th>wide</th><td style="min-width:1500px">x</td></tr></table>
<div style="overflow:auto"><table><tr><th>scrolls</th><td style="min-width:1500px">x</td>
</tr></table></div>
<img src="http://shiftbench.invalid/pixel.png" alt="">
<select id="kind"><option value="all">all</option><option value="a">a</option></select>
<input id="hide" type="checkbox">
<ul><li class="a">1</li><li class="a">2</li><li class="b">3</li></ul>
<script>
document.getElementById('kind').onchange = e => document.querySelectorAll('li').forEach(
  li => li.style.display = e.target.value === 'all' || li.classList.contains(e.target.value)
        ? '' : 'none');
document.getElementById('hide').onchange = e => document.querySelectorAll('li').forEach(
  li => li.style.visibility = e.target.checked ? 'hidden' : '');
console.error('boom'); undefinedFunction();
</script></body></html>
"""


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("broken") / "broken.html"
    path.write_text(BROKEN)
    return path


def test_the_checks_catch_a_broken_page(chromium, broken: Path) -> None:
    report = check_page(chromium, broken)
    assert any("boom" in e for e in report.console_errors)
    assert any("undefinedFunction" in e for e in report.page_errors)
    assert report.outside_requests == ["http://shiftbench.invalid/pixel.png"]
    assert report.empty_plots == ["'empty plot': 0x0px"]
    outside = report.marks_outside
    assert len(outside) == 2 and all(m.startswith("'broken plot': ") for m in outside)
    assert '<circle cx=120 cy=25>' in outside[0] and '<text "cut off"' in outside[1]
    (overlap,) = report.overlapping_labels  # a tilted label's box is not its shape: skipped
    assert '<text "one"' in overlap and '<text "two"' in overlap
    (wide,) = report.wide_tables  # the one in a scrolling wrapper is fine
    assert wide.startswith("table 0 ('wide')")
    assert report.scroll_width > report.viewport_width


def test_click_and_count_operates_selects_and_checkboxes(chromium, broken: Path) -> None:
    with opened(chromium, broken) as (page, _):
        assert visible_count(page, "li") == 3
        assert click_and_count(page, "#kind", "li", "a") == 2
        assert click_and_count(page, "#kind", "li", "all") == 3
        assert click_and_count(page, "#hide", "li") == 0
