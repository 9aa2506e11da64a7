"""Conformance kit: does a component keep its contract? (as scikit-learn's ``check_estimator``)

Built-ins and plug-ins run the same checks (``tests/test_conformance.py`` runs them over
every registered component)::

    from shiftbench.testing import check_shift
    check_shift(MyShift(severity=2))

Each check raises AssertionError naming the promise broken. They use tiny seeded data
and run in about a second on a CPU (a model adapter: as long as a few predictions take).

- :func:`check_shift`: a text depends only on (seed, shift, example id), never on batch
  order or subset; ids and labels stay; parameters rebuild the same shift.
- :func:`check_detector`: parameters round trip (``__init__`` stores them, nothing
  more); a seeded test repeats; the saved folder reloads to the same answers without
  pickle; p-values are calibrated on null samples (false alarms at most ``alpha``,
  beyond chance) and a gross shift is detected.
- :func:`check_online_detector`: the same for detectors of stream windows (false-alarm
  rate per window within twice its ``alpha``, as a threshold simulated on one reference
  varies), plus the window size and the description a resumed stream keeps.
- :func:`check_model_adapter`: probabilities with one column per class in ``classes_``
  that sum to 1 and do not depend on the order of the texts; ``classes_`` refused
  clearly before ``fit``; embeddings one float32 row per text; parameters round trip.
- :func:`check_mitigation`: parameters round trip; one step gives finite named losses
  and an objective with gradients, which ``backward`` puts on the parameters (times the
  loss scale it is given); on a tiny problem the objective falls within a few steps, the
  same under the same seed; a method that trains on a target refuses without one.
- :func:`check_translation_engine`, :func:`check_source`, :func:`check_metric`,
  :func:`check_gate_rule`: the smaller contracts of the other kinds.
"""

from __future__ import annotations

import inspect
import json
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.config import Source
    from shiftbench.detectors import Detector, DriftResult, Params
    from shiftbench.detectors.online import OnlineDetector
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.shifts import Shift
    from shiftbench.shifts.translate.engines import Engine
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation

TEXTS = (
    "The flight was delayed for three hours, and nobody told us why.",
    "Great service!",
    "I'd fly with them again: friendly crew, clean seats, decent food.",
    "My bag never arrived in Boston.",
    "Check-in took 5 minutes. Boarding was chaos, though.",
    "Worst customer support I have ever dealt with, honestly.",
    "The app crashed twice while I was booking a ticket for my mother.",
    "Not bad at all.",
)
FLUKE = 0.001  # chance below which a count of false alarms is not put down to luck
INPUTS = ("embeddings", "probabilities", "bits_per_byte", "output_words")  # what detectors test


def _require(condition: bool, message: str) -> None:
    """``assert`` that survives ``python -O``."""
    if not condition:
        raise AssertionError(message)


def _refuses(call: Callable[[], Any], what: str) -> None:
    """``call`` must fail with a one-line ShiftbenchError (what the CLI prints)."""
    try:
        call()
    except ShiftbenchError as exc:
        _require("\n" not in str(exc), f"{what}: the error is not one line: {exc}")
        return
    raise AssertionError(f"{what}: no ShiftbenchError")


def _json_ready(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what} is not JSON-ready: {exc}") from None


def _quiet_runner() -> Runner:
    """A CPU runner with an in-memory cache and no progress bars."""
    from shiftbench.runner import Runner

    return Runner(device="cpu", progress=False)


def labelled_split(n: int = 40, seed: int = 0) -> Split:
    """A small two-class split of review-like sentences (seeded), to train models on."""
    from shiftbench.split import Split

    rng = random.Random(seed)
    words = {"positive": ["great", "friendly", "fast", "lovely"],
             "negative": ["awful", "rude", "late", "broken"]}
    subjects = ["the crew", "the flight", "my seat", "the app", "the food", "support"]
    labels = [rng.choice(sorted(words)) for _ in range(n)]
    texts = [f"{rng.choice(subjects)} was {rng.choice(words[label])}{rng.choice(['.', '!'])}"
             for label in labels]
    return Split("conformance-train", [f"t{i}" for i in range(n)], texts, labels)


