"""Where image bytes live: a small ``Storage`` protocol and the local-filesystem one.

Keys are SHA-256 hex digests of the stored bytes (content addressing), so a key
never changes meaning and a file is never rewritten with other bytes. Anything
that is not 64 lowercase hex digits is not a key: ``..``, slashes and the like
never reach the filesystem.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

KEY_PATTERN = re.compile(r"[0-9a-f]{64}")


def is_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (atomically; a no-op if the key is stored)."""

    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


class LocalStorage:
    """Files under ``root``, fanned out as ``ab/cd/abcd…`` so no directory grows huge.

    Writes go to a temporary file in the target directory, are fsynced, then
    renamed over the final name (``os.replace`` is atomic on POSIX): a reader or a
    crash never sees half a file.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not is_key(key):
            raise ValueError("not a storage key")
        return self.root / key[:2] / key[2:4] / key

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        if not is_key(key):
            return None
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return is_key(key) and self.path(key).is_file()

    def delete(self, key: str) -> None:
        if is_key(key):
            self.path(key).unlink(missing_ok=True)


def storage_from_config(config: dict[str, Any] | Any) -> Storage:
    """The configured storage (``MEDIA_ROOT`` on the local filesystem)."""
    return LocalStorage(config["MEDIA_ROOT"])
