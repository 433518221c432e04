"""The server's handle on one worker subprocess.

Spawns the worker, waits for its model to load, sends it requests and matches the answers by id. A
reader thread watches the pipe: when the worker dies, for whatever reason (killed, segfault, out of
memory), every request waiting on it fails at once with `WorkerCrashed`. Nothing here waits forever.
The messages and their rules are in `voxhost.manager.protocol`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from voxhost.engines import EngineConfig
from voxhost.engines.base import ModelInfo
from voxhost.errors import ModelLoadError, WorkerCrashed, WorkerTimeout, from_wire
from voxhost.manager import protocol
from voxhost.manager.registry import ModelSpec
from voxhost.manager.worker import worker_main

log = logging.getLogger("voxhost.manager")
_SPAWN = multiprocessing.get_context("spawn")


def describe_exit(code: int | None) -> str:
    if code is None:
        return "an unknown status"
    if code < 0:
        if -code == signal.SIGKILL:  # what the kernel's OOM killer sends
            return "signal SIGKILL (killed; the system may have run out of memory)"
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _running(pid: int | None) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie). At interpreter exit multiprocessing's own
    clean-up may reap a worker before its reader thread does; `Process.is_alive` then still says yes."""
    import psutil

    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# Every worker process started here and not reaped yet: what the server's exit waits for. Added to when
# a process starts, removed from by its reader thread once it has reaped it.
_unreaped: set[WorkerProcess] = set()


def reap_all(timeout: float = 5.0) -> list[int]:
    """End every worker process started in this process and wait until each has been reaped.

    For the server's last moment, after its model manager has stopped the workers it knows of (or was
    told to kill them): whatever is still running now (a worker mid-load, one ignoring its shutdown) gets
    SIGKILL. Waits at most `timeout` seconds in all for the reader threads to reap them; those threads
    are daemons, and without this wait the server can exit before they join their processes, leaving
    zombies for whoever inherits them. Then stops multiprocessing's resource tracker (started with the
    first spawned worker; it exits once no process holds its pipe) and reaps it too.

    Returns the pids of the workers still not reaped (empty when all were).
    """
    deadline = time.monotonic() + timeout
    workers = list(_unreaped)
    for worker in workers:
        worker.kill()
    left = [w for w in workers if not w._reaped.wait(max(0.0, deadline - time.monotonic()))]
    if not left:
        _stop_resource_tracker(max(0.0, deadline - time.monotonic()))
    return [w.pid for w in left if w.pid is not None]


def _stop_resource_tracker(timeout: float) -> None:
    """Close this process's end of the resource tracker's pipe and reap the tracker, if it runs. Only
    once no worker is left: each holds a copy of that pipe, and the tracker runs until all are closed."""
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # private; absent: leave it be
    if stop is None or getattr(resource_tracker._resource_tracker, "_pid", None) is None:
        return
    # `_stop` waits for the tracker's exit without a limit: in a daemon thread, so ours is bounded.
    stopper = threading.Thread(target=stop, name="resource-tracker-stop", daemon=True)
    stopper.start()
    stopper.join(timeout)


class Worker(Protocol):
    """Where one replica of a model runs, as the manager sees it: a local worker process
    (`WorkerProcess`) or a Ray Serve deployment (`voxhost.scale.serve.ServeWorker`)."""

    info: ModelInfo | None  # what the loaded model is (None until it has loaded)
    timings: collections.deque[tuple[float, float]]

    @property
    def pid(self) -> int | None: ...
    @property
    def alive(self) -> bool: ...
    async def start(self, timeout: float) -> ModelInfo: ...
    async def stop(self, grace: float = 5.0) -> None: ...
    def kill(self) -> None: ...
    async def call(self, method: str, timeout: float, **kwargs: Any) -> Any: ...
    def stream(self, method: str, timeout: float, **kwargs: Any) -> AsyncGenerator[Any, None]: ...
    async def ping(self, timeout: float = 2.0) -> dict[str, Any]: ...


# Makes the worker for one replica: (spec, engine config, inferences at once, log level).
WorkerFactory = Callable[[ModelSpec, EngineConfig, int, str], Worker]


def process_worker(spec: ModelSpec, config: EngineConfig, parallel: int, log_level: str) -> Worker:
    return WorkerProcess(spec, config, parallel=parallel, log_level=log_level)


