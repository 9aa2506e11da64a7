"""The shared Amazon reviews (../shared/data/amazon-multidomain) for the benchmarks: where
they are, the four domains, and their MiniLM embeddings through the runner's cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

AMAZON = Path(__file__).resolve().parents[3] / "shared" / "data" / "amazon-multidomain"
DOMAINS = ("books", "dvd", "electronics", "kitchen")


def load(data: Path) -> dict[str, list[dict]]:
    """Each domain's reviews, as the JSON objects of its file."""
    try:
        return {d: [json.loads(line) for line in open(data / f"{d}.jsonl", encoding="utf-8")]
                for d in DOMAINS}
    except OSError as exc:
        sys.exit(f"cannot read the Amazon reviews in {data} ({exc.strerror}); give --data DIR")


def minilm_embeddings(domains: dict[str, list[dict]], cache_dir: Path) -> dict[str, np.ndarray]:
    """MiniLM vectors of each domain's texts, cached under ``cache_dir``."""
    from shiftbench.models.embed import text_embedder
    from shiftbench.runner import Runner

    runner = Runner(cache_dir=cache_dir, progress=True)
    embedder = text_embedder("minilm")
    try:
        return {d: embedder([r["text"] for r in rows], runner, d) for d, rows in domains.items()}
    finally:
        runner.close()
