"""Hugging Face plumbing shared by the model adapters (classifier, probe) and the HF
translation engine: below both, so a shift never imports a model adapter.

:class:`Backbone` finds a model directory (local, or a hub snapshot for users with
network), hashes its files for the fingerprint, loads tokenizer and model lazily, and
builds the runner's batch function: tokenise each text once, pad each batch to its own
longest row (rounded up to a multiple of 8 on CUDA), run a ``head`` under the runner's
inference context.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    import torch

    from shiftbench.runner import Runner

Head = Callable[[Any, dict[str, "torch.Tensor"]], "torch.Tensor"]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_HASH_CHUNK = 1 << 20


def resolve_source(source: str) -> Path:
    """A local model directory; a hub id is fetched into the HF cache (needs network)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ShiftbenchError(f"{source}: is a file; expected a model directory")
    if not _HUB_ID.fullmatch(source):
        raise ShiftbenchError(f"{source}: model directory not found")
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(source, ignore_patterns=["*.h5", "*.msgpack", "*.onnx",
                                                               "*.ot", "onnx/*", "openvino/*"])
    except Exception as exc:
        raise ShiftbenchError(f"{source}: no such model directory, and the Hugging Face Hub "
                              f"could not provide it ({exc.__class__.__name__})") from None
    return Path(snapshot)


def files_hash(directory: Path, only: str | None = None) -> str:
    """sha256 over every file's relative path and bytes (hidden files and *.md skipped);
    with ``only``, over that one file (a GGUF file holds the whole model)."""
    digest = hashlib.sha256()
    files = [directory / only] if only else sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix != ".md"
        and not any(part.startswith(".") for part in p.relative_to(directory).parts))
    for path in files:
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors the attention mask keeps (padding ignored), in fp32."""
    weights = mask.unsqueeze(-1).float()
    return (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def mean_hidden(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean-pooled last hidden state of the model under its head (classifier, LM head)."""
    return mean_pool(model.base_model(**inputs).last_hidden_state, inputs["attention_mask"])


def _last_fitting(ends: Sequence[int], fits: Callable[[int], bool]) -> int:
    """The largest of the increasing ``ends`` that ``fits`` (0 when none), by bisection:
    a longer prefix is taken never to need fewer tokens."""
    good, bad = -1, len(ends)
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(ends[middle]):
            good = middle
        else:
            bad = middle
    return ends[good] if good >= 0 else 0


