"""Seeding speed: `seed_logs`' rows/s beside clickhouse-client inserting the same rows as JSONEachRow.

    .venv/bin/python bench/seed.py [--rows 1000000]

The native figure excludes generating the rows (they are written to a file first), so the ratio
is how close generating + inserting in Python comes to the server's own loader.
"""

import argparse
import json
import subprocess
import tempfile
import uuid

from common import setup_django, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    database = setup_django()

    from strix import logstore
    from strix.fractals.demo import generate_rows
    from strix.fractals.seeding import seed_fractal_rows

    logstore.ensure_schema()
    results: dict[str, float] = {}
    try:
        with timed(results, "ours"):
            seed_fractal_rows(str(uuid.uuid4()), args.rows, days=30, seed=1)

        with tempfile.NamedTemporaryFile("w", suffix=".ndjson") as ndjson:
            native_fractal = str(uuid.uuid4())
            for ts, log_id, raw, fields, ingest in generate_rows(args.rows, days=30, seed=1):
                record = {
                    "fractal_id": native_fractal,
                    "timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"),
                    "log_id": log_id,
                    "raw_log": raw,
                    "fields": fields,
                    "ingest_timestamp": ingest.strftime("%Y-%m-%d %H:%M:%S"),
                }
                ndjson.write(json.dumps(record, ensure_ascii=False) + "\n")
            ndjson.flush()
            with open(ndjson.name, "rb") as source, timed(results, "native"):
                subprocess.run(
                    ["clickhouse-client", "-q", f"INSERT INTO {database}.logs FORMAT JSONEachRow"],
                    stdin=source,
                    check=True,
                )
        assert logstore.count_rows(native_fractal) == args.rows
    finally:
        logstore.drop_database(database)

    ours = args.rows / results["ours"]
    native = args.rows / results["native"]
    print(f"rows={args.rows:,}")
    print(f"seed_logs (generate + insert, Python): {results['ours']:.2f}s  {ours:,.0f} rows/s")
    print(f"clickhouse-client JSONEachRow insert:  {results['native']:.2f}s  {native:,.0f} rows/s")
    print(f"seed_rows_per_s={ours:.0f} native_rows_per_s={native:.0f} seed_vs_native={ours / native:.2f}")


if __name__ == "__main__":
    main()
