"""The benchmarks of `voxhost bench` and of the scripts in bench/, and the server harness they share with
the tests.

* `asr`: what serving Whisper costs, next to calling faster-whisper in-process (`--task asr`);
* `tts`: time to first audio and real-time factor of the TTS models, server vs in-process (`--task tts`);
* `run`: `run_and_report`, what `voxhost bench` calls: the tasks run, printed and written as JSON;
* `harness`: `voxhost serve` as a subprocess on free 127.0.0.1 ports (`start_server`, `serve`);
* `common`: `BenchmarkError`, the speech clip, statistics, machine facts, console helpers;
* `rounds`: interleaved timed rounds and the profile's probes.

Nothing here runs in a server's request path.
"""

from voxhost.bench.run import TASKS, run_and_report
from voxhost.bench.tts import TTS_MODELS

__all__ = ["TASKS", "TTS_MODELS", "run_and_report"]
