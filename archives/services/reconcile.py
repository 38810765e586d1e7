"""Making the archive records agree with the stored files (after a PostgreSQL restore, a lost bucket, a
hand-deleted file).

- A completed record whose file is gone is marked **Missing**: shown in the Manage tab, not restorable.
  A Missing record whose file is back becomes Completed again.
- A stored archive file without a record is **re-registered** from its authenticated header and trailer
  (fractal, archive id, time range, kind, rows, its day index), under its own id, so that the name
  and the record agree again; or **reported** when its fractal no longer exists or it cannot be read.

Nothing is deleted: a file is only ever registered or reported. Search results (``searches/``) are not
archives and are left to their own expiry.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from archives.models import Archive, ArchiveEvent
from archives.services.history import record_event
from archives.services.stored_file import recorded_index
from strix.crypto.errors import ContainerError
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader
from strix.fractals.models import Fractal
from strix.storage import get_store
from strix.storage.base import StoredFile

log = logging.getLogger(__name__)

SUFFIX = ".strix-archive"
SEARCHES_PREFIX = "searches/"


@dataclass(frozen=True)
class Unrecorded:
    """A stored archive file no record points at."""

    name: str
    size: int
    archive_id: str | None = None
    fractal_id: str | None = None
    problem: str = ""  # why it cannot be re-registered; empty when it can


@dataclass
class Drift:
    missing: list[Archive] = field(default_factory=list)  # completed records without their file
    found_again: list[Archive] = field(default_factory=list)  # Missing records whose file is back
    unrecorded: list[Unrecorded] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.missing or self.found_again or self.unrecorded)

    def lines(self) -> list[str]:
        out = [f"missing: archive {a.id} of {a.fractal.name}: its file {a.file_name} is gone" for a in self.missing]
        out += [f"found again: archive {a.id} of {a.fractal.name}: {a.file_name}" for a in self.found_again]
        for u in self.unrecorded:
            if u.problem:
                out.append(f"unrecorded, cannot be registered: {u.name} ({u.problem})")
            else:
                out.append(f"unrecorded: {u.name}: archive {u.archive_id} of fractal {u.fractal_id}")
        return out


def find_drift() -> Drift:
    """Compare records and stored files; changes nothing."""
    store = get_store("archives")
    stored = {f.name: f for f in store.list() if f.name.endswith(SUFFIX) and not f.name.startswith(SEARCHES_PREFIX)}
    drift = Drift()
    recorded = set()
    for archive in Archive.objects.exclude(file_name="").select_related("fractal"):
        recorded.add(archive.file_name)
        if archive.status == Archive.Status.COMPLETED and archive.file_name not in stored:
            drift.missing.append(archive)
        elif archive.status == Archive.Status.MISSING and archive.file_name in stored:
            drift.found_again.append(archive)
    for name in sorted(set(stored) - recorded):
        drift.unrecorded.append(_inspect(stored[name]))
    return drift


def _inspect(stored: StoredFile) -> Unrecorded:
    try:
        header = _header_of(stored.name)
    except ContainerError as e:
        return Unrecorded(stored.name, stored.size, problem=f"unreadable: {e}")
    metadata = header.metadata
    archive_id, fractal_id = metadata.get("archive_id"), metadata.get("fractal_id")
    if header.kind != "archive" or not archive_id or not fractal_id:
        return Unrecorded(stored.name, stored.size, problem="not a fractal archive")
    if stored.name != f"{fractal_id}/{archive_id}{SUFFIX}":
        return Unrecorded(stored.name, stored.size, archive_id, fractal_id, "its name does not match its header")
    if not Fractal.objects.filter(pk=fractal_id).exists():
        name = metadata.get("fractal_name", "?")
        return Unrecorded(
            stored.name, stored.size, archive_id, fractal_id, f"fractal {name} ({fractal_id}) no longer exists"
        )
    if Archive.objects.filter(pk=archive_id).exists():
        return Unrecorded(stored.name, stored.size, archive_id, fractal_id, "another file holds this archive's record")
    return Unrecorded(stored.name, stored.size, archive_id, fractal_id)


def _header_of(name: str):
    with get_store("archives").open_read(name) as source:
        return ContainerReader(source, Keyring.from_settings()).header  # authenticated (MAC) on construction


def reconcile(dry_run: bool = False) -> Drift:
    """Find the drift and, unless ``dry_run``, repair what can be repaired. Returns what was found."""
    drift = find_drift()
    if dry_run:
        return drift
    for archive in drift.missing:
        Archive.objects.filter(pk=archive.pk, status=Archive.Status.COMPLETED).update(status=Archive.Status.MISSING)
        record_event(
            archive.fractal_id, ArchiveEvent.Action.RECONCILE, "missing", f"archive {archive.short_id}: file gone"
        )
    for archive in drift.found_again:
        Archive.objects.filter(pk=archive.pk, status=Archive.Status.MISSING).update(status=Archive.Status.COMPLETED)
        record_event(archive.fractal_id, ArchiveEvent.Action.RECONCILE, "found again", f"archive {archive.short_id}")
    for unrecorded in drift.unrecorded:
        if not unrecorded.problem:
            try:
                _register(unrecorded)
            except ContainerError as e:
                log.warning("cannot register %s: %s", unrecorded.name, e)
    return drift


def _register(unrecorded: Unrecorded) -> Archive:
    """A record for a stored file, from its authenticated header and trailer (for a format 1 file the
    whole file is read: its trailer is only known at the end)."""
    with get_store("archives").open_read(unrecorded.name) as source:
        reader = ContainerReader(source, Keyring.from_settings())
        trailer = reader.index()
        if trailer is None:
            for _block in reader:
                pass
            trailer = reader.trailer
    header, metadata = reader.header, reader.header.metadata
    archive = Archive.objects.create(
        id=uuid.UUID(unrecorded.archive_id),
        fractal_id=unrecorded.fractal_id,
        kind=metadata.get("kind") or Archive.Kind.MANUAL,
        status=Archive.Status.COMPLETED,
        file_name=unrecorded.name,
        row_count=trailer.rows,
        size_bytes=unrecorded.size,
        key_id=header.key_id,
        time_start=_time(metadata.get("time_start")),
        time_end=_time(metadata.get("time_end")),
        sha256=trailer.sha256 or "",
        **recorded_index(header, trailer),
        error="",
    )
    created = _time(header.created)
    Archive.objects.filter(pk=archive.pk).update(created_at=created, finished_at=created)
    detail = f"archive {archive.short_id} re-registered from its stored file ({trailer.rows:,} rows)"
    record_event(archive.fractal_id, ArchiveEvent.Action.RECONCILE, "re-registered", detail)
    log.info("%s (app %s wrote it; this is %s)", detail, header.app_version, settings.APP_VERSION)
    return archive


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def reconcile_summary(drift: Drift) -> str:
    """One line saying what a (real) run did."""
    registered = sum(1 for u in drift.unrecorded if not u.problem)
    reported = len(drift.unrecorded) - registered
    return (
        f"Reconciled: {len(drift.missing)} marked Missing, {len(drift.found_again)} found again, "
        f"{registered} re-registered, {reported} reported (left in storage, see above)."
    )
