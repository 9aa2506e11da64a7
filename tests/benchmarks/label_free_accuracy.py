"""How far label-free accuracy estimates miss under a real domain shift (Amazon reviews).

    python tests/benchmarks/label_free_accuracy.py [--data DIR] [--cache-dir DIR]
        [--n-boot 200]

Data: the four Amazon review domains (books, dvd, electronics, kitchen; 2,000 labelled
reviews each). For each of the 12 source -> target pairs, a model is trained on a stable
half of the source domain (by id hash, ~1,000 reviews); the other half is the labelled
reference and the whole target domain is the current sample, as ``monitor check`` does.
Two models: TF-IDF + logistic regression (``sklearn:tfidf``'s settings: word 1-2 grams,
sublinear tf, 20,000 features, C = 1) and a MiniLM probe (logistic regression on
all-MiniLM-L6-v2 embeddings, which go through shiftbench's runner cache).

Estimators of the target accuracy, from the reference's labels and unlabelled target rows:

- atc, doc: shiftbench's (:mod:`shiftbench.label_free`), with their 95% intervals;
- iw: importance weighting: the reference's correctness weighted by p(target | x) /
  p(reference | x) from a domain classifier (logistic regression on the MiniLM
  embeddings, 5-fold cross-fitted so no row is weighted by a classifier that saw it);
- iw-atc: ATC whose threshold is fitted on the reference under those weights (the
  weighted share of reference rows scoring above it equals the weighted accuracy);
- agreement: the other model as a witness, in probit space:
  probit(acc_target) = probit(acc_reference) + probit(agree_target) - probit(agree_reference),
  agree = share of rows where the two models predict the same class.

Printed: per pair the truth and each estimate; per model and estimator the mean absolute
error, mean signed error (positive: overestimates), worst miss, and for ATC/DoC how often
their interval covered the truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import NormalDist

import numpy as np
from amazon import AMAZON, DOMAINS, load, minilm_embeddings

ESTIMATORS = ("atc", "doc", "iw", "iw-atc", "agreement")


class Tfidf:
    """sklearn:tfidf's pipeline."""

    def fit(self, rows: list[dict], vectors: np.ndarray) -> Tfidf:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=20_000)
        x = self.vec.fit_transform([r["text"] for r in rows])
        self.clf = LogisticRegression(C=1.0, max_iter=1000).fit(x, [r["label"] for r in rows])
        return self

    def proba(self, rows: list[dict], vectors: np.ndarray) -> np.ndarray:
        return self.clf.predict_proba(self.vec.transform([r["text"] for r in rows]))


class Probe:
    """Logistic regression on MiniLM embeddings (the encoder probe's head)."""

    def fit(self, rows: list[dict], vectors: np.ndarray) -> Probe:
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression(C=1.0, max_iter=1000).fit(vectors,
                                                                [r["label"] for r in rows])
        return self

    def proba(self, rows: list[dict], vectors: np.ndarray) -> np.ndarray:
        return self.clf.predict_proba(vectors)


