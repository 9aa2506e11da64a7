"""`shiftbench monitor serve` as a real process: concurrent clients, kill -9 mid-stream,
restart, then count: every acknowledged record is in the store, in exactly one window,
windows neither lost nor duplicated; the same with two instances on one PostgreSQL.
Bad requests get a 4xx with a one-line reason and write nothing; /metrics parses.

The service runs through tests/serve_harness.py (the real CLI plus a model plug-in that
hashes words into 16 counts), so it starts in about a second: no torch, no weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import make_labelled
from postgres import free_port, postgres_server
from prometheus_client.parser import text_string_to_metric_families
from test_serve import WINDOW, check_exactly_once

from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.monitor import Client
from shiftbench.monitor.service.records import RecordStore

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


@dataclass(frozen=True)
class Assets:
    reference: Path
    token: Path


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    folder = tmp_path_factory.mktemp("serve")
    texts, labels = make_labelled(300, seed=5)
    with open(folder / "reference.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"text": text, "label": label}) + "\n"
                      for text, label in zip(texts, labels, strict=True))
    (folder / "token").write_text(TOKEN + "\n")
    return Assets(folder / "reference.jsonl", folder / "token")


class Service:
    """One `monitor serve` process (restartable on the same port)."""

    def __init__(self, assets: Assets, store: str, cwd: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, str(ROOT / "tests" / "serve_harness.py"), "monitor", "serve",
                     "--reference", str(assets.reference), "--label-column", "label",
                     "--model", "hashed",
                     "--store", store, "--port", str(self.port), "--window", str(WINDOW),
                     "--ert", "20", "--device", "cpu", "--token-file", str(assets.token),
                     *extra]
        self.cwd = cwd
        self.log = cwd / f"service-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(self.args, cwd=self.cwd, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"service exited {self.process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"service did not become healthy: {self.log.read_text()}")

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, nothing but what was committed survives."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def send_all(url: str, stream: str, prefix: str, n: int, acked: set[str],
             errors: list[str], retried: list[int]) -> None:
    """A client thread: n records in batches of 25; ids acknowledged go into ``acked``,
    its count of repeated tries into ``retried``."""
    try:
        with Client(url, TOKEN, batch_size=25, retries=40, backoff=0.05,
                    max_backoff=0.5) as client:
            for start in range(0, n, 25):
                batch = [{"id": f"{prefix}-{i}", "text": f"the movie was great {prefix} {i}"}
                         for i in range(start, min(n, start + 25))]
                client.send(stream, batch)
                acked.update(r["id"] for r in batch)
            retried.append(client.retried)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(f"{prefix}: {exc}")


def wait_processed(url: str, stream: str, timeout: float = 60) -> None:
    """Until fewer than a window of the stream's records wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = httpx.get(f"{url}/v1/streams/{stream}").json()
        if reply["pending"] < WINDOW:
            return
        time.sleep(0.2)
    pytest.fail(f"stream {stream}: records still waiting after {timeout} s")


