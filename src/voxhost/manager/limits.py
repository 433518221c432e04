"""The server's limits on what one request may carry, checked the same way for every protocol.

Uploads and decoded audio (HTTP files, Wyoming audio events), live-stream messages and length
(the live WebSocket, Realtime), and the text of a speech request. Each limit is a setting; each refusal
is the same error with the same message whichever front-end it came through.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import TypeVar

import numpy as np

from voxhost.audio.decode import PcmConverter, decode_audio
from voxhost.audio.text import speakable
from voxhost.errors import (
    AudioTooLong,
    BadRequest,
    ClientGone,
    PayloadTooLarge,
    ServerBusy,
    StreamTooLong,
    TooManySessions,
)
from voxhost.settings import Settings

SAMPLE_RATE = 16000  # of the audio the ASR engines take
FORM_OVERHEAD = 64 * 1024  # room for a multipart form's text fields and part headers beside its file
JSON_BYTES_PER_CHAR = 12  # the most one character of text takes in JSON: a surrogate pair, \uXXXX\uXXXX
JSON_OVERHEAD = 64 * 1024  # room for a JSON body's other fields
BUDGET_WAIT = 120.0  # seconds an upload waits for room in the decoded-audio budget without --queue-timeout
# Speech read ahead of slow clients takes room only while the budget is less full than this share of
# it: uploads always find the rest, however many clients read speech slowly.
SPEECH_SHARE = 0.5
T = TypeVar("T")


class RequestLimits:
    def __init__(self, settings: Settings) -> None:
        self.upload_bytes = settings.max_upload_bytes
        self.audio_seconds = settings.max_audio_seconds
        self.message_bytes = settings.max_ws_message_kb * 1024
        self.stream_seconds = settings.max_stream_seconds
        self.input_chars = settings.max_input_chars
        self.live_backlog_seconds = settings.max_live_backlog_seconds
        self.audio_budget = AudioBudget(
            int(settings.max_decoded_audio_mb * 2**20), settings.queue_timeout or BUDGET_WAIT
        )
        self.live_sessions = SessionSlots(settings.max_live_sessions)

    def body(self, content_type: str) -> tuple[int, str]:
        """The most bytes an HTTP request body of this content type may have, and the refusal's message:
        a multipart upload its file and form fields, anything else (JSON) the largest speech request."""
        if content_type.lower().startswith("multipart/"):
            return self.upload_bytes + FORM_OVERHEAD, self._upload_message()
        limit = self.input_chars * JSON_BYTES_PER_CHAR + JSON_OVERHEAD
        return limit, f"the request body is larger than the limit of {limit} bytes (from --max-input-chars)"

    def event(self, event_type: str, data_length: int, payload_length: int) -> None:
        """A Wyoming event's declared sizes, checked before any of it is read: a payload only on audio
        events (`audio-chunk`: at most an upload, all a stream may carry; clients that send a whole
        recording as one chunk exist), extra data at most a JSON body's bound."""
        data_limit, _ = self.body("application/json")
        if data_length > data_limit:
            raise PayloadTooLarge(
                f"a Wyoming {event_type} event may carry at most {data_limit} bytes of data"
            )
        payload_limit = self.upload_bytes if event_type.startswith("audio-") else 0
        if payload_length > payload_limit:
            raise PayloadTooLarge(
                f"a Wyoming {event_type} event may carry at most {payload_limit} bytes of payload "
                f"(it declared {payload_length})"
            )

    def _upload_message(self) -> str:
        return f"the upload is larger than the limit of {self.upload_bytes / 2**20:g} MiB"

    def upload(self, size: int) -> None:
        if size > self.upload_bytes:
            raise PayloadTooLarge(self._upload_message())

    def audio(self, samples: int) -> None:
        """Audio of `samples` 16 kHz samples (decoded so far) is within the limit."""
        if samples > self.audio_seconds * SAMPLE_RATE:
            raise AudioTooLong(f"the audio is longer than the limit of {self.audio_seconds:g}s")

    def decode(self, data: bytes) -> np.ndarray:
        """An uploaded file as float32 16 kHz mono; too long: refused before decoding when it says so.
        Outside the decoded-audio budget: for callers that hold the audio only briefly."""
        return decode_audio(data, max_seconds=self.audio_seconds)

    async def decoded(self, data: bytes) -> HeldAudio:
        """An uploaded file decoded (off the event loop) within the server-wide budget of decoded audio:
        room for it is taken before each part of its buffer is allocated (the file's declared length
        first), and given back by `HeldAudio.release` once the request is answered."""
        held = HeldAudio(self.audio_budget)
        try:
            held.audio = await asyncio.to_thread(
                decode_audio, data, max_seconds=self.audio_seconds, admit=held.admit
            )
        except BaseException:
            held.release()
            raise
        return held

    def message(self, size: int) -> None:
        """One message of a live stream (a WebSocket frame or a Realtime append)."""
        if size > self.message_bytes:
            raise BadRequest(f"audio messages are limited to {self.message_bytes} bytes")

    def stream(self, seconds: float) -> None:
        """A live stream that has received `seconds` of audio."""
        if seconds > self.stream_seconds:
            raise StreamTooLong(
                f"the stream reached the limit of {self.stream_seconds:g}s of audio; start a new one"
            )

    def held_text(self, chars: int) -> None:
        """Streamed speech text (Wyoming `synthesize-chunk`s) waiting for its sentence to end."""
        if chars > self.input_chars:
            raise BadRequest(
                f"the streamed text has {chars} characters without a sentence end; the limit is "
                f"{self.input_chars} (--max-input-chars)",
                param="text",
            )

    def text(self, text: str) -> str:
        """The text of a speech request, as the engines get it (control characters gone)."""
        if len(text) > self.input_chars:
            raise BadRequest(
                f"the text is {len(text)} characters; the limit is {self.input_chars} (--max-input-chars)",
                param="input",
            )
        spoken = speakable(text)
        if not spoken.strip():
            raise BadRequest("the text has nothing to speak", param="input")
        return spoken


