"""Regenerate the committed test vectors of the current format version (only when it changes).

.venv/bin/python tests/vectors/make_vectors.py

Files named ``*-v1.*`` were written by the format version 1 writer of release 0.1 and are kept as
they are: readers must go on reading them.
"""

import base64
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from strix.crypto.container import ContainerWriter  # noqa: E402
from strix.crypto.keys import Keyring  # noqa: E402


def record(i: int) -> bytes:
    row = {
        "timestamp": f"2026-11-0{1 + i % 9} 10:{i % 60:02d}:00",
        "raw_log": f"<38>Nov  1 10:00:00 web-01 sshd[{1000 + i}]: Failed password for zoë from 10.0.0.{i % 250}",
        "log_id": f"{i:032x}",
        "fields": json.dumps({"user": "zoë", "n": i}, ensure_ascii=False),
        "ingest_timestamp": f"2026-11-0{1 + i % 9} 10:{i % 60:02d}:01",
    }
    return (json.dumps(row, ensure_ascii=False) + "\n").encode()


def days_of(plain: bytes) -> dict[str, bytes]:
    days: dict[str, bytes] = {}
    for line in plain.splitlines(keepends=True):
        day = json.loads(line)["timestamp"][:10]
        days[day] = days.get(day, b"") + line
    return days


VECTORS = {
    "archive-days-v2": (
        "archive",
        {
            "fractal_id": "6f1c1f3e-7d1a-4c39-9f7e-3b0a2f1d9c11",
            "fractal_name": "soc-production",
            "time_start": "2026-11-01T10:00:00Z",
            "time_end": "2026-11-09T10:59:00Z",
        },
        b"".join(sorted((record(i) for i in range(400)), key=lambda r: json.loads(r)["timestamp"])),
        512,
    ),
    "backup-small-v2": (
        "backup",
        {"database": "strix", "postgres_version": "15.19"},
        b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x00\x00\x00stand-in for a pg_dump custom-format stream\n" * 3,
        1024 * 1024,
    ),
}


def main():
    for name, (kind, metadata, plain, chunk_size) in VECTORS.items():
        key = base64.b64encode(bytes(range(32)) if kind == "archive" else bytes(range(32, 64))).decode()
        with open(HERE / f"{name}.strix", "wb") as sink:
            writer = ContainerWriter(
                sink, Keyring.from_values(key), kind, metadata, app_version="0.2.0", chunk_size=chunk_size
            )
            if kind == "archive":
                for day, rows in days_of(plain).items():  # one segment per UTC day, as archives are written
                    writer.begin_segment(day)
                    writer.write(rows)
            else:
                writer.write(plain)
            writer.close()
        (HERE / f"{name}.key").write_text(key + "\n")
        (HERE / f"{name}.plain").write_bytes(plain)
        print(f"{name}: {(HERE / f'{name}.strix').stat().st_size} bytes")


if __name__ == "__main__":
    main()
