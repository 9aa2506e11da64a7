"""Shared fixtures: generated sentences and tiny random BERT models (no downloads).

The models are built from a small ``BertConfig`` and a WordPiece tokenizer trained on
generated sentences, so the suite never depends on network or on data files.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from pathlib import Path

import pytest

from shiftbench.split import Split

SUBJECTS = ["the movie", "this blender", "the book", "our waiter", "the battery", "my flight",
            "the plot", "this phone", "the hotel room", "the soundtrack", "the charger"]
VERBS = ["was", "seemed", "felt", "turned out", "is", "looked"]
POSITIVE = ["great", "wonderful", "excellent", "delightful", "reliable", "superb", "lovely"]
NEGATIVE = ["awful", "terrible", "broken", "boring", "useless", "disappointing", "horrible"]
FILLERS = ["honestly", "and i would say", "after two weeks", "to be fair", "as expected",
           "compared with the last one", "for the price", "according to my sister", "again"]
MAX_POSITIONS = 64  # the tiny models' max_position_embeddings


def make_sentence(rng: random.Random, sentiment: str) -> str:
    """One review-like sentence; its length varies from 4 to ~40 words."""
    words = POSITIVE if sentiment == "positive" else NEGATIVE
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(words)]
    for _ in range(rng.choice([0, 0, 1, 2, 4, 8])):
        parts += [rng.choice(FILLERS), rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(words)]
    return " ".join(parts) + rng.choice([".", "!", "?", "..."])


def make_labelled(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    labels = [rng.choice(["negative", "positive"]) for _ in range(n)]
    return [make_sentence(rng, label) for label in labels], labels


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    """60 texts of mixed length, with some exact duplicates."""
    texts, _ = make_labelled(50, seed=1)
    return texts + texts[:10]


@pytest.fixture(scope="session")
def train_split() -> Split:
    texts, labels = make_labelled(120, seed=2)
    return Split("train", [f"t{i}" for i in range(len(texts))], texts, labels)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordPiece tokenizer (BERT-style normalisation and [CLS] ... [SEP]) on 2,000 sentences."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    corpus, _ = make_labelled(2000, seed=0)
    words = Counter(word for text in corpus for word, _ in
                    pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    # a fixed vocabulary: WordPiece training breaks ties differently from run to run, and
    # every number a test reports would move with it
    vocabulary = dict.fromkeys([*specials, *characters, *("##" + c for c in characters),
                                *sorted(words, key=lambda word: (-words[word], word))])
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocabulary)},
                                     unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_POSITIONS)
    directory = tmp_path_factory.mktemp("tokenizer")
    wrapped.save_pretrained(directory)
    return directory


def _tiny_config(tokenizer_dir: Path, **extra):
    from transformers import AutoTokenizer, BertConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return tokenizer, BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64,
                                 max_position_embeddings=MAX_POSITIONS,
                                 pad_token_id=tokenizer.pad_token_id, **extra)


def build_tiny(kind: str, tokenizer_dir: Path, directory: Path, seed: int = 0) -> Path:
    """Save a random tiny BertModel ("encoder") or BertForSequenceClassification ("classifier")."""
    import torch
    from transformers import BertForSequenceClassification, BertModel

    if kind == "encoder":
        tokenizer, config = _tiny_config(tokenizer_dir)
        cls = BertModel
    else:
        tokenizer, config = _tiny_config(tokenizer_dir, id2label={0: "negative", 1: "positive"},
                                         label2id={"negative": 0, "positive": 1})
        cls = BertForSequenceClassification
    torch.manual_seed(seed)
    cls(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_encoder_dir(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("encoder", tokenizer_dir, tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("classifier", tokenizer_dir, tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="session")
def tiny_trained_dir(tiny_encoder_dir: Path, train_split: Split,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-hidden-layer head trained (ERM, a few epochs) on the tiny encoder."""
    from shiftbench.runner import Runner
    from shiftbench.train.mitigations import ERM
    from shiftbench.train.trainer import TrainConfig, train_head

    folder = tmp_path_factory.mktemp("tiny-trained")
    runner = Runner(device="cpu", progress=False)
    try:
        train_head(train_split, folder, runner, ERM(), TrainConfig(hidden=8, max_epochs=3),
                   encoder=str(tiny_encoder_dir))
    finally:
        runner.close()
    return folder


def resave(folder: Path, json_name: str, change) -> None:
    """Re-save a saved folder after ``change(meta, arrays)``, with fresh checksums: a
    hand-made folder that passes its checksums, to test the checks behind them."""
    import json

    import numpy as np

    from shiftbench.cache import write_saved

    meta = json.loads((folder / json_name).read_text(encoding="utf-8"))
    del meta["format"], meta["checksum"]
    with np.load(folder / "arrays.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    change(meta, arrays)
    write_saved(folder, json_name, meta, arrays)


def write_data_file(frame, path: Path) -> Path:
    """``frame`` (a pandas DataFrame) written as the file format ``path``'s suffix names."""
    from shiftbench.file_formats import file_format

    kind = file_format(path)
    if kind == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if kind == "tsv" else ",")
    return path


def build_tiny_causal_lm(directory: Path, seed: int = 0) -> Path:
    """Save a random tiny LlamaForCausalLM with a byte-level BPE tokenizer (GPT-2 style:
    a leading space belongs to the next word) trained on generated sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus, _ = make_labelled(2000, seed=0)
    tok.train_from_iterator(corpus, BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", model_max_length=128)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def bpe_tokenizer(corpus: list[str], max_length: int, vocab_size: int = 200):
    """A BPE tokenizer (trained on ``corpus``) that appends </s>, as T5's and Marian's do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus, BpeTrainer(vocab_size=vocab_size,
                                               special_tokens=["<pad>", "</s>", "<unk>"]))
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=max_length)


def build_tiny_generator(kind: str, directory: Path, seed: int = 0) -> Path:
    """Save a random 1-layer T5 ("seq2seq") or GPT-2 ("causal") with a BPE tokenizer trained
    on generated sentences. ``initializer_factor`` / ``initializer_range`` well above the
    defaults make outputs depend on the input (a mix-up of order shows)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    corpus, _ = make_labelled(500, seed=3)
    tokenizer = bpe_tokenizer(corpus, MAX_POSITIONS)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(seed)
    if kind == "seq2seq":
        config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                          num_decoder_layers=1, num_heads=2, pad_token_id=pad, eos_token_id=eos,
                          decoder_start_token_id=pad, initializer_factor=8.0)
        model = T5ForConditionalGeneration(config)
    else:
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2,
                            n_positions=MAX_POSITIONS * 2, pad_token_id=pad, eos_token_id=eos,
                            bos_token_id=eos, initializer_range=0.5)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_generator("seq2seq", tmp_path_factory.mktemp("tiny-seq2seq"))


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole session (tests/browser.py); skips without it."""
    from browser import launched

    with launched() as browser:
        yield browser
