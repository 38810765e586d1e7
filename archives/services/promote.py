"""Promoting a verified staging table into the target fractal, in steps that survive a dead worker.

Once the staged rows are verified, :func:`commit` records the plan in PostgreSQL: that is the commit
point. From then on the restore is finished, never abandoned: by the worker, or by the reaper if the
worker died. Each step is recorded before and after it runs, so :func:`roll_forward` can be run again
from any point without deleting twice or attaching a partition twice.

Only the owner of the job's claim promotes (claims.py). Each step's record is written under its fence
before the step runs, and each ClickHouse statement is itself safe against an owner that paused past
its check: the clear is a fenced DELETE (strix.logstore.fences), and an attach names the staging table
by its owner's fence — a takeover renames the table (:func:`adopt_staging_table`), so an attach sent
by the previous owner finds no table.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from archives.models import RestoreJob
from archives.services.claims import Claim, require, write_job
from strix import failpoints, logstore
from strix.errors import OperatorError

log = logging.getLogger(__name__)

STAGING_PREFIX = "restore_staging_"
# Fenced deletions sent before a clear that still leaves rows is given up (nothing is attached).
CLEAR_ATTEMPTS = 3
CLEARING, ATTACHING, DONE = "clearing", "attaching", "done"
PENDING, ATTACHING_PART, ATTACHED = "pending", "attaching", "attached"


class PromotionUnclear(OperatorError):
    """A partition's state cannot be told from the counts (rows were ingested meanwhile)."""


class ClearNotProved(PromotionUnclear):
    """The target still holds rows after every fenced deletion: nothing is attached on top of them."""


def is_committed(job: RestoreJob) -> bool:
    return job.promotion.get("phase") in (CLEARING, ATTACHING)


def commit(job: RestoreJob, claim: Claim) -> None:
    partitions = logstore.staged_partitions(job.staging_table)
    promotion = {
        "phase": CLEARING,
        "partitions": {str(p): {"staged": n, "state": PENDING} for p, n in partitions.items()},
    }
    write_job(job, claim, promotion=promotion)


def _save(job: RestoreJob, claim: Claim) -> None:
    write_job(job, claim, promotion=job.promotion, progress_at=timezone.now())  # each step is progress


def roll_forward(job: RestoreJob, claim: Claim, progress=None) -> int:
    """Clear the target (replace mode) and attach every staged partition; returns the rows promoted.

    ``progress(done, expected, phase)``, if given, hears each step (the worker's heartbeat)."""
    state, target = job.promotion, str(job.target_id)
    total = sum(step["staged"] for step in state["partitions"].values())

    def report(phase: str) -> None:
        if progress is not None:
            attached = sum(s["staged"] for s in state["partitions"].values() if s["state"] == ATTACHED)
            progress(attached, total, phase)

    if state["phase"] == CLEARING:
        report("Clearing")
        # Nothing is attached yet, so deleting again after an interruption is harmless. A restore of a
        # time range replaces that range only; a whole archive replaces everything.
        start, end = job.range_start, job.range_end
        if job.clear_existing and logstore.count_rows(target, start, end):
            require(claim)
            failpoints.reached("restore.before-clear")
            _clear(job, claim, start, end)
        state["phase"] = ATTACHING
        _save(job, claim)
    for partition, step in state["partitions"].items():
        report("Attaching")
        if step["state"] == ATTACHED:
            continue
        if step["state"] == ATTACHING_PART and _already_attached(job, target, partition, step):
            step["state"] = ATTACHED
            _save(job, claim)
            continue
        step.update(state=ATTACHING_PART, before=logstore.fractal_partition_rows(target, int(partition)))
        _save(job, claim)
        failpoints.reached("restore.before-attach")
        logstore.attach_partition(job.staging_table, int(partition))
        failpoints.reached("restore.after-attach")
        step["state"] = ATTACHED
        _save(job, claim)
    state["phase"] = DONE
    _save(job, claim)
    report("Attaching")
    return total


def _clear(job: RestoreJob, claim: Claim, start, end) -> None:
    """Delete the target's rows (in the range), and prove them gone before anything is attached.

    A fenced DELETE reported done may have deleted only some parts, or none: ClickHouse evaluates the
    fence when the mutation runs, part by part and on each replica, so a replica that lacked the fence
    row (or saw a later owner's) skips them. Attaching on top would duplicate the restored rows. So the
    rows are counted, and the DELETE sent again while the claim holds; a lost claim stops here."""
    target = str(job.target_id)
    for attempt in range(1, CLEAR_ATTEMPTS + 1):
        if start or end:
            logstore.delete_window(target, claim.fence, start, end)
        else:
            logstore.delete_rows(target, claim.fence)
        left = logstore.count_rows(target, start, end)
        if not left:
            return
        require(claim)  # not ours any more: our DELETE rightly matched nothing
        log.warning("restore %s: %s rows of fractal %s left after fenced deletion %d", job.id, left, target, attempt)
    raise ClearNotProved(
        f"the existing rows of fractal {job.target.name} could not be proved deleted ({left:,} left after "
        f"{CLEAR_ATTEMPTS} fenced deletions), so nothing was attached; the restored rows are kept in staging "
        f"table {job.staging_table}. Check ClickHouse's replicas (docs/OPERATIONS.md), then restore again."
    )


def staging_table_name(job: RestoreJob) -> str:
    """Unique to the job and to the fence of its owner: a takeover renames the table."""
    return f"{STAGING_PREFIX}{job.id.hex}_{job.fence}"


def adopt_staging_table(job: RestoreJob) -> None:
    """Give the job's staging table its current owner's name (``job.staging_table``), atomically.

    Idempotent: after a reaper that died half-way, the table may carry any earlier owner's name.
    """
    tables = set(logstore.tables_with_prefix(f"{STAGING_PREFIX}{job.id.hex}_"))
    if job.staging_table in tables:
        return
    if len(tables) != 1:
        raise PromotionUnclear(f"restore {job.id} has {len(tables)} staging tables ({', '.join(sorted(tables))}).")
    logstore.rename_table(tables.pop(), job.staging_table)


def _already_attached(job, target: str, partition: str, step: dict) -> bool:
    """Whether an attach that was under way when the worker died went through, told by row counts."""
    now = logstore.fractal_partition_rows(target, int(partition))
    if now == step["before"] + step["staged"]:
        return True
    if now == step["before"]:
        return False
    raise PromotionUnclear(
        f"cannot tell whether partition {partition} reached fractal {target} ({now} rows now, {step['before']} "
        f"before, {step['staged']} staged); its rows are kept in staging table {job.staging_table}."
    )
