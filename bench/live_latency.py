"""Live transcription latency: first partial after speech starts, final after speech ends, and the
finals' word error rate against the script, beside faster-whisper's own on the same audio.

    python bench/live_latency.py --utterances 6 --json live.json
    python bench/live_latency.py --utterances 6 --protocol realtime --json realtime.json

A real `voxhost serve` (tiny.en) on a free 127.0.0.1 port; each utterance (Piper speech) is streamed over
`/v1/audio/transcriptions/live` (or, with `--protocol realtime`, over the OpenAI Realtime transcription
session at `/v1/realtime`, 24 kHz PCM, server VAD with `silence_duration_ms` = `--min-silence-ms`) at
real-time pace in 50 ms chunks, between stretches of silence.

Speech starts at the utterance's first sample louder than -40 dBFS and ends after its last one (Piper's
buffer has a quiet tail: its end is not the end of speech); each time runs from when the message holding
that sample was sent to when the event arrived. The final cannot come before the server has heard
`min_silence_ms` of silence: that floor is reported beside it, and the final's time beyond the floor is
what the server adds. The reference of the word error rate is the script; faster-whisper itself
(`WhisperModel.transcribe`, in this process, before the server starts) on the same utterances is the
reference transcriber, so the live finals are compared with the library, not with the server's own answer;
its decode time of each utterance (after one untimed warm-up) is the least a final needs beyond the floor.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from websockets.sync.client import connect

from long_speech import piper_voice
from voxhost.audio import decode_audio, encode_audio
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.benchmarks import baselines
from voxhost.benchmarks.common import SPEECH_FLOOR, speech_end
from voxhost.harness import serve
from voxhost.harness.wer import word_errors, words

SENTENCES = (
    "Please turn off the lights in the living room.",
    "What is the weather going to be like tomorrow morning?",
    "Set a timer for twelve minutes and remind me to check the oven.",
    "Add milk, eggs and bread to the shopping list.",
    "Call my sister and tell her I will be twenty minutes late.",
    "Play some quiet music in the kitchen.",
)
STEP = 0.05  # seconds per message
RATE = 16000


def utterance_audio(text: str) -> np.ndarray:
    voice, _ = piper_voice()  # loaded once; its default synthesis (with Piper's noise), as this always had
    chunks = list(voice.synthesize(text))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return decode_audio(encode_audio(audio, chunks[0].sample_rate, "wav"))


@dataclass(frozen=True)
class Protocol:
    """How one streaming API is driven: where, at what rate, and what its events are called."""

    name: str
    path: str  # with the query; {silence} is min_silence_ms
    rate: int  # of the audio sent
    partial: str
    final: str
    stopped: str
    text: str  # the final event's text field
    setup: Callable[[int], list[str]] = lambda _silence: []  # JSON messages sent first
    ready: str | None = None  # the event to wait for before streaming
    frame: Callable[[bytes], str | bytes] = lambda data: data
    stop: str | None = None  # the message that ends the stream
    done: str | None = None  # the event that says everything was sent


ITEM = "conversation.item.input_audio_transcription"


def _realtime_session(silence: int) -> list[str]:
    audio_input = {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": silence},
    }
    session = {"type": "transcription", "audio": {"input": audio_input}}
    return [json.dumps({"type": "session.update", "session": session})]


def _realtime_append(data: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()})


PROTOCOLS = {
    "live": Protocol(
        "live", "/v1/audio/transcriptions/live?language=en&min_silence_ms={silence}", RATE,
        "partial", "final", "speech_stopped", "text", stop=json.dumps({"type": "stop"}), done="done",
    ),
    "realtime": Protocol(
        "realtime", "/v1/realtime?intent=transcription", 24000, f"{ITEM}.delta", f"{ITEM}.completed",
        "input_audio_buffer.speech_stopped", "transcript", setup=_realtime_session, ready="session.updated",
        frame=_realtime_append,
    ),
}  # fmt: skip


def _pcm(audio: np.ndarray, rate: int) -> bytes:
    """16 kHz float32 as 16-bit PCM at `rate`."""
    data = float_to_pcm16(audio)
    if rate == RATE:
        return data
    converter = PcmConverter(RATE, 2, 1, sample_rate=rate)
    return float_to_pcm16(np.concatenate([converter.convert(data), converter.flush()]))


def measure(url: str, audio: np.ndarray, min_silence_ms: int, protocol: Protocol) -> dict[str, Any]:
    """Stream one utterance between silences at real-time pace; times are from the audio clock."""
    messages: list[tuple[float, dict[str, Any]]] = []
    marks: dict[str, float] = {}
    lead, trail = np.zeros(int(0.5 * RATE), np.float32), np.zeros(int(2.0 * RATE), np.float32)
    pcm = _pcm(np.concatenate([lead, audio, trail]), protocol.rate)
    loud = np.flatnonzero(np.abs(audio) > SPEECH_FLOOR)
    speech_from = 0.5 + (float(loud[0]) / RATE if loud.size else 0.0)  # the first sample above -40 dBFS
    speech_to = 0.5 + speech_end(audio, RATE)  # after the last one, not the end of Piper's buffer

    def seen(kind: str | None, after: float = 0.0) -> bool:
        return any(m.get("type") == kind and t > after for t, m in messages)

    def wait(until: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            time.sleep(0.01)

    path = protocol.path.format(silence=min_silence_ms)
    with connect(url.replace("http", "ws", 1) + path, max_size=None) as ws:

        def read() -> None:
            for raw in ws:
                messages.append((time.monotonic(), json.loads(raw)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for message in protocol.setup(min_silence_ms):
            ws.send(message)
        if protocol.ready is not None:
            wait(lambda: seen(protocol.ready), 30)
            if not seen(protocol.ready):
                raise SystemExit(f"{protocol.name}: no {protocol.ready} in 30 s: {messages[-3:]}")
        size = 2 * int(STEP * protocol.rate)
        started = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), size)):
            time.sleep(max(0.0, started + index * STEP - time.monotonic()))
            ws.send(protocol.frame(pcm[offset : offset + size]))
            sent = (index + 1) * STEP
            if "speech_start" not in marks and sent > speech_from:
                marks["speech_start"] = time.monotonic()
            if "speech_end" not in marks and sent >= speech_to:
                marks["speech_end"] = time.monotonic()
            if "speech_end" in marks and seen(protocol.final, marks["speech_end"]):
                break
        if protocol.stop is not None:
            ws.send(protocol.stop)
        if protocol.done is not None:
            wait(lambda: seen(protocol.done), 30)
        else:
            wait(lambda: seen(protocol.final, marks["speech_end"]), 30)
    # a short min_silence can split an utterance at a pause: the last final is the one after speech end
    first_partial = next((t for t, m in messages if m.get("type") == protocol.partial), None)
    stopped = next((t for t, m in reversed(messages) if m.get("type") == protocol.stopped), None)
    final_at = next((t for t, m in reversed(messages) if m.get("type") == protocol.final), None)
    text = " ".join(str(m[protocol.text]) for _, m in messages if m.get("type") == protocol.final)
    return {
        "first_partial_s": None if first_partial is None else first_partial - marks["speech_start"],
        "final_after_speech_end_s": None if final_at is None else final_at - marks["speech_end"],
        "final_after_vad_stop_s": None if final_at is None or stopped is None else final_at - stopped,
        "final_beyond_floor_s": None
        if final_at is None
        else final_at - marks["speech_end"] - min_silence_ms / 1000,
        "quiet_tail_s": len(audio) / RATE - (speech_to - 0.5),
        "partials": sum(m.get("type") == protocol.partial for _, m in messages),
        "final": text,
        "finals": sum(m.get("type") == protocol.final for _, m in messages),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=6)
    parser.add_argument(
        "--protocol", choices=list(PROTOCOLS), default="live", help="live (voxhost's) or realtime (OpenAI's)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--min-silence-ms", type=int, default=500, help="silence that ends an utterance")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra `voxhost serve` flag (repeatable)"
    )
    args = parser.parse_args()
    console = Console()
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(args.utterances)]
    with console.status("synthesizing utterances..."):
        audios = [utterance_audio(t) for t in texts]
    with console.status("faster-whisper in-process on the same utterances (the reference)..."):
        model, beam_size = baselines.whisper_for("tiny.en")
        baselines.whisper_text(model, audios[0], beam_size)  # warm-up, untimed
        library_texts, library_seconds = [], []
        for audio in audios:  # the decode a final needs at least, once the utterance is over
            started = time.perf_counter()
            library_texts.append(baselines.whisper_text(model, audio, beam_size))
            library_seconds.append(time.perf_counter() - started)
        del model
    rows = []
    flags = ["--model", "tiny.en", "--preload", *args.serve_arg]
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(flags, log_dir=Path(tmp), models=["tiny.en"], timeout=120) as server,
    ):
        for text, audio, library_text, decode in zip(
            texts, audios, library_texts, library_seconds, strict=True
        ):
            row = measure(server.url, audio, args.min_silence_ms, PROTOCOLS[args.protocol])
            row.update(
                text=text, seconds=len(audio) / RATE, in_process=library_text, in_process_decode_s=decode
            )
            row["errors_vs_script"] = word_errors(row["final"], text)
            row["in_process_errors_vs_script"] = word_errors(library_text, text)
            row["words"] = len(words(text))
            rows.append(row)
            console.print(
                f"{row['first_partial_s']:.2f}s / {row['final_after_speech_end_s']:.2f}s  {row['final']}",
                highlight=False,
            )

    def med(key: str) -> float:
        return float(median(r[key] for r in rows if r[key] is not None))

    summary = {
        "utterances": len(rows),
        "first_partial_median_s": med("first_partial_s"),
        "first_partial_max_s": max(r["first_partial_s"] for r in rows if r["first_partial_s"] is not None),
        "final_after_speech_end_median_s": med("final_after_speech_end_s"),
        "final_after_speech_end_max_s": max(
            r["final_after_speech_end_s"] for r in rows if r["final_after_speech_end_s"] is not None
        ),
        "floor_min_silence_s": args.min_silence_ms / 1000,
        "final_beyond_floor_median_s": med("final_beyond_floor_s"),
        "in_process_decode_median_s": med("in_process_decode_s"),  # faster-whisper on the utterance alone
        "final_after_vad_stop_median_s": med("final_after_vad_stop_s"),
        "quiet_tail_median_s": med("quiet_tail_s"),
        "wer_vs_script": sum(r["errors_vs_script"] for r in rows) / sum(r["words"] for r in rows),
        "in_process_wer_vs_script": sum(r["in_process_errors_vs_script"] for r in rows)
        / sum(r["words"] for r in rows),
    }
    title = (
        f"{args.protocol} transcription (tiny.en, real-time pace, 50 ms chunks, "
        f"min_silence {args.min_silence_ms} ms)"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
