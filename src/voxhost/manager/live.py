"""Live transcription: voice activity detection, utterances, and partial results that don't flicker.

`LiveTranscriber` turns a stream of 16 kHz audio into events. Silero VAD (the ONNX model faster-whisper
ships) finds where speech starts and stops, so silence costs no model time. While someone speaks, the
growing utterance is re-decoded every `partial_interval` seconds; the words two consecutive hypotheses
agree on are *committed* and never change again (local agreement), the rest is shown as tentative. When
the speaker pauses for `min_silence` seconds, the whole utterance is decoded once more with the normal
settings, so the final text is what a file transcription of that utterance gives. Every front-end
(voxhost's WebSocket protocol, OpenAI's Realtime API) is a thin shell around this class.

`VadConfig` holds the turn-detection settings, and `server_vad` / `semantic_vad` read OpenAI's two
kinds of turn detection onto it. Semantic turn detection has no model of its own here: the transcript
decides. Once the speaker has been silent for the eagerness's shortest pause, the turn ends if the text
said so far ends a sentence (Whisper punctuates what sounds finished); otherwise it waits, up to the
eagerness's longest pause, for more speech (an "and um..." that trails off keeps the turn open).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from voxhost.audio.decode import SAMPLE_RATE
from voxhost.errors import BadRequest, VoxhostError
from voxhost.results import TranscribeOptions, Transcription

WINDOW = 512  # samples per VAD decision (32 ms), what Silero expects at 16 kHz
CONTEXT = 64

# "dropped": an utterance too short to transcribe (a click, a cough) ended without a final
EventKind = Literal["speech_started", "partial", "speech_stopped", "final", "dropped", "error"]
Transcribe = Callable[[np.ndarray, TranscribeOptions], Coroutine[Any, Any, Transcription]]


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
    code: str = ""  # errors: the error code
    result: Transcription | None = None  # finals: the whole result (segments, logprobs, duration)
    error: VoxhostError | None = None  # errors: what was raised

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "utterance": self.utterance, "start": round(self.start, 3)}
        if self.end is not None:
            data["end"] = round(self.end, 3)
        if self.kind in ("partial", "final"):
            data["text"] = self.text
        if self.kind == "error":
            data["message"] = self.text
            data["code"] = self.code
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
    # semantic turn detection: after `min_silence`, an utterance whose text does not end a sentence yet
    # goes on until this much silence (None: `min_silence` always ends it)
    max_silence: float | None = None


# OpenAI's semantic_vad eagerness: (the pause that ends a finished sentence, the longest pause). Their
# longest pauses (low 8 s, medium 4 s, high 2 s; auto is medium) are OpenAI's documented maximums.
SEMANTIC_EAGERNESS: dict[str, tuple[float, float]] = {
    "low": (1.0, 8.0),
    "medium": (0.5, 4.0),
    "auto": (0.5, 4.0),
    "high": (0.3, 2.0),
}
VAD_LIMITS = {"threshold": (0.0, 1.0), "prefix_padding_ms": (0, 10_000), "silence_duration_ms": (1, 10_000)}


def server_vad(
    threshold: float | None = None,
    prefix_padding_ms: int | None = None,
    silence_duration_ms: int | None = None,
) -> VadConfig:
    """OpenAI's `server_vad` turn detection (None: OpenAI's default for that field). Raises BadRequest,
    with the field as `param`, for a value out of its range (`VAD_LIMITS`)."""
    given = {"threshold": threshold, "prefix_padding_ms": prefix_padding_ms,
             "silence_duration_ms": silence_duration_ms}  # fmt: skip
    for name, value in given.items():
        low, high = VAD_LIMITS[name]
        if value is not None and not low <= value <= high:
            raise BadRequest(f"{name} must be between {low} and {high}, not {value}", param=name)
    return VadConfig(
        threshold=0.5 if threshold is None else threshold,
        prefix_padding=(300 if prefix_padding_ms is None else prefix_padding_ms) / 1000,
        min_silence=(500 if silence_duration_ms is None else silence_duration_ms) / 1000,
    )


def semantic_vad(eagerness: str | None = None) -> VadConfig:
    """OpenAI's `semantic_vad` turn detection: the eagerness sets the pauses (see the module's doc)."""
    choice = eagerness or "auto"
    if choice not in SEMANTIC_EAGERNESS:
        raise BadRequest(f"eagerness must be one of {', '.join(SEMANTIC_EAGERNESS)}", param="eagerness")
    shortest, longest = SEMANTIC_EAGERNESS[choice]
    return VadConfig(min_silence=shortest, max_silence=longest)


_CLOSERS = "\"'\u201d\u2019\u00bb)]"  # quotes and brackets that may follow a sentence's last mark


def ends_sentence(text: str) -> bool:
    """Whether a transcript reads as finished: it ends with a sentence's last mark (or says nothing).
    An ellipsis is Whisper's mark for speech that trails off: not finished."""
    text = text.strip().rstrip(_CLOSERS)
    if text.endswith(("...", "\u2026")):
        return False
    return not text or text[-1] in ".?!\u3002\uff1f\uff01"


