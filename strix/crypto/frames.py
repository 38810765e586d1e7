"""The container's sealed frames (docs/FORMAT.md): ``flag u8 | length u32 BE | ciphertext ‖ tag(16)``.

Frame ``i`` is sealed with AES-256-GCM, nonce = nonce_prefix(7) ‖ i (u32 BE) ‖ flag(1) and
AAD = SHA-256(header), so reordering, truncation, splicing and header edits all fail authentication.
Writer and reader share these few definitions; everything about compression lives above them.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from Crypto.Cipher import AES

from strix.crypto import header as hdr
from strix.crypto.errors import (
    ChunkAuthenticationError,
    ChunkOrderError,
    LastChunkFlagError,
    TrailingDataError,
    TruncatedError,
)

TAG_BYTES = 16
FRAME = struct.Struct(">BI")
DATA, FINAL = 0, 1
MAX_TRAILER = 4096
# The frame counter is 4 bytes of the nonce: the final frame's counter is at most 2**32 - 1, so a file
# has at most 2**32 - 1 data frames and no nonce repeats. Writers refuse to go past it, readers refuse
# a file that claims more. (Read at each use, so that a test can lower it.)
MAX_COUNTER = 2**32 - 1
# Version 2's final frame: a trailer with its day index, at most 1 MiB and 10,000 segments (27 years
# of days; a 10-year index is about 400 KB).
MAX_TRAILER_V2 = 1024 * 1024
MAX_SEGMENTS = 10_000
# Version 2 ends with a locator: where the final frame starts and its counter, so that a reader can
# find the trailer's day index without reading the file (the final frame authenticates both).
LOCATOR = struct.Struct(">QI4s")
LOCATOR_MAGIC = b"SXDP"
# How far from its position a failed chunk is looked for, to tell reordering from tampering.
REORDER_SEARCH = 64


def nonce(prefix: bytes, index: int, flag: int) -> bytes:
    return prefix + struct.pack(">IB", index, flag)


def seal(key: bytes, header: hdr.Header, index: int, flag: int, plaintext: bytes) -> bytes:
    """One whole frame, prefix included."""
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce(header.nonce_prefix, index, flag))
    cipher.update(header.digest)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return FRAME.pack(flag, len(ciphertext) + TAG_BYTES) + ciphertext + tag


def frame_size(plaintext_bytes: int) -> int:
    return FRAME.size + plaintext_bytes + TAG_BYTES


def max_trailer(header: hdr.Header) -> int:
    """The largest trailer a reader accepts: version 2 trailers carry a day index."""
    return MAX_TRAILER if header.version == 1 else MAX_TRAILER_V2


class FrameSource:
    """Opens the frames of ``source`` in order, from counter ``index`` at byte ``offset`` of the file.

    Each call to :meth:`next_frame` returns ``(flag, index, offset, plaintext)`` of the next frame,
    authenticated; a data frame never comes out unless its tag verified at its own position.
    """

    def __init__(self, source: BinaryIO, header: hdr.Header, key: bytes, index: int = 0, offset: int | None = None):
        self._source = source
        self._header = header
        self._key = key
        self._aad = header.digest
        self.index = index
        self.offset = len(header.raw) if offset is None else offset
        # A frame's length is read before its body: capped per kind, so a forged length allocates nothing.
        self._max_length = {DATA: header.chunk_size + TAG_BYTES, FINAL: max_trailer(header) + TAG_BYTES}

    def next_frame(self) -> tuple[int, int, int, bytes]:
        if self.index > MAX_COUNTER:
            raise ChunkAuthenticationError(self.index, f"the file has more than {MAX_COUNTER} data frames")
        prefix = self._source.read(FRAME.size)
        if len(prefix) < FRAME.size:
            raise TruncatedError(
                f"the file ends after chunk {self.index - 1} without its final chunk; it was truncated."
                if not prefix
                else f"the file ends inside the frame of chunk {self.index}; it was truncated."
            )
        flag, length = FRAME.unpack(prefix)
        if flag not in (DATA, FINAL):
            raise ChunkAuthenticationError(self.index, "its frame is malformed")
        if not TAG_BYTES <= length <= self._max_length[flag]:
            what = "the header's chunk size" if flag == DATA else "the trailer's limit"
            raise ChunkAuthenticationError(self.index, f"its frame of {length} bytes exceeds {what}")
        body = _read_full(self._source, length)
        if len(body) < length:
            raise TruncatedError(f"the file ends inside chunk {self.index}; it was truncated.")
        index, offset = self.index, self.offset
        plaintext = self._open(body, index, flag)
        self.index += 1
        self.offset += FRAME.size + length
        return flag, index, offset, plaintext

    def read_locator(self, final_offset: int, final_index: int) -> None:
        """After the final frame of a version 2 file: its locator, then nothing."""
        raw = _read_full(self._source, LOCATOR.size)
        if len(raw) < LOCATOR.size:
            raise TruncatedError("the file ends inside its locator, after the final chunk; it was truncated.")
        offset, index, magic = LOCATOR.unpack(raw)
        if (offset, index, magic) != (final_offset, final_index, LOCATOR_MAGIC):
            raise TrailingDataError("the bytes after the final chunk are not its locator; the file was altered.")
        self.expect_end()

    def expect_end(self) -> None:
        if self._source.read(1):
            raise TrailingDataError("bytes follow the final chunk; data was appended to the file.")

    def _decrypt(self, body: bytes, index: int, flag: int) -> bytes | None:
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce(self._header.nonce_prefix, index, flag))
        cipher.update(self._aad)
        try:
            return cipher.decrypt_and_verify(body[:-TAG_BYTES], body[-TAG_BYTES:])
        except ValueError:
            return None

    def _open(self, body: bytes, index: int, flag: int) -> bytes:
        plaintext = self._decrypt(body, index, flag)
        if plaintext is not None:
            return plaintext
        # Failure path only: say what happened, as precisely as the file allows.
        if self._decrypt(body, index, 1 - flag) is not None:
            raise LastChunkFlagError(index)
        for other in range(max(0, index - REORDER_SEARCH), index + REORDER_SEARCH):
            if other != index and self._decrypt(body, other, flag) is not None:
                raise ChunkOrderError(index, other)
        raise ChunkAuthenticationError(index)


def _read_full(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    while data and len(data) < size:  # network streams may return less than asked
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    return data or b""
