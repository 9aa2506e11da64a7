"""Runner: the one batched pass every computation over texts goes through (predictions,
embeddings, translations).

Follows lm-evaluation-harness: identical texts are computed once, texts already in the
on-disk cache are not computed at all, the rest go to the model longest first (short
batches pad little, and an out-of-memory error shows up on the first batch), and each
finished batch is committed to the cache at once, so an interrupted run resumes. The
batches run where the executor says (:mod:`shiftbench.executors`: this process, or Ray
actors); the plan and the commits stay here, so the numbers do not depend on where. What is
computed per text is a :class:`Codec`'s business: float rows (:data:`ROWS`) or texts
(:data:`TEXTS`), each in its own cache table; the loop is the same.
"""

from __future__ import annotations

import contextlib
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from shiftbench.cache import Cache, text_key
from shiftbench.device import torch_dtype

if TYPE_CHECKING:
    import torch

    from shiftbench.executors import Done, Executor


V = TypeVar("V")  # one stored value: a float row, a text
R = TypeVar("R")  # what map returns for all the texts
T = TypeVar("T")  # what a whole job returns


class BatchFn(Protocol):
    """What :meth:`Runner.map` calls: a batch of items -> one output per item (a 2-D array
    of float rows, or a list of texts: whatever the map's codec stores).

    Items are the texts themselves, unless the function also has
    ``encode(texts) -> list[item]`` (e.g. token ids): then the runner encodes each
    missing text once, sorts by ``len(item)`` (token length rather than characters)
    and passes the encoded items. A function whose cost is one forward pass over its
    padded items says so with a true ``by_tokens`` attribute: its batches are then planned
    by a budget of padded tokens (see :func:`plan_batches`) rather than a count of texts.
    """

    def __call__(self, batch: list[Any]) -> Any: ...


class Codec(ABC, Generic[V, R]):
    """What :meth:`Runner.map` stores per text: the cache table it reads and writes, the
    check of a batch function's output, and what the map returns for all texts."""

    @abstractmethod
    def get(self, cache: Cache, namespace: str, keys: Sequence[bytes]) -> dict[bytes, V]:
        """The valid values cached for ``keys`` (missing or damaged ones are absent)."""

    @abstractmethod
    def put(self, cache: Cache, namespace: str, keys: Sequence[bytes],
            values: Sequence[V]) -> None:
        """Store one value per key, committed on return."""

    @abstractmethod
    def check(self, out: Any, n: int, desc: str) -> Sequence[V]:
        """A batch function's output for ``n`` items as ``n`` values; else a ValueError."""

    @abstractmethod
    def join(self, values: list[V]) -> R:
        """The values of all texts, in the caller's order, as the map returns them."""

    def stale(self, found: Mapping[bytes, V], keys: Sequence[bytes],
              fresh: Sequence[bytes]) -> list[int]:
        """Positions in ``keys`` of cached values that do not fit the ``fresh`` ones."""
        return []


