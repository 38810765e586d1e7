import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from strix import logstore
from strix.fractals.models import Fractal, FractalMembership

DEMO_FRACTALS = {
    "soc-production": "Production security events (demo data)",
    "incident-2026-042": "Investigation fractal for an incident (demo data)",
}


class Command(BaseCommand):
    help = "Create the demo admin and two demo fractals with --rows log rows each (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--username", default="admin")

    def handle(self, *args, rows, username, **options):
        logstore.ensure_schema()
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": "admin@localhost"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        for name, description in DEMO_FRACTALS.items():
            fractal, _ = Fractal.objects.get_or_create(name=name, defaults={"description": description})
            FractalMembership.objects.get_or_create(
                fractal=fractal, user=user, defaults={"role": FractalMembership.Role.ADMIN}
            )
            missing = rows - logstore.count_rows(str(fractal.id))
            if missing > 0:
                call_command("seed_logs", name, rows=missing, days=30, stdout=self.stdout, stderr=self.stderr)
        self.stdout.write(self.style.SUCCESS("Demo ready: http://127.0.0.1:8000/admin/"))
        self.stdout.write(f"  username: {username}\n  password: {password}")
