"""Wyoming endpointing: how soon after the end of speech a live stream gets its transcript.

    pip install -e ".[bench]"
    python bench/wyoming_endpoint.py --rounds 3 --json bench-endpoint.json

Two voxhost servers run as subprocesses on 127.0.0.1 with tiny.en (CPU, int8, the same threads): one
with endpointing (`--wyoming-endpoint`, default 0.8 s) and one without (`--wyoming-endpoint 0`). Three
Piper-synthesized commands are streamed as a microphone streams them: 64 ms `audio-chunk`s, each sent
when it would have been spoken, then silence. Two kinds of client, every clip, alternating:

* device: never sends `audio-stop` (a satellite listening continuously), on the endpointing server;
  it keeps streaming silence until the transcript comes;
* pipeline: sends `audio-stop` after 0.7 s of silence (Home Assistant's default "finished speaking"
  pause), on both servers: endpointing must not make it slower or its transcript different.

Timed from the end of the speech (the last sample louder than -40 dBFS, when its chunk was sent) to the
`transcript` event. The floor for the device is the configured silence itself (with the final decode
started speculatively during the pause, the transcript can be ready the moment the pause is long
enough); the same clip decoded in-process by faster-whisper's `WhisperModel` (same settings) is shown
beside it: what a server that decodes only after the pause would add on top. Transcripts are checked
against the synthesized text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from voxhost import harness
from voxhost.benchmarks.common import BenchmarkError, machine_facts
from voxhost.benchmarks.common import speech_end as end_of_speech
from voxhost.harness import ServerProcess
from wyoming_asr import TEXTS, Clip, model_path, synthesize_clips, transcript_errors

RATE = 16000
CHUNK = 1024  # samples per chunk: 64 ms, as a satellite sends them
PIPELINE_PAUSE = 0.7  # Home Assistant's default silence before it sends audio-stop
MAX_SILENCE = 8.0  # seconds of silence streamed before a device gives up waiting
READ_TIMEOUT = 60.0


def speech_end(clip: Clip) -> float:
    """Seconds into the clip where the speech ends: its last sample louder than -40 dBFS."""
    return end_of_speech(np.frombuffer(clip.pcm, dtype="<i2").astype(np.float32) / 32768, RATE)


async def _stream(client: AsyncTcpClient, pcm: bytes, began: float, offset: float) -> None:
    """Send `pcm` in chunks, each at `began + offset + its start` (real time)."""
    step = 2 * CHUNK
    for index, start in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, began + offset + index * CHUNK / RATE - time.monotonic()))
        await client.write_event(
            AudioChunk(rate=RATE, width=2, channels=1, audio=pcm[start : start + step]).event()
        )


async def one(port: int, clip: Clip, stop_after: float | None) -> tuple[float, str]:
    """Stream the clip live, then silence; `audio-stop` after `stop_after` s of it (None: never). Returns
    the seconds from the end of speech to the transcript, and the transcript."""
    async with AsyncTcpClient(harness.HOST, port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        began = time.monotonic()
        await _stream(client, clip.pcm, began, 0.0)
        pause = stop_after if stop_after is not None else MAX_SILENCE
        silence = asyncio.create_task(_stream(client, bytes(2 * int(pause * RATE)), began, clip.seconds))

        async def stop() -> None:
            await silence
            if stop_after is not None:
                await client.write_event(AudioStop().event())

        stopping = asyncio.create_task(stop())
        try:
            deadline = time.monotonic() + READ_TIMEOUT
            while time.monotonic() < deadline:
                event = await asyncio.wait_for(client.read_event(), READ_TIMEOUT)
                if event is None or event.type == "error":
                    raise BenchmarkError(f"no transcript: {event}")
                if event.type == "transcript":
                    return time.monotonic() - (began + speech_end(clip)), str(event.data.get("text", ""))
            raise BenchmarkError("no transcript in time")
        finally:
            stopping.cancel()
            silence.cancel()


def in_process_seconds(clips: list[Clip], threads: int, repeats: int) -> list[float]:
    """faster-whisper in this process on the same model and clips: the decode alone (median per clip)."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_path()), device="cpu", compute_type="int8", cpu_threads=threads)
    medians = []
    for clip in clips:
        audio = np.frombuffer(clip.pcm, dtype="<i2").astype(np.float32) / 32768
        times = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            segments, _ = model.transcribe(audio, language="en", beam_size=5)
            list(segments)
            times.append(time.perf_counter() - started)
        medians.append(statistics.median(times[1:]))
    return medians


