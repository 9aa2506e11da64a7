"""Model adapters on tiny random models: shapes, batch invariance, fingerprints, caching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny, make_labelled, resave

from shiftbench.errors import ShiftbenchError
from shiftbench.models import adapter_params, load_model
from shiftbench.models.hf import HFClassifier
from shiftbench.models.probe import EncoderProbe
from shiftbench.models.sklearn import SklearnPipeline
from shiftbench.runner import Runner
from shiftbench.split import Split


def runner(batch_size: int = 64, cache_dir: Path | None = None) -> Runner:
    return Runner(cache_dir=cache_dir, device="cpu", batch_size=batch_size, progress=False)


def assert_probabilities(proba: np.ndarray, n: int, k: int) -> None:
    assert proba.shape == (n, k)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def three_class_split() -> Split:
    texts, _ = make_labelled(90, seed=3)
    labels = ["a", "b", "c"] * 30
    texts = [f"{label} {text}" for label, text in zip(labels, texts, strict=True)]
    return Split("train3", [str(i) for i in range(90)], texts, labels)


# -- HFClassifier ------------------------------------------------------------------------


def test_hf_classifier_probabilities_and_classes(tiny_classifier_dir: Path,
                                                 sentences: list[str]) -> None:
    model = HFClassifier(str(tiny_classifier_dir))
    assert model.classes_ == ["negative", "positive"]  # id2label in index order
    assert not model.needs_training
    proba = model.predict_proba(sentences, runner())
    assert_probabilities(proba, len(sentences), 2)
    assert proba.std(axis=0).max() > 0  # rows differ: the texts really reach the model


def test_quiet_loading_without_progress(tiny_classifier_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    HFClassifier(str(tiny_classifier_dir)).predict_proba(["the plot was great."], runner())
    assert capsys.readouterr().err == ""


def test_hf_classifier_matches_plain_transformers(tiny_classifier_dir: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    text = "the movie was great and i would say the plot felt lovely!"
    tok = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    ref = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    with torch.no_grad():
        enc = tok(text, return_tensors="pt")
        want_proba = ref(**enc).logits.softmax(-1).numpy()
        want_embed = ref.bert(**enc).last_hidden_state.mean(1).numpy()
    model = HFClassifier(str(tiny_classifier_dir))
    np.testing.assert_allclose(model.predict_proba([text], runner()), want_proba, atol=1e-5)
    np.testing.assert_allclose(model.embed([text], runner()), want_embed, atol=1e-5)


def test_hf_batch_size_does_not_change_outputs(tiny_classifier_dir: Path,
                                               sentences: list[str]) -> None:
    model = HFClassifier(str(tiny_classifier_dir))
    one, many = runner(batch_size=1), runner(batch_size=13)
    np.testing.assert_allclose(model.predict_proba(sentences, one),
                               model.predict_proba(sentences, many), atol=1e-5)
    embed_one, embed_many = model.embed(sentences, one), model.embed(sentences, many)
    assert embed_one.shape == (len(sentences), 32)
    np.testing.assert_allclose(embed_one, embed_many, atol=1e-5)


def test_hf_long_texts_are_truncated_to_the_model(tiny_classifier_dir: Path) -> None:
    # the tiny model has 64 positions; the default max_length 256 must not overflow it
    proba = HFClassifier(str(tiny_classifier_dir)).predict_proba(["great " * 500], runner())
    assert_probabilities(proba, 1, 2)


def test_hf_fingerprint(tiny_classifier_dir: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    base = HFClassifier(str(tiny_classifier_dir)).fingerprint()
    assert HFClassifier(str(tiny_classifier_dir)).fingerprint() == base
    copy = shutil.copytree(tiny_classifier_dir, tmp_path / "copy")
    assert HFClassifier(str(copy)).fingerprint() == base  # content, not location
    assert HFClassifier(str(tiny_classifier_dir), max_length=32).fingerprint() != base
    renamed = HFClassifier(str(tiny_classifier_dir), labels=["neg", "pos"])
    assert renamed.classes_ == ["neg", "pos"]
    assert renamed.fingerprint() != base
    other = build_tiny("classifier", tokenizer_dir, tmp_path / "reseeded", seed=1)
    assert HFClassifier(str(other)).fingerprint() != base


def test_hf_cached_run_loads_no_weights(tiny_classifier_dir: Path, tmp_path: Path,
                                        sentences: list[str]) -> None:
    first = HFClassifier(str(tiny_classifier_dir))
    want = first.predict_proba(sentences, runner(cache_dir=tmp_path))
    again = HFClassifier(str(tiny_classifier_dir))
    got = again.predict_proba(sentences, runner(cache_dir=tmp_path))
    np.testing.assert_array_equal(got, want)
    assert again._backbone._model is None


def test_hf_bad_inputs_are_one_line_errors(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ShiftbenchError, match="no-such-model"):
        _ = HFClassifier(str(missing)).classes_
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ShiftbenchError, match=str(empty)) as info:
        HFClassifier(str(empty)).predict_proba(["x"], runner())
    assert "\n" not in str(info.value)
    with pytest.raises(ShiftbenchError, match="3 names"):
        _ = HFClassifier(str(tiny_classifier_dir), labels=["a", "b", "c"]).classes_


# -- EncoderProbe ----------------------------------------------------------------------


def test_probe_matches_scikit_learn(tiny_encoder_dir: Path, train_split: Split,
                                    sentences: list[str]) -> None:
    from sklearn.linear_model import LogisticRegression

    r = runner()
    for split in (train_split, three_class_split()):
        probe = EncoderProbe(str(tiny_encoder_dir), C=10.0).fit(split, r)
        assert probe.classes_ == sorted(set(split.labels))
        proba = probe.predict_proba(sentences, r)
        assert_probabilities(proba, len(sentences), len(probe.classes_))
        reference = LogisticRegression(C=10.0, max_iter=1000).fit(
            probe.embed(split.texts, r), split.labels)
        np.testing.assert_allclose(proba, reference.predict_proba(probe.embed(sentences, r)),
                                   atol=1e-6)


def test_probe_batch_size_does_not_change_outputs(tiny_encoder_dir: Path,
                                                  sentences: list[str]) -> None:
    probe = EncoderProbe(str(tiny_encoder_dir))
    np.testing.assert_allclose(probe.embed(sentences, runner(batch_size=1)),
                               probe.embed(sentences, runner(batch_size=9)), atol=1e-5)


def test_probe_head_is_reused_from_the_cache(tiny_encoder_dir: Path, train_split: Split,
                                             tmp_path: Path, sentences: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    calls = []
    original = LogisticRegression.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(self.C)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", counting_fit)
    first = EncoderProbe(str(tiny_encoder_dir)).fit(train_split, runner(cache_dir=tmp_path))
    second_runner = runner(cache_dir=tmp_path)
    second = EncoderProbe(str(tiny_encoder_dir)).fit(train_split, second_runner)
    assert calls == [1.0]  # the second probe read the saved head
    assert second_runner.stats["requested"] == 0  # ... without even embedding the train split
    assert second.fingerprint() == first.fingerprint()
    np.testing.assert_array_equal(second.predict_proba(sentences, second_runner),
                                  first.predict_proba(sentences, second_runner))
    EncoderProbe(str(tiny_encoder_dir), C=0.5).fit(train_split, runner(cache_dir=tmp_path))
    assert calls == [1.0, 0.5]  # other params: another head


def swap_in_text(folder: Path) -> None:
    """Swap the class names in head.json's text: its checksum no longer matches."""
    path = folder / "head.json"
    text = path.read_text().replace('"negative"', '"tmp"').replace('"positive"', '"negative"')
    path.write_text(text.replace('"tmp"', '"positive"'))


