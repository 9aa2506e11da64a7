"""Does DANN help on the Amazon reviews? Ganin et al. 2016's table, re-measured.

    python tests/benchmarks/dann_amazon.py [--setting bow|minilm|finetune] [--seeds 3]
        [--pairs BD,KE,...] [--train-rows N] [--max-length N] [--lr LR] [--encoder DIR]
        [--batch-size N] [--max-epochs N] [--device auto|cpu|cuda] [--precision P]
        [--time-budget S] [--discard-models] [--json PATH]
        [--data DIR] [--work-dir DIR] [--cache-dir DIR]

Data: the four Amazon review domains (books, dvd, electronics, kitchen; 2,000 labelled
reviews each), the 12 source -> target pairs. The whole source domain is labelled (or a
stable sample of ``--train-rows`` of it; the trainer holds out ~20%, by id, for early
stopping); the target domain is split by a stable hash of the id into two disjoint
halves: one is the unlabelled target DANN trains on, the other, labelled, is where
accuracy is measured. Nothing is chosen with target labels: both methods stop early on
the source validation loss, and DANN runs with its documented defaults (penalty 1, the
reversal coefficient ramped 0 -> 1 with alpha 10).

Methods: source-only (``erm``) and ``dann``, the same trainer
(:func:`shiftbench.train.trainer.fit_features`, or
:func:`shiftbench.train.finetune.fine_tune`), features, network and seeds. A fine-tuned
source-only model sees no target, so one per (source, seed) serves the source's three
pairs: its folder resumes, with nothing to train, to score the source's next target (all
12 pairs take 4 erm and 12 dann trainings per seed, not 24).

Order: seed by seed (every pair and method of seed 0, then seed 1, ...), so a run cut
short by ``--time-budget`` (no training starts after it; the table then covers the seeds
that finished every pair and method, and says so) still reports whole seeds.
``--json PATH`` writes every outcome and the summary; ``--discard-models`` deletes each
fine-tuned model after its last use (48 trainings over 3 seeds would otherwise keep
~20 GB of models and checkpoints).

Settings:

- ``bow`` (the paper's): 5,000-dim binary unigram+bigram bag of words (CountVectorizer
  fitted on the pair's source texts and the target's training half) and a network with
  one hidden layer of 50 units, as Ganin et al. (their means: DANN 0.763, plain network
  0.761);
- ``minilm``: frozen all-MiniLM-L6-v2 embeddings (through shiftbench's runner cache) and a
  network with one hidden layer of 64 units. No published figure: a sentence-similarity
  encoder is a weak sentiment feature (source-only logistic regression ~0.69 mean);
- ``finetune``: all-MiniLM-L6-v2 (``--encoder``: another) fine-tuned end to end with the
  library's fine-tuning defaults (:data:`~shiftbench.train.finetune.FINE_TUNING`), DANN's
  discriminator on the mean-pooled last hidden state. Published beside it: BERT-DAAT's
  0.901 (a BERT-base with domain-aware post-training; no like-for-like figure exists for
  MiniLM). On a GPU the default is all 12 pairs, all 2,000 source reviews, 128 tokens and
  the library's learning rate; without one, the stated subset :data:`CPU_SUBSET` (printed
  with the table). Each run keeps its model and checkpoint under ``--work-dir``.

On a bare GPU machine (no network, no ../shared): ``python tests/benchmarks/gpu_bundle.py``
here, then there, carrying ``.gpu`` and ``.whl``, after installing the wheels
(``PYTHONPATH`` naming them and the repository root)::

    python3 tests/benchmarks/dann_amazon.py --setting finetune --seeds 3 --device cuda \
        --data .gpu/amazon --encoder .gpu/minilm-fp16 --max-length 128 --batch-size 32 \
        --lr 5e-5 --max-epochs 3 --time-budget 480 --discard-models --json $OUT/dann.json

(sized from an estimate, ~5-8 s per training on an H100 and 48 trainings; the time budget
makes sure a table comes back within a 10-minute call; lr 5e-5 for batch 32's 150 steps,
as the CPU subset found a higher rate needed for few steps).

Printed: per pair each method's mean target accuracy over seeds with the seeds' spread
(sd), the paired difference and DANN's discriminator accuracy at the kept epoch; then the
means over pairs x seeds with 95% t intervals beside the published means, the paired
DANN - ERM difference, the spread over seeds of the mean over pairs, and DANN's mean
reversal coefficient at the kept epoch (early stopping can end training before it ramps up).

Default (``bow``, 3 seeds, all 12 pairs: 72 trainings of 2-7 s) took ~8 minutes on 2
shared CPU cores; ``minilm`` ~7 minutes with a cold embedding cache (8,000 reviews).
Trained heads are kept under ``--work-dir``; a re-run resumes them instead of retraining.

``finetune``, measured on 2 CPU cores shared with other work (load 6-12, no GPU) with
``python tests/benchmarks/dann_amazon.py --setting finetune`` (the CPU subset: BK, 300
source reviews, 32 tokens, lr 1e-4, 3 seeds; ~3 minutes per erm and ~7.5 per dann
training, ~33 minutes of training in all, 2.6 GB of models and checkpoints): source-only 0.564
[0.504, 0.623], DANN 0.482 [0.477, 0.487], DANN - source-only -0.082 [-0.140, -0.024];
DANN's discriminator accuracy fell to ~0.12 by epoch 3 (lambda 0.84) and its models
called 990-1000 of the 1,002 evaluated kitchen reviews positive (source-only, seed 0:
867). At this size neither method learns sentiment well (source validation accuracy at
the kept epoch 0.56-0.77), so this says nothing about DANN on the full setting; that
needs the GPU run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from amazon import AMAZON, DOMAINS, load, minilm_embeddings

if TYPE_CHECKING:
    from shiftbench.runner import Runner
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation
    from shiftbench.train.trainer import TrainConfig, TrainResult

PAIRS = [(s, t) for s in DOMAINS for t in DOMAINS if s != t]
METHODS = ("erm", "dann")
HIDDEN = {"bow": 50, "minilm": 64}


@dataclass(frozen=True)
class Setting:
    features: str  # what the networks see, for the table's title
    published: dict[str, float] = field(default_factory=dict)  # method -> published mean
    reference: str = ""  # where the published means come from


SETTINGS = {
    "bow": Setting("5,000-dim binary unigram+bigram BoW, one hidden layer of 50",
                   {"erm": 0.761, "dann": 0.763}, "Ganin et al. 2016, Table 2 (NN, DANN)"),
    "minilm": Setting("frozen all-MiniLM-L6-v2 embeddings, one hidden layer of 64"),
    "finetune": Setting("all-MiniLM-L6-v2 fine-tuned end to end", {"dann": 0.901},
                        "BERT-DAAT (Du et al. 2020; BERT-base, domain-aware post-training and "
                        "adversarial training)"),
}
CPU_SUBSET = {"pairs": "BK", "train_rows": 300, "max_length": 32, "lr": 1e-4}
"""What ``finetune`` trains on without a GPU (flags not given): one pair across the
media/appliance divide (books -> kitchen), 300 source reviews, 32 tokens (on 2 CPU cores
shared with other work, one seed of erm + dann took ~10 minutes at this size and ~13 at
400 reviews and 64 tokens, extrapolated from its first dann epoch, so a second pair
would not fit in 45 minutes), and a higher learning rate for so few steps (books' source
validation accuracy: 0.667 after 40 steps at the library's 2e-5, 0.803 after 20 at
1e-4)."""


def pair_name(source: str, target: str) -> str:
    """``BD`` for books -> dvd."""
    return (source[0] + target[0]).upper()


def target_halves(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(unlabelled rows to train on, labelled rows to evaluate): disjoint, by id hash."""
    from shiftbench.split import unit_hash

    train = [r for r in rows if unit_hash("dann-target", r["id"]) < 0.5]
    held = [r for r in rows if unit_hash("dann-target", r["id"]) >= 0.5]
    return train, held