# -- shifts -----------------------------------------------------------------------------------


def check_shift(shift: Shift, texts: Sequence[str] = TEXTS, seed: int = 0) -> None:
    """A shift's output for an example depends only on (seed, shift, id): the same whatever
    the order, subset or instance; ids and labels are kept; ``type(shift)(shift.severity,
    **shift.params)`` is the same shift (key and repr); ``perturb`` with the example's
    seeded rng gives the split's text."""
    from shiftbench.shifts import Shift, apply_shift, example_seed
    from shiftbench.split import Split

    _require(isinstance(shift, Shift), f"{shift!r} is not a Shift")
    _require(isinstance(shift.name, str) and bool(shift.name), "name must be a non-empty str")
    rebuilt = type(shift)(shift.severity, **shift.params)
    _require(rebuilt.key == shift.key and repr(rebuilt) == repr(shift),
             f"{shift!r}: rebuilt from its severity and params it is {rebuilt!r}")
    split = Split("conformance", [f"ex{i}" for i in range(len(texts))], list(texts),
                  [str(i % 2) for i in range(len(texts))])
    runner = _quiet_runner()
    try:
        shifted = apply_shift(shift, split, seed, runner=runner)
        _require(shifted.ids == split.ids and shifted.labels == split.labels,
                 f"{shift!r}: ids or labels changed")
        _require(all(isinstance(t, str) for t in shifted.texts), f"{shift!r}: a text is not a str")
        by_id = dict(zip(shifted.ids, shifted.texts, strict=True))
        reordered = split.subset(list(range(len(split)))[::-1])
        for other, what in ((apply_shift(rebuilt, reordered, seed, runner=runner),
                             "in reverse order, by another instance"),
                            (apply_shift(shift, split.subset(range(1, len(split), 2)), seed,
                                         runner=runner), "in a subset")):
            changed = [i for i, t in zip(other.ids, other.texts, strict=True) if by_id[i] != t]
            _require(not changed, f"{shift!r}: example {changed[:1]} comes out otherwise "
                                  f"{what}: its text must depend only on (seed, shift, id)")
    finally:
        runner.close()
    for ex_id, text in list(zip(split.ids, split.texts, strict=True))[:3]:
        out = shift.perturb(text, random.Random(example_seed(seed, shift.key, ex_id)))
        _require(out == by_id[ex_id], f"{shift!r}: perturb() with example {ex_id}'s rng "
                                      "differs from the text transform() gave it")


# -- detectors ---------------------------------------------------------------------------------


def _check_params(component: Params) -> None:
    """scikit-learn's idiom: ``__init__`` stores exactly its parameters, which rebuild the
    same component and survive JSON (how saved folders keep them)."""
    params = component.get_params()
    stored = set(vars(component))
    _require(stored == set(params), f"{type(component).__name__}.__init__ must store its "
                                    f"parameters and nothing else: it set {sorted(stored)}")
    rebuilt = type(component)(**params)
    _require(rebuilt.get_params() == params and repr(rebuilt) == repr(component),
             f"{component!r}: rebuilt from get_params() it is {rebuilt!r}")
    _json_ready(params, f"{component!r}: get_params()")
    checked = type(component).check_params(json.loads(json.dumps(params)), "conformance")
    _require(checked == params, f"{component!r}: its parameters do not survive JSON")


