"""Batch transcription on Ray Data: `voxhost batch --ray`.

The pending files become a dataset of paths; `map_batches` runs them through a pool of actors, each of
which loads the model once (the same engine class a local worker uses) and transcribes its share. Rows
come back with the rendered outputs (or the error) and the driver writes them, so resuming and the
summary work exactly as for a local batch. The files must be readable at the same path on every node
(a shared or network folder) when the cluster has more than one machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.batch.files import OUTPUTS, RTTM, FileResult, transcribe_file
from voxhost.diarization import DiarizedTranscription, DiarizeOptions
from voxhost.engines import ASREngine
from voxhost.errors import BadRequest
from voxhost.manager import longform, speakers
from voxhost.manager.layout import engine_config
from voxhost.manager.registry import ModelRegistry
from voxhost.results import TranscribeOptions, Transcription
from voxhost.scale.serve import start_ray
from voxhost.settings import Settings


class Transcriber:
    """One Ray Data actor: the model, loaded once, and the transcription of each batch of paths; with
    `diarize`, the diarization model too, and each file's speakers found beside its transcription (the
    way `voxhost transcribe --diarize` does in its process)."""

    def __init__(
        self, settings: Settings, model: str | None, options: TranscribeOptions, diarize: bool = False
    ) -> None:
        registry = ModelRegistry.from_settings(settings)
        spec = registry.get(model, "asr")
        config = engine_config(settings)
        engine = spec.load(config)
        if not isinstance(engine, ASREngine):
            raise BadRequest(f"{spec.id} is not a speech-to-text model")
        self.engine = engine
        self.options = options
        self.settings = settings
        self.diarizer = speakers.load_diarizer(settings, config) if diarize else None
        self.nice = type(self.diarizer).nice(config) if self.diarizer else 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        # Plain string and number columns (one per output file), so that Arrow needs no nested types.
        names = ("path", "error", "audio_seconds", *OUTPUTS, RTTM)
        rows: dict[str, list[Any]] = {name: [] for name in names}
        for path in batch["path"]:
            result = transcribe_file(
                Path(str(path)), self._transcribe, self._diarized if self.diarizer else None
            )
            rows["path"].append(str(result.path))
            rows["error"].append(result.error or "")
            rows["audio_seconds"].append(result.audio_seconds)
            for ext in (*OUTPUTS, RTTM):
                rows[ext].append(result.outputs.get(ext, ""))
        return rows

    def _transcribe(self, audio: np.ndarray) -> Transcription:
        # Long files on the server's plan (batched windows). One call at a time: the engine was loaded
        # for one inference on the `threads` CPUs the actor holds; more throughput is more actors.
        updates = longform.in_process_updates(self.engine, audio, self.options, self.settings, concurrency=1)
        return asyncio.run(longform.collect(updates))

    def _diarized(self, audio: np.ndarray) -> DiarizedTranscription:
        assert self.diarizer is not None
        options = DiarizeOptions(threshold=self.settings.diarization_threshold)
        updates = longform.in_process_updates(self.engine, audio, self.options, self.settings, concurrency=1)
        transcript = longform.collect(updates)
        return asyncio.run(speakers.beside(transcript, self.diarizer, audio, options, self.nice))


def run_on_ray(
    settings: Settings,
    files: list[Path],
    model: str | None,
    options: TranscribeOptions,
    actors: int,
    diarize: bool = False,
) -> Iterator[FileResult]:
    """Transcribe `files` with `model` on the Ray cluster (`--ray-address`, else a local Ray) with
    `actors` actors, each holding the model (and with `diarize` the diarization model: speaker labels in
    every output, and FILE.rttm); yields each file's result as the dataset streams back."""
    import ray.data

    start_ray(settings.ray_address)
    threads = settings.threads or 1
    dataset = ray.data.from_items([{"path": str(path)} for path in files]).map_batches(
        Transcriber,
        fn_constructor_args=(settings.model_copy(update={"threads": threads}), model, options, diarize),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads,
    )
    for row in dataset.iter_rows():
        error = str(row["error"]) or None
        outputs = {} if error else {ext: str(row[ext]) for ext in (*OUTPUTS, *([RTTM] if diarize else []))}
        yield FileResult(Path(row["path"]), outputs, error, float(row["audio_seconds"]))
