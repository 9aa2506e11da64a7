"""Where work runs and where it is kept: the device, the precision and the cache folder.

One small module that every layer uses (the runner, the detectors' torch backends, the
commands), so ``--device cuda`` or ``--cache-dir`` means the same everywhere. torch is
imported only when a choice depends on it: ``cpu`` and ``fp32`` never load it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CACHE_ENV = "SHIFTBENCH_CACHE_DIR"


def resolve_device(device: str = "auto") -> str:
    """The device to use, cpu or cuda[:N]; auto picks CUDA when torch sees a GPU."""
    if device != "auto" and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ShiftbenchError(f"device {device!r}: use auto, cpu, cuda or cuda:N")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return "cpu"
    raise ShiftbenchError(f"device {device!r}: torch sees no CUDA GPU on this machine")


def resolve_precision(precision: str, device: str) -> str:
    """fp32, bf16 or fp16 on ``device`` (a resolved one); auto is bf16 on CUDA when
    supported, fp16 on older CUDA GPUs, fp32 on CPU (half precision on CPU is slower)."""
    if precision not in PRECISIONS:
        raise ShiftbenchError(f"precision {precision!r}: use {', '.join(PRECISIONS)}")
    on_cuda = device.startswith("cuda")
    if precision == "auto":
        if not on_cuda:
            return "fp32"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision != "fp32" and not on_cuda:
        raise ShiftbenchError(f"precision {precision}: needs a CUDA device; device is {device}")
    return precision


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a resolved precision."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def resolve_cache_dir(cache_dir: Path | None, reports_dir: Path = Path("reports")) -> Path:
    """The cache folder: ``--cache-dir``, else $SHIFTBENCH_CACHE_DIR, else
    ``<reports_dir>/.cache``."""
    env = os.environ.get(CACHE_ENV)
    return cache_dir or (Path(env) if env else reports_dir / ".cache")
