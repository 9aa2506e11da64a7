"""Drift monitoring: has current traffic moved away from a reference, and does it hurt?

- ``shiftbench monitor check``, a reference file against a current file, with calibrated
  detectors and an exit code: :mod:`~shiftbench.monitor.check` runs it, reading its
  files with :mod:`~shiftbench.monitor.inputs`, setting up its detectors, controls and
  calibration window with :mod:`~shiftbench.monitor.check_setup`, training the model and
  estimating its accuracy with :mod:`~shiftbench.monitor.model` (label-free estimates
  from :mod:`~shiftbench.label_free`, shared with the run report), and deciding with
  :mod:`~shiftbench.monitor.verdict`; :mod:`~shiftbench.monitor.report` writes its JSON,
  HTML and printed summary;
- ``shiftbench monitor stream``: :mod:`~shiftbench.monitor.rows` reads files row by row
  from a saved offset, :mod:`~shiftbench.monitor.windows` cuts them into windows,
  :mod:`~shiftbench.monitor.stream` tests each window with online detectors
  (:mod:`shiftbench.detectors.online`) and keeps the history in
  :mod:`~shiftbench.monitor.store`; :mod:`~shiftbench.monitor.plot` and
  :mod:`~shiftbench.monitor.prometheus` plot and export it;
- ``shiftbench monitor serve``: :mod:`~shiftbench.monitor.service` takes records over
  HTTP (or in process: :class:`Monitor`), stores them, tests them in windows with the
  same window test, and exports ``/metrics``; :class:`Client` sends them from an app;
- :mod:`~shiftbench.monitor.cli`: the ``monitor`` subcommands.
"""

from typing import Any

_LAZY = {"Client": "shiftbench.monitor.service.client",
         "Monitor": "shiftbench.monitor.service.monitor"}


def __getattr__(name: str) -> Any:
    """``Client`` and ``Monitor`` load on first use: the CLI's start must not pay for them."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
