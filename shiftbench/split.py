"""Split: the unit every job works on (ids, texts, labels, where it came from), and the
hashes that make sampling and per-example randomness the same in every process."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any


def _hash64(*parts: object) -> int:
    """A 64-bit number from the parts, the same in every process (unlike ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) from the parts, the same in every process."""
    return _hash64(*parts) / 2**64


def example_seed(seed: int, key: str, example_id: str) -> int:
    """A 63-bit seed for one example of one job (a shift's key, an evaluation's purpose),
    the same in every process: randomness never depends on order, batches or process."""
    return _hash64(seed, key, example_id) >> 1


def sample_indices(ids: Sequence[str], seed: int, limit: int) -> list[int]:
    """Positions of a seeded sample of at most ``limit`` ids, in their original order."""
    if len(ids) <= limit:
        return list(range(len(ids)))
    order = sorted(range(len(ids)), key=lambda k: unit_hash(seed, ids[k]))
    return sorted(order[:limit])


@dataclass(frozen=True)
class Split:
    """A named set of examples.

    A shifted split keeps each example's original id, so metrics on it pair with the
    reference by id. ``info`` says what the split is (kind, shift, severity, source);
    ``metadata`` holds the source's extra columns (the suite's ``data.metadata``), one value
    per example (None where missing); ``targets`` are the reference outputs of a generation
    task (e.g. a review's title), aligned with ids; a shift changes the input texts only,
    never the targets.
    """

    name: str
    ids: list[str]
    texts: list[str]
    labels: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, list[str | None]] = field(default_factory=dict)  # column -> values
    targets: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.texts) != n:
            raise ValueError(f"split {self.name!r}: {n} ids but {len(self.texts)} texts")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"split {self.name!r}: {len(self.labels)} labels for {n} ids")
        for column, values in self.metadata.items():
            if len(values) != n:
                raise ValueError(f"split {self.name!r}: {len(values)} values of {column!r} "
                                 f"for {n} ids")
        if self.targets is not None and len(self.targets) != n:
            raise ValueError(f"split {self.name!r}: {len(self.targets)} targets for {n} ids")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"split {self.name!r}: example ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int]) -> Split:
        """The examples at ``indices`` (ids, texts, labels, metadata and targets stay
        aligned)."""
        return replace(self, ids=[self.ids[k] for k in indices],
                       texts=[self.texts[k] for k in indices],
                       labels=None if self.labels is None else [self.labels[k] for k in indices],
                       metadata={column: [values[k] for k in indices]
                                 for column, values in self.metadata.items()},
                       targets=None if self.targets is None
                       else [self.targets[k] for k in indices])

    def derive(self, name: str, texts: list[str], **info: Any) -> Split:
        """The same examples (ids, labels, metadata, targets) with new texts: how a
        perturbation is made."""
        return replace(self, name=name, texts=list(texts), info=info)
