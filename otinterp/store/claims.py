"""Claims: lock files that let workers of one shard share its units, join late or be preempted."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from otinterp.store.records import now

__all__ = ["LOCK_STALE_S", "Claims"]

#: A lock not refreshed for this long is stale (its worker died on another machine).
LOCK_STALE_S = 30 * 60


class Claims:
    """Exclusive lock files ``locks/<unit>.lock``, so that workers can join late or be preempted.

    A lock names its host and process and is refreshed while its worker renders; one whose process
    is gone (same host) or that was not refreshed for :data:`LOCK_STALE_S` seconds is taken over.
    """

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / "locks"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.held: list[Path] = []
        self.me = {"host": socket.gethostname(), "pid": os.getpid()}

    def _path(self, unit: tuple[str, int]) -> Path:
        return self.folder / f"{unit[0]}-{unit[1]}.lock"

    def claim(self, unit: tuple[str, int]) -> bool:
        """Take ``unit``'s lock; False if another live worker holds it.

        A lock is written whole under a temporary name and hard-linked into place, so it is never
        seen empty. A stale lock is renamed to a name of our own and checked to be the very file
        judged stale (same inode and time); if a fresh lock was moved instead, it is put back.
        """
        path = self._path(unit)
        if self._create(path):
            return True
        seen = self._stale(path)
        if seen is None:
            return False
        grave = path.with_name(f".{path.name}.{self.me['host']}.{self.me['pid']}.stale")
        try:
            os.rename(path, grave)
        except FileNotFoundError:  # another worker took it over first
            return False
        moved = os.stat(grave)
        if (moved.st_ino, moved.st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns):  # a fresh lock: put it back
            try:
                os.link(grave, path)
            except FileExistsError:
                pass
            grave.unlink(missing_ok=True)
            return False
        grave.unlink(missing_ok=True)
        return self._create(path)

    def _create(self, path: Path) -> bool:
        tmp = path.with_name(f".{path.name}.{self.me['host']}.{self.me['pid']}.tmp")
        tmp.write_text(json.dumps({**self.me, "time": now()}))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self.held.append(path)
        return True

    def _stale(self, path: Path) -> os.stat_result | None:
        """The lock file's status if it is stale (its process is gone, or it was not refreshed for
        :data:`LOCK_STALE_S` seconds), else None."""
        try:
            status = path.stat()
            owner = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):  # locks are written whole: an unreadable one is debris
            return path.stat() if path.exists() else None
        if owner.get("host") == self.me["host"]:
            if owner.get("pid") == self.me["pid"]:
                return status
            try:
                os.kill(owner["pid"], 0)
            except ProcessLookupError:
                return status
            except (PermissionError, KeyError, TypeError):
                pass
        return status if time.time() - status.st_mtime > LOCK_STALE_S else None

    def refresh(self) -> None:
        """Mark the held locks as alive."""
        for path in self.held:
            path.touch(exist_ok=True)

    def release(self, unit: tuple[str, int] | None = None) -> None:
        """Remove ``unit``'s lock, or every held lock."""
        for path in [self._path(unit)] if unit is not None else list(self.held):
            path.unlink(missing_ok=True)
            self.held.remove(path)
