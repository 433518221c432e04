"""Wake word detection over Wyoming, with the `wyoming` client and the real microWakeWord models.

Phrases are synthesized once per module (Piper joe, some Kokoro voices speaking English); the
"other speech" is a few minutes of a public-domain reading, each sentence synthesized once a session.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.wake import Detect, Detection, NotDetected

from conftest import (
    ServerProcess,
    model_status,
    public_domain_text,
    read_aloud,
    start_server,
    synthesize,
    wait_for_status,
)
from voxhost.audio import decode_audio
from voxhost.audio.decode import float_to_pcm16
from voxhost.engines.base import EngineConfig
from voxhost.manager.registry import resolve_source
from wyoming_helpers import TIMEOUT, events_until

PHRASES = {
    "okay_nabu": "Okay Nabu.",
    "hey_jarvis": "Hey Jarvis.",
    "hey_mycroft": "Hey Mycroft.",
    "alexa": "Alexa.",
}
# Kokoro voices (English through the Japanese voices) and the words they say clearly enough for the
# models (docs/benchmarks.md has every voice and word)
KOKORO = (("jf_nezumi", "hey_jarvis"), ("jm_kumo", "hey_mycroft"), ("jf_nezumi", "alexa"))
MAX_STREAMS = 5
RATE = 16000
CHUNK = 1024  # samples per audio-chunk, as satellites send them (64 ms)


@dataclass(frozen=True)
class Clip:
    """A wake phrase with speech after it, at 16 kHz, and where the phrase ends (last loud sample)."""

    word: str
    audio: np.ndarray
    phrase_end: float  # seconds

    @property
    def pcm(self) -> bytes:
        return float_to_pcm16(self.audio)


def _clip(word: str, phrase: np.ndarray) -> Clip:
    loud = np.flatnonzero(np.abs(phrase) > 0.01)  # -40 dBFS
    lead = np.zeros(RATE // 2, dtype=np.float32)
    tail = np.zeros(RATE * 2, dtype=np.float32)
    return Clip(word, np.concatenate([lead, phrase, tail]), (len(lead) + loud[-1]) / RATE)


@pytest.fixture(scope="module")
def piper_clips() -> dict[str, Clip]:
    return {w: _clip(w, decode_audio(synthesize(p).encoded("wav"))) for w, p in PHRASES.items()}


@pytest.fixture(scope="module")
def kokoro_clips(cache_dir: Path) -> list[Clip]:
    engine = resolve_source("kokoro").load(EngineConfig(cache_dir=cache_dir))
    from voxhost.audio import encode_audio

    clips = []
    for voice, word in KOKORO:
        audio = np.concatenate(list(engine.synthesize(PHRASES[word], voice=voice, language="en-us")))
        clips.append(_clip(word, decode_audio(encode_audio(audio, engine.sample_rate, "wav"))))
    return clips


@pytest.fixture(scope="module")
def other_speech() -> np.ndarray:
    """A few minutes of a public-domain reading (Piper; its sentences are synthesized once a session
    and shared with the long-audio tests)."""
    return read_aloud(public_domain_text()[:40]).audio


@pytest.fixture(scope="module")
def wake_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("wake"), cache_dir,
        "--model", "microwakeword", "--wake-max-streams", str(MAX_STREAMS), "--preload",
    )  # fmt: skip
    yield server
    server.stop()


async def _stream(
    uri: str,
    pcm: bytes,
    names: list[str] | None = None,
    pace: float = 0.0,
    rate: int = RATE,
    width: int = 2,
    channels: int = 1,
) -> tuple[list[Event], list[float]]:
    """Detect over one connection: the events back (up to an error, or the end of the stream, which a
    describe after audio-stop marks), and for each detection, the seconds of audio the client had sent
    when it arrived. `pace` 1.0 sends on the audio clock (real time), 0 as fast as the server takes it."""
    events: list[Event] = []
    sent_at: list[float] = []
    frame = width * channels
    step = CHUNK * frame * rate // RATE
    sent = 0
    async with AsyncClient.from_uri(uri) as client:

        async def read() -> None:
            while True:
                event = await asyncio.wait_for(client.read_event(), TIMEOUT)
                assert event is not None, f"connection closed; got {[e.type for e in events]}"
                if event.type == "info":
                    return
                events.append(event)
                if Detection.is_type(event.type):
                    sent_at.append(sent / frame / rate)
                if event.type == "error":
                    return

        reader = asyncio.create_task(read())
        await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        started = time.monotonic()
        for i in range(0, len(pcm), step):
            if reader.done():
                break  # an error ended it
            chunk = pcm[i : i + step]
            await client.write_event(
                AudioChunk(rate=rate, width=width, channels=channels, audio=chunk).event()
            )
            sent += len(chunk)
            if pace:  # the audio clock: the next chunk is due when this one has played
                await asyncio.sleep(max(0.0, started + sent / frame / rate / pace - time.monotonic()))
            else:
                await asyncio.sleep(0)  # let the reader see detections as they come
        if not reader.done():
            await client.write_event(AudioStop().event())
            await client.write_event(Describe().event())  # its info marks the end of the answers
        await reader
    return events, sent_at


def run_stream(*args: object, **kwargs: object) -> tuple[list[Event], list[float]]:
    return asyncio.run(_stream(*args, **kwargs))  # type: ignore[arg-type]


def detections(events: list[Event]) -> list[Detection]:
    return [Detection.from_event(e) for e in events if Detection.is_type(e.type)]


def test_describe_lists_the_wake_words(wake_server: ServerProcess) -> None:
    async def main() -> Info:
        async with AsyncClient.from_uri(wake_server.wyoming_uri) as client:
            await client.write_event(Describe().event())
            (event,) = await events_until(client, "info")
            return Info.from_event(event)

    info = asyncio.run(main())
    (program,) = info.wake
    assert program.name == "voxhost-wake"
    assert program.attribution.name == "voxhost"
    models = {m.name: m for m in program.models}
    assert set(models) == set(PHRASES)
    assert models["okay_nabu"].phrase == "Okay Nabu"
    assert "de" in models["okay_nabu"].languages
    assert models["alexa"].languages == ["en"]
    assert all(m.installed and "microWakeWord" in m.attribution.name for m in models.values())
    assert not info.asr
    assert not info.tts


def test_each_word_is_heard_at_real_time_pace(
    wake_server: ServerProcess, piper_clips: dict[str, Clip]
) -> None:
    """Four satellites at once, each saying its word on the audio clock: each hears its word once,
    while the speech after it is still streaming, stamped where the phrase ends."""

    async def main() -> list[tuple[list[Event], list[float]]]:
        uri = wake_server.wyoming_uri
        return await asyncio.gather(*(_stream(uri, c.pcm, [w], pace=1.0) for w, c in piper_clips.items()))

    for (events, sent_at), clip in zip(asyncio.run(main()), piper_clips.values(), strict=True):
        (found,) = detections(events)
        assert found.name == clip.word
        assert found.timestamp is not None
        # stamped after the phrase began, and within a second of its end
        assert 0.5 < found.timestamp / 1000 < clip.phrase_end + 1.0
        # heard while the client was still sending the two seconds after the phrase
        assert sent_at[0] < len(clip.audio) / RATE - 0.5
        assert not any(NotDetected.is_type(e.type) for e in events)


def test_a_burst_of_every_word_and_refractory(
    wake_server: ServerProcess, piper_clips: dict[str, Clip]
) -> None:
    """All four words in one stream as fast as the server takes it, listening for all: four detections in
    order, each once; the same phrase said twice with no pause is heard once (refractory)."""
    clips = list(piper_clips.values())
    audio = np.concatenate([c.audio for c in clips])
    events, _ = run_stream(wake_server.wyoming_uri, float_to_pcm16(audio))
    found = detections(events)
    assert [d.name for d in found] == [c.word for c in clips]
    offsets = np.cumsum([0] + [len(c.audio) / RATE for c in clips[:-1]])
    for detection, clip, offset in zip(found, clips, offsets, strict=True):
        assert detection.timestamp is not None
        assert offset < detection.timestamp / 1000 < offset + clip.phrase_end + 1.0

    jarvis = piper_clips["hey_jarvis"].audio
    loud = np.flatnonzero(np.abs(jarvis) > 0.01)
    phrase = jarvis[loud[0] : loud[-1]]
    twice = np.concatenate([jarvis[: loud[0]], phrase, phrase, jarvis[loud[-1] :]])
    events, _ = run_stream(wake_server.wyoming_uri, float_to_pcm16(twice), ["hey_jarvis"])
    assert len(detections(events)) == 1


def test_kokoro_voices_are_heard(wake_server: ServerProcess, kokoro_clips: list[Clip]) -> None:
    audio = np.concatenate([c.audio for c in kokoro_clips])
    events, _ = run_stream(wake_server.wyoming_uri, float_to_pcm16(audio))
    assert [d.name for d in detections(events)] == [c.word for c in kokoro_clips]


def test_any_format_is_converted(wake_server: ServerProcess, piper_clips: dict[str, Clip]) -> None:
    """44.1 kHz stereo 32-bit: converted once, heard the same."""
    from voxhost.audio.decode import PcmConverter

    clip = piper_clips["okay_nabu"]
    converter = PcmConverter(RATE, 2, 1, sample_rate=44100)
    mono = np.concatenate([converter.convert(clip.pcm), converter.flush()]).astype(np.float64)
    frames = np.repeat(mono[:, None], 2, axis=1).reshape(-1)
    pcm = (np.clip(frames, -1, 1) * (2**31 - 1)).astype("<i4").tobytes()
    events, _ = run_stream(wake_server.wyoming_uri, pcm, ["okay_nabu"], rate=44100, width=4, channels=2)
    (found,) = detections(events)
    assert found.name == "okay_nabu"


def test_minutes_of_other_speech_are_not_detected(
    wake_server: ServerProcess, other_speech: np.ndarray
) -> None:
    assert len(other_speech) / RATE > 120
    events, _ = run_stream(wake_server.wyoming_uri, float_to_pcm16(other_speech))
    assert [e.type for e in events] == ["not-detected"]


def test_unknown_word_is_an_error(wake_server: ServerProcess, piper_clips: dict[str, Clip]) -> None:
    """One `error`; the audio sent after it is dropped (no other answer), and the connection still
    detects."""
    clip = piper_clips["okay_nabu"]

    async def main() -> tuple[list[Event], list[Event]]:
        async with AsyncClient.from_uri(wake_server.wyoming_uri) as client:
            await client.write_event(Detect(names=["hey_computer"]).event())
            await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            await client.write_event(AudioChunk(rate=RATE, width=2, channels=1, audio=clip.pcm).event())
            await client.write_event(AudioStop().event())
            await client.write_event(Describe().event())
            refused = await events_until(client, "info")  # stops at the error
            refused += await events_until(client, "info")  # the next answer: an error, or the info
            await client.write_event(Detect(names=["okay_nabu"]).event())
            await client.write_event(AudioChunk(rate=RATE, width=2, channels=1, audio=clip.pcm).event())
            return refused, await events_until(client, "detection")

    refused, heard = asyncio.run(main())
    assert [e.type for e in refused] == ["error", "info"]
    error = Error.from_event(refused[0])
    assert "hey_computer" in error.text
    assert "okay_nabu" in error.text
    assert [d.name for d in detections(heard)] == ["okay_nabu"]


def _metric(server: ServerProcess, name: str) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = re.compile(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", re.M)
    return {labels or "": float(value) for labels, value in pattern.findall(text)}


def _streams_open(server: ServerProcess) -> float:
    return _metric(server, "voxhost_wake_streams")[""]


def test_many_streams_at_once_bounded_and_hang_ups(
    wake_server: ServerProcess, piper_clips: dict[str, Clip]
) -> None:
    """MAX_STREAMS satellites stream at once and each hears its word; one more is refused; clients that
    hang up mid-stream free their streams."""
    clip = piper_clips["alexa"]
    before = _metric(wake_server, "voxhost_wake_detections_total")

    async def main() -> tuple[list[tuple[list[Event], list[float]]], list[Event]]:
        uri = wake_server.wyoming_uri
        # MAX_STREAMS streams held open (audio-start sent, no stop yet), then one more asks
        clients = [AsyncClient.from_uri(uri) for _ in range(MAX_STREAMS)]
        for client in clients:
            await client.connect()
            await client.write_event(Detect(names=["alexa"]).event())
            await client.write_event(AudioChunk(rate=RATE, width=2, channels=1, audio=b"\0" * 640).event())
        await _until_streams(MAX_STREAMS)
        refused, _ = await _stream(uri, clip.pcm, ["alexa"])
        for client in clients:  # hang up mid-stream
            await client.disconnect()
        await _until_streams(0)
        return await asyncio.gather(*(_stream(uri, clip.pcm, ["alexa"]) for _ in range(MAX_STREAMS))), refused

    async def _until_streams(count: int) -> None:
        deadline = time.monotonic() + 20
        while _streams_open(wake_server) != count:
            assert time.monotonic() < deadline, f"{_streams_open(wake_server)} streams open, not {count}"
            await asyncio.sleep(0.05)

    results, refused = asyncio.run(main())
    assert Error.from_event(refused[0]).code == "queue_full"
    for events, _ in results:
        assert [d.name for d in detections(events)] == ["alexa"]
    after = _metric(wake_server, "voxhost_wake_detections_total")
    key = '{model="microwakeword",word="alexa"}'
    assert after[key] - before.get(key, 0.0) == MAX_STREAMS
    assert _streams_open(wake_server) == 0


def test_a_stream_outlives_its_worker(wake_server: ServerProcess, piper_clips: dict[str, Clip]) -> None:
    """The wake model's worker killed mid-stream: the stream goes on, on a fresh worker, and hears the
    next word."""
    jarvis, alexa = piper_clips["hey_jarvis"], piper_clips["alexa"]

    async def main() -> list[Event]:
        events: list[Event] = []
        async with AsyncClient.from_uri(wake_server.wyoming_uri) as client:
            await client.write_event(Detect(names=None).event())

            async def send(clip: Clip) -> None:
                for i in range(0, len(clip.pcm), CHUNK * 2):
                    chunk = clip.pcm[i : i + CHUNK * 2]
                    await client.write_event(AudioChunk(rate=RATE, width=2, channels=1, audio=chunk).event())

            await send(jarvis)
            events += await events_until(client, "detection")
            pid = model_status(wake_server)["pid"]
            os.kill(pid, signal.SIGKILL)
            wait_for_status(wake_server, lambda s: s["pid"] != pid or s["state"] != "ready", "the crash")
            await send(alexa)
            events += await events_until(client, "detection")
            await client.write_event(AudioStop().event())
        return events

    found = detections(asyncio.run(main()))
    assert [d.name for d in found] == ["hey_jarvis", "alexa"]
    status = model_status(wake_server)
    assert status["state"] == "ready"
    assert status["restarts"] >= 1