class FloatRows(Codec[np.ndarray, np.ndarray]):
    """One float32 row per text (probabilities, embeddings); the map returns a
    (len(texts), d) array, or (0, 0) for no texts."""

    def get(self, cache: Cache, namespace: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        return cache.get_many(namespace, keys)

    def put(self, cache: Cache, namespace: str, keys: Sequence[bytes],
            values: Sequence[np.ndarray]) -> None:
        cache.put_many(namespace, keys, np.asarray(values))

    def check(self, out: Any, n: int, desc: str) -> np.ndarray:
        rows = np.asarray(out, dtype=np.float32)
        if rows.ndim != 2 or len(rows) != n:
            raise ValueError(f"{desc}: batch function returned shape {rows.shape} for {n} "
                             f"items; expected ({n}, d)")
        return rows

    def join(self, values: list[np.ndarray]) -> np.ndarray:
        return np.stack(values) if values else np.zeros((0, 0), dtype=np.float32)

    def stale(self, found: Mapping[bytes, np.ndarray], keys: Sequence[bytes],
              fresh: Sequence[bytes]) -> list[int]:
        """Rows whose width is not the model's: the width of the rows just computed, else
        the most common one (a cached row of a wrong length is stale)."""
        widths = Counter(len(found[key]) for key in keys)
        if len(widths) < 2:
            return []
        width = len(found[fresh[0]]) if fresh else widths.most_common(1)[0][0]
        return [i for i, key in enumerate(keys) if len(found[key]) != width]


class Texts(Codec[str, list[str]]):
    """One text per text (translations, generations); the map returns a list of texts."""

    def get(self, cache: Cache, namespace: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        return cache.get_texts(namespace, keys)

    def put(self, cache: Cache, namespace: str, keys: Sequence[bytes],
            values: Sequence[str]) -> None:
        cache.put_texts(namespace, keys, values)

    def check(self, out: Any, n: int, desc: str) -> list[str]:
        texts = list(out)
        if len(texts) != n or not all(isinstance(text, str) for text in texts):
            raise ValueError(f"{desc}: batch function returned {len(texts)} values for {n} "
                             f"items; expected {n} texts")
        return texts

    def join(self, values: list[str]) -> list[str]:
        return values


ROWS, TEXTS = FloatRows(), Texts()


def new_stats() -> dict[str, float]:
    """Zeroed counts of :meth:`Runner.map` calls: texts requested, distinct, served by the
    cache, cached but rejected (damaged or stale), computed, batches, out-of-memory
    retries; seconds in the calls and in the batch functions."""
    stats: dict[str, float] = dict.fromkeys(
        ("requested", "unique", "cache_hits", "cache_rejected", "computed", "batches",
         "oom_retries"), 0)
    return {**stats, "seconds": 0.0, "compute_seconds": 0.0}


BATCH_SIZE = 64  # texts per batch where batches are counted in texts
# padded tokens per forward-pass batch, by device. On 2 quiet CPU cores (runner_limit.py,
# 1,000 mixed texts, fp32) 4096 was the best budget tried: 1.18x (MiniLM) and 1.13x
# (BERT-base) the 64-text batches, 8192 and 16384 within 5% of it
BATCH_TOKENS = {"cpu": 4096, "cuda": 65536}


def plan_batches(lengths: Sequence[int], max_texts: int | None, max_tokens: int
                 ) -> list[list[int]]:
    """Positions of ``lengths``, longest first, cut into batches.

    ``max_tokens`` > 0: a batch takes texts while (texts x its longest) stays within
    ``max_tokens`` padded tokens, and at most ``max_texts`` texts (None: no count limit),
    so a batch of short texts holds many and one of long texts few, each about the same
    work; a text longer than the budget goes alone. A text also starts a new batch when
    it is shorter than the batch's longest by more than :func:`padding_allowed`, so few
    tokens are padding (~6% on the benchmark's mixed texts, against up to 30% without).
    ``max_tokens`` 0: batches of ``max_texts`` texts (the runner before token budgets).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    if max_tokens <= 0:
        size = max_texts or BATCH_SIZE
        return [order[start:start + size] for start in range(0, len(order), size)]
    plan: list[list[int]] = []
    for i in order:
        longest = lengths[plan[-1][0]] if plan else 0
        if (not plan or len(plan[-1]) == max_texts
                or (len(plan[-1]) + 1) * max(longest, 1) > max_tokens
                or longest - lengths[i] > padding_allowed(longest)):
            plan.append([i])
        else:
            plan[-1].append(i)
    return plan


def padding_allowed(longest: int) -> int:
    """Pad tokens a row may get in a token-budget batch: an eighth of the longest row, at
    least 8 (on CUDA rows are padded to a multiple of 8 anyway)."""
    return max(8, longest // 8)


class Runner:
    """Dedup, cache, length-sorted batching and device/precision for model adapters.

    ``batch_size``: texts per batch (None: 64), and at most that many in a token-budget
    batch (None: no count limit). ``batch_tokens``: padded tokens per batch of a
    forward-pass function (one with ``by_tokens``); None: :data:`BATCH_TOKENS` of the
    device; 0: fixed batches of ``batch_size`` texts for every function, as the runner
    did before token budgets (kept for comparison). ``overlap``: compute the next batch
    in a background thread while this one is committed (None: on CUDA).
    ``compile``: ``torch.compile`` the models' forward passes (dynamic shapes; off by
    default: it pays only where measured, see tests/benchmarks/runner_limit.py).
    """

    def __init__(self, cache_dir: Path | None = None, device: str = "auto",
                 precision: str = "auto", batch_size: int | None = None,
                 progress: bool | None = None, executor: str = "local",
                 workers: int | None = None, batch_tokens: int | None = None,
                 overlap: bool | None = None, compile: bool = False) -> None:
        self.cache_dir = cache_dir
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.overlap = overlap
        self.compile = compile
        self.progress = progress
        self.executor = executor
        self.workers = workers
        self.stats = new_stats()

    def __getstate__(self) -> dict[str, Any]:
        """What a Ray worker gets: the resolved device and precision, no cache, no
        executor (the driver alone reads and writes the cache)."""
        return {"cache_dir": None, "device": self.device_, "precision": self.precision_,
                "batch_size": self.batch_size, "batch_tokens": self.batch_tokens_,
                "overlap": self.overlap_, "compile": self.compile,
                "progress": False, "executor": "local",
                "workers": None, "stats": new_stats(),
                "device_": self.device_, "precision_": self.precision_}

    # -- resolved settings (lazy, so a run that needs no torch never imports it) --------

    @cached_property
    def executor_(self) -> Executor:
        """Where batches run (see :mod:`shiftbench.executors`)."""
        from shiftbench.executors import make_executor

        return make_executor(self.executor, self.workers)

    @cached_property
    def _placement(self) -> tuple[str, str]:
        return self.executor_.resolve(self.device, self.precision)

    @cached_property
    def device_(self) -> str:
        """The device used (see :func:`~shiftbench.device.resolve_device`; on Ray, the
        cluster's)."""
        return self._placement[0]

    @cached_property
    def precision_(self) -> str:
        """The precision used (see :func:`~shiftbench.device.resolve_precision`)."""
        return self._placement[1]

    @property
    def batch_tokens_(self) -> int:
        """Padded tokens per forward-pass batch (0: batches counted in texts)."""
        if self.batch_tokens is not None:
            return self.batch_tokens
        return BATCH_TOKENS["cuda" if self.device_.startswith("cuda") else "cpu"]

    @property
    def overlap_(self) -> bool:
        """Whether the next batch computes while this one is committed."""
        return self.device_.startswith("cuda") if self.overlap is None else self.overlap

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
        if "executor_" in self.__dict__:
            self.executor_.close()

    def call_each(self, fn: Callable[..., T], calls: list[tuple[Any, ...]], desc: str
                  ) -> list[T]:
        """Whole jobs (``fn(*args)`` per ``args``) where the batches run, placed at this
        runner's device; results in the order of ``calls``. A Ray worker gets this runner
        without its cache (see :meth:`__getstate__`)."""
        _ = self._placement
        return self.executor_.call_each(fn, calls, desc)

    # -- torch helpers shared by the HF adapters --------------------------------------------

    def to_device(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a model to this runner's device and dtype, in eval mode; with ``compile``,
        its forward and its base model's (what pooling heads call) compiled."""
        model = model.to(device=self.device_, dtype=self.torch_dtype).eval()
        if self.compile:
            import torch

            for module in {model, getattr(model, "base_model", model)}:
                module.forward = torch.compile(module.forward, dynamic=True)
        return model

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

    def map(self, namespace: str, texts: Sequence[str], fn: BatchFn, desc: str = "", *,
            codec: Codec[Any, R] = ROWS, batch_size: int | None = None,
            stats: dict[str, float] | None = None) -> R:
        """One value per text, in the caller's order, computing only what the cache lacks.

        ``namespace`` names the model and the output (e.g. ``"<fingerprint>/proba"``):
        values are cached under (namespace, text). ``codec`` says what a value is: float
        rows (:data:`ROWS`, the default) or texts (:data:`TEXTS`). ``batch_size`` overrides
        the runner's; ``stats`` receives this call's counts (default: :attr:`stats`).
        """
        started = time.perf_counter()
        unique = list(dict.fromkeys(texts))
        keys = [text_key(text) for text in unique]
        rejected = self.cache_.rejected
        size = batch_size or self.batch_size
        job = _Job(self, namespace, fn, desc or namespace, codec,
                   None if size is None else max(1, size),
                   self.batch_tokens_ if getattr(fn, "by_tokens", False) else 0,
                   self.stats if stats is None else stats,
                   codec.get(self.cache_, namespace, keys))
        job.stats["requested"] += len(texts)
        job.stats["unique"] += len(unique)
        missing = [i for i, key in enumerate(keys) if key not in job.found]
        job.compute([unique[i] for i in missing], [keys[i] for i in missing])
        stale = codec.stale(job.found, keys, [keys[i] for i in missing])
        job.compute([unique[i] for i in stale], [keys[i] for i in stale])  # recompute them
        job.stats["cache_hits"] += len(unique) - len(missing) - len(stale)
        job.stats["cache_rejected"] += self.cache_.rejected - rejected + len(stale)
        job.stats["seconds"] += time.perf_counter() - started
        key_of = dict(zip(unique, keys, strict=True))
        return codec.join([job.found[key_of[text]] for text in texts])


@dataclass
class _Job:
    """One :meth:`Runner.map` call: what it computes, how, and where results and counts go."""

    runner: Runner
    namespace: str
    fn: BatchFn
    desc: str
    codec: Codec[Any, Any]
    batch_size: int | None  # texts per batch (None: the default, or no limit by tokens)
    batch_tokens: int  # padded tokens per batch; 0: batches of batch_size texts
    stats: dict[str, float]
    found: dict[bytes, Any]  # key -> value, cached or computed

    def compute(self, texts: list[str], keys: list[bytes]) -> None:
        """Plan ``texts`` into batches longest first, have the executor run them, and
        commit each batch (and add it to ``found``) in plan order, whatever order they
        finish in."""
        if not texts:
            return
        from tqdm import tqdm

        from shiftbench.executors import Work

        encode = getattr(self.fn, "encode", None)
        items = encode(texts) if encode is not None else texts
        plan = plan_batches([len(item) for item in items], self.batch_size, self.batch_tokens)
        most = self.batch_size or (max(map(len, plan)) if self.batch_tokens else BATCH_SIZE)
        work = Work(self.namespace, self.fn, self.codec, self.desc, most,
                    self.runner.overlap_ if self.batch_tokens else False)
        finished: dict[int, Done] = {}
        committed = 0
        with tqdm(total=len(items), desc=self.desc, unit="text",
                  disable=not self.runner.show_progress, delay=2) as bar:
            for done in self.runner.executor_.run(work, [[items[i] for i in batch]
                                                         for batch in plan]):
                finished[done.index] = done
                while committed in finished:
                    self._commit([keys[i] for i in plan[committed]], finished.pop(committed))
                    bar.update(len(plan[committed]))
                    committed += 1

    def _commit(self, keys: list[bytes], done: Done) -> None:
        """Store one finished batch in the cache and in ``found``; count it."""
        self.codec.put(self.runner.cache_, self.namespace, keys, done.values)
        self.found.update(zip(keys, done.values, strict=True))
        self.stats["computed"] += len(keys)
        self.stats["batches"] += 1
        self.stats["oom_retries"] += done.oom_retries
        self.stats["compute_seconds"] += done.seconds
