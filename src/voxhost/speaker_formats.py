"""Diarized answers in OpenAI's shapes: `diarized_json` (the SDK's `TranscriptionDiarized`), its stream
events (`transcript.text.segment`, then `transcript.text.done`), and voxhost's extensions with
`diarize=true`: a `speaker` on each verbose_json segment and word, `[A] ...` in srt, `<v A>` in vtt."""

from __future__ import annotations

from typing import Any

from voxhost.diarization import DiarizedTranscription, DiarizedUpdate, SpeakerSegment, speaker_at
from voxhost.formats import ResponseFormat, done_event, render, timestamp, to_verbose_json, usage


def segment_event(segment: SpeakerSegment) -> dict[str, Any]:
    """One speaker segment as `diarized_json` lists it and the `transcript.text.segment` event sends it."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{segment.id}",
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "speaker": segment.speaker,
        "text": segment.text,
    }


def to_diarized_json(result: DiarizedTranscription) -> dict[str, Any]:
    transcription = result.transcription
    return {
        "task": "transcribe",
        "duration": round(transcription.duration, 3),
        "text": transcription.text,
        "segments": [segment_event(s) for s in result.segments],
        "usage": usage(transcription),
    }


def _verbose(result: DiarizedTranscription, granularities: tuple[str, ...]) -> dict[str, Any]:
    body = to_verbose_json(result.transcription, granularities or ("segment",))
    if "segments" in body:
        segments = []
        for s in result.segments:
            source = s.segment
            segments.append(
                {
                    "id": s.id,
                    "seek": source.seek if source else 0,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text if s.text.startswith(" ") else " " + s.text,
                    "speaker": s.speaker,
                    "tokens": source.tokens if source else [],
                    "temperature": source.temperature if source else 0.0,
                    "avg_logprob": source.avg_logprob if source else 0.0,
                    "compression_ratio": source.compression_ratio if source else 0.0,
                    "no_speech_prob": source.no_speech_prob if source else 0.0,
                }
            )
        body["segments"] = segments
    if "words" in body:
        turns = result.diarization.turns
        for word in body["words"]:
            word["speaker"] = speaker_at(turns, word["start"], word["end"])
    body["speakers"] = result.diarization.speakers
    return body


def render_diarized(
    result: DiarizedTranscription, fmt: ResponseFormat | str, granularities: tuple[str, ...] = ()
) -> str | dict[str, Any]:
    """The body of a diarized answer in `fmt` (json and text carry no speakers: as without them)."""
    if fmt == "diarized_json":
        return to_diarized_json(result)
    if fmt == "verbose_json":
        return _verbose(result, granularities)
    if fmt == "srt":
        return "\n".join(
            f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n[{s.speaker}] {s.text}\n"
            for i, s in enumerate(result.segments, start=1)
        )
    if fmt == "vtt":
        blocks = [
            f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n<v {s.speaker}>{s.text}</v>\n"
            for s in result.segments
        ]
        return "WEBVTT\n\n" + "\n".join(blocks)
    return render(result.transcription, fmt)  # type: ignore[arg-type]


def stream_events(update: DiarizedUpdate) -> list[dict[str, Any]]:
    """`stream=true` with `diarized_json`: the segments settled since the previous update, then (at the
    end) the whole text."""
    events = [segment_event(s) for s in update.segments]
    if update.result is not None:
        events.append(done_event(update.result.transcription))
    return events
