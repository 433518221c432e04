"""Progress of transcriptions in seconds of audio, and their speed as a multiple of real time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable

from rich.progress import ProgressColumn, Task
from rich.text import Text

from voxhost.results import Transcription, TranscriptUpdate


def real_time(audio_seconds: float, wall_seconds: float | None) -> str:
    """'12.3x real time': seconds of audio done per second of wall time; empty until both are known."""
    if not wall_seconds or wall_seconds <= 0 or audio_seconds <= 0:
        return ""
    return f"{audio_seconds / wall_seconds:.1f}x real time"


def done_line(name: str, audio_seconds: float | None, wall_seconds: float) -> str:
    """What one finished file took: 'talk.wav: 61.2 s of audio in 5.0 s (12.2x real time)'."""
    if not audio_seconds:
        return f"{name}: done in {wall_seconds:.1f} s"
    speed = real_time(audio_seconds, wall_seconds)
    return f"{name}: {audio_seconds:.1f} s of audio in {wall_seconds:.1f} s" + (
        f" ({speed})" if speed else ""
    )


class RealTimeColumn(ProgressColumn):
    """The task's audio seconds done over its wall seconds so far (rich's own speed column averages a
    recent window; this is the whole run's, which is what a batch's throughput means)."""

    def render(self, task: Task) -> Text:
        return Text(real_time(task.completed, task.elapsed), style="progress.data.speed")


class AudioSecondsColumn(ProgressColumn):
    """Seconds of audio done, of the total where it is known: '12/45 s'."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} s", style="progress.download")


async def follow(
    updates: AsyncGenerator[TranscriptUpdate, None], reached: Callable[[float], None]
) -> Transcription:
    """The result at the end of a transcription's updates, telling `reached` how far into the audio each
    update gets. Closes the stream on the way out, so an error or cancellation stops its work."""
    async with contextlib.aclosing(updates):
        async for update in updates:
            reached(update.seconds)
            if update.result is not None:
                return update.result
    raise AssertionError("a transcription stream always ends with its result")
