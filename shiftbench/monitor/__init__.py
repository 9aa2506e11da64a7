"""Drift monitoring: has current traffic moved away from a reference, and does it hurt?

- :mod:`~shiftbench.monitor.embed`: texts -> vectors (the model's own or an encoder's),
  through the runner's cache;
- :mod:`~shiftbench.monitor.oneshot`: ``shiftbench monitor check``, a reference file
  against a current file, with calibrated detectors and an exit code;
- :mod:`~shiftbench.label_free` (shared with the run report): label-free estimates of
  current accuracy (ATC, DoC);
- :mod:`~shiftbench.monitor.report`: the check's JSON, HTML and printed summary;
- :mod:`~shiftbench.monitor.online`: the online MMD whose threshold gives a chosen
  expected run time (ERT) between false alarms;
- :mod:`~shiftbench.monitor.stream`, :mod:`~shiftbench.monitor.store`,
  :mod:`~shiftbench.monitor.plot`, :mod:`~shiftbench.monitor.prometheus`: streaming
  windows, their history, its plot and metrics export;
- :mod:`~shiftbench.monitor.cli`: the ``monitor`` subcommands.
"""
