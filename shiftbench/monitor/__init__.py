"""Drift monitoring: has current traffic moved away from a reference, and does it hurt?

- :mod:`~shiftbench.monitor.oneshot`: ``shiftbench monitor check``, a reference file
  against a current file, with calibrated detectors and an exit code;
- :mod:`~shiftbench.label_free` (shared with the run report): label-free estimates of
  current accuracy (ATC, DoC);
- :mod:`~shiftbench.monitor.report`: the check's JSON, HTML and printed summary;
- :mod:`~shiftbench.monitor.stream`, :mod:`~shiftbench.monitor.store`,
  :mod:`~shiftbench.monitor.plot`, :mod:`~shiftbench.monitor.prometheus`: streaming
  windows tested by online detectors (:mod:`shiftbench.detectors.online`), their
  history, its plot and metrics export;
- :mod:`~shiftbench.monitor.cli`: the ``monitor`` subcommands.
"""
