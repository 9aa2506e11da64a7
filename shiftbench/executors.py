"""Executors: where the runner's batches run, in this process or on a Ray cluster.

The :class:`~shiftbench.runner.Runner` decides what to compute (dedup, cache, the
length-sorted batch plan) and commits results; an executor only runs the planned batches
and hands each result back with its batch index, in whatever order they finish. So a
run's numbers do not depend on the executor or on the number of workers.

``ray`` is imported only by :class:`RayExecutor`: the CLI starts without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from shiftbench.device import resolve_device, resolve_precision
from shiftbench.errors import ShiftbenchError

CONNECT_TIMEOUT_S = 5.0
MAX_RETRIES = 3  # restarts of a dead Ray worker, and retries of the batch it held
CPUS_PER_ACTOR = 0.5  # fractional: actors never take the CPUs a cluster's own tasks need

T = TypeVar("T")


class Checks(Protocol):
    """What an executor needs of the runner's codec (below the runner: no import of it)."""

    def check(self, out: Any, n: int, desc: str) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Work:
    """One :meth:`Runner.map` call as an executor runs it; sent to Ray workers pickled,
    so ``fn`` must load its model lazily (a loaded torch model never travels)."""

    key: str  # the map's namespace: names the function and its output
    fn: Callable[[list[Any]], Any]  # the runner's BatchFn
    codec: Checks
    desc: str
    batch_size: int
    overlap: bool = False  # compute the next batch while the caller commits this one


@dataclass(frozen=True)
class Done:
    """One finished batch: its index in the plan, one value per item, and its cost."""

    index: int
    values: list[Any]
    seconds: float
    oom_retries: int


class BatchWorker:
    """Runs one :class:`Work`'s batches. On CUDA out-of-memory it runs the batch in halves
    and keeps the smaller size for the batches after it."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.size = work.batch_size

    def __call__(self, index: int, items: list[Any]) -> Done:
        began, retries, values, start = time.perf_counter(), 0, [], 0
        while start < len(items):
            chunk = items[start:start + self.size]
            try:
                out = self.work.fn(chunk)
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                if self.size == 1:
                    raise ShiftbenchError(f"{self.work.desc}: out of GPU memory with batch size "
                                          "1; lower max_length or use --device cpu") from exc
                self.size //= 2
                retries += 1
                _free_cuda_cache()
                continue
            values.extend(self.work.codec.check(out, len(chunk), self.work.desc))
            start += len(chunk)
        return Done(index, values, time.perf_counter() - began, retries)


class Executor(ABC):
    """Runs planned batches; everything that decides stays with the caller."""

    name: str

    def resolve(self, device: str, precision: str) -> tuple[str, str]:
        """The device and precision the batches run at (see :mod:`shiftbench.device`)."""
        resolved = resolve_device(device)
        return resolved, resolve_precision(precision, resolved)

    @abstractmethod
    def run(self, work: Work, batches: list[list[Any]]) -> Iterator[Done]:
        """Each batch's result, in any order."""

    @abstractmethod
    def call_each(self, fn: Callable[..., T], calls: list[tuple[Any, ...]], desc: str
                  ) -> list[T]:
        """``fn(*args)`` for each ``args`` of ``calls`` (whole jobs, such as one training
        each), results in the order of ``calls``."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers."""


class LocalExecutor(Executor):
    """The batches run in this process, in plan order. With ``work.overlap`` they run in
    a background thread one batch ahead, so a GPU computes the next batch while the caller
    commits this one (torch and SQLite release the GIL while they work)."""

    name = "local"

    def run(self, work: Work, batches: list[list[Any]]) -> Iterator[Done]:
        worker = BatchWorker(work)
        if not work.overlap:
            for index, items in enumerate(batches):
                yield worker(index, items)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="shiftbench-batches") as pool:
            pending = None
            for index, items in enumerate(batches):
                ahead = pool.submit(worker, index, items)
                if pending is not None:
                    yield pending.result()
                pending = ahead
            if pending is not None:
                yield pending.result()

    def call_each(self, fn: Callable[..., T], calls: list[tuple[Any, ...]], desc: str
                  ) -> list[T]:
        return [fn(*args) for args in calls]

    def close(self) -> None:
        """Nothing to release: the batches ran in this process."""


