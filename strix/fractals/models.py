"""Fractals (isolated log containers) and who administers them."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


class ArchiveSchedule(models.TextChoices):
    NEVER = "never", "Never"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class FractalQuerySet(models.QuerySet):
    def administered_by(self, user):
        """The fractals ``user`` may administer: all for superusers, else their admin memberships."""
        if not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user, memberships__role=FractalMembership.Role.ADMIN).distinct()


class Fractal(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=(
            "Logs older than this many days are deleted, a whole UTC day at a time, by the hourly retention run. "
            "With an archive schedule, retention waits one more day and deletes only days a completed archive "
            "holds. Empty keeps logs forever."
        ),
    )
    archive_schedule = models.CharField(max_length=10, choices=ArchiveSchedule.choices, default=ArchiveSchedule.NEVER)
    max_archives = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Keep at most this many archives; the oldest are deleted first. Empty keeps all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When the schedule scan last queued a scheduled archive: one per period, even if it is deleted.
    last_scheduled_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = FractalQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def retention_cutoff(self, now=None):
        """The oldest timestamp still inside the retention window, or None without a policy."""
        if not self.retention_days:
            return None
        return (now or timezone.now()) - timedelta(days=self.retention_days)

    def is_administered_by(self, user) -> bool:
        return Fractal.objects.administered_by(user).filter(pk=self.pk).exists()


class FractalMembership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Administrator"
        VIEWER = "viewer", "Viewer"

    fractal = models.ForeignKey(Fractal, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fractal_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["fractal", "user"], name="one_membership_per_user")]

    def __str__(self):
        return f"{self.user} → {self.fractal} ({self.role})"
