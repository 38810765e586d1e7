"""Records of fractal archives and of restores, and the one-operation-per-fractal claim."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from strix.fractals.models import Fractal


class OperationRecord(models.Model):
    """What archives and restores have in common: who asked, when, how far, how it ended, its lock."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    progress_rows = models.BigIntegerField(default=0)
    expected_rows = models.BigIntegerField(null=True, blank=True)
    lock_token = models.CharField(max_length=64, blank=True, editable=False)
    # The fence of the claim that may write this record (claims.py): a worker that lost its claim
    # (its job was taken over by the reaper) no longer matches, so every write it tries changes nothing.
    fence = models.BigIntegerField(default=0, editable=False)
    # When progress_rows last moved: a job alive but stuck is failed after STRIX_JOB_STALL_SECONDS.
    progress_at = models.DateTimeField(null=True, blank=True)
    # Set by Cancel (or Flower's Terminate): the worker stops at its next block and ends "Cancelled".
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # What a running job is doing now (Reading, Staging, Verifying, Clearing, Attaching…), for the tab.
    phase = models.CharField(max_length=20, blank=True)

    ACTIVE: tuple = ()

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def short_id(self) -> str:
        return str(self.pk)[:8]

    @property
    def state_label(self) -> str:
        return _display_state(self)[0]

    @property
    def state_css(self) -> str:
        return _display_state(self)[1]


