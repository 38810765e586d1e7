"""/metrics in the Prometheus text format, computed from the records at scrape time (so every web process
answers the same, and nothing is lost when one restarts). Each figure is one grouped query: the cost
does not grow with the number of fractals beyond the rows it returns."""

from __future__ import annotations

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from archives.models import Archive, ArchiveEvent, ArchiveSearch, RestoreJob
from backups.naming import backup_time
from strix.storage import get_store


def _seconds(value) -> float:
    return value.timestamp() if value is not None else 0.0


def _latest_per_fractal(name: str, documentation: str, records, time_field: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["fractal"])
    for row in records.values("fractal__name").annotate(last=Max(time_field)):
        family.add_metric([row["fractal__name"]], _seconds(row["last"]))
    return family


class StrixCollector:
    def collect(self):
        yield from self._per_fractal()
        yield from self._jobs()
        yield from self._backups()

    def _per_fractal(self):
        yield _latest_per_fractal(
            "strix_archive_last_completed_timestamp_seconds",
            "When the fractal's newest completed archive finished (Unix time).",
            Archive.objects.filter(status=Archive.Status.COMPLETED),
            "finished_at",
        )
        yield _latest_per_fractal(
            "strix_retention_last_run_timestamp_seconds",
            "When retention last ran on the fractal (Unix time).",
            ArchiveEvent.objects.filter(action=ArchiveEvent.Action.RETENTION),
            "at",
        )

    def _jobs(self):
        duration = SummaryMetricFamily(
            "strix_job_duration_seconds", "Time from start to end of completed jobs.", labels=["kind"]
        )
        rows = CounterMetricFamily("strix_job_rows", "Rows archived or restored by completed jobs.", labels=["kind"])
        size = CounterMetricFamily(
            "strix_job_bytes", "Bytes written (archives) or read (restores) by completed jobs.", labels=["kind"]
        )
        failures = CounterMetricFamily("strix_job_failures", "Jobs that failed, by kind.", labels=["kind"])
        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        for kind, model, done, rows_field, bytes_field in (
            ("archive", Archive, Archive.Status.COMPLETED, "row_count", "size_bytes"),
            ("restore", RestoreJob, RestoreJob.Status.COMPLETED, "rows_restored", "bytes_read"),
        ):
            totals = model.objects.filter(status=done, started_at__isnull=False).aggregate(
                count=Count("pk"), took=Sum(took), rows=Sum(rows_field), size=Sum(bytes_field)
            )
            seconds = totals["took"].total_seconds() if totals["took"] else 0.0
            duration.add_metric([kind], totals["count"], seconds)
            rows.add_metric([kind], totals["rows"] or 0)
            size.add_metric([kind], totals["size"] or 0)
        for kind, model in (("archive", Archive), ("restore", RestoreJob), ("search", ArchiveSearch)):
            failures.add_metric([kind], model.objects.filter(status="failed").count())
        failures.add_metric(
            ["retention"],
            ArchiveEvent.objects.filter(action=ArchiveEvent.Action.RETENTION, outcome="failed").count(),
        )
        yield from (duration, rows, size, failures)

    def _backups(self):
        times = [t for f in get_store("backups").list() if (t := backup_time(f.name)) is not None]
        last = GaugeMetricFamily(
            "strix_backup_last_completed_timestamp_seconds", "When the newest PostgreSQL backup was made (Unix time)."
        )
        last.add_metric([], max(times).timestamp() if times else 0.0)
        yield last
        count = GaugeMetricFamily("strix_backups", "PostgreSQL backups in the backups storage.")
        count.add_metric([], len(times))
        yield count


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StrixCollector())
    return generate_latest(registry)
