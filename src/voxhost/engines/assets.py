"""Model files shipped inside Python packages: finding them, and assembling split ones once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def package_dir(package: str) -> Path:
    """The directory of an installed package (imports it, so call it where the engine loads)."""
    module = importlib.import_module(package)
    assert module.__file__ is not None
    return Path(module.__file__).parent


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def assemble_parts(
    parts: list[Path],
    extras: list[Path],
    target: Path,
    filename: str = "model.bin",
    sha256: str | None = None,
) -> Path:
    """Join `parts` into `target/filename` beside copies of `extras`, once; returns `target`.

    Safe against concurrent workers (a file lock) and interrupted runs (write to a temporary name, then
    rename). A complete file is recognised by its size and reused without reading the parts again; with
    `sha256`, a freshly joined file is checked before it is put in place.
    """
    expected = sum(p.stat().st_size for p in parts)
    joined = target / filename

    def complete() -> bool:
        return (
            joined.is_file()
            and joined.stat().st_size == expected
            and all((target / e.name).is_file() for e in extras)
        )

    if complete():
        return target
    with file_lock(target.parent / f".{target.name}.lock"):
        if complete():
            return target
        target.mkdir(parents=True, exist_ok=True)
        for extra in extras:
            shutil.copyfile(extra, target / extra.name)
        partial = target / f"{filename}.partial"
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            partial.unlink()
            raise RuntimeError(
                f"the parts of {filename} are corrupt (sha256 mismatch); reinstall their packages"
            )
        os.replace(partial, joined)
    return target
