"""The container's clear, authenticated header (layout in docs/FORMAT.md).

    magic "STRIXDP\\n" (8) | version u16 BE | length u32 BE | header JSON (length bytes) | HMAC-SHA256 (32)

The JSON can be read without any key (for listings, as unauthenticated text). A reader that holds
the key authenticates the header **before** parsing its JSON: the key id and salt are taken from the
raw bytes (each the one match of its exact written form), the HMAC over the raw bytes is checked, and
only then is the JSON parsed (nesting capped) and required to say the same key id and salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from strix.crypto.errors import (
    HeaderTamperedError,
    NotAContainerError,
    TruncatedError,
    UnsupportedVersionError,
)

MAGIC = b"STRIXDP\n"
FORMAT_VERSION = 3  # written; every version in READABLE_VERSIONS is read
READABLE_VERSIONS = (1, 2, 3)
PREFIX = struct.Struct(">8sHI")
MAC_BYTES = 32
MAX_HEADER_JSON = 64 * 1024
SALT_BYTES = 32
NONCE_PREFIX_BYTES = 7
KINDS = ("archive", "backup")
# The header JSON nests two levels (the document and its metadata); anything deeper is refused before
# it is parsed, so that a crafted header cannot exhaust the parser.
MAX_NESTING = 4
KEY_ID = re.compile(r"[0-9a-f]{16}")  # keys.key_id: 16 hex digits
# How a writer writes them (sorted keys, no spaces): found in the raw bytes before anything is parsed.
RAW_KEY_ID = re.compile(rb'"key_id":"([0-9a-f]{16})"')
RAW_SALT = re.compile(rb'"salt":"([A-Za-z0-9+/]{43}=)"')
# Chunk sizes a file may declare: at least 512 bytes (with at most 2**32 - 1 data frames, 2 TiB in one
# file), at most 16 MiB (no reader allocates more for one frame).
MIN_CHUNK_SIZE = 512
MAX_CHUNK_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Header:
    kind: str
    key_id: str
    salt: bytes
    nonce_prefix: bytes
    chunk_size: int
    created: str
    app_version: str
    metadata: dict = field(default_factory=dict)
    raw: bytes = b""  # the exact bytes as written, MAC included; their SHA-256 is every chunk's AAD
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        document = {
            "kind": self.kind,
            "key_id": self.key_id,
            "salt": base64.b64encode(self.salt).decode(),
            "nonce_prefix": base64.b64encode(self.nonce_prefix).decode(),
            "chunk_size": self.chunk_size,
            "created": self.created,
            "app_version": self.app_version,
            "metadata": self.metadata,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


@dataclass(frozen=True)
class FileKeys:
    header_mac_key: bytes
    payload_key: bytes


def derive_file_keys(master_key: bytes, salt: bytes) -> FileKeys:
    """Per-file keys from the master key and the file's random salt (HKDF-SHA256)."""
    header_key, payload_key = HKDF(master_key, 32, salt, SHA256, num_keys=2, context=b"strix-container v1")
    return FileKeys(header_mac_key=header_key, payload_key=payload_key)


def encode_header(header: Header, keys: FileKeys) -> bytes:
    body = header.to_json()
    signed = PREFIX.pack(MAGIC, header.version, len(body)) + body
    return signed + hmac.new(keys.header_mac_key, signed, hashlib.sha256).digest()


@dataclass(frozen=True)
class RawHeader:
    """The header's bytes as read, not yet parsed: magic and version checked, length capped."""

    version: int
    body: bytes  # the JSON
    raw: bytes  # prefix, JSON and MAC, as written


