"""Changing an archive's stored file as an attacker or a failing disk would (disk storage)."""

from archives.models import Archive
from strix.storage import get_store


def flip_byte(archive: Archive, label: str, past_start: int = 200) -> None:
    """Change one byte inside day ``label``'s first chunk of the stored file."""
    path = get_store("archives").base / archive.file_name
    _chunk, offset = archive.day_offsets[label]
    data = bytearray(path.read_bytes())
    data[offset + past_start] ^= 0x01
    path.write_bytes(bytes(data))
