"""Live transcription latency: first partial after speech starts, final after speech ends, and the
final's word error rate against transcribing the same utterance as a file.

    python bench/live_latency.py --utterances 6 --json live.json

A real `voxhost serve` (tiny.en) on a free 127.0.0.1 port; each utterance (Piper speech) is streamed over
`/v1/audio/transcriptions/live` at real-time pace in 50 ms chunks, between stretches of silence.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from websockets.sync.client import connect

from long_speech import piper_voice
from voxhost.audio import decode_audio, encode_audio
from voxhost.audio.decode import float_to_pcm16
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


def measure(url: str, audio: np.ndarray, min_silence_ms: int) -> dict[str, Any]:
    """Stream one utterance between silences at real-time pace; times are from the audio clock."""
    messages: list[tuple[float, dict[str, Any]]] = []
    marks: dict[str, float] = {}
    pcm = float_to_pcm16(
        np.concatenate([np.zeros(int(0.5 * RATE), np.float32), audio, np.zeros(int(2.0 * RATE), np.float32)])
    )
    speech_from, speech_to = 0.5, 0.5 + len(audio) / RATE
    with connect(
        url.replace("http", "ws")
        + f"/v1/audio/transcriptions/live?language=en&min_silence_ms={min_silence_ms}",
        max_size=None,
    ) as ws:

        def read() -> None:
            for raw in ws:
                messages.append((time.monotonic(), json.loads(raw)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        size = 2 * int(STEP * RATE)
        started = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), size)):
            time.sleep(max(0.0, started + index * STEP - time.monotonic()))
            ws.send(pcm[offset : offset + size])
            sent = (index + 1) * STEP
            if "speech_start" not in marks and sent > speech_from:
                marks["speech_start"] = time.monotonic()
            if "speech_end" not in marks and sent >= speech_to:
                marks["speech_end"] = time.monotonic()
            if "speech_end" in marks and any(
                m.get("type") == "final" and t > marks["speech_end"] for t, m in messages
            ):
                break
        ws.send(json.dumps({"type": "stop"}))
        deadline = time.monotonic() + 30
        while not any(m.get("type") == "done" for _, m in messages) and time.monotonic() < deadline:
            time.sleep(0.01)
    # a short min_silence can split an utterance at a pause: the last final is the one after speech end
    first_partial = next((t for t, m in messages if m.get("type") == "partial"), None)
    stopped = next((t for t, m in reversed(messages) if m.get("type") == "speech_stopped"), None)
    final_at = next((t for t, m in reversed(messages) if m.get("type") == "final"), None)
    text = " ".join(m["text"] for _, m in messages if m.get("type") == "final")
    return {
        "first_partial_s": None if first_partial is None else first_partial - marks["speech_start"],
        "final_after_speech_end_s": None if final_at is None else final_at - marks["speech_end"],
        "final_after_vad_stop_s": None if final_at is None or stopped is None else final_at - stopped,
        "partials": sum(m.get("type") == "partial" for _, m in messages),
        "final": text,
        "finals": sum(m.get("type") == "final" for _, m in messages),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=6)
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
    rows = []
    flags = ["--model", "tiny.en", "--preload", *args.serve_arg]
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(flags, log_dir=Path(tmp), models=["tiny.en"], timeout=120) as server,
    ):
        for text, audio in zip(texts, audios, strict=True):
            file_text = httpx.post(
                server.url + "/v1/audio/transcriptions",
                files={"file": ("u.wav", encode_audio(audio, RATE, "wav"))},
                timeout=60,
            ).json()["text"]
            row = measure(server.url, audio, args.min_silence_ms)
            row.update(text=text, seconds=len(audio) / RATE, file=file_text)
            row["errors_vs_file"] = word_errors(row["final"], file_text)
            row["errors_vs_script"] = word_errors(row["final"], text)
            row["words"] = len(words(file_text))
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
        "final_after_vad_stop_median_s": med("final_after_vad_stop_s"),
        "wer_vs_file": sum(r["errors_vs_file"] for r in rows) / sum(r["words"] for r in rows),
        "wer_vs_script": sum(r["errors_vs_script"] for r in rows) / sum(len(words(r["text"])) for r in rows),
    }
    title = (
        f"live transcription (tiny.en, real-time pace, 50 ms chunks, min_silence {args.min_silence_ms} ms)"
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
