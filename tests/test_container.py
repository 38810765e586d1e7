"""The encrypted container: exact round trips, and every attack refused with its own error."""

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strix.crypto import errors
from strix.crypto import frames as frame_format
from strix.crypto.container import CHUNK_SIZE, ContainerWriter
from strix.crypto.frames import FRAME, LOCATOR, TAG_BYTES
from strix.crypto.header import FORMAT_VERSION, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, PREFIX
from strix.crypto.keys import Keyring, generate_key, key_id, parse_key
from strix.crypto.reader import ContainerReader, CountingReader

KEY_A = generate_key()
KEY_B = generate_key()
SMALL_CHUNK = 4096


def seal(data: bytes, keyring=None, kind="backup", chunk_size=CHUNK_SIZE, metadata=None, level=3) -> bytes:
    sink = io.BytesIO()
    writer = ContainerWriter(
        sink, keyring or Keyring.from_values(KEY_A), kind, metadata or {}, chunk_size=chunk_size, level=level
    )
    for offset in range(0, len(data), 65536):
        writer.write(data[offset : offset + 65536])
    writer.close()
    return sink.getvalue()


def open_all(blob: bytes, keyring=None) -> tuple[bytes, ContainerReader]:
    reader = ContainerReader(io.BytesIO(blob), keyring or Keyring.from_values(KEY_A))
    return b"".join(reader), reader


def frames(blob: bytes) -> list[tuple[int, int]]:
    """(offset, total length) of every frame after the header, up to and including the final one."""
    offset = PREFIX.size + PREFIX.unpack(blob[: PREFIX.size])[2] + 32
    spans, flag = [], 0
    while flag != 1:
        flag, length = FRAME.unpack(blob[offset : offset + FRAME.size])
        spans.append((offset, FRAME.size + length))
        offset += FRAME.size + length
    return spans


def incompressible(n: int) -> bytes:
    return os.urandom(n)


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE - 1,
        3 * CHUNK_SIZE,
        3 * CHUNK_SIZE + 1,
    ],
)
def test_round_trip_is_exact_around_chunk_boundaries(size):
    data = incompressible(size)  # random bytes keep compressed size close to plaintext size
    plain, reader = open_all(seal(data))
    assert plain == data
    assert reader.trailer.plaintext_bytes == size


def test_round_trip_of_200_mb_streams_exactly():
    block = os.urandom(1 << 20)
    sink = io.BytesIO()
    writer = ContainerWriter(sink, Keyring.from_values(KEY_A), "backup", {}, level=1)
    import hashlib

    digest = hashlib.sha256()
    for i in range(200):
        piece = block[i:] + block[:i] + b"\n"
        digest.update(piece)
        writer.write(piece)
    trailer = writer.close()
    sink.seek(0)
    reader = ContainerReader(sink, Keyring.from_values(KEY_A))
    check = hashlib.sha256()
    for chunk in reader:
        check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()
    assert reader.trailer == trailer and trailer.plaintext_bytes == 200 * ((1 << 20) + 1)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=50_000), chunk_size=st.integers(min_value=MIN_CHUNK_SIZE, max_value=9000))
def test_property_round_trip_for_any_data_and_chunk_size(data, chunk_size):
    plain, _ = open_all(seal(data, chunk_size=chunk_size))
    assert plain == data


def test_archive_trailer_counts_rows():
    _, reader = open_all(seal_days({"2026-11-01": day_rows(1, 3)}))
    assert reader.trailer.rows == 3


def test_a_buffer_the_caller_reuses_after_writing_it_is_sealed_as_it_was_written():
    """The writer compresses on another thread, later: views of bytes are kept as they are (they cannot
    change), a bytearray or a view of one is copied first, so reusing it does not change the file."""
    parts = [os.urandom(100_000) for _ in range(6)]
    sink, reused = io.BytesIO(), bytearray(100_000)
    writer = ContainerWriter(sink, Keyring.from_values(KEY_A), "backup", {})
    for index, part in enumerate(parts):
        if index % 3 == 0:
            writer.write(memoryview(part)[:])
        else:
            reused[:] = part
            writer.write(reused if index % 3 == 1 else memoryview(reused))
        reused[:] = b"\0" * len(reused)  # the caller's next read overwrites its buffer at once
    writer.close()
    assert open_all(sink.getvalue())[0] == b"".join(parts)


@pytest.mark.parametrize("chunk_size", [0, 1, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1])
def test_a_chunk_size_outside_the_formats_limits_is_refused_by_the_writer(chunk_size):
    with pytest.raises(ValueError, match="chunk_size must be"):
        ContainerWriter(io.BytesIO(), Keyring.from_values(KEY_A), "backup", {}, chunk_size=chunk_size)


