"""How the cost of a suite run grows with its size: time per phase and peak memory at
10k, 100k and 1M examples, with the growth exponent between sizes.

    python tests/benchmarks/scale.py [--sizes 10000 100000 1000000] [--field title|text]
                                     [--amazon ../shared/data/amazon-multidomain]

Everything but an expensive model runs: reading, splitting, two perturbations
(keyboard, word_delete), one domain split, inference through the runner (dedup, a fresh
SQLite cache), metrics with bootstrap intervals, drift tests (MMD on embeddings, BBSD
on probabilities), text movement (for the domain split: the nearest reference example
of each row) and report writing. The model is cheap: ``sklearn:tfidf`` with 64 features,
trained on the 2,000 real books reviews; movement and drift embed with that model's own
64-wide TF-IDF vectors (``encoder="model"``) instead of MiniLM.

An "n examples" run evaluates n texts: a reference of n/4 rows (Amazon books reviews
repeated under distinct ids), each perturbation of it (n/4 each) and n/4 electronics
reviews as the domain split. The texts are the reviews' titles by default (~30
characters; ``--field text``: the ~1,000-character bodies, much slower to shift and
score). Repeated texts share one cached prediction (the runner's dedup); perturbed ones
are mostly distinct.

Each size runs in a fresh subprocess, so its peak RSS is its own. The exponent between
two sizes is log(t2 / t1) / log(n2 / n1): 1 is linear, 2 quadratic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout whose shiftbench is measured
AMAZON = ROOT.parent / "shared" / "data" / "amazon-multidomain"  # --amazon otherwise
SIZES = (10_000, 100_000, 1_000_000)
PHASES = ("load_data_s", "shifts_s", "fit_s", "inference_s", "movement_s", "drift_s",
          "metrics_s")  # as report.json records them; the rest (report writing) is other_s
MODEL = "adapter: sklearn\nsource: tfidf\nmax_features: 64\n"


def write_repeated(source: Path, dest: Path, rows: int, field: str) -> None:
    """``rows`` examples cycling through ``source``'s, each under a distinct id."""
    examples = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    with open(dest, "w", encoding="utf-8") as fh:
        for k in range(rows):
            ex = examples[k % len(examples)]
            fh.write(json.dumps({"id": f"{ex['id']}-{k // len(examples)}", "text": ex[field],
                                 "label": ex["label"]}) + "\n")


def write_suite(folder: Path, n: int, field: str, amazon: Path) -> Path:
    """The suite of an n-example run (see the module doc), its data beside it."""
    quarter = n // 4
    write_repeated(amazon / "books.jsonl", folder / "books.jsonl", quarter, field)
    write_repeated(amazon / "electronics.jsonl", folder / "electronics.jsonl", quarter, field)
    suite = folder / "scale.yaml"
    suite.write_text(f"""name: scale-{n}
seed: 0
data: {{kind: jsonl, path: books.jsonl}}
train:
  source: {{kind: jsonl, path: {amazon / 'books.jsonl'}, text: {field}}}
reference: {{}}
shifts:
  - {{shift: keyboard, severity: 1}}
  - {{shift: word_delete, severity: 1}}
  - name: electronics
    source: {{kind: jsonl, path: electronics.jsonl}}
metrics: [accuracy, macro_f1, ece, nll]
detectors:
  - {{name: mmd, params: {{n_permutations: 200}}}}
  - {{name: bbsd}}
""", encoding="utf-8")
    return suite


def measure(n: int, field: str, amazon: Path) -> dict:
    """Run the n-example suite once in this process: phase timings, total, peak RSS."""
    from shiftbench.run import RunOptions, run_suite
    from shiftbench.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        suite = write_suite(folder, n, field, amazon)
        (folder / "model.yaml").write_text(MODEL, encoding="utf-8")
        options = RunOptions(reports_dir=folder / "reports", encoder="model",
                             runtime=Runtime(cache_dir=folder / "cache", progress=False))
        started = time.perf_counter()
        report_dir = run_suite(suite, str(folder / "model.yaml"), options)
        total = time.perf_counter() - started
        report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"n": n, "timings": report["timings"], "total_s": total,
            "peak_rss_mib": peak_kib / 1024, "runner": report["runner"]}


def exponent(small: dict, large: dict, key: str) -> float | None:
    t1, t2 = small[key], large[key]
    if t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(large["n"] / small["n"])


def flat(result: dict) -> dict:
    """Phase seconds, total seconds and peak MiB of one size, in one mapping; ``other_s``
    is what no phase records: loading the model and writing the report."""
    phases = {p: result["timings"].get(p, 0.0) for p in PHASES}
    return {"n": result["n"], **phases, "other_s": result["total_s"] - sum(phases.values()),
            "total_s": result["total_s"], "peak_rss_mib": result["peak_rss_mib"]}


def table(results: list[dict]) -> str:
    """One row per phase (and total, peak RSS): each size's value, then the exponent
    between consecutive sizes."""
    rows = [flat(r) for r in results]
    pairs = list(pairwise(rows))
    head = ["phase", *(f"n={r['n']:,}" for r in rows),
            *(f"exp {a['n']:.0e}->{b['n']:.0e}" for a, b in pairs)]
    lines = ["  ".join(f"{h:>16}" for h in head)]
    for key in (*PHASES, "other_s", "total_s", "peak_rss_mib"):
        values = [f"{r[key]:.2f}" for r in rows]
        exps = [exponent(a, b, key) for a, b in pairs]
        cells = [key, *values, *("-" if e is None else f"{e:.2f}" for e in exps)]
        lines.append("  ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--field", choices=("title", "text"), default="title")
    parser.add_argument("--amazon", type=Path, default=AMAZON,
                        help="the amazon-multidomain folder of the shared data")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.field, args.amazon.resolve())))
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    results = []
    for n in args.sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(n), "--field", args.field,
                                "--amazon", str(args.amazon)],
                               capture_output=True, text=True, env=env)
        if child.returncode != 0:
            sys.exit(f"n={n} failed:\n{child.stderr[-3000:]}")
        results.append(json.loads(child.stdout.splitlines()[-1]))
        print(f"n={n:,}: {results[-1]['total_s']:.1f} s, peak RSS "
              f"{results[-1]['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    print(f"seconds per phase, peak RSS in MiB ({args.field}s; exp = growth exponent)")
    print(table(results))


if __name__ == "__main__":
    main()
