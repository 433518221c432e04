"""The server's limits on what one request may carry, checked the same way for every protocol.

Uploads and decoded audio (HTTP files, Wyoming audio events), live-stream messages and length
(the live WebSocket, Realtime), and the text of a speech request. Each limit is a setting; each refusal
is the same error with the same message whichever front-end it came through.
"""

from __future__ import annotations

import numpy as np

from voxhost.audio.decode import PcmConverter, decode_audio
from voxhost.audio.text import speakable
from voxhost.errors import AudioTooLong, BadRequest, PayloadTooLarge, StreamTooLong
from voxhost.settings import Settings

SAMPLE_RATE = 16000  # of the audio the ASR engines take


class RequestLimits:
    def __init__(self, settings: Settings) -> None:
        self.upload_bytes = settings.max_upload_bytes
        self.audio_seconds = settings.max_audio_seconds
        self.message_bytes = settings.max_ws_message_kb * 1024
        self.stream_seconds = settings.max_stream_seconds
        self.input_chars = settings.max_input_chars

    def upload(self, size: int) -> None:
        if size > self.upload_bytes:
            raise PayloadTooLarge(f"the upload is larger than the limit of {self.upload_bytes / 2**20:g} MiB")

    def audio(self, samples: int) -> None:
        """Audio of `samples` 16 kHz samples (decoded so far) is within the limit."""
        if samples > self.audio_seconds * SAMPLE_RATE:
            raise AudioTooLong(f"the audio is longer than the limit of {self.audio_seconds:g}s")

    def decode(self, data: bytes) -> np.ndarray:
        """An uploaded file as float32 16 kHz mono; too long: refused before decoding when it says so."""
        return decode_audio(data, max_seconds=self.audio_seconds)

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
