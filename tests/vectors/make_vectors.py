"""Regenerate the committed test vectors of the current format version (only when it changes).

.venv/bin/python tests/vectors/make_vectors.py

Files named ``*-v1.*`` and ``*-v2.*`` were written by the writers of releases 0.1 and 0.2 and are
kept as they are: readers must go on reading them. Files named ``refused-*`` are negative vectors (docs/FORMAT.md,
"Test vectors"): sealed with their key, each breaks one rule, and every reader must refuse it.
"""

import base64
import json
import sys
from datetime import date, timedelta
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from strix.crypto.container import ContainerWriter  # noqa: E402
from strix.crypto.keys import Keyring  # noqa: E402


def record(i: int) -> bytes:
    """One archive record as ClickHouse's JSONEachRow writes it: these keys in this order, no spaces."""
    row = {
        "timestamp": f"2026-11-0{1 + i % 9} 10:{i % 60:02d}:00",
        "raw_log": f"<38>Nov  1 10:00:00 web-01 sshd[{1000 + i}]: Failed password for zoë from 10.0.0.{i % 250}",
        "log_id": f"{i:032x}",
        "fields": json.dumps({"user": "zoë", "n": i}, ensure_ascii=False, separators=(",", ":")),
        "ingest_timestamp": f"2026-11-0{1 + i % 9} 10:{i % 60:02d}:01",
    }
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def days_of(plain: bytes) -> dict[str, bytes]:
    days: dict[str, bytes] = {}
    for line in plain.splitlines(keepends=True):
        day = json.loads(line)["timestamp"][:10]
        days[day] = days.get(day, b"") + line
    return days


VECTORS = {
    "archive-days-v3": (
        "archive",
        {
            "fractal_id": "6f1c1f3e-7d1a-4c39-9f7e-3b0a2f1d9c11",
            "fractal_name": "soc-production",
            "time_start": "2026-11-01T10:00:00Z",
            "time_end": "2026-11-09T10:59:00Z",
            "archive_id": "0b6f2c1e-5a43-4f7e-9c2d-8e1f3a5b7c90",
        },
        b"".join(sorted((record(i) for i in range(400)), key=lambda r: json.loads(r)["timestamp"])),
        512,
    ),
    "backup-small-v3": (
        "backup",
        {"database": "strix", "postgres_version": "15.19"},
        b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x00\x00\x00stand-in for a pg_dump custom-format stream\n" * 3,
        1024 * 1024,
    ),
}


ARCHIVE_KEY = base64.b64encode(bytes(range(32))).decode()
ARCHIVE_ROWS = VECTORS["archive-days-v3"][2]
ARCHIVE_METADATA = VECTORS["archive-days-v3"][1]


def write(name: str, kind: str, metadata: dict, chunk_size: int, key: str, fill) -> None:
    """Write vector ``name``: ``fill(writer)`` writes its content."""
    with open(HERE / f"{name}.strix", "wb") as sink:
        writer = ContainerWriter(
            sink, Keyring.from_values(key), kind, metadata, app_version="0.2.0", chunk_size=chunk_size
        )
        fill(writer)
        writer.close()
    (HERE / f"{name}.key").write_text(key + "\n")
    print(f"{name}: {(HERE / f'{name}.strix').stat().st_size} bytes")


def by_day(rows: bytes, shift: int = 0):
    """Fill an archive one segment per UTC day, each labelled ``shift`` days off its rows' day."""

    def fill(writer):
        for day, lines in days_of(rows).items():
            label = (date.fromisoformat(day) + timedelta(days=shift)).isoformat()
            writer.begin_segment(label)
            writer.write(lines)

    return fill


def without_checksums(writer) -> None:
    """zstd frames without their content checksum (a writer bug the format refuses)."""
    writer._compressor = zstandard.ZstdCompressor(level=3, write_checksum=False)
    by_day(ARCHIVE_ROWS)(writer)


def oversize_frames(writer) -> None:
    """Data frames of 4,096 bytes in a file whose header says 512: larger than its chunk size."""
    writer._chunk_size = 4096
    by_day(ARCHIVE_ROWS)(writer)


# Each breaks one rule of docs/FORMAT.md ("Test vectors"); the content is the valid archive's.
REFUSED = {
    "refused-nesting-v3": ({**ARCHIVE_METADATA, "note": json.loads("[" * 6 + "]" * 6)}, by_day(ARCHIVE_ROWS)),
    "refused-day-label-v3": (ARCHIVE_METADATA, by_day(ARCHIVE_ROWS, shift=1)),
    "refused-no-checksum-v3": (ARCHIVE_METADATA, without_checksums),
    "refused-oversize-frame-v3": (ARCHIVE_METADATA, oversize_frames),
}


def main():
    for name, (kind, metadata, plain, chunk_size) in VECTORS.items():
        key = ARCHIVE_KEY if kind == "archive" else base64.b64encode(bytes(range(32, 64))).decode()
        fill = by_day(plain) if kind == "archive" else (lambda writer, plain=plain: writer.write(plain))
        write(name, kind, metadata, chunk_size, key, fill)
        (HERE / f"{name}.plain").write_bytes(plain)
    for name, (metadata, fill) in REFUSED.items():
        write(name, "archive", metadata, 512, ARCHIVE_KEY, fill)


if __name__ == "__main__":
    main()
