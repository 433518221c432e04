"""`voxhost bench --task tts` (`run_tts_benchmark`): time to first audio and real-time factor of each TTS
model (Piper and Kokoro by default), on the same three sentences, with these contenders per model,
interleaved round-robin so that machine noise hits all of them alike:

* in-process: the library itself, loaded once in this process (`piper.PiperVoice.synthesize`, which
  yields a chunk a sentence; `kokoro_onnx.Kokoro.create`, which returns all of the audio at once, so its
  first audio is its last); time to its first chunk, and to the last: the reference;
* voxhost's engine in-process (`PiperEngine`, `KokoroEngine`): the engine wrapper's own work (its quick
  start splits the first sentence so that audio starts sooner), without the server;
* server: `POST /v1/audio/speech` streamed from a real `voxhost serve` subprocess (which also serves an
  idle ASR model, as a deployment would), once as `pcm` and once as `mp3`; time to the first body byte,
  and to the end of the body;
* with `profile`, the parts of the server's extra time to first byte: the same worker reached without
  HTTP (time to its first chunk), encoding the first chunk, the first chunk through a pipe, and the
  HTTP + JSON request alone (naming a model that does not exist, answered 404 before any work).

Calls are strictly sequential, with a short pause between them. Nothing here asserts on absolute times.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from voxhost.audio import SAMPLE_RATE, decode_audio
from voxhost.benchmarks import baselines
from voxhost.benchmarks.common import (
    HTTP_PROBE,
    IN_PROCESS,
    MISSING_MODEL,
    PIPE,
    SENTENCES,
    TARGET_SERVER_RATIO,
    WORKER,
    BenchmarkError,
    RunOptions,
    cell,
    distribution,
    load_average,
    median_ms,
    model_spec,
    progress_bar,
    ratio_of,
    report_head,
    stage,
    summarize,
    verdict,
)
from voxhost.benchmarks.rounds import PipeProbe, interleaved, profile_manager, settler, timed
from voxhost.harness import serve_with_client
from voxhost.manager.requests import SpeakRequest

if TYPE_CHECKING:
    from voxhost.manager import ModelManager

TTS_MODELS = ("en_US-joe-medium", "kokoro")
TTS_TEXT = " ".join(SENTENCES)  # three English sentences of normal length
TTS_FORMATS = ("pcm", "mp3")  # the first is the series the time-to-first-byte target is read from
TARGET_TTFB_MS = 100.0
TTFB_TARGET_ENGINES = ("piper",)  # the engines the time-to-first-byte target is set for
ENCODE = "encode_first"

ENGINE = "voxhost_engine"
TTSCall = dict[str, float]  # ttfb, total, audio (seconds); the profile's parts only have total


def _server_name(fmt: str) -> str:
    return f"server_{fmt}"


def _tts_label(name: str) -> str:
    if name == IN_PROCESS:
        return "in-process (library)"
    if name == ENGINE:
        return "voxhost engine *"
    if name.startswith("server_"):
        return f"server {name.removeprefix('server_')}"
    if name.startswith(ENCODE):
        return f"encode {name.removeprefix(ENCODE + '_')} *"
    return {WORKER: "worker *", PIPE: "pipe *", HTTP_PROBE: "HTTP+JSON *"}[name]


def _audio_seconds(fmt: str, body: bytes, rate: int) -> float:
    """How much audio a /v1/audio/speech body holds (decoded for the compressed formats)."""
    if fmt == "pcm":
        return len(body) / 2 / rate
    if fmt == "wav":
        return max(0, len(body) - 44) / 2 / rate
    return len(decode_audio(body)) / SAMPLE_RATE


def run_tts_benchmark(
    calls: int = 15,
    models: Sequence[str] = TTS_MODELS,
    *,
    text: str = TTS_TEXT,
    formats: Sequence[str] = TTS_FORMATS,
    asr_model: str | None = "tiny.en",
    run: RunOptions = RunOptions(),
    console: Console | None = None,
) -> dict[str, Any]:
    """Time to first audio and real-time factor of each TTS model in `models`, in-process and through the
    server (one series per response format in `formats`); the module docstring says what is measured.

    `calls` timed calls of each contender after one untimed warm-up call each, all of them interleaved in
    one round-robin over the models. `asr_model`: also served (idle) by the server, as a real deployment
    would be; None serves the TTS models only. `run.threads`: the server's `--threads` and the in-process
    engines' threads.
    """
    from collections.abc import Iterator

    from voxhost.audio.encode import PCM_RATE, SPEECH_FORMATS, StreamEncoder
    from voxhost.audio.text import split_sentences
    from voxhost.engines import TTSEngine
    from voxhost.manager.layout import engine_config
    from voxhost.manager.registry import ModelSpec

    if not 1 <= calls <= 10_000:
        raise BenchmarkError("calls must be between 1 and 10000")
    if not models:
        raise BenchmarkError("name at least one TTS model")
    if not formats or any(f not in SPEECH_FORMATS for f in formats):
        raise BenchmarkError(f"formats must be among {', '.join(SPEECH_FORMATS)}")
    if not text.strip():
        raise BenchmarkError("the text is empty")
    threads, profile, settle_seconds = run.thread_count, run.profile, run.settle_seconds
    settings = run.settings(models)
    specs = [model_spec(m) for m in models]
    asr_spec = model_spec(asr_model) if asr_model else None
    for spec in specs:
        if spec.task != "tts":
            raise BenchmarkError(f"{spec.id} is not a text-to-speech model")
    if len({spec.id for spec in specs}) != len(specs):
        raise BenchmarkError("a TTS model is named twice")
    if asr_spec is not None and asr_spec.task != "asr":
        raise BenchmarkError(f"{asr_spec.id} is not a speech-to-text model")
    if len(text) > settings.max_input_chars:
        raise BenchmarkError(f"the text is longer than the server accepts ({settings.max_input_chars})")
    config = engine_config(settings)

    def load_engine(spec: ModelSpec) -> TTSEngine:
        engine = spec.load(config)
        assert isinstance(engine, TTSEngine)
        return engine

    served = [*([asr_model] if asr_model else []), *models]
    server_args = [
        *(arg for entry in served for arg in ("--model", entry)), "--preload", "--ttl", "0",
        "--threads", str(threads), "--device", settings.device, "--compute-type", settings.compute_type,
        "--cache-dir", str(settings.cache_dir), "--log-level", "warning",
    ]  # fmt: skip
    wait_for = [*([asr_spec.id] if asr_spec else []), *(spec.id for spec in specs)]
    first_sentence = split_sentences(text)[0]

    with contextlib.ExitStack() as stack:
        loading = stack.enter_context(contextlib.ExitStack())  # the spinner, until every model is loaded
        loading.enter_context(stage(console, "starting voxhost serve and loading the models..."))
        _, client = serve_with_client(stack, server_args, models=wait_for, timeout=run.startup_timeout)
        engines = {spec.id: load_engine(spec) for spec in specs}
        libraries: dict[str, Callable[[], Iterator[np.ndarray]]] = {}
        for spec in specs:
            if spec.engine == "piper":
                voice = baselines.piper_voice(spec, config)
                libraries[spec.id] = functools.partial(baselines.piper_chunks, voice, text)
            elif spec.engine == "kokoro":
                kokoro, name = baselines.kokoro_model(spec, config), engines[spec.id].resolve_voice(None)
                libraries[spec.id] = functools.partial(
                    baselines.kokoro_chunks, kokoro, text, name, config.tts_language
                )
        # one whole synthesis each: the first chunk is what the profile's parts work on
        first_chunks = {mid: next(iter(list(e.synthesize(text)))) for mid, e in engines.items()}

        loop: asyncio.AbstractEventLoop | None = None
        manager: ModelManager | None = None
        pipe: PipeProbe | None = None
        if profile:
            loop, manager = profile_manager(stack, settings, [spec.id for spec in specs])
            pipe = PipeProbe(limit=(calls + 1) * len(specs) + 10)
            stack.callback(pipe.close)
        loading.close()

        def in_process(synthesize: Callable[[], Iterator[np.ndarray]], rate: int) -> Callable[[], TTSCall]:
            def call() -> TTSCall:
                started = time.perf_counter()
                chunks = synthesize()
                first = next(chunks, None)
                ttfb = time.perf_counter() - started
                if first is None:
                    raise BenchmarkError("the engine produced no audio")
                samples = len(first) + sum(len(chunk) for chunk in chunks)
                total = time.perf_counter() - started
                return {"ttfb": ttfb, "total": total, "audio": samples / rate}

            return call

        def over_http(model_id: str, fmt: str) -> Callable[[], TTSCall]:
            payload = {"model": model_id, "input": text, "response_format": fmt}

            def call() -> TTSCall:
                started = time.perf_counter()
                ttfb: float | None = None
                body = bytearray()
                with client.stream("POST", "/v1/audio/speech", json=payload) as response:
                    if response.status_code != 200:
                        response.read()
                        raise BenchmarkError(
                            f"the server answered {response.status_code}: {response.text[:500]}"
                        )
                    for data in response.iter_raw():
                        if data and ttfb is None:
                            ttfb = time.perf_counter() - started
                        body += data
                total = time.perf_counter() - started
                rate = int(response.headers.get("x-sample-rate", "0") or 0)
                if ttfb is None or not rate:
                    raise BenchmarkError(f"the server sent no audio for {model_id} as {fmt}")
                return {"ttfb": ttfb, "total": total, "audio": _audio_seconds(fmt, bytes(body), rate)}

            return call

        def worker_direct(model_id: str, rate: int) -> Callable[[], TTSCall]:
            async def stream() -> TTSCall:
                assert manager is not None
                started = time.perf_counter()
                ttfb: float | None = None
                samples = 0
                speech = await manager.speak(SpeakRequest(text, model_id))
                async with contextlib.aclosing(speech.chunks) as chunks:
                    async for chunk in chunks:
                        if ttfb is None:
                            ttfb = time.perf_counter() - started
                        samples += len(chunk)
                total = time.perf_counter() - started
                return {"ttfb": total if ttfb is None else ttfb, "total": total, "audio": samples / rate}

            def call() -> TTSCall:
                assert loop is not None
                return loop.run_until_complete(stream())

            return call

        def encode_first(fmt: str, chunk: np.ndarray, rate: int) -> Callable[[], TTSCall]:
            def call() -> TTSCall:  # what the server does before its first body byte, encoder set-up included
                started = time.perf_counter()
                StreamEncoder(fmt, rate, PCM_RATE if fmt == "pcm" else rate).encode(chunk)
                return {"total": time.perf_counter() - started}

            return call

        def pipe_first(probe: PipeProbe, chunk: np.ndarray) -> Callable[[], TTSCall]:
            request = {"text": text, "voice": None, "speed": 1.0, "language": None}
            return lambda: {"total": timed(lambda: probe.round_trip(request, chunk, "synthesize"))}

        probe = {"model": MISSING_MODEL, "input": text, "response_format": formats[0]}

        def http_probe() -> TTSCall:
            started = time.perf_counter()
            response = client.post("/v1/audio/speech", json=probe)
            if response.status_code != 404:
                raise BenchmarkError(f"the HTTP probe expected 404, got {response.status_code}")
            return {"total": time.perf_counter() - started}

        contenders: dict[tuple[str, str], Callable[[], TTSCall]] = {}
        for spec in specs:
            engine = engines[spec.id]
            if spec.id in libraries:
                contenders[spec.id, IN_PROCESS] = in_process(libraries[spec.id], engine.sample_rate)
            own = functools.partial(engine.synthesize, text)
            contenders[spec.id, ENGINE] = in_process(own, engine.sample_rate)
            for fmt in formats:
                contenders[spec.id, _server_name(fmt)] = over_http(spec.id, fmt)
            if pipe is not None:
                contenders[spec.id, WORKER] = worker_direct(spec.id, engine.sample_rate)
                for fmt in formats:
                    contenders[spec.id, f"{ENCODE}_{fmt}"] = encode_first(
                        fmt, first_chunks[spec.id], engine.sample_rate
                    )
                contenders[spec.id, PIPE] = pipe_first(pipe, first_chunks[spec.id])
                contenders[spec.id, HTTP_PROBE] = http_probe

        load_before = load_average()
        progress = progress_bar(console)
        with progress:
            rounds = interleaved(contenders, calls, settler(settle_seconds), progress, console)
        load_after = load_average()

    described = {
        spec.id: {
            "engine": spec.engine,
            "origin": spec.origin,
            "sample_rate": engines[spec.id].sample_rate,
            "voice": engines[spec.id].resolve_voice(None),
            "first_chunk_seconds": round(len(first_chunks[spec.id]) / engines[spec.id].sample_rate, 3),
        }
        for spec in specs
    }
    report = _tts_report(
        described=described, text=text, first_sentence=first_sentence, formats=list(formats), calls=calls,
        rounds=rounds, profile=profile, settle_seconds=settle_seconds, asr_model=asr_model, threads=threads,
    )  # fmt: skip
    # other work on the machine distorts every figure: the 1-minute load average says whether there was any
    report["machine"]["load_average_1m"] = {"before": load_before, "after": load_after}
    return report


def _tts_model_report(
    model_id: str,
    facts: dict[str, Any],
    rounds: list[dict[tuple[str, str], TTSCall]],
    formats: list[str],
    profile: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One model's figures, and its rows for the targets table."""
    names = list(dict.fromkeys(name for r in rounds for mid, name in r if mid == model_id))

    def paired(name: str, key: str) -> list[tuple[float, float]]:
        both = [r for r in rounds if (model_id, name) in r and (model_id, IN_PROCESS) in r]
        return [(r[model_id, name][key], r[model_id, IN_PROCESS][key]) for r in both]

    contenders: dict[str, Any] = {}
    for name in names:
        series = [r[model_id, name] for r in rounds if (model_id, name) in r]
        entry: dict[str, Any] = {"total": summarize([c["total"] for c in series])}
        if "ttfb" in series[0]:
            entry["ttfb"] = summarize([c["ttfb"] for c in series])
            entry["audio_seconds"] = distribution([c["audio"] for c in series])
            entry["rtf"] = distribution([c["total"] / c["audio"] for c in series if c["audio"]], digits=4)
        contenders[name] = entry

    def median(name: str, key: str) -> float | None:
        value = contenders.get(name, {}).get(key, {}).get("median_ms")
        return None if value is None else float(value)

    rows: list[dict[str, Any]] = []
    comparisons: dict[str, Any] = {}
    for fmt in formats:
        name = _server_name(fmt)
        totals = paired(name, "total")
        ttfbs = [(a - b) * 1000 for a, b in paired(name, "ttfb")]
        ratio = ratio_of(median(name, "total"), median(IN_PROCESS, "total"))
        comparisons[fmt] = {
            "total_ratio": ratio,
            "total_ratio_paired": round(float(np.median([a / b for a, b in totals])), 4) if totals else None,
            "total_minus_in_process_ms": median_ms([a - b for a, b in totals]),
            "ttfb_minus_in_process_ms": round(float(np.median(ttfbs)), 3) if ttfbs else None,
            "ttfb_minus_in_process_p25_p75_ms": [round(float(x), 3) for x in np.percentile(ttfbs, [25, 75])]
            if ttfbs
            else None,
        }
        rows.append({
            "model": model_id, "format": fmt, "figure": "server / in-process total time (medians)",
            "value": ratio, "target": TARGET_SERVER_RATIO,
            "met": None if ratio is None else ratio <= TARGET_SERVER_RATIO,
        })  # fmt: skip
        if facts["engine"] in TTFB_TARGET_ENGINES:
            ttfb = median(name, "ttfb")
            rows.append({
                "model": model_id, "format": fmt, "figure": "time to first byte through the server (median)",
                "value": ttfb, "target": TARGET_TTFB_MS,
                "met": None if ttfb is None else ttfb <= TARGET_TTFB_MS,
            })  # fmt: skip

    breakdown: dict[str, Any] | None = None
    if profile:
        diff = comparisons[formats[0]]["ttfb_minus_in_process_ms"]
        worker = [(a - b) * 1000 for a, b in paired(WORKER, "ttfb")]
        parts = {
            "http_and_json_ms": median(HTTP_PROBE, "total"),
            "pipe_first_chunk_ms": median(PIPE, "total"),
            f"encode_first_chunk_{formats[0]}_ms": median(f"{ENCODE}_{formats[0]}", "total"),
        }
        known = [v for v in parts.values() if v is not None]
        breakdown = {
            "format": formats[0],
            "in_process_ttfb_ms": median(IN_PROCESS, "ttfb"),
            "server_ttfb_ms": median(_server_name(formats[0]), "ttfb"),
            "server_minus_in_process_ms": diff,
            "worker_direct_minus_in_process_ms": round(float(np.median(worker)), 3) if worker else None,
            "parts": parts,
            "rest_ms": round(diff - sum(known), 3) if diff is not None and len(known) == len(parts) else None,
            "encode_first_chunk_ms": {fmt: median(f"{ENCODE}_{fmt}", "total") for fmt in formats},
        }
    report = {**facts, "contenders": contenders, "vs_in_process": comparisons, "ttfb_breakdown": breakdown}
    return report, rows


