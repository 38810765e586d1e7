"""Deleting an archive: its stored file and its record."""

from django.db import transaction

from archives.models import Archive, RestoreJob
from archives.services.errors import ArchiveInUse, require_admin
from strix.storage import get_store


def delete_archive(user, archive: Archive) -> None:
    """Remove the file, then the record; refused while the archive is being made or read.

    ``user=None`` is the system itself (pruning by ``max_archives``).
    """
    if user is not None:
        require_admin(user, archive.fractal)
    with transaction.atomic():
        archive = Archive.objects.select_for_update().get(pk=archive.pk)
        if archive.is_active:
            raise ArchiveInUse(f"archive {archive.id} is still {archive.status}; wait for it to finish.")
        if RestoreJob.objects.filter(archive=archive, status__in=RestoreJob.ACTIVE).exists():
            raise ArchiveInUse(f"a restore is reading archive {archive.id}; delete it after the restore has finished.")
        if archive.file_name:
            get_store("archives").delete(archive.file_name)
        archive.delete()
