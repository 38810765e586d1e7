"""Archive and restore speed and memory beside the native pipelines, on the same rows in the same run.

    .venv/bin/python bench/archive.py --rows 1000000

ours:   the archive and restore services (as a worker runs them), each in a child process whose peak
        RSS is its own;
native: clickhouse-client -q "SELECT … FORMAT JSONEachRow" | zstd -3 -T2 | openssl enc -aes-256-ctr
        openssl enc -d … | zstd -d | clickhouse-client -q "INSERT … FORMAT JSONEachRow"
limit:  each unavoidable stage alone on the same rows (ClickHouse producing the NDJSON, zstd -3 of it,
        AES of the result; and back: AES, zstd -d, ClickHouse inserting), wall and CPU seconds (the
        ClickHouse server's included); a direction's limit is the larger of its stages' CPU over the
        cores and its slowest stage: no pipeline of those stages can be faster on this machine. The
        stages run in every round, after ours and the native pipelines; the lowest limit is kept.
Needs a migrated PostgreSQL database (make demo or manage.py migrate): records go there.

--synthetic: a synthetic full archive (the days unchanged since the previous archive copied from its
file) beside the native full pipeline and our own full archive, all on the same rows in one run: 30
days of --rows rows are archived; then a retention run deletes the oldest day, a new day of 1/30 the
rows arrives and 1,000 rows arrive late in an old day; the next archive is timed (best of --repeat;
each copies from the same previous archive). Prints synthetic_vs_native, synthetic_vs_full, the days
copied and read, and the share of the fractal's rows ClickHouse formatted for it (its own counter).

--cluster: the same on a replicated cluster (1 shard x 2 replicas, scripts/cluster.sh, started for the
run and stopped after): Strix and the native pipeline both talk to the first replica, which records
every fence with a quorum and replicates every attached part to the second.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import peak_rss_mb, setup_django


def child(action: str, *ids: str) -> None:
    """Child mode: run one service in this process and print seconds, peak RSS and the job's id."""
    from archives import services
    from archives.models import Archive
    from strix.fractals.models import Fractal

    started = time.perf_counter()
    if action in ("archive", "synthetic"):  # a full read, or copying the days unchanged since the last one
        fractal = Fractal.objects.get(pk=ids[0])
        job = services.request_archive(None, fractal, enqueue=False, full_read=action == "archive")
        job = services.run_archive(job.id)
    else:
        archive = Archive.objects.get(pk=ids[0])
        job = services.request_restore(None, archive, target=Fractal.objects.get(pk=ids[1]), enqueue=False)
        job = services.run_restore(job.id)
    if job.status != "completed":
        raise SystemExit(f"{action} failed: {job.error}")
    print(time.perf_counter() - started, round(peak_rss_mb()), job.pk)


def run_child(database: str, *args: str) -> tuple[float, int, str]:
    env = {**os.environ, "STRIX_CLICKHOUSE_DATABASE": database}
    result = subprocess.run(
        [sys.executable, __file__, "--child", database, *args], capture_output=True, text=True, env=env
    )
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    seconds, rss, job_id = result.stdout.split()
    return float(seconds), int(rss), job_id


def shell(command: str) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return time.perf_counter() - started


def cleanup(database, *fractals) -> None:
    from archives import services
    from archives.models import Archive, RestoreJob
    from strix import logstore

    RestoreJob.objects.filter(target__in=fractals).delete()
    for archive in Archive.objects.filter(fractal__in=fractals):
        services.delete_archive(None, archive)
    for fractal in fractals:
        fractal.delete()
    logstore.drop_database(database)


ARCHIVE_STAGES = ("clickhouse select", "zstd -3", "aes")
RESTORE_STAGES = ("aes -d", "zstd -d", "clickhouse insert")


CLUSTER_DIR = Path(tempfile.gettempdir()) / "strix-bench-cluster"
CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "cluster.sh"
# How the native pipeline reaches the server Strix uses (the first replica with --cluster).
CLIENT = "clickhouse-client"


def start_cluster() -> None:
    """Bring up the benchmark's cluster and point this process and its children at its first replica."""
    global CLIENT
    subprocess.run([str(CLUSTER_SCRIPT), "start", str(CLUSTER_DIR)], check=True)
    env = subprocess.run(
        [str(CLUSTER_SCRIPT), "env", "repl", str(CLUSTER_DIR)], check=True, capture_output=True, text=True
    ).stdout
    os.environ.update(dict(line.split("=", 1) for line in env.split()))
    ports = dict(line.split("=", 1) for line in (CLUSTER_DIR / "cluster.env").read_text().split())
    CLIENT = f"clickhouse-client --port {ports['CH1_TCP']}"


