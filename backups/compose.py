"""The only module that runs ``docker compose``: strix-setup on the host drives a Compose install from
outside, running the command inside the app container (whose pg_dump/pg_restore match the server and
whose /app/backups is the host's ``DIR/backups``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from strix.errors import OperatorError

APP_SERVICE = "web"
APP_DIR = "/app"  # the install directory inside the app containers (STRIX_INSTALL_DIR there)
KIND_VARIABLE = "STRIX_INSTALL_KIND"
PS_TIMEOUT = 60


class ComposeError(OperatorError):
    pass


@dataclass(frozen=True)
class ComposeInstall:
    directory: Path

    @classmethod
    def at(cls, directory: Path) -> ComposeInstall | None:
        """The Compose install in ``directory`` (its compose file, and a .env that says so), if any."""
        env = directory / ".env"
        if not (directory / "docker-compose.yml").is_file() or not env.is_file():
            return None
        return cls(directory.resolve()) if dotenv_values(env).get(KIND_VARIABLE) == "compose" else None

    @property
    def backups(self) -> Path:
        return self.directory / "backups"

    def _compose(self) -> list[str]:
        docker = shutil.which("docker")
        if docker is None:
            raise ComposeError(f"{self.directory} is a Docker Compose install, but docker is not installed here.")
        return [
            docker,
            "compose",
            "--project-directory",
            str(self.directory),
            "-f",
            str(self.directory / "docker-compose.yml"),
        ]

    def running_services(self) -> set[str]:
        try:
            result = subprocess.run(
                [*self._compose(), "ps", "--status", "running", "--services"],
                capture_output=True, text=True, timeout=PS_TIMEOUT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ComposeError(
                f"docker compose ps did not answer within {PS_TIMEOUT} s; is the Docker daemon up?"
            ) from None
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ComposeError(f"docker compose ps failed in {self.directory}: {detail}")
        return {line.strip() for line in result.stdout.splitlines() if line.strip()}

    def require_running(self, *services: str) -> None:
        running = self.running_services()
        for service in services:
            if service not in running:
                raise ComposeError(
                    f"service {service} of the Compose install in {self.directory} is not running; "
                    f"start it with: cd {self.directory} && docker compose up -d"
                )

    def run_in_app(self, argv: list[str], terminal: bool = False) -> int:
        """Run ``argv`` in the app container; its output is ours; returns its exit status."""
        tty = [] if terminal else ["-T"]
        return subprocess.run([*self._compose(), "exec", *tty, APP_SERVICE, *argv]).returncode

    def name_in_backups(self, file: str) -> str:
        """A backup as the containers see it: a name in DIR/backups (a path there is taken as its name)."""
        path = Path(file)
        if path.name == file and not path.is_absolute():
            return file
        if path.resolve().parent != self.backups.resolve():
            raise ComposeError(
                f"{file} is not in {self.backups}, the directory the containers see as {APP_DIR}/backups; "
                "copy it there first."
            )
        return path.name
