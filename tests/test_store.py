"""History store on SQLite and on a real PostgreSQL server; Prometheus text; history plot.

Each store test runs on both back ends: the PostgreSQL one is a throwaway server started
for this module (tests/postgres.py), skipped only where its binaries are missing.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from postgres import free_port, postgres_server
from sqlalchemy import event

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.plot import alarm_share, write_history_plot
from shiftbench.monitor.prometheus import escape_label, prometheus_text, write_prometheus
from shiftbench.monitor.store import HistoryStore, WindowRecord, history

CONFIG = {"source": "/data/log.jsonl", "window": 20, "detectors": {"mmd": {"ert": 50}}}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def record(stream: str, window: int, detector: str = "online_mmd", drifted: bool = False,
           statistic: float = 0.001, threshold: float | None = 0.004,
           p_value: float | None = 0.3) -> WindowRecord:
    return WindowRecord(stream, window, detector, detector, "log.jsonl", 20 * window,
                        20 * window + 20, "log.jsonl", 1000 * (window + 1),
                        T0 + timedelta(minutes=window), 20, statistic, threshold, p_value,
                        0.02, drifted, {"bandwidth": 3.5, "note": "ok"})


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        target = str(tmp_path / "sub" / "history.sqlite")  # the folder is created
    else:
        target = request.getfixturevalue("postgres_url")
    with HistoryStore(target) as opened:
        yield opened
    if request.param == "postgresql":  # the server outlives the test: leave it empty
        with opened.engine.begin() as conn:
            opened._metadata.drop_all(conn)
        opened.close()


def rows_of(store: HistoryStore, stream: str, window: int) -> list[WindowRecord]:
    return [r for r in store.records(stream) if r.window == window]


# -- write / read -----------------------------------------------------------------------------


def test_windows_round_trip(store: HistoryStore) -> None:
    written = [[record("prod", w, "online_mmd", drifted=w == 2),
                record("prod", w, "ks", threshold=None, p_value=0.5 / (w + 1))]
               for w in range(3)]
    for records in written:
        store.write_window("prod", CONFIG, records)
    store.write_window("canary \"eu\"", CONFIG, [record("canary \"eu\"", 0)])

    got = store.records("prod")
    want = sorted((r for rs in written for r in rs), key=lambda r: (r.window, r.detector))
    assert got == want  # floats, None, booleans, JSON extra and aware UTC times survive
    assert all(r.time.tzinfo is not None for r in got)
    assert store.last_window("prod").window == 2
    assert store.last_window("nobody") is None
    assert store.stream_names() == ["canary \"eu\"", "prod"]
    assert store.stream_config("prod") == CONFIG
    assert len(store.records()) == 7


def test_a_window_is_written_whole_or_not_at_all(store: HistoryStore) -> None:
    """A failure after the window's first statement leaves nothing of that window."""
    store.write_window("prod", CONFIG, [record("prod", 0), record("prod", 0, "ks")])

    def fail_on_streams_read(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "shiftbench_streams" in statement:
            raise RuntimeError("connection lost")

    event.listen(store.engine, "before_cursor_execute", fail_on_streams_read)
    try:
        with pytest.raises(RuntimeError, match="connection lost"):
            store.write_window("prod", CONFIG, [record("prod", 1), record("prod", 1, "ks")])
        with pytest.raises(RuntimeError):  # a new stream's first window: no stream row either
            store.write_window("new", CONFIG, [record("new", 0)])
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_streams_read)
    assert rows_of(store, "prod", 1) == []
    assert len(rows_of(store, "prod", 0)) == 2
    assert store.stream_config("new") is None
    assert store.records("new") == []


def test_settings_of_a_stream_are_kept(store: HistoryStore) -> None:
    store.write_window("prod", CONFIG, [record("prod", 0)])
    other = {**CONFIG, "window": 50}
    with pytest.raises(ShiftbenchError, match=r"started with window = 20, not 50") as err:
        store.check_stream("prod", other)
    assert "\n" not in str(err.value)
    store.check_stream("prod", dict(CONFIG))  # same settings: fine
    with pytest.raises(ShiftbenchError, match="started with window"):
        store.write_window("prod", other, [record("prod", 1)])
    assert rows_of(store, "prod", 1) == []  # the rows inserted before the check rolled back