def domain_weights(ref_vectors: np.ndarray, cur_vectors: np.ndarray) -> np.ndarray:
    """p(current | x) / p(reference | x) for each reference row, cross-fitted."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x = np.vstack([ref_vectors, cur_vectors])
    is_current = np.r_[np.zeros(len(ref_vectors)), np.ones(len(cur_vectors))]
    p = cross_val_predict(LogisticRegression(C=1.0, max_iter=1000), x, is_current, cv=5,
                          method="predict_proba")[: len(ref_vectors), 1]
    return p / np.clip(1 - p, 1e-6, None)


def weighted_atc(ref_scores: np.ndarray, cur_scores: np.ndarray, correct: np.ndarray,
                 weight: np.ndarray) -> float:
    """ATC with the threshold at which the weighted share of reference rows scoring above
    it equals the weighted accuracy."""
    share = weight / weight.sum()
    order = np.argsort(-ref_scores)
    above = np.cumsum(share[order])
    k = min(int(np.searchsorted(above, np.sum(share * correct))), len(order) - 1)
    return float(np.mean(cur_scores >= ref_scores[order][k]))


def agreement_shift(acc_ref: float, agree_ref: float, agree_cur: float) -> float:
    probit, clip = NormalDist().inv_cdf, (lambda v: min(max(v, 1e-4), 1 - 1e-4))
    return NormalDist().cdf(probit(clip(acc_ref)) + probit(clip(agree_cur))
                            - probit(clip(agree_ref)))


def main() -> None:
    from shiftbench.label_free import atc, confidence_scores, doc
    from shiftbench.split import unit_hash

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=AMAZON)
    parser.add_argument("--cache-dir", type=Path, default=Path("reports/.cache"))
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()

    domains = load(args.data)
    vectors = minilm_embeddings(domains, args.cache_dir)
    errors: dict[tuple[str, str], list[float]] = {}
    covered: dict[tuple[str, str], list[bool]] = {}
    print(f"{'model':6} {'source -> target':24} {'truth':>6} "
          + " ".join(f"{e:>9}" for e in ESTIMATORS))
    for source in DOMAINS:
        rows = domains[source]
        in_train = np.array([unit_hash("label-free-bench", r["id"]) < 0.5 for r in rows])
        train = [r for r, t in zip(rows, in_train, strict=True) if t]
        ref = [r for r, t in zip(rows, in_train, strict=True) if not t]
        y_ref = np.array([r["label"] for r in ref])
        models = {"tfidf": Tfidf().fit(train, vectors[source][in_train]),
                  "probe": Probe().fit(train, vectors[source][in_train])}
        weights = {t: domain_weights(vectors[source][~in_train], vectors[t])
                   for t in DOMAINS if t != source}
        for target in weights:
            cur = domains[target]
            y_cur = np.array([r["label"] for r in cur])
            probas = {name: (m.proba(ref, vectors[source][~in_train]),
                             m.proba(cur, vectors[target])) for name, m in models.items()}
            for name, (p_ref, p_cur) in probas.items():
                witness_ref, witness_cur = probas["probe" if name == "tfidf" else "tfidf"]
                correct = p_ref.argmax(1) == y_ref
                truth = float(np.mean(p_cur.argmax(1) == y_cur))
                atc_est = atc(p_ref, correct, p_cur, n_boot=args.n_boot).estimate
                doc_est = doc(p_ref, correct, p_cur, n_boot=args.n_boot)
                weight = weights[target]
                estimates = {
                    "atc": atc_est.value,
                    "doc": doc_est.value,
                    "iw": float(np.sum(weight * correct) / np.sum(weight)),
                    "iw-atc": weighted_atc(confidence_scores(p_ref, "entropy"),
                                           confidence_scores(p_cur, "entropy"), correct, weight),
                    "agreement": agreement_shift(
                        float(correct.mean()),
                        float(np.mean(p_ref.argmax(1) == witness_ref.argmax(1))),
                        float(np.mean(p_cur.argmax(1) == witness_cur.argmax(1)))),
                }
                for est_name, value in estimates.items():
                    errors.setdefault((name, est_name), []).append(value - truth)
                for est_name, est in (("atc", atc_est), ("doc", doc_est)):
                    covered.setdefault((name, est_name), []).append(est.low <= truth <= est.high)
                print(f"{name:6} {source + ' -> ' + target:24} {truth:6.3f} "
                      + " ".join(f"{estimates[e]:9.3f}" for e in ESTIMATORS), flush=True)
    print("\nerror = estimate - truth, over the 12 pairs (percentage points)")
    print(f"{'model':6} {'estimator':10} {'mean |err|':>10} {'mean err':>9} {'worst':>7} "
          f"{'95% CI covered':>15}")
    for (name, est_name), errs in errors.items():
        e = np.array(errs) * 100
        cov = covered.get((name, est_name))
        cov_text = f"{sum(cov)}/{len(cov)}" if cov else "-"
        print(f"{name:6} {est_name:10} {np.abs(e).mean():10.1f} {e.mean():+9.1f} "
              f"{e[np.abs(e).argmax()]:+7.1f} {cov_text:>15}")


if __name__ == "__main__":
    main()
