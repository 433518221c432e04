"""Third-party voice-agent clients, as people run them today, against a live `voxhost serve`.

LiveKit's OpenAI plugin (STT over HTTP and over the GA Realtime API, TTS over SSE) and pipecat's OpenAI
services (STT over HTTP and over the Realtime API, TTS as raw PCM), each built the way its docs show and
pointed at the server by base URL and API key only: the model and voice names, fields and events on the
wire are the client's own defaults (asserted below, so a client upgrade that changes them says so).
Speech a client receives is transcribed back by the same server. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, utils
from livekit.agents import stt as livekit_stt
from livekit.plugins import openai as livekit_openai

from conftest import SENTENCES, ServerProcess, Speech, assert_transcript, post_audio, start_server
from voxhost.audio import decode_audio
from voxhost.audio.decode import float_to_pcm16

with warnings.catch_warnings():
    # pipecat deprecates classes of its own while defining them (AudioContextTTSService), at import
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.audio.utils import pcm_to_wav
    from pipecat.frames.frames import (
        ErrorFrame,
        Frame,
        InputAudioRawFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
        TTSSpeakFrame,
        VADUserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.observers.base_observer import BaseObserver, FramePushed
    from pipecat.services.openai.stt import OpenAIRealtimeSTTService, OpenAISTTService
    from pipecat.services.openai.tts import OpenAITTSService
    from pipecat.tests.utils import SleepFrame, run_test

T = TypeVar("T")

API_KEY = "unused"  # the server has no keys; the clients insist on sending one
TIMEOUT = 90  # seconds for one client exchange, well inside pytest-timeout
NO_RETRY = APIConnectOptions(max_retry=0, timeout=10)  # LiveKit retries 3 times by default: fail at once

# What each client sends by default (LiveKit 1.8.9, pipecat 1.14.0)
LIVEKIT_STT_MODEL = "gpt-4o-mini-transcribe"
LIVEKIT_TTS_MODEL, LIVEKIT_TTS_VOICE = "gpt-4o-mini-tts", "ash"
PIPECAT_STT_MODEL = "gpt-transcribe"
PIPECAT_REALTIME_STT_MODEL = "gpt-realtime-whisper"
PIPECAT_TTS_MODEL, PIPECAT_TTS_VOICE = "gpt-4o-mini-tts", "alloy"


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    """The server as it starts with no model flags (tiny.en and en_US-joe-medium), both loaded."""
    server = start_server(tmp_path_factory.mktemp("clients"), cache_dir, "--preload")
    yield server
    server.stop()


def run(coroutine: Coroutine[Any, Any, T], seconds: float = TIMEOUT) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, seconds))


def pcm16(speech: Speech, lead: float = 0.0, tail: float = 0.0) -> np.ndarray:
    """The speech as int16 samples at its own rate, with `lead` and `tail` seconds of silence."""
    pad = [np.zeros(int(s * speech.sample_rate), dtype=np.float32) for s in (lead, tail)]
    audio = np.concatenate([pad[0], speech.audio, pad[1]])
    return np.frombuffer(float_to_pcm16(audio), dtype="<i2")


def frames(samples: np.ndarray, rate: int, seconds: float) -> Iterator[rtc.AudioFrame]:
    """LiveKit audio frames of `seconds` each, as a room track delivers them."""
    step = int(rate * seconds)
    for start in range(0, len(samples), step):
        chunk = samples[start : start + step]
        yield rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk))


def heard(server: ServerProcess, wav: bytes) -> str:
    """What the server's default ASR model hears in `wav` (no model named: independent of aliases)."""
    response = post_audio(server, wav)
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


async def close_sdk_client(service: Any) -> None:
    # Neither LiveKit's STT.aclose nor pipecat's services close the openai client they build; left
    # open, its pooled sockets warn (ResourceWarning, an error here) in whatever test collects them.
    await service._client.close()


# --- LiveKit: livekit-plugins-openai ---------------------------------------------------------------
def test_livekit_stt_recognize_over_http(voice_server: ServerProcess, speech: Speech) -> None:
    """STT() as an AgentSession uses it with a VAD: POST /v1/audio/transcriptions with model
    gpt-4o-mini-transcribe, language=en, response_format=json and a 'file.wav'."""

    async def main() -> livekit_stt.SpeechEvent:
        stt = livekit_openai.STT(base_url=voice_server.url + "/v1", api_key=API_KEY)
        assert stt.model == LIVEKIT_STT_MODEL
        assert not stt.capabilities.streaming  # its default: HTTP, not the Realtime API
        try:
            buffer = list(frames(pcm16(speech), speech.sample_rate, 0.02))
            return await stt.recognize(buffer, conn_options=NO_RETRY)
        finally:
            await stt.aclose()
            await close_sdk_client(stt)

    event = run(main())
    assert event.type == livekit_stt.SpeechEventType.FINAL_TRANSCRIPT
    assert_transcript(event.alternatives[0].text, speech.text)
    assert event.alternatives[0].language == "en"