def test_a_window_stored_twice_is_refused(store: HistoryStore) -> None:
    store.write_window("prod", CONFIG, [record("prod", 0)])
    with pytest.raises(ShiftbenchError, match="window 0 is already stored") as err:
        store.write_window("prod", CONFIG, [record("prod", 0)])
    assert "\n" not in str(err.value)
    assert len(store.records("prod")) == 1


def test_history_reads_and_names_missing_streams(store: HistoryStore) -> None:
    store.write_window("prod", CONFIG, [record("prod", 0)])
    url = store.url.render_as_string(hide_password=False)
    assert history(url, "prod") == store.records("prod")
    with pytest.raises(ShiftbenchError, match=r"no stream 'staging' \(streams: prod\)"):
        history(url, "staging")


# -- SQLite ----------------------------------------------------------------------------------


def test_sqlite_reader_sees_whole_windows_while_a_writer_commits(tmp_path: Path) -> None:
    """WAL: a reader in a transaction keeps its snapshot and does not block the writer."""
    path = tmp_path / "history.sqlite"
    with HistoryStore(path) as store:
        store.write_window("prod", CONFIG, [record("prod", 0), record("prod", 0, "ks")])
        reader = sqlite3.connect(path, timeout=1, isolation_level=None)
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reader.execute("BEGIN")
        count = "SELECT count(*) FROM shiftbench_windows"
        assert reader.execute(count).fetchone()[0] == 2
        started = time.monotonic()
        store.write_window("prod", CONFIG, [record("prod", 1), record("prod", 1, "ks")])
        assert time.monotonic() - started < 1  # not blocked by the open read transaction
        assert reader.execute(count).fetchone()[0] == 2  # the reader's snapshot
        reader.execute("COMMIT")
        assert reader.execute(count).fetchone()[0] == 4  # both rows of window 1 at once
        reader.close()


@pytest.mark.parametrize("target, message", [
    ("{tmp}/a-file.txt/history.sqlite", "cannot open"),  # parent is a file
    ("{tmp}", "cannot open"),  # a directory, not a database file
    ("sqlite:///{tmp}/a-file.txt/x/h.sqlite", "cannot open"),
    ("nosuchdb://user:secret@host/db", "cannot open"),
    ("postgresql+psycopg://user:secret@127.0.0.1:{port}/db", "cannot open"),
    ("://nothing", "not a database URL"),
])
def test_a_store_that_cannot_be_opened_is_one_line(tmp_path: Path, target: str,
                                                   message: str) -> None:
    (tmp_path / "a-file.txt").write_text("not a folder")
    target = target.format(tmp=tmp_path, port=free_port())  # a closed port: refused
    started = time.monotonic()
    with pytest.raises(ShiftbenchError, match=message) as err:
        HistoryStore(target)
    assert time.monotonic() - started < 15
    text = str(err.value)
    assert "\n" not in text and text.startswith("history store")
    assert "secret" not in text  # passwords never printed


def test_reading_history_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    with pytest.raises(ShiftbenchError, match="no such file"):
        history(missing)
    assert not missing.exists()
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ShiftbenchError, match="holds no shiftbench history"):
        history(tmp_path / "other.sqlite")


# -- Prometheus text ------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-z_]+)\{stream="((?:[^"\\]|\\.)*)",detector="((?:[^"\\]|\\.)*)"\} '
                    r"(\S+)$")