def _server_cpu() -> float:
    """CPU seconds the ClickHouse server has used (its work counts in a stage's cost, too)."""
    if (CLUSTER_DIR / "ch1" / "pid").exists():
        pid = (CLUSTER_DIR / "ch1" / "pid").read_text().strip()
    else:
        pid = subprocess.run(["pgrep", "-o", "clickhouse-serv"], capture_output=True, text=True).stdout.split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_limit(stages: dict[str, tuple[float, float]], names: tuple[str, ...]) -> float:
    """No pipeline of these stages runs faster here: their CPU over the cores, or the slowest alone."""
    cpu = sum(stages[name][1] for name in names)
    return max(cpu / (os.cpu_count() or 1), max(stages[name][0] for name in names))


def time_stages(select: str, insert: str, key: str, iv: str) -> dict[str, tuple[float, float]]:
    """Each unavoidable stage alone, on the same rows, with the native tools: (wall, CPU seconds).

    The NDJSON and its compressed form are written to a temporary directory for this (the benchmark's
    own files, removed at the end); CPU counts the tools and the ClickHouse server."""
    stages = {}

    def stage(name: str, command: str) -> None:
        children, server = resource.getrusage(resource.RUSAGE_CHILDREN), _server_cpu()
        wall = shell(command)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime + _server_cpu() - server
        stages[name] = (wall, cpu)

    with tempfile.TemporaryDirectory() as tmp:
        plain, packed, sealed = Path(tmp) / "rows.ndjson", Path(tmp) / "rows.zst", Path(tmp) / "rows.enc"
        stage("clickhouse select", f'{CLIENT} -q "{select}" > {plain}')
        stage("zstd -3", f"zstd -3 -T2 -q -f {plain} -o {packed}")
        stage("aes", f"openssl enc -aes-256-ctr -K {key} -iv {iv} < {packed} > {sealed}")
        stage("aes -d", f"openssl enc -d -aes-256-ctr -K {key} -iv {iv} < {sealed} > /dev/null")
        stage("zstd -d", f"zstd -dq -c {packed} > /dev/null")
        from strix import logstore

        logstore.drop_table("native_restore")
        logstore.create_staging_table("native_restore", "native")
        stage("clickhouse insert", f'{CLIENT} -q "{insert}" < {plain}')
    return stages


def report_ours(rows: int, runs: dict) -> None:
    archive_s, archive_rss = min(runs["archive"])
    restore_s, restore_rss = min(runs["restore"])
    print(f"rows={rows:,}: archive {archive_s:.2f}s ({rows / archive_s:,.0f} rows/s), peak RSS {archive_rss} MB; "
          f"restore {restore_s:.2f}s ({rows / restore_s:,.0f} rows/s), peak RSS {restore_rss} MB")  # fmt: skip
    print(f"archive_s={archive_s:.2f} restore_s={restore_s:.2f} peak_rss_mb={max(archive_rss, restore_rss)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows of the fractal (default 1,000,000; --synthetic 5,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is kept (default 3)")
    parser.add_argument(
        "--ours-only", action="store_true",
        help="skip the native pipelines and the stages (for size runs: at 20M rows the native one-liner's "
        "single ORDER BY exceeds this ClickHouse's 9.31 GiB memory limit for a query)",
    )  # fmt: skip
    parser.add_argument(
        "--cluster", action="store_true",
        help="on a replicated ClickHouse cluster (scripts/cluster.sh), started and stopped for the run",
    )  # fmt: skip
    parser.add_argument(
        "--synthetic", action="store_true",
        help="time a synthetic full archive after one new day and late rows (see above); --rows defaults to 5M",
    )  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        setup_django(args.child[0])
        child(*args.child[1:])
        return
    args.rows = args.rows or (5_000_000 if args.synthetic else 1_000_000)
    if args.cluster:
        start_cluster()
    try:
        run_synthetic(args) if args.synthetic else run(args)
    finally:
        if args.cluster:
            subprocess.run([str(CLUSTER_SCRIPT), "stop", str(CLUSTER_DIR)], check=False)