def test_livekit_stt_stream_over_realtime(voice_server: ServerProcess, short_speech: Speech) -> None:
    """STT(use_realtime=True): WS /v1/realtime?intent=transcription&model=gpt-4o-mini-transcribe, a GA
    `session.update` (session.type transcription, audio.input.format audio/pcm at 24 kHz,
    audio.input.transcription model and language, server_vad turn detection), 50 ms
    `input_audio_buffer.append`s and no commit: the server's VAD ends the utterance."""

    async def main() -> list[livekit_stt.SpeechEvent]:
        async with utils.http_context.open():  # LiveKit's own setup for plugins outside a worker
            stt = livekit_openai.STT(base_url=voice_server.url + "/v1", api_key=API_KEY, use_realtime=True)
            assert stt.model == LIVEKIT_STT_MODEL
            stream = stt.stream(conn_options=NO_RETRY)
            events: list[livekit_stt.SpeechEvent] = []

            async def speak() -> None:
                # at real-time pace, in 20 ms frames at Piper's rate (the plugin resamples to 24 kHz)
                with contextlib.suppress(RuntimeError):  # the stream failed: reading it says why
                    for frame in frames(pcm16(short_speech, 0.5, 1.5), short_speech.sample_rate, 0.02):
                        stream.push_frame(frame)
                        await asyncio.sleep(0.02)
                    stream.end_input()

            speaking = asyncio.create_task(speak())
            try:
                async for event in stream:
                    events.append(event)
                    if event.type == livekit_stt.SpeechEventType.FINAL_TRANSCRIPT:
                        return events
                raise AssertionError(f"the stream ended without a final transcript: {events}")
            finally:
                speaking.cancel()
                await stream.aclose()
                await stt.aclose()
                await close_sdk_client(stt)

    events = run(main())
    kinds = [event.type for event in events]
    assert livekit_stt.SpeechEventType.START_OF_SPEECH in kinds  # from input_audio_buffer.speech_started
    assert_transcript(events[-1].alternatives[0].text, short_speech.text)


def test_livekit_tts_synthesize_over_sse(voice_server: ServerProcess) -> None:
    """TTS(): POST /v1/audio/speech with model gpt-4o-mini-tts, voice ash, response_format mp3, speed
    1.0 and stream_format sse; it decodes the base64 mp3 of the `speech.audio.delta` events (or, from a
    server that ignores stream_format, the mp3 body itself)."""
    text = SENTENCES[0]

    async def main() -> rtc.AudioFrame:
        tts = livekit_openai.TTS(base_url=voice_server.url + "/v1", api_key=API_KEY)
        assert (tts.model, tts._opts.voice) == (LIVEKIT_TTS_MODEL, LIVEKIT_TTS_VOICE)
        try:
            async with tts.synthesize(text, conn_options=NO_RETRY) as stream:
                return await stream.collect()
        finally:
            await tts.aclose()

    frame = run(main())
    assert frame.sample_rate == 24000
    assert frame.duration > 1.0
    assert_transcript(heard(voice_server, frame.to_wav_bytes()), text)


# --- pipecat: pipecat-ai[openai] ---------------------------------------------------------------------
@pytest.mark.parametrize("probabilities", [False, True], ids=["default", "include_prob_metrics"])
def test_pipecat_stt_over_http(voice_server: ServerProcess, speech: Speech, probabilities: bool) -> None:
    """OpenAISTTService(): POST /v1/audio/transcriptions with model gpt-transcribe, language=en and an
    'audio.wav' of 16 kHz PCM, the segment its VAD cut (run_stt is what the pipeline calls with it).
    With include_prob_metrics=True it adds response_format=json and include[]=logprobs, and reads the
    transcript's `logprobs`."""
    wav = pcm_to_wav(float_to_pcm16(_at_16k(speech)), 16000)

    async def main() -> list[Frame]:
        service = OpenAISTTService(
            base_url=voice_server.url + "/v1", api_key=API_KEY, include_prob_metrics=probabilities
        )
        assert service.settings.model == PIPECAT_STT_MODEL
        try:
            return [frame async for frame in service.run_stt(wav)]
        finally:
            await close_sdk_client(service)

    out = run(main())
    errors = [frame.error for frame in out if isinstance(frame, ErrorFrame)]
    transcripts = [frame for frame in out if isinstance(frame, TranscriptionFrame)]
    assert len(transcripts) == 1, errors or out
    assert_transcript(transcripts[0].text, speech.text)
    if probabilities:
        logprobs = transcripts[0].result.logprobs  # the SDK's Transcription
        assert logprobs
        assert all(entry.token is not None and entry.logprob <= 0 for entry in logprobs)


