"""Live transcription: voice activity detection, utterances, and partial results that don't flicker.

`LiveTranscriber` turns a stream of 16 kHz audio into events. Silero VAD (the ONNX model faster-whisper
ships) finds where speech starts and stops, so silence costs no model time. While someone speaks, the
growing utterance is re-decoded every `partial_interval` seconds; the words two consecutive hypotheses
agree on are *committed* and never change again (local agreement), the rest is shown as tentative. When
the speaker pauses for `min_silence` seconds, the whole utterance is decoded once more with the normal
settings, so the final text is what a file transcription of that utterance gives. Every front-end
(voxhost's WebSocket protocol, the OpenAI Realtime subset) is a thin shell around this class.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from voxhost.audio.decode import SAMPLE_RATE
from voxhost.results import TranscribeOptions, Transcription

WINDOW = 512  # samples per VAD decision (32 ms), what Silero expects at 16 kHz
CONTEXT = 64

EventKind = Literal["speech_started", "partial", "speech_stopped", "final"]
Transcribe = Callable[[np.ndarray, TranscribeOptions], Awaitable[Transcription]]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: EventKind
    utterance: int
    start: float  # seconds since the stream began
    end: float | None = None
    text: str = ""
    committed: str = ""  # partials: the stable part of `text`
    delta: str = ""  # partials: words committed by this event
    language: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "utterance": self.utterance, "start": round(self.start, 3)}
        if self.end is not None:
            data["end"] = round(self.end, 3)
        if self.kind in ("partial", "final"):
            data["text"] = self.text
        if self.kind == "partial":
            data["committed"] = self.committed
            data["tentative"] = self.text[len(self.committed) :].strip()
        if self.language:
            data["language"] = self.language
        return data


class StreamingVad:
    """Silero VAD over a stream: keeps the model's recurrent state and context between calls."""

    _session: Any = None

    def __init__(self) -> None:
        if StreamingVad._session is None:
            from faster_whisper.vad import get_vad_model

            StreamingVad._session = get_vad_model().session  # one small ONNX session per process
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """Speech probability for each row of `windows` (shape n x 512)."""
        probs = np.empty(len(windows), dtype=np.float32)
        for i, window in enumerate(windows):
            frame = np.concatenate([self._context, window]).reshape(1, -1)
            out, self._h, self._c = self._session.run(None, {"input": frame, "h": self._h, "c": self._c})
            probs[i] = float(np.asarray(out).reshape(-1)[0])
            self._context = window[-CONTEXT:]
        return probs


