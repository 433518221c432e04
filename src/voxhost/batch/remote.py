"""`voxhost batch --url`: the files go to a server as transcription jobs; their outputs are written here
as for a local batch (the same four files, the same resume; with `--diarize`, speaker labels in them
and FILE.rttm, made from the job's speaker segments). Each file's job carries an Idempotency-Key
made of the file (path, size, time) and the batch's options, so a batch interrupted and run again picks
up the jobs the server already has (running or done) rather than sending the files again."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voxhost.batch.files import RTTM, FileResult
from voxhost.diarization import Diarization, rttm, speaker_turns
from voxhost.formats import as_text
from voxhost.jobs.client import FINISHED, POLL_SECONDS, JobsClient, JobsError

IN_FLIGHT = 4  # jobs submitted and not yet ended at once: the server's queue holds the rest back anyway
FORMATS = {"json": "verbose_json", "txt": "text", "srt": "srt", "vtt": "vtt"}  # as batch/files.py's OUTPUTS


def job_key(path: Path, options: dict[str, Any]) -> str:
    stat = path.stat()
    asked = "|".join(f"{name}={options[name]}" for name in sorted(options) if options[name] is not None)
    what = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{asked}"
    return "voxhost-batch-" + hashlib.sha256(what.encode()).hexdigest()[:40]


def _outputs(client: JobsClient, job_id: str, path: Path, diarized: bool) -> dict[str, str]:
    outputs = {}
    for ext, fmt in FORMATS.items():
        text = client.result(job_id, fmt)
        outputs[ext] = as_text(json.loads(text)) if fmt == "verbose_json" else text
    if diarized:  # who spoke when, from the job's speaker segments (a turn: one speaker's run of them)
        answer = json.loads(client.result(job_id, "diarized_json"))
        outputs[RTTM] = rttm(Diarization(speaker_turns(answer["segments"]), answer["duration"]), path.stem)
    return outputs


def run_on_server(
    url: str,
    api_key: str | None,
    files: list[Path],
    options: dict[str, Any],
    done: Callable[[FileResult], None],
    reached: Callable[[Path, float], None],
) -> None:
    """Each file submitted as a job (at most IN_FLIGHT at once), followed until it ends, its outputs
    fetched in every format; `done` gets each file's result, `reached` its progress."""
    pending = list(files)
    running: dict[str, Path] = {}
    with JobsClient(url, api_key) as client:
        while pending or running:
            while pending and len(running) < IN_FLIGHT:
                path = pending.pop(0)
                key = job_key(path, options)
                try:
                    job = client.submit(
                        path, key, response_format="verbose_json",
                        **{"timestamp_granularities[]": ["segment", "word"]}, **options,
                    )  # fmt: skip
                except (JobsError, OSError) as exc:
                    done(FileResult(path, error=str(exc)))
                    continue
                running[job["id"]] = path
            for job_id, path in list(running.items()):
                try:
                    job = client.get(job_id)
                    reached(path, job["progress"]["audio_seconds"])
                    if job["status"] not in FINISHED:
                        continue
                    del running[job_id]
                    if job["status"] == "completed":
                        outputs = _outputs(client, job_id, path, bool(options.get("diarize")))
                        done(FileResult(path, outputs, audio_seconds=job["duration"]))
                    else:
                        error = (job["error"] or {}).get("message") or job["status"]
                        done(FileResult(path, error=f"the job {job_id} {job['status']}: {error}"))
                except JobsError as exc:
                    del running[job_id]
                    done(FileResult(path, error=str(exc)))
            if running:
                time.sleep(POLL_SECONDS)
