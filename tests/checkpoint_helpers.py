"""What the checkpoint-reader tests share: a PyTorch-style zip checkpoint around a given pickle, and an
object whose unpickling would run a command (the reader must refuse it before calling anything)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path


def checkpoint(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return path


class Runs:
    """Unpickling this would call os.system: the reader must refuse before calling anything."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))