class WorkerProcess:
    def __init__(self, spec: ModelSpec, config: EngineConfig, *, parallel: int = 1, log_level: str = "info"):
        self.spec = spec
        self._conn, self._child_conn = _SPAWN.Pipe(duplex=True)
        self._process = _SPAWN.Process(
            target=worker_main,
            args=(self._child_conn, spec, config, parallel, log_level),
            name=f"voxhost-worker[{spec.id}]",
            daemon=True,
        )
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # per streaming call: its chunks, then its result or the exception that ends it
        self._streams: dict[int, asyncio.Queue[protocol.Chunk | protocol.Result | Exception]] = {}
        self._send_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[ModelInfo] | None = None
        self.info: ModelInfo | None = None
        # (started, finished) on the worker's monotonic clock (system-wide) for its recent requests
        self.timings: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self.exited = False
        self._killed = False
        # Set by the reader thread once it has reaped the process. Only that thread waits on the process:
        # two threads in `Process.join` race on waitpid, and the loser sees a reaped child as alive.
        self._reaped = threading.Event()
        self.exitcode: int | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, timeout: float) -> ModelInfo:
        """Spawn the worker and wait until its model is loaded. Raises ModelLoadError otherwise."""
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._process.start()
        _unreaped.add(self)
        self._child_conn.close()  # so that the worker's death closes the pipe on our side
        threading.Thread(target=self._read_loop, name=f"reader[{self.spec.id}]", daemon=True).start()
        try:
            self.info = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            self.kill()
            raise ModelLoadError(f"loading {self.spec.id!r} took longer than {timeout:g}s") from None
        except asyncio.CancelledError:
            self.kill()
            raise
        return self.info

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self.exited and not self._killed and not self._reaped.is_set()

    def kill(self) -> None:
        # Dead from now on, even in the moments before the kernel has ended the process, so that the
        # next request starts a fresh worker instead of writing into this one's closing pipe.
        self._killed = True
        if self._process.pid is not None and not self._reaped.is_set():
            self._process.kill()

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not within `grace` seconds."""
        if self._process.pid is None:
            return
        if self.alive:  # sent from a thread: a stuck worker's full pipe must not block the event loop
            with contextlib.suppress(OSError, ValueError, TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self._send, protocol.Shutdown()), grace)
        if not await asyncio.to_thread(self._reaped.wait, grace):
            log.warning("worker for %s did not stop in %.0fs; killing it", self.spec.id, grace)
            self._process.kill()
            await asyncio.to_thread(self._reaped.wait, 10)
        # The pipe's end here is not closed now but when this object goes (CPython frees it as soon as
        # the last reference, including any thread still sending on it, is gone). Closing it while a
        # thread may still write frees its descriptor number for the next worker's pipe, and a late
        # write or close would then hit that pipe: a fresh worker once saw EOF and exited.

    # --- requests --------------------------------------------------------------------------------
    async def call(self, method: str, timeout: float, **kwargs: Any) -> Any:
        """Run `engine.<method>(**kwargs)` in the worker and return its result.

        A worker that gives no answer within `timeout` is killed (it is stuck, or far too slow) and the
        caller gets WorkerTimeout; the next request starts a fresh worker.
        """
        try:
            return await self._request(timeout, lambda request_id: protocol.Call(request_id, method, kwargs))
        except TimeoutError:
            raise self._stuck(timeout) from None

    def _stuck(self, timeout: float) -> WorkerTimeout:
        """Kill a worker that gave no answer in time (stuck, or far too slow); the error for its caller."""
        log.error("worker for %s gave no answer in %.0fs; killing it", self.spec.id, timeout)
        self.kill()
        return WorkerTimeout(
            f"the {self.spec.id!r} worker did not answer within {timeout:g}s; it was stopped and the "
            "next request gets a fresh one"
        )

    async def ping(self, timeout: float = 2.0) -> dict[str, Any]:
        """The worker's own stats (pid, loads, requests served, RSS); answered even while busy.
        Raises TimeoutError when the worker does not answer."""
        result: dict[str, Any] = await self._request(timeout, protocol.Ping)
        return result

    async def stream(self, method: str, timeout: float, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """Run a generator method of the engine in the worker, yielding its items as they arrive.

        `timeout` bounds the wait for each item. Leaving the loop early (the client went away) tells
        the worker to stop generating.
        """
        if self.exited or self._killed or self._loop is None:
            raise self._crash_error()
        request_id = next(self._ids)
        queue: asyncio.Queue[protocol.Chunk | protocol.Result | Exception] = asyncio.Queue()
        self._streams[request_id] = queue
        finished = False
        try:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.to_thread(self._send, protocol.Call(request_id, method, kwargs))
                while True:
                    async with asyncio.timeout(timeout):
                        answer = await queue.get()
                    if isinstance(answer, protocol.Chunk):
                        yield answer.item
                        continue
                    finished = True
                    if isinstance(answer, Exception):
                        raise answer
                    return
            except TimeoutError:  # before OSError, of which it is a subclass
                raise self._stuck(timeout) from None
            except (OSError, ValueError):
                raise await self._send_failed() from None
        finally:
            self._streams.pop(request_id, None)
            if not finished and not self.exited and self._loop is not None:
                # fire and forget: this may run while the caller is being cancelled
                self._loop.run_in_executor(None, self._send_quietly, protocol.Cancel(request_id))

    def _send_quietly(self, message: protocol.Request) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._send(message)

    async def _request(self, timeout: float, message: Callable[[int], protocol.Request]) -> Any:
        """Send `message(request_id)` and wait for the answer with that id (a result, or an error raised)."""
        request_id, future = self._new_request()
        try:
            # The deadline covers sending too: a stuck worker stops reading its pipe, and a send then
            # blocks once the pipe's buffer is full. Sending in a thread keeps the event loop free.
            async with asyncio.timeout(timeout):
                try:
                    await asyncio.to_thread(self._send, message(request_id))
                except (OSError, ValueError):
                    raise await self._send_failed() from None
                return await future
        finally:
            self._pending.pop(request_id, None)

    def _new_request(self) -> tuple[int, asyncio.Future[Any]]:
        if self.exited or self._killed or self._loop is None:
            raise self._crash_error()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending[request_id] = future
        return request_id, future

    def _send(self, message: protocol.Request) -> None:
        wire = protocol.encode(message)
        with self._send_lock:
            self._conn.send(wire)

    async def _send_failed(self) -> WorkerCrashed:
        """The error for a request that could not be sent: the worker died just now. Its exit status
        (which says why) is known once the reader thread has reaped it, a moment later."""
        await asyncio.to_thread(self._reaped.wait, 2.0)
        return self._crash_error()

    def _crash_error(self) -> WorkerCrashed:
        return WorkerCrashed(
            f"the worker serving {self.spec.id!r} (pid {self.pid}) died with {describe_exit(self.exitcode)}"
        )

    # --- the reader thread and its callbacks on the event loop ----------------------------------
    def _read_loop(self) -> None:
        assert self._loop is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an unpicklable answer: drop it, the caller times out rather than hangs
                log.exception("unreadable message from worker %s", self.spec.id)
                continue
            self._call_soon(self._on_message, message)
        # The pipe closes when the process ends; a worker that closed it and lingers is killed.
        self._process.join(5)
        if self._process.is_alive() and _running(self._process.pid):
            log.warning("worker for %s closed its pipe but did not exit; killing it", self.spec.id)
            self._process.kill()
            self._process.join()
        self._reaped.set()
        _unreaped.discard(self)
        self._call_soon(self._on_exit, self._process.exitcode)

    def _call_soon(self, callback: Any, *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_message(self, message: protocol.Wire) -> None:
        try:
            reply = protocol.decode_reply(message)
        except protocol.ProtocolError:
            log.error("ignoring a message from worker %s that is not a reply", self.spec.id)
            return
        if isinstance(reply, protocol.Ready | protocol.LoadFailed):
            if self._ready is not None and not self._ready.done():
                if isinstance(reply, protocol.Ready):
                    self._ready.set_result(ModelInfo.from_wire(reply.info))
                else:
                    reason = from_wire(reply.error).message
                    self._ready.set_exception(ModelLoadError(f"loading {self.spec.id!r} failed: {reason}"))
            return
        if isinstance(reply, protocol.Result) and reply.timing is not None:
            self.timings.append(reply.timing)
        queue = self._streams.get(reply.request_id)
        if queue is not None:
            if isinstance(reply, protocol.Error):
                queue.put_nowait(from_wire(reply.error))
            elif isinstance(reply, protocol.Chunk | protocol.Result):
                queue.put_nowait(reply)
            return
        future = self._pending.get(reply.request_id)
        if future is None or future.done():
            return  # its caller gave up (timeout or disconnect)
        if isinstance(reply, protocol.Result):
            future.set_result(reply.value)
        elif isinstance(reply, protocol.Pong):
            future.set_result(reply.stats)
        elif isinstance(reply, protocol.Error):
            future.set_exception(from_wire(reply.error))

    def _on_exit(self, exitcode: int | None) -> None:
        self.exited = True
        self.exitcode = exitcode
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                ModelLoadError(f"the worker loading {self.spec.id!r} died with {describe_exit(exitcode)}")
            )
        pending = [f for f in self._pending.values() if not f.done()]
        if pending or self._streams:
            log.error("worker for %s died with %s", self.spec.id, describe_exit(exitcode))
        for future in pending:
            future.set_exception(self._crash_error())
        for queue in self._streams.values():
            queue.put_nowait(self._crash_error())