@dataclass
class PairFeatures:
    source: np.ndarray
    target_train: np.ndarray
    target_eval: np.ndarray


def bow_features(source: list[dict], target_train: list[dict],
                 target_eval: list[dict]) -> PairFeatures:
    """The paper's features: 5,000 binary unigrams and bigrams, vocabulary from the
    source and the target's training half (never the evaluated rows)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(binary=True, ngram_range=(1, 2), max_features=5000)
    vectorizer.fit([r["text"] for r in source + target_train])

    def dense(rows: list[dict]) -> np.ndarray:
        return vectorizer.transform([r["text"] for r in rows]).toarray().astype(np.float32)

    return PairFeatures(dense(source), dense(target_train), dense(target_eval))


def predict(folder: Path, x: np.ndarray) -> np.ndarray:
    """The saved head's predicted labels for feature rows."""
    from shiftbench.models.trained import read_head

    meta, arrays = read_head(folder)
    h = x.astype(np.float64)
    if "hidden_weight" in arrays:
        h = np.maximum(h @ arrays["hidden_weight"].T + arrays["hidden_bias"], 0.0)
    scores = h @ arrays["weight"].T + arrays["bias"]
    return np.asarray(meta["classes"])[scores.argmax(1)]


@dataclass
class Outcome:
    accuracy: float
    domain_accuracy: float  # DANN's discriminator at the kept epoch; nan for erm
    coefficient: float  # DANN's mean reversal coefficient (lambda) in the kept epoch
    epochs: int


