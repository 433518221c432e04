"""The benchmark library: what `voxhost bench` runs, and what the scripts in bench/ (one question each,
thin entry points) are built on. The server harness and the word-error helpers the benchmarks share with
the tests are in `voxhost.harness`.

* `asr`: what serving Whisper costs, next to calling faster-whisper in-process (`--task asr`);
* `tts`: time to first audio and real-time factor of the TTS models, server vs the libraries called
  in-process (`--task tts`);
* `run`: `run_and_report`, what `voxhost bench` calls: the tasks run, printed and written as JSON;
* `baselines`: the libraries themselves, called in-process (faster-whisper, Piper, Kokoro): the
  reference side of every comparison;
* `common`: `BenchmarkError`, the speech clip, statistics (medians, slopes), the end of speech, machine
  facts, console helpers;
* `rounds`: interleaved timed rounds and the profile's probes.

Nothing here runs in a server's request path.
"""

from voxhost.benchmarks.run import TASKS, run_and_report
from voxhost.benchmarks.tts import TTS_MODELS

__all__ = ["TASKS", "TTS_MODELS", "run_and_report"]
