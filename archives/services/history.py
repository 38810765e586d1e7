"""The history of a fractal's archives, as the Manage tab lists it: who did what, when, how it ended."""

from __future__ import annotations

import logging

from archives.models import ArchiveEvent

log = logging.getLogger(__name__)


def record_event(fractal_id, action: str, outcome: str = "", detail: str = "", user=None) -> None:
    """Add one line of history. Never the reason a job fails: a failure to record is only logged."""
    try:
        ArchiveEvent.objects.create(
            fractal_id=fractal_id, action=action, outcome=outcome, detail=detail[:2000], user=user
        )
    except Exception:  # the history is a courtesy; the job's own record is the truth
        log.exception("could not record %s %s of fractal %s", action, outcome, fractal_id)


def who(user) -> str:
    return getattr(user, "username", None) or "system"
