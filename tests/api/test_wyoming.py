"""The Wyoming protocol against a live server, with the `wyoming` client library and real models."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from conftest import Recording, ServerFactory, ServerProcess, Speech, assert_transcript, start_server
from voxhost.api.wyoming import WyomingServer, info_event
from voxhost.audio.decode import float_to_pcm16
from voxhost.harness.wer import missing_sentences, words
from voxhost.manager import ModelManager
from voxhost.settings import Settings, wyoming_address
from wyoming_helpers import TIMEOUT, events_until, pcm_of, transcribe


@pytest.fixture(scope="module")
def wy_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: object) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("wyoming"),
        cache_dir,  # type: ignore[arg-type]
        "--model", "tiny.en", "--model", "base", "--model", "en_US-joe-medium", "--model", "kokoro",
        "--preload",
    )  # fmt: skip
    yield server
    server.stop()


def test_describe_lists_models_and_voices(wy_server: ServerProcess, cache_dir: Path) -> None:
    async def main() -> Info:
        async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
            await client.write_event(Describe().event())
            (event,) = await events_until(client, "info")
            return Info.from_event(event)

    info = asyncio.run(main())
    assert Info.from_event(info.event()) == info
    (asr,) = info.asr
    models = {m.name: m for m in asr.models}
    assert models["tiny.en"].languages == ["en"]
    assert "de" in models["base"].languages
    assert asr.supports_transcript_streaming
    assert asr.requires_external_vad
    assert asr.version
    assert asr.attribution.name == "voxhost"
    assert models["tiny.en"].attribution.name.startswith("OpenAI Whisper")
    assert all(m.installed and m.version and m.attribution.url.startswith("http") for m in models.values())
    (tts,) = info.tts
    voices = {v.name: v for v in tts.voices}
    assert {"en_US-joe-medium", "jf_alpha", "jm_kumo"} <= set(voices)
    assert tts.supports_synthesize_streaming
    joe = voices["en_US-joe-medium"]
    assert (joe.languages, joe.version, joe.speakers) == (["en_US"], "1.0.0", None)
    assert (voices["jf_alpha"].languages, voices["jf_alpha"].version) == (["ja_JP"], "1.0")
    assert voices["jm_kumo"].description == "jm_kumo (male, kokoro)"
    # the models are loaded (--preload): what their workers say is what their files say, unloaded
    # (tests/api/test_wyoming_info.py); Whisper's language lists may come in another order
    settings = Settings(models=["tiny.en", "base", "en_US-joe-medium", "kokoro"], cache_dir=cache_dir)
    from_files = info_event(asyncio.run(ModelManager(settings).describe()))
    assert from_files.tts == info.tts
    for model, read in zip(asr.models, from_files.asr[0].models, strict=True):
        assert (read.name, read.version, read.attribution) == (model.name, model.version, model.attribution)
        assert set(read.languages) == set(model.languages)


@pytest.mark.parametrize(
    ("rate", "width", "channels"), [(16000, 2, 1), (22050, 2, 1), (44100, 2, 2), (48000, 4, 1), (8000, 1, 1)]
)
def test_transcribe_any_audio_format(
    wy_server: ServerProcess, speech: Speech, rate: int, width: int, channels: int
) -> None:
    events = asyncio.run(
        transcribe(wy_server.wyoming_uri, pcm_of(speech, rate, width, channels), rate, width, channels)
    )
    types = [e.type for e in events]
    assert types[0] == "transcript-start"
    assert types[-2:] == ["transcript-stop", "transcript"]
    transcript = Transcript.from_event(events[-1])
    assert transcript.language == "en"
    # 8-bit audio at 8 kHz is telephone quality: allow a little more
    assert_transcript(transcript.text, speech.text, max_errors=1 if width > 1 else 3)
    chunks = " ".join(TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type))
    assert chunks.split() == transcript.text.split()
    assert TranscriptStart.is_type(events[0].type)
    assert TranscriptStop.is_type(events[-2].type)


def test_synthesize_then_transcribe(wy_server: ServerProcess) -> None:
    text = "Turn on the kitchen lights. Then close the blinds."

    async def main(voice: str | None) -> tuple[list[Event], list[Event]]:
        async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
            await client.write_event(
                Synthesize(text=text, voice=SynthesizeVoice(name=voice) if voice else None).event()
            )
            spoken = await events_until(client, "audio-stop")
        start = AudioStart.from_event(spoken[0])
        pcm = b"".join(AudioChunk.from_event(e).audio for e in spoken if AudioChunk.is_type(e.type))
        heard = await transcribe(
            wy_server.wyoming_uri, pcm, start.rate, start.width, start.channels, "tiny.en"
        )
        return spoken, heard

    for voice in (None, "jf_alpha", "jm_kumo"):
        spoken, heard = asyncio.run(main(voice))
        assert spoken[0].type == "audio-start"
        assert AudioStart.from_event(spoken[0]).rate == (22050 if voice is None else 24000)
        assert sum(e.type == "audio-chunk" for e in spoken) >= 2  # one per sentence, streamed
        assert_transcript(Transcript.from_event(heard[-1]).text, text, max_errors=2)


def test_streaming_synthesis_speaks_sentences_as_text_arrives(wy_server: ServerProcess) -> None:
    async def main() -> tuple[list[Event], list[Event]]:
        async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="en_US-joe-medium")).event())
            for piece in ("The first sen", "tence is here. ", "And the sec"):
                await client.write_event(SynthesizeChunk(text=piece).event())
            # audio for the complete first sentence arrives before the text is finished
            early = await events_until(client, "audio-chunk")
            await client.write_event(SynthesizeChunk(text="ond one follows.").event())
            await client.write_event(SynthesizeStop().event())
            # the compatibility copy that streaming clients also send is ignored
            await client.write_event(
                Synthesize(text="The first sentence is here. And the second one follows.").event()
            )
            rest = await events_until(client, "synthesize-stopped")
            return early, rest

    early, rest = asyncio.run(main())
    assert [e.type for e in early] == ["audio-start", "audio-chunk"]
    assert [e.type for e in rest][-2:] == ["audio-stop", "synthesize-stopped"]
    assert SynthesizeStopped.is_type(rest[-1].type)
    pcm = b"".join(AudioChunk.from_event(e).audio for e in early + rest if AudioChunk.is_type(e.type))
    heard = asyncio.run(transcribe(wy_server.wyoming_uri, pcm, 22050, 2, 1, "tiny.en"))
    assert_transcript(
        Transcript.from_event(heard[-1]).text, "The first sentence is here. And the second one follows.", 2
    )


def test_concurrent_clients(wy_server: ServerProcess, short_speech: Speech) -> None:
    pcm = pcm_of(short_speech, 16000)

    async def main() -> list[list[Event]]:
        asr = [transcribe(wy_server.wyoming_uri, pcm, 16000, 2, 1) for _ in range(4)]

        async def tts() -> list[Event]:
            async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
                await client.write_event(Synthesize(text="Good night.").event())
                return await events_until(client, "audio-stop")

        return await asyncio.gather(*asr, tts(), tts())

    results = asyncio.run(main())
    for events in results[:4]:
        assert_transcript(Transcript.from_event(events[-1]).text, short_speech.text)
    for events in results[4:]:
        assert events[-1].type == "audio-stop"


def test_bad_events_get_error_events_and_the_connection_survives(
    wy_server: ServerProcess, short_speech: Speech
) -> None:
    async def main() -> list[str]:
        codes = []
        async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
            for bad in (
                Transcribe(name="no-such-model").event(),
                AudioStart(rate=16000, width=3, channels=1).event(),
                AudioStop().event(),  # no audio at all
                Synthesize(text="hello", voice=SynthesizeVoice(name="nobody")).event(),
                Event(type="synthesize"),  # no text
                SynthesizeChunk(text="orphan").event(),
                SynthesizeStop().event(),
            ):
                await client.write_event(bad)
                (event,) = await events_until(client, "error")
                assert Error.is_type(event.type)
                codes.append(str(Error.from_event(event).code))
            await client.write_event(Event(type="some-future-event", data={"x": 1}))  # ignored
            await client.write_event(Transcribe().event())
            pcm = pcm_of(short_speech, 16000)
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm).event())
            await client.write_event(AudioStop().event())
            events = await events_until(client, "transcript")
            assert_transcript(Transcript.from_event(events[-1]).text, short_speech.text)
        return codes

    codes = asyncio.run(main())
    assert codes[0] == "model_not_found"
    assert codes[1] == "invalid_audio"
    assert codes[2] == "invalid_audio"
    assert all(codes)


def test_garbage_bytes_do_not_hurt_the_server(wy_server: ServerProcess) -> None:
    async def main() -> None:
        reader, writer = await asyncio.open_connection(
            *wy_server.wyoming_uri.removeprefix("tcp://").split(":")
        )
        writer.write(b'\x00\xff not json at all\n{"type": 5}\n')
        await writer.drain()
        await asyncio.wait_for(reader.read(), TIMEOUT)  # the server drops this connection
        writer.close()

    asyncio.run(main())
    assert httpx.get(wy_server.url + "/health").status_code == 200
    info = asyncio.run(_describe(wy_server.wyoming_uri))
    assert info.asr


async def _describe(uri: str) -> Info:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        (event,) = await events_until(client, "info")
        return Info.from_event(event)


def test_disconnect_mid_synthesis_frees_the_worker(wy_server: ServerProcess) -> None:
    long_text = " ".join(
        f"This is sentence number {i} of a very long answer that nobody will hear." for i in range(30)
    )

    async def main() -> None:
        async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
            await client.write_event(
                Synthesize(text=long_text, voice=SynthesizeVoice(name="jf_alpha")).event()
            )
            await events_until(client, "audio-chunk")
        # disconnected after the first audio

    asyncio.run(main())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(wy_server.url + "/health").json()["models"]["kokoro"]["in_flight"] == 0:
            break
        time.sleep(0.1)
    assert httpx.get(wy_server.url + "/health").json()["models"]["kokoro"]["in_flight"] == 0


def test_sigterm_stops_http_and_wyoming_with_no_orphans(
    server_factory: ServerFactory, short_speech: Speech
) -> None:
    server = server_factory("--model", "tiny.en", "--model", "en_US-joe-medium", "--preload")
    events = asyncio.run(transcribe(server.wyoming_uri, pcm_of(short_speech, 16000), 16000, 2, 1))
    assert_transcript(Transcript.from_event(events[-1]).text, short_speech.text)
    children = psutil.Process(server.process.pid).children(recursive=True)
    assert len(children) >= 2  # one worker per model
    server.stop()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphaned workers: {alive}"
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(_describe(server.wyoming_uri))


def test_no_wyoming_flag(server_factory: ServerFactory) -> None:
    server = server_factory("--model", "tiny.en", "--no-wyoming")
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(_describe(server.wyoming_uri))
    assert httpx.get(server.url + "/health").status_code == 200


def test_sigterm_lets_an_in_flight_request_finish(server_factory: ServerFactory, speech: Speech) -> None:
    server = server_factory("--model", "tiny.en", "--preload")
    pcm = pcm_of(speech, 16000)

    async def main() -> list[Event]:
        async with AsyncClient.from_uri(server.wyoming_uri) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm).event())
            server.process.send_signal(signal.SIGTERM)  # mid-request: the answer must still come
            await client.write_event(AudioStop().event())
            return await events_until(client, "transcript")

    events = asyncio.run(main())
    assert_transcript(Transcript.from_event(events[-1]).text, speech.text)
    assert server.process.wait(30) in (0, -signal.SIGTERM)


def test_wyoming_requests_are_in_the_request_metrics_and_the_access_log(
    wy_server: ServerProcess, short_speech: Speech
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def counts() -> dict[tuple[str, str, str], float]:
        text = httpx.get(wy_server.url + "/metrics", timeout=10).text
        return {
            (s.labels["route"], s.labels["model"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "voxhost_requests_total" and s.labels.get("protocol") == "wyoming"
        }

    async def main() -> None:
        await transcribe(wy_server.wyoming_uri, pcm_of(short_speech, 16000), 16000, 2, 1, "tiny.en")
        async with AsyncClient.from_uri(wy_server.wyoming_uri) as client:
            await client.write_event(Synthesize(text="Hello there.").event())
            await events_until(client, "audio-stop")
            await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name="nobody")).event())
            await events_until(client, "error")

    before = counts()
    asyncio.run(main())
    after = counts()

    def grew(key: tuple[str, str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert grew(("transcribe", "tiny.en", "ok")) == 1
    assert grew(("synthesize", "en_US-joe-medium", "ok")) == 1
    assert sum(grew(k) for k in after if k[0] == "synthesize" and k[2] != "ok") == 1  # the unknown voice
    lines = [line for line in wy_server.log().splitlines() if "voxhost.access" in line and "WYOMING" in line]
    transcribe_lines = [line for line in lines if "WYOMING transcribe ok" in line and "model=tiny.en" in line]
    assert transcribe_lines
    request_id = transcribe_lines[-1].split("[", 1)[1].split("]", 1)[0]
    assert request_id != "-"  # each Wyoming request has an id of its own on its lines


def test_a_long_recording_streams_its_transcript_as_it_is_decoded(
    wy_server: ServerProcess, long_talk: Recording
) -> None:
    """45 s sent at once, as a file: its text comes as transcript-chunk events, one per decode call of
    the long path (two 30 s windows on a CPU are one batched call: one chunk here; the piece-by-piece
    order is the manager's stream, tested over HTTP), and every sentence is in the transcript."""
    pcm = float_to_pcm16(long_talk.audio)
    events = asyncio.run(transcribe(wy_server.wyoming_uri, pcm, 16000, 2, 1, model="tiny.en"))
    types = [event.type for event in events]
    assert types[0] == "transcript-start"
    assert types[-2:] == ["transcript-stop", "transcript"]
    chunks = [TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type)]
    assert chunks
    text = Transcript.from_event(events[-1]).text
    assert words(" ".join(chunks)) == words(text)
    assert missing_sentences(text, long_talk.sentences) == []


def test_port_0_listens_on_a_free_port_and_says_which(cache_dir: Path) -> None:
    """`--wyoming-uri tcp://127.0.0.1:0`, as `--port 0` for HTTP: a free port, in the log and the URI."""

    async def main() -> None:
        settings = Settings(models=["tiny.en"], cache_dir=cache_dir, wyoming_uri="tcp://127.0.0.1:0")
        async with ModelManager(settings) as manager:
            server = WyomingServer(manager, settings)
            await server.start()
            try:
                address = wyoming_address(server.uri)
                assert isinstance(address, tuple)
                assert address[0] == "127.0.0.1"
                assert address[1] != 0
                async with AsyncClient.from_uri(server.uri) as client:
                    await client.write_event(Describe().event())
                    answer = await asyncio.wait_for(client.read_event(), TIMEOUT)
                    assert answer is not None
                    assert Info.is_type(answer.type)
            finally:
                await server.stop()

    asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
