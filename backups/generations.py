"""Which backups pruning keeps: the newest N, and the newest backup of each of the last N days, ISO weeks
and months that have one (calendar UTC), as restic and borg count them. Safety backups taken before a
restore are kept for at least SAFETY_DAYS whatever the policy says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

SAFETY_DAYS = 7


@dataclass(frozen=True)
class KeepPolicy:
    last: int = 0  # --keep N
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def __post_init__(self):
        for name in ("last", "daily", "weekly", "monthly"):
            if getattr(self, name) < 0:
                raise ValueError(f"--keep{'' if name == 'last' else '-' + name} cannot be negative.")

    @property
    def prunes(self) -> bool:
        """No keep option given: nothing is pruned (an empty policy must not mean 'delete all')."""
        return any((self.last, self.daily, self.weekly, self.monthly))

    def describe(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.last, "newest"), (self.daily, "daily"),
                                                (self.weekly, "weekly"), (self.monthly, "monthly")) if n]  # fmt: skip
        return ", ".join(parts)


PERIODS: dict[str, Callable[[datetime], tuple]] = {
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar())[:2],
    "monthly": lambda t: (t.year, t.month),
}


def backups_to_keep(
    created: dict[str, datetime], policy: KeepPolicy, safety: set[str] = frozenset(), now: datetime | None = None
) -> set[str]:
    """The names to keep of ``created`` (name → UTC time of the backup)."""
    newest_first = sorted(created, key=lambda name: (created[name], name), reverse=True)
    keep = set(newest_first[: policy.last])
    for period, key_of in PERIODS.items():
        wanted, seen = getattr(policy, period), set()
        for name in newest_first:
            key = key_of(created[name])
            if key in seen:
                continue
            if len(seen) >= wanted:
                break
            seen.add(key)
            keep.add(name)
    if now is not None:
        keep |= {name for name in safety if name in created and now - created[name] < timedelta(days=SAFETY_DAYS)}
    return keep