HEAD_CHANGES = {  # hand-made heads that pass their checksum: checked field by field
    "swapped-classes": lambda m, a: m.update(classes=m["classes"][::-1]),
    "no-classes": lambda m, a: m.pop("classes"),
    "coef-columns": lambda m, a: a.update(coef=a["coef"][:, :5]),
    "coef-rows": lambda m, a: a.update(coef=np.vstack([a["coef"]] * 2), intercept=np.zeros(2)),
}


@pytest.mark.parametrize("damage", [
    swap_in_text,
    *(lambda folder, change=change: resave(folder, "head.json", change)
      for change in HEAD_CHANGES.values()),
    lambda folder: (folder / "arrays.npz").write_bytes(b"damaged"),
], ids=["swapped-classes-in-text", *HEAD_CHANGES, "damaged-arrays"])
def test_probe_head_that_fails_a_check_is_refit(tiny_encoder_dir: Path, train_split: Split,
                                                tmp_path: Path, sentences: list[str],
                                                damage) -> None:
    first = EncoderProbe(str(tiny_encoder_dir)).fit(train_split, runner(cache_dir=tmp_path))
    want = first.predict_proba(sentences, runner(cache_dir=tmp_path))
    (folder,) = (tmp_path / "models").iterdir()
    damage(folder)
    second_runner = runner(cache_dir=tmp_path)
    second = EncoderProbe(str(tiny_encoder_dir)).fit(train_split, second_runner)
    assert second_runner.stats["requested"] == len(train_split)  # refit: embedded the train split
    assert second.classes_ == ["negative", "positive"]
    np.testing.assert_allclose(second.predict_proba(sentences, second_runner), want, atol=1e-6)
    third_runner = runner(cache_dir=tmp_path)  # the refit head was saved again, whole
    EncoderProbe(str(tiny_encoder_dir)).fit(train_split, third_runner)
    assert third_runner.stats["requested"] == 0