def _sample(input_kind: str, n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    """n rows to test: 4-d Gaussian embeddings (mean ``shift``), 3-class probabilities
    (``shift`` piles them onto the first class), one column of log-normal bits per byte
    (``shift`` raises its log-mean) or of Poisson output word counts (``shift`` scales
    their mean)."""
    if input_kind == "probabilities":
        return rng.dirichlet([2.0 + 6 * shift, 2.0, 2.0], size=n)
    if input_kind == "bits_per_byte":
        return rng.lognormal(mean=shift, sigma=0.5, size=(n, 1))
    if input_kind == "output_words":
        return rng.poisson(6.0 * (1 + shift), size=(n, 1)).astype(float)
    return rng.normal(size=(n, 4)) + shift


def _few_false_alarms(alarms: int, n: int, rate: float, what: str) -> None:
    from scipy.stats import binom

    chance = float(binom.sf(alarms - 1, n, rate))
    _require(chance >= FLUKE, f"{what}: {alarms} false alarms in {n} null tests; at a rate of "
                              f"{rate:g} that many come by chance with probability {chance:.1e}")


def _check_result(result: DriftResult, n_sample: int, calibrated: bool, what: str) -> None:
    from shiftbench.detectors import DriftResult

    _require(isinstance(result, DriftResult), f"{what}: test() must return a DriftResult")
    _require(result.n_sample == n_sample,
             f"{what}: n_sample = {result.n_sample}; the sample has {n_sample} rows")
    _require(np.isfinite(result.statistic), f"{what}: statistic {result.statistic}")
    _json_ready(result.to_dict(), f"{what}: the result")
    if calibrated:
        _require(result.p_value is not None and 0 < result.p_value <= 1,
                 f"{what}: a calibrated p-value is in (0, 1], got {result.p_value}")
    else:
        _require(result.p_value is None and not result.calibrated,
                 f"{what}: an uncalibrated detector gives no p-value and says so")


def check_detector(detector: Detector, repeats: int = 40, seed: int = 0) -> None:
    """An offline detector (unfitted, registered under its ``name``): parameters round
    trip; refuses to test before fit or with other features; a seeded test repeats, also
    after save/load (no pickle); on ``repeats`` null samples a calibrated detector's
    alarms are at most ``alpha`` beyond chance; a gross shift is detected."""
    from shiftbench.detectors import Detector, load_detector

    _require(isinstance(detector, Detector), f"{detector!r} is not a Detector")
    _require(detector.input in INPUTS,
             f"{detector!r}: input is one of {', '.join(INPUTS)}, got {detector.input!r}")
    _check_params(detector)
    rng = np.random.default_rng(seed)
    sample = _sample(detector.input, 30, rng)
    _refuses(lambda: detector.clone().test(sample), f"{detector!r}: test() before fit()")
    reference = _sample(detector.input, 60, rng)
    fitted = detector.clone()
    _require(fitted.fit(reference) is fitted, f"{detector!r}: fit() must return self")
    first = fitted.test(sample)
    what = repr(detector)
    _check_result(first, 30, detector.calibrated, what)
    _require(first.n_reference == 60, f"{what}: n_reference = {first.n_reference}; the "
                                      "reference has 60 rows")
    if first.p_value is not None:
        _require(first.drifted == (first.p_value < first.alpha),
                 f"{what}: drifted must be p_value < alpha")
    _require(fitted.test(sample) == first and detector.clone().fit(reference).test(sample) == first,
             f"{what}: the same sample must give the same result (seeded)")
    _refuses(lambda: fitted.test(np.c_[sample, sample]), f"{what}: a sample with other features")
    if detector.calibrated:
        alarms = sum(detector.clone().fit(_sample(detector.input, 60, rng))
                     .test(_sample(detector.input, 30, rng)).drifted for _ in range(repeats))
        _few_false_alarms(alarms, repeats, detector.alpha, what)
    shifted = detector.clone().fit(reference).test(_sample(detector.input, 30, rng, shift=3.0))
    _require(shifted.drifted, f"{what}: missed a gross shift ({shifted})")
    with tempfile.TemporaryDirectory() as tmp:
        fitted.save(tmp)
        files = sorted(p.name for p in Path(tmp).iterdir())
        _require(files == ["arrays.npz", "detector.json"],
                 f"{what}: a saved detector is detector.json + arrays.npz, got {files}")
        loaded = load_detector(tmp)
    _require(loaded.get_params() == detector.get_params() and loaded.test(sample) == first,
             f"{what}: the detector loaded from its folder answers otherwise")


def check_online_detector(detector: OnlineDetector, windows: int = 100, seed: int = 0) -> None:
    """An online detector (unfitted): parameters round trip; ``describe()`` is JSON-ready
    with its ``method``; it refuses to test before fit and windows of another size; fit
    records the reference's digest; a seeded fit repeats, also after save/load (no
    pickle); null windows alarm at most twice ``alpha`` beyond chance; a gross shift
    alarms."""
    from shiftbench.detectors import reference_digest
    from shiftbench.detectors.online import SAVED_JSON, OnlineDetector

    _require(isinstance(detector, OnlineDetector), f"{detector!r} is not an OnlineDetector")
    _check_params(detector)
    what = repr(detector)
    _require(isinstance(detector.window, int) and detector.window >= 1,
             f"{what}: window must be a positive int")
    description = detector.describe()
    _json_ready(description, f"{what}: describe()")
    _require(description.get("method") == detector.name, f"{what}: describe() names its method")
    rng = np.random.default_rng(seed)
    size = detector.window
    window = rng.normal(size=(size, 4))
    fresh = type(detector)(**detector.get_params())
    _refuses(lambda: fresh.test(window), f"{what}: test() before fit()")
    with tempfile.TemporaryDirectory() as tmp:
        _refuses(lambda: fresh.save(tmp), f"{what}: save() before fit()")
    reference = rng.normal(size=(20 * size, 4))
    _require(fresh.fit(reference) is fresh, f"{what}: fit() must return self")
    _require(fresh.reference_digest_ == reference_digest(reference),
             f"{what}: fit() must record reference_digest_")
    _refuses(lambda: fresh.test(window[:-1]), f"{what}: a window of {size - 1} rows")
    first = fresh.test(window)
    _check_result(first, size, True, what)
    _require(first.drifted == (first.p_value <= first.alpha),
             f"{what}: an alarm must be p_value <= alpha")
    twin = type(detector)(**detector.get_params()).fit(reference)
    _require(twin.test(window) == first, f"{what}: a seeded fit must repeat")
    with tempfile.TemporaryDirectory() as tmp:
        fresh.save(tmp)
        files = sorted(p.name for p in Path(tmp).iterdir())
        _require(files == ["arrays.npz", SAVED_JSON],
                 f"{what}: a saved online detector is {SAVED_JSON} + arrays.npz, got {files}")
        loaded = type(detector).load(tmp)
    _require(loaded.get_params() == detector.get_params() and loaded.test(window) == first
             and loaded.reference_digest_ == fresh.reference_digest_,
             f"{what}: the detector loaded from its folder answers otherwise")
    alarms = sum(fresh.test(rng.normal(size=(size, 4))).drifted for _ in range(windows))
    _few_false_alarms(alarms, windows, min(1.0, 2 * first.alpha), what)
    shifted = [fresh.test(rng.normal(size=(size, 4)) + 3.0).drifted for _ in range(5)]
    _require(sum(shifted) >= 3, f"{what}: alarmed on {sum(shifted)} of 5 grossly shifted windows")


# -- model adapters ----------------------------------------------------------------------------


def check_model_adapter(adapter: ModelAdapter, train: Split | None = None,
                        texts: Sequence[str] = TEXTS) -> None:
    """A model adapter (unfitted): its ``__init__`` parameters are stored under their own
    names, pass its own schema and rebuild it; ``classes_`` is refused clearly before a
    needed ``fit``, then distinct names; probabilities have one column per class, sum to
    1 and follow the texts (not their order); embeddings are one float32 row per text;
    ``describe()`` and ``fingerprint()`` are stable and JSON-ready."""
    from shiftbench.models import ModelAdapter

    _require(isinstance(adapter, ModelAdapter), f"{adapter!r} is not a ModelAdapter")
    name = type(adapter).__name__
    _check_adapter_params(adapter, name)
    if adapter.task == "generation":
        _check_generator(adapter, name, texts)
        return
    runner = _quiet_runner()
    try:
        proba, vectors = _check_adapter_outputs(adapter, name, train, texts, runner)
    finally:
        runner.close()
    again = _quiet_runner()
    try:
        backwards = list(texts)[::-1]
        _require(bool(np.allclose(adapter.predict_proba(backwards, again), proba[::-1],
                                  atol=1e-5)),
                 f"{name}: a text's probabilities must not depend on the order of the texts")
        _require(bool(np.allclose(adapter.embed(backwards, again), vectors[::-1], atol=1e-5)),
                 f"{name}: a text's embedding must not depend on the order of the texts")
    finally:
        again.close()


def _check_generator(adapter: ModelAdapter, name: str, texts: Sequence[str]) -> None:
    """A generator: a stable fingerprint, one text per input that follows the texts (not
    their order or batch size), embeddings of one float32 row per text."""
    from shiftbench.models import Generator

    _require(isinstance(adapter, Generator), f"{name}: task generation needs a Generator")
    _require(adapter.fingerprint() == adapter.fingerprint()
             and isinstance(adapter.fingerprint(), str), f"{name}: fingerprint() is stable")
    runner, again = _quiet_runner(), _quiet_runner()
    again.batch_size = 1
    try:
        outputs = adapter.generate(list(texts), runner)
        _require(isinstance(outputs, list) and len(outputs) == len(texts)
                 and all(isinstance(o, str) for o in outputs),
                 f"{name}: generate gives one str per text")
        _require(adapter.generate(list(texts)[::-1], again) == outputs[::-1],
                 f"{name}: a text's output must not depend on the order or batch of the texts")
        _check_embed(adapter, texts, runner, name)
    finally:
        runner.close()
        again.close()


def _check_adapter_params(adapter: ModelAdapter, name: str) -> None:
    """Parameters stored under their own names pass the adapter's schema and rebuild it;
    ``describe()`` is JSON-ready and names the adapter."""
    import inspect

    from shiftbench.models import adapter_params

    names = [p for p in inspect.signature(type(adapter).__init__).parameters if p != "self"]
    missing = [p for p in names if not hasattr(adapter, p)]
    _require(not missing, f"{name}.__init__ must store its parameters: {missing} not stored")
    params = {p: getattr(adapter, p) for p in names}
    try:
        adapter_params(type(adapter), params, f"{name} parameters")
    except ShiftbenchError as exc:
        raise AssertionError(f"its own parameters fail its schema: {exc}") from None
    description = adapter.describe()
    _json_ready(description, f"{name}.describe()")
    _require(description.get("adapter") == adapter.adapter, f"{name}.describe() names its adapter")
    _require(type(adapter)(**params).describe() == description,
             f"{name}: rebuilt from its parameters it describes itself otherwise")


def _check_adapter_outputs(adapter: ModelAdapter, name: str, train: Split | None,
                           texts: Sequence[str], runner: Runner) -> tuple[np.ndarray, np.ndarray]:
    """Fitted when it needs it (``classes_`` refused before), then distinct class names,
    a stable fingerprint, probabilities and embeddings of the right shape; returns both."""
    if adapter.needs_training:
        _refuses(lambda: adapter.classes_, f"{name}: classes_ before fit()")
        fitted = adapter.fit(train or labelled_split(), runner)
        _require(fitted is adapter, f"{name}: fit() must return self")
    classes = adapter.classes_
    _require(isinstance(classes, list) and len(classes) >= 2
             and all(isinstance(c, str) for c in classes) and len(set(classes)) == len(classes),
             f"{name}: classes_ must be a list of distinct class names, got {classes!r}")
    _require(adapter.fingerprint() == adapter.fingerprint()
             and isinstance(adapter.fingerprint(), str), f"{name}: fingerprint() is stable")
    proba = adapter.predict_proba(list(texts), runner)
    _require(proba.shape == (len(texts), len(classes)),
             f"{name}: predict_proba gives shape {proba.shape}, expected "
             f"({len(texts)}, {len(classes)}) (one column per class in classes_)")
    _require(bool(np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()),
             f"{name}: probabilities must be finite and in [0, 1]")
    _require(bool(np.allclose(proba.sum(axis=1), 1, atol=1e-4)),
             f"{name}: probabilities must sum to 1 per row, got {proba.sum(axis=1)}")
    return proba, _check_embed(adapter, texts, runner, name)


def _check_embed(adapter: ModelAdapter, texts: Sequence[str], runner: Runner,
                 name: str) -> np.ndarray:
    """The adapter's embeddings of ``texts``: finite float32, one row per text."""
    vectors = adapter.embed(list(texts), runner)
    _require(vectors.ndim == 2 and len(vectors) == len(texts) and vectors.dtype == np.float32
             and bool(np.isfinite(vectors).all()),
             f"{name}: embed gives {vectors.dtype} {vectors.shape}; expected finite float32 "
             f"({len(texts)}, d)")
    return vectors


# -- mitigations -------------------------------------------------------------------------------


def check_mitigation(mitigation: Mitigation, steps: int = 30, seed: int = 0) -> None:
    """A training method (as built, not set up): parameters round trip; a step's output is
    finite named losses (and numeric metrics) whose objective has gradients, which
    ``backward`` puts on the parameters, times its ``scale`` (fp16's loss scale); trained
    on a tiny seeded two-domain problem the objective falls, and a second run repeats it
    exactly; a method that uses a target refuses a step without one."""
    from shiftbench.train.mitigations import Mitigation

    _require(isinstance(mitigation, Mitigation), f"{mitigation!r} is not a Mitigation")
    _require(isinstance(mitigation.name, str) and bool(mitigation.name),
             "name must be a non-empty str")
    _check_params(mitigation)
    first = _objectives(mitigation, steps, seed)
    what = repr(mitigation)
    _require(first == _objectives(mitigation, steps, seed),
             f"{what}: two seeded trainings on the same data give other losses")
    start, end = float(np.mean(first[:5])), float(np.mean(first[-5:]))
    _require(end < start, f"{what}: the objective did not fall in {steps} steps on a tiny "
                          f"problem ({start:.4f} -> {end:.4f})")
    _check_loss_scale(mitigation, seed)


def _tiny_problem(seed: int) -> tuple[Any, Any]:
    """(labelled, unlabelled) batches: two classes along one feature, the target domain
    shifted along another, noisy copies of the labelled rows as their augmented copies."""
    import torch

    from shiftbench.train.mitigations import Batch

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 64)
    x = rng.normal(size=(64, 4)) + np.outer(4 * y - 2, [1, 0, 0, 0])
    target = rng.normal(size=(64, 4)) + [0, 3, 0, 0]
    copies = x + rng.normal(scale=0.3, size=x.shape)  # augmented copies, for methods using them
    labelled = Batch(torch.tensor(x, dtype=torch.float32), torch.tensor(y),
                     torch.tensor(copies, dtype=torch.float32))
    return labelled, Batch(torch.tensor(target, dtype=torch.float32))


