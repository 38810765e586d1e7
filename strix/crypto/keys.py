"""The keyring: which master key encrypts, which keys still decrypt, and their public ids.

``STRIX_BACKUP_ENCRYPTION_KEY`` (32 random bytes, base64) encrypts new files; keys listed in
``STRIX_BACKUP_DECRYPTION_KEYS`` still decrypt old ones after a rotation. A key id is derived from
the key by HMAC, so it can be written in headers and messages without revealing the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from strix.crypto.errors import KeyConfigError, UnknownKeyError

KEY_BYTES = 32
KEY_ID_BYTES = 8


def generate_key() -> str:
    """A new master key, base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_key(text: str, variable: str = "STRIX_BACKUP_ENCRYPTION_KEY") -> bytes:
    """Decode one base64 key, with an error naming the variable (never echoing the value)."""
    text = (text or "").strip()
    if not text:
        raise KeyConfigError(f"{variable} is not set; generate one with `strix-setup --generate-key`.")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(
            f"{variable} is not valid base64; it must be 32 random bytes in base64 "
            "(generate one with `strix-setup --generate-key`)."
        ) from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(
            f"{variable} decodes to {len(raw)} bytes; it must be exactly {KEY_BYTES} bytes in base64 "
            "(generate one with `strix-setup --generate-key`)."
        )
    return raw


def key_id(key: bytes) -> str:
    """Public identifier of a key: 16 hex digits of an HMAC, never the key itself."""
    return hmac.new(key, b"strix key id v1", hashlib.sha256).digest()[:KEY_ID_BYTES].hex()


def figures_salt(key: bytes, fractal_id: str) -> str:
    """The secret salt of a fractal's second row hash (strix.logstore.schema.salted_row_hash): bound to
    the key and the fractal, so that nobody without the key can craft rows to match a day's figures."""
    return hmac.new(key, b"strix day figures v1\0" + fractal_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Keyring:
    current: bytes | None
    by_id: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def current_id(self) -> str:
        if self.current is None:
            raise KeyConfigError(
                "STRIX_BACKUP_ENCRYPTION_KEY is not set; generate one with `strix-setup --generate-key`."
            )
        return key_id(self.current)

    def key_for(self, wanted_id: str) -> bytes:
        try:
            return self.by_id[wanted_id]
        except KeyError:
            raise UnknownKeyError(wanted_id) from None

    def __repr__(self):  # never print keys
        return f"Keyring(current={self.current_id if self.current else None}, ids={sorted(self.by_id)})"

    @classmethod
    def from_values(cls, encryption_key: str | None, decryption_keys: list[str] | tuple = ()) -> Keyring:
        current = parse_key(encryption_key) if encryption_key else None
        by_id = {}
        for position, text in enumerate(decryption_keys, start=1):
            old = parse_key(text, f"STRIX_BACKUP_DECRYPTION_KEYS (entry {position})")
            by_id[key_id(old)] = old
        if current is not None:
            by_id[key_id(current)] = current
        return cls(current=current, by_id=by_id)

    @classmethod
    def from_settings(cls) -> Keyring:
        from django.conf import settings

        return cls.from_values(settings.STRIX_BACKUP_ENCRYPTION_KEY, settings.STRIX_BACKUP_DECRYPTION_KEYS)
