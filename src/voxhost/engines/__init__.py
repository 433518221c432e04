"""Engines: one module per model library, all behind `voxhost.engines.base.Engine`.

Every module of this package is an engine module; the engine classes in it are found by their `name`
(no list to keep by hand: adding an engine is adding its module, docs/extending.md). Engine modules
are cheap to import: each imports its model library only when it loads a model.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

from voxhost.engines.base import (
    ASREngine,
    EmbeddedModel,
    Engine,
    EngineConfig,
    EngineInfo,
    TTSEngine,
    WakeEngine,
)
from voxhost.errors import BadRequest

_NOT_ENGINES = frozenset(
    {"base", "assets", "sentences", "whisper_scores", "whisper_coverage"}
)  # the package's shared modules


@functools.cache
def engines() -> dict[str, type[Engine]]:
    """Every engine class, by name, in the order their modules sort."""
    found: dict[str, type[Engine]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name in _NOT_ENGINES or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Engine) and not inspect.isabstract(cls) and cls.__module__ == module.__name__:
                if cls.name in found:
                    raise RuntimeError(f"two engines are named {cls.name!r}: {found[cls.name]} and {cls}")
                found[cls.name] = cls
    return found


def engine_class(name: str) -> type[Engine]:
    try:
        return engines()[name]
    except KeyError:
        raise BadRequest(f"no engine is named {name!r} (engines: {', '.join(engines())})") from None


__all__ = [
    "ASREngine",
    "EmbeddedModel",
    "Engine",
    "EngineConfig",
    "EngineInfo",
    "TTSEngine",
    "WakeEngine",
    "engine_class",
    "engines",
]
