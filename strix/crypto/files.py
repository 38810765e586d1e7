"""Verifying and decrypting container files on disk, for operators and incident responders."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from strix.crypto.container import Trailer
from strix.crypto.errors import ContainerError
from strix.crypto.header import Header
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader


@dataclass(frozen=True)
class Verified:
    header: Header
    trailer: Trailer


def open_input(path: Path) -> BinaryIO:
    """Open a container for reading, with one-line errors for the usual mistakes."""
    if not path.exists():
        raise ContainerError(f"{path} does not exist.")
    if path.is_dir():
        raise ContainerError(f"{path} is a directory, not an archive or backup file.")
    try:
        return open(path, "rb")
    except OSError as e:
        raise ContainerError(f"{path} cannot be read: {e.strerror}.") from None


def verify_stream(source: BinaryIO, keyring: Keyring, sink: BinaryIO | None = None) -> Verified:
    """Authenticate a whole container, copying its plaintext to ``sink`` if given."""
    reader = ContainerReader(source, keyring)
    for block in reader:
        if sink is not None:
            sink.write(block)
    return Verified(reader.header, reader.trailer)


def verify_file(path: Path, keyring: Keyring) -> Verified:
    with open_input(path) as source:
        return verify_stream(source, keyring)


def decrypt_file(path: Path, output: Path, keyring: Keyring) -> Verified:
    """Write the plaintext to ``output`` only if the whole file authenticates (temp name, then rename)."""
    output = output.resolve()
    with open_input(path) as source:
        fd, temp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
        try:
            with os.fdopen(fd, "wb") as sink:
                verified = verify_stream(source, keyring, sink)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(temp_name, output)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    return verified


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences included) shown as escapes."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in str(text))


def describe(verified: Verified) -> list[tuple[str, str]]:
    """Header and trailer as label/value pairs for printing, every value from the file made printable."""
    return [(printable(label), printable(value)) for label, value in _described(verified)]


def _described(verified: Verified) -> list[tuple[str, str]]:
    header, trailer = verified.header, verified.trailer
    lines = [
        ("kind", header.kind),
        ("key id", header.key_id),
        ("created", header.created),
        ("app version", header.app_version or "-"),
        ("format version", str(header.version)),
    ]
    lines += [(name.replace("_", " "), str(value)) for name, value in sorted(header.metadata.items())]
    if trailer.rows is not None:
        lines.append(("rows", f"{trailer.rows}"))
    lines += [("plaintext bytes", str(trailer.plaintext_bytes)), ("chunks", str(trailer.chunks))]
    if trailer.segments:
        days = f"{len(trailer.segments)} ({trailer.segments[0].label} … {trailer.segments[-1].label})"
        lines.append(("segments", days))
    if trailer.sha256:
        lines.append(("sha256", trailer.sha256))
    return lines
