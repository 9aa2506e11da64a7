"""The Grafana dashboard and Prometheus alert rules shipped with the monitor service:
they load, and every metric they query is one the service's /metrics exports (read
through the app, in process, after records went in and windows were tested)."""

from __future__ import annotations

import json
import re
import time
from importlib.resources import files
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_serve import WINDOW, hashed_accuracy, make_monitor, make_oneshot, records

from shiftbench.monitor.service.app import create_app

PACKAGE = files("shiftbench.monitor.service")
METRIC = re.compile(r"\bshiftbench_[a-z_]+")


def exported_metrics(tmp_path: Path) -> set[str]:
    """Sample names on /metrics once a stream has windows, a queue and counted requests."""
    monitor = make_monitor(tmp_path / "h.sqlite", poll_interval=0.05,
                           accuracy=hashed_accuracy(), oneshot=make_oneshot())
    with TestClient(create_app(monitor, token="t")) as client:
        auth = {"Authorization": "Bearer t"}
        assert client.post("/v1/streams/prod/records", json={"records": records(WINDOW + 5)},
                           headers=auth).status_code == 202
        deadline = time.monotonic() + 20
        while not monitor.store.records("prod") and time.monotonic() < deadline:
            time.sleep(0.05)
        text = client.get("/metrics").text
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_dashboard_and_alerts_query_only_exported_metrics(tmp_path: Path) -> None:
    dashboard = json.loads(PACKAGE.joinpath("grafana-dashboard.json").read_text())
    rules = yaml.safe_load(PACKAGE.joinpath("prometheus-alerts.yml").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [var["definition"] for var in dashboard["templating"]["list"]
                if var["type"] == "query"]
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"ShiftbenchDriftDetected", "ShiftbenchOneShotDrift", "ShiftbenchStreamStalled",
            "ShiftbenchLagGrowing"} <= {rule["alert"] for rule in alerts}
    assert all(rule["expr"] and rule["annotations"]["summary"] for rule in alerts)
    queried = {name for query in queries + [rule["expr"] for rule in alerts]
               for name in METRIC.findall(query)}
    exported = exported_metrics(tmp_path)
    assert queried - exported == set()
    # the drift gauges of `monitor history --prometheus` are all there
    from shiftbench.monitor.prometheus import ALARMS, METRICS

    assert {name for name, *_ in METRICS} | {ALARMS[0]} <= exported
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
