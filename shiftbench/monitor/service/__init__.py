"""``shiftbench monitor serve``: drift monitoring as a service.

- :mod:`~shiftbench.monitor.service.records`: the record schema and the durable record
  store (SQLite or PostgreSQL, beside the history);
- :mod:`~shiftbench.monitor.service.monitor`: :class:`Monitor`, records in and windows
  tested on a worker thread (usable in process, without HTTP);
  :mod:`~shiftbench.monitor.service.accuracy`: label-free accuracy of each window;
- :mod:`~shiftbench.monitor.service.app`: the FastAPI app; :mod:`~shiftbench.monitor.
  service.metrics`: its Prometheus metrics;
- :mod:`~shiftbench.monitor.service.client`: :class:`Client`, for serving apps;
- ``grafana-dashboard.json`` and ``prometheus-alerts.yml``: a dashboard and alert rules
  over the exported metrics (package data).
"""
