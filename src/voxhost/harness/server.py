"""The server harness of the tests and the bench scripts: `voxhost serve` as a subprocess on free
127.0.0.1 ports, started, waited for and stopped one way.

`start_server` launches it (HTTP on a free port; Wyoming on another one when asked, `--no-wyoming`
otherwise), waits until /health answers 200 and, when given models, until they are all `ready`, and fails
fast, with the log, if the process exits or a model fails to load. The `ServerProcess` it returns is
also a context manager that always stops it: `with serve(...) as server:` (`serve` is `start_server`).
`launch` and `wait_ready` are the two halves, for servers that are not voxhost (bench/wyoming_asr.py's
reference server). Nothing here binds anything but 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

HOST = "127.0.0.1"
POLL_SECONDS = 0.2  # between two readiness checks
HEALTH_TIMEOUT = 5.0  # one /health request at most
# flags the harness sets itself: a caller's would move the server off 127.0.0.1 or off its free ports
OWN_FLAGS = ("--host", "--port", "--wyoming-uri")


class ServerError(RuntimeError):
    """The server did not come up: it exited, a model failed to load, or it was not ready in time."""


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (all bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    return free_ports(1)[0]


@dataclass
class ServerProcess:
    """A server subprocess: where it answers, its process and its log."""

    url: str  # http://127.0.0.1:PORT ("" for a server without HTTP)
    process: subprocess.Popen[bytes]
    log_path: Path
    wyoming_uri: str | None = None  # tcp://127.0.0.1:PORT, None when Wyoming is off
    command: list[str] = field(default_factory=list)
    # the processes seen below it (its model workers), killed by stop() if they outlive it
    seen: dict[int, psutil.Process] = field(default_factory=dict, repr=False)

    @property
    def wyoming_port(self) -> int | None:
        return None if self.wyoming_uri is None else int(self.wyoming_uri.rsplit(":", 1)[1])

    def log(self) -> str:
        """The whole log (stdout and stderr) so far."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int | None = 30) -> str:
        """The last `lines` lines of the log (None: all of it); "" if it cannot be read."""
        try:
            text = self.log()
        except OSError:
            return ""
        return text if lines is None else "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        """The server process and every process below it now; those below are noted for `stop`."""
        try:
            root = psutil.Process(self.process.pid)
            below = root.children(recursive=True)
        except psutil.Error:
            return []
        self.seen.update((p.pid, p) for p in below)
        return [root, *below]

    def usage(self) -> dict[str, float]:
        """RSS (MB) and CPU seconds (user + system) of the server and the processes below it."""
        rss, cpu = 0, 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                rss += int(process.memory_info().rss)
                times = process.cpu_times()
                cpu += float(times.user + times.system)
        return {"rss_mb": round(rss / 1_000_000, 1), "cpu_s": round(cpu, 3)}

    def __enter__(self) -> ServerProcess:
        """The processes below the server are noted on the way in, so that any of them that outlives it
        is killed by `stop`, which runs on the way out whatever happens."""
        try:
            self.processes()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, SIGKILL if it has not exited after `timeout` s; then SIGKILL to any process noted
        below it (`processes`) that is still alive. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for process in self.seen.values():
            with contextlib.suppress(psutil.Error):  # gone already, or its pid taken by another process
                process.kill()
                process.wait(10)
        return self.process.returncode


def launch(
    command: Sequence[str],
    log_path: Path,
    *,
    url: str = "",
    wyoming_uri: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """`command` started with stdout and stderr to `log_path` and no stdin; `env` is added to this
    process's environment."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    return ServerProcess(url, process, log_path, wyoming_uri, list(command))


