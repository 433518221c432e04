"""TTS benchmark: time to first audio and real-time factor, voxhost's server vs the engine in-process.

    python bench/tts_latency.py --calls 15 --json bench-tts.json

The same as `voxhost bench --task tts`; see `voxhost.benchmarks.tts` for what is measured and how.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from voxhost.benchmarks import TTS_MODELS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=15, help="timed calls per contender (default: 15)")
    parser.add_argument(
        "--model",
        "-m",
        action="append",
        default=None,
        help=f"TTS model to benchmark, repeatable (default: {', '.join(TTS_MODELS)})",
    )
    parser.add_argument(
        "--asr-model",
        default="tiny.en",
        help="ASR model the server also serves, idle ('': none; default: tiny.en)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the figures here ('-': stdout)"
    )
    parser.add_argument("--text", default=None, help="text to speak instead of the three test sentences")
    parser.add_argument(
        "--format",
        "-f",
        action="append",
        default=None,
        help="response_format series, repeatable; the first is the target's (default: pcm, mp3)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the time-to-first-byte breakdown")
    args = parser.parse_args(argv)

    from voxhost.benchmarks import run_and_report
    from voxhost.benchmarks.tts import TTS_FORMATS, TTS_TEXT

    return run_and_report(
        calls=args.calls,
        model=args.asr_model,
        json_path=args.json,
        task="tts",
        tts_models=tuple(args.model or TTS_MODELS),
        profile=not args.no_profile,
        text=args.text or TTS_TEXT,
        formats=tuple(args.format or TTS_FORMATS),
    )


if __name__ == "__main__":  # the guard matters: the profile's workers are spawned processes
    sys.exit(main())
