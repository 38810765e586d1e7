"""Promoting a verified staging table into the target fractal, in steps that survive a dead worker.

Once the staged rows are verified, :func:`commit` records the plan in PostgreSQL: that is the commit
point. From then on the restore is finished, never abandoned: by the worker, or by the reaper if the
worker died. Each step is recorded before and after it runs, so :func:`roll_forward` can be run again
from any point without deleting twice or attaching a partition twice.
"""

from __future__ import annotations

from archives.models import RestoreJob
from strix import logstore

CLEARING, ATTACHING, DONE = "clearing", "attaching", "done"
PENDING, ATTACHING_PART, ATTACHED = "pending", "attaching", "attached"


class PromotionUnclear(Exception):
    """A partition's state cannot be told from the counts (rows were ingested meanwhile)."""


def is_committed(job: RestoreJob) -> bool:
    return job.promotion.get("phase") in (CLEARING, ATTACHING)


def commit(job: RestoreJob) -> None:
    partitions = logstore.staged_partitions(job.staging_table)
    job.promotion = {
        "phase": CLEARING,
        "partitions": {str(p): {"staged": n, "state": PENDING} for p, n in partitions.items()},
    }
    job.save(update_fields=["promotion"])


def _save(job: RestoreJob) -> None:
    job.save(update_fields=["promotion"])


def roll_forward(job: RestoreJob) -> int:
    """Clear the target (replace mode) and attach every staged partition; returns the rows promoted."""
    state, target = job.promotion, str(job.target_id)
    if state["phase"] == CLEARING:
        # Nothing is attached yet, so deleting again after an interruption is harmless.
        if job.clear_existing and logstore.count_rows(target):
            logstore.delete_rows(target)
        state["phase"] = ATTACHING
        _save(job)
    for partition, step in state["partitions"].items():
        if step["state"] == ATTACHED:
            continue
        if step["state"] == ATTACHING_PART and _already_attached(job, target, partition, step):
            step["state"] = ATTACHED
            _save(job)
            continue
        step.update(state=ATTACHING_PART, before=logstore.fractal_partition_rows(target, int(partition)))
        _save(job)
        logstore.attach_partition(job.staging_table, int(partition))
        step["state"] = ATTACHED
        _save(job)
    state["phase"] = DONE
    _save(job)
    return sum(step["staged"] for step in state["partitions"].values())


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
