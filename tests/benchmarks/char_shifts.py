"""Character shifts on long texts: seconds per text, the shifts as they are beside nlpaug's
own ``augment`` (the path they ran before making their own edits), in the same run.

    python tests/benchmarks/char_shifts.py [--sizes 10000,100000] [--severity 5]
        [--old-max 100000]

Texts per size n: one token of n base64 characters (a scraped blob), and n characters of
5-letter words (many words). nlpaug's edit loops are quadratic in a word's length (and,
less steeply, in the number of words), so its time grows ~4x per doubling of n; the
shifts' own edits grow ~2x. Both give the same text (checked). ``--old-max`` skips the
nlpaug path above that size (~20 s a text at 100,000 characters).
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout's shiftbench and tests

from test_shifts import CHAR_LEVEL, make, nlpaug_augment  # noqa: E402

BASE64 = string.ascii_letters + string.digits + "+/"


def texts(n: int) -> dict[str, str]:
    """The two texts of ``n`` characters timed per size."""
    rng = random.Random(n)
    words = " ".join("".join(rng.choices(string.ascii_lowercase, k=5)) for _ in range(n // 6))
    return {"token": "".join(rng.choices(BASE64, k=n)), "words": words}


def seconds(perturb, text: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = perturb(text, random.Random(0))
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--severity", type=int, default=5)
    parser.add_argument("--old-max", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{'shift':16} {'text':6} {'chars':>8} {'now s':>8} {'nlpaug s':>9} {'speed-up':>8}")
    for name in CHAR_LEVEL:
        shift = make(name, args.severity)
        old = nlpaug_augment(shift)
        shift.perturb("warm up", random.Random(0))
        for n in map(int, args.sizes.split(",")):
            for kind, text in texts(n).items():
                now, out = seconds(shift.perturb, text)
                if n > args.old_max:
                    print(f"{name:16} {kind:6} {n:8} {now:8.3f} {'-':>9} {'-':>8}")
                    continue
                then, old_out = seconds(old, text)
                assert out == old_out, (name, kind, n)
                print(f"{name:16} {kind:6} {n:8} {now:8.3f} {then:9.3f} {then / now:7.0f}x",
                      flush=True)


if __name__ == "__main__":
    main()
