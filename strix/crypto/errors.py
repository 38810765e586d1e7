"""What can be wrong with a container file, each with a message an operator can act on."""

from strix.errors import OperatorError


class ContainerError(OperatorError):
    """The file cannot be trusted or read; nothing it produced should be kept."""


class KeyConfigError(ContainerError):
    """A configured key is missing or malformed. The message never contains the key."""


class UnknownKeyError(ContainerError):
    def __init__(self, key_id: str):
        self.key_id = key_id
        super().__init__(
            f"this file was encrypted with key id {key_id}, which is not configured; add that key to "
            "STRIX_BACKUP_DECRYPTION_KEYS (comma-separated) or set it as STRIX_BACKUP_ENCRYPTION_KEY."
        )


class NotAContainerError(ContainerError):
    pass


class UnsupportedVersionError(ContainerError):
    pass


class HeaderTamperedError(ContainerError):
    pass


class ChunkAuthenticationError(ContainerError):
    def __init__(self, index: int, detail: str = "tampered, corrupted, or spliced from another file"):
        self.index = index
        super().__init__(f"chunk {index} failed authentication ({detail}); the file cannot be trusted.")


class ChunkOrderError(ChunkAuthenticationError):
    def __init__(self, index: int, found: int):
        self.found = found
        super().__init__(index, f"it holds chunk {found}: chunks were reordered")


class LastChunkFlagError(ChunkAuthenticationError):
    def __init__(self, index: int):
        super().__init__(index, "its last-chunk flag was altered")


class TruncatedError(ContainerError):
    pass


class TrailingDataError(ContainerError):
    pass


class CorruptCompressionError(ContainerError):
    pass


class TrailerMismatchError(ContainerError):
    pass
