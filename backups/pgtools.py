"""The only module that runs PostgreSQL's client tools (pg_dump, pg_restore).

Arguments are lists (no shell); the password travels in the environment (PGPASSWORD), never on a
command line; stderr becomes a :class:`PgToolError` whose message says what failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection

from strix.errors import OperatorError

READ_SIZE = 1 << 20


class PgToolError(OperatorError):
    pass


def _database() -> dict:
    return connection.settings_dict


def database_name() -> str:
    return _database()["NAME"]


def server_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0].split()[0]


def _connection_args() -> list[str]:
    db = _database()
    args = ["--no-password"]
    if db.get("HOST"):
        args += ["--host", db["HOST"]]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", db["USER"]]
    return args


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIX_BACKUP_")}  # keys stay home
    if _database().get("PASSWORD"):
        env["PGPASSWORD"] = _database()["PASSWORD"]
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PgToolError(
            f"{name} is not installed; install PostgreSQL's client tools (apt-get install postgresql-client)."
        )
    return path


def dump_command() -> list[str]:
    # --compress=0: the container compresses with zstd; pg_dump's zlib would spend the CPU twice.
    return [_tool("pg_dump"), "--format=custom", "--compress=0", *_connection_args(), "--dbname", database_name()]


def restore_command() -> list[str]:
    # One transaction: a failure at any point leaves the database exactly as it was.
    return [
        _tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        *_connection_args(),
        "--dbname",
        database_name(),
    ]


def _error(name: str, code: int, stderr) -> PgToolError:
    stderr.seek(0)
    lines = [line for line in stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
    detail = " | ".join(lines[-3:]) or f"exit status {code}"
    return PgToolError(f"{name} failed: {detail}")


@contextmanager
def dump_stream() -> Iterator[Iterator[bytes]]:
    """``pg_dump --format=custom`` of the database, as blocks read straight from its stdout."""
    command = dump_command()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=_environment())

        def blocks() -> Iterator[bytes]:
            while block := process.stdout.read(READ_SIZE):
                yield block

        try:
            yield blocks()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
        if process.wait() != 0:
            raise _error("pg_dump", process.returncode, stderr)


def restore_from(blocks: Iterable[bytes]) -> None:
    """Feed a custom-format dump to ``pg_restore`` in one transaction.

    If ``blocks`` fails part-way (a damaged file), pg_restore is killed before it can commit.
    """
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            restore_command(), stdin=subprocess.PIPE, stdout=output, stderr=output, env=_environment()
        )
        try:
            for block in blocks:
                process.stdin.write(block)
            process.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit status and output say why
        except BaseException:
            process.kill()
            process.wait()
            raise
        if process.wait() != 0:
            raise _error("pg_restore", process.returncode, output)


def list_command() -> list[str]:
    return [_tool("pg_restore"), "--list"]


def list_from(blocks: Iterable[bytes]) -> list[str]:
    """``pg_restore --list`` of a custom-format dump fed from ``blocks``: its table of contents, without
    touching any database. Every block is consumed even after pg_restore has read what it needs (the
    caller authenticates the whole file as it goes)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(list_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        listing: list[bytes] = []
        reader = threading.Thread(target=lambda: listing.append(process.stdout.read()), daemon=True)
        reader.start()
        writing = True
        try:
            for block in blocks:
                if writing:
                    try:
                        process.stdin.write(block)
                    except BrokenPipeError:
                        writing = False  # it has the table of contents; the rest is only authenticated
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        except BaseException:
            process.kill()
            process.wait()
            raise
        reader.join()
        if process.wait() != 0:
            raise _error("pg_restore --list", process.returncode, stderr)
    return [line for line in b"".join(listing).decode("utf-8", "replace").splitlines() if line and line[0] != ";"]