def run(args) -> None:
    database = setup_django()
    from strix import logstore
    from strix.fractals.models import Fractal
    from strix.fractals.seeding import seed_fractal_rows

    logstore.ensure_schema()
    source = Fractal.objects.create(name=f"bench-source-{database}")
    targets = []
    runs: dict[str, list] = {"archive": [], "restore": [], "native_archive": [], "native_restore": []}
    stage_runs: list[dict] = []
    try:
        print(f"seeding {args.rows:,} rows over 30 days …", flush=True)
        seed_fractal_rows(str(source.id), args.rows, days=30, seed=11)
        expected = logstore.fractal_checksum(str(source.id))
        key, iv = os.urandom(32).hex(), os.urandom(16).hex()
        columns = ", ".join(logstore.RECORD_COLUMNS)
        where = f"fractal_id = '{source.id}'"
        select = f"SELECT {columns} FROM {database}.logs WHERE {where} ORDER BY timestamp FORMAT JSONEachRow"
        insert = f"INSERT INTO {database}.native_restore ({columns}) FORMAT JSONEachRow"
        for attempt in range(args.repeat):  # interleaved, so that both sides see the same machine
            targets.append(Fractal.objects.create(name=f"bench-target-{database}-{attempt}"))
            seconds, rss, archive_id = run_child(database, "archive", str(source.id))
            runs["archive"].append((seconds, rss))
            seconds, rss, _ = run_child(database, "restore", archive_id, str(targets[-1].id))
            runs["restore"].append((seconds, rss))
            assert logstore.fractal_checksum(str(targets[-1].id)) == expected
            if args.ours_only:
                continue

            logstore.drop_table("native_restore")
            logstore.create_staging_table("native_restore", "native")
            with tempfile.NamedTemporaryFile(suffix=".zst.enc") as encrypted:
                runs["native_archive"].append(
                    shell(
                        f'{CLIENT} -q "{select}" | zstd -3 -T2 -q | '
                        f"openssl enc -aes-256-ctr -K {key} -iv {iv} > {encrypted.name}"
                    )
                )
                runs["native_restore"].append(
                    shell(
                        f"openssl enc -d -aes-256-ctr -K {key} -iv {iv} < {encrypted.name} | zstd -dq | "
                        f'{CLIENT} -q "{insert}"'
                    )
                )
                plaintext_mb = int(
                    subprocess.run(
                        f"openssl enc -d -aes-256-ctr -K {key} -iv {iv} < {encrypted.name} | zstd -dq | wc -c",
                        shell=True, capture_output=True, text=True, check=True,
                    ).stdout
                ) / 1e6  # fmt: skip
            assert logstore.count_table("native_restore") == args.rows
            native_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
            stage_runs.append(time_stages(select, insert, key, iv))  # in every round, as the other sides
        if args.ours_only:
            return report_ours(args.rows, runs)
    finally:
        cleanup(database, source, *targets)

    archive_s = min(t for t, _ in runs["archive"])
    restore_s = min(t for t, _ in runs["restore"])
    archive_rss = max(r for _, r in runs["archive"])
    restore_rss = max(r for _, r in runs["restore"])
    native_archive_s, native_restore_s = min(runs["native_archive"]), min(runs["native_restore"])
    rows = args.rows
    print(f"rows={rows:,}  NDJSON={plaintext_mb:,.0f} MB  best of {args.repeat} interleaved runs")
    print(f"{'':10}{'ours':>28}{'native':>28}")
    for label, ours, native in (("archive", archive_s, native_archive_s), ("restore", restore_s, native_restore_s)):
        print(
            f"{label:10}{ours:7.2f}s {rows / ours:9,.0f} rows/s {plaintext_mb / ours:5.0f} MB/s"
            f"{native:7.2f}s {rows / native:9,.0f} rows/s {plaintext_mb / native:5.0f} MB/s"
        )
    print(f"peak RSS: archive {archive_rss} MB, restore {restore_rss} MB; native child processes {native_rss} MB")
    limits = {}
    for direction, names in (("archive", ARCHIVE_STAGES), ("restore", RESTORE_STAGES)):
        # The lowest limit of the rounds: the best each side did, as ours and the native pipeline's.
        stages = min(stage_runs, key=lambda run: stage_limit(run, names))
        limits[direction] = stage_limit(stages, names)
        parts = ", ".join(f"{name} {stages[name][0]:.2f}s wall/{stages[name][1]:.2f}s CPU" for name in names)
        print(f"{direction} stages alone: {parts}; limit {limits[direction]:.2f}s (lowest of {len(stage_runs)} rounds)")
    # Each round's own ratio too (ours and the stages a minute apart): the machine's speed drifts by
    # ±20 % over minutes here, which the best-of figures above take from different rounds.
    rounds = zip(runs["archive"], stage_runs, strict=True)
    paired = sorted(ours / stage_limit(stages, ARCHIVE_STAGES) for (ours, _), stages in rounds)
    print("archive vs limit, round by round:", " ".join(f"{ratio:.2f}" for ratio in paired))
    print(
        f"archive_vs_native={native_archive_s / archive_s:.2f} restore_vs_native={native_restore_s / restore_s:.2f} "
        f"peak_rss_mb={max(archive_rss, restore_rss)} limit_archive_s={limits['archive']:.2f} "
        f"limit_restore_s={limits['restore']:.2f} archive_vs_limit={archive_s / limits['archive']:.2f} "
        f"restore_vs_limit={restore_s / limits['restore']:.2f} "
        f"archive_vs_limit_median_round={paired[len(paired) // 2]:.2f}"
    )


