"""``shiftbench`` with one more model plug-in, ``hashed``, for tests that run the monitor
service as a real process: words hashed into a few counts embed a text in microseconds,
so the process starts in about a second (no torch, no skops, no weights).

Run as ``python tests/serve_harness.py monitor serve --model hashed ...``: the CLI is
the real one; only the registry holds one more adapter, as an installed plug-in would.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftbench.models import ModelAdapter, digest


class HashedWords(ModelAdapter):
    """Each word adds 1 to coordinate crc32(word) mod ``dims``; "great" means positive."""

    adapter = "hashed"

    def __init__(self, dims: int = 16) -> None:
        self.dims = dims

    def _read_classes(self) -> list[str]:
        return ["negative", "positive"]

    def fingerprint(self) -> str:
        return digest(self.adapter, {"dims": self.dims})

    def embed(self, texts: Sequence[str], runner: Any) -> np.ndarray:
        """Through the runner and its cache, as the real adapters embed."""
        return runner.map(f"{self.fingerprint()}/embed", texts, self._counts, desc="embed")

    def _counts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dims), np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, zlib.crc32(word.encode()) % self.dims] += 1
        return out

    def predict_proba(self, texts: Sequence[str], runner: Any) -> np.ndarray:
        positive = np.array([0.9 if "great" in t else 0.2 for t in texts])
        return np.stack([1 - positive, positive], axis=1)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "dims": self.dims}


if __name__ == "__main__":
    from shiftbench.cli import main
    from shiftbench.registry import MODELS

    MODELS.register("hashed", "serve_harness:HashedWords")
    sys.exit(main())
