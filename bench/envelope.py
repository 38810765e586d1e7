"""Container speed and memory: compress+encrypt a generated NDJSON file, beside
`zstd -3 -T2 | openssl enc -aes-256-ctr` on the same file in the same run.

    .venv/bin/python bench/envelope.py [--gb 1]

Our side runs in a child process so that its peak RSS is its own.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, peak_rss_mb

BLOCK = 1024 * 1024


def make_ndjson(path: Path, size: int) -> None:
    """Realistic rows: 64 MiB generated, then repeated (far beyond zstd's window at level 3)."""
    sys.path.insert(0, str(ROOT))
    import json

    from strix.fractals.demo import generate_rows

    pattern = bytearray()
    for ts, log_id, raw, fields, ingest in generate_rows(200_000, days=30, seed=3):
        row = {
            "timestamp": f"{ts:%Y-%m-%d %H:%M:%S}",
            "raw_log": raw,
            "log_id": log_id,
            "fields": fields,
            "ingest_timestamp": f"{ingest:%Y-%m-%d %H:%M:%S}",
        }
        pattern += (json.dumps(row) + "\n").encode()
        if len(pattern) >= 64 * BLOCK:
            break
    with open(path, "wb") as out:
        written = 0
        while written < size:
            piece = bytes(pattern[: size - written])
            out.write(piece)
            written += len(piece)


def encrypt_child(path: str) -> None:
    """Child mode: stream the file through the container into /dev/null."""
    sys.path.insert(0, str(ROOT))
    from strix.crypto.container import ContainerWriter
    from strix.crypto.keys import Keyring, generate_key

    started = time.perf_counter()
    with open(path, "rb") as source, open(os.devnull, "wb") as sink:
        writer = ContainerWriter(sink, Keyring.from_values(generate_key()), "backup", {}, threads=2)
        while block := source.read(BLOCK):
            writer.write(block)
        writer.close()
    print(time.perf_counter() - started, round(peak_rss_mb()))


def run_ours(path: Path) -> tuple[float, int]:
    """Seconds spent encrypting (the interpreter's start-up excluded, as in a running worker), peak RSS."""
    result = subprocess.run(
        [sys.executable, __file__, "--encrypt-child", str(path)], capture_output=True, text=True, check=True
    )
    seconds, rss = result.stdout.split()
    return float(seconds), int(rss)


def run_native(path: Path) -> float:
    key, iv = os.urandom(32).hex(), os.urandom(16).hex()
    started = time.perf_counter()
    subprocess.run(
        f"zstd -3 -T2 -q -c {path} | openssl enc -aes-256-ctr -K {key} -iv {iv} > /dev/null",
        shell=True,
        check=True,
    )
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0, help="size of the large input (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is kept (default 3)")
    parser.add_argument("--encrypt-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encrypt_child:
        encrypt_child(args.encrypt_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "100mb.ndjson", Path(tmp) / "large.ndjson"
        make_ndjson(small, 100 * BLOCK)
        make_ndjson(large, int(args.gb * 1024 * BLOCK))
        _, rss_small = run_ours(small)
        ours_runs, native_runs = [], []
        for _ in range(args.repeat):  # interleaved, so that both sides see the same machine
            ours_runs.append(run_ours(large))
            native_runs.append(run_native(large))
        ours_time, rss_large = min(t for t, _ in ours_runs), max(rss for _, rss in ours_runs)
        native_time = min(native_runs)
    mb = args.gb * 1024
    ours_rate, native_rate = mb / ours_time, mb / native_time
    print(f"input: {mb:.0f} MiB NDJSON, best of {args.repeat} interleaved runs")
    print(f"ours   (zstd-3 threads=2 + AES-256-GCM chunks): {ours_time:6.2f}s {ours_rate:7.1f} MiB/s")
    print(f"native (zstd -3 -T2 | openssl aes-256-ctr):     {native_time:6.2f}s {native_rate:7.1f} MiB/s")
    print(f"peak RSS: {rss_small} MiB for 100 MiB input, {rss_large} MiB for {mb:.0f} MiB input")
    print(f"envelope_vs_native={ours_rate / native_rate:.2f} rss_100mb={rss_small} rss_1gb={rss_large}")


if __name__ == "__main__":
    main()
