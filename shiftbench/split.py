"""Split: the unit every job works on (ids, texts, labels, where it came from)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Split:
    """A named set of examples.

    A shifted split keeps each example's original id, so metrics on it pair with the
    reference by id. ``info`` says what the split is (kind, shift, severity, source).
    """

    name: str
    ids: list[str]
    texts: list[str]
    labels: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.texts) != n:
            raise ValueError(f"split {self.name!r}: {n} ids but {len(self.texts)} texts")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"split {self.name!r}: {len(self.labels)} labels for {n} ids")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"split {self.name!r}: example ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def derive(self, name: str, texts: list[str], **info: Any) -> Split:
        """The same examples (ids, labels) with new texts: how a perturbation is made."""
        return replace(self, name=name, texts=list(texts), info=info)
