"""Server-side endpointing: the end of an utterance found by the server, for streams that never say
they are done (Wyoming devices that listen continuously and send no `audio-stop`).

An `Endpointer` runs a live session (`manager/live.py`: Silero VAD, no partials) over the audio as it
arrives. Its first final is the request's answer: the speech up to the first pause of the configured
length, decoded as the live path decodes an utterance (speculatively, from the first moments of the
pause, so that the answer is ready when the pause is long enough). A stream that holds no speech for
`timeout` seconds is answered with an empty transcript.

It must never hurt a client that does send `audio-stop`:
- audio sent faster than real time (a file) is never cut. A pause counts only once it has also lasted
  in real time (the session's clock), and a stream more than `SLACK` seconds ahead of real time is no
  live stream at all: the session is closed and `audio-stop` transcribes everything received. Nothing
  is listened to in the first `PROBE` seconds, so a file costs no voice detection;
- at `audio-stop`, `finish()` gives the utterance heard so far (its speculative decode reused when
  nothing was said since it began), or None where no speech was heard: the caller then transcribes
  everything received, as without endpointing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from voxhost.audio.decode import SAMPLE_RATE
from voxhost.manager.cancel import Gone, unless_gone
from voxhost.manager.live import Emit, LiveEvent, LiveTranscriber
from voxhost.results import Transcription

# Seconds of audio a live stream may run ahead of real time: a device's buffer, or the audio a pipeline
# held while it was waking up, sent in one go at the start.
SLACK = 2.0
# Seconds (real time) a stream is only held before its audio goes to voice detection: a file sent at
# once has come whole by then (or is over SLACK ahead), so it costs no detection (Silero takes about
# 2.5% of real time on a CPU core); a live stream's detection then catches up at once.
PROBE = 0.3


class Endpointer:
    def __init__(
        self,
        start: Callable[[Emit], LiveTranscriber],
        timeout: float,
        language: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = start(self._event)
        self._timeout = timeout
        self._language = language
        self._clock = clock
        self._began: float | None = None  # the clock when the first audio arrived
        self._seconds = 0.0  # audio received
        self._held: list[np.ndarray] = []  # audio received in the first PROBE seconds, not yet heard
        self._quiet_since = 0.0  # stream seconds: since then no utterance was in progress or ending
        self._ending = False  # an utterance ended and its final (or drop) is on the way
        self.stopped_at = 0.0  # perf_counter when the answering utterance's speech stopped
        self.live = True  # False once the audio came faster than real time: no endpointing
        # The answer: the first final (or an error event), or an empty final after `timeout`.
        self.answer: asyncio.Future[LiveEvent] = asyncio.get_running_loop().create_future()

    async def _event(self, event: LiveEvent) -> None:
        if self.answer.done():
            return
        if event.kind == "speech_stopped":
            self._ending = True
            self.stopped_at = time.perf_counter()
        elif event.kind == "dropped":  # a click or a cough: keep listening
            self._ending = False
            self._quiet_since = self._session.now
        elif event.kind in ("final", "error") and event.end is not None:
            self.answer.set_result(event)
        # partial errors (no end) leave the utterance going; its final reports again if it fails too

    async def feed(self, samples: np.ndarray) -> None:
        """Audio as it arrives (16 kHz float32)."""
        if not self.live or self.answer.done():
            return
        now = self._clock()
        if self._began is None:
            self._began = now
        self._seconds += len(samples) / SAMPLE_RATE
        if self._seconds - (now - self._began) > SLACK:  # faster than real time: a file, not a stream
            self.live = False
            self._held = []
            self._session.cancel()
            return
        self._held.append(samples)
        if now - self._began < PROBE:
            return  # too soon to tell a live stream from a file: the voice detection waits
        held, self._held = self._held, []
        await self._session.feed(np.concatenate(held) if len(held) > 1 else held[0])
        quiet = not (self._session.speaking or self._ending)
        if quiet and self._session.now - self._quiet_since >= self._timeout and not self.answer.done():
            self.stopped_at = time.perf_counter()
            empty = Transcription(text="", language=self._language or "", language_probability=0.0,
                                  duration=self._session.now)  # fmt: skip
            self.answer.set_result(LiveEvent("final", 0, 0.0, self._session.now, result=empty))

    async def finish(self, gone: Gone | None = None) -> LiveEvent | None:
        """The stream ended (`audio-stop`): the answer for the speech heard, or None where there is none
        to give (no speech heard, or not a live stream): then transcribe everything received."""
        try:
            if not self.answer.done():
                if not self.live or not (self._session.speaking or self._ending):
                    return None
                await unless_gone(self._session.finish(), gone)
            return self.answer.result() if self.answer.done() else None
        finally:
            self.close()

    def close(self) -> None:
        """Stop everything in flight (the request was answered, or its client went away)."""
        self.live = False
        self._session.cancel()
        if not self.answer.done():
            self.answer.cancel()


def answer_of(event: LiveEvent) -> Transcription:
    """The transcription an answer (`Endpointer.answer`) carries; raises the error it reports."""
    if event.error is not None:
        raise event.error
    assert event.result is not None
    return event.result