class RayWorker:
    """A Ray actor: keeps the :class:`BatchWorker` of the last work it was sent, so its
    model loads once per actor (and again after a restart)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.worker: BatchWorker | None = None

    def run(self, key: str, work: list[Any], index: int, items: list[Any]) -> Done:
        """Run batch ``index``; ``work`` is ``[ObjectRef of the Work]`` (in a list, so
        Ray does not fetch and unpickle it for every batch)."""
        if self.worker is None or key != self.key:
            import ray

            self.worker, self.key = BatchWorker(ray.get(work[0])), key
        return self.worker(index, items)


class RayExecutor(Executor):
    """Batches sent to a pool of Ray actors, one batch in flight per actor.

    ``address`` None: the cluster Ray finds itself (``RAY_ADDRESS``, a running local one,
    else a new local one); ``auto`` or ``HOST:PORT``: that cluster. On GPU each actor
    holds one GPU; on CPU, half a CPU and this process's torch thread count. A dead actor
    is restarted and its batch retried.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers
        self._device = "cpu"
        self._pools: list[Any] = []
        self._connect()

    @property
    def where(self) -> str:
        return f"the Ray cluster at {self.address}" if self.address else "the Ray cluster"

    def _connect(self) -> None:
        import ray

        if self.address and self.address != "auto":
            _check_reachable(self.address)
        if ray.is_initialized():  # by the caller (a notebook, a test): use that cluster
            return
        try:
            with _quiet_connect():
                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False,
                         include_dashboard=False if self.address is None else None)
        except Exception as exc:  # ConnectionError, or Ray's own on a bad address
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise ShiftbenchError(f"--executor ray: cannot connect to {self.where}: "
                                  f"{first}") from None

    def resolve(self, device: str, precision: str) -> tuple[str, str]:
        """Against the cluster's GPUs, not this machine's: ``auto`` is CUDA when the
        cluster has a GPU; ``cuda:N`` is ``cuda`` (each actor sees only its own GPU)."""
        import ray

        if device != "auto" and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise ShiftbenchError(f"device {device!r}: use auto, cpu, cuda or cuda:N")
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if device.startswith("cuda") and not gpus:
            raise ShiftbenchError(f"device {device!r}: {self.where} has no GPU")
        self._device = "cuda" if device.startswith("cuda") or (device == "auto" and gpus) \
            else "cpu"
        if precision == "auto" and self._device == "cuda":  # what the workers' GPUs support
            remote = ray.remote(num_gpus=1)(resolve_precision)
            return self._device, ray.get(remote.remote(precision, "cuda"))
        return self._device, resolve_precision(precision, self._device)

    def run(self, work: Work, batches: list[list[Any]]) -> Iterator[Done]:
        import ray
        from ray.util import ActorPool

        try:
            ref = ray.put(work)  # cloudpickle: closures and lambdas travel too
        except Exception as exc:
            raise ShiftbenchError(f"{work.desc}: cannot be sent to Ray workers "
                                  f"({exc.__class__.__name__}: {exc}); use --executor local") \
                from None
        pool = ActorPool(self._actors())
        with self._worker_errors(work.desc):
            yield from pool.map_unordered(
                lambda actor, batch: actor.run.remote(work.key, [ref], *batch),
                enumerate(batches))

    def call_each(self, fn: Callable[..., T], calls: list[tuple[Any, ...]], desc: str
                  ) -> list[T]:
        """Each call a Ray task with an actor's resources, retried when its worker dies
        (``fn`` must then resume what the dead try left, e.g. from a checkpoint)."""
        import ray

        task = ray.remote(fn).options(**self._resources(), max_retries=MAX_RETRIES)
        refs = [task.remote(*args) for args in calls]
        with self._worker_errors(desc):
            return ray.get(refs)

    @contextlib.contextmanager
    def _worker_errors(self, desc: str) -> Iterator[None]:
        """A worker's ShiftbenchError as itself, its other errors as raised, and a worker
        that died more often than it is retried as one line."""
        import ray

        try:
            yield
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, ShiftbenchError):
                raise ShiftbenchError(str(cause.args[0] if cause.args else cause)) from None
            raise cause from None
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
            raise ShiftbenchError(f"{desc}: a Ray worker died {MAX_RETRIES + 1} times "
                                  f"on {self.where}; see the Ray logs") from None

    def _resources(self) -> dict[str, Any]:
        """What each actor or task holds: one GPU on CUDA; on CPU, a fraction of a CPU and
        this process's torch thread count."""
        gpus = self._device == "cuda"
        threads = {} if gpus else {"OMP_NUM_THREADS": str(_local_threads())}
        return {"num_cpus": CPUS_PER_ACTOR, "num_gpus": 1 if gpus else 0,
                "runtime_env": {"env_vars": threads}}

    def _actors(self) -> list[Any]:
        """The actor pool, started on first use (a fully cached run starts none)."""
        if not self._pools:
            import ray

            gpus = self._device == "cuda"
            count = self.workers or (int(ray.cluster_resources().get("GPU", 0)) if gpus else 2)
            actor = ray.remote(RayWorker).options(
                **self._resources(), max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)
            self._pools = [actor.remote() for _ in range(max(1, count))]
        return self._pools

    def close(self) -> None:
        import ray

        for actor in self._pools:
            ray.kill(actor)
        self._pools = []


def make_executor(spec: str, workers: int | None = None) -> Executor:
    """The executor an ``--executor`` value names: ``local``, ``ray`` or ``ray:ADDRESS``."""
    name, _, address = spec.partition(":")
    if name == "local" and not address:
        return LocalExecutor()
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ShiftbenchError("--executor ray needs the package ray: pip install ray") \
                from None
        return RayExecutor(address or None, workers)
    raise ShiftbenchError(f"--executor {spec!r}: use local, ray or ray:ADDRESS")


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at ``HOST:PORT``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ShiftbenchError(f"--executor ray:{address}: the address is HOST:PORT "
                              "(e.g. ray:10.0.0.5:6379) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ShiftbenchError(f"--executor ray: cannot connect to the Ray cluster at {address} "
                              f"({exc.strerror or exc.__class__.__name__})") from None


@contextlib.contextmanager
def _quiet_connect() -> Iterator[None]:
    """While connecting: give up after ``CONNECT_TIMEOUT_S`` tries (Ray's default is 20)
    unless ``RAY_gcs_server_port_wait_time_s`` says otherwise, and keep Ray's per-try
    warnings off stderr (a failure is one line, raised by the caller)."""
    wait = "RAY_gcs_server_port_wait_time_s"
    own = wait not in os.environ
    if own:
        os.environ[wait] = str(int(CONNECT_TIMEOUT_S))
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if own:
            del os.environ[wait]


def _local_threads() -> int:
    """The torch threads of a local run: CPU actors use as many, because an fp32 sum's
    rounding depends on how many threads split it."""
    import torch

    return torch.get_num_threads()


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def _free_cuda_cache() -> None:
    import torch

    torch.cuda.empty_cache()
