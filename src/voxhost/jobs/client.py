"""The HTTP client of a server's jobs (`/v1/jobs`), for `voxhost jobs` and `voxhost batch --url`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

FINISHED = ("completed", "failed", "cancelled")
POLL_SECONDS = 0.5


class JobsError(RuntimeError):
    """The server refused (its OpenAI-style error message), or could not be reached."""


class JobsClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise JobsError(f"{response.status_code}: {message}")
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._check(self.http.request(method, path, **kwargs))
        except httpx.HTTPError as exc:
            raise JobsError(f"cannot reach {self.http.base_url}: {exc}") from None

    def submit(self, path: Path, key: str | None = None, **fields: Any) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        data = {name: value for name, value in fields.items() if value is not None}
        with path.open("rb") as file:
            body: dict[str, Any] = self._request(
                "POST", "/v1/jobs", files={"file": (path.name, file)}, data=data, headers=headers
            ).json()
        return body

    def get(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}").json()
        return body

    def page(self, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
        body: list[dict[str, Any]] = self._request("GET", "/v1/jobs", params=params).json()["data"]
        return body

    def result(self, job_id: str, response_format: str | None = None) -> str:
        params = {"response_format": response_format} if response_format else {}
        return self._request("GET", f"/v1/jobs/{job_id}/result", params=params).text

    def cancel(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("DELETE", f"/v1/jobs/{job_id}").json()
        return body

    def wait(
        self, job_ids: list[str], on_progress: Callable[[dict[str, Any]], None], poll: float = POLL_SECONDS
    ) -> Iterator[dict[str, Any]]:
        """Each job once it has ended (in the order they end), telling `on_progress` of each poll."""
        waiting = [*job_ids]
        while waiting:
            for job_id in list(waiting):
                job = self.get(job_id)
                on_progress(job)
                if job["status"] in FINISHED:
                    waiting.remove(job_id)
                    yield job
            if waiting:
                time.sleep(poll)
