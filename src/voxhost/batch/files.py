"""One audio file's part of `voxhost batch`: decoded, transcribed and rendered into the contents of its
output files, wherever that runs (the local workers of `voxhost.batch`, a Ray Data actor of
`voxhost.scale.data`). Both take it from here, so neither module imports the other back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxhost.audio import SAMPLE_RATE, decode_audio
from voxhost.diarization import DiarizedTranscription, rttm
from voxhost.errors import VoxhostError, file_error
from voxhost.formats import as_text, render
from voxhost.results import Transcription
from voxhost.speaker_formats import render_diarized

OUTPUTS: dict[str, str] = {"json": "verbose_json", "txt": "text", "srt": "srt", "vtt": "vtt"}  # ext: format
RTTM = "rttm"  # with --diarize: who spoke when


@dataclass
class FileResult:
    """What became of one input file: its rendered outputs, or why it failed."""

    path: Path
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    audio_seconds: float = 0.0

    @classmethod
    def transcribed(cls, path: Path, result: Transcription, samples: int) -> FileResult:
        """`result`, the transcript of `samples` samples of 16 kHz audio, rendered into the outputs."""
        return cls(path, render_outputs(result), audio_seconds=samples / SAMPLE_RATE)

    @classmethod
    def diarized(cls, path: Path, result: DiarizedTranscription, samples: int) -> FileResult:
        """`result` with its speakers, rendered into the outputs and an RTTM file."""
        outputs = {
            ext: as_text(render_diarized(result, fmt, ("segment", "word"))) for ext, fmt in OUTPUTS.items()
        }
        outputs[RTTM] = rttm(result.diarization, path.stem)
        return cls(path, outputs, audio_seconds=samples / SAMPLE_RATE)

    @classmethod
    def failed(cls, path: Path, exc: VoxhostError | OSError) -> FileResult:
        return cls(path, error=file_error(exc))


def render_outputs(result: Transcription) -> dict[str, str]:
    """The four output files' contents for one transcription."""
    return {
        ext: as_text(render(result, fmt, ("segment", "word")))  # type: ignore[arg-type]
        for ext, fmt in OUTPUTS.items()
    }


def transcribe_file(
    path: Path,
    transcribe: Callable[[np.ndarray], Transcription],
    diarized: Callable[[np.ndarray], DiarizedTranscription] | None = None,
) -> FileResult:
    """Decode and transcribe one file in this process (a Ray Data actor), with its speakers when
    `diarized` is given; a failure is a result too."""
    try:
        audio = decode_audio(path.read_bytes())
        if diarized is not None:
            return FileResult.diarized(path, diarized(audio), len(audio))
        return FileResult.transcribed(path, transcribe(audio), len(audio))
    except (VoxhostError, OSError) as exc:
        return FileResult.failed(path, exc)