def _fresh(mitigation: Mitigation, seed: int) -> tuple[Any, Mitigation, list[Any]]:
    """(a small seeded head, a set-up copy of ``mitigation``, all their parameters); each
    step of the tiny problem is an epoch (its rows are one batch)."""
    import torch

    from shiftbench.train.nets import HeadNet

    torch.manual_seed(seed)
    model = HeadNet(4, 2, hidden=8)
    method = type(mitigation)(**mitigation.get_params()).setup(model, steps_per_epoch=1)
    return model, method, [*model.parameters(), *method.modules_.parameters()]


def _objectives(mitigation: Mitigation, steps: int, seed: int) -> list[float]:
    """The objective at each of ``steps`` AdamW steps of a fresh copy of ``mitigation`` on
    the tiny problem."""
    import torch

    from shiftbench.train.mitigations import StepOutput

    labelled, unlabelled = _tiny_problem(seed)
    what = repr(mitigation)
    losses = []
    with torch.random.fork_rng(devices=[]):
        model, method, params = _fresh(mitigation, seed)
        if method.uses_target:
            _refuses(lambda: method.process_batch(model, labelled, None, 0),
                     f"{what}: a step without the target it trains on")
        optimizer = torch.optim.AdamW(params, lr=1e-2)
        for step in range(steps):
            output = method.process_batch(model, labelled, unlabelled, step)
            _require(isinstance(output, StepOutput) and bool(output.losses),
                     f"{what}: process_batch must return a StepOutput with named losses")
            _require(all(isinstance(v, float | int) for v in output.metrics.values()),
                     f"{what}: metrics must be plain numbers")
            objective = method.objective(output)
            _require(objective.ndim == 0 and objective.requires_grad
                     and bool(torch.isfinite(objective)),
                     f"{what}: the objective must be a finite scalar with gradients")
            optimizer.zero_grad()
            method.backward(output, params)
            _require(any(p.grad is not None for p in params),
                     f"{what}: backward left no gradient on the parameters")
            optimizer.step()
            losses.append(float(objective.detach()))
    return losses