class Archive(OperationRecord):
    class Kind(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULED = "scheduled", "Scheduled"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ARCHIVING = "archiving", "Archiving"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # Reconcile found the record without its stored file (archives reconcile): not restorable.
        MISSING = "missing", "Missing"

    class Verification(models.TextChoices):
        NONE = "", "Not verified"
        VERIFYING = "verifying", "Verifying"
        VERIFIED = "verified", "Verified"
        DAMAGED = "damaged", "Damaged"

    ACTIVE = (Status.PENDING, Status.ARCHIVING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    fractal = models.ForeignKey(Fractal, on_delete=models.PROTECT, related_name="archives")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MANUAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    file_name = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    time_start = models.DateTimeField(null=True, blank=True, help_text="earliest row timestamp in the archive")
    time_end = models.DateTimeField(null=True, blank=True, help_text="latest row timestamp in the archive")
    sha256 = models.CharField(
        max_length=64, blank=True, help_text="format version 1 archives: SHA-256 of the plaintext"
    )
    key_id = models.CharField(max_length=32, blank=True)
    # Per UTC day archived: [rows, sum of row hashes, sum of salted second hashes], taken before the day
    # was streamed (or copied), so every row counted is in the archive. Retention deletes a day only
    # while the log store still matches the first two (see retention.py); the next archive copies a day
    # whose three figures are unchanged (synthetic.py). Older records hold only the first two.
    day_checksums = models.JSONField(default=dict, blank=True, editable=False)
    # Synthetic full archives (synthetic.py): days copied from the previous archive's file and days read
    # from the log store, the previous archive copied from, and the rows the log store formatted.
    full_read = models.BooleanField(default=False, help_text="every day read from the log store, none copied")
    days_copied = models.PositiveIntegerField(null=True, blank=True)
    days_read = models.PositiveIntegerField(null=True, blank=True)
    copied_from = models.UUIDField(null=True, blank=True, help_text="the archive whose unchanged days were copied")
    rows_read = models.BigIntegerField(null=True, blank=True, help_text="rows read and formatted by the log store")
    # Per whole or partial UTC day archived: [rows, NDJSON bytes], for a restore's estimate beforehand.
    day_rows = models.JSONField(default=dict, blank=True, editable=False)
    # Container format version 2 and later index their days: {day: [first chunk, file offset]}, the
    # copy of the file's authenticated index a restore checks before reading only the days it needs.
    format_version = models.PositiveSmallIntegerField(default=1, editable=False)
    day_offsets = models.JSONField(default=dict, blank=True, editable=False)
    # Verify re-authenticates the stored file in the background; a damaged archive cannot be restored.
    verification = models.CharField(max_length=10, choices=Verification.choices, default="", blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    damage = models.TextField(blank=True, help_text="why the stored file failed verification")

    def __str__(self):
        return f"{self.fractal.name} archive {self.created_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def days_description(self) -> str:
        """ "28 days copied, 2 days read" (full read: "30 days read (full read)"); empty for archives made
        before days were counted."""
        return describe_days(self.days_copied, self.days_read, self.full_read)


def describe_days(copied: int | None, read: int | None, full_read: bool) -> str:
    if copied is None:
        return ""
    read_text = f"{read} day{'s' if read != 1 else ''} read"
    if not copied:
        return f"{read_text} (full read)" if full_read else read_text
    return f"{copied} day{'s' if copied != 1 else ''} copied, {read_text}"


def _display_state(job) -> tuple[str, str]:
    """(label, css state) of a job as every list shows it: an archive's Damaged, Missing and Verified are
    states of their own (not a green "Completed" with a footnote); a job asked to cancel is Cancelling…."""
    verification = getattr(job, "verification", "")
    if verification == Archive.Verification.DAMAGED:
        return "Damaged", "failed"
    if job.status == "completed" and verification == Archive.Verification.VERIFIED:
        return "Verified", "verified"
    if job.is_active and job.cancel_requested_at:
        return "Cancelling…", "cancelling"
    return job.get_status_display(), job.status


class RangeAndFilters(models.Model):
    """What part of an archive an operation takes: a time range [range_start, range_end) and optional
    filters (archives.services.options.RestoreOptions reads them back)."""

    range_start = models.DateTimeField(null=True, blank=True)
    range_end = models.DateTimeField(null=True, blank=True)
    contains = models.CharField(max_length=500, blank=True, help_text="only rows whose raw log contains this")
    field_filter = models.CharField(max_length=500, blank=True, help_text="only rows with this field=value")

    class Meta:
        abstract = True


class RestoreJob(OperationRecord, RangeAndFilters):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RESTORING = "restoring", "Restoring"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.PENDING, Status.RESTORING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    archive = models.ForeignKey(Archive, on_delete=models.SET_NULL, null=True, related_name="restores")
    # Kept when the archive is deleted, so that History and the Restores tables still say what it was.
    source_fractal = models.ForeignKey(
        Fractal, on_delete=models.SET_NULL, null=True, blank=True, related_name="restores_from"
    )
    archive_short_id = models.CharField(max_length=8, blank=True)
    archive_time_start = models.DateTimeField(null=True, blank=True)
    archive_time_end = models.DateTimeField(null=True, blank=True)
    target = models.ForeignKey(Fractal, on_delete=models.PROTECT, related_name="restores")
    clear_existing = models.BooleanField(default=True, help_text="replace the target's logs instead of adding")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    rows_restored = models.BigIntegerField(null=True, blank=True)
    # Append mode: rows of the archive whose log_id the target already held (not inserted again).
    rows_skipped = models.BigIntegerField(default=0)
    # Bytes of the stored file read: a time-range restore of a seekable archive reads only its days.
    bytes_read = models.BigIntegerField(null=True, blank=True)
    staging_table = models.CharField(max_length=100, blank=True)
    # Set once the staged rows are verified (the commit point), then advanced step by step, so that a
    # promotion interrupted by a dead worker is finished by the reaper, never half left: see promote.py.
    promotion = models.JSONField(default=dict, blank=True, editable=False)
    # The restored time range is held against retention in the target until hold_until (see
    # retention.py), so that old rows brought back for an investigation are not aged out at once.
    hold_start = models.DateTimeField(null=True, blank=True)
    hold_end = models.DateTimeField(null=True, blank=True)
    hold_until = models.DateTimeField(null=True, blank=True, help_text="empty with hold_days=None: until released")
    hold_days = models.PositiveIntegerField(null=True, blank=True, default=14, help_text="None: until released")
    hold_released_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"restore into {self.target.name} {self.created_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def hold_is_active(self) -> bool:
        if self.status != self.Status.COMPLETED or self.hold_released_at or self.hold_start is None:
            return False
        return self.hold_days is None or (self.hold_until is not None and self.hold_until > timezone.now())


class FractalClaim(models.Model):
    """The database half of "one archive or restore per fractal": a row exists while one is active.

    The unique fractal column makes a second claim fail even if Redis lost its locks.
    """

    fractal = models.OneToOneField(Fractal, on_delete=models.CASCADE, related_name="claim")
    archive = models.OneToOneField(Archive, null=True, blank=True, on_delete=models.CASCADE)
    restore = models.OneToOneField(RestoreJob, null=True, blank=True, on_delete=models.CASCADE)
    claimed_at = models.DateTimeField(auto_now_add=True)
    # Grows with every claim and takeover (a PostgreSQL sequence): the token that fences stale workers.
    fence = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # An archive, a restore, or neither (retention holds the fractal with no job record).
            models.CheckConstraint(
                condition=models.Q(archive__isnull=True) | models.Q(restore__isnull=True),
                name="operation_is_one_job_at_most",
            )
        ]

    def __str__(self):
        job = "archive" if self.archive_id else "restore" if self.restore_id else "retention"
        return f"{self.fractal} busy with {job}"


class ArchiveEvent(models.Model):
    """The history of a fractal's archives: who did what, when, and how it ended (the Manage tab)."""

    class Action(models.TextChoices):
        ARCHIVE = "archive", "Archive"
        RESTORE = "restore", "Restore"
        DELETE = "delete", "Delete"
        CANCEL = "cancel", "Cancel"
        PRUNE = "prune", "Prune (Maximum Archives)"
        SCHEDULE = "schedule", "Schedule change"
        VERIFY = "verify", "Verify"
        RETENTION = "retention", "Retention"
        HOLD = "hold", "Hold"
        SEARCH = "search", "Search"
        RECONCILE = "reconcile", "Reconcile"

    fractal = models.ForeignKey(Fractal, on_delete=models.CASCADE, related_name="archive_events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=10, choices=Action.choices)
    outcome = models.CharField(max_length=20, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}: {self.detail}"


class LegalHold(models.Model):
    """A legal hold on a fractal: while active, retention, Maximum Archives pruning and archive deletion
    are refused for it. Setting and releasing are recorded with who and why."""

    fractal = models.ForeignKey(Fractal, on_delete=models.CASCADE, related_name="legal_holds")
    reason = models.TextField()
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    set_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-set_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["fractal"], condition=models.Q(released_at__isnull=True), name="one_active_legal_hold"
            )
        ]

    def __str__(self):
        return f"legal hold on {self.fractal} set {self.set_at:%Y-%m-%d %H:%M} ({self.reason})"


class ArchiveSearch(RangeAndFilters):
    """A search of an archive run in the background (Manage tab); its matches are stored encrypted for
    24 hours (see archives/services/search_jobs.py)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SEARCHING = "searching", "Searching"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    ACTIVE = (Status.PENDING, Status.SEARCHING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="searches")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    rows_scanned = models.BigIntegerField(default=0)
    matches = models.BigIntegerField(default=0)
    result_file = models.CharField(max_length=255, blank=True)
    result_bytes = models.BigIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"search {self.short_id} of archive {self.archive.short_id} ({self.status})"

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def criteria(self) -> str:
        """The search in words, e.g. 'raw log contains "sshd", 2026-11-20 00:00 – 2026-11-21 00:00 UTC'."""
        parts = []
        if self.contains:
            parts.append(f'raw log contains "{self.contains}"')
        if self.field_filter:
            parts.append(f"field {self.field_filter}")
        if self.range_start or self.range_end:
            start = f"{self.range_start:%Y-%m-%d %H:%M}" if self.range_start else "start"
            end = f"{self.range_end:%Y-%m-%d %H:%M}" if self.range_end else "end"
            parts.append(f"{start} – {end} UTC")
        return ", ".join(parts) or "every row"


class AlertIncident(models.Model):
    """A condition worth an alert (archives/services/alerts.py), announced once when it opens and closed
    when it no longer holds."""

    key = models.CharField(max_length=200, db_index=True)
    kind = models.CharField(max_length=40)
    message = models.TextField()
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(resolved_at=None), name="one_open_incident_per_key"
            )
        ]

    def __str__(self):
        return f"{self.kind}: {self.message[:80]}"
