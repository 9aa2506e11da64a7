"""Does DANN help on the Amazon reviews? Ganin et al. 2016's table, re-measured.

    python tests/benchmarks/dann_amazon.py [--setting bow|minilm] [--seeds 3]
        [--pairs BD,KE,...] [--data DIR] [--work-dir DIR] [--cache-dir DIR]

Data: the four Amazon review domains (books, dvd, electronics, kitchen; 2,000 labelled
reviews each), the 12 source -> target pairs. The whole source domain is labelled (the
trainer holds out ~20% of it, by id, for early stopping); the target domain is split by a
stable hash of the id into two disjoint halves: one is the unlabelled target DANN trains
on, the other, labelled, is where accuracy is measured. Nothing is chosen with target
labels: both methods stop early on the source validation loss, and DANN runs with its
documented defaults (penalty 1, the reversal coefficient ramped 0 -> 1 with alpha 10).

Methods: source-only (``erm``) and ``dann``, the same trainer
(:func:`shiftbench.train.trainer.fit_features`), features, network and seeds.

Settings:

- ``bow`` (the paper's): 5,000-dim binary unigram+bigram bag of words (CountVectorizer
  fitted on the pair's source texts and the target's training half) and a network with
  one hidden layer of 50 units, as Ganin et al. (their means: DANN 0.763, plain network
  0.761);
- ``minilm``: frozen all-MiniLM-L6-v2 embeddings (through shiftbench's runner cache) and a
  network with one hidden layer of 64 units. No published figure: a sentence-similarity
  encoder is a weak sentiment feature (source-only logistic regression ~0.69 mean).

Printed: per pair each method's mean target accuracy over seeds with the seeds' spread
(sd), the paired difference and DANN's discriminator accuracy at the kept epoch; then the
means over pairs x seeds with 95% t intervals beside the published means, the paired
DANN - ERM difference, the spread over seeds of the mean over pairs, and DANN's mean
reversal coefficient at the kept epoch (early stopping can end training before it ramps up).

Default (``bow``, 3 seeds, all 12 pairs: 72 trainings of 2-7 s) took ~8 minutes on 2
shared CPU cores; ``minilm`` ~7 minutes with a cold embedding cache (8,000 reviews).
Trained heads are kept under ``--work-dir``; a re-run resumes them instead of retraining.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amazon import AMAZON, DOMAINS, load, minilm_embeddings

PAIRS = [(s, t) for s in DOMAINS for t in DOMAINS if s != t]
METHODS = ("erm", "dann")
PUBLISHED = {"bow": {"erm": 0.761, "dann": 0.763}}  # Ganin et al. 2016, Table 2 (NN, DANN)
HIDDEN = {"bow": 50, "minilm": 64}


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


def train_and_score(features: PairFeatures, source: list[dict], eval_labels: np.ndarray,
                    method: str, seed: int, hidden: int, folder: Path) -> Outcome:
    from shiftbench.train.mitigations import DANN, ERM
    from shiftbench.train.trainer import TrainConfig, fit_features

    mitigation = DANN() if method == "dann" else ERM()
    config = TrainConfig(hidden=hidden, seed=seed)
    result = fit_features(features.source, [str(r["label"]) for r in source],
                          [r["id"] for r in source], folder, mitigation, config,
                          features.target_train if mitigation.uses_target else None)
    accuracy = float((predict(folder, features.target_eval) == eval_labels).mean())
    kept = result.epoch_log[result.best_epoch - 1]
    return Outcome(accuracy, kept.get("domain_accuracy", float("nan")),
                   kept.get("lambda", float("nan")), result.epochs)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(HIDDEN), default="bow")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pairs", help="comma-separated, e.g. BD,KE (default: all 12)")
    parser.add_argument("--data", type=Path, default=AMAZON)
    parser.add_argument("--work-dir", type=Path, default=Path("reports/.cache/dann-amazon"))
    parser.add_argument("--cache-dir", type=Path, default=Path("reports/.cache"),
                        help="the runner's embedding cache (minilm)")
    args = parser.parse_args()
    if args.seeds < 1:
        sys.exit("dann_amazon: --seeds must be at least 1")
    pairs = parse_pairs(args.pairs)
    domains = load(args.data)
    halves = {d: target_halves(rows) for d, rows in domains.items()}
    embeddings = (minilm_embeddings(domains, args.cache_dir) if args.setting == "minilm"
                  else None)
    seeds = range(args.seeds)
    outcomes: dict[tuple[str, str, int], Outcome] = {}
    for source, target in pairs:
        train_rows, eval_rows = halves[target]
        if embeddings is None:
            features = bow_features(domains[source], train_rows, eval_rows)
        else:
            where = {r["id"]: i for i, r in enumerate(domains[target])}
            rows_of = [[where[r["id"]] for r in part] for part in (train_rows, eval_rows)]
            features = PairFeatures(embeddings[source], embeddings[target][rows_of[0]],
                                    embeddings[target][rows_of[1]])
        eval_labels = np.asarray([str(r["label"]) for r in eval_rows])
        name = pair_name(source, target)
        for method in METHODS:
            for seed in seeds:
                folder = args.work_dir / args.setting / name / f"{method}-{seed}"
                outcome = train_and_score(features, domains[source], eval_labels, method,
                                          seed, HIDDEN[args.setting], folder)
                outcomes[name, method, seed] = outcome
                print(f"  {name} {method} seed {seed}: {outcome.accuracy:.3f} "
                      f"({outcome.epochs} epochs)", file=sys.stderr, flush=True)
    report(args.setting, pairs, list(seeds), outcomes, len(halves[pairs[0][1]][0]),
           len(halves[pairs[0][1]][1]))


def spread(values: np.ndarray) -> float:
    """The seeds' standard deviation (nan for one seed)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def report(setting: str, pairs: list[tuple[str, str]], seeds: list[int],
           outcomes: dict[tuple[str, str, int], Outcome], n_target_train: int,
           n_target_eval: int) -> None:
    names = [pair_name(s, t) for s, t in pairs]

    def acc(method: str) -> np.ndarray:  # pairs x seeds
        return np.array([[outcomes[n, method, s].accuracy for s in seeds] for n in names])

    erm, dann = acc("erm"), acc("dann")
    disc = np.array([[outcomes[n, "dann", s].domain_accuracy for s in seeds] for n in names])
    coefficient = np.mean([o.coefficient for (_, m, _), o in outcomes.items() if m == "dann"])
    print(f"\nDANN vs source-only on Amazon reviews, setting {setting!r} "
          f"(hidden {HIDDEN[setting]}), seeds {seeds}")
    print(f"source: 2,000 labelled reviews (~20% held out by id for early stopping); target: "
          f"~{n_target_train} unlabelled rows for training, a disjoint ~{n_target_eval} "
          "evaluated (stable id-hash halves)\n")
    print(f"{'pair':5} {'erm':>7} {'sd':>6} {'dann':>7} {'sd':>6} {'dann-erm':>9} "
          f"{'disc acc':>9}")
    for i, name in enumerate(names):
        print(f"{name:5} {erm[i].mean():7.3f} {spread(erm[i]):6.3f} {dann[i].mean():7.3f} "
              f"{spread(dann[i]):6.3f} {(dann[i] - erm[i]).mean():+9.3f} {disc[i].mean():9.3f}")
    published = PUBLISHED.get(setting, {})
    print(f"\nmean target accuracy over {len(names)} pairs x {len(seeds)} seeds "
          "(95% t interval over pairs x seeds):")
    for method, values in (("erm", erm), ("dann", dann)):
        mean, low, high = interval(values.ravel())
        paper = f"{published[method]:.3f}" if method in published else "  -  "
        per_seed = values.mean(0)
        print(f"  {method:5} ours {mean:.3f} [{low:.3f}, {high:.3f}]   paper {paper}   "
              f"{len(names)}-pair mean by seed: {', '.join(f'{v:.3f}' for v in per_seed)}")
    mean, low, high = interval((dann - erm).ravel())
    paper_gap = (f"{published['dann'] - published['erm']:+.3f}" if published else "  -  ")
    print(f"  dann - erm (paired by pair and seed): {mean:+.3f} [{low:+.3f}, {high:+.3f}]   "
          f"paper {paper_gap}")
    helped = int((dann.mean(1) > erm.mean(1)).sum())
    print(f"  DANN beats source-only on {helped} of {len(names)} pairs (seed means); "
          f"at the kept epoch (source early stopping) DANN's discriminator accuracy is "
          f"{np.nanmean(disc):.3f} (chance 0.5), its reversal coefficient {coefficient:.2f}")


if __name__ == "__main__":
    main()
