"""Runner: the one batched inference pass every job goes through.

Follows lm-evaluation-harness: identical texts are computed once, texts already in the
on-disk cache are not computed at all, the rest go to the model longest first (short
batches pad little, and an out-of-memory error shows up on the first batch), and each
finished batch is committed to the cache at once, so an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shiftbench.cache import Cache, text_key
from shiftbench.device import resolve_device, resolve_precision, torch_dtype
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    import torch


class BatchFn(Protocol):
    """What :meth:`Runner.map` calls: a batch of items -> one float row per item.

    Items are the texts themselves, unless the function also has
    ``encode(texts) -> list[item]`` (e.g. token ids): then the runner encodes each
    missing text once, sorts by ``len(item)`` (token length rather than characters)
    and passes the encoded items.
    """

    def __call__(self, batch: list[Any]) -> np.ndarray: ...


class Runner:
    """Dedup, cache, length-sorted batching and device/precision for model adapters."""

    def __init__(self, cache_dir: Path | None = None, device: str = "auto",
                 precision: str = "auto", batch_size: int = 64,
                 progress: bool | None = None) -> None:
        self.cache_dir = cache_dir
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.progress = progress
        self.stats: dict[str, float] = dict.fromkeys(
            ("requested", "unique", "cache_hits", "cache_rejected", "computed", "batches",
             "oom_retries"), 0)
        self.stats["seconds"] = 0.0

    # -- resolved settings (lazy, so a run that needs no torch never imports it) --------

    @cached_property
    def device_(self) -> str:
        """The device used (see :func:`~shiftbench.device.resolve_device`)."""
        return resolve_device(self.device)

    @cached_property
    def precision_(self) -> str:
        """The precision used (see :func:`~shiftbench.device.resolve_precision`)."""
        return resolve_precision(self.precision, self.device_)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch_dtype(self.precision_)

    @property
    def show_progress(self) -> bool:
        """Progress bars on long work: as asked, else only when stderr is a terminal."""
        return sys.stderr.isatty() if self.progress is None else self.progress

    @cached_property
    def cache_(self) -> Cache:
        return Cache(self.cache_dir)

    def close(self) -> None:
        if "cache_" in self.__dict__:
            self.cache_.close()
            del self.__dict__["cache_"]

    # -- torch helpers shared by the HF adapters --------------------------------------------

    def to_device(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a model to this runner's device and dtype, in eval mode."""
        return model.to(device=self.device_, dtype=self.torch_dtype).eval()

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """``torch.inference_mode``; on CUDA also autocast at the runner's precision and
        attention without the cuDNN backend, which plans each new shape for ~60 ms (on an
        H100): with length-sorted batches nearly every batch is a new shape."""
        import torch

        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.device_.startswith("cuda"):
                from torch.nn.attention import SDPBackend, sdpa_kernel

                stack.enter_context(sdpa_kernel([SDPBackend.FLASH_ATTENTION,
                                                 SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]))
                if self.precision_ != "fp32":
                    stack.enter_context(torch.autocast("cuda", dtype=self.torch_dtype))
            yield

    # -- the batched pass -------------------------------------------------------------------

    def map(self, namespace: str, texts: Sequence[str], fn: BatchFn, desc: str = "") -> np.ndarray:
        """One float32 row per text, in the caller's order, computing only what the cache lacks.

        ``namespace`` names the model and the output (e.g. ``"<fingerprint>/proba"``):
        rows are cached under (namespace, text). Returns shape (len(texts), d), or (0, 0)
        for no texts.
        """
        started = time.perf_counter()
        unique = list(dict.fromkeys(texts))
        keys = [text_key(text) for text in unique]
        rejected = self.cache_.rejected
        rows = self.cache_.get_many(namespace, keys)
        self.stats["requested"] += len(texts)
        self.stats["unique"] += len(unique)
        missing = [i for i, key in enumerate(keys) if key not in rows]
        if missing:
            self._compute(namespace, [unique[i] for i in missing], [keys[i] for i in missing],
                          fn, desc or namespace, rows)
        stale = _other_width(rows, keys, [keys[i] for i in missing])
        if stale:  # cached rows of another width than the model gives: recompute them
            self._compute(namespace, [unique[i] for i in stale], [keys[i] for i in stale],
                          fn, desc or namespace, rows)
        self.stats["cache_hits"] += len(unique) - len(missing) - len(stale)
        self.stats["cache_rejected"] += self.cache_.rejected - rejected + len(stale)
        self.stats["seconds"] += time.perf_counter() - started
        if not unique:
            return np.zeros((0, 0), dtype=np.float32)
        table = np.stack([rows[key] for key in keys])
        position = {text: i for i, text in enumerate(unique)}
        return table[[position[text] for text in texts]]

    def _compute(self, namespace: str, texts: list[str], keys: list[bytes], fn: BatchFn,
                 desc: str, rows: dict[bytes, np.ndarray]) -> None:
        """Run ``fn`` longest first; commit each batch; halve the batch on CUDA OOM."""
        from tqdm import tqdm

        encode = getattr(fn, "encode", None)
        items = encode(texts) if encode is not None else texts
        order = sorted(range(len(items)), key=lambda i: len(items[i]), reverse=True)
        size, done = max(1, self.batch_size), 0
        with tqdm(total=len(order), desc=desc, unit="text", disable=not self.show_progress,
                  delay=2) as bar:
            while done < len(order):
                batch = order[done:done + size]
                try:
                    out = np.asarray(fn([items[i] for i in batch]), dtype=np.float32)
                except Exception as exc:
                    if not _is_oom(exc):
                        raise
                    if size == 1:
                        raise ShiftbenchError(f"{desc}: out of GPU memory with batch size 1; "
                                              "lower max_length or use --device cpu") from exc
                    size //= 2
                    self.stats["oom_retries"] += 1
                    _free_cuda_cache()
                    continue
                if out.ndim != 2 or len(out) != len(batch):
                    raise ValueError(f"{desc}: batch function returned shape {out.shape} "
                                     f"for {len(batch)} items; expected ({len(batch)}, d)")
                batch_keys = [keys[i] for i in batch]
                self.cache_.put_many(namespace, batch_keys, out)
                rows.update(zip(batch_keys, out, strict=True))
                done += len(batch)
                self.stats["computed"] += len(batch)
                self.stats["batches"] += 1
                bar.update(len(batch))


def _other_width(rows: dict[bytes, np.ndarray], keys: list[bytes],
                 computed: list[bytes]) -> list[int]:
    """Positions in ``keys`` of rows whose width is not the model's: the width of the rows
    just computed, else the most common one (a cached row of a wrong length is stale)."""
    widths = Counter(len(rows[key]) for key in keys)
    if len(widths) < 2:
        return []
    width = len(rows[computed[0]]) if computed else widths.most_common(1)[0][0]
    return [i for i, key in enumerate(keys) if len(rows[key]) != width]


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def _free_cuda_cache() -> None:
    import torch

    torch.cuda.empty_cache()