def _tts_report(
    *,
    described: dict[str, dict[str, Any]],
    text: str,
    first_sentence: str,
    formats: list[str],
    calls: int,
    rounds: list[dict[tuple[str, str], TTSCall]],
    profile: bool,
    settle_seconds: float,
    asr_model: str | None,
    threads: int,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    for model_id, facts in described.items():
        models[model_id], model_rows = _tts_model_report(model_id, facts, rounds, formats, profile)
        rows.extend(model_rows)
    verdicts = [r["met"] for r in rows]
    return {
        **report_head("tts_latency"),
        "config": {
            "models": list(described),
            "formats": formats,
            "calls": calls,
            "asr_model_served": asr_model,
            "settle_seconds": settle_seconds,
            "server_threads": threads,
            "profile": profile,
        },
        "text": {"text": text, "chars": len(text), "first_sentence": first_sentence},
        "models": models,
        "targets": {
            "ttfb_max_ms": TARGET_TTFB_MS,
            "ttfb_engines": list(TTFB_TARGET_ENGINES),
            "server_vs_in_process_max": TARGET_SERVER_RATIO,
            "rows": rows,
            "all_met": None if None in verdicts or not verdicts else all(verdicts),
        },
    }


def print_tts_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The TTS figures as rich tables."""
    console = console or Console()
    cfg, machine = report["config"], report["machine"]
    also = cfg["asr_model_served"] or "no ASR model"
    console.print(
        f"[bold]TTS latency[/] {', '.join(cfg['models'])}: {report['text']['chars']} characters "
        f"({report['text']['text'][:40]}...), the server also serving {also}; "
        f"{machine['cpu_count']} cores ({machine['cpu_model']}); {report['date']}"
    )
    load = machine.get("load_average_1m") or {}
    if load:
        console.print(f"load average (1 min) before the timed rounds {load['before']}, after {load['after']}")

    def ms(value: float | None) -> str:  # narrow columns: no decimals (nor separators) from 1 s up
        return "-" if value is None else f"{value:.0f}" if value >= 1000 else f"{value:.1f}"

    for model_id, data in report["models"].items():
        table = Table(
            title=f"{model_id} ({data['engine']}, {data['sample_rate']} Hz, voice {data['voice']}): "
            f"ms per call, {cfg['calls']} calls each, interleaved; medians and p90",
            box=box.SIMPLE_HEAD, pad_edge=False,
        )  # fmt: skip
        columns = ("", "1st byte", "p90", "total", "p90", "RTF", "audio s", "/ in-proc")
        for column in columns:
            table.add_column(column, justify="left" if not column else "right", no_wrap=True)
        contenders = data["contenders"]
        base = contenders.get(IN_PROCESS, {}).get("total", {}).get("median_ms")
        for name, stats in contenders.items():
            ttfb, total, rtf = stats.get("ttfb", {}), stats["total"], stats.get("rtf", {})
            audio = stats.get("audio_seconds", {}).get("median")
            ratio = ratio_of(total["median_ms"], base) if "ttfb" in stats else None
            table.add_row(
                _tts_label(name), ms(ttfb.get("median_ms")), ms(ttfb.get("p90_ms")), ms(total["median_ms"]),
                ms(total["p90_ms"]), cell(rtf.get("median"), digits=3), cell(audio, digits=2),
                cell(ratio, "x", 3),
            )  # fmt: skip
        console.print(table)
        breakdown = data.get("ttfb_breakdown")
        console.print(
            "RTF: total time / seconds of audio. * voxhost engine: in this process, no server; profile: "
            "worker = the same worker without HTTP; the others are parts of the server's extra time to "
            "first byte, on their own (1st chunk)"
            if breakdown
            else "RTF: total time / seconds of audio. * voxhost engine: in this process, no server"
        )
        if breakdown:
            detail = Table(
                title=f"{model_id}: where the time to first byte goes ({breakdown['format']}, medians)"
            )
            detail.add_column("part")
            detail.add_column("ms", justify="right")
            library_first = cell(breakdown["in_process_ttfb_ms"], digits=2)
            detail.add_row("in-process (the library): first audio", library_first)
            detail.add_row("server: first body byte", cell(breakdown["server_ttfb_ms"], digits=2))
            spread = data["vs_in_process"][breakdown["format"]]["ttfb_minus_in_process_p25_p75_ms"]
            detail.add_row(
                "server - in-process (paired)",
                cell(breakdown["server_minus_in_process_ms"], digits=2)
                + (f" (p25..p75 {spread[0]:.1f}..{spread[1]:.1f})" if spread else ""),
            )
            for part, value in breakdown["parts"].items():
                detail.add_row(f"  {part.removesuffix('_ms').replace('_', ' ')}", cell(value, digits=2))
            if breakdown["rest_ms"] is not None:
                detail.add_row("  rest (thread hops, process wake-ups)", cell(breakdown["rest_ms"], digits=2))
            detail.add_row(
                "worker, no HTTP - in-process (paired)",
                cell(breakdown["worker_direct_minus_in_process_ms"], digits=2),
            )
            console.print(detail)

    summary = Table(title="against the targets (medians)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("model", "format", "figure", "value", "target", "verdict"):
        summary.add_column(column, justify="right" if column in ("value", "target", "verdict") else "left")
    for row in report["targets"]["rows"]:
        is_ratio = row["figure"].startswith("server /")
        summary.add_row(
            row["model"], row["format"], "total, server / in-process" if is_ratio else "1st byte, server",
            cell(row["value"], "x", 3) if is_ratio else cell(row["value"], " ms"),
            f"<= {row['target']}x" if is_ratio else f"<= {row['target']:g} ms", verdict(row["met"]),
        )  # fmt: skip
    console.print(summary)
    lines = []
    for model_id, data in report["models"].items():
        for fmt, cmp in data["vs_in_process"].items():
            total = cell(cmp["total_minus_in_process_ms"], " ms")
            lines.append(
                f"{model_id} {fmt}, server vs in-process, medians of paired rounds: total "
                f"x{cell(cmp['total_ratio_paired'], digits=3)} ({total}), "
                f"1st byte +{cell(cmp['ttfb_minus_in_process_ms'], ' ms')}"
            )
    console.print("\n".join(lines))
