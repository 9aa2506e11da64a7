"""The runtime settings every command that runs models shares: the device and precision,
the batch size, the cache folder, the seed, progress bars and where batches run
(``--executor local|ray[:ADDRESS]``, ``--workers``).

Each flag is defined once, in :data:`FLAGS`; a command adds the ones it takes with
:func:`add_runtime_flags` and gets its :class:`Runtime` from :func:`runtime_options`, so
``--batch-size`` is checked, and ``--cache-dir`` resolved, the same way everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.device import PRECISIONS, resolve_cache_dir
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.runner import Runner


@dataclass(frozen=True)
class Runtime:
    """How work runs. ``cache_dir`` None: no cache. ``seed`` is for commands without a
    suite (a suite carries its own); ``progress`` None: bars when the output is a
    terminal."""

    cache_dir: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    batch_tokens: int | None = None
    seed: int = 0
    progress: bool | None = None
    executor: str = "local"
    workers: int | None = None

    def runner(self) -> Runner:
        """The batched inference runner with these settings."""
        from shiftbench.runner import Runner

        return Runner(cache_dir=self.cache_dir, device=self.device, precision=self.precision,
                      batch_size=self.batch_size, batch_tokens=self.batch_tokens,
                      progress=self.progress,
                      executor=self.executor, workers=self.workers)


DEFAULTS = Runtime()

FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "cache_dir": ("--cache-dir", {
        "type": Path, "metavar": "DIR",
        "help": "prediction/embedding cache (default: $SHIFTBENCH_CACHE_DIR, else .cache in "
                "the reports folder)"}),
    "device": ("--device", {"default": DEFAULTS.device, "help": "auto | cpu | cuda | cuda:N"}),
    "precision": ("--precision", {"default": DEFAULTS.precision, "choices": PRECISIONS,
                                  "help": "auto: bf16 (or fp16) on CUDA, fp32 on CPU"}),
    "batch_size": ("--batch-size", {
        "type": int, "metavar": "N",
        "help": "texts per batch (default 64; a model's forward passes fill --batch-tokens "
                "instead, with at most N texts when given)"}),
    "batch_tokens": ("--batch-tokens", {
        "type": int, "metavar": "N",
        "help": "padded tokens per forward-pass batch (default 65536 on CUDA, 4096 on CPU; "
                "0: batches of --batch-size texts)"}),
    "seed": ("--seed", {"type": int, "default": DEFAULTS.seed}),
    "progress": ("--no-progress", {"action": "store_true", "help": "no progress bars"}),
    "executor": ("--executor", {
        "default": DEFAULTS.executor, "metavar": "local|ray[:ADDRESS]",
        "help": "where model batches run: this process (default), or Ray actors (ray: the "
                "cluster Ray finds, else a new local one; ray:HOST:PORT or ray:auto: that "
                "cluster)"}),
    "workers": ("--workers", {"type": int, "metavar": "N",
                              "help": "Ray actors (default: one per GPU of the cluster, or 2)"}),
}
"""Runtime field -> its flag and argparse settings."""


def add_runtime_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      names: Iterable[str] = tuple(FLAGS)) -> None:
    """Add the flags of the runtime fields ``names`` (default: all)."""
    for name in names:
        flag, settings = FLAGS[name]
        parser.add_argument(flag, **settings)


def runtime_options(args: argparse.Namespace, reports_dir: Path = Path("reports")) -> Runtime:
    """The Runtime of parsed flags, checked; a flag the command does not take keeps its
    default, and the cache folder defaults to ``<reports_dir>/.cache``."""
    batch_size = getattr(args, "batch_size", DEFAULTS.batch_size)
    if batch_size is not None and batch_size <= 0:
        raise ShiftbenchError("--batch-size must be a positive number")
    batch_tokens = getattr(args, "batch_tokens", DEFAULTS.batch_tokens)
    if batch_tokens is not None and batch_tokens < 0:
        raise ShiftbenchError("--batch-tokens must be 0 or a positive number")
    workers = getattr(args, "workers", DEFAULTS.workers)
    if workers is not None and workers <= 0:
        raise ShiftbenchError("--workers must be a positive number")
    return Runtime(cache_dir=resolve_cache_dir(getattr(args, "cache_dir", None), reports_dir),
                   device=getattr(args, "device", DEFAULTS.device),
                   precision=getattr(args, "precision", DEFAULTS.precision),
                   batch_size=batch_size, batch_tokens=batch_tokens,
                   seed=getattr(args, "seed", DEFAULTS.seed),
                   progress=False if getattr(args, "no_progress", False) else None,
                   executor=getattr(args, "executor", DEFAULTS.executor), workers=workers)
