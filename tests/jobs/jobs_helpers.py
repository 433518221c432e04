"""What the jobs tests share: an authorized client, waiting for a job, a long recording."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

KEY = "sk-jobs-test"
HEADERS = {"Authorization": f"Bearer {KEY}"}


# The long file of the jobs tests is conftest's `long_talk`: 45 s, two 30 s windows of speech; with
# --batch-size 1 and --parallel 1, a voice activity call and two decode calls, one after the other.
def submit(client: httpx.Client, audio: bytes, name: str = "a.wav", **data: Any) -> httpx.Response:
    return client.post("/v1/jobs", files={"file": (name, audio)}, data=data)


def wait_for(
    client: httpx.Client,
    job_id: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    seconds: float = 120,
) -> dict[str, Any]:
    """Poll the job (every 20 ms, for at most `seconds`) until `check` holds."""
    deadline = time.monotonic() + seconds
    job: dict[str, Any] = {}
    for _ in range(int(seconds / 0.02) + 1):
        job = client.get(f"/v1/jobs/{job_id}").json()
        if check(job):
            return job
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}: {job}")


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("completed", "failed", "cancelled")


def decoding(job: dict[str, Any]) -> bool:
    """Some of the audio is decoded (a call has completed), not all of it."""
    return job["status"] == "running" and 0 < job["progress"]["fraction"] < 1