def read_raw_header(source: BinaryIO) -> RawHeader:
    prefix = _read_exact(source, PREFIX.size, "the header")
    magic, version, length = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise NotAContainerError("not a Strix Data Protection archive or backup (wrong magic bytes).")
    if version not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"container format version {version} is not supported (this release reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade Strix Data Protection to read it."
        )
    if length > MAX_HEADER_JSON:
        raise HeaderTamperedError(f"header length {length} exceeds {MAX_HEADER_JSON} bytes; the header was altered.")
    body = _read_exact(source, length, "the header")
    mac = _read_exact(source, MAC_BYTES, "the header")
    return RawHeader(version, body, prefix + body + mac)


def raw_key_id(raw: RawHeader) -> str:
    """The key id, from the unparsed bytes: the one ``"key_id":"<16 hex digits>"`` they hold."""
    return _one(RAW_KEY_ID, raw.body, "key id").decode()


def authenticate(raw: RawHeader, master_key: bytes) -> tuple[Header, FileKeys]:
    """Check the header's MAC over its raw bytes, then parse it: nothing of an unauthenticated header
    is parsed but the key id and salt, each taken as the one match of its exact written form."""
    salt = base64.b64decode(_one(RAW_SALT, raw.body, "salt"))
    keys = derive_file_keys(master_key, salt)
    signed, mac = raw.raw[:-MAC_BYTES], raw.raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(keys.header_mac_key, signed, hashlib.sha256).digest()):
        raise HeaderTamperedError("the header failed authentication: it was altered after the file was written.")
    header = parse_header(raw)
    if header.salt != salt or header.key_id != raw_key_id(raw):
        raise HeaderTamperedError("the header names its key or salt twice; it was altered.")
    return header, keys


def _one(pattern: re.Pattern, body: bytes, what: str) -> bytes:
    found = pattern.findall(body)
    if len(found) != 1:
        raise HeaderTamperedError(f"the header does not hold exactly one {what} as written; it was altered.")
    return found[0]


def read_header(source: BinaryIO) -> Header:
    """Parse the header without verifying it (no key needed, for listings): unauthenticated."""
    return parse_header(read_raw_header(source))


def parse_header(raw: RawHeader) -> Header:
    body = raw.body
    try:
        _require_shallow(body)
        document = json.loads(body)
        header = Header(
            kind=document["kind"],
            key_id=document["key_id"],
            salt=base64.b64decode(document["salt"], validate=True),
            nonce_prefix=base64.b64decode(document["nonce_prefix"], validate=True),
            chunk_size=int(document["chunk_size"]),
            created=document["created"],
            app_version=document["app_version"],
            metadata=document.get("metadata") or {},
            raw=raw.raw,
            version=raw.version,
        )
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise HeaderTamperedError(f"the header is unreadable ({e.__class__.__name__}); it was altered.") from None
    if not isinstance(header.key_id, str) or not KEY_ID.fullmatch(header.key_id):
        # Checked before anything prints it: an unauthenticated header must not reach a terminal as is.
        raise HeaderTamperedError("the header's key id is not a key id (16 hex digits); it was altered.")
    if (
        header.kind not in KINDS
        or len(header.salt) != SALT_BYTES
        or len(header.nonce_prefix) != NONCE_PREFIX_BYTES
        or not MIN_CHUNK_SIZE <= header.chunk_size <= MAX_CHUNK_SIZE
        or not isinstance(header.metadata, dict)
    ):
        raise HeaderTamperedError("the header holds impossible values; it was altered.")
    return header


def _require_shallow(body: bytes) -> None:
    """Refuse JSON nested deeper than MAX_NESTING (brackets inside strings do not count)."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > MAX_NESTING:
                raise ValueError(f"nested deeper than {MAX_NESTING} levels")
        elif byte in (0x7D, 0x5D):
            depth -= 1


def _read_exact(source: BinaryIO, size: int, what: str) -> bytes:
    data = source.read(size)
    while data is not None and len(data) < size:
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    if not data or len(data) < size:
        if not data and what == "the header":
            raise NotAContainerError("the file is empty or too short to be a Strix Data Protection file.")
        raise TruncatedError(f"the file ends inside {what}; it was truncated.")
    return data
