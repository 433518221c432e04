"""Engines: one module per model library, all behind `voxhost.engines.base.Engine`."""

from __future__ import annotations

from voxhost.engines.base import ASREngine, EmbeddedModel, Engine, EngineConfig, TTSEngine
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.engines.kokoro import KokoroEngine
from voxhost.engines.piper import PiperEngine

# Engine modules are cheap to import: each imports its model library only when it loads a model.
ENGINES: dict[str, type[Engine]] = {cls.name: cls for cls in (FasterWhisperEngine, PiperEngine, KokoroEngine)}


def engine_class(name: str) -> type[Engine]:
    return ENGINES[name]


__all__ = ["ENGINES", "ASREngine", "EmbeddedModel", "Engine", "EngineConfig", "TTSEngine", "engine_class"]
