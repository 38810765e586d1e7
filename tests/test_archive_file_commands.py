"""`manage.py archives verify|decrypt`: an operator can check and read a file with only the key."""

import io
import os

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from strix.crypto.container import ContainerWriter
from strix.crypto.keys import Keyring, generate_key

NDJSON = b'{"timestamp":"2026-01-01 00:00:00","raw_log":"h\\u00e9","log_id":"1","fields":"{}"}\n' * 5000


@pytest.fixture
def archive_file(tmp_path):
    path = tmp_path / "a.strix-archive"
    with open(path, "wb") as sink:
        writer = ContainerWriter(
            sink,
            Keyring.from_settings(),
            "archive",
            {"fractal_id": "f-1", "fractal_name": "soc", "time_start": "a", "time_end": "b"},
            chunk_size=8192,
        )
        writer.begin_segment("2026-01-01")
        writer.write(NDJSON)
        writer.close()
    return path


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("archives", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_verify_prints_header_and_trailer(archive_file):
    out, _ = run("verify", "--file", str(archive_file))
    assert "authentic" in out
    for expected in (
        "archive",
        "rows: 5000",
        f"plaintext bytes: {len(NDJSON)}",
        "fractal name: soc",
        "format version: 3",
        "chunks: ",
    ):
        assert expected in out


def test_decrypt_writes_the_plaintext(archive_file, tmp_path):
    target = tmp_path / "out.ndjson"
    run("decrypt", "--file", str(archive_file), "-o", str(target))
    assert target.read_bytes() == NDJSON
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_decrypt_of_a_damaged_file_fails_and_writes_nothing(archive_file, tmp_path, damage):
    blob = bytearray(archive_file.read_bytes())
    if damage == "flip":
        from tests.test_container import FRAME, frames

        blob[frames(bytes(blob))[0][0] + FRAME.size + 2] ^= 0x01  # inside the first data chunk
    else:
        del blob[len(blob) // 2 :]
    archive_file.write_bytes(bytes(blob))
    target = tmp_path / "out.ndjson"
    with pytest.raises(CommandError) as caught:
        run("decrypt", "--file", str(archive_file), "-o", str(target))
    assert "truncated" in str(caught.value) or "failed authentication" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.strix-archive"]


def test_verify_with_the_wrong_key_names_the_key_id(archive_file, monkeypatch):
    monkeypatch.setattr(settings, "STRIX_BACKUP_ENCRYPTION_KEY", generate_key())
    with pytest.raises(CommandError, match="key id [0-9a-f]{16}.*STRIX_BACKUP_DECRYPTION_KEYS"):
        run("verify", "--file", str(archive_file))


@pytest.mark.parametrize("make_path", [lambda tmp: tmp / "missing.strix-archive", lambda tmp: tmp])
def test_missing_file_or_directory_is_a_clear_error(tmp_path, make_path):
    with pytest.raises(CommandError, match="does not exist|is a directory"):
        run("verify", "--file", str(make_path(tmp_path)))


def _attacks():
    from tests.test_container import FRAME, frames

    def flip_at(offset):
        return lambda blob: blob[:offset] + bytes([blob[offset] ^ 1]) + blob[offset + 1 :]

    def build(blob):
        spans = frames(blob)
        (a, la), (b, lb) = spans[1], spans[2]
        other = _sealed(RANDOM_NDJSON)
        oa, ol = frames(other)[1]
        return {
            "header bit": flip_at(30)(blob),
            "chunk bit": flip_at(spans[1][0] + FRAME.size + 3)(blob),
            "tag bit": flip_at(spans[1][0] + spans[1][1] - 2)(blob),
            "trailer bit": flip_at(spans[-1][0] + FRAME.size + 1)(blob),
            "truncated at a chunk boundary": blob[: spans[-1][0]],
            "truncated inside a chunk": blob[: spans[2][0] + 10],
            "chunks swapped": blob[:a] + blob[b : b + lb] + blob[a : a + la] + blob[b + lb :],
            "chunk spliced from another file": blob[:oa] + other[oa : oa + ol] + blob[oa + ol :],
            "bytes appended": blob + b"x",
            "last-chunk flag flipped": flip_at(spans[-1][0])(blob),
            "unsupported version": blob[:8] + b"\x00\x09" + blob[10:],
        }

    return build


RANDOM_NDJSON = b"".join(
    b'{"timestamp":"2026-01-01 00:00:00","raw_log":"' + os.urandom(200).hex().encode() + b'"}\n' for _ in range(200)
)


def _sealed(data: bytes) -> bytes:
    sink = io.BytesIO()
    writer = ContainerWriter(sink, Keyring.from_settings(), "archive", {}, chunk_size=8192, level=1)
    writer.begin_segment("2026-01-01")
    writer.write(data)
    writer.close()
    return sink.getvalue()


ATTACKS = [
    "header bit", "chunk bit", "tag bit", "trailer bit", "truncated at a chunk boundary", "truncated inside a chunk",
    "chunks swapped", "chunk spliced from another file", "bytes appended", "last-chunk flag flipped",
    "unsupported version",
]  # fmt: skip


@pytest.mark.parametrize("attack", ATTACKS)
def test_decrypt_refuses_every_attack_and_leaves_no_output(tmp_path, attack):
    blob = _sealed(RANDOM_NDJSON)
    damaged = _attacks()(blob)[attack]
    assert len(damaged) != len(blob) or damaged != blob
    source = tmp_path / "in.strix-archive"
    source.write_bytes(damaged)
    with pytest.raises(CommandError):
        run("decrypt", "--file", str(source), "-o", str(tmp_path / "out.ndjson"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.strix-archive"]


def test_decrypt_of_a_file_from_an_unknown_key_leaves_no_output(tmp_path, monkeypatch):
    source = tmp_path / "in.strix-archive"
    source.write_bytes(_sealed(NDJSON))
    monkeypatch.setattr(settings, "STRIX_BACKUP_ENCRYPTION_KEY", generate_key())
    with pytest.raises(CommandError, match="key id"):
        run("decrypt", "--file", str(source), "-o", str(tmp_path / "out.ndjson"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.strix-archive"]


def test_verify_of_an_archive_whose_day_label_is_shifted_fails_naming_the_day(tmp_path):
    """Only a key holder can write such a file (a writer's bug): its rows of 1 January filed as 2 January."""
    path = tmp_path / "shifted.strix-archive"
    with open(path, "wb") as sink:
        writer = ContainerWriter(sink, Keyring.from_settings(), "archive", {}, chunk_size=8192)
        writer.begin_segment("2026-01-02")
        writer.write(NDJSON)
        writer.close()
    with pytest.raises(CommandError, match=r"day 2026-01-02 holds 5000 row\(s\) whose timestamp is not on that day"):
        run("verify", "--file", str(path))
