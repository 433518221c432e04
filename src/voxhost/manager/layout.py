"""How a model runs: worker processes, inferences side by side per worker, CPU threads each, and the
engine settings a worker gets. Pure functions of the settings and the machine."""

from __future__ import annotations

import os
from dataclasses import dataclass

from voxhost.engines import EngineConfig, engine_class
from voxhost.manager.registry import ModelSpec
from voxhost.settings import Settings


@dataclass(frozen=True, slots=True)
class Layout:
    """How one model runs: worker processes, inferences in parallel per worker, CPU threads each."""

    replicas: int
    parallel: int
    threads: int

    @property
    def slots(self) -> int:
        return self.replicas * self.parallel


def plan_layout(settings: Settings, spec: ModelSpec, cores: int | None = None) -> Layout:
    """The layout of a model from the settings; 0 means "choose for this machine".

    Measured on 2 cores (docs/benchmarks.md): one Whisper inference keeps two cores only partly busy, so
    two inferences side by side serve about 1.3x the requests per second of one at a time. With one
    thread each, a lone request takes 1.5x as long as with two; with two threads each, a lone request
    is as fast as ever and two at once are about as fast as two single-threaded ones (a core's idle
    moments in one inference are the other's working ones). So by default each worker runs one inference
    per core (at most 4) and each inference gets `2 x cores / slots` threads, never more than the cores:
    the full machine for a lone request, at most twice as many threads as cores under full load.
    Engines whose library is not thread-safe (the TTS engines' phonemizer) run one inference per worker;
    use replicas for more. A model whose inferences run beside another model's (the diarizer, beside the
    decode of a diarized request) counts only its share of the cores (`Engine.core_share`).
    """
    cores = cores or os.cpu_count() or 1
    engine = engine_class(spec.engine)
    replicas = min(settings.replicas, engine.max_replicas)
    parallel = settings.parallel or engine.default_parallel(settings.device, cores)
    parallel = max(1, min(parallel, engine.max_parallel))
    own = max(1, int(cores * engine.core_share))  # the cores this model's inferences may take
    threads = settings.threads or max(1, min(own, 2 * own // (replicas * parallel)))
    return Layout(replicas, parallel, threads)


def engine_config(settings: Settings, layout: Layout | None = None) -> EngineConfig:
    return EngineConfig(
        device=settings.device,
        compute_type=settings.compute_type,
        threads=layout.threads if layout else settings.threads,
        parallel=layout.parallel if layout else 1,
        beam_size=settings.beam_size,
        cache_dir=settings.cache_dir,
        offline=settings.offline,
        voice_files=tuple(settings.voice_files),
        tts_language=settings.tts_language,
        tts_quick_start=settings.tts_quick_start,
        vocabulary=tuple(settings.vocabulary),
        diarization_segmentation=settings.diarization_segmentation,
        segmentation_model=settings.diarization_segmentation_model,
        diarization_clustering=settings.diarization_clustering,
        diarization_nice=settings.diarization_nice,
    )
