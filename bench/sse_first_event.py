"""Speech as Server-Sent Events starts as early as the audio itself: time to the first SSE event
(`stream_format: "sse"`) beside time to the first audio byte, the same text, model and format, on one
server, calls interleaved.

    python bench/sse_first_event.py --calls 9 --json bench-sse.json

Each call is timed from sending the request to the first body bytes received; the figure is the ratio of
the medians (SSE / audio) and the medians themselves. The SSE path adds a base64 encoding and a JSON
envelope per chunk: the target is a ratio within 1.5x plus 30 ms (what the test suite checked before
timings moved here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

TEXT = "The quick brown fox jumps over the lazy dog. Ask her to bring these things with her from the store."


def first_arrival(url: str, model: str, text: str, stream_format: str) -> float:
    body = {"model": model, "input": text, "response_format": "pcm", "stream_format": stream_format}
    started = time.perf_counter()
    with httpx.stream("POST", url + "/v1/audio/speech", json=body, timeout=120) as response:
        response.raise_for_status()
        chunks = response.iter_raw()
        next(chunks)
        arrived = time.perf_counter() - started
        for _ in chunks:
            pass
    return arrived


def main(argv: list[str] | None = None) -> int:
    from voxhost.harness import start_server

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=9, help="timed calls of each kind (default: 9)")
    parser.add_argument("--model", "-m", default="en_US-joe-medium", help="TTS model (default: Piper joe)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as logs:
        server = start_server(["--model", args.model, "--preload"], log_dir=Path(logs), models=[args.model])
        try:
            first_arrival(server.url, args.model, TEXT, "audio")  # warm-up
            raw, events = [], []
            for _ in range(args.calls):
                raw.append(first_arrival(server.url, args.model, TEXT, "audio"))
                events.append(first_arrival(server.url, args.model, TEXT, "sse"))
        finally:
            server.stop()
    figures = {
        "model": args.model,
        "calls": args.calls,
        "audio_first_byte_median_s": statistics.median(raw),
        "sse_first_event_median_s": statistics.median(events),
        "ratio": statistics.median(events) / statistics.median(raw),
    }
    met = figures["sse_first_event_median_s"] <= 1.5 * figures["audio_first_byte_median_s"] + 0.03
    print(
        f"first audio byte {figures['audio_first_byte_median_s'] * 1000:.0f} ms, first SSE event "
        f"{figures['sse_first_event_median_s'] * 1000:.0f} ms (medians of {args.calls}): "
        f"{figures['ratio']:.2f}x, target {'met' if met else 'missed'}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