def longest_prefix(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix of ``text`` that ``fits``, ending where a word ends (a cut inside
    a word would put a typo into the clean text), or inside the first word when not even
    it fits (the empty prefix is assumed to fit): how a prompt's text slot is cut so the
    prompt fits. Word ends, not characters, are bisected: a tokenizer can need more tokens
    for "were print" than for "were printed", which misled a bisection over characters."""
    if fits(text):
        return text
    ends = [match.end() for match in re.finditer(r"\S+", text)]
    cut = _last_fitting(ends, lambda end: fits(text[:end]))
    if not cut and ends:
        cut = _last_fitting(range(1, ends[0] + 1), lambda end: fits(text[:end]))
    return text[:cut]


class Backbone:
    """A lazily loaded tokenizer + model of one ``transformers`` Auto class; with
    ``gguf_file``, both come from that GGUF file in the (local) source directory."""

    def __init__(self, source: str, auto_class: str, max_length: int,
                 gguf_file: str | None = None) -> None:
        self.source = source
        self.auto_class = auto_class
        self.max_length = max_length
        self.gguf_file = gguf_file
        self._model: Any = None
        self._placement: tuple[str, str, bool] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Parameters only: a Ray worker finds the files and loads the model itself (a
        loaded model, a tokenizer or this machine's paths never travel)."""
        return {"source": self.source, "auto_class": self.auto_class,
                "max_length": self.max_length, "gguf_file": self.gguf_file,
                "_model": None, "_placement": None}

    @cached_property
    def directory(self) -> Path:
        return resolve_source(self.source)

    @cached_property
    def files_hash(self) -> str:
        return files_hash(self.directory, self.gguf_file)

    @property
    def _file_kwargs(self) -> dict[str, str]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    @cached_property
    def config(self) -> Any:
        from transformers import AutoConfig

        return self._loading("config", lambda: AutoConfig.from_pretrained(self.directory,
                                                                  **self._file_kwargs))

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return self._loading("tokenizer", lambda: AutoTokenizer.from_pretrained(
            self.directory, **self._file_kwargs))

    def sentence_transformers_modules(self) -> list[dict[str, Any]]:
        """The directory's sentence-transformers ``modules.json`` entries ([] if none)."""
        path = self.directory / "modules.json"
        if not path.is_file():
            return []
        try:
            return list(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ShiftbenchError(f"{path}: not a valid modules.json ({exc})") from None

    def model(self, runner: Runner) -> Any:
        """The model on the runner's device and dtype, loaded on first use.

        A runner with another device or precision gets a fresh load rather than a
        cast of the one in hand: casting fp32 -> bf16 -> fp32 would keep the rounding.
        """
        placement = (runner.device_, runner.precision_, runner.compile)
        if self._model is None or self._placement != placement:
            import transformers

            cls = getattr(transformers, self.auto_class)
            model = self._loading(
                "model", lambda: cls.from_pretrained(self.directory, dtype=runner.torch_dtype,
                                                     **self._file_kwargs),
                bars=runner.show_progress)
            self._model, self._placement = runner.to_device(model), placement
        return self._model

    def batch_fn(self, runner: Runner, head: Head, left: bool | None = None) -> TokenBatches:
        """A batch function for ``runner.map``; nothing loads until it is called. ``left``
        pads on the left (a decoder-only model generating); None: the tokenizer's side."""
        return TokenBatches(self, head, runner, left)

    def embed(self, texts: Sequence[str], runner: Runner, key: str, pool: Head) -> np.ndarray:
        """One vector per text, ``pool(model, inputs)`` of each batch, cached under
        ``key`` (the adapter's fingerprint) and the runner's precision; (0, hidden size)
        for no texts."""
        out = runner.map(f"{key}/{runner.precision_}/embed", texts,
                         self.batch_fn(runner, pool), desc="embed")
        if not len(texts):
            return np.zeros((0, int(self.config.hidden_size)), dtype=np.float32)
        return out

    @cached_property
    def max_length_(self) -> int:
        """The requested max_length, never beyond what the tokenizer says the model takes."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < 10**6:
            return min(self.max_length, limit)
        return self.max_length

    def _loading(self, what: str, load: Callable[[], Any], bars: bool = False) -> Any:
        """``load()`` with transformers' progress bars ("Loading weights", a GGUF file's
        "Converting and de-quantizing") shown only when ``bars`` (a run's progress: config
        and tokenizer loads have none); any failure as one line. The GGUF bar is a plain
        tqdm on sys.stderr that transformers' switch does not reach, so without bars the
        load's direct writes to sys.stderr are dropped (logging keeps its own stream)."""
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        if not bars:
            hf_logging.disable_progress_bar()
        try:
            with contextlib.nullcontext() if bars else \
                    contextlib.redirect_stderr(io.StringIO()):
                return load()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ShiftbenchError(f"{self.directory}: cannot load the {what} "
                                  f"({exc.__class__.__name__}: {first})") from None
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()


class TokenBatches:
    """The runner's batch function for a HF model: token ids in, ``head`` rows out.

    One forward pass per batch (``by_tokens``: the runner plans its batches by padded
    tokens). Tokenizer and model load only when the runner needs them, so a fully cached
    run never loads weights.
    """

    by_tokens = True

    def __init__(self, backbone: Backbone, head: Head, runner: Runner,
                 left: bool | None = None) -> None:
        self.backbone = backbone
        self.head = head
        self.runner = runner
        self.left = left

    def __getstate__(self) -> dict[str, Any]:
        """Without the loaded model (see :meth:`Backbone.__getstate__`)."""
        return {name: value for name, value in vars(self).items() if name != "model"}

    @cached_property
    def model(self) -> Any:
        return self.backbone.model(self.runner)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated, unpadded: the runner sorts by their length."""
        encoded = self.backbone.tokenizer(list(texts), truncation=True,
                                          max_length=self.backbone.max_length_,
                                          return_attention_mask=False,
                                          return_token_type_ids=False)  # ~25% faster
        return encoded["input_ids"]

    def __call__(self, batch: list[list[int]]) -> np.ndarray:
        input_ids, mask = self.padded(batch)
        inputs = {"input_ids": self._to_device(input_ids),
                  "attention_mask": self._to_device(mask)}
        with self.runner.inference():
            out = self.head(self.model, inputs)
        return out.float().cpu().numpy()

    def padded(self, batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask of the batch, each row padded to the longest (on
        CUDA to a multiple of 8: tensor-core friendly, fewer shapes), on the tokenizer's
        side unless ``left`` says."""
        tokenizer = self.backbone.tokenizer
        lengths = np.array([len(ids) for ids in batch])
        width = int(lengths.max())
        if self.runner.device_.startswith("cuda"):
            width = min(-(-width // 8) * 8, max(width, self.backbone.max_length_))
        left = (getattr(tokenizer, "padding_side", "right") == "left" if self.left is None
                else self.left)
        columns = np.arange(width)
        mask = (columns >= width - lengths[:, None]) if left else (columns < lengths[:, None])
        input_ids = np.full((len(batch), width), tokenizer.pad_token_id or 0, dtype=np.int64)
        input_ids[mask] = np.fromiter((i for ids in batch for i in ids), dtype=np.int64,
                                      count=int(lengths.sum()))  # row-major: each row in order
        return input_ids, mask.astype(np.int64)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """On CUDA through pinned memory, so the copy does not wait on the host."""
        import torch

        tensor = torch.from_numpy(array)
        if not self.runner.device_.startswith("cuda"):
            return tensor
        return tensor.pin_memory().to(self.runner.device_, non_blocking=True)
