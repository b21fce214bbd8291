"""Where image bytes live: a small ``Storage`` protocol and the local-filesystem one.

Keys are SHA-256 hex digests of the stored bytes (content addressing), so a key
never changes meaning and a file is never rewritten with other bytes. Anything
that is not 64 lowercase hex digits is not a key: ``..``, slashes and the like
never reach the filesystem.

A disk that cannot take a write or give back a read raises ``StorageFull`` (507) or
``StorageUnavailable`` (503), never a bare ``OSError``, and leaves no partial file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from media.errors import StorageFull, StorageUnavailable

KEY_PATTERN = re.compile(r"[0-9a-f]{64}")


def is_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (atomically; a no-op if the key is stored).
        Raises StorageFull or StorageUnavailable."""

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
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as file:
                    self._write(file, data)
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise disk_error(error) from error

    def _write(self, file: BinaryIO, data: bytes) -> None:
        """The one place bytes reach the disk (where a full or failing disk says so)."""
        file.write(data)
        file.flush()
        os.fsync(file.fileno())

    def get(self, key: str) -> bytes | None:
        if not is_key(key):
            return None
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise disk_error(error) from error

    def exists(self, key: str) -> bool:
        return is_key(key) and self.path(key).is_file()

    def delete(self, key: str) -> None:
        if is_key(key):
            self.path(key).unlink(missing_ok=True)


def disk_error(error: OSError) -> StorageFull | StorageUnavailable:
    """What a failed disk operation means for the client: full (507) or unavailable (503)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("The image store is full; nothing was stored.")
    reason = os.strerror(error.errno) if error.errno else type(error).__name__
    return StorageUnavailable(f"The image store cannot be used ({reason}); retry later.")


def storage_from_config(config: dict[str, Any] | Any) -> Storage:
    """The configured storage: ``MEDIA_STORAGE`` if given (an object), else ``MEDIA_ROOT``
    on the local filesystem."""
    storage: Storage | None = config.get("MEDIA_STORAGE")
    return storage if storage is not None else LocalStorage(config["MEDIA_ROOT"])