@contextlib.contextmanager
def servers(threads: int, silence: float, log_dir: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    common = ["--model", "tiny.en", "--preload", "--ttl", "0", "--threads", str(threads), "--device", "cpu",
              "--compute-type", "int8", "--beam-size", "5", "--offline"]  # fmt: skip
    on = harness.start_server([*common, "--wyoming-endpoint", str(silence)], log_dir=log_dir, wyoming=True)
    try:
        off = harness.start_server([*common, "--wyoming-endpoint", "0"], log_dir=log_dir, wyoming=True)
        try:
            yield on, off
        finally:
            off.stop()
    finally:
        on.stop()


def port_of(server: ServerProcess) -> int:
    assert server.wyoming_uri is not None
    return int(server.wyoming_uri.rsplit(":", 1)[1])


def run(rounds: int, threads: int, silence: float, max_errors: int) -> dict[str, Any]:
    clips = synthesize_clips(TEXTS)
    decode = in_process_seconds(clips, threads, repeats=3)
    results: dict[str, list[float]] = {"device": [], "pipeline, endpointing on": [], "pipeline, off": []}
    texts: dict[str, list[str]] = {name: [] for name in results}
    with tempfile.TemporaryDirectory() as tmp, servers(threads, silence, Path(tmp)) as (on, off):
        kinds = [("device", on, None), ("pipeline, endpointing on", on, PIPELINE_PAUSE),
                 ("pipeline, off", off, PIPELINE_PAUSE)]  # fmt: skip
        for round_ in range(rounds):
            for index, clip in enumerate(clips):
                order = kinds[round_ % 3 :] + kinds[: round_ % 3]
                for name, server, stop_after in order:
                    delay, text = asyncio.run(one(port_of(server), clip, stop_after))
                    if transcript_errors(text, clip.text) > max_errors:
                        raise BenchmarkError(f"{name}: {text!r} is not {clip.text!r}")
                    results[name].append(delay)
                    texts[name].append(f"{index}: {text}")
    summary = {name: {"median_s": statistics.median(v), "p90_s": float(np.percentile(v, 90)), "n": len(v)}
               for name, v in results.items()}  # fmt: skip
    same = sum(a == b for a, b in zip(texts["pipeline, endpointing on"], texts["pipeline, off"], strict=True))
    return {
        "machine": machine_facts(),
        "settings": {
            "rounds": rounds,
            "threads": threads,
            "silence_s": silence,
            "pipeline_pause_s": PIPELINE_PAUSE,
        },
        "clips_s": [round(c.seconds, 2) for c in clips],
        "in_process_decode_median_s": statistics.median(decode),
        "results": summary,
        "pipeline_same_transcripts": f"{same}/{len(texts['pipeline, off'])}",
        "raw": results,
    }


def print_report(report: dict[str, Any], console: Console) -> None:
    silence = report["settings"]["silence_s"]
    table = Table(title=f"end of speech -> transcript (endpoint silence {silence} s, tiny.en)")
    for column in ("client", "median", "p90", "median - floor", "n"):
        table.add_column(column)
    floors = {"device": silence, "pipeline, endpointing on": PIPELINE_PAUSE, "pipeline, off": PIPELINE_PAUSE}
    for name, row in report["results"].items():
        table.add_row(name, f"{row['median_s']:.3f} s", f"{row['p90_s']:.3f} s",
                      f"{row['median_s'] - floors[name]:+.3f} s", str(row["n"]))  # fmt: skip
    console.print(table)
    console.print(f"in-process decode of a clip (median): {report['in_process_decode_median_s']:.3f} s")
    console.print(
        f"pipeline transcripts identical with and without endpointing: {report['pipeline_same_transcripts']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the three clips (default: 3)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: cores)"
    )
    parser.add_argument("--silence", type=float, default=0.8, help="--wyoming-endpoint (default: 0.8 s)")
    parser.add_argument("--max-word-errors", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    report = run(args.rounds, args.threads, args.silence, args.max_word_errors)
    print_report(report, Console())
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