def test_probe_fingerprint_and_untrained_errors(tiny_encoder_dir: Path, train_split: Split,
                                                sentences: list[str]) -> None:
    probe = EncoderProbe(str(tiny_encoder_dir))
    assert probe.needs_training
    with pytest.raises(ShiftbenchError, match="not trained"):
        probe.predict_proba(sentences, runner())
    untrained = probe.fingerprint()
    assert EncoderProbe(str(tiny_encoder_dir)).fingerprint() == untrained
    assert EncoderProbe(str(tiny_encoder_dir), C=2.0).fingerprint() != untrained
    probe.fit(train_split, runner())
    assert probe.fingerprint() != untrained  # the training data is part of it
    unlabelled = Split("u", ["1", "2"], ["a", "b"])
    with pytest.raises(ShiftbenchError, match="labels"):
        EncoderProbe(str(tiny_encoder_dir)).fit(unlabelled, runner())


def test_probe_normalises_when_the_encoder_says_so(tiny_encoder_dir: Path, tmp_path: Path,
                                                   sentences: list[str]) -> None:
    plain = EncoderProbe(str(tiny_encoder_dir)).embed(sentences, runner())
    assert not np.allclose(np.linalg.norm(plain, axis=1), 1.0)
    st_dir = shutil.copytree(tiny_encoder_dir, tmp_path / "st")
    modules = [{"path": "", "type": "sentence_transformers.models.Transformer"},
               {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (st_dir / "modules.json").write_text(json.dumps(modules))
    normalised = EncoderProbe(str(st_dir)).embed(sentences, runner())
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        normalised, plain / np.linalg.norm(plain, axis=1, keepdims=True), atol=1e-5)


# -- SklearnPipeline --------------------------------------------------------------------


def test_tfidf_pipeline(train_split: Split, sentences: list[str]) -> None:
    model = SklearnPipeline("tfidf")
    assert model.needs_training
    with pytest.raises(ShiftbenchError, match="not trained"):
        model.predict_proba(sentences, runner())
    untrained = model.fingerprint()
    model.fit(train_split, runner())
    assert model.fingerprint() != untrained
    assert model.classes_ == ["negative", "positive"]
    proba = model.predict_proba(sentences, runner(batch_size=5))
    assert_probabilities(proba, len(sentences), 2)
    np.testing.assert_allclose(proba, model.pipeline_.predict_proba(sentences), atol=1e-6)
    features = model.embed(sentences, runner())
    assert features.shape == (len(sentences), len(model.pipeline_[0].vocabulary_))
    assert features.dtype == np.float32
    assert SklearnPipeline("tfidf", C=3.0).fit(train_split, runner()).fingerprint() \
        != model.fingerprint()


def test_skops_round_trip(train_split: Split, tmp_path: Path, sentences: list[str]) -> None:
    import skops.io as sio

    trained = SklearnPipeline("tfidf").fit(train_split, runner())
    path = tmp_path / "model.skops"
    sio.dump(trained.pipeline_, path)
    loaded = SklearnPipeline(str(path))
    assert not loaded.needs_training
    assert loaded.fit(train_split, runner()) is loaded
    assert loaded.classes_ == trained.classes_
    np.testing.assert_allclose(loaded.predict_proba(sentences, runner()),
                               trained.predict_proba(sentences, runner()), atol=1e-6)
    assert SklearnPipeline(str(path)).fingerprint() == loaded.fingerprint()
    assert loaded.fingerprint() != trained.fingerprint()


def test_skops_untrusted_types_are_refused(train_split: Split, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # str.lower is a method descriptor: skops does not trust it by default
    pipeline = make_pipeline(TfidfVectorizer(preprocessor=str.lower), LogisticRegression())
    path = tmp_path / "custom.skops"
    sio.dump(pipeline.fit(train_split.texts, train_split.labels), path)
    with pytest.raises(ShiftbenchError, match="method_descriptor"):
        _ = SklearnPipeline(str(path)).classes_
    (tmp_path / "junk.skops").write_bytes(b"not a zip file")
    with pytest.raises(ShiftbenchError, match="junk.skops"):
        _ = SklearnPipeline(str(tmp_path / "junk.skops")).classes_
    with pytest.raises(ShiftbenchError, match="tfidf"):
        SklearnPipeline("model.pkl").fingerprint()


def test_specs_build_the_registered_adapters(tiny_classifier_dir: Path) -> None:
    assert isinstance(load_model(f"hf:{tiny_classifier_dir}"), HFClassifier)
    assert isinstance(load_model("probe"), EncoderProbe)
    assert isinstance(load_model("sklearn:tfidf"), SklearnPipeline)


# -- the real encoder ------------------------------------------------------------------


@pytest.mark.integration
def test_minilm_embeddings_put_paraphrases_close() -> None:
    texts = ["The battery dies after an hour.",
             "After sixty minutes the battery is empty.",
             "This cookbook has lovely pasta recipes."]
    vectors = EncoderProbe().embed(texts, runner())
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = vectors @ vectors.T
    assert cosine[0, 1] > cosine[0, 2] + 0.2
    assert cosine[0, 1] > cosine[1, 2] + 0.2


# -- parameters: checked against each adapter's __init__ before it is built -----------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("adapter: sklearn\nC: abc\n", "C: Input should be a valid number (got 'abc')"),
        ("adapter: sklearn\nC: '1.0'\n", "C: Input should be a valid number (got '1.0')"),
        ("adapter: sklearn\nC: -1\n", "C: Input should be greater than 0 (got -1)"),
        ("adapter: sklearn\nmax_features: 0\n", "max_features: Input should be greater than or "
                                                 "equal to 1 (got 0)"),
        ("adapter: sklearn\nmin_df: 0.5\n", "min_df: Input should be a valid integer"),
        ("adapter: sklearn\nseed: true\n", "seed: Input should be a valid integer (got True)"),
        ("adapter: sklearn\ntrain_fraction: 0\n", "train_fraction: Input should be greater than 0"),
        ("adapter: probe\ntrain_fraction: 1.5\n", "train_fraction: Input should be less than or "
                                                  "equal to 1"),
        ("adapter: probe\nmax_length: 0\n", "max_length: Input should be greater than or equal"),
        ("adapter: probe\nCc: 1\n", "Cc: unknown field (did you mean 'C'?)"),
        ("adapter: sklearn\nwarm_start: 1\n", "warm_start: unknown field (known: C, "
                                              "max_features, min_df, seed, source, "
                                              "train_fraction)"),
        ("adapter: hf\nsource: x\nlabels: [a, a]\n", "labels: class names must be distinct"),
        ("adapter: hf\nlabels: [a, b]\n", "source: Field required"),
        ("adapter: sklearn\nC: 1\nC: 2\n", "line 3: duplicate key 'C' (first at line 2)"),
        ("adapter: nope\n", "unknown model adapter 'nope'"),
        ("- adapter: sklearn\n", "a model file is a mapping with an 'adapter' field"),
        ("adapter: [sklearn]\n", "a model file is a mapping with an 'adapter' field"),
    ],
)
def test_bad_model_files_are_one_line_errors(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(body)
    with pytest.raises(ShiftbenchError) as info:
        load_model(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message


def test_model_file_values_reach_the_adapter_checked(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("adapter: sklearn\nsource: tfidf\nC: 2\nmax_features: null\n"
                    "train_fraction: 9e-1\n")
    model = load_model(str(path))
    assert isinstance(model, SklearnPipeline)
    assert (model.C, model.max_features, model.train_fraction) == (2.0, None, 0.9)
    assert isinstance(model.C, float)
    with pytest.raises(ShiftbenchError, match=r"model 'hf': source: Field required"):
        load_model("hf")
    path.write_text("adapter: hf\nsource: x\nlabels: [0, 1]\n")
    assert load_model(str(path)).labels == ["0", "1"]  # as data labels 0 and 1 are read


def test_plugin_parameters_follow_their_signatures() -> None:
    class Annotated_:
        def __init__(self, size: int = 1) -> None:
            self.size = size

    class Loose:
        def __init__(self, anything=None, **extra) -> None:
            self.anything = anything

    assert adapter_params(Annotated_, {"size": 3}, "m") == {"size": 3}
    with pytest.raises(ShiftbenchError, match=r"m: size: Input should be a valid integer"):
        adapter_params(Annotated_, {"size": "3"}, "m")
    assert adapter_params(Loose, {"anything": "x", "other": [1]}, "m") == {"anything": "x",
                                                                           "other": [1]}


def test_sklearn_fit_problems_are_one_line_errors(train_split: Split) -> None:
    model = SklearnPipeline(min_df=10_000)
    with pytest.raises(ShiftbenchError, match=r"sklearn:tfidf: cannot fit on split 'train'"):
        model.fit(train_split, runner())


def test_transformers_bars_show_only_with_a_runs_progress(tmp_path: Path, capsys) -> None:
    """A GGUF file's "Converting and de-quantizing" bar (a plain tqdm on stderr) came
    through --no-progress: config and tokenizer loads (no run's progress to follow) hide
    transformers' bars and the load's own stderr, a model load shows them only when the
    runner shows progress, and the setting is restored."""
    import sys

    from transformers.utils import logging as hf_logging

    from shiftbench.backbone import Backbone

    backbone = Backbone(str(tmp_path), "AutoModel", 8)
    shown = []

    def load() -> None:
        print("Converting and de-quantizing", file=sys.stderr)
        shown.append(hf_logging.is_progress_bar_enabled())

    backbone._loading("x", load)
    assert capsys.readouterr().err == ""
    backbone._loading("x", load, bars=True)
    assert capsys.readouterr().err == "Converting and de-quantizing\n"
    assert shown == [False, True] and hf_logging.is_progress_bar_enabled()