Score = Callable[[str, int, Path], Outcome]
"""One pair's training and evaluation: (method, seed, model folder) -> outcome."""


def mitigation(method: str) -> Mitigation:
    """The method, with its documented defaults."""
    from shiftbench.train.mitigations import DANN, ERM

    return DANN() if method == "dann" else ERM()


def outcome(result: TrainResult, accuracy: float) -> Outcome:
    """The target accuracy with the kept epoch's DANN diagnostics."""
    kept = result.epoch_log[result.best_epoch - 1]
    return Outcome(accuracy, kept.get("domain_accuracy", float("nan")),
                   kept.get("lambda", float("nan")), result.epochs)


def train_and_score(features: PairFeatures, source: list[dict], eval_labels: np.ndarray,
                    hidden: int, method: str, seed: int, folder: Path) -> Outcome:
    """A head on fixed features (``bow``, ``minilm``)."""
    from shiftbench.train.trainer import TrainConfig, fit_features

    chosen = mitigation(method)
    result = fit_features(features.source, [str(r["label"]) for r in source],
                          [r["id"] for r in source], folder, chosen,
                          TrainConfig(hidden=hidden, seed=seed),
                          features.target_train if chosen.uses_target else None)
    return outcome(result, float((predict(folder, features.target_eval) == eval_labels).mean()))


def fine_tuning(args: argparse.Namespace, seed: int) -> TrainConfig:
    """The library's fine-tuning defaults with the command's sizing, on a GPU when there is
    one (``--device auto``)."""
    from dataclasses import replace

    from shiftbench.train.finetune import FINE_TUNING

    sizing = {name: getattr(args, name) for name in ("batch_size", "max_epochs")
              if getattr(args, name) is not None}
    return replace(FINE_TUNING, seed=seed, lr=args.lr, device=args.device,
                   precision=args.precision, **sizing)


def split_of(name: str, rows: list[dict], labelled: bool = True) -> Split:
    from shiftbench.split import Split

    return Split(name, [r["id"] for r in rows], [r["text"] for r in rows],
                 [str(r["label"]) for r in rows] if labelled else None)


