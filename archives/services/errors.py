"""Errors a user can act on; every surface shows their message as it is."""

from strix.errors import OperatorError
from strix.locks import FractalBusy  # noqa: F401  (re-exported: "already running for fractal X")


class ArchiveError(OperatorError):
    pass


class NotAllowed(ArchiveError):
    pass


class NotRestorable(ArchiveError):
    pass


class ArchiveInUse(ArchiveError):
    pass


class JobCancelled(ArchiveError):
    """Raised in the worker at its next block once a user asked to cancel the job."""


class JobFailed(ArchiveError):
    """Raised by tasks after the record was marked failed, so that Celery and Flower show FAILURE."""


def require_admin(user, fractal) -> None:
    if user is None or not fractal.is_administered_by(user):
        who = getattr(user, "username", None) or "this user"
        raise NotAllowed(f"{who} does not administer fractal {fractal.name}.")
