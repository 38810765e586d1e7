"""Whether a stored file is the one its archive record describes (restore and verify alike)."""

from __future__ import annotations

from archives.models import Archive
from strix.crypto.errors import ContainerError
from strix.errors import OperatorError


class RestoreMismatch(OperatorError):
    """The stored file is not the one the record describes, or holds other rows than it promised."""


def check_header(archive: Archive, header) -> None:
    """The authenticated header's kind, archive id and fractal id must be the record's."""
    found = {
        "kind": header.kind,
        "archive id": header.metadata.get("archive_id"),
        "fractal id": header.metadata.get("fractal_id"),
    }
    expected = {"kind": "archive", "archive id": str(archive.id), "fractal id": str(archive.fractal_id)}
    for what, value in found.items():
        if value != expected[what]:
            raise RestoreMismatch(
                f"the stored file {archive.file_name} is not this archive's: its {what} is {value or 'missing'}, "
                f"the record's is {expected[what]}; nothing was restored."
            )


def check_trailer(archive: Archive, trailer) -> None:
    """The file was read to its end and holds the rows its record promises."""
    if trailer is None:
        raise ContainerError("the archive was not read to its end; nothing was restored.")
    if trailer.rows != archive.row_count:
        raise RestoreMismatch(
            f"the stored file holds {trailer.rows} rows but the record of archive {archive.id} says "
            f"{archive.row_count}; nothing was restored."
        )