def fine_tune_and_score(args: argparse.Namespace, encoder: str, runner: Runner,
                        source: list[dict], target_train: list[dict], target_eval: list[dict],
                        method: str, seed: int, folder: Path) -> Outcome:
    """The whole encoder fine-tuned (``finetune``), then scored on the evaluated rows."""
    from shiftbench.models.hf import HFClassifier
    from shiftbench.train.finetune import fine_tune

    chosen = mitigation(method)
    target = split_of("target", target_train, labelled=False) if chosen.uses_target else None
    result = fine_tune(split_of("source", source), folder, encoder, chosen,
                       fine_tuning(args, seed), target, args.max_length)
    model = HFClassifier(str(folder / "model"), args.max_length)
    scores = model.predict_proba([r["text"] for r in target_eval], runner)
    predicted = np.asarray(model.classes_)[scores.argmax(1)]
    labels = np.asarray([str(r["label"]) for r in target_eval])
    return outcome(result, float((predicted == labels).mean()))


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): a 95% t interval."""
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def parse_pairs(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return PAIRS
    by_name = {pair_name(s, t): (s, t) for s, t in PAIRS}
    wanted = [p.strip().upper() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in by_name]
    if unknown:
        sys.exit(f"dann_amazon: unknown pair(s) {', '.join(unknown)}; "
                 f"choose from {', '.join(by_name)}")
    return [by_name[p] for p in wanted]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="bow")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pairs", help="comma-separated, e.g. BD,KE (default: all 12; "
                        f"finetune without a GPU: {CPU_SUBSET['pairs']})")
    parser.add_argument("--train-rows", type=int, help="labelled source reviews per pair, a "
                        "stable sample by id (default: all 2,000; finetune without a GPU: "
                        f"{CPU_SUBSET['train_rows']})")
    parser.add_argument("--max-length", type=int, help="finetune: tokens per review (default "
                        f"128; without a GPU {CPU_SUBSET['max_length']})")
    parser.add_argument("--lr", type=float, help="finetune: learning rate (default the "
                        f"library's fine-tuning default; without a GPU {CPU_SUBSET['lr']:g})")
    parser.add_argument("--encoder", help="finetune: the encoder to fine-tune (default: the "
                        "packaged all-MiniLM-L6-v2)")
    parser.add_argument("--batch-size", type=int, help="finetune: rows per step (default: the "
                        "library's fine-tuning default)")
    parser.add_argument("--max-epochs", type=int, help="finetune: at most this many epochs "
                        "(default: the library's fine-tuning default)")
    parser.add_argument("--device", default="auto", help="finetune: where to train and "
                        "predict (auto: a GPU when there is one)")
    parser.add_argument("--precision", default="auto", help="finetune: auto (bf16 autocast on "
                        "a GPU that has it), fp32, bf16 or fp16")
    parser.add_argument("--time-budget", type=float, help="seconds after which no training "
                        "starts; the table covers the seeds that finished")
    parser.add_argument("--discard-models", action="store_true", help="finetune: delete each "
                        "model folder once it is scored")
    parser.add_argument("--json", type=Path, help="also write the outcomes and summary here")
    parser.add_argument("--data", type=Path, default=AMAZON)
    parser.add_argument("--work-dir", type=Path, default=Path("reports/.cache/dann-amazon"))
    parser.add_argument("--cache-dir", type=Path, default=Path("reports/.cache"),
                        help="the runner's cache (minilm embeddings, finetune predictions)")
    args = parser.parse_args()
    for name in ("seeds", "train_rows", "max_length", "batch_size", "max_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            sys.exit(f"dann_amazon: --{name.replace('_', '-')} must be at least 1")
    if args.lr is not None and not args.lr > 0:
        sys.exit("dann_amazon: --lr must be positive")
    args.subset = args.setting == "finetune" and not on_gpu(args.device)
    if args.setting == "finetune":
        from shiftbench.train.finetune import FINE_TUNING

        defaults = CPU_SUBSET if args.subset else {"max_length": 128, "lr": FINE_TUNING.lr}
        for name, value in defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    return args


def on_gpu(device: str) -> bool:
    from shiftbench.device import resolve_device

    return resolve_device(device).startswith("cuda")


def main() -> None:
    import time

    from shiftbench.models.probe import default_encoder
    from shiftbench.runner import Runner

    started = time.monotonic()
    args = arguments()
    pairs = parse_pairs(args.pairs)
    domains = load(args.data)
    halves = {d: target_halves(rows) for d, rows in domains.items()}
    sources = {d: capped(rows, args.train_rows) for d, rows in domains.items()}
    embeddings = (minilm_embeddings(domains, args.cache_dir) if args.setting == "minilm"
                  else None)
    runner = Runner(cache_dir=args.cache_dir, device=args.device, precision=args.precision,
                    progress=False)  # finetune's predictions
    models = args.work_dir / args.setting / run_tag(args)
    scores = {pair: pair_scorer(args, pair, domains, halves, sources, embeddings, runner,
                                default_encoder if args.setting == "finetune" else None)
              for pair in pairs}
    outcomes: dict[tuple[str, str, int], Outcome] = {}
    jobs = [(seed, pair, method, models / model_name(args.setting, *pair, method, seed))
            for seed in range(args.seeds) for pair in pairs for method in METHODS]
    last_use = {folder: k for k, (*_, folder) in enumerate(jobs)}
    for k, (seed, (source, target), method, folder) in enumerate(jobs):
        if args.time_budget is not None and time.monotonic() - started > args.time_budget:
            print(f"dann_amazon: --time-budget {args.time_budget:g} s reached; no more "
                  f"trainings (seed {seed} unfinished)", file=sys.stderr, flush=True)
            break
        name = pair_name(source, target)
        # a shared source-only model trains once; its folder resumes, scoring each target
        outcomes[name, method, seed] = result = scores[source, target](method, seed, folder)
        if args.discard_models and last_use[folder] == k:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"  {name} {method} seed {seed}: {result.accuracy:.3f} ({result.epochs} "
              f"epochs; {time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    runner.close()
    finished = [seed for seed in range(args.seeds)
                if all((pair_name(*pair), method, seed) in outcomes
                       for pair in pairs for method in METHODS)]
    if not finished:
        sys.exit("dann_amazon: no seed finished every pair and method; raise --time-budget")
    summary = report(args.setting, header(args, pairs, len(sources[pairs[0][0]]),
                                          [len(h) for h in halves[pairs[0][1]]]),
                     pairs, finished, outcomes)
    if len(finished) < args.seeds:
        print(f"  only {len(finished)} of {args.seeds} seeds finished within --time-budget")
    print(f"  wall time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "setting": args.setting, "args": {k: str(v) for k, v in vars(args).items()},
            "seeds_finished": finished, "summary": summary,
            "outcomes": [{"pair": n, "method": m, "seed": s, **asdict(o)}
                         for (n, m, s), o in outcomes.items()]}, indent=1))


def shared_source_only(setting: str, method: str) -> bool:
    """Whether one model serves every pair of its source: a fine-tuned source-only model
    never sees the target (a head's features, the pair's BoW vocabulary, depend on it)."""
    return setting == "finetune" and not mitigation(method).uses_target


def model_name(setting: str, source: str, target: str, method: str, seed: int) -> str:
    """A model's folder under the run's: per source for a shared source-only model."""
    return (f"{source}/{method}-{seed}" if shared_source_only(setting, method)
            else f"{pair_name(source, target)}/{method}-{seed}")


def pair_scorer(args: argparse.Namespace, pair: tuple[str, str], domains: dict[str, list[dict]],
                halves: dict[str, tuple[list[dict], list[dict]]],
                sources: dict[str, list[dict]], embeddings: dict[str, np.ndarray] | None,
                runner: Runner, encoder: Callable[[], str] | None) -> Score:
    """How one pair's models are trained and scored in this setting."""
    source, target = pair
    train_rows, eval_rows = halves[target]
    if encoder is not None:
        return partial(fine_tune_and_score, args, args.encoder or encoder(), runner,
                       sources[source], train_rows, eval_rows)
    if embeddings is None:
        features = bow_features(sources[source], train_rows, eval_rows)
    else:
        features = embedded(embeddings, domains, source, sources[source], target,
                            train_rows, eval_rows)
    return partial(train_and_score, features, sources[source],
                   np.asarray([str(r["label"]) for r in eval_rows]), HIDDEN[args.setting])