def metrics(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """/metrics parsed by the Prometheus client's parser: (name, labels) -> value."""
    text = httpx.get(f"{url}/metrics", headers=headers).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def run_clients(urls: list[str], stream: str, per_client: int, kill: Service,
                acked: set[str]) -> None:
    """Clients on ``urls`` (round robin); ``kill`` is killed -9 once a third is
    acknowledged and restarted while they keep sending."""
    errors: list[str] = []
    retried: list[int] = []
    threads = [threading.Thread(target=send_all, args=(urls[k % len(urls)], stream, f"c{k}",
                                                       per_client, acked, errors, retried))
               for k in range(4)]
    for thread in threads:
        thread.start()
    while len(acked) < 4 * per_client // 3 and any(t.is_alive() for t in threads):
        time.sleep(0.02)
    kill.kill()
    kill.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert len(acked) == 4 * per_client
    assert sum(retried) > 0  # the kill hit clients mid-send: they retried through it


def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(
        assets: Assets, tmp_path: Path, services: list[Service]) -> None:
    store = str(tmp_path / "history.sqlite")
    service = Service(assets, store, tmp_path).start()
    services.append(service)
    acked: set[str] = set()
    run_clients([service.url], "prod", 240, service, acked)
    wait_processed(service.url, "prod")
    with RecordStore(store) as records:
        placed = check_exactly_once(records, "prod", acked)
        rows = records.records("prod")
    windows = len(placed) // WINDOW
    # every window has its one-shot tests (the defaults with a classifier), once each
    # (check_exactly_once), and the traffic ("the movie was great ...") is far from the
    # reference: each of them flags every window, after Holm's adjustment
    assert {r.detector for r in rows} == {"online_mmd", "mmd", "ks", "bbsd"}
    assert all(r.drifted and r.extra["holm_p"] < 0.05 for r in rows
               if r.detector in ("mmd", "bbsd"))
    reply = httpx.get(f"{service.url}/v1/streams/prod", params={"limit": 3}).json()
    assert [(w["window"], w["detector"]) for w in reply["windows"]] == \
        [(k, d) for k in range(windows - 3, windows) for d in ("bbsd", "ks", "mmd", "online_mmd")]
    seen = metrics(service.url)
    key = (("detector", "online_mmd"), ("stream", "prod"))
    assert seen[("shiftbench_drift_window", key)] == windows - 1
    assert seen[("shiftbench_drift_window_rows", key)] == WINDOW
    for detector in ("mmd", "bbsd"):
        labels = (("detector", detector), ("stream", "prod"))
        assert seen[("shiftbench_drift_detected", labels)] == 1
        assert seen[("shiftbench_drift_p_value", labels)] <= \
            seen[("shiftbench_drift_holm_p_value", labels)] < 0.05
        assert seen[("shiftbench_drift_alarms_total", labels)] == windows
    assert seen[("shiftbench_queue_records", (("stream", "prod"),))] == len(placed) % WINDOW
    assert seen[("shiftbench_processing_lag_seconds", (("stream", "prod"),))] == 0
    assert seen[("shiftbench_worker_up", ())] == 1
    # label-free accuracy of the latest window: every text says "great", so the model
    # predicts positive throughout; no labels were sent, so nothing measured
    estimates = {dict(labels)["estimate"] for name, labels in seen
                 if name == "shiftbench_accuracy"}
    assert estimates == {"reference", "atc", "doc"}
    assert set(reply["windows"][-1]["extra"]["accuracy"]) >= {"atc", "doc", "reference"}
    # the restarted process counts what it accepted itself
    accepted = seen[("shiftbench_ingest_records_total", (("outcome", "accepted"),
                                                         ("stream", "prod")))]
    assert 0 < accepted <= len(acked)


def test_two_instances_on_one_postgresql_share_streams_without_corruption(
        assets: Assets, tmp_path: Path, services: list[Service]) -> None:
    with postgres_server() as url:
        first, second = (Service(assets, url, tmp_path / name) for name in ("a", "b"))
        for service in (first, second):
            service.cwd.mkdir()
            services.append(service.start())
        acked: set[str] = set()
        run_clients([first.url, second.url], "prod", 160, first, acked)
        wait_processed(second.url, "prod")
        with RecordStore(url) as records:
            check_exactly_once(records, "prod", acked)
        for service in (first, second):
            service.stop()


def test_bad_requests_get_a_one_line_4xx_and_write_nothing(
        assets: Assets, tmp_path: Path, services: list[Service]) -> None:
    store = str(tmp_path / "history.sqlite")
    service = Service(assets, store, tmp_path, "--max-batch", "50", "--stream", "prod",
                      "--stream", "busy", "--window-seconds", "3600", "--max-queue", "40",
                      "--auth-reads").start()
    services.append(service)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    records = f"{service.url}/v1/streams/prod/records"
    good = {"records": [{"text": "the movie was great", "id": "a"}]}
    cases = [
        (httpx.post(records, json=good), 401, "missing or wrong bearer token"),
        (httpx.post(records, json=good, headers={"Authorization": "Bearer nope"}), 401,
         "missing or wrong bearer token"),
        (httpx.get(f"{service.url}/metrics"), 401, "bearer token"),
        (httpx.post(records, content=b'{"records": [{"text": "x"', headers=auth), 400,
         "malformed JSON"),
        (httpx.post(records, content=b"\xff\xfe", headers=auth), 400, "malformed JSON"),
        (httpx.post(records, json={"records": [{"text": "ok"}, {"text": ["x"]}]},
                    headers=auth), 422, "records[1].text: Input should be a valid string"),
        (httpx.post(records, json={"records": [{"text": "x", "label": 1.5}]}, headers=auth),
         422, "records[0].label"),
        (httpx.post(records, json=[{"text": "x"}], headers=auth), 422,
         'expected {"records": [...]}'),
        (httpx.post(records, json={"records": [{"text": "x"}] * 51}, headers=auth), 413,
         "51 in one batch, over the limit of 50"),
        (httpx.post(records, content=b" " * (9 << 20), headers=auth), 413,
         "over the limit of 8388608"),
        (httpx.post(f"{service.url}/v1/streams/other/records", json=good, headers=auth), 404,
         "'other' is not served here"),
        (httpx.post(f"{service.url}/v1/streams/a%20b/records", json=good, headers=auth), 422,
         "stream name 'a b'"),
        (httpx.post(f"{service.url}/v1/streams/..%2F..%2Fetc/records", json=good,
                    headers=auth), 404, "Not Found"),
        (httpx.get(f"{service.url}/v1/streams/prod", headers=auth), 404, "no stream 'prod'"),
        (httpx.get(f"{service.url}/v1/streams/prod?limit=0", headers=auth), 422, "limit"),
    ]
    for response, status, reason in cases:
        detail = response.json()["detail"]
        assert (response.status_code, reason in detail, "\n" in detail) == (status, True, False), \
            (response.request.url, response.status_code, detail)
    assert cases[0][0].headers["www-authenticate"] == "Bearer"
    with RecordStore(store) as store_now:
        assert store_now.record_windows("prod") == {}
    # backpressure: time windows of an hour keep 40 records waiting; the 41st is refused
    busy = f"{service.url}/v1/streams/busy/records"
    batch = {"records": [{"text": f"t {i}", "id": str(i)} for i in range(40)]}
    assert httpx.post(busy, json=batch, headers=auth).json() == \
        {"accepted": 40, "duplicates": 0, "pending": 40}
    assert httpx.post(busy, json=batch, headers=auth).json()["duplicates"] == 40
    full = httpx.post(busy, json={"records": [{"text": "one more"}]}, headers=auth)
    assert full.status_code == 429 and full.headers["retry-after"] == "1"
    assert "40 unprocessed records" in full.json()["detail"]
    seen = metrics(service.url, auth)
    assert seen[("shiftbench_ingest_requests_total", (("code", "401"),))] == 2
    assert seen[("shiftbench_ingest_requests_total", (("code", "429"),))] == 1
    assert seen[("shiftbench_queue_records", (("stream", "busy"),))] == 40
    assert seen[("shiftbench_processing_lag_seconds", (("stream", "busy"),))] == 0
    # the Client: retries a 429 (after Retry-After) and then gives up in one line ...
    client = Client(service.url, TOKEN, retries=1, backoff=0.01)
    with pytest.raises(ShiftbenchError, match="gave up after 2 tries \\(HTTP 429: stream "
                                              "'busy' holds 40"):
        client.send("busy", ["one more"])
    assert client.retried == 1
    # ... buffers records and sends them in batches, the rest on close
    with Client(service.url, TOKEN, batch_size=3) as client:
        for i in range(4):
            client.add("prod", f"the movie was great {i}", id=f"added-{i}", label="positive")
        assert client.windows("prod")["pending"] == 3
    assert httpx.get(f"{service.url}/v1/streams/prod", headers=auth).json()["pending"] == 4
    with pytest.raises(ShiftbenchError, match=r"records\[0\]\.text"):  # checked before sending
        Client(service.url, TOKEN).send("prod", [{"text": 3}])
    with pytest.raises(ShiftbenchError, match="HTTP 404: stream 'other' is not served"):
        Client(service.url, TOKEN).send("other", ["the movie was great"])


def test_serve_refuses_bad_settings_in_one_line(assets: Assets, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["monitor", "serve", "--reference", str(assets.reference), "--store",
            str(tmp_path / "h.sqlite"), "--device", "cpu"]
    assert main([*base, "--token-file", str(tmp_path / "missing")]) == 2
    assert "--token-file" in capsys.readouterr().err
    (tmp_path / "blank").write_text("\n")
    assert main([*base, "--token-file", str(tmp_path / "blank")]) == 2
    assert "must hold one token" in capsys.readouterr().err
    assert main([*base, "--model", "sklearn:tfidf"]) == 2
    assert "takes a trained model" in capsys.readouterr().err


def test_the_port_is_taken_before_any_work(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A port out of range or in use fails in one line before the reference is read (here
    it does not exist, and that error never comes); port 0 takes any free one."""
    import socket

    from shiftbench.monitor.cli import _listening

    base = ["monitor", "serve", "--reference", str(tmp_path / "absent.jsonl"), "--store",
            str(tmp_path / "h.sqlite"), "--device", "cpu"]
    assert main([*base, "--port", "99999"]) == 2
    assert capsys.readouterr().err.strip() == "shiftbench: error: --port 99999: use 0-65535"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([*base, "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"shiftbench: error: --host 127.0.0.1 --port {port}: cannot listen "
                          "there (") and "\n" not in err
    with _listening("127.0.0.1", 0) as sock:
        assert sock.getsockname()[1] > 0