def parse_prometheus(text: str) -> dict[str, dict[tuple[str, str], float]]:
    """A strict reader of the subset written: HELP and TYPE before each family's samples."""
    families: dict[str, dict[tuple[str, str], float]] = {}
    declared: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name, rest = line[2:].split(" ", 2)
            assert kind in ("HELP", "TYPE") and rest
            declared.setdefault(name, set()).add(kind)
            if kind == "TYPE":
                assert rest in ("gauge", "counter")
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, stream, detector, value = match.groups()
        assert declared.get(name) == {"HELP", "TYPE"}, f"{name}: sample before HELP/TYPE"

        def unescape(v: str) -> str:
            return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), v)

        key = (unescape(stream), unescape(detector))
        assert key not in families.setdefault(name, {}), f"{name}{key}: two samples"
        families[name][key] = float(value)
    return families


def test_prometheus_text_has_the_latest_window_per_stream_and_detector() -> None:
    odd = 'eu "west"\\1\nb'
    records = [record("prod", w, drifted=w in (1, 3), statistic=0.001 * (w + 1))
               for w in (3, 0, 1, 2)]  # out of order: latest is by window index
    records += [record("prod", w, "ks", threshold=None, p_value=0.2) for w in range(2)]
    records += [record(odd, 0, drifted=True, p_value=None)]
    text = prometheus_text(records)
    assert text.endswith("\n")
    families = parse_prometheus(text)

    assert families["shiftbench_drift_window"] == {("prod", "online_mmd"): 3,
                                                   ("prod", "ks"): 1, (odd, "online_mmd"): 0}
    assert families["shiftbench_drift_statistic"][("prod", "online_mmd")] == pytest.approx(0.004)
    assert families["shiftbench_drift_detected"] == {("prod", "online_mmd"): 1,
                                                     ("prod", "ks"): 0, (odd, "online_mmd"): 1}
    assert families["shiftbench_drift_alarms_total"][("prod", "online_mmd")] == 2
    assert ("prod", "ks") not in families["shiftbench_drift_threshold"]  # none: no sample
    assert (odd, "online_mmd") not in families["shiftbench_drift_p_value"]
    assert families["shiftbench_drift_window_timestamp_seconds"][("prod", "online_mmd")] == \
        (T0 + timedelta(minutes=3)).timestamp()
    assert 'stream="eu \\"west\\"\\\\1\\nb"' in text  # escaped exactly as the format says
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert prometheus_text([]) == ""


def test_prometheus_file_is_replaced_atomically_and_readable(tmp_path: Path) -> None:
    path = write_prometheus([record("prod", 0)], tmp_path / "prom" / "shiftbench.prom")
    assert parse_prometheus(path.read_text())["shiftbench_drift_window"] == {
        ("prod", "online_mmd"): 0}
    assert path.stat().st_mode & 0o044 == 0o044
    assert [p.name for p in path.parent.iterdir()] == ["shiftbench.prom"]  # no temp file left


# -- plot ----------------------------------------------------------------------------------


def test_history_plot_draws_each_window_against_the_threshold(tmp_path: Path) -> None:
    records = [record("prod", w, drifted=w >= 8, statistic=0.001 if w < 8 else 0.012)
               for w in range(10)]
    records += [record("prod", w, "ks", threshold=None, p_value=0.5) for w in range(10)]
    assert alarm_share(records[9]) == pytest.approx(3.0)  # 0.012 / 0.004
    assert alarm_share(records[10]) == pytest.approx(0.1771, abs=1e-4)  # log .5 / log .02
    html = write_history_plot(records + [record("b<&>", 0)], tmp_path / "h.html").read_text()
    assert html.count("<svg") == 2 and "b&lt;&amp;&gt;" in html
    assert "alarm threshold" in html
    svg = write_history_plot(records, tmp_path / "h.svg").read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.count("<circle") == 20 and svg.count("<polyline") == 2
    assert svg.count('fill="#d62728"') == 2 + 1  # two alarms and the legend swatch
    with pytest.raises(ShiftbenchError, match="one stream"):
        write_history_plot(records + [record("b", 0)], tmp_path / "h2.svg")
    with pytest.raises(ShiftbenchError, match=r"\.html or \.svg"):
        write_history_plot(records, tmp_path / "h.png")
