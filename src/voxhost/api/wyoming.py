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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voxhost import __version__
from voxhost.api.observe import record
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.audio.text import split_complete
from voxhost.engines import engine_class
from voxhost.errors import BadAudio, BadRequest, PayloadTooLarge, VoxhostError
from voxhost.languages import LANGUAGES
from voxhost.logs import request_context
from voxhost.manager import ModelManager
from voxhost.results import TranscribeOptions
from voxhost.settings import Settings

log = logging.getLogger("voxhost.wyoming")
T = TypeVar("T")
GONE_POLL = 0.1  # seconds between checks that a waiting client is still connected

VOXHOST = Attribution(name="voxhost", url="")


def _attribution(engine: str) -> Attribution:
    about = engine_class(engine).about
    return Attribution(name=about.attribution, url=about.url)


class WyomingService:
    """What every connection shares: the manager, limits, and the voice -> model map for TTS."""

    def __init__(self, manager: ModelManager, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings
        self._voices: dict[str, tuple[str, str]] = {}  # voice name -> (model id, voice id)

    def asr_languages(self, model_id: str) -> list[str]:
        (status,) = self.manager.status(model_id)
        if "languages" in status.info:
            return list(status.info["languages"])
        spec = self.manager.resolve(model_id)
        embedded = engine_class(spec.engine).embedded_models().get(spec.source)
        if spec.origin == "embedded" and embedded is not None and not embedded.multilingual:
            return ["en"]
        return list(LANGUAGES)

    async def tts_voices(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(model id, engine, voice) for every voice of every TTS model (loading the models if needed)."""
        found = []
        for status in self.manager.status():
            if status.task != "tts":
                continue
            spec, info = await self.manager.tts_info(status.id)
            for voice in info["voices"]:
                found.append((spec.id, spec.engine, voice))
                self._voices.setdefault(voice["id"], (spec.id, voice["id"]))
        return found

    async def info(self) -> Info:
        asr_models = [
            AsrModel(
                name=s.id,
                description=s.description,
                attribution=_attribution(s.engine),
                installed=True,
                version=None,
                languages=self.asr_languages(s.id),
            )
            for s in self.manager.status()
            if s.task == "asr"
        ]
        voices = [
            TtsVoice(
                name=voice["id"],
                description=f"{voice['id']} ({model_id})",
                attribution=_attribution(engine),
                installed=True,
                version=None,
                languages=[str(voice.get("language", "en"))],
            )
            for model_id, engine, voice in await self.tts_voices()
        ]
        programs: dict[str, Any] = {}
        if asr_models:
            programs["asr"] = [
                AsrProgram(
                    name="voxhost-asr",
                    description="voxhost speech-to-text",
                    attribution=VOXHOST,
                    installed=True,
                    version=__version__,
                    models=asr_models,
                    supports_transcript_streaming=True,
                )
            ]
        if voices:
            programs["tts"] = [
                TtsProgram(
                    name="voxhost-tts",
                    description="voxhost text-to-speech",
                    attribution=VOXHOST,
                    installed=True,
                    version=__version__,
                    voices=voices,
                    supports_synthesize_streaming=True,
                )
            ]
        return Info(**programs)

    async def voice(self, name: str | None) -> tuple[str | None, str | None]:
        """(model, voice) for a Wyoming voice name; (None, None) picks the default voice."""
        if not name:
            return None, None
        if name not in self._voices:
            await self.tts_voices()
        if name in self._voices:
            return self._voices[name]
        with contextlib.suppress(VoxhostError):
            return self.manager.resolve(name, "tts").id, None  # a model id or alias such as tts-1
        raise BadRequest(f"unknown voice {name!r}", param="voice")


class WyomingHandler(AsyncEventHandler):
    def __init__(self, reader: Any, writer: Any, service: WyomingService) -> None:
        super().__init__(reader, writer)
        self.service = service
        self._handling = False
        self._reset_asr()
        self._streaming = False  # inside synthesize-start ... synthesize-stop
        self._stream_text = ""
        self._stream_voice: tuple[str | None, str | None] = (None, None)
        self._audio_started = False

    def _reset_asr(self) -> None:
        self._asr_model: str | None = None
        self._language: str | None = None
        self._converter: PcmConverter | None = None
        self._audio: list[np.ndarray] = []
        self._received = 0
        self._samples = 0

    @property
    def busy(self) -> bool:
        """In the middle of a request: audio or streamed text received but not answered yet, or events
        received and not read yet (sent before the server began to stop: they are in flight too)."""
        unread = bool(getattr(self.reader, "_buffer", b""))  # asyncio.StreamReader's received bytes
        return self._handling or self._converter is not None or self._streaming or unread

    async def handle_event(self, event: Event) -> bool:
        self._handling = True
        try:
            await self._dispatch(event)
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

    @contextlib.asynccontextmanager
    async def _request(self, route: str) -> AsyncIterator[None]:
        """One Wyoming request (from its last event to the answer), in the same request metrics and
        access log as HTTP's, with a request id of its own on every line it causes."""
        started = time.perf_counter()
        status = "ok"
        with request_context() as context:
            try:
                yield
            except VoxhostError as exc:
                status = exc.code
                raise
            except (asyncio.CancelledError, ConnectionError):
                status = "client_gone"
                raise
            finally:
                record(
                    self.service.manager.metrics,
                    "wyoming",
                    route,
                    f"WYOMING {route}",
                    status,
                    time.perf_counter() - started,
                    context.model,
                )

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            async with self._request("describe"):
                await self.write_event((await self.service.info()).event())
        elif Transcribe.is_type(event.type):
            request = Transcribe.from_event(event)
            self._reset_asr()
            self._asr_model = self.service.manager.resolve(request.name or None, "asr").id
            self._language = request.language
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._converter = PcmConverter(start.rate, start.width, start.channels)
            self._audio, self._received = [], 0
        elif AudioChunk.is_type(event.type):
            self._add_audio(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            async with self._request("transcribe"):
                await self._transcribe()
        elif SynthesizeStart.is_type(event.type):
            start_request = SynthesizeStart.from_event(event)
            voice = start_request.voice.name if start_request.voice else None
            self._stream_voice = await self.service.voice(voice)
            self._streaming, self._stream_text, self._audio_started = True, "", False
        elif SynthesizeChunk.is_type(event.type):
            await self._synthesize_chunk(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            async with self._request("synthesize"):
                await self._synthesize_stop()
        elif Synthesize.is_type(event.type):
            if self._streaming:
                return  # the compatibility copy of a streamed request: already being spoken
            synthesize = Synthesize.from_event(event)
            name = synthesize.voice.name if synthesize.voice else None
            async with self._request("synthesize"):
                model, voice = await self.service.voice(name)
                self._audio_started = False
                await self._speak(synthesize.text, model, voice)
                await self._finish_audio(model)
        else:
            log.debug("ignoring wyoming event %s", event.type)

    # --- ASR -------------------------------------------------------------------------------------
    def _add_audio(self, chunk: AudioChunk) -> None:
        if self._converter is None or (chunk.rate, chunk.width, chunk.channels) != (
            self._converter.rate, self._converter.width, self._converter.channels,
        ):  # fmt: skip
            self._converter = PcmConverter(chunk.rate, chunk.width, chunk.channels)
        self._received += len(chunk.audio)
        if self._received > self.service.settings.max_upload_bytes:
            raise PayloadTooLarge("the audio is longer than the upload limit")
        converted = self._converter.convert(chunk.audio)
        self._samples += len(converted)
        limit = self.service.settings.max_audio_seconds
        if self._samples > limit * 16000:
            raise PayloadTooLarge(f"the audio is longer than the limit of {limit:g}s")
        self._audio.append(converted)

    async def _transcribe(self) -> None:
        if self._converter is not None:
            self._audio.append(self._converter.flush())
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, dtype=np.float32)
        model, language = self._asr_model, self._language
        self._reset_asr()
        if audio.size == 0:
            raise BadAudio("no audio was received before audio-stop")
        work = self.service.manager.transcribe(model, audio, TranscribeOptions(language=language))
        result = await self._unless_gone(work)
        await self.write_event(TranscriptStart(language=result.language).event())
        for segment in result.segments:
            await self.write_event(TranscriptChunk(text=segment.text).event())
        await self.write_event(TranscriptStop().event())
        await self.write_event(Transcript(text=result.text, language=result.language).event())

    async def _unless_gone(self, work: Awaitable[T]) -> T:
        """Await `work`, cancelling it if the client hangs up first (a request waiting in the queue is
        then dropped). The hang-up is seen without reading the client's next event: the connection's
        end of stream is noted by the transport, whatever the event loop is reading."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=GONE_POLL)
                if done:
                    return task.result()
                if self.reader.at_eof() or self.writer.is_closing():
                    break
        except asyncio.CancelledError:
            task.cancel()
            raise
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ConnectionResetError("the Wyoming client hung up; its request was cancelled")

    # --- TTS -------------------------------------------------------------------------------------
    async def _speak(self, text: str, model: str | None, voice: str | None) -> None:
        """Synthesize `text`, sending audio chunks as each sentence is ready."""
        if not text.strip():
            return
        chunks: AsyncGenerator[np.ndarray, None] = self.service.manager.synthesize(model, text, voice)
        async with contextlib.aclosing(chunks):
            _, info = await self.service.manager.tts_info(model)
            rate = int(info["sample_rate"])
            async for chunk in chunks:
                if not self._audio_started:
                    await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                    self._audio_started = True
                await self.write_event(
                    AudioChunk(rate=rate, width=2, channels=1, audio=float_to_pcm16(chunk)).event()
                )

    async def _finish_audio(self, model: str | None) -> None:
        if not self._audio_started:  # nothing to say: still a well-formed (empty) audio stream
            _, info = await self.service.manager.tts_info(model)
            await self.write_event(AudioStart(rate=int(info["sample_rate"]), width=2, channels=1).event())
        await self.write_event(AudioStop().event())
        self._audio_started = False

    async def _synthesize_chunk(self, text: str) -> None:
        if not self._streaming:
            raise BadRequest("synthesize-chunk outside synthesize-start ... synthesize-stop")
        # Speak the sentences that are complete; the last one may still be growing.
        done, self._stream_text = split_complete(self._stream_text + text)
        await self._speak(done, *self._stream_voice)

    async def _synthesize_stop(self) -> None:
        if not self._streaming:
            raise BadRequest("synthesize-stop without synthesize-start")
        text, self._stream_text = self._stream_text, ""
        await self._speak(text, *self._stream_voice)
        await self._finish_audio(self._stream_voice[0])
        self._streaming = False
        await self.write_event(SynthesizeStopped().event())


class WyomingServer:
    """The Wyoming listener, started and stopped with the HTTP app.

    Stopping is graceful: the listener closes, idle connections are closed at once, and connections in
    the middle of a request get up to `grace` seconds to finish it.
    """

    def __init__(self, manager: ModelManager, settings: Settings) -> None:
        self.service = WyomingService(manager, settings)
        self.uri = settings.wyoming_uri
        self._server: asyncio.base_events.Server | None = None
        self._handlers: dict[asyncio.Task[None], WyomingHandler] = {}

    async def start(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
            self._server = await asyncio.start_server(self._accept, parsed.hostname, parsed.port)
        elif parsed.scheme == "unix" and parsed.path:
            self._server = await asyncio.start_unix_server(self._accept, parsed.path)
        else:
            raise ValueError(f"Wyoming URI must be tcp://HOST:PORT or unix://PATH, not {self.uri!r}")
        log.info("Wyoming listening on %s", self.uri)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = WyomingHandler(reader, writer, self.service)
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
