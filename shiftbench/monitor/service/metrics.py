"""The service's ``/metrics``: the drift gauges of ``monitor history --prometheus``, read
from the store at each scrape, plus queue depth, processing lag, ingestion counters and
the worker's health, all through the official ``prometheus_client``.

Gauges per (stream, detector), from its latest window: the families of
:data:`shiftbench.monitor.prometheus.METRICS` and the alarm counter ``ALARMS``. Per
stream: ``shiftbench_queue_records`` (unprocessed records), ``shiftbench_queue_oldest_
age_seconds`` and ``shiftbench_processing_lag_seconds`` (how long a complete window has
waited for the worker: 0 when it keeps up, growing when it falls behind) and, with a
model, ``shiftbench_accuracy{stream,estimate}`` (reference, atc, doc, actual). Per process:
``shiftbench_ingest_records_total{stream,outcome}`` (accepted, duplicate),
``shiftbench_ingest_requests_total{code}``, ``shiftbench_worker_up`` and
``shiftbench_worker_errors_total``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shiftbench.monitor.prometheus import ALARMS, METRICS
from shiftbench.monitor.service.accuracy import accuracy_values

if TYPE_CHECKING:
    from shiftbench.monitor.service.monitor import Monitor
    from shiftbench.monitor.store import WindowRecord

ACCURACY = "shiftbench_accuracy"
QUEUE = "shiftbench_queue_records"
OLDEST = "shiftbench_queue_oldest_age_seconds"
LAG = "shiftbench_processing_lag_seconds"
WORKER_UP = "shiftbench_worker_up"
WORKER_ERRORS = "shiftbench_worker_errors"
INGEST_RECORDS = "shiftbench_ingest_records"
INGEST_REQUESTS = "shiftbench_ingest_requests"


class StoreCollector(Collector):
    """Reads the store at scrape time, so every instance on one database reports the same
    drift gauges and the numbers are never staler than the store."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        latest, alarms = self.monitor.store.latest()
        labels = ["stream", "detector"]
        for name, _kind, text, value_of in METRICS:
            family = GaugeMetricFamily(name, text, labels=labels)
            for record in latest:
                value = value_of(record)
                if value is not None:
                    family.add_metric([record.stream, record.detector], value)
            yield family
        counter = CounterMetricFamily(ALARMS[0].removesuffix("_total"), ALARMS[2], labels=labels)
        for record in latest:
            counter.add_metric([record.stream, record.detector],
                               alarms.get((record.stream, record.detector), 0))
        yield counter
        yield self._accuracy(latest)
        yield from self._queue({r.stream for r in latest})
        yield GaugeMetricFamily(WORKER_UP, "1 if this instance's window worker is running.",
                                value=float(self.monitor.running))
        yield CounterMetricFamily(WORKER_ERRORS, "Windows that failed and were left to retry.",
                                  value=self.monitor.errors)

    @staticmethod
    def _accuracy(latest: list[WindowRecord]) -> Metric:
        family = GaugeMetricFamily(ACCURACY, "The model's accuracy on the latest window: "
                                             "estimated without labels (atc, doc), measured "
                                             "(actual, when every record had a label), and on "
                                             "the reference.", labels=["stream", "estimate"])
        windows = {r.stream: r.extra.get("accuracy") for r in latest}
        for stream, accuracy in sorted(windows.items()):
            for estimate, value in accuracy_values(accuracy or {}).items():
                family.add_metric([stream, estimate], value)
        return family

    def _queue(self, streams: set[str]) -> Iterator[Metric]:
        now = datetime.now(timezone.utc)
        backlog = self.monitor.backlog()
        queue = GaugeMetricFamily(QUEUE, "Records stored but not yet tested in a window.",
                                  labels=["stream"])
        oldest = GaugeMetricFamily(OLDEST, "Age of the oldest unprocessed record.",
                                   labels=["stream"])
        lag = GaugeMetricFamily(LAG, "How long the next complete window has waited for the "
                                     "worker (0: none waiting).", labels=["stream"])
        for stream in sorted(streams | backlog.keys()):
            waiting = backlog.get(stream)
            queue.add_metric([stream], waiting.pending if waiting else 0)
            age = (now - waiting.oldest).total_seconds() if waiting and waiting.oldest else 0.0
            oldest.add_metric([stream], max(0.0, age))
            lag.add_metric([stream], self.monitor.lag_seconds(stream, now) if waiting else 0.0)
        yield from (queue, oldest, lag)


class ServiceMetrics:
    """One registry per service (several apps in one process never share counters)."""

    def __init__(self, monitor: Monitor) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(monitor))
        self.records = Counter(INGEST_RECORDS, "Records received, by outcome (accepted: "
                               "stored now; duplicate: an id already stored).",
                               ["stream", "outcome"], registry=self.registry)
        self.requests = Counter(INGEST_REQUESTS, "Ingestion requests by HTTP status code.",
                                ["code"], registry=self.registry)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
