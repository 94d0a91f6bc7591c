"""The index of a results folder: which paths of which units its parts hold, for one setting."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from otinterp.store.errors import DamagedResults
from otinterp.store.keys import differences, settings_sha256
from otinterp.store.parts import Part, Unit, read_part

__all__ = ["ResultIndex", "settings_disagreement"]


def settings_disagreement(parts: Iterable[Part], key: dict[str, Any]) -> str | None:
    """How the settings of ``parts`` differ from ``key``, in words; None if every part has them.

    A version-2 part names each setting (``steps: 8 in the parts, 6 asked``); a version-1 part
    records only a hash, so it names the hashes (``hash 0f0bc2e5e4ef in the parts, d18668e3a189 asked``).
    """
    key_sha = settings_sha256(key)
    other = [p for p in parts if p.key_sha256 != key_sha]
    if not other:
        return None
    found: dict[str, None] = {}
    for part in other:
        diffs = differences(part.key, key, ("in the parts", "asked")) if part.key is not None else [
            f"hash {part.key_sha256[:12]} in the parts, {key_sha[:12]} asked"]
        found.update(dict.fromkeys(diffs))
    return f"{'; '.join(found)}; {len(other)} part(s), e.g. {other[0].path.name}"


@dataclass
class ResultIndex:
    """Which paths of which units a results folder holds, for the settings ``key``.

    Every part is read once and checked (:func:`~otinterp.store.parts.read_part`). Parts are the
    truth: a valid part of other settings is a ``ValueError`` naming the setting and is never
    moved; a damaged part is a :class:`DamagedResults` naming it, or, with ``repair=True``, is
    moved to ``damaged/`` (its units are then rendered again). Nothing is moved when any part has
    other settings.
    """

    out_dir: Path
    key: dict[str, Any]
    repair: bool = False
    parts: list[Part] = field(default_factory=list)
    done: dict[Unit, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.refresh()

    @property
    def files(self) -> list[Path]:
        """The valid parts' paths, in the order read."""
        return [p.path for p in self.parts]

    def refresh(self) -> None:
        """Read the parts written since the last call (by this or another process)."""
        seen = set(self.files)
        parts, damaged = [], []
        for path in sorted((self.out_dir / "parts").glob("part-*.parquet")):
            if path in seen:
                continue
            try:
                parts.append(read_part(path))
            except DamagedResults as err:
                damaged.append((path, err))
        disagreement = settings_disagreement(parts, self.key)
        if disagreement:
            raise ValueError(f"{self.out_dir} holds parts of other settings ({disagreement}); use another run "
                             "folder (--set run_dir=…) or remove them")
        for path, err in damaged:
            self._set_aside(path, err)
        for part in parts:
            self.parts.append(part)
            for unit, paths in part.done().items():
                self.done.setdefault(unit, set()).update(paths)

    def _set_aside(self, path: Path, err: DamagedResults) -> None:
        if not self.repair:
            raise DamagedResults(f"{err}; run again with --repair (repair=True) to move it to "
                                 f"{self.out_dir / 'damaged'} and render its pairs again")
        (self.out_dir / "damaged").mkdir(exist_ok=True)
        try:
            shutil.move(path, self.out_dir / "damaged" / path.name)
        except FileNotFoundError:  # another worker moved it first
            return
        print(f"moved the damaged part {path.name} to damaged/ ({err})", flush=True)

    def missing(self, unit: Unit, paths: Iterable[str]) -> list[str]:
        """The paths of ``unit`` not yet on disk, in the order given."""
        have = self.done.get(unit, set())
        return [c for c in paths if c not in have]
