"""Shape transcription results the way OpenAI's API returns them: json, text, srt, vtt, verbose_json
(and the stream events); `diarized_json` and the speaker labels of `diarize=true` are shaped in
`speaker_formats.py`."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from voxhost.errors import BadRequest
from voxhost.languages import language_name
from voxhost.results import TokenLogprob, Transcription

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]
RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
GRANULARITIES: tuple[str, ...] = ("segment", "word")
LOGPROB_FORMATS: tuple[str, ...] = ("json", "verbose_json")  # the formats with a place for `logprobs`

CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def check_response_format(value: str) -> ResponseFormat:
    if value not in RESPONSE_FORMATS:
        raise BadRequest(
            f"response_format {value!r} is not one of {', '.join(RESPONSE_FORMATS)}", param="response_format"
        )
    return value  # type: ignore[return-value]


def timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(result: Transcription) -> str:
    blocks = [
        f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(result.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(result: Transcription) -> str:
    blocks = [
        f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in result.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def usage(result: Transcription) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(result.duration)}


def logprob_entries(logprobs: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes} for lp in logprobs]


def detected_languages(result: Transcription) -> list[dict[str, str]]:
    """`languages`, as gpt-transcribe answers it: the language the audio was decoded in."""
    return [{"code": result.language}] if result.language else []


def _details(body: dict[str, Any], result: Transcription, languages: bool) -> dict[str, Any]:
    """`body` with what was asked for beside the text: the detected language, the logprobs."""
    if languages:
        body["languages"] = detected_languages(result)
    if result.logprobs is not None:
        body["logprobs"] = logprob_entries(result.logprobs)
    return body


def to_json(result: Transcription, languages: bool = False) -> dict[str, Any]:
    body = _details({"text": result.text}, result, languages)
    body["usage"] = usage(result)
    return body


def to_verbose_json(result: Transcription, granularities: tuple[str, ...] = ("segment",)) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": result.task,
        # a translation's text is English, and OpenAI names that as its language
        "language": "english" if result.task == "translate" else language_name(result.language),
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": s.id,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": s.tokens,
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in result.segments
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)} for w in result.words
        ]
    if result.logprobs is not None:
        body["logprobs"] = logprob_entries(result.logprobs)
    body["usage"] = usage(result)
    return body


# --- stream=true: OpenAI's transcription events (Server-Sent Events) ---------------------------------
STREAM_FORMATS: tuple[str, ...] = ("json", "text", "diarized_json")
AUDIO_TOKENS_PER_SECOND = 50  # Whisper's encoder: 1,500 positions per 30 s window
_SPECIAL_TOKENS = 50257  # Whisper's token ids from here on are special (end of text, timestamps...)


def check_stream_format(value: str) -> None:
    if value not in STREAM_FORMATS:
        raise BadRequest(
            f"stream=true sends text events; response_format must be json, text or diarized_json, "
            f"not {value!r}",
            param="response_format",
        )


def token_usage(result: Transcription, prompt_tokens: int = 0) -> dict[str, Any]:
    """Usage in tokens, the shape `transcript.text.done` carries: the audio as Whisper's encoder
    positions, the output as the text tokens decoded."""
    audio = math.ceil(result.duration * AUDIO_TOKENS_PER_SECOND)
    output = sum(1 for s in result.segments for t in s.tokens if t < _SPECIAL_TOKENS)
    return {
        "type": "tokens",
        "input_tokens": audio + prompt_tokens,
        "input_token_details": {"audio_tokens": audio, "text_tokens": prompt_tokens},
        "output_tokens": output,
        "total_tokens": audio + prompt_tokens + output,
    }


def delta_event(text: str, logprobs: list[TokenLogprob] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "transcript.text.delta", "delta": text}
    if logprobs is not None:
        event["logprobs"] = logprob_entries(logprobs)
    return event


def done_event(result: Transcription, languages: bool = False) -> dict[str, Any]:
    event = _details({"type": "transcript.text.done", "text": result.text}, result, languages)
    event["usage"] = token_usage(result)
    return event


def sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def as_text(body: str | dict[str, Any]) -> str:
    """A rendered body as file or terminal text: the JSON formats pretty-printed, the others as they are."""
    return json.dumps(body, ensure_ascii=False, indent=2) if isinstance(body, dict) else body


def render(
    result: Transcription,
    fmt: ResponseFormat,
    granularities: tuple[str, ...] = (),
    *,
    languages: bool = False,
) -> str | dict[str, Any]:
    """The response body: a dict for the JSON formats, text for the others. `languages`: the json
    answer says which language was decoded (asked for with `languages`)."""
    if fmt == "json":
        return to_json(result, languages)
    if fmt == "verbose_json":
        return to_verbose_json(result, granularities or ("segment",))
    if fmt == "srt":
        return to_srt(result)
    if fmt == "vtt":
        return to_vtt(result)
    return result.text + "\n" if result.text else ""
