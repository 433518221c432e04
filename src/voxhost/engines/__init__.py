"""Engines: one module per model library, all behind `voxhost.engines.base.Engine`."""

from __future__ import annotations

from voxhost.engines.base import ASREngine, EmbeddedModel, Engine, EngineConfig
from voxhost.engines.faster_whisper import FasterWhisperEngine

ENGINES: dict[str, type[Engine]] = {cls.name: cls for cls in (FasterWhisperEngine,)}


def engine_class(name: str) -> type[Engine]:
    return ENGINES[name]


__all__ = ["ENGINES", "ASREngine", "EmbeddedModel", "Engine", "EngineConfig", "engine_class"]