def wait_ready(
    server: ServerProcess,
    ready: Callable[[float], bool],
    timeout: float,
    *,
    name: str = "voxhost serve",
    failure: str = "was not ready",
    log_lines: int | None = 30,
) -> None:
    """Until `ready(seconds left)` is true, checked every POLL_SECONDS for at most `timeout` s. Raises
    ServerError, with the log's last `log_lines` lines, if the process exits first or time runs out;
    `ready` may raise it too. The server is left running either way."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise ServerError(
                f"{name} exited with code {server.process.returncode}:\n{server.log_tail(log_lines)}"
            )
        if ready(max(0.1, deadline - time.monotonic())):
            return
        if time.monotonic() > deadline:
            raise ServerError(f"{name} {failure} in {timeout:g}s:\n{server.log_tail(log_lines)}")
        time.sleep(POLL_SECONDS)


def _own_flags(args: Sequence[str]) -> list[str]:
    return [arg for arg in args if arg.split("=", 1)[0] in OWN_FLAGS]


def start_server(
    args: Sequence[str] = (),
    *,
    log_dir: Path,
    models: Sequence[str] = (),
    wyoming: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    health_headers: Mapping[str, str] | None = None,
    ready: Callable[[ServerProcess, float], bool] | None = None,
    log_lines: int | None = 30,
) -> ServerProcess:
    """`python -m voxhost serve --host 127.0.0.1 --port PORT` plus `--wyoming-uri tcp://127.0.0.1:PORT2`
    (`wyoming`) or `--no-wyoming`, then `args`; logging to `log_dir`/server-PORT.log.

    Returns once /health answers 200 (sent with `health_headers`), every model in `models` is `ready` on
    it, and `ready(server, seconds left)`, if given, is true; all within `timeout` s. Raises ServerError,
    with the log's last `log_lines` lines (None: all), if the server exits first, a model is `failed` or
    `crashed`, or time runs out; the server is stopped then."""
    if clash := _own_flags(args):
        raise ValueError(f"the harness sets {', '.join(clash)} itself (127.0.0.1, free ports)")
    port, wyoming_port = free_ports(2)
    wyoming_uri = f"tcp://{HOST}:{wyoming_port}" if wyoming else None
    # one server per data dir (jobs): each gets its own beside its log, unless the caller names one
    own_data = (
        []
        if any(a.split("=", 1)[0] == "--data-dir" for a in args)
        else ["--data-dir", str(log_dir / f"data-{port}")]
    )
    command = [
        sys.executable, "-m", "voxhost", "serve", "--host", HOST, "--port", str(port),
        *(["--wyoming-uri", wyoming_uri] if wyoming_uri else ["--no-wyoming"]), *own_data, *args,
    ]  # fmt: skip
    server = launch(
        command, log_dir / f"server-{port}.log", url=f"http://{HOST}:{port}", wyoming_uri=wyoming_uri, env=env
    )
    headers = dict(health_headers or {})

    def healthy(left: float) -> bool:
        try:
            response = httpx.get(server.url + "/health", timeout=min(HEALTH_TIMEOUT, left), headers=headers)
            if response.status_code != 200:
                return False
            states = _states(response.json(), models) if models else {}
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
            return False
        for name, state in states.items():
            if state in ("failed", "crashed"):
                raise ServerError(f"the server could not load {name}:\n{server.log_tail(log_lines)}")
        if any(state != "ready" for state in states.values()):
            return False
        return ready is None or ready(server, left)

    failure = f"did not load {', '.join(models)}" if models else "did not answer /health"
    try:
        wait_ready(server, healthy, timeout, failure=failure, log_lines=log_lines)
    except BaseException:
        server.stop()
        raise
    return server


def _states(health: Any, models: Sequence[str]) -> dict[str, Any]:
    """Each model's state on /health (None: not listed)."""
    listed = health["models"]
    return {model: (listed.get(model) or {}).get("state") for model in models}


serve = start_server  # the name `with serve(...) as server:` blocks read best with


def serve_with_client(
    stack: contextlib.ExitStack, args: Sequence[str], *, models: Sequence[str], timeout: float
) -> tuple[ServerProcess, httpx.Client]:
    """`serve(args)`, logging to a temporary folder, and an HTTP client of it (30 s timeouts, 10 min to
    read an answer), for a benchmark; all of it stopped and removed when `stack` unwinds."""
    log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-bench-")))
    server = stack.enter_context(serve(args, log_dir=log_dir, models=models, timeout=timeout))
    client = stack.enter_context(httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0, read=600.0)))
    return server, client
