"""Command line: parses arguments before any heavy import, so `--help` is instant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shiftbench import __version__
from shiftbench.errors import ShiftbenchError

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftbench",
        description="Measure what distribution shift costs a text model.",
    )
    parser.add_argument("--version", action="version", version=f"shiftbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a benchmark suite against a model")
    run.add_argument("suite", type=Path, help="suite YAML file, e.g. suites/quickstart.yaml")
    run.add_argument("--model", required=True,
                     help="probe | probe:<encoder dir or hub id> | hf:<dir or hub id> | "
                          "sklearn:tfidf | sklearn:<file.skops> | <model.yaml>")
    run.add_argument("--data-dir", type=Path, help="resolve the suite's relative data paths here")
    run.add_argument("--limit", type=int, help="at most this many examples per evaluated split")
    run.add_argument("--reports-dir", type=Path, default=Path("reports"))
    run.add_argument("--cache-dir", type=Path,
                     help="prediction/embedding cache (default: <reports-dir>/.cache)")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--run-id", help="name of the report folder (default: time + model)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--no-movement", action="store_true",
                     help="skip measuring how far each shift moved the text (MiniLM + chrF)")

    report = commands.add_parser("report", help="re-render summary.md and report.html of a run")
    report.add_argument("run_dir", type=Path)

    ls = commands.add_parser("ls", help="list shifts, model adapters and suites")
    ls.add_argument("--suites-dir", type=Path, default=Path("suites"))
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from shiftbench.pipeline import RunOptions, run_suite

    if args.limit is not None and args.limit <= 0:
        raise ShiftbenchError("--limit must be a positive number")
    if args.batch_size <= 0:
        raise ShiftbenchError("--batch-size must be a positive number")
    options = RunOptions(
        reports_dir=args.reports_dir, cache_dir=args.cache_dir, data_dir=args.data_dir,
        limit=args.limit, device=args.device, precision=args.precision,
        batch_size=args.batch_size, run_id=args.run_id,
        progress=False if args.no_progress else None, movement=not args.no_movement,
    )
    run_dir = run_suite(args.suite, args.model, options)
    print((run_dir / "summary.md").read_text(encoding="utf-8"))
    print(f"report: {run_dir / 'report.html'}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from shiftbench.report import render

    render(args.run_dir)
    print(f"report: {args.run_dir / 'report.html'}")
    return EXIT_OK


def _first_line(text: str | None) -> str:
    return ((text or "").strip().splitlines() or [""])[0]


def cmd_ls(args: argparse.Namespace) -> int:
    from shiftbench.config import load_suite
    from shiftbench.registry import MODELS, SHIFTS

    for title, registry in (("shifts", SHIFTS), ("model adapters", MODELS)):
        print(f"{title}:")
        for name in registry.names():
            print(f"  {name:<16} {_first_line(registry.load(name).__doc__)}")
    print(f"suites ({args.suites_dir}):")
    for path in sorted(args.suites_dir.glob("*.yaml")):
        if path.name.endswith(".gate.yaml"):
            continue
        try:
            print(f"  {path.name:<24} {_first_line(load_suite(path).description)}")
        except ShiftbenchError as exc:
            print(f"  {path.name:<24} INVALID: {exc}")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "report": cmd_report, "ls": cmd_ls}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ShiftbenchError as exc:
        print(f"shiftbench: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("shiftbench: interrupted; finished work is cached, run again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