def _words(text: str) -> list[str]:
    return text.split()


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def agreed_prefix(a: list[str], b: list[str]) -> int:
    """How many leading words two hypotheses share (ignoring case and punctuation)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if _norm(x) != _norm(y):
            break
        n += 1
    return n


@dataclass
class VadConfig:
    threshold: float = 0.5
    min_silence: float = 0.5  # seconds of silence that end an utterance
    prefix_padding: float = 0.3  # seconds of audio kept from before speech started
    min_speech: float = 0.25  # shorter blips are dropped without a model call
    max_utterance: float = 30.0  # a longer utterance is finalized and a new one begun
    enabled: bool = True  # False: only `commit()` ends an utterance (OpenAI turn_detection null)


@dataclass
class LiveTranscriber:
    transcribe: Transcribe
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    vad: VadConfig = field(default_factory=VadConfig)
    partial_interval: float = 0.6  # seconds of new speech between partial decodes (0: no partials)

    def __post_init__(self) -> None:
        self._vad = StreamingVad()
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet seen by the VAD (< one window)
        self._received = 0  # samples received so far: the stream clock
        self._preroll: list[np.ndarray] = []
        self._speech: list[np.ndarray] = []
        self._speech_len = 0
        self._in_speech = False
        self._silence = 0
        self._voiced = 0
        self._utterance = 0
        self._start = 0.0
        self._last_partial_len = 0
        self._hypothesis: list[str] = []
        self._committed: list[str] = []
        self._partial_options = TranscribeOptions(
            task=self.options.task, language=self.options.language, prompt=self.options.prompt,
            temperature=0.0, beam_size=1,
        )  # fmt: skip

    @property
    def now(self) -> float:
        return self._received / SAMPLE_RATE

    async def feed(self, audio: np.ndarray) -> list[LiveEvent]:
        """Add float32 16 kHz samples; returns the events they caused (maybe after model calls)."""
        events: list[LiveEvent] = []
        data = np.concatenate([self._pending, np.asarray(audio, dtype=np.float32)])
        usable = len(data) - len(data) % WINDOW
        self._pending = data[usable:]
        if not usable:
            return events
        windows = data[:usable].reshape(-1, WINDOW)
        probs = self._vad(windows) if self.vad.enabled else np.ones(len(windows), dtype=np.float32)
        for window, prob in zip(windows, probs, strict=True):
            self._received += WINDOW
            events.extend(await self._window(window, float(prob)))
        if self._in_speech and self.partial_interval > 0:
            new = (self._speech_len - self._last_partial_len) / SAMPLE_RATE
            if new >= self.partial_interval:
                events.extend(await self._partial())
        return events

    async def _window(self, window: np.ndarray, prob: float) -> list[LiveEvent]:
        if not self._in_speech:
            self._preroll.append(window)
            keep = max(1, int(self.vad.prefix_padding * SAMPLE_RATE / WINDOW))
            del self._preroll[:-keep]
            if prob >= self.vad.threshold:
                self._in_speech = True
                self._speech = list(self._preroll)
                self._speech_len = sum(len(w) for w in self._speech)
                self._preroll = []
                self._start = self.now - self._speech_len / SAMPLE_RATE
                self._silence = 0
                self._voiced = WINDOW
                return [LiveEvent("speech_started", self._utterance, self._start)]
            return []
        self._speech.append(window)
        self._speech_len += WINDOW
        if prob >= self.vad.threshold - 0.15:
            self._silence = 0
            self._voiced += WINDOW
        else:
            self._silence += WINDOW
        if self.vad.enabled and self._silence >= self.vad.min_silence * SAMPLE_RATE:
            return await self._end_utterance(trailing=self._silence)
        if self._speech_len >= self.vad.max_utterance * SAMPLE_RATE:
            return await self._end_utterance(trailing=0)
        return []

    async def _partial(self) -> list[LiveEvent]:
        self._last_partial_len = self._speech_len
        result = await self.transcribe(np.concatenate(self._speech), self._partial_options)
        words = _words(result.text)
        agreed = agreed_prefix(self._hypothesis, words)
        self._hypothesis = words
        delta: list[str] = []
        if agreed > len(self._committed):  # committed words only ever grow
            delta = words[len(self._committed) : agreed]
            self._committed = self._committed + delta
        committed = " ".join(self._committed)
        tentative = (
            words[len(self._committed) :]
            if agreed_prefix(self._committed, words) == len(self._committed)
            else []
        )
        text = " ".join([*self._committed, *tentative])
        return [
            LiveEvent(
                "partial",
                self._utterance,
                self._start,
                self.now,
                text=text,
                committed=committed,
                delta=" ".join(delta),
                language=result.language,
            )
        ]

    async def _end_utterance(self, trailing: int) -> list[LiveEvent]:
        audio = np.concatenate(self._speech)
        # keep a little of the trailing silence: Whisper ends words better with some room
        keep_tail = int(0.2 * SAMPLE_RATE)
        if trailing > keep_tail:
            audio = audio[: len(audio) - (trailing - keep_tail)]
        end = self.now - trailing / SAMPLE_RATE
        events = [LiveEvent("speech_stopped", self._utterance, self._start, end)]
        voiced = self._voiced
        utterance = self._utterance
        start = self._start
        self._reset_utterance()
        if voiced < self.vad.min_speech * SAMPLE_RATE or audio.size == 0:
            return events  # a click or a cough: no model call, no final
        result = await self.transcribe(audio, self.options)
        self._utterance += 1
        events.append(LiveEvent("final", utterance, start, end, text=result.text, language=result.language))
        return events

    def _reset_utterance(self) -> None:
        self._in_speech = False
        self._speech = []
        self._speech_len = 0
        self._silence = 0
        self._voiced = 0
        self._last_partial_len = 0
        self._hypothesis = []
        self._committed = []

    async def commit(self) -> list[LiveEvent]:
        """End the current utterance now (the client says the turn is over)."""
        if not self._in_speech:
            if not self._preroll or self.vad.enabled:
                return []
            self._speech, self._preroll = list(self._preroll), []
            self._speech_len = sum(len(w) for w in self._speech)
            self._voiced = self._speech_len
            self._start = self.now - self._speech_len / SAMPLE_RATE
            self._in_speech = True
        if len(self._pending):
            self._speech.append(self._pending)
            self._speech_len += len(self._pending)
            self._received += len(self._pending)
            self._pending = np.zeros(0, dtype=np.float32)
        return await self._end_utterance(trailing=self._silence)

    async def finish(self) -> list[LiveEvent]:
        """The stream ended: finalize what was being said."""
        return await self.commit() if self._in_speech else []

    def clear(self) -> None:
        """Drop buffered audio that was not transcribed yet."""
        self._reset_utterance()
        self._preroll = []
        self._pending = np.zeros(0, dtype=np.float32)