def run_tag(args: argparse.Namespace) -> str:
    """Names the sizing, so that runs sized differently keep their models apart."""
    parts = [f"rows{args.train_rows or 'all'}"]
    if args.setting == "finetune":
        parts += [f"len{args.max_length}", f"lr{args.lr:g}"]
        if args.encoder:
            parts.append(Path(args.encoder).name)
    return "-".join(parts)


def capped(rows: list[dict], limit: int | None) -> list[dict]:
    """At most ``limit`` rows, a stable sample by id (the same for every seed and method)."""
    from shiftbench.split import sample_indices

    if limit is None:
        return rows
    return [rows[k] for k in sample_indices([r["id"] for r in rows], 0, limit)]


def embedded(embeddings: dict[str, np.ndarray], domains: dict[str, list[dict]], source: str,
             source_rows: list[dict], target: str, train_rows: list[dict],
             eval_rows: list[dict]) -> PairFeatures:
    """The MiniLM vectors of the pair's rows."""
    def vectors(domain: str, rows: list[dict]) -> np.ndarray:
        where = {r["id"]: i for i, r in enumerate(domains[domain])}
        return embeddings[domain][[where[r["id"]] for r in rows]]

    return PairFeatures(vectors(source, source_rows), vectors(target, train_rows),
                        vectors(target, eval_rows))


