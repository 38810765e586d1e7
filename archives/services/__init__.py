"""The logic of fractal archives: every surface (admin, CLI, tasks) calls these and nothing else."""

from archives.services.cancel import NotCancellable, cancel_job
from archives.services.create import request_archive, run_archive
from archives.services.delete import delete_archive, prune_archives
from archives.services.errors import ArchiveError, ArchiveInUse, NotAllowed, NotRestorable
from archives.services.reaper import reap_stale_jobs
from archives.services.restore import request_restore, run_restore
from archives.services.schedule import scan_schedules
from archives.services.verify import request_verify, run_verify

__all__ = [
    "ArchiveError",
    "ArchiveInUse",
    "NotCancellable",
    "cancel_job",
    "request_verify",
    "run_verify",
    "NotAllowed",
    "NotRestorable",
    "delete_archive",
    "prune_archives",
    "reap_stale_jobs",
    "request_archive",
    "request_restore",
    "run_archive",
    "run_restore",
    "scan_schedules",
]
