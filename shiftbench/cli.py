"""Command line: parses arguments before any heavy import, so `--help` is instant."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from shiftbench import __version__
from shiftbench.errors import ShiftbenchError
from shiftbench.gate.cli import add_gate_parser, cmd_gate
from shiftbench.monitor.cli import add_monitor_parser, cmd_monitor
from shiftbench.paths import inside
from shiftbench.run import (
    add_failures_inline,
    add_run_arguments,
    add_suite_arguments,
    check_limit,
    run_options,
)
from shiftbench.runtime import runtime_options

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
    add_run_arguments(run)
    run.add_argument("--run-id", help="name of the report folder (default: time + model)")

    report = commands.add_parser("report", help="re-render summary.md and report.html of a run")
    report.add_argument("run_dir", type=Path)
    add_failures_inline(report)

    compare = commands.add_parser(
        "compare", help="runs of one suite side by side: metric per split, robustness "
                        "summary, significant differences (compare.html, .md, .json)")
    compare.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                         help="a finished run's folder (reports/<suite>/<run id>); two or more")
    compare.add_argument("--out", type=Path, metavar="DIR",
                         help="output folder (default: 'compare' beside the first run)")

    ls = commands.add_parser("ls", help="list every kind of component (shifts, model adapters, "
                                        "detectors, ...) and the suites")
    ls.add_argument("--suites-dir", type=Path, default=Path("suites"))

    add_monitor_parser(commands)
    add_gate_parser(commands)
    add_mitigate_parser(commands)
    return parser


def add_mitigate_parser(commands) -> None:
    mitigate = commands.add_parser(
        "mitigate", help="retrain the base model with a method (erm, dann, ...) and compare "
                         "it with the base and ERM on the same suite")
    mitigate.add_argument("suite", type=Path)
    mitigate.add_argument("--model", required=True,
                          help="the base model: probe | probe:<encoder dir or hub id> (a new "
                               "head on the frozen encoder) | hf:<dir or hub id> | a model YAML "
                               "of those (fine-tuned end to end)")
    mitigate.add_argument("--method", required=True, help="erm | dann | ... (shiftbench ls)")
    mitigate.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          help="a parameter of the method or the trainer (lr, hidden, "
                               "max_epochs, ...); repeat the flag for several")
    mitigate.add_argument("--seeds", type=int, default=3, help="models trained per method")
    mitigate.add_argument("--target", action="append", default=[], metavar="SPLIT",
                          help="a domain split of the suite whose rows (half, labels unused) "
                               "are the unlabelled target; repeat for several (default: all "
                               "domain splits)")
    mitigate.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                          help="search a parameter of the method or the trainer: every "
                               "combination of the grids is trained per seed and one is kept "
                               "(--select); repeat for several")
    mitigate.add_argument("--select", help="how a grid's combination is kept, without target "
                                           "labels: source (lowest source validation loss, the "
                                           "default) | dev (Deep Embedded Validation)")
    mitigate.add_argument("--out", type=Path,
                          help="report and models folder (default: "
                               "<reports-dir>/<suite>/mitigate-<method>)")
    mitigate.add_argument("--policy", type=Path,
                          help="a gate policy: its verdict on each mitigated model vs the base")
    add_suite_arguments(mitigate)
    add_failures_inline(mitigate)


def cmd_run(args: argparse.Namespace) -> int:
    from shiftbench.run import run_suite

    run_dir = run_suite(args.suite, args.model, run_options(args, run_id=args.run_id))
    print((run_dir / "summary.md").read_text(encoding="utf-8"))
    print(f"report: {run_dir / 'report.html'}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from shiftbench.report import render

    render(args.run_dir, check_limit(args.failures_inline, "--failures-inline"))
    print(f"report: {args.run_dir / 'report.html'}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from shiftbench.compare import HTML_FILE, MARKDOWN_FILE, compare_runs

    folder = compare_runs(args.run_dirs, args.out)
    print((folder / MARKDOWN_FILE).read_text(encoding="utf-8"))
    print(f"report: {folder / HTML_FILE}")
    return EXIT_OK


def first_paragraph(text: str | None) -> str:
    """A docstring's or description's first paragraph, whole, on one line."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def cmd_ls(args: argparse.Namespace) -> int:
    from shiftbench.registry import REGISTRIES
    from shiftbench.suite_splits import load_valid_suite

    for registry in REGISTRIES:
        print(f"{registry.kind}s:")
        for name in registry.names():
            print(f"  {name:<16} {first_paragraph(registry.load(name).__doc__)}")
    print(f"suites ({args.suites_dir}):")
    for path in sorted(args.suites_dir.glob("*.yaml")):
        if path.name.endswith(".gate.yaml"):
            continue
        try:
            print(f"  {path.name:<24} {first_paragraph(load_valid_suite(path).description)}")
        except ShiftbenchError as exc:
            print(f"  {path.name:<24} INVALID: {exc}")
    return EXIT_OK


def cmd_mitigate(args: argparse.Namespace) -> int:
    from shiftbench.mitigate import MitigateOptions, mitigate
    from shiftbench.suite_splits import load_valid_suite

    out = args.out
    if out is None:
        out = inside(args.reports_dir, load_valid_suite(args.suite).name,
                     f"mitigate-{args.method}")
    folder = mitigate(args.suite, args.model, MitigateOptions(
        args.method, args.param, args.seeds, out,
        runtime_options(args, args.reports_dir), args.data_dir, args.limit, args.policy,
        args.target, args.grid, args.select,
        check_limit(args.failures_inline, "--failures-inline")))
    print((folder / "mitigate.md").read_text(encoding="utf-8"))
    print(f"report: {folder / 'mitigate.json'}")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "report": cmd_report, "compare": cmd_compare, "ls": cmd_ls,
            "monitor": cmd_monitor, "gate": cmd_gate, "mitigate": cmd_mitigate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ShiftbenchError as exc:
        print(f"shiftbench: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a full disk, a folder without permission: the user's to fix
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"shiftbench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("shiftbench: interrupted; finished work is cached, run again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # exit 1 means drift / a failed gate: a crash must not look like one
        traceback.print_exc()
        print("shiftbench: error: unexpected failure (traceback above); no verdict",
              file=sys.stderr)
        return EXIT_ERROR