def _check_loss_scale(mitigation: Mitigation, seed: int) -> None:
    """``backward(..., scale=8)`` gives 8 times ``backward``'s gradients: fp16 training
    scales the loss so that small gradients survive, and divides them by it after."""
    import torch

    labelled, unlabelled = _tiny_problem(seed)
    grads = []
    for scale in (1.0, 8.0):
        with torch.random.fork_rng(devices=[]):
            model, method, params = _fresh(mitigation, seed)
            method.backward(method.process_batch(model, labelled, unlabelled, 0), params,
                            scale=scale)
            grads.append([p.grad for p in params])
    _require(all((a is None) == (b is None) and (a is None or torch.allclose(8 * a, b))
                 for a, b in zip(*grads, strict=True)),
             f"{mitigation!r}: backward(scale=8) does not give 8 times the gradients")


# -- the smaller kinds -------------------------------------------------------------------------


def check_translation_engine(engine: Engine, pivot: str | None = None,
                             texts: Sequence[str] = TEXTS[:4]) -> None:
    """A translation engine: a stable fingerprint per direction; one output string per
    text, in order, whatever the batch (to the pivot and back)."""
    from shiftbench.shifts.translate.engines import Engine

    _require(isinstance(engine, Engine), f"{engine!r} is not an Engine")
    pivot = pivot or engine.default_pivot
    _require(engine.check_pivot(pivot) is None, f"{engine.name}: pivot {pivot!r} is refused")
    for source, target in (("en", pivot), (pivot, "en")):
        fingerprint = engine.fingerprint(source, target)
        _require(isinstance(fingerprint, str) and fingerprint == engine.fingerprint(source, target),
                 f"{engine.name}: fingerprint({source}, {target}) must be a stable str")
    out = engine.translate(list(texts), "en", pivot)
    _require(isinstance(out, list) and len(out) == len(texts) and all(isinstance(t, str)
                                                                       for t in out),
             f"{engine.name}: translate() gives one str per text")
    one_by_one = [engine.translate([text], "en", pivot)[0] for text in texts]
    _require(one_by_one == out, f"{engine.name}: a text's translation depends on its batch")
    back = engine.translate(out, pivot, "en")
    _require(len(back) == len(out), f"{engine.name}: translating back gives one str per text")


