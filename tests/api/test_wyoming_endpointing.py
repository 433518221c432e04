"""Server-side endpointing on Wyoming ASR, with the `wyoming` client as devices use it: audio streamed
at the pace it is spoken, with and without `audio-stop`, against a live server and real speech."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.event import Event

from conftest import ServerProcess, Speech, assert_transcript, start_server, synthesize
from wyoming_helpers import TIMEOUT, events_until, pcm_of

RATE = 16000
CHUNK = 1024  # samples per audio-chunk, as a satellite sends them (64 ms)
SPEECH_TIMEOUT = 3.0  # the server's --wyoming-speech-timeout here
# Silence streamed after the speech while the answer is awaited: a bound against a hang, not a latency
# target (the time from the end of speech to the transcript is bench/wyoming_endpoint.py's figure).
ANSWER_BOUND = 30.0


@pytest.fixture(scope="module")
def endpoint_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: object) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("endpointing"),
        cache_dir,  # type: ignore[arg-type]
        "--model", "tiny.en", "--preload", "--wyoming-speech-timeout", str(SPEECH_TIMEOUT),
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def command() -> Speech:
    return synthesize("Turn on the lights in the kitchen.")


@pytest.fixture(scope="module")
def second_command() -> Speech:
    return synthesize("Set a timer for ten minutes.")


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def pcm(speech: Speech) -> bytes:
    return pcm_of(speech, RATE)


async def send(client: AsyncClient, audio: bytes, realtime: bool = True) -> None:
    """Audio in satellite-sized chunks, each sent when it would have been spoken (or all at once)."""
    step = 2 * CHUNK
    began = time.monotonic()
    for index, offset in enumerate(range(0, len(audio), step)):
        if realtime:
            await asyncio.sleep(max(0.0, began + index * CHUNK / RATE - time.monotonic()))
        chunk = AudioChunk(rate=RATE, width=2, channels=1, audio=audio[offset : offset + step])
        await client.write_event(chunk.event())


async def start(client: AsyncClient) -> None:
    await client.write_event(Transcribe(language="en").event())
    await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())


async def stream_until_answered(client: AsyncClient, speech: bytes, max_silence: float) -> list[Event]:
    """Stream the speech, then silence (for at most `max_silence` s) until the transcript arrives, never
    sending audio-stop. Returns the events."""
    await send(client, speech)
    reading = asyncio.create_task(events_until(client, "transcript"))
    streaming = asyncio.create_task(send(client, silence(max_silence)))
    done, _ = await asyncio.wait({reading, streaming}, return_when=asyncio.FIRST_COMPLETED)
    assert reading in done, f"no transcript within {max_silence} s of silence after the speech"
    streaming.cancel()
    return reading.result()


def test_a_device_that_never_sends_audio_stop_gets_its_transcript(
    endpoint_server: ServerProcess, command: Speech, second_command: Speech
) -> None:
    async def main() -> tuple[list[Event], list[Event], list[Event]]:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            first = await stream_until_answered(client, pcm(command), max_silence=ANSWER_BOUND)
            # the rest of that stream goes unheard: more speech gets no second answer
            await send(client, pcm(second_command) + silence(1.5))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.read_event(), 0.5)
            # the next `transcribe` is a new request on the same connection
            await start(client)
            second = await stream_until_answered(client, pcm(second_command), max_silence=ANSWER_BOUND)
            # and a client that does send audio-stop after the answer gets nothing more for it
            await client.write_event(AudioStop().event())
            await start(client)
            await send(client, pcm(command), realtime=False)
            await client.write_event(AudioStop().event())
            third = await events_until(client, "transcript")
            return first, second, third

    first, second, third = asyncio.run(main())
    for events, speech in ((first, command), (second, second_command), (third, command)):
        types = [event.type for event in events]
        assert types[0] == "transcript-start", types
        assert types[-2:] == ["transcript-stop", "transcript"], types
        assert_transcript(events[-1].data["text"], speech.text)


def test_silence_only_is_answered_with_an_empty_transcript(endpoint_server: ServerProcess) -> None:
    async def main() -> list[Event]:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            reading = asyncio.create_task(events_until(client, "transcript"))
            streaming = asyncio.create_task(send(client, silence(SPEECH_TIMEOUT + 5)))
            done, _ = await asyncio.wait({reading, streaming}, return_when=asyncio.FIRST_COMPLETED)
            assert reading in done, "silence was never answered"
            streaming.cancel()
            return reading.result()

    events = asyncio.run(main())
    assert events[-1].type == "transcript"
    assert events[-1].data["text"] == ""


def test_a_file_sent_at_once_is_never_cut_at_its_pauses(
    endpoint_server: ServerProcess, command: Speech, second_command: Speech
) -> None:
    """A pause longer than the endpoint's silence, in audio sent faster than it plays: the transcript
    is of the whole recording (the file's own audio-stop ends it)."""
    recording = pcm(command) + silence(2.0) + pcm(second_command)

    async def main() -> list[Event]:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            await send(client, recording, realtime=False)
            await client.write_event(AudioStop().event())
            return await events_until(client, "transcript")

    events = asyncio.run(main())
    assert_transcript(events[-1].data["text"], f"{command.text} {second_command.text}", max_errors=2)


def test_audio_stop_before_the_endpoint_gets_the_same_transcript(
    endpoint_server: ServerProcess, command: Speech, second_command: Speech
) -> None:
    """Home Assistant's way: live audio, its own voice detection sends audio-stop after a short silence.
    A pause inside the speech shorter than the endpoint's does not end it; the transcript is what the
    whole audio sent at once gives (what a server without endpointing answers)."""
    speech = pcm(command) + silence(0.4) + pcm(second_command)
    trailing = silence(0.5)

    async def main() -> tuple[str, str]:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            await send(client, speech + trailing)
            await client.write_event(AudioStop().event())
            live = await events_until(client, "transcript")
            await start(client)
            await send(client, speech + trailing, realtime=False)
            await client.write_event(AudioStop().event())
            whole = await events_until(client, "transcript")
        return live[-1].data["text"], whole[-1].data["text"]

    live, whole = asyncio.run(main())
    assert_transcript(live, f"{command.text} {second_command.text}", max_errors=2)
    assert live == whole


def test_parallel_live_streams_each_get_their_own_transcript(
    endpoint_server: ServerProcess, command: Speech, second_command: Speech
) -> None:
    async def one(speech: Speech) -> str:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            events = await stream_until_answered(client, pcm(speech), max_silence=ANSWER_BOUND)
            return str(events[-1].data["text"])

    async def main() -> list[str]:
        return list(await asyncio.gather(one(command), one(second_command), one(command)))

    texts = asyncio.run(main())
    for text, speech in zip(texts, (command, second_command, command), strict=True):
        assert_transcript(text, speech.text)


def test_hanging_up_mid_stream_leaves_the_server_serving(
    endpoint_server: ServerProcess, command: Speech
) -> None:
    """A device that goes away in the middle of its utterance (a decode may be in flight): the next
    client is served."""

    async def main() -> list[Event]:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            audio = pcm(command)
            await send(client, audio[: len(audio) // 2] + silence(0.15))
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            await send(client, pcm(command), realtime=False)
            await client.write_event(AudioStop().event())
            return await asyncio.wait_for(events_until(client, "transcript"), TIMEOUT)

    events = asyncio.run(main())
    assert_transcript(events[-1].data["text"], command.text)


def test_a_stream_that_begins_with_a_burst_is_still_endpointed(
    endpoint_server: ServerProcess, command: Speech
) -> None:
    """A pipeline that held audio while it woke up sends it at once, then goes on live: the burst is
    heard with the rest, and the end of the speech still ends the utterance."""
    audio = pcm(command)
    burst = 2 * int(1.2 * RATE)  # the first 1.2 s, within the stream's slack ahead of real time

    async def main() -> list[Event]:
        async with AsyncClient.from_uri(endpoint_server.wyoming_uri) as client:
            await start(client)
            await send(client, audio[:burst], realtime=False)
            events = await stream_until_answered(client, audio[burst:], max_silence=ANSWER_BOUND)
            return events

    events = asyncio.run(main())
    assert_transcript(events[-1].data["text"], command.text)