def test_same_plaintext_twice_gives_different_ciphertext():
    data = b"same plaintext" * 1000
    first, second = seal(data), seal(data)
    assert first != second
    assert open_all(first)[0] == open_all(second)[0] == data


def test_rotation_old_key_still_decrypts_and_new_files_carry_new_key_id():
    old_file = seal(b"written under A")
    rotated = Keyring.from_values(KEY_B, [KEY_A])
    assert open_all(old_file, rotated)[0] == b"written under A"
    new_file = seal(b"written under B", keyring=rotated)
    assert ContainerReader(io.BytesIO(new_file), rotated).header.key_id == key_id(parse_key(KEY_B))
    with pytest.raises(errors.UnknownKeyError):
        open_all(new_file, Keyring.from_values(KEY_A))


def test_file_from_unknown_key_fails_at_once_naming_the_key_id():
    blob = seal(b"secret")
    with pytest.raises(errors.UnknownKeyError) as caught:
        ContainerReader(io.BytesIO(blob), Keyring.from_values(KEY_B))
    assert key_id(parse_key(KEY_A)) in str(caught.value)
    assert "STRIX_BACKUP_DECRYPTION_KEYS" in str(caught.value)
    assert KEY_A not in str(caught.value)


# --- attacks -------------------------------------------------------------------------------------

MULTI = incompressible(5 * SMALL_CHUNK + 123)


@pytest.fixture
def multi_chunk_file():
    blob = seal(MULTI, chunk_size=SMALL_CHUNK, level=1)
    assert len(frames(blob)) >= 6
    return blob


def flip(blob: bytes, offset: int, bit: int = 0) -> bytes:
    mutated = bytearray(blob)
    mutated[offset] ^= 1 << bit
    return bytes(mutated)


def refuse(blob: bytes, error):
    with pytest.raises(error) as caught:
        open_all(blob)
    return caught.value


def test_bit_flipped_in_header_metadata_is_refused(multi_chunk_file):
    header_json_start = PREFIX.size
    position = multi_chunk_file.index(b'"created"', header_json_start) + 12
    refuse(flip(multi_chunk_file, position), errors.HeaderTamperedError)


def test_bit_flipped_in_header_mac_is_refused(multi_chunk_file):
    first_frame = frames(multi_chunk_file)[0][0]
    refuse(flip(multi_chunk_file, first_frame - 1), errors.HeaderTamperedError)


def test_bit_flipped_in_a_chunk_is_refused_naming_the_chunk(multi_chunk_file):
    offset, _ = frames(multi_chunk_file)[2]
    error = refuse(flip(multi_chunk_file, offset + FRAME.size + 10), errors.ChunkAuthenticationError)
    assert error.index == 2 and type(error) is errors.ChunkAuthenticationError


def test_bit_flipped_in_a_tag_is_refused(multi_chunk_file):
    offset, length = frames(multi_chunk_file)[1]
    error = refuse(flip(multi_chunk_file, offset + length - TAG_BYTES + 3), errors.ChunkAuthenticationError)
    assert error.index == 1


def test_bit_flipped_in_the_trailer_is_refused(multi_chunk_file):
    offset, _ = frames(multi_chunk_file)[-1]
    error = refuse(flip(multi_chunk_file, offset + FRAME.size + 2), errors.ChunkAuthenticationError)
    assert error.index == len(frames(multi_chunk_file)) - 1


def test_last_chunk_flag_flipped_is_refused(multi_chunk_file):
    last, _ = frames(multi_chunk_file)[-1]
    refuse(flip(multi_chunk_file, last), errors.LastChunkFlagError)
    first, _ = frames(multi_chunk_file)[0]
    refuse(flip(multi_chunk_file, first), errors.LastChunkFlagError)


def test_truncation_at_every_chunk_boundary_is_refused(multi_chunk_file):
    for offset, _ in frames(multi_chunk_file):
        error = refuse(multi_chunk_file[:offset], errors.TruncatedError)
        assert "truncated" in str(error)