class PcmIntake:
    """Raw PCM that arrives in pieces (Wyoming `audio-chunk` events), converted to 16 kHz float32 as it
    comes and held to the upload and audio limits, so a stream that outgrows them stops at once."""

    def __init__(self, limits: RequestLimits, rate: int, width: int, channels: int) -> None:
        self.limits = limits
        self._converter = PcmConverter(rate, width, channels)
        self._pieces: list[np.ndarray] = []
        self._received = 0
        self._samples = 0

    def add(self, data: bytes, rate: int, width: int, channels: int) -> np.ndarray:
        """One piece, and its samples as converted (for whoever listens as audio arrives); a piece in
        another format than the last starts a new conversion."""
        converter = self._converter
        flushed: np.ndarray | None = None
        if (rate, width, channels) != (converter.rate, converter.width, converter.channels):
            flushed = converter.flush()
            self._pieces.append(flushed)
            self._converter = PcmConverter(rate, width, channels)
        self._received += len(data)
        self.limits.upload(self._received)
        converted = self._converter.convert(data)
        self._samples += len(converted)
        self.limits.audio(self._samples)
        self._pieces.append(converted)
        return converted if flushed is None else np.concatenate([flushed, converted])

    def audio(self) -> np.ndarray:
        """Everything received, as one float32 16 kHz array."""
        self._pieces.append(self._converter.flush())
        pieces = [p for p in self._pieces if p.size]
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


