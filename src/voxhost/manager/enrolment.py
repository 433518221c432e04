"""Enrolled speakers (`--speakers DIR`): the people whose voices the server knows by name, for who said a
wake word (manager/wake.py) and as the known speakers of a diarized transcription that names none.

The folder's rule: a file `NAME.EXT` (any audio format) is one recording of NAME; a folder `NAME/` holds
several recordings of NAME (its audio files, not deeper). Other entries (hidden files, `README`-like
files without a recognised audio suffix) are skipped. Each recording is 1.5-15 s (as a known speaker's
sample), read within the upload limit, at most `MAX_FILES` in all and `MAX_PEOPLE` people.

The files are read and decoded when the manager is made, so a bad file stops the server at start with
its name; the voices are embedded by the speaker model once, when the manager starts (loading the model),
or at the first need if that failed, and each person's embeddings are averaged into one unit vector.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxhost.audio import SAMPLE_RATE
from voxhost.diarization import KnownSpeaker
from voxhost.errors import BadAudio
from voxhost.manager import speakers
from voxhost.manager.speakers import REFERENCE_MAX_SECONDS, REFERENCE_MIN_SECONDS

if TYPE_CHECKING:
    from voxhost.manager.supervisor import ModelManager

log = logging.getLogger("voxhost.speakers")
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".webm", ".aac"})
MAX_PEOPLE = 32
MAX_FILES = 128
# Seconds of a wake stream's latest audio kept to tell who said the wake word (manager/wake.py).
WAKE_CLIP_SECONDS = 2.5


class EnrolmentError(ValueError):
    """The speakers folder or one of its files cannot be used (names the file)."""


def recordings(folder: Path) -> dict[str, list[Path]]:
    """The audio files of each person in `folder` (the module's rule), checked for count."""
    if not folder.is_dir():
        raise EnrolmentError(f"--speakers {folder}: not a folder")
    people: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = [f for f in sorted(entry.iterdir()) if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES]
            if files:
                people.setdefault(entry.name, []).extend(files)
        elif entry.is_file() and entry.suffix.lower() in AUDIO_SUFFIXES:
            people.setdefault(entry.stem, []).append(entry)
    if not people:
        raise EnrolmentError(f"--speakers {folder}: no recordings (NAME.wav, or NAME/*.wav)")
    if len(people) > MAX_PEOPLE:
        raise EnrolmentError(f"--speakers {folder}: {len(people)} people; at most {MAX_PEOPLE}")
    count = sum(len(files) for files in people.values())
    if count > MAX_FILES:
        raise EnrolmentError(f"--speakers {folder}: {count} recordings; at most {MAX_FILES}")
    return people


def read_recording(path: Path, max_bytes: int, decode: Callable[[bytes], np.ndarray]) -> np.ndarray:
    """One recording, decoded (float32 16 kHz) and checked for size and length."""
    size = path.stat().st_size
    if size > max_bytes:
        raise EnrolmentError(f"speaker recording {path}: {size} bytes, more than the upload limit")
    try:
        audio = decode(path.read_bytes())
    except BadAudio as exc:
        raise EnrolmentError(f"speaker recording {path} is not audio: {exc.message}") from None
    seconds = len(audio) / SAMPLE_RATE
    if not REFERENCE_MIN_SECONDS <= seconds <= REFERENCE_MAX_SECONDS:
        raise EnrolmentError(
            f"speaker recording {path} is {seconds:.1f} s long; a voice sample must be "
            f"{REFERENCE_MIN_SECONDS:g} to {REFERENCE_MAX_SECONDS:g} s"
        )
    return audio


class Enrolled:
    """The enrolled people of one manager: their recordings (read at start), their voices (embedded once)."""

    def __init__(self, manager: ModelManager, folder: Path | None) -> None:
        self._manager = manager
        self.threshold = manager.settings.speaker_threshold
        self._audio: dict[str, list[np.ndarray]] = {}
        if folder is not None:
            for name, paths in recordings(folder).items():
                self._audio[name] = [
                    read_recording(p, manager.limits.upload_bytes, manager.limits.decode) for p in paths
                ]
            log.info("enrolled speakers: %s", ", ".join(self._audio))
        self._voices: dict[str, np.ndarray] | None = None
        self._lock = asyncio.Lock()

    def __bool__(self) -> bool:
        return bool(self._audio)

    @property
    def names(self) -> list[str]:
        return list(self._audio)

    async def voices(self) -> dict[str, np.ndarray]:
        """Each person's voice: the mean of their recordings' embeddings, unit length (embedded once)."""
        async with self._lock:
            if self._voices is None:
                voices = {}
                for name, clips in self._audio.items():
                    vectors = [await speakers.embed(self._manager, clip) for clip in clips]
                    mean = np.mean(np.stack(vectors), axis=0)
                    voices[name] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
                self._voices = voices
            return self._voices

    async def warm(self) -> None:
        """Embed the voices ahead of the first need (at start); a failure is logged, and retried then."""
        try:
            await self.voices()
        except Exception as exc:
            log.warning("could not embed the enrolled speakers yet: %s", exc)

    async def known(self) -> tuple[KnownSpeaker, ...]:
        """The enrolled people as a diarized request's known speakers (their voices, already embedded)."""
        if not self:
            return ()
        voices = await self.voices()
        empty = np.zeros(0, np.float32)
        return tuple(KnownSpeaker(name, empty, voice) for name, voice in voices.items())

    async def identify(self, clip: np.ndarray) -> str | None:
        """Who of the enrolled people speaks in `clip` (float32 16 kHz), or None; a failure (no speaker
        model, a worker gone) is logged and answers None, so a detection still goes out."""
        if not self or len(clip) < SAMPLE_RATE // 2:
            return None
        try:
            name, score = await speakers.identify(self._manager, clip, await self.voices(), self.threshold)
        except Exception as exc:
            log.warning("could not tell who spoke: %s", exc)
            return None
        log.debug("wake word speaker: %s (cosine %.2f)", name, score)
        return name
