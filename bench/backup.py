"""PostgreSQL backup and restore beside the native tools, on the same ~500 MB database in the same run.

    .venv/bin/python bench/backup.py [--mb 500]

ours:   manage.py backup / restore's services (pg_dump -Fc -Z0 → zstd-3 + AES-256-GCM container; restore
        streams the file into pg_restore --single-transaction in one pass, authenticating as it goes and
        holding back the last block until the whole file has authenticated)
native: pg_dump -Fc -Z0 | zstd -3 -T2 | openssl enc -aes-256-ctr (the fair native: no zlib, zstd on both
        cores), and openssl -d | zstd -d | pg_restore (same flags); also pg_dump -Fc (zlib) | zstd -3 | openssl,
        the one-liner operators often write
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

BENCH_DB = "strix_bench_backup"
PG = ["-h", "127.0.0.1", "-U", "postgres"]


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", *PG, "-d", database, "-tAc", sql], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_database(megabytes: int) -> int:
    psql(f"DROP DATABASE IF EXISTS {BENCH_DB}")
    psql(f"CREATE DATABASE {BENCH_DB}")
    rows = megabytes * 1_000_000 // 330  # ~330 bytes a row on disk with its index
    psql(
        "CREATE TABLE events (id bigserial PRIMARY KEY, created timestamptz, host text, message text, "
        "attrs jsonb); "
        f"INSERT INTO events (created, host, message, attrs) SELECT now() - (g || ' seconds')::interval, "
        "'host-' || (g % 97), md5(g::text) || ' ' || md5((g * 7)::text) || ' login failure for user ' || (g % 1013), "
        f"jsonb_build_object('n', g, 'ok', g % 3 = 0, 'tag', md5(g::text)) FROM generate_series(1, {rows}) g; "
        "CREATE INDEX ON events (host, created); ANALYZE events;",
        BENCH_DB,
    )
    return int(psql(f"SELECT pg_database_size('{BENCH_DB}')"))


def child(action: str, directory: str, name: str = "") -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "strix.settings"
    import django

    django.setup()
    from backups.services import backup_source, create_backup, restore_backup
    from strix.storage import DiskStore

    store = DiskStore("backups", Path(directory))
    started = time.perf_counter()
    if action == "backup":
        name = create_backup(store, lambda message: None).name
    else:
        label, opener = backup_source(store, name)
        restore_backup(opener, label, lambda info: True, lambda message: None)
    print(time.perf_counter() - started, name)


def run_child(*args: str) -> tuple[float, str]:
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"}
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    seconds, name = result.stdout.split()
    return float(seconds), name


def shell(command: str) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=500, help="database size to build (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is kept (default 3)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"building a ~{args.mb} MB database …", flush=True)
    size = build_database(args.mb)
    key, iv = os.urandom(32).hex(), os.urandom(16).hex()
    flags = "--clean --if-exists --single-transaction --exit-on-error --no-owner"
    runs = {"backup": [], "restore": [], "native_backup": [], "native_restore": [], "native_backup_zlib": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for attempt in range(args.repeat):
                seconds, name = run_child("backup", tmp)
                runs["backup"].append(seconds)
                runs["restore"].append(run_child("restore", tmp, name)[0])
                native = Path(tmp) / f"native-{attempt}.enc"
                runs["native_backup"].append(
                    shell(
                        f"pg_dump -Fc -Z0 -h 127.0.0.1 -U postgres {BENCH_DB} | zstd -3 -T2 -q | "
                        f"openssl enc -aes-256-ctr -K {key} -iv {iv} > {native}"
                    )
                )
                runs["native_backup_zlib"].append(
                    shell(
                        f"pg_dump -Fc -h 127.0.0.1 -U postgres {BENCH_DB} | zstd -3 -q | "
                        f"openssl enc -aes-256-ctr -K {key} -iv {iv} > {native}.zlib"
                    )
                )
                runs["native_restore"].append(
                    shell(
                        f"openssl enc -d -aes-256-ctr -K {key} -iv {iv} < {native} | zstd -dq | "
                        f"pg_restore {flags} -h 127.0.0.1 -U postgres -d {BENCH_DB}"
                    )
                )
            ours_size = (Path(tmp) / name).stat().st_size
            native_size = native.stat().st_size
    finally:
        psql(f"DROP DATABASE IF EXISTS {BENCH_DB}")
    best = {key: min(values) for key, values in runs.items()}
    print(f"database {size / 1e6:,.0f} MB; best of {args.repeat} interleaved runs")
    print(f"backup : ours {best['backup']:6.2f}s ({ours_size / 1e6:,.0f} MB)   "
          f"fair native {best['native_backup']:6.2f}s "
          f"({native_size / 1e6:,.0f} MB)   zlib native {best['native_backup_zlib']:6.2f}s")  # fmt: skip
    print(f"restore: ours {best['restore']:6.2f}s (one pass)   native {best['native_restore']:6.2f}s")
    print(
        f"backup_vs_native={best['native_backup'] / best['backup']:.2f} "
        f"backup_vs_zlib_native={best['native_backup_zlib'] / best['backup']:.2f} "
        f"restore_vs_native={best['native_restore'] / best['restore']:.2f}"
    )


if __name__ == "__main__":
    main()