def header(args: argparse.Namespace, pairs: list[tuple[str, str]], n_source: int,
           target_sizes: list[int]) -> str:
    """What was trained on: the data, and for ``finetune`` the subset and its sizes."""
    lines = [f"source: {n_source:,} labelled reviews per pair (~20% held out by id for early "
             f"stopping); target: ~{target_sizes[0]} unlabelled rows for training, a disjoint "
             f"~{target_sizes[1]} evaluated (stable id-hash halves)"]
    if args.setting == "finetune":
        from shiftbench.device import resolve_device, resolve_precision

        config = fine_tuning(args, 0)
        precision = resolve_precision(config.precision, resolve_device(config.device))
        lines.append(f"fine-tuning: max_length {args.max_length}, lr {config.lr:g}, batch "
                     f"{config.batch_size}, at most {config.max_epochs} epochs (patience "
                     f"{config.patience}), {precision} on {'CPU' if args.subset else 'GPU'}")
    if len(pairs) < len(PAIRS):
        lines.append(f"pairs: {', '.join(pair_name(s, t) for s, t in pairs)}: {len(pairs)} of "
                     f"{len(PAIRS)}")
    if args.subset:
        subset = ", ".join(f"{k} {v}" for k, v in CPU_SUBSET.items())
        lines.append(f"no GPU: the CPU subset ({subset} unless given); on a GPU the "
                     "defaults are all 12 pairs, all 2,000 source reviews, 128 tokens and the "
                     "library's lr")
    return "\n".join(lines)


def spread(values: np.ndarray) -> float:
    """The seeds' standard deviation (nan for one seed)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def report(setting: str, header: str, pairs: list[tuple[str, str]], seeds: list[int],
           outcomes: dict[tuple[str, str, int], Outcome]) -> dict[str, list[float]]:
    """Print the table; return the means with their intervals, (mean, low, high) each."""
    names = [pair_name(s, t) for s, t in pairs]

    def acc(method: str) -> np.ndarray:  # pairs x seeds
        return np.array([[outcomes[n, method, s].accuracy for s in seeds] for n in names])

    erm, dann = acc("erm"), acc("dann")
    disc = np.array([[outcomes[n, "dann", s].domain_accuracy for s in seeds] for n in names])
    coefficient = np.mean([o.coefficient for (_, m, s), o in outcomes.items()
                           if m == "dann" and s in seeds])
    print(f"\nDANN vs source-only on Amazon reviews, setting {setting!r} "
          f"({SETTINGS[setting].features}), seeds {seeds}")
    print(header + "\n")
    print(f"{'pair':5} {'erm':>7} {'sd':>6} {'dann':>7} {'sd':>6} {'dann-erm':>9} "
          f"{'disc acc':>9}")
    for i, name in enumerate(names):
        print(f"{name:5} {erm[i].mean():7.3f} {spread(erm[i]):6.3f} {dann[i].mean():7.3f} "
              f"{spread(dann[i]):6.3f} {(dann[i] - erm[i]).mean():+9.3f} {disc[i].mean():9.3f}")
    published = SETTINGS[setting].published
    summary = {"erm": list(interval(erm.ravel())), "dann": list(interval(dann.ravel())),
               "dann_minus_erm": list(interval((dann - erm).ravel()))}
    print(f"\nmean target accuracy over {len(names)} pairs x {len(seeds)} seeds "
          "(95% t interval over pairs x seeds):")
    for method, values in (("erm", erm), ("dann", dann)):
        mean, low, high = interval(values.ravel())
        paper = f"{published[method]:.3f}" if method in published else "  -  "
        per_seed = values.mean(0)
        print(f"  {method:5} ours {mean:.3f} [{low:.3f}, {high:.3f}]   published {paper}   "
              f"{len(names)}-pair mean by seed: {', '.join(f'{v:.3f}' for v in per_seed)}")
    mean, low, high = interval((dann - erm).ravel())
    paper_gap = (f"{published['dann'] - published['erm']:+.3f}"
                 if {"erm", "dann"} <= published.keys() else "  -  ")
    print(f"  dann - erm (paired by pair and seed): {mean:+.3f} [{low:+.3f}, {high:+.3f}]   "
          f"published {paper_gap}")
    if published:
        print(f"  published: {SETTINGS[setting].reference}")
    helped = int((dann.mean(1) > erm.mean(1)).sum())
    print(f"  DANN beats source-only on {helped} of {len(names)} pairs (seed means); "
          f"at the kept epoch (source early stopping) DANN's discriminator accuracy is "
          f"{np.nanmean(disc):.3f} (chance 0.5), its reversal coefficient {coefficient:.2f}")
    return summary


if __name__ == "__main__":
    from shiftbench.errors import ShiftbenchError

    try:
        main()
    except ShiftbenchError as exc:
        sys.exit(f"dann_amazon: {exc}")
