"""Atomic file writes: a file holds its old content or the complete new one, never a partial one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(write: Callable[[str], None], path: str | Path) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``path`` thus holds either its old content or the complete new one, never a partial file.
    Missing parent folders are created. The file gets the usual permissions (``write`` creates it;
    ``tempfile.mkstemp`` would leave it readable by its owner only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