def test_truncation_inside_chunks_is_refused(multi_chunk_file):
    for offset, length in frames(multi_chunk_file):
        for cut in (1, FRAME.size, FRAME.size + 1, length // 2, length - 1):
            refuse(multi_chunk_file[: offset + cut], errors.TruncatedError)


def test_truncation_inside_the_locator_is_refused(multi_chunk_file):
    for cut in range(1, LOCATOR.size):
        error = refuse(multi_chunk_file[:-cut], errors.TruncatedError)
        assert "locator" in str(error)


def test_truncation_inside_the_header_is_refused(multi_chunk_file):
    refuse(multi_chunk_file[: PREFIX.size + 5], errors.TruncatedError)


def test_two_chunks_swapped_are_refused(multi_chunk_file):
    (a, la), (b, lb) = frames(multi_chunk_file)[1:3]
    swapped = multi_chunk_file[:a] + multi_chunk_file[b : b + lb] + multi_chunk_file[a : a + la]
    swapped += multi_chunk_file[b + lb :]
    error = refuse(swapped, errors.ChunkOrderError)
    assert (error.index, error.found) == (1, 2)


def test_chunk_spliced_from_another_file_with_the_same_key_is_refused(multi_chunk_file):
    other = seal(incompressible(len(MULTI)), chunk_size=SMALL_CHUNK, level=1)
    offset, length = frames(multi_chunk_file)[2]
    other_offset, other_length = frames(other)[2]
    assert length == other_length
    spliced = multi_chunk_file[:offset] + other[other_offset : other_offset + other_length]
    spliced += multi_chunk_file[offset + length :]
    error = refuse(spliced, errors.ChunkAuthenticationError)
    assert error.index == 2


def test_bytes_appended_are_refused(multi_chunk_file):
    refuse(multi_chunk_file + b"\x00", errors.TrailingDataError)


def test_unsupported_version_is_refused(multi_chunk_file):
    mutated = bytearray(multi_chunk_file)
    mutated[8:10] = (FORMAT_VERSION + 1).to_bytes(2, "big")
    error = refuse(bytes(mutated), errors.UnsupportedVersionError)
    assert "upgrade" in str(error)


def test_not_a_container_is_refused():
    refuse(b"PGDMP\x01\x0e" + b"\x00" * 100, errors.NotAContainerError)
    refuse(b"", errors.NotAContainerError)


class FailingSink:
    def __init__(self, fail_after: int):
        self.written = 0
        self.fail_after = fail_after

    def write(self, data):
        self.written += len(data)
        if self.written > self.fail_after:
            raise OSError(28, "No space left on device")
        return len(data)


def test_a_failing_sink_surfaces_its_error_to_the_writer_without_hanging():
    writer = ContainerWriter(FailingSink(3 * CHUNK_SIZE), Keyring.from_values(KEY_A), "backup", {}, level=1)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(64):
            writer.write(incompressible(CHUNK_SIZE))
        writer.close()
    writer.abort()
    assert not writer._thread.is_alive()


def test_context_manager_aborts_on_error_and_writes_no_trailer():
    sink = io.BytesIO()
    with pytest.raises(RuntimeError, match="boom"):
        with ContainerWriter(sink, Keyring.from_values(KEY_A), "backup", {}) as writer:
            writer.write(b"partial data")
            raise RuntimeError("boom")
    assert writer.trailer is None
    with pytest.raises(errors.TruncatedError):
        open_all(sink.getvalue())


# --- version 2: segments that can be read alone ----------------------------------------------------


def day_rows(day: int, n: int) -> bytes:
    return b"".join(
        b'{"timestamp":"2026-11-%02d 10:00:%02d","raw_log":"row %d"}\n' % (day, i % 60, i) for i in range(n)
    )


DAYS = {f"2026-11-{d:02d}": day_rows(d, 300 + 40 * d) for d in range(1, 8)}


def seal_days(days: dict[str, bytes], chunk_size=SMALL_CHUNK) -> bytes:
    sink = io.BytesIO()
    writer = ContainerWriter(sink, Keyring.from_values(KEY_A), "archive", {}, chunk_size=chunk_size, level=1)
    for label, data in days.items():
        writer.begin_segment(label)
        for offset in range(0, len(data), 5000):
            writer.write(data[offset : offset + 5000])
    writer.close()
    return sink.getvalue()


def test_a_segmented_file_reads_whole_and_indexes_every_day():
    blob = seal_days({**DAYS, "2026-11-08": b""})  # a day without rows gets no segment
    plain, reader = open_all(blob)
    assert plain == b"".join(DAYS.values())
    assert [s.label for s in reader.trailer.segments] == list(DAYS)
    assert [s.rows for s in reader.trailer.segments] == [d.count(b"\n") for d in DAYS.values()]
    assert ContainerReader(io.BytesIO(blob), Keyring.from_values(KEY_A)).index() == reader.trailer


def test_one_segment_is_read_alone_from_its_own_chunks():
    blob = seal_days(DAYS)
    source = CountingReader(io.BytesIO(blob))
    reader = ContainerReader(source, Keyring.from_values(KEY_A))
    assert b"".join(reader.read_segments(["2026-11-04"])) == DAYS["2026-11-04"]
    assert source.bytes_read < len(blob) / 3  # header, locator, trailer and one day of seven
    both = b"".join(reader.read_segments(["2026-11-06", "2026-11-02"]))  # in file order
    assert both == DAYS["2026-11-02"] + DAYS["2026-11-06"]
    assert b"".join(reader.read_segments(["2025-01-01"])) == b""


def test_a_damaged_day_fails_only_the_reads_that_touch_it():
    blob = seal_days(DAYS)
    index = ContainerReader(io.BytesIO(blob), Keyring.from_values(KEY_A)).index()
    third = index.segment("2026-11-03")
    damaged = flip(blob, third.offset + FRAME.size + 7)
    reader = ContainerReader(io.BytesIO(damaged), Keyring.from_values(KEY_A))
    assert b"".join(reader.read_segments(["2026-11-05"])) == DAYS["2026-11-05"]
    with pytest.raises(errors.ChunkAuthenticationError) as caught:
        b"".join(reader.read_segments(["2026-11-03"]))
    assert caught.value.index == third.chunk
    refuse(damaged, errors.ChunkAuthenticationError)


def test_a_locator_pointing_elsewhere_is_refused():
    blob = seal_days(DAYS)
    final_offset, chunks, magic = LOCATOR.unpack(blob[-LOCATOR.size :])
    for altered in (
        LOCATOR.pack(final_offset - 1, chunks, magic),
        LOCATOR.pack(final_offset, chunks - 1, magic),
        LOCATOR.pack(final_offset, chunks, b"XXXX"),
    ):
        reader = ContainerReader(io.BytesIO(blob[: -LOCATOR.size] + altered), Keyring.from_values(KEY_A))
        with pytest.raises(errors.ContainerError):
            reader.index()
        refuse(blob[: -LOCATOR.size] + altered, errors.ContainerError)


def test_segments_must_cover_everything_or_nothing():
    writer = ContainerWriter(io.BytesIO(), Keyring.from_values(KEY_A), "archive", {})
    writer.write(b"{}\n")
    with pytest.raises(ValueError):
        writer.begin_segment("2026-11-01")
    writer.abort()
    writer = ContainerWriter(io.BytesIO(), Keyring.from_values(KEY_A), "archive", {})
    writer.begin_segment("2026-11-01")
    with pytest.raises(ValueError):
        writer.begin_segment("2026-11-01")
    writer.abort()


def test_the_reader_counts_the_rows_it_returned_once_for_its_callers():
    blob = seal_days(DAYS)
    reader = ContainerReader(io.BytesIO(blob), Keyring.from_values(KEY_A))
    seen = 0
    for block in reader:
        seen += block.count(b"\n")
        assert reader.rows_read == seen
    one_day = ContainerReader(io.BytesIO(blob), Keyring.from_values(KEY_A))
    assert b"".join(one_day.read_segments(["2026-11-02", "2026-11-05"])).count(b"\n") == one_day.rows_read
    assert one_day.rows_read == DAYS["2026-11-02"].count(b"\n") + DAYS["2026-11-05"].count(b"\n")


def test_the_writer_refuses_to_pass_the_frame_counter_cap(monkeypatch):
    """The counter is 4 bytes of every nonce: past its cap a nonce would repeat (cap lowered here)."""
    monkeypatch.setattr(frame_format, "MAX_COUNTER", 5)
    writer = ContainerWriter(io.BytesIO(), Keyring.from_values(KEY_A), "backup", {}, chunk_size=MIN_CHUNK_SIZE)
    with pytest.raises(errors.ContainerError, match="more than 5 data frames"):
        writer.write(incompressible(10 * MIN_CHUNK_SIZE))
        writer.close()
    writer.abort()
    # Up to the cap is fine: 5 data frames and the final frame numbered 5.
    sink = io.BytesIO()
    writer = ContainerWriter(sink, Keyring.from_values(KEY_A), "backup", {}, chunk_size=MIN_CHUNK_SIZE)
    writer.write(incompressible(4 * MIN_CHUNK_SIZE))
    assert writer.close().chunks == 5


def test_the_reader_refuses_a_file_that_claims_more_frames_than_the_cap(monkeypatch):
    blob = seal(incompressible(10 * MIN_CHUNK_SIZE), chunk_size=MIN_CHUNK_SIZE)
    monkeypatch.setattr(frame_format, "MAX_COUNTER", 5)  # the same file, read as if the cap were 5
    assert "more than 5 data frames" in str(refuse(blob, errors.ChunkAuthenticationError))
    reader = ContainerReader(io.BytesIO(blob), Keyring.from_values(KEY_A))
    with pytest.raises(errors.TruncatedError):  # its locator names a counter past the cap
        reader.index()
