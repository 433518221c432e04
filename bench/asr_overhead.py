"""ASR overhead benchmark: voxhost's server vs in-process faster-whisper vs reloading the model per call.

    python bench/asr_overhead.py --calls 20 --rss-calls 200 --json bench-asr.json

The same as `voxhost bench`; see `voxhost.benchmarks.asr` for what is measured and how.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20, help="timed calls per contender (default: 20)")
    parser.add_argument(
        "--rss-calls", type=int, default=200, help="server calls between the RSS readings (default: 200)"
    )
    parser.add_argument("--model", "-m", default="tiny.en", help="model to benchmark (default: tiny.en)")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the figures here ('-': stdout)"
    )
    parser.add_argument("--wav", type=Path, default=None, help="speech recording to use instead of Piper")
    parser.add_argument(
        "--clip-seconds", type=float, default=5.0, help="length of the Piper clip (default: 5)"
    )
    parser.add_argument(
        "--reload-calls", type=int, default=None, help="reload-per-call calls (default: calls/2)"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    parser.add_argument("--no-profile", action="store_true", help="skip the overhead breakdown contenders")
    args = parser.parse_args(argv)

    from voxhost.benchmarks import run_and_report

    return run_and_report(
        calls=args.calls,
        rss_calls=args.rss_calls,
        model=args.model,
        json_path=args.json,
        wav=args.wav,
        clip_seconds=args.clip_seconds,
        reload_calls=args.reload_calls,
        threads=args.threads,
        profile=not args.no_profile,
    )


if __name__ == "__main__":  # the guard matters: the profile's worker is a spawned process
    sys.exit(main())
