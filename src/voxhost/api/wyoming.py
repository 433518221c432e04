"""The Wyoming protocol front-end (Home Assistant's voice pipeline), on the same model manager as HTTP.

One handler per connection. ASR: `transcribe` + `audio-start/chunk/stop` -> `transcript` (plus the
streaming `transcript-start/chunk/stop` events). TTS: `synthesize` -> `audio-start/chunk/stop`, and the
streaming `synthesize-start/chunk/stop` events, where audio for each complete sentence goes out while
the client is still sending text. Every failure becomes an `error` event; the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    Info,
    TtsProgram,
    TtsVoice,
    TtsVoiceSpeaker,
)
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from voxhost import __version__
from voxhost.api.discovery import Announcement
from voxhost.api.observe import record
from voxhost.api.wyoming_io import BoundedEventHandler
from voxhost.api.wyoming_wake import WyomingWake, wake_programs
from voxhost.audio.decode import float_to_pcm16
from voxhost.audio.text import GrowingText
from voxhost.engines.base import package_source
from voxhost.errors import BadAudio, BadRequest, ClientGone, ServerBusy, VoxhostError
from voxhost.logs import request_context
from voxhost.manager import ModelManager
from voxhost.manager.endpoint import Endpointer, answer_of
from voxhost.manager.limits import PcmIntake
from voxhost.manager.requests import ModelCard, SpeakRequest, TranscribeRequest, Voice
from voxhost.results import TranscribeOptions, Transcription, TranscriptUpdate
from voxhost.settings import Settings, wyoming_address

log = logging.getLogger("voxhost.wyoming")
GONE_POLL = 0.1  # seconds between checks that a waiting client is still connected

# who made the server, and where it is from: its package's home page ("" while it names none)
VOXHOST = Attribution(name="voxhost", url=package_source("voxhost")[1] or "")


def _described(
    kind: Any, name: str, description: str, card: ModelCard, languages: list[str], **more: Any
) -> Any:
    """An `AsrModel` or a `TtsVoice` of a served model: the `Artifact` fields are its card's."""
    return kind(
        name=name,
        description=description,
        attribution=Attribution(name=card.attribution, url=card.url),
        installed=card.installed,
        version=card.version,
        languages=languages,
        **more,
    )


def _voice_description(card: ModelCard, voice: Voice) -> str:
    """What Home Assistant's voice picker shows: a model that is one voice is its model; other voices
    are named with their gender and model."""
    if len(card.voices) == 1 and card.description:
        return card.description
    details = [d for d in (voice.gender, card.id) if d and d != "unknown"]
    return f"{voice.id} ({', '.join(details)})"


def _voices(card: ModelCard) -> list[TtsVoice]:
    """A TTS model's voices in `info`: each voice of its own, in its locale (Home Assistant lists the
    voices of the language a pipeline speaks); a multi-speaker model is one voice, named after the model,
    with its speakers (as wyoming-piper lists them, and as `requested_voice` reads them back)."""
    if card.multi_speaker:
        speakers = [TtsVoiceSpeaker(name=voice.id) for voice in card.voices]
        description = f"{card.description} ({len(speakers)} speakers)"
        return [_described(TtsVoice, card.id, description, card, list(card.languages), speakers=speakers)]
    return [
        _described(TtsVoice, v.id, _voice_description(card, v), card, [v.locale or v.language])
        for v in card.voices
    ]


def info_event(cards: list[ModelCard]) -> Info:
    """The `info` answer: one ASR program with every ASR model, one TTS program with every voice, one
    wake program with every wake word.

    `requires_external_vad` stays True even with endpointing on: Home Assistant drops its own voice
    detection for a program that says False, and then only learns that a command is over by reading
    the transcript, which its Wyoming client does after it sent audio-stop: the pipeline would wait for
    its capture limit. Endpointing serves the clients that read while they stream."""
    asr_models = [
        _described(AsrModel, card.id, card.description, card, list(card.languages))
        for card in cards
        if card.task == "asr"
    ]
    voices = [voice for card in cards if card.task == "tts" for voice in _voices(card)]
    about: dict[str, Any] = {"attribution": VOXHOST, "installed": True, "version": __version__}
    programs: dict[str, Any] = {}
    if asr_models:
        programs["asr"] = [
            AsrProgram(
                name="voxhost-asr", description="voxhost speech-to-text", **about,
                models=asr_models, supports_transcript_streaming=True,  # transcript-start/chunk/stop
                requires_external_vad=True,
            )
        ]  # fmt: skip
    if voices:
        programs["tts"] = [
            TtsProgram(
                name="voxhost-tts", description="voxhost text-to-speech", **about,
                voices=voices, supports_synthesize_streaming=True,  # synthesize-start/chunk/stop
            )
        ]  # fmt: skip
    programs.update(wake_programs(cards, about))
    return Info(**programs)


