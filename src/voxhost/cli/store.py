"""`voxhost models pull | rm | du`: the model cache on disk.

What lives in the cache (`--cache-dir`): hub models downloaded by the engines' own logic (faster-whisper
through huggingface_hub under `hub/`, Piper voices under `piper/`), and embedded models whose parts
were joined into one file (`models/`). Embedded packages themselves are managed by pip.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from voxhost.engines import engines
from voxhost.errors import BadRequest, ModelNotFound


@dataclass(frozen=True)
class CacheEntry:
    name: str
    engine: str
    kind: str  # "hub" (downloaded) or "assembled" (an embedded model's joined parts)
    paths: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(_size(p) for p in self.paths)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def cached(cache_dir: Path) -> list[CacheEntry]:
    """What the cache holds, model by model."""
    entries = []
    for engine in engines().values():
        for name, present in engine.hub_models(cache_dir).items():
            paths = tuple(p for p in engine.hub_cache_paths(name, cache_dir) if p.exists())
            if present and paths:
                entries.append(CacheEntry(name, engine.name, "hub", paths))
        for name, embedded in engine.embedded_models().items():
            folder = embedded.assembled_dir(cache_dir)
            if folder is not None and folder.exists():
                entries.append(CacheEntry(name, engine.name, "assembled", (folder,)))
    return entries


def pull(name: str, cache_dir: Path, console: Console | None = None) -> Path:
    """Download `name` through the engine that knows it; raises OSError when the hub can't be reached.
    Engines without progress bars of their own get a spinner on `console`."""
    for engine in engines().values():
        embedded = engine.embedded_models().get(name)
        if embedded is not None and embedded.installed:
            raise BadRequest(
                f"{name} is embedded (installed with {', '.join(embedded.packages)}): nothing to pull"
            )
    for engine in engines().values():
        if engine.is_hub_name(name):
            if engine.download_shows_progress or console is None:
                return engine.download(name, cache_dir)
            with console.status(f"downloading {name} ({engine.name})..."):
                return engine.download(name, cache_dir)
    raise ModelNotFound(
        f"{name!r} is no model name any engine can download (faster-whisper: tiny, base, small, medium, "
        "large-v3, distil-large-v3, org/repo; Piper: voices such as en_US-lessac-medium)"
    )


def remove(name: str, cache_dir: Path) -> int:
    """Delete a model's files from the cache; returns the bytes freed. An assembled embedded model is
    joined again on its next use."""
    for entry in cached(cache_dir):
        if entry.name == name:
            freed = entry.size
            for path in entry.paths:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            return freed
    raise ModelNotFound(f"nothing cached under the name {name!r} in {cache_dir} (see `voxhost models du`)")
