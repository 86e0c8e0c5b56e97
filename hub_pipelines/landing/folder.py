"""The landing folder: files to import, laid out `<system>/<tenant>/<file>` under `HUB_LANDING_DIR`
(default `$HUB_HOME/landing`).

Offices drop Tally exports there (a shared folder, an SFTP drop); the webhook receiver writes its
notices there too. Only complete files count: a writer that renames into place (write `.name` or
`name.tmp`, then rename) is never read half-written, and a file copied in place (SMB, FTP) counts
once it has been left alone for `settle_seconds`. A handled file moves beside its siblings into
`processed/` or `failed/`, so the folder shows at a glance what is still to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from hub_pipelines.settings import SYSTEMS, TENANT_SLUG_PATTERN, env_seconds

Outcome = Literal["processed", "failed"]
HANDLED: tuple[Outcome, ...] = ("processed", "failed")
# Names writers use while a file is being written, before the rename that completes it.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".swp", ".lock")
SETTLE_SECONDS = 10.0
_TENANT = re.compile(TENANT_SLUG_PATTERN)


@dataclass(frozen=True)
class LandedFile:
    system: str
    tenant: str
    path: Path
    size: int

    @cached_property
    def sha256(self) -> str:
        """The content's hash, read in blocks: a file's identity whatever it is called."""
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def settle_seconds() -> float:
    """How long a file must be left alone before it counts (`HUB_LANDING_SETTLE_SECONDS`)."""
    return env_seconds("HUB_LANDING_SETTLE_SECONDS", SETTLE_SECONDS)


def tenant_folder(root: Path, system: str, tenant: str) -> Path:
    return root / system / tenant


def landed_files(root: Path, settle_seconds: float = SETTLE_SECONDS) -> Iterator[LandedFile]:
    """The complete files waiting in `root`, oldest first, in folders of known systems and valid
    tenant names (anything else is left alone: it is not ours to move)."""
    waiting = []
    now = time.time()
    for system in SYSTEMS:
        if not (root / system).is_dir():
            continue
        for folder in sorted((root / system).iterdir()):
            if folder.is_dir() and _TENANT.fullmatch(folder.name):
                waiting += [
                    (stat.st_mtime, LandedFile(system, folder.name, path, stat.st_size))
                    for path, stat in _complete(folder, now - settle_seconds)
                ]
    yield from (file for _, file in sorted(waiting, key=lambda pair: pair[0]))


def _complete(folder: Path, settled_before: float) -> Iterator[tuple[Path, os.stat_result]]:
    for path in folder.iterdir():
        name = path.name
        if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES) or not path.is_file():
            continue
        stat = path.stat()
        if stat.st_mtime <= settled_before:
            yield path, stat


def move(file: LandedFile, outcome: Outcome) -> Path:
    """Move a handled file into `processed/` or `failed/` beside it (a rename: atomic on one
    filesystem). A name already taken there gets the content hash added, so nothing is
    overwritten."""
    target_dir = file.path.parent / outcome
    target_dir.mkdir(exist_ok=True)
    target = target_dir / file.path.name
    if target.exists():
        target = target_dir / f"{file.path.stem}.{file.sha256[:12]}{file.path.suffix}"
    os.replace(file.path, target)
    return target
