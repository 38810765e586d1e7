"""Nothing of a file is used before it is authenticated in a way that can hurt: a deeply nested header is
refused before it is parsed, a key id that is not 16 hex digits is refused before anything prints it,
and every value printed from a file is escaped for the terminal (issue: the container format, hardened)."""

import io
import json
import os

import pytest
from django.core.management import CommandError, call_command

from strix.crypto.errors import HeaderTamperedError
from strix.crypto.files import printable
from strix.crypto.header import MAC_BYTES, MAGIC, PREFIX, read_header


def planted(document_bytes: bytes) -> bytes:
    """A file whose header is ``document_bytes`` with a random MAC: what an attacker can write."""
    return PREFIX.pack(MAGIC, 2, len(document_bytes)) + document_bytes + os.urandom(MAC_BYTES) + b"\0" * 64


def valid_looking(**changes) -> bytes:
    document = {
        "kind": "archive", "key_id": "0123456789abcdef", "salt": "A" * 43 + "=", "nonce_prefix": "AAAAAAAAAA==",
        "chunk_size": 1048576, "created": "2026-12-03T12:00:00Z", "app_version": "0.2.0", "metadata": {},
    }  # fmt: skip
    document.update(changes)
    return json.dumps(document).encode()


def test_a_header_of_65536_brackets_is_refused_before_it_is_parsed(tmp_path):
    with pytest.raises(HeaderTamperedError, match="unreadable"):
        read_header(io.BytesIO(planted(b"[" * 65_536)))
    path = tmp_path / "nested.strix-archive"
    path.write_bytes(planted(b"[" * 65_536))
    with pytest.raises(CommandError) as refused:
        call_command("archives", "verify", "--file", str(path), stdout=io.StringIO())
    message = str(refused.value)
    assert "\n" not in message and "altered" in message  # one line, no traceback


def test_a_key_id_with_terminal_escapes_is_refused_and_never_printed_raw(tmp_path):
    fake = "\x1b[2J\x1b[HALL FILES VERIFIED"
    with pytest.raises(HeaderTamperedError, match="key id is not a key id"):
        read_header(io.BytesIO(planted(valid_looking(key_id=fake))))
    path = tmp_path / "escapes.strix-archive"
    path.write_bytes(planted(valid_looking(key_id=fake)))
    out = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("archives", "verify", "--file", str(path), stdout=out)
    assert "\x1b" not in str(refused.value) + out.getvalue()


def test_printed_values_escape_control_characters():
    assert printable("day \x1b[31mred\x07 tab\tok") == "day \\x1b[31mred\\x07 tab\\tok"
    assert printable("zoë 分析员 ok") == "zoë 分析员 ok"