def test_pipecat_tts(voice_server: ServerProcess) -> None:
    """OpenAITTSService(): POST /v1/audio/speech with model gpt-4o-mini-tts, voice alloy and
    response_format pcm, read as 24 kHz 16-bit mono. Driven by pipecat's own test pipeline (run_test),
    which gives the service the output rate its run_tts needs."""
    text = SENTENCES[0]

    async def main() -> tuple[list[Frame], list[Frame]]:
        service = OpenAITTSService(base_url=voice_server.url + "/v1", api_key=API_KEY)
        assert (service.settings.model, service.settings.voice) == (PIPECAT_TTS_MODEL, PIPECAT_TTS_VOICE)
        try:
            down, up = await run_test(service, frames_to_send=[TTSSpeakFrame(text)])
            return list(down), list(up)
        finally:
            await close_sdk_client(service)

    down, up = run(main())
    errors = [frame.error for frame in [*down, *up] if isinstance(frame, ErrorFrame)]
    audio = [frame for frame in down if isinstance(frame, TTSAudioRawFrame)]
    assert audio, errors
    assert not errors
    assert {frame.sample_rate for frame in audio} == {24000}
    pcm = b"".join(frame.audio for frame in audio)
    assert len(pcm) / 2 / 24000 > 1.0
    assert_transcript(heard(voice_server, pcm_to_wav(pcm, 24000)), text)


def test_pipecat_stt_over_realtime(voice_server: ServerProcess, short_speech: Speech) -> None:
    """OpenAIRealtimeSTTService(base_url=ws://.../v1/realtime): WS /v1/realtime?intent=transcription;
    after the server's `session.created` a GA `session.update` (model gpt-realtime-whisper, language en,
    turn_detection null), appends of 24 kHz PCM, and `input_audio_buffer.commit` when pipecat's own VAD
    says the user stopped; the transcript comes from `...input_audio_transcription.completed`."""
    samples = np.frombuffer(float_to_pcm16(_at_16k(short_speech)), dtype="<i2")
    chunks = [samples[i : i + 320].tobytes() for i in range(0, len(samples), 320)]  # 20 ms at 16 kHz

    async def main() -> tuple[list[Frame], list[Frame]]:
        service = OpenAIRealtimeSTTService(
            base_url=voice_server.url.replace("http", "ws", 1) + "/v1/realtime", api_key=API_KEY
        )
        assert service.settings.model == PIPECAT_REALTIME_STT_MODEL
        done = _Transcribed(service)
        sent = [
            SleepFrame(0.5),  # the session.created -> session.update handshake
            VADUserStartedSpeakingFrame(),
            *(InputAudioRawFrame(chunk, 16000, 1) for chunk in chunks),
            VADUserStoppedSpeakingFrame(),  # -> input_audio_buffer.commit
        ]
        down, up = await run_test(service, frames_to_send=done.after(sent, TIMEOUT - 10), observers=[done])
        return list(down), list(up)

    down, up = run(main())
    errors = [frame.error for frame in [*down, *up] if isinstance(frame, ErrorFrame)]
    texts = [frame.text for frame in down if isinstance(frame, TranscriptionFrame)]
    assert texts, errors
    assert not errors  # e.g. an `error` event answering its session.update
    assert_transcript(" ".join(texts), short_speech.text)


class _Transcribed(BaseObserver):
    """Notes the service's first TranscriptionFrame, so that the test pipeline ends right after it."""

    def __init__(self, service: Any) -> None:
        super().__init__()
        self.service = service
        self.seen = False

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is self.service and isinstance(data.frame, TranscriptionFrame):
            self.seen = True

    def after(self, frames: list[Frame], seconds: float) -> Iterator[Frame]:
        """`frames`, then short pauses until the transcript came or `seconds` passed (run_test sends its
        EndFrame, which closes the WebSocket, once these run out)."""
        yield from frames
        deadline = time.monotonic() + seconds
        while not self.seen and time.monotonic() < deadline:
            yield SleepFrame(0.1)


def _at_16k(speech: Speech) -> np.ndarray:
    """The speech at 16 kHz (pipecat's default input rate), through the server's own decoder."""
    return decode_audio(speech.encoded("wav"), sample_rate=16000)