class AudioBudget:
    """The decoded audio all requests hold at once, in bytes: a request takes room before it allocates
    and waits (in its decoding thread, up to `wait` seconds: then ServerBusy, 503) while there is none.
    One request larger than the whole budget may still run, alone."""

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self.held = 0
        self._room = threading.Condition()

    def take(self, nbytes: int) -> None:
        with self._room:
            if not self._room.wait_for(lambda: self.held == 0 or self.held + nbytes <= self.limit, self.wait):
                raise ServerBusy(
                    f"the server holds its limit of decoded audio ({self.limit / 2**20:g} MiB, "
                    "--max-decoded-audio-mb); retry in a moment",
                    retry_after=5,
                )
            self.held += nbytes

    def give(self, nbytes: int) -> None:
        with self._room:
            self.held -= nbytes
            self._room.notify_all()

    def try_take(self, nbytes: int, share: float) -> bool:
        """Room for `nbytes` if there is some now within `share` of the budget (never waits)."""
        with self._room:
            if self.held + nbytes > self.limit * share:
                return False
            self.held += nbytes
            return True

    async def read_ahead(self, chunks: AsyncGenerator[np.ndarray, None]) -> AsyncGenerator[np.ndarray, None]:
        """The chunks of a synthesis, taken from the model as fast as it makes them and held here for
        a client that reads them more slowly: the model's slot is free once the synthesis is done, not
        once the slowest client has read it. Held chunks take room in this budget, up to
        `SPEECH_SHARE` of it; a chunk without room waits for the client to take one (then tries again)
        or to have taken them all (then it is held without room: one chunk ahead, as without reading
        ahead). The synthesis ends with its client: closing this closes `chunks`."""
        held: asyncio.Queue[tuple[np.ndarray, int] | BaseException | None] = asyncio.Queue()
        took = asyncio.Event()  # the client took a chunk

        async def produce() -> None:
            try:
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        while not (room := self.try_take(chunk.nbytes, SPEECH_SHARE)) and not held.empty():
                            took.clear()
                            await took.wait()
                        held.put_nowait((chunk, chunk.nbytes if room else 0))
            except Exception as exc:  # the client gets it after the chunks made before it
                held.put_nowait(exc)
            else:
                held.put_nowait(None)

        producer = asyncio.create_task(produce())
        try:
            while (item := await held.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                chunk, room = item
                if room:
                    self.give(room)
                took.set()
                yield chunk
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            while not held.empty():
                if isinstance(left := held.get_nowait(), tuple) and left[1]:
                    self.give(left[1])


class HeldAudio:
    """One upload's decoded audio and the room it holds in the `AudioBudget`. Released once: a decode
    still running after its request went away (cancelled) is stopped at its next allocation, and room
    it was waiting for is given straight back."""

    def __init__(self, budget: AudioBudget) -> None:
        self.budget = budget
        self.audio = np.zeros(0, dtype=np.float32)
        self._taken = 0
        self._released = False
        self._lock = threading.Lock()

    def admit(self, samples: int) -> None:
        """The decoder is about to hold `samples` float32 samples in all (called from its thread)."""
        extra = samples * 4 - self._taken
        if self._released:
            raise ClientGone("the request went away while its audio was decoded")
        if extra <= 0:
            return
        self.budget.take(extra)
        with self._lock:
            if not self._released:
                self._taken += extra
                return
        self.budget.give(extra)
        raise ClientGone("the request went away while its audio was decoded")

    def release(self) -> None:
        with self._lock:
            self._released = True
            taken, self._taken = self._taken, 0
        if taken:
            self.budget.give(taken)

    async def releasing(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """`stream`, then the room given back (a streamed answer holds the audio until it ends)."""
        try:
            async with contextlib.aclosing(stream) as items:
                async for item in items:
                    yield item
        finally:
            self.release()


class SessionSlots:
    """How many live-transcription sessions (WebSockets) may be open at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One session's slot, for as long as it is open; TooManySessions (429) when none is free."""
        if self.open >= self.limit:
            raise TooManySessions(
                f"the server has its limit of {self.limit} live sessions open (--max-live-sessions); "
                "retry later",
                retry_after=5,
            )
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1
