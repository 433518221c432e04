"""Audio decoding with PyAV: every container clients send, resampled to 16 kHz mono; bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Speech
from voxhost.audio import decode_audio, encode_audio
from voxhost.audio.encode import FORMATS
from voxhost.errors import BadAudio, BadRequest


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip_keeps_length_and_signal(short_speech: Speech, fmt: str) -> None:
    data = short_speech.encoded(fmt)
    audio = decode_audio(data)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    # lossy codecs add priming samples; the length stays within 0.1 s
    assert len(audio) / 16000 == pytest.approx(short_speech.seconds, abs=0.1)
    assert 0.01 < float(np.sqrt(np.mean(audio**2))) < 1.0


def test_stereo_and_other_rates_are_mixed_down() -> None:
    import io

    import av

    rate, seconds = 44100, 1.0
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left]).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(stereo.reshape(1, -1, order="F"), format="flt", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    audio = decode_audio(buffer.getvalue())
    assert len(audio) == pytest.approx(16000, abs=20)
    # the tone survives: same pitch, similar level (libswresample mixes stereo at -3 dB per channel)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * 16000 / len(audio) == pytest.approx(440, abs=2)
    assert 0.4 < float(np.abs(audio).max()) < 0.75


@pytest.mark.parametrize(
    "data",
    [b"", b"not audio at all" * 100, b"RIFF\x00\x00\x00\x00WAVE", bytes(range(256)) * 50],
    ids=["empty", "text", "truncated-wav-header", "binary-noise"],
)
def test_bad_audio_is_refused(data: bytes) -> None:
    with pytest.raises(BadAudio):
        decode_audio(data)


def test_duration_limit(short_speech: Speech) -> None:
    with pytest.raises(BadAudio, match="longer than"):
        decode_audio(short_speech.encoded("wav"), max_seconds=1.0)


def test_encode_rejects_unknown_format() -> None:
    with pytest.raises(BadRequest):
        encode_audio(np.zeros(100, dtype=np.float32), 16000, "xyz")
