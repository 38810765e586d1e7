from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def thousands(value):
    """12345678 → 12,345,678 (without django.contrib.humanize's locale machinery)."""
    if isinstance(value, int):
        return f"{value:,}"
    return value


@register.filter
def percent_done(job):
    if not job.expected_rows:
        return None
    return min(100, int(100 * job.progress_rows / job.expected_rows))


@register.filter
def rows_per_second(job):
    if not job.started_at or not job.progress_rows:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return int(job.progress_rows / elapsed) if elapsed > 0 else None


@register.filter
def eta_seconds(job):
    rate = rows_per_second(job)
    if not rate or not job.expected_rows:
        return None
    return max(0, int((job.expected_rows - job.progress_rows) / rate))
