"""Throughput of the MiniLM embedder (the probe's encoder) on this machine: the local
executor against a local Ray cluster with 1 and 2 workers.

    python tests/benchmarks/ray_throughput.py [--n 2000] [--batch-size 64] [--device cpu|cuda]
        [--data-dir ../shared/data/amazon-multidomain]

Each mode embeds the same N distinct Amazon reviews (seeded sample) through the runner with
a fresh, empty cache, so every text is computed. Start-up is left out: each mode first
embeds other texts (two batches per worker), which starts the actors and loads the model in
each. The Ray cluster is started here with this machine's CPUs (and GPUs); as in a real
run, a CPU actor holds 0.5 CPU and the driver's torch thread count, a GPU actor one GPU.
Prints texts/s per mode and its ratio to local, the thread counts, texts/s per GPU on CUDA,
whether every mode's vectors equal the local ones, and local again at the end (on a shared
machine, a change in load between modes shows there).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from runner_throughput import AMAZON, reviews

REPO = Path(__file__).resolve().parents[2]


def sample(folder: Path, n: int, extra: int) -> tuple[list[str], list[str]]:
    """n distinct reviews to time, and ``extra`` others to warm up on (seed 0)."""
    pool = list(dict.fromkeys(t for t in reviews(folder) if t.strip()))
    if len(pool) < n + extra:
        raise SystemExit(f"{folder}: {len(pool)} distinct reviews, {n + extra} needed")
    chosen = random.Random(0).sample(pool, n + extra)
    return chosen[:n], chosen[n:]


def measure(executor: str, workers: int | None, texts: list[str], warm: list[str],
            args: argparse.Namespace) -> tuple[float, np.ndarray]:
    """Seconds to embed ``texts`` with a cold cache after warming up on ``warm``."""
    from shiftbench.models.embed import text_embedder
    from shiftbench.runner import Runner

    with tempfile.TemporaryDirectory() as cache:
        runner = Runner(cache_dir=Path(cache), device=args.device, precision=args.precision,
                        batch_size=args.batch_size, progress=False, executor=executor,
                        workers=workers)
        embed = text_embedder()
        try:
            embed(warm, runner, "warm-up")
            began = time.perf_counter()
            vectors = embed(texts, runner, "benchmark")
            return time.perf_counter() - began, vectors
        finally:
            runner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--data-dir", type=Path, default=AMAZON)
    args = parser.parse_args()

    import ray
    import torch

    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    ray.init(num_cpus=os.cpu_count(), num_gpus=gpus, include_dashboard=False,
             logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    counts = [1, 2] if args.device == "cpu" else sorted({1, gpus})
    texts, warm = sample(args.data_dir, args.n, 2 * args.batch_size * max(counts))
    print(f"{args.n} Amazon reviews, batch size {args.batch_size}, {args.device} "
          f"{args.precision}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()} "
          f"(driver and each CPU actor){f', {gpus} GPU(s)' if gpus else ''}")
    local_s, reference = measure("local", None, texts, warm, args)
    print(f"local:          {args.n / local_s:8.1f} texts/s  ({local_s:.1f} s)")
    for workers in counts:
        seconds, vectors = measure("ray", workers, texts, warm, args)
        per_gpu = f", {args.n / seconds / workers:.1f} texts/s per GPU" if gpus else ""
        print(f"ray, {workers} worker{'s' if workers > 1 else ' '}: {args.n / seconds:8.1f} "
              f"texts/s  ({seconds:.1f} s), {local_s / seconds:.2f}x local{per_gpu}; "
              f"vectors equal local: {np.array_equal(vectors, reference)}")
    again, _ = measure("local", None, texts, warm, args)  # the machine's load may have moved
    print(f"local, again:   {args.n / again:8.1f} texts/s  ({again:.1f} s)")
    ray.shutdown()


if __name__ == "__main__":
    main()