async def requested_voice(manager: ModelManager, requested: SynthesizeVoice | None) -> Voice:
    """The voice a `synthesize` or `synthesize-start` asks for. Its name is a voice, or a model (for its
    default voice: `ModelManager.voice`); its speaker, a voice of that model (`info` lists a
    multi-speaker model as one voice with speakers). A speaker the model lacks is a BadRequest (a
    Wyoming `error`), never another speaker's voice."""
    voice = await manager.voice(None, requested.name if requested else None)
    speaker = requested.speaker if requested else None
    return await manager.voice(voice.model, speaker) if speaker else voice


class WyomingHandler(BoundedEventHandler):
    def __init__(
        self,
        reader: Any,
        writer: Any,
        manager: ModelManager,
        endpoint: tuple[float, float] = (0.0, 0.0),
        idle: float = 300.0,
    ) -> None:
        super().__init__(reader, writer, manager.limits, idle)
        self.manager = manager
        self._endpoint = endpoint  # (seconds of silence that end an utterance, 0: off; speech timeout)
        self._handling = False
        self._endpointer: Endpointer | None = None
        self._answering: asyncio.Task[None] | None = None
        self._answered = False  # the endpoint answered this stream: its audio is ignored until it ends
        self._reset_asr()
        self._streaming = False  # inside synthesize-start ... synthesize-stop
        self._stream_text = GrowingText()
        self._stream_voice: Voice | None = None
        self._audio_started = False
        self._wake = WyomingWake(manager, self.write_event)  # detect + audio: api/wyoming_wake.py

    def _reset_asr(self) -> None:
        """Forget the ASR request in progress, stopping its endpointing (and any decode it started)."""
        self._asr_model: str | None = None
        self._language: str | None = None
        self._intake: PcmIntake | None = None
        self._stop_endpointing()

    def _stop_endpointing(self) -> None:
        if self._answering is not None and self._answering is not asyncio.current_task():
            self._answering.cancel()
        self._answering = None
        if self._endpointer is not None:
            self._endpointer.close()
            self._endpointer = None

    async def disconnect(self) -> None:
        self._reset_asr()
        await self._wake.close()

    @property
    def busy(self) -> bool:
        """In the middle of a request: audio or streamed text received but not answered yet, or events
        received and not read yet (sent before the server began to stop: they are in flight too)."""
        unread = bool(getattr(self.reader, "_buffer", b""))  # asyncio.StreamReader's received bytes
        return self._handling or self._intake is not None or self._streaming or unread

    async def handle_event(self, event: Event) -> bool:
        self._handling = True
        try:
            await self._dispatch(event)
        except ClientGone:
            return False  # nobody to answer: end this connection's handler
        except VoxhostError as exc:
            await self._error(exc.message, exc.code)
        except (KeyError, TypeError, ValueError) as exc:
            await self._error(f"malformed {event.type} event: {exc}", "invalid_event")
        finally:
            self._handling = False
        return True

    async def _error(self, message: str, code: str) -> None:
        log.info("wyoming error: %s", message)
        self._reset_asr()
        self._streaming = False
        await self.write_event(Error(text=message, code=code).event())

    async def _hung_up(self) -> None:
        """Returns once the client has hung up (`manager/cancel.py`). Seen without reading the client's
        next event: the connection's end of stream is noted by the transport, whatever is reading."""
        # the transport sets the reader's end of file without waking anyone but a reader: poll it
        while not (self.reader.at_eof() or self.writer.is_closing()):  # noqa: ASYNC110
            await asyncio.sleep(GONE_POLL)

    @contextlib.asynccontextmanager
    async def _request(self, route: str, started: float | None = None) -> AsyncIterator[None]:
        """One Wyoming request (from its last event, or `started`, to the answer), in the same request
        metrics and access log as HTTP's, with a request id of its own on every line it causes."""
        started = time.perf_counter() if started is None else started
        status = "ok"
        with request_context() as context:
            try:
                yield
            except VoxhostError as exc:
                status = exc.code
                raise
            except (asyncio.CancelledError, ConnectionError):
                status = ClientGone.code
                raise
            finally:
                record(
                    self.manager.metrics,
                    "wyoming",
                    route,
                    f"WYOMING {route}",
                    status,
                    time.perf_counter() - started,
                    context.model,
                )

    async def _dispatch(self, event: Event) -> None:
        if self._wake.wants(event):
            await self._wake.handle(event)
        elif Describe.is_type(event.type):
            async with self._request("describe"):
                await self.write_event(info_event(await self.manager.describe()).event())
        elif Transcribe.is_type(event.type):
            request = Transcribe.from_event(event)
            self._reset_asr()
            self._answered = False
            self._asr_model = self.manager.resolve(request.name or None, "asr").id
            self._language = request.language
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._answered = False  # a new stream
            self._begin_audio(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            if self._answered:
                return  # the endpoint answered this stream: the rest of it goes unheard
            chunk = AudioChunk.from_event(event)
            if self._intake is None:  # audio without audio-start: take its format from the chunk
                self._begin_audio(chunk.rate, chunk.width, chunk.channels)
            assert self._intake is not None
            samples = self._intake.add(chunk.audio, chunk.rate, chunk.width, chunk.channels)
            if self._endpointer is not None:
                await self._endpointer.feed(samples)
        elif AudioStop.is_type(event.type):
            if self._answered:  # answered at the endpoint already: the stream is over
                self._answered = False
                return
            async with self._request("transcribe"):
                await self._transcribe()
        elif SynthesizeStart.is_type(event.type):
            start_request = SynthesizeStart.from_event(event)
            self._stream_voice = await requested_voice(self.manager, start_request.voice)
            self._streaming, self._stream_text, self._audio_started = True, GrowingText(), False
        elif SynthesizeChunk.is_type(event.type):
            await self._synthesize_chunk(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            async with self._request("synthesize"):
                await self._synthesize_stop()
        elif Synthesize.is_type(event.type):
            if self._streaming:
                return  # the compatibility copy of a streamed request: already being spoken
            synthesize = Synthesize.from_event(event)
            async with self._request("synthesize"):
                voice = await requested_voice(self.manager, synthesize.voice)
                self._audio_started = False
                await self._speak(synthesize.text, voice)
                await self._finish_audio(voice)
        else:
            log.debug("ignoring wyoming event %s", event.type)

    # --- ASR -------------------------------------------------------------------------------------
    def _options(self) -> TranscribeOptions:
        return TranscribeOptions(language=self._language)

    def _begin_audio(self, rate: int, width: int, channels: int) -> None:
        """A stream begins: its audio is gathered, and with endpointing on, listened to as it comes."""
        self._stop_endpointing()
        self._intake = PcmIntake(self.manager.limits, rate, width, channels)
        silence, timeout = self._endpoint
        if silence <= 0:
            return
        try:
            endpointer = self.manager.endpointer(self._asr_model, self._options(), silence, timeout)
        except VoxhostError:
            return  # no ASR model to listen with: audio-stop reports it, once
        self._endpointer = endpointer
        self._answering = asyncio.create_task(self._answer_at_endpoint(endpointer))

    async def _answer_at_endpoint(self, endpointer: Endpointer) -> None:
        """Answer the stream once the endpointer has ended its utterance (unless audio-stop came first:
        then this task is cancelled)."""
        event = await asyncio.shield(endpointer.answer)  # cancelling this task leaves the answer be
        self._answering = None  # from here on this task answers: nothing cancels it
        self._answered = True
        self._reset_asr()
        try:
            async with self._request("transcribe", started=endpointer.stopped_at):
                await self._send_transcript(answer_of(event))
        except VoxhostError as exc:
            await self._error(exc.message, exc.code)
        except ConnectionError:
            pass  # the client went away

    async def _transcribe(self) -> None:
        endpointer, self._endpointer = self._endpointer, None
        self._stop_endpointing()
        answer = await endpointer.finish(gone=self._hung_up) if endpointer is not None else None
        audio = self._intake.audio() if self._intake is not None else np.zeros(0, dtype=np.float32)
        model, options = self._asr_model, self._options()
        self._reset_asr()
        if answer is not None:  # the utterance the endpointer heard (its decode may be done already)
            await self._send_transcript(answer_of(answer))
            return
        if audio.size == 0:
            raise BadAudio("no audio was received before audio-stop")
        request = TranscribeRequest(audio, options, model)
        await self._stream_transcript(self.manager.transcribe_stream(request, gone=self._hung_up), options)

    async def _send_transcript(self, result: Transcription) -> None:
        async def whole() -> AsyncGenerator[TranscriptUpdate, None]:
            yield TranscriptUpdate(result.text, result.duration, result)

        await self._stream_transcript(whole(), self._options())

    async def _stream_transcript(
        self, updates: AsyncGenerator[TranscriptUpdate, None], options: TranscribeOptions
    ) -> None:
        """`transcript-start`, a `transcript-chunk` with the text of each update as it is decoded (a long
        recording's text streams while the rest is decoded), `transcript-stop`, then the `transcript`."""
        started = False
        result: Transcription | None = None
        async with contextlib.aclosing(updates) as stream:
            async for update in stream:
                if not started:
                    language = update.result.language if update.result is not None else options.language
                    await self.write_event(TranscriptStart(language=language).event())
                    started = True
                if update.text.strip():
                    await self.write_event(TranscriptChunk(text=update.text).event())
                result = update.result or result
        if result is None:  # the manager's streams end with the whole result
            raise VoxhostError("the transcription ended without its result")
        await self.write_event(TranscriptStop().event())
        await self.write_event(Transcript(text=result.text, language=result.language).event())

    # --- TTS -------------------------------------------------------------------------------------
    async def _speak(self, text: str, voice: Voice) -> None:
        """Synthesize `text`, sending audio chunks as each sentence is ready."""
        if not text.strip():
            return
        speech = await self.manager.speak(SpeakRequest(text, voice.model, voice.id), gone=self._hung_up)
        async with contextlib.aclosing(speech.chunks) as chunks:
            rate = speech.sample_rate
            async for chunk in chunks:
                if not self._audio_started:
                    await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                    self._audio_started = True
                await self.write_event(
                    AudioChunk(rate=rate, width=2, channels=1, audio=float_to_pcm16(chunk)).event()
                )

    async def _finish_audio(self, voice: Voice) -> None:
        if not self._audio_started:  # nothing to say: still a well-formed (empty) audio stream
            await self.write_event(AudioStart(rate=voice.sample_rate, width=2, channels=1).event())
        await self.write_event(AudioStop().event())
        self._audio_started = False

    async def _synthesize_chunk(self, text: str) -> None:
        if not self._streaming or self._stream_voice is None:
            raise BadRequest("synthesize-chunk outside synthesize-start ... synthesize-stop")
        # Speak the sentences that are complete; the last one may still be growing (within the text limit:
        # only the new text and the end of what was held are scanned for a sentence's end)
        self.manager.limits.held_text(len(self._stream_text.held) + len(text))
        await self._speak(self._stream_text.add(text), self._stream_voice)

    async def _synthesize_stop(self) -> None:
        if not self._streaming or self._stream_voice is None:
            raise BadRequest("synthesize-stop without synthesize-start")
        text, self._stream_text = self._stream_text.held, GrowingText()
        await self._speak(text, self._stream_voice)
        await self._finish_audio(self._stream_voice)
        self._streaming = False
        await self.write_event(SynthesizeStopped().event())


class WyomingServer:
    """The Wyoming listener, started and stopped with the HTTP app.

    Stopping is graceful: the listener closes, idle connections are closed at once, and connections in
    the middle of a request get up to `grace` seconds to finish it.
    """

    def __init__(self, manager: ModelManager, settings: Settings) -> None:
        self.manager = manager
        self.uri = settings.wyoming_uri
        self._endpoint = (settings.wyoming_endpoint, settings.wyoming_speech_timeout)
        self._idle = settings.wyoming_idle_timeout
        self._max_connections = settings.wyoming_max_connections
        self._server: asyncio.base_events.Server | None = None
        self._handlers: dict[asyncio.Task[None], WyomingHandler] = {}
        # --zeroconf: checked here, before any model loads; announced while listening
        self._announcement = Announcement(settings) if settings.zeroconf is not None else None

    async def start(self) -> None:
        address = wyoming_address(self.uri)
        if isinstance(address, tuple):
            self._server = await asyncio.start_server(self._accept, *address)
            host, port = address[0], self._server.sockets[0].getsockname()[1]  # port 0: the one picked
            self.uri = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
        else:
            self._server = await asyncio.start_unix_server(self._accept, address)
        log.info("Wyoming listening on %s", self.uri)
        if self._announcement is not None:
            await self._announcement.start(self._server.sockets)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = WyomingHandler(reader, writer, self.manager, self._endpoint, self._idle)
        if len(self._handlers) >= self._max_connections:
            log.warning("refused a Wyoming connection: %d are open", len(self._handlers))
            await handler.refuse(
                ServerBusy(f"the server has its limit of {self._max_connections} Wyoming connections open")
            )
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = handler
        try:
            with request_context():  # one id per connection on every log line it causes
                await handler.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; its handler's work was released on the way out
        except Exception as exc:  # bytes that are not Wyoming framing: drop this connection only
            log.info("closing a Wyoming connection that sent malformed data: %s", exc)
            writer.close()
        finally:
            self._handlers.pop(task, None)

    def stop_listening(self) -> None:
        """Accept no new connections (the server is stopping). Connections open now carry on until the
        HTTP side has drained: a request whose events were sent before the signal is in flight, and
        the server cannot tell them from ones sent after it."""
        if self._server is not None:
            self._server.close()

    async def stop(self, grace: float = 30.0) -> None:
        if self._announcement is not None:
            await self._announcement.stop()
        if self._server is None:
            return
        self._server.close()
        for handler in list(self._handlers.values()):
            if not handler.busy:
                await handler.stop()
        busy = list(self._handlers)
        if busy:
            log.info("waiting up to %.0fs for %d Wyoming request(s) to finish", grace, len(busy))
            await asyncio.wait(busy, timeout=grace)
        for task, handler in list(self._handlers.items()):
            await handler.stop()
            task.cancel()
