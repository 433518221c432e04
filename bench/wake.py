"""Wake word detection: voxhost over Wyoming beside pymicro-wakeword called directly in-process.

    python bench/wake.py --json bench-wake.json

Every embedded microWakeWord word (okay_nabu, hey_jarvis, hey_mycroft, alexa) said by every voice
available offline (Piper joe and the five Kokoro voices, speaking English), twice each (the phrase
alone, and followed by a command), clean and with white noise at 10 dB SNR (against the speech's
power), each clip with half a second of silence before and two after. Measured on the same 16 kHz
16-bit audio, in 64 ms chunks as a satellite sends them:

* detection rate: the clip's word heard (listening for that word only), voxhost and in-process;
* false accepts per hour: a public-domain reading (tests/data/wizard_of_oz.txt) by Piper and Kokoro
  voices, listening for all four words at once;
* latency: from the end of the phrase (its last sample louder than -40 dBFS) to the `detection`, the
  clips streamed at real-time pace (each chunk sent when it would have been captured), several at
  once; in-process: the end of the chunk in which the library says yes, minus the phrase's end (the
  floor: the model needs that much audio);
* CPU per stream: the server's and its worker's CPU time while N streams run at real-time pace, per
  stream and second of audio, beside the library's own CPU time per second of audio.

Synthesized audio is cached in --cache (npz) so that runs after the first go straight to measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.info import Describe
from wyoming.wake import Detect, Detection

from voxhost import harness
from voxhost.audio import decode_audio, encode_audio
from voxhost.audio.decode import float_to_pcm16
from voxhost.benchmarks.common import machine_facts
from voxhost.engines.base import EngineConfig, TTSEngine
from voxhost.manager.registry import resolve_source

RATE = 16000
CHUNK = 1024  # samples per audio-chunk: 64 ms
WORDS = {
    "okay_nabu": "Okay Nabu.",
    "hey_jarvis": "Hey Jarvis.",
    "hey_mycroft": "Hey Mycroft.",
    "alexa": "Alexa.",
}
COMMAND = " Turn on the kitchen lights."
LOUD = 0.01  # -40 dBFS
ROOT = Path(__file__).resolve().parent.parent


# --- audio -----------------------------------------------------------------------------------------
Voices = dict[str, tuple[TTSEngine, str]]


def _voices(cache_dir: Path) -> Voices:
    """Every offline voice: (engine, voice id) by name."""
    config = EngineConfig(cache_dir=cache_dir)
    found: Voices = {}
    for model in ("en_US-joe-medium", "kokoro"):
        engine = resolve_source(model).load(config)
        assert isinstance(engine, TTSEngine)
        for voice in engine.voices():
            found[voice.id] = (engine, voice.id)
    return found


def _say(voices: Voices, name: str, text: str) -> np.ndarray:
    engine, voice = voices[name]
    audio = np.concatenate(list(engine.synthesize(text, voice=voice, language="en-us")))
    return decode_audio(encode_audio(audio, engine.sample_rate, "wav"))


def _padded(audio: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(RATE // 2, np.float32), audio, np.zeros(RATE * 2, np.float32)])


def _noisy(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    loud = audio[np.abs(audio) > LOUD]
    power = float(np.mean(loud**2)) if loud.size else 1e-6
    noise = np.random.default_rng(seed).normal(0, np.sqrt(power / 10 ** (snr_db / 10)), audio.shape)
    noisy: np.ndarray = np.clip(audio + noise.astype(np.float32), -1, 1)
    return noisy


def phrase_end(audio: np.ndarray) -> float:
    return float(np.flatnonzero(np.abs(audio) > LOUD)[-1] / RATE)


def build_audio(cache: Path, long_voices: list[str]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The clips (word, voice, variant, noise, audio, phrase end) and the long readings, by voice."""
    cache.mkdir(parents=True, exist_ok=True)
    stored = cache / "wake-audio.npz"
    arrays: dict[str, np.ndarray] = dict(np.load(stored)) if stored.exists() else {}
    voices: dict[str, Any] | None = None
    text = [
        line.strip()
        for line in (ROOT / "tests" / "data" / "wizard_of_oz.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def audio_of(key: str, make: Any) -> np.ndarray:
        nonlocal voices
        if key not in arrays:
            voices = voices or _voices(cache)
            arrays[key] = make(voices)
            np.savez(stored, **arrays)  # type: ignore[arg-type]
        return arrays[key]

    names = ["en_US-joe-medium", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    clips: list[dict[str, Any]] = []
    for voice in names:
        for word, phrase in WORDS.items():
            for variant, spoken in (("alone", phrase), ("command", phrase + COMMAND)):
                key = f"clip/{voice}/{word}/{variant}"
                clean = _padded(audio_of(key, lambda v, s=spoken, n=voice: _say(v, n, s)))
                end = phrase_end(clean) if variant == "alone" else None  # (latency: the phrase alone)
                for noise in ("clean", "10dB"):
                    audio = clean if noise == "clean" else _noisy(clean, 10.0, seed=len(clips))
                    clips.append(
                        {
                            "word": word,
                            "voice": voice,
                            "variant": variant,
                            "noise": noise,
                            "audio": audio,
                            "end": end,
                        }
                    )
    readings = {
        voice: audio_of(f"reading/{voice}", lambda v, n=voice: _say(v, n, " ".join(text)))
        for voice in long_voices
    }
    return clips, readings


# --- pymicro-wakeword in-process ---------------------------------------------------------------------
def direct(audio: np.ndarray, words: list[str]) -> tuple[list[tuple[str, float]], float]:
    """The library on its own: (word, seconds at the end of the chunk it fired in) for each detection
    (deduplicated as the server does: a word counts when it fires after 2 s without firing), and its
    CPU seconds."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    pcm = float_to_pcm16(audio)
    detectors = {w: MicroWakeWord.from_builtin(Model(w)) for w in words}
    features = MicroWakeWordFeatures()
    found: list[tuple[str, float]] = []
    quiet: dict[str, float] = {}
    started = time.process_time()
    for i in range(0, len(pcm), CHUNK * 2):
        at = min(len(pcm), i + CHUNK * 2) / 2 / RATE
        for feature in features.process_streaming(pcm[i : i + CHUNK * 2]):
            for word, detector in detectors.items():
                if detector.process_streaming(feature):
                    if at >= quiet.get(word, 0.0):
                        found.append((word, at))
                    quiet[word] = at + 2.0
    cpu = time.process_time() - started
    for detector in detectors.values():
        detector.close()
    return found, cpu


# --- voxhost over Wyoming -----------------------------------------------------------------------------
async def stream(uri: str, audio: np.ndarray, words: list[str] | None, pace: bool) -> list[tuple[str, float]]:
    """(word, seconds after the stream's start at which the detection arrived, on the audio clock when
    paced: the wall clock since the first chunk was due)."""
    pcm = float_to_pcm16(audio)
    found: list[tuple[str, float]] = []
    async with AsyncClient.from_uri(uri) as client:

        async def read() -> None:
            while True:
                event = await client.read_event()
                if event is None or event.type in ("info", "error"):
                    if event is not None and event.type == "error":
                        raise RuntimeError(event.data)
                    return
                if Detection.is_type(event.type):
                    found.append((Detection.from_event(event).name or "", time.monotonic() - started))

        await client.write_event(Detect(names=words).event())
        await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        reader = asyncio.create_task(read())
        started = time.monotonic()
        step = CHUNK * 2
        for i in range(0, len(pcm), step):
            if pace:  # a chunk is sent once it has been captured
                await asyncio.sleep(max(0.0, started + (i + step) / 2 / RATE - time.monotonic()))
            await client.write_event(
                AudioChunk(rate=RATE, width=2, channels=1, audio=pcm[i : i + step]).event()
            )
        await client.write_event(AudioStop().event())
        await client.write_event(Describe().event())
        await reader
    return found


async def streams(
    uri: str, jobs: list[tuple[np.ndarray, list[str] | None]], pace: bool, at_once: int
) -> list[Any]:
    gate = asyncio.Semaphore(at_once)

    async def one(audio: np.ndarray, words: list[str] | None) -> list[tuple[str, float]]:
        async with gate:
            return await stream(uri, audio, words, pace)

    return list(await asyncio.gather(*(one(a, w) for a, w in jobs)))


# --- the report ------------------------------------------------------------------------------------
def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "voxhost-bench-wake")
    parser.add_argument("--long-voices", default="en_US-joe-medium,jf_alpha,jm_kumo")
    parser.add_argument("--streams", type=int, default=16, help="streams at once for the CPU measurement")
    parser.add_argument("--cpu-seconds", type=float, default=20.0, help="audio seconds per stream for CPU")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console()
    clips, readings = build_audio(args.cache, args.long_voices.split(","))
    minutes = ", ".join(f"{v} {len(a) / RATE / 60:.1f} min" for v, a in readings.items())
    console.print(f"{len(clips)} clips; readings: {minutes}")
    report: dict[str, Any] = {"machine": machine_facts(), "clips": len(clips)}
    with harness.start_server(
        ["--model", "microwakeword", "--preload", "--cache-dir", str(args.cache),
         "--wake-max-streams", "256"], log_dir=args.cache, wyoming=True,
    ) as server:  # fmt: skip
        uri = server.wyoming_uri
        assert uri is not None
        # detection rate: every clip as fast as the server takes it, 4 at once
        heard = asyncio.run(streams(uri, [(c["audio"], [c["word"]]) for c in clips], pace=False, at_once=4))
        rates: dict[str, dict[str, list[int]]] = {}
        for clip, found in zip(clips, heard, strict=True):
            mine = any(w == clip["word"] for w, _ in found)
            theirs = any(w == clip["word"] for w, _ in direct(clip["audio"], [clip["word"]])[0])
            for key in (
                f"{clip['word']} {clip['noise']}",
                f"{clip['voice']} {clip['noise']}",
                f"all {clip['noise']}",
            ):
                entry = rates.setdefault(key, {"voxhost": [], "direct": []})
                entry["voxhost"].append(int(mine))
                entry["direct"].append(int(theirs))
        report["detection_rate"] = {
            key: {side: round(sum(v) / len(v), 3) for side, v in sides.items()} | {"n": len(sides["voxhost"])}
            for key, sides in rates.items()
        }
        # false accepts: the readings, all four words
        words = list(WORDS)
        hours = sum(len(a) for a in readings.values()) / RATE / 3600
        served = asyncio.run(streams(uri, [(a, None) for a in readings.values()], pace=False, at_once=4))
        by_direct = [direct(a, words)[0] for a in readings.values()]
        report["false_accepts"] = {
            "hours": round(hours, 3),
            "voxhost": sum(len(f) for f in served),
            "direct": sum(len(f) for f in by_direct),
            "voxhost_per_hour": round(sum(len(f) for f in served) / hours, 2),
            "direct_per_hour": round(sum(len(f) for f in by_direct) / hours, 2),
            "voxhost_words": sorted(w for f in served for w, _ in f),
        }
        # latency at real-time pace: the clean phrases alone, 8 at once
        clean = [c for c in clips if c["noise"] == "clean" and c["variant"] == "alone"]
        paced = asyncio.run(streams(uri, [(c["audio"], [c["word"]]) for c in clean], pace=True, at_once=8))
        served_latency, direct_latency = [], []
        for clip, found in zip(clean, paced, strict=True):
            end = clip["end"]
            at = [t for w, t in found if w == clip["word"]]
            floor = [t for w, t in direct(clip["audio"], [clip["word"]])[0] if w == clip["word"]]
            if at and floor:  # only clips both heard: the same phrases on both sides
                served_latency.append(at[0] - end)
                direct_latency.append(floor[0] - end)
        report["latency_s"] = {
            "n": len(served_latency),
            "voxhost_median": median(served_latency),
            "direct_median": median(direct_latency),
            "voxhost_p90": round(float(np.percentile(served_latency, 90)), 3) if served_latency else None,
            "added_median": median([a - b for a, b in zip(served_latency, direct_latency, strict=True)]),
        }
        # CPU per stream: N streams of speech at real-time pace
        reading = next(iter(readings.values()))
        piece = reading[: int(args.cpu_seconds * RATE)]
        before = server.usage()["cpu_s"]
        wall = time.monotonic()
        asyncio.run(streams(uri, [(piece, None)] * args.streams, pace=True, at_once=args.streams))
        wall = time.monotonic() - wall
        cpu = server.usage()["cpu_s"] - before
        audio_seconds = len(piece) / RATE * args.streams
        _, direct_cpu = direct(piece, words)
        report["cpu"] = {
            "streams": args.streams,
            "wall_s": round(wall, 1),
            "voxhost_core_per_stream": round(cpu / audio_seconds, 4),
            "direct_core_per_stream": round(direct_cpu / (len(piece) / RATE), 4),
            "voxhost_streams_per_core": round(audio_seconds / cpu, 1) if cpu else None,
            "direct_streams_per_core": round(len(piece) / RATE / direct_cpu, 1) if direct_cpu else None,
        }
    table = Table(title="detection rate (voxhost / in-process)")
    for column in ("clips", "voxhost", "in-process", "n"):
        table.add_column(column)
    for key, value in report["detection_rate"].items():
        table.add_row(key, f"{value['voxhost']:.2f}", f"{value['direct']:.2f}", str(value["n"]))
    console.print(table)
    console.print({k: v for k, v in report.items() if k not in ("detection_rate", "machine")})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
