"""Time and peak memory of each drift detector, beside Evidently's MMD with bootstrap.

    python tests/benchmarks/drift_detectors.py [--sizes 1000 5000 20000] [--dim 384]
        [--permutations 1000] [--backend auto|numpy|torch] [--detectors mmd ks ...]

Data: reference and sample of n = m rows each from N(0, I_dim) (float32, seeded), i.e.
no drift; BBSD gets the softmax of a fixed random 3-class linear head on the same rows.
Each (detector, n) runs in its own process, so its peak memory is its own: "peak MB" is
the process's peak resident memory, "extra MB" that peak minus the resident memory just
before ``fit`` (data and imports already loaded); on a GPU, also torch's peak allocation.
One small fit + test runs first (imports, CUDA start-up) and is not timed. "seconds" is
``fit(reference)`` + ``test(sample)``.

What is computed, honestly:

- mmd: unbiased MMD^2 over the pooled kernel, with ``--permutations`` relabellings of
  the pooled sample (exact permutation test), kernel in row blocks, default
  ``max_rows`` (each side capped at 10,000 rows: at n = 20,000 a seeded half is used);
- mmd-all: the same with ``max_rows=None``: the full (2n x 2n) kernel;
- ks: exact integer KS statistics on all dim columns, p-values, Bonferroni;
- classifier: 5 logistic-regression fits on 4/5 of the 2n rows (no permutations);
- bbsd: KS on the 3 class-probability columns;
- evidently-mmd: Evidently 0.7's MMD method with ``bootstrap=True`` through our wrapper:
  one (2n x 2n) float64 kernel for the statistic plus 100 bootstrap draws from a
  reference-only kernel, no p-value. It is skipped when its two dense float64 kernels
  would not fit in 80% of the available memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DETECTORS = ("mmd", "mmd-all", "ks", "classifier", "bbsd", "evidently-mmd")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def available_mb() -> float:
    with open("/proc/meminfo") as fh:
        info = dict(line.split(":", 1) for line in fh)
    return int(info["MemAvailable"].split()[0]) / 1024


def data(name: str, n: int, dim: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    if name != "bbsd":
        return x
    logits = x @ np.random.default_rng(99).standard_normal((dim, 3), dtype=np.float32) / 10
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float64)


def build(name: str, args: argparse.Namespace):
    from shiftbench.detectors import make_detector

    if name == "mmd":
        return make_detector("mmd", n_permutations=args.permutations, backend=args.backend)
    if name == "mmd-all":
        return make_detector("mmd", n_permutations=args.permutations, backend=args.backend,
                             max_rows=None)
    if name in ("ks", "bbsd"):
        return make_detector(name, backend=args.backend)
    if name == "classifier":
        return make_detector("classifier")
    return make_detector("evidently", method="mmd", bootstrap=True)


def child(name: str, n: int, args: argparse.Namespace) -> dict:
    """Run one detector at one size in this process; return its figures."""
    if name == "evidently-mmd":
        need = 2 * (2 * n) ** 2 * 8 / 2**20 + 2 * n**2 * 8 / 2**20
        if need > 0.8 * available_mb():
            return {"skipped": f"needs ~{need / 1024:.0f} GB, {available_mb() / 1024:.0f} GB "
                               "available"}
    warm = build(name, args).fit(data(name, 50, args.dim, 1))
    warm.test(data(name, 50, args.dim, 2))
    reference, sample = data(name, n, args.dim, 3), data(name, n, args.dim, 4)
    detector = build(name, args)
    cuda = getattr(warm, "device_", "cpu").startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    before = rss_mb()
    started = time.perf_counter()
    result = detector.fit(reference).test(sample)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"seconds": seconds, "peak_mb": peak, "extra_mb": max(0.0, peak - before),
           "p_value": result.p_value, "drifted": result.drifted,
           "backend": result.details.get("backend", "numpy"),
           "device": result.details.get("device", "cpu")}
    if cuda:
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def parent(args: argparse.Namespace) -> None:
    rows = []
    for n in args.sizes:
        for name in args.detectors:
            command = [sys.executable, __file__, "--child", name, str(n), "--dim", str(args.dim),
                       "--permutations", str(args.permutations), "--backend", args.backend]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False,
                                      timeout=args.timeout)
                lines = done.stdout.strip().splitlines()
                fig = json.loads(lines[-1]) if done.returncode == 0 and lines else {
                    "skipped": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
            except subprocess.TimeoutExpired:
                fig = {"skipped": f"timed out after {args.timeout} s"}
            rows.append({"detector": name, "n": n, **fig})
            print(format_row(rows[-1]), flush=True)
    print()
    for n in args.sizes:  # both on all rows
        ours = next((r for r in rows if r["n"] == n and r["detector"] == "mmd-all"), {})
        theirs = next((r for r in rows if r["n"] == n and r["detector"] == "evidently-mmd"), {})
        if "seconds" in ours and "seconds" in theirs:
            print(f"n = m = {n}: Evidently MMD (bootstrap) / shiftbench MMD on all rows "
                  f"({args.permutations} permutations) time = "
                  f"{theirs['seconds'] / ours['seconds']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


def format_row(row: dict) -> str:
    head = f"{row['detector']:<14} n=m={row['n']:<6}"
    if "skipped" in row:
        return f"{head} skipped: {row['skipped']}"
    gpu = f"  gpu peak {row['gpu_peak_mb']:8.0f} MB" if "gpu_peak_mb" in row else ""
    p = "   n/a " if row["p_value"] is None else f"{row['p_value']:.4f}"
    return (f"{head} {row['seconds']:8.2f} s  peak {row['peak_mb']:7.0f} MB  extra "
            f"{row['extra_mb']:7.0f} MB{gpu}  p={p}  drifted={row['drifted']}  "
            f"[{row['backend']}/{row['device']}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--backend", default="auto", choices=["auto", "numpy", "torch"])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, metavar=("DETECTOR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args)))
    else:
        print(f"drift detectors: dim {args.dim}, {args.permutations} permutations, backend "
              f"{args.backend}, {os.cpu_count()} CPU cores")
        parent(args)


if __name__ == "__main__":
    main()
