"""Audio decoding with PyAV: every container clients send, resampled to 16 kHz mono; bad input refused."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import Speech
from voxhost.audio import decode_audio, encode_audio, probe_seconds
from voxhost.audio.encode import FORMATS
from voxhost.errors import AudioTooLong, BadAudio, BadRequest


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


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_audio_over_the_duration_limit_is_a_413(short_speech: Speech, fmt: str) -> None:
    """Refused from the declared duration where the file has one, else while decoding."""
    with pytest.raises(AudioTooLong, match="longer than the limit of 1s") as caught:
        decode_audio(short_speech.encoded(fmt), max_seconds=1.0)
    assert caught.value.status == 413
    assert decode_audio(short_speech.encoded(fmt), max_seconds=60).size > 16000


def test_a_wav_that_declares_far_more_than_it_holds_decodes_what_it_holds(short_speech: Speech) -> None:
    """The declared duration sizes the buffer but is never trusted: a header claiming an hour of audio
    over two seconds of samples gives those two seconds (and no hour-long buffer)."""
    samples = decode_audio(short_speech.encoded("wav"))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((samples * 32767).astype("<i2").tobytes())
    data = bytearray(out.getvalue())
    assert data[36:40] == b"data"
    for claim in (16000 * 2 * 3600, 0xFFFFFFFF):  # an hour; the "size unknown" of a recording in progress
        data[40:44] = claim.to_bytes(4, "little")
        audio = decode_audio(bytes(data), max_seconds=60)
        assert abs(audio.size - samples.size) < 1600
        assert audio.base is None or audio.base.size < 2 * audio.size


def test_a_damaged_tail_gives_the_audio_before_it(speech: Speech) -> None:
    whole = decode_audio(speech.encoded("mp3"))
    data = speech.encoded("mp3")
    cut = len(data) * 2 // 3
    damaged = data[:cut] + bytes(range(256)) * 8  # garbage where the last third was
    audio = decode_audio(damaged)
    assert whole.size / 2 < audio.size <= whole.size + 16000
    assert np.isfinite(audio).all()


def test_encode_rejects_unknown_format() -> None:
    with pytest.raises(BadRequest):
        encode_audio(np.zeros(100, dtype=np.float32), 16000, "xyz")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_probe_reads_the_declared_length_without_decoding(
    tmp_path: Path, short_speech: Speech, fmt: str
) -> None:
    path = tmp_path / f"speech.{fmt}"
    path.write_bytes(short_speech.encoded(fmt))
    probed = probe_seconds(path)
    assert probed is not None
    assert probed == pytest.approx(short_speech.seconds, abs=0.1)  # some formats estimate it


def test_probe_of_what_is_not_audio_is_none(tmp_path: Path) -> None:
    notes, empty = tmp_path / "notes.ogg", tmp_path / "empty.wav"
    notes.write_text("meeting notes, not audio\n" * 20)
    empty.write_bytes(b"")
    assert probe_seconds(notes) is None
    assert probe_seconds(empty) is None
    assert probe_seconds(tmp_path / "missing.wav") is None