def run_synthetic(args) -> None:
    from datetime import UTC, datetime, timedelta

    database = setup_django()
    from archives import services
    from archives.models import Archive
    from archives.services.retention import enforce_retention
    from strix import logstore
    from strix.fractals.models import Fractal
    from strix.fractals.seeding import seed_fractal_rows

    logstore.ensure_schema()
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    source = Fractal.objects.create(name=f"bench-synthetic-{database}")
    runs: dict[str, list] = {"synthetic": [], "full": [], "native": []}
    try:
        day_rows = args.rows // 30
        print(f"seeding {args.rows:,} rows over the 30 whole days before yesterday …", flush=True)
        seed_fractal_rows(str(source.id), args.rows, days=30, seed=17, now=midnight - timedelta(days=1, milliseconds=1))
        _, _, previous_id = run_child(database, "archive", str(source.id))
        # A day passes: a retention run deletes the oldest day, yesterday's rows arrive, and some rows
        # arrive late in an old day.
        source.retention_days = 30
        source.save()
        deleted = enforce_retention(source).deleted_days
        source.retention_days = None  # the archive then takes every row left (no cut first day)
        source.save()
        seed_fractal_rows(str(source.id), day_rows, days=1, seed=18, now=midnight - timedelta(milliseconds=1))
        seed_fractal_rows(str(source.id), 1000, days=1, seed=19, now=midnight - timedelta(days=15, milliseconds=1))
        total = logstore.count_rows(str(source.id))
        print(f"retention deleted {', '.join(deleted)}; {day_rows:,} rows of a new day and 1,000 late rows added; "
              f"{total:,} rows", flush=True)  # fmt: skip
        columns = ", ".join(logstore.RECORD_COLUMNS)
        select = (
            f"SELECT {columns} FROM {database}.logs WHERE fractal_id = '{source.id}' ORDER BY timestamp "
            "FORMAT JSONEachRow"
        )
        key, iv = os.urandom(32).hex(), os.urandom(16).hex()
        for _ in range(args.repeat):  # interleaved; each synthetic archive copies from the same previous one
            seconds, rss, synthetic_id = run_child(database, "synthetic", str(source.id))
            synthetic = Archive.objects.get(pk=synthetic_id)
            runs["synthetic"].append((seconds, rss, synthetic.days_copied, synthetic.days_read, synthetic.rows_read))
            seconds, rss, full_id = run_child(database, "archive", str(source.id))
            runs["full"].append((seconds, rss))
            full = Archive.objects.get(pk=full_id)
            assert (synthetic.row_count, synthetic.day_checksums) == (full.row_count, full.day_checksums)
            for made in (synthetic, full):
                services.delete_archive(None, made)
            with tempfile.NamedTemporaryFile(suffix=".zst.enc") as encrypted:
                runs["native"].append(
                    shell(
                        f'{CLIENT} -q "{select}" | zstd -3 -T2 -q | '
                        f"openssl enc -aes-256-ctr -K {key} -iv {iv} > {encrypted.name}"
                    )
                )
        assert Archive.objects.filter(fractal=source).values_list("pk", flat=True).get() == uuid.UUID(previous_id)
    finally:
        cleanup(database, source)
    synthetic_s, synthetic_rss, copied, read, formatted = min(runs["synthetic"])
    full_s, full_rss = min(runs["full"])
    native_s = min(runs["native"])
    print(f"rows={total:,}  best of {args.repeat} interleaved runs")
    print(f"synthetic archive {synthetic_s:.2f}s ({copied} days copied, {read} read, {formatted:,} rows formatted); "
          f"our full archive {full_s:.2f}s; native full pipeline {native_s:.2f}s")  # fmt: skip
    print(
        f"synthetic_vs_native={native_s / synthetic_s:.2f} synthetic_vs_full={full_s / synthetic_s:.2f} "
        f"days_copied={copied} days_read={read} formatted_share={formatted / total:.3f} "
        f"peak_rss_mb={max(synthetic_rss, full_rss)}"
    )


if __name__ == "__main__":
    main()