def check_source(source: Source, base_dir: Path) -> None:
    """A data source kind: its reader's rows, standardised by ``read_source``, have
    distinct string ids and string texts, and reading again gives the same rows."""
    from shiftbench.data import read_source

    frame = read_source(source, base_dir)
    _require(len(frame) > 0 and {"id", "text", "label"} <= set(frame.columns),
             f"source {source.kind!r}: no rows, or no id/text/label columns")
    ids = list(frame["id"])
    _require(all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids),
             f"source {source.kind!r}: ids must be distinct strings")
    _require(all(isinstance(t, str) for t in frame["text"]),
             f"source {source.kind!r}: every text must be a str")
    again = read_source(source, base_dir)
    _require(again[["id", "text", "label"]].equals(frame[["id", "text", "label"]]),
             f"source {source.kind!r}: reading twice gives other rows")


def check_metric(name: str, metric: type) -> None:
    """A metric kind: a :class:`~shiftbench.metrics.Metric` subclass whose ``name`` is its
    registry name, with a table row the views and the gate can use (a label, a unit they
    print, a direction, bounds), whose estimate is finite, within its bounds and inside its
    own 95% interval, over all the examples, the same again for the same seed; a
    resampled metric's statistic gives that estimate at the identity resample."""
    from shiftbench.metrics import Metric, Proportion, Resampled
    from shiftbench.report.numbers import CHANGE

    _require(isinstance(metric, type) and issubclass(metric, Metric),
             f"metric {name!r}: {metric!r} is not a Metric")
    _require(getattr(metric, "name", None) == name,
             f"metric {name!r}: its name attribute must be {name!r}")
    _require(bool((metric.__doc__ or "").strip()), f"metric {name!r}: no docstring")
    _require(isinstance(getattr(metric, "label", None), str) and bool(metric.label),
             f"metric {name!r}: no label (the heading of its report column)")
    _require(metric.unit in CHANGE, f"metric {name!r}: unit must be one of "
                                    f"{', '.join(CHANGE)}, got {metric.unit!r}")
    _require(isinstance(getattr(metric, "higher_is_better", None), bool),
             f"metric {name!r}: higher_is_better must be True or False")
    low, high = metric.bounds
    _require(low < high, f"metric {name!r}: bounds {metric.bounds} are empty")
    proba, y = _metric_inputs(metric.task)
    result = metric().estimate(proba, y, rng=0, n_boot=200)
    _require(bool(np.isfinite(result.value)) and result.low <= result.value <= result.high,
             f"metric {name!r}: {result.value} outside its interval [{result.low}, {result.high}]")
    _require(low <= result.value <= high,
             f"metric {name!r}: {result.value} outside its bounds {metric.bounds}")
    _require(result.n == len(y), f"metric {name!r}: n = {result.n}, expected {len(y)}")
    _require(metric().estimate(proba, y, rng=0, n_boot=200) == result,
             f"metric {name!r}: the same seed must give the same estimate")
    if issubclass(metric, Resampled):
        at_identity = float(metric().stat(proba, y)(np.arange(len(y))[None, :])[0])
        _require(abs(at_identity - result.value) <= 1e-12,
                 f"metric {name!r}: its statistic gives {at_identity} on the sample, its "
                 f"estimate {result.value}")
    if issubclass(metric, Proportion):
        good = np.asarray(metric().outcome(proba, y))
        _require(good.dtype == bool and good.shape == y.shape,
                 f"metric {name!r}: outcome must be one bool per example")


