"""`shiftbench gate`: parse arguments here, import the statistics only when the gate runs.

Each side (baseline, candidate) is a finished run directory or a model spec; model specs
are run on the suite first (the runner's cache makes a re-run cheap). Exit codes carry
the verdict: 0 pass (warnings included), 1 fail, 2 error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from shiftbench.errors import ShiftbenchError
from shiftbench.run import add_run_arguments, check_limit, run_options


def add_gate_parser(subparsers: argparse._SubParsersAction) -> None:
    gate = subparsers.add_parser(
        "gate", help="pass/fail a candidate model against a baseline under a policy",
        description="Decide with paired statistics whether a candidate is at least as robust "
                    "as the baseline under POLICY. Give each side as a run directory "
                    "(--baseline / --candidate) or as a model spec run on a suite "
                    "(--baseline-model / --candidate-model with --suite or the policy's "
                    "suite). Writes gate.json, junit.xml, gate.md and examples.html (the "
                    "examples behind each failed check). Exit 0: pass (warnings allowed), "
                    "1: fail, 2: error.")
    gate.add_argument("policy", type=Path, help="policy YAML, e.g. suites/amazon-domains.gate.yaml")
    for side in ("baseline", "candidate"):
        group = gate.add_mutually_exclusive_group()
        group.add_argument(f"--{side}", type=Path, metavar="RUN_DIR",
                           help=f"finished run of the {side} model (reports/<suite>/<run id>)")
        group.add_argument(f"--{side}-model", metavar="SPEC",
                           help=f"{side} model spec as in `run`: run it on the suite first")
    gate.add_argument("--suite", type=Path,
                      help="suite to run model specs on (default: the policy's suite)")
    gate.add_argument("--out", type=Path,
                      help="folder for gate.json, junit.xml, gate.md and examples.html "
                           "(default: <candidate run>/gate)")
    runs = gate.add_argument_group("run options (model specs only; as in `run`)")
    add_run_arguments(runs)


def cmd_gate(args: argparse.Namespace) -> int:
    """Gate, write gate.json / junit.xml / gate.md, print the table; 0 pass, 1 fail."""
    from shiftbench.gate import gate_runs
    from shiftbench.gate.outputs import table, write_outputs
    from shiftbench.paths import check_writable

    for side in ("baseline", "candidate"):
        if getattr(args, side) is None and getattr(args, f"{side}_model") is None:
            raise ShiftbenchError(f"missing {side}: give --{side} RUN_DIR or --{side}-model SPEC")
    if args.out is not None:
        check_writable(args.out)  # before running any model
    baseline, candidate = args.baseline, args.candidate
    if args.baseline_model or args.candidate_model:
        baseline, candidate = _run_models(args)
    result, examples = gate_runs(args.policy, baseline, candidate)
    paths = write_outputs(result, args.out or candidate / "gate", examples,
                          check_limit(args.failures_inline, "--failures-inline"))
    print(table(result))
    print("\n" + "\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    return result.exit_code


def _run_models(args: argparse.Namespace) -> tuple[Path, Path]:
    """Run the model specs on the suite (rules and given runs checked against it first)
    -> run dirs."""
    from shiftbench.config import load_suite
    from shiftbench.gate import check_before_running, policy_suite
    from shiftbench.gate.policy import load_policy
    from shiftbench.run import run_suite

    policy = load_policy(args.policy)
    named = policy_suite(policy, args.policy)
    suite = args.suite or named
    if suite is None:
        raise ShiftbenchError("--suite: model specs need a suite to run on (or a suite: field "
                              f"in {args.policy})")
    if named is not None and load_suite(suite).spec_hash() != load_suite(named).spec_hash():
        raise ShiftbenchError(f"--suite: {suite} is not the suite {args.policy} gates ({named})")
    options = run_options(args)
    check_before_running(policy, args.policy, suite,
                         {side: getattr(args, side) for side in ("baseline", "candidate")
                          if getattr(args, side) is not None}, options.limit)
    dirs = {}
    for side in ("baseline", "candidate"):
        spec = getattr(args, f"{side}_model")
        if spec is None:
            dirs[side] = getattr(args, side)
            continue
        same = side == "candidate" and spec == args.baseline_model
        run_id = f"{dirs['baseline'].name}-candidate" if same else None
        dirs[side] = run_suite(suite, spec, replace(options, run_id=run_id))
        print(f"{side}: {dirs[side]}", file=sys.stderr)
    return dirs["baseline"], dirs["candidate"]