PARTIAL_INTERVAL = 0.6  # seconds of new speech between partial decodes
FIRST_PARTIAL = 0.35  # seconds of speech before the first partial decode
STEADY = 0.15  # seconds of confident speech at the end of the audio before a partial decode starts
SPECULATE_AFTER = 0.1  # seconds of silence after which the final decode starts, in case the speaker is done
PACED = 0.5  # with a clock: the share of a pause's length it must also last in real time to count
TAIL = 0.2  # seconds of trailing silence kept in an utterance: Whisper ends words better with some room
Emit = Callable[[LiveEvent], Coroutine[Any, Any, None]]


@dataclass
class _Utterance:
    index: int
    start: float  # stream seconds
    windows: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    voiced: int = 0  # samples the VAD called speech
    silence: int = 0  # trailing samples of silence
    silence_since: float = 0.0  # the clock when the trailing silence began to arrive
    run: int = 0  # trailing samples the VAD is confident are speech
    partial_at: int = 0  # `voiced` when the last partial decode started
    hypothesis: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    # the final decode started at the current pause: of all that was said (speech cancels it)
    speculation: asyncio.Task[Transcription] | None = None

    @property
    def final_samples(self) -> int:
        """The utterance's length for the final decode: the speech plus TAIL seconds of its silence."""
        return self.samples - max(0, self.silence - int(TAIL * SAMPLE_RATE))

    def audio(self, samples: int | None = None) -> np.ndarray:
        audio = np.concatenate(self.windows) if self.windows else np.zeros(0, dtype=np.float32)
        return audio if samples is None else audio[:samples]