def _metric_inputs(task: str) -> tuple[np.ndarray, np.ndarray]:
    """50 examples of a task's model outputs and answers: class probabilities and class
    indices (half the rows lean to their true class), or generated and target texts (every
    other output is its target with its words reversed)."""
    rng = np.random.default_rng(0)
    if task == "generation":
        targets = np.array([TEXTS[i % len(TEXTS)] for i in range(50)], dtype=object)
        outputs = np.array([t if i % 2 else " ".join(t.split()[::-1])
                            for i, t in enumerate(targets)], dtype=object)
        return outputs, targets
    y = rng.integers(0, 3, size=50)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=50)
    proba[np.arange(25), y[:25]] += 2
    proba /= proba.sum(axis=1, keepdims=True)
    return proba, y


def check_gate_rule(name: str, rule: type) -> None:
    """A gate rule kind: a strict policy model (a ``RuleBase``) whose ``kind`` field is its
    registry name, that implements the engine's methods (set-up, evidence, violation),
    described by its docstring."""
    from shiftbench.gate.policy import RuleBase

    _require(isinstance(rule, type) and issubclass(rule, RuleBase),
             f"gate rule {name!r}: {rule!r} is not a RuleBase")
    _require(not inspect.isabstract(rule), f"gate rule {name!r}: does not implement "
             f"{', '.join(sorted(getattr(rule, '__abstractmethods__', ())))}")
    kind = rule.model_fields.get("kind")
    _require(kind is not None and get_args(kind.annotation) == (name,),
             f"gate rule {name!r}: its kind field must be Literal[{name!r}]")
    _require(bool((rule.__doc__ or "").strip()), f"gate rule {name!r}: no docstring")
