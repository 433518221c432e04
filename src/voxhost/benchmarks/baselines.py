"""The libraries themselves, called in-process: the reference side of every benchmark. Each function loads
or calls faster-whisper, Piper or kokoro-onnx the way a user's own script would, with none of voxhost's
engine code on the path (voxhost only finds the model's files), so that what serving costs, engine
wrapper included, is what a comparison shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.engines.base import EngineConfig
from voxhost.manager.registry import ModelSpec


def whisper_model(spec: ModelSpec, config: EngineConfig, device: str, compute_type: str, threads: int) -> Any:
    """`faster_whisper.WhisperModel` on the model `spec` names, with the given device, precision and
    threads (`cpu_threads`), from voxhost's cache."""
    from faster_whisper import WhisperModel

    return WhisperModel(
        spec.location(config),
        device=device,
        compute_type=compute_type,
        cpu_threads=threads,
        download_root=str(config.cache_dir / "hub"),
        local_files_only=config.offline,
    )


def whisper_text(model: Any, audio: np.ndarray, beam_size: int, language: str | None = None) -> str:
    """`WhisperModel.transcribe`, sequential, faster-whisper's defaults otherwise (its temperature
    fallback schedule, no VAD): the text of every segment."""
    segments, _ = model.transcribe(audio, language=language, beam_size=beam_size)
    return "".join(segment.text for segment in segments).strip()


def batched_text(
    model: Any, audio: np.ndarray, beam_size: int, batch_size: int, language: str | None = None
) -> str:
    """faster-whisper's `BatchedInferencePipeline` over `model` (its own VAD cuts the windows)."""
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model)
    segments, _ = pipeline.transcribe(audio, language=language, beam_size=beam_size, batch_size=batch_size)
    return "".join(segment.text for segment in segments).strip()


def piper_voice(spec: ModelSpec, config: EngineConfig) -> Any:
    """`piper.PiperVoice.load` on the voice `spec` names (already downloaded)."""
    from piper import PiperVoice

    from voxhost.engines.piper import find_onnx

    onnx = find_onnx(Path(spec.location(config)))
    if onnx is None:
        raise FileNotFoundError(f"no Piper voice at {spec.location(config)}")
    return PiperVoice.load(str(onnx), use_cuda=config.device == "cuda")


def piper_chunks(voice: Any, text: str) -> Iterator[np.ndarray]:
    """`PiperVoice.synthesize(text)`: one chunk of float32 samples per sentence, as Piper yields them."""
    for chunk in voice.synthesize(text):
        yield np.asarray(chunk.audio_float_array, dtype=np.float32)


def kokoro_model(spec: ModelSpec, config: EngineConfig) -> Any:
    """`kokoro_onnx.Kokoro` on the model and the first voices file of the folder `spec` names."""
    from kokoro_onnx import Kokoro

    from voxhost.engines.kokoro import find_files

    found = find_files(Path(spec.location(config)))
    if found is None:
        raise FileNotFoundError(f"no Kokoro model at {spec.location(config)}")
    model, voice_files = found
    return Kokoro(str(model), str(voice_files[0]))


def kokoro_chunks(kokoro: Any, text: str, voice: str, lang: str = "en-us") -> Iterator[np.ndarray]:
    """`Kokoro.create(text)`: the whole text at once (kokoro-onnx's `create` returns all of the audio,
    so its first audio is its last)."""
    samples, _ = kokoro.create(text, voice=voice, speed=1.0, lang=lang)
    yield np.asarray(samples, dtype=np.float32)


def whisper_for(entry: str, threads: int | None = None) -> tuple[Any, int]:
    """`WhisperModel` for a `--model` entry ("tiny.en"), on the device and precision voxhost would pick
    with its default settings and `threads` threads (None: one per core), and the beam size it decodes
    with: the in-process reference of a script that starts a server on that entry."""
    from voxhost.benchmarks.common import RunOptions, model_spec
    from voxhost.engines.faster_whisper import resolve_compute_type, resolve_device
    from voxhost.manager.layout import engine_config

    run = RunOptions(threads=threads)
    settings = run.settings([entry])
    config = engine_config(settings)
    device = resolve_device(settings.device)
    compute_type = resolve_compute_type(settings.compute_type, device)
    model = whisper_model(model_spec(entry), config, device, compute_type, run.thread_count)
    return model, config.beam_size