class LiveTranscriber:
    """Feed it audio; it calls `emit` with events as they happen.

    Model calls run in background tasks, so the VAD keeps up with incoming audio while a decode runs:
    a partial is only started when none is running (the newest audio wins), and the final decode is
    started speculatively at every pause, once the speaker has been silent for `SPECULATE_AFTER`
    seconds, so that when the silence reaches `min_silence` the final is usually ready at once. Speech
    that goes on cancels the guess (a pause mid-sentence must not use up the one the turn's end needs).

    With a `clock` (seconds, e.g. `time.monotonic`), a pause only counts once it has also lasted in real
    time (at least `PACED` of its length): audio sent faster than it plays (a file) has no pauses, so its
    speakers are never cut off mid-recording and no decode is started on a guess.

    The audio of ended utterances waiting for their final decode is bounded by `max_backlog` seconds:
    past it, `feed` waits for the oldest final before it takes more, so a client far ahead of real time
    is pushed back (its front-end stops reading the socket) rather than growing memory.
    """

    def __init__(
        self,
        transcribe: Transcribe,
        emit: Emit,
        options: TranscribeOptions | None = None,
        vad: VadConfig | None = None,
        partial_interval: float = PARTIAL_INTERVAL,
        clock: Callable[[], float] | None = None,
        max_backlog: float = 120.0,
    ) -> None:
        self.transcribe = transcribe
        self.max_backlog = max_backlog
        self.clock = clock
        self.emit = emit
        self.options = options or TranscribeOptions()
        self.vad = vad or VadConfig()
        self.partial_interval = partial_interval
        self._vad = StreamingVad()
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet seen by the VAD (< one window)
        self._received = 0  # samples received so far: the stream clock
        self._preroll: list[np.ndarray] = []
        self._current: _Utterance | None = None
        self._count = 0
        self._partial: asyncio.Task[None] | None = None
        self._finals: list[asyncio.Task[None]] = []  # in order; each awaits the one before
        self._final_samples: dict[asyncio.Task[None], int] = {}  # each pending final's audio
        self._partial_options = self._partial_settings(self.options)

    @staticmethod
    def _partial_settings(options: TranscribeOptions) -> TranscribeOptions:
        """Partials decode greedily, without the extras only a final reports (log-probabilities)."""
        return TranscribeOptions(
            task=options.task,
            language=options.language,
            prompt=options.prompt,
            hotwords=options.hotwords,
            temperature=0.0,
            beam_size=1,
        )

    def reconfigure(self, settings: LiveTranscriber) -> None:
        """Go on with another session's model, options and VAD settings (one the manager has just made
        for a client's new settings): the audio buffered and the utterance in progress are kept."""
        self.transcribe = settings.transcribe
        self.options = settings.options
        self.vad = settings.vad
        self.partial_interval = settings.partial_interval
        self._partial_options = self._partial_settings(settings.options)

    @property
    def now(self) -> float:
        return self._received / SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        """Whether an utterance is in progress (speech began and its turn has not ended)."""
        return self._current is not None

    def _paced(self, utterance: _Utterance) -> bool:
        """Whether the utterance's trailing silence arrived at about the pace it plays (see the class)."""
        if self.clock is None:
            return True
        return self.clock() - utterance.silence_since >= PACED * utterance.silence / SAMPLE_RATE

    @property
    def backlog(self) -> float:
        """Seconds of ended utterances' audio still waiting for (or in) their final decode."""
        return sum(self._final_samples.values()) / SAMPLE_RATE

    async def _keep_up(self) -> None:
        """Wait while the backlog is past its bound (see the class), each time for the oldest final."""
        while self.backlog > self.max_backlog:
            oldest = next(iter(self._final_samples))
            await asyncio.wait([oldest])

    async def feed(self, audio: np.ndarray) -> None:
        """Add float32 16 kHz samples (after waiting, if the decodes are too far behind)."""
        await self._keep_up()
        data = np.concatenate([self._pending, np.asarray(audio, dtype=np.float32)])
        usable = len(data) - len(data) % WINDOW
        self._pending = data[usable:]
        if not usable:
            return
        windows = data[:usable].reshape(-1, WINDOW)
        probs = self._vad(windows) if self.vad.enabled else np.ones(len(windows), dtype=np.float32)
        for window, prob in zip(windows, probs, strict=True):
            self._received += WINDOW
            await self._window(window, float(prob))
        current = self._current
        # the first partial comes early (words on screen soon after speech starts), later ones steadily
        due = FIRST_PARTIAL if current is not None and current.partial_at == 0 else self.partial_interval
        if (
            current is not None
            and self.partial_interval > 0
            and current.run >= STEADY * SAMPLE_RATE  # not while the speaker trails off: the final is near
            and (current.voiced - current.partial_at) >= due * SAMPLE_RATE
            and (self._partial is None or self._partial.done())
        ):
            current.partial_at = current.voiced
            self._partial = asyncio.create_task(self._run_partial(current, current.samples))

    async def _window(self, window: np.ndarray, prob: float) -> None:
        current = self._current
        if current is None:
            self._preroll.append(window)
            keep = max(1, int(self.vad.prefix_padding * SAMPLE_RATE / WINDOW))
            del self._preroll[:-keep]
            if prob >= self.vad.threshold:
                await self._start_utterance()
            return
        current.windows.append(window)
        current.samples += WINDOW
        current.run = current.run + WINDOW if prob >= self.vad.threshold else 0
        if prob >= self.vad.threshold - 0.15:
            current.silence = 0
            current.voiced += WINDOW
            if current.speculation is not None:  # the speaker went on: that guess is out of date
                current.speculation.cancel()
                current.speculation = None
        elif self.vad.enabled:
            if current.silence == 0 and self.clock is not None:
                current.silence_since = self.clock()
            current.silence += WINDOW
            paced = self._paced(current)
            if current.silence >= self.vad.min_silence * SAMPLE_RATE and paced and self._turn_over(current):
                await self._end_utterance()
                return
            if current.silence >= SPECULATE_AFTER * SAMPLE_RATE and paced and current.speculation is None:
                decode = self.transcribe(current.audio(), self.options)
                current.speculation = asyncio.create_task(decode)
        # speech that goes on and on (or a client that never commits) is cut into utterances this long
        if current.samples >= self.vad.max_utterance * SAMPLE_RATE:
            await self._end_utterance()

    def _turn_over(self, utterance: _Utterance) -> bool:
        """Whether the silence so far ends the turn: always under server VAD; under semantic turn
        detection once the speculative decode of the speech so far ends a sentence, or at `max_silence`."""
        longest = self.vad.max_silence
        if longest is None or utterance.silence >= longest * SAMPLE_RATE:
            return True
        decode = utterance.speculation
        if decode is None or not decode.done():
            return False  # what was said is not known yet
        if decode.cancelled() or decode.exception() is not None:
            return True  # the final reports the error
        return ends_sentence(decode.result().text)

    async def _start_utterance(self) -> None:
        windows, self._preroll = self._preroll, []
        samples = sum(len(w) for w in windows)
        utterance = _Utterance(self._count, self.now - samples / SAMPLE_RATE, windows, samples, voiced=WINDOW)
        self._current = utterance
        self._count += 1
        await self.emit(LiveEvent("speech_started", utterance.index, utterance.start))

    async def _report(self, utterance: _Utterance, exc: VoxhostError, end: float | None = None) -> None:
        """A decode failed: a partial's (no `end`: the utterance goes on) or the final's (with its end)."""
        event = LiveEvent("error", utterance.index, utterance.start, end, text=exc.message, code=exc.code,
                          error=exc)  # fmt: skip
        await self.emit(event)

    async def _run_partial(self, utterance: _Utterance, samples: int) -> None:
        try:
            result = await self.transcribe(utterance.audio(samples), self._partial_options)
        except VoxhostError as exc:
            await self._report(utterance, exc)
            return
        if self._current is not utterance:
            return  # the utterance ended while this ran: its final says it all
        words = result.text.split()
        agreed = agreed_prefix(utterance.hypothesis, words)
        utterance.hypothesis = words
        delta: list[str] = []
        if agreed > len(utterance.committed):  # committed words only ever grow
            delta = words[len(utterance.committed) : agreed]
            utterance.committed = utterance.committed + delta
        consistent = agreed_prefix(utterance.committed, words) == len(utterance.committed)
        tentative = words[len(utterance.committed) :] if consistent else []
        await self.emit(
            LiveEvent(
                "partial",
                utterance.index,
                utterance.start,
                utterance.start + samples / SAMPLE_RATE,
                text=" ".join([*utterance.committed, *tentative]),
                committed=" ".join(utterance.committed),
                delta=" ".join(delta),
                language=result.language,
            )
        )

    async def _end_utterance(self) -> None:
        utterance, self._current = self._current, None
        if utterance is None:
            return
        samples = utterance.final_samples
        end = utterance.start + (utterance.samples - utterance.silence) / SAMPLE_RATE
        self._preroll = []
        previous = self._finals[-1] if self._finals else None

        async def finalize() -> None:
            if previous is not None:
                await previous
            await self.emit(LiveEvent("speech_stopped", utterance.index, utterance.start, end))
            # a click or a cough: no final (an utterance the client committed is always transcribed)
            if (self.vad.enabled and utterance.voiced < self.vad.min_speech * SAMPLE_RATE) or samples <= 0:
                await self.emit(LiveEvent("dropped", utterance.index, utterance.start, end))
                return
            try:
                # a speculative decode still there began after the last speech: it is the final
                if utterance.speculation is not None:
                    result = await utterance.speculation
                else:
                    result = await self.transcribe(utterance.audio(samples), self.options)
            except VoxhostError as exc:
                await self._report(utterance, exc, end)
                return
            await self.emit(
                LiveEvent(
                    "final", utterance.index, utterance.start, end, text=result.text,
                    language=result.language, result=result,
                )
            )  # fmt: skip

        task = asyncio.create_task(finalize())
        self._final_samples[task] = utterance.samples
        task.add_done_callback(self._final_samples.pop)
        self._finals.append(task)
        self._finals = [t for t in self._finals if not t.done()]

    async def commit(self) -> bool:
        """End the current utterance now (the client says the turn is over). False if there was none."""
        if self._current is None:
            if self.vad.enabled or not self._preroll:
                return False
            await self._start_utterance()
        assert self._current is not None
        if len(self._pending):
            self._current.windows.append(self._pending)
            self._current.samples += len(self._pending)
            self._received += len(self._pending)
            self._pending = np.zeros(0, dtype=np.float32)
        await self._end_utterance()
        return True

    async def finish(self) -> None:
        """The stream ended: finalize what was being said and wait until every event is out."""
        if self._current is not None:
            await self.commit()
        await self.drain()

    async def drain(self) -> None:
        """Wait for the decodes in flight."""
        if self._partial is not None:
            with contextlib.suppress(Exception):
                await self._partial
        for task in list(self._finals):
            await task

    def clear(self) -> None:
        """Drop buffered audio that was not transcribed yet."""
        self._current = None
        self._preroll = []
        self._pending = np.zeros(0, dtype=np.float32)

    async def close(self) -> None:
        """The client went away: stop waiting for anything."""
        self.cancel()

    def cancel(self) -> None:
        """Cancel every decode in flight (`close` for callers that are not coroutines)."""
        for task in [self._partial, *self._finals]:
            if task is not None:
                task.cancel()
