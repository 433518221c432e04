"""The worker subprocess: load one model once, then serve requests until told to stop.

Runs in a spawned process (never forked, so no state of the server leaks in). The main thread only reads
the pipe: pings are answered at once, even while inferences run, and when the server goes away the
pipe closes and the worker exits at once. Inferences run on a small thread pool. The messages and their
rules are in `voxhost.manager.protocol`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from voxhost.engines import EngineConfig, engine_class
from voxhost.engines.base import Engine
from voxhost.errors import BadRequest, to_wire
from voxhost.manager import protocol
from voxhost.manager.priority import lower_process
from voxhost.manager.protocol import (
    Call,
    Cancel,
    Chunk,
    Error,
    LoadFailed,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
)
from voxhost.manager.registry import ModelSpec


def engine_call(engine: Engine, spec: ModelSpec, method: str, kwargs: dict[str, Any]) -> Any:
    """Run one request's engine method; only the methods its engine kind declares (`Engine.methods`)
    are reachable through the pipe."""
    if method not in type(engine).methods:
        raise BadRequest(f"{spec.id} does not support {method!r}")
    return getattr(engine, method)(**kwargs)


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class _Worker:
    def __init__(self, conn: Connection, spec: ModelSpec, engine: Engine, parallel: int) -> None:
        self.conn = conn
        self.spec = spec
        self.engine = engine
        self.send_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="infer")
        self.requests = 0
        self.loads = 1
        self.active: set[int] = set()
        self.cancelled: set[int] = set()  # streaming requests whose caller went away

    def send(self, message: protocol.Reply) -> None:
        wire = protocol.encode(message)
        with self.send_lock:
            self.conn.send(wire)

    def stats(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "loads": self.loads, "requests": self.requests, "rss_bytes": _rss_bytes()}

    def run_call(self, request_id: int, method: str, kwargs: dict[str, Any]) -> None:
        self.active.add(request_id)
        started = time.monotonic()  # the system-wide clock, so the server can order events across workers
        try:
            result = engine_call(self.engine, self.spec, method, kwargs)
            if isinstance(result, Iterator):
                # A streaming method: each item goes back as soon as it is ready; a cancel from the
                # server stops the generator between items, so an abandoned request frees the worker.
                for item in result:
                    if request_id in self.cancelled:
                        if isinstance(result, Generator):
                            result.close()
                        break
                    self.send(Chunk(request_id, item))
                result = None
            self.requests += 1
            self.send(Result(request_id, result, (started, time.monotonic())))
        except BaseException as exc:  # every failure goes back to the caller, none kills the worker
            logging.getLogger("voxhost.worker").debug("request %s failed", request_id, exc_info=True)
            self.send(Error(request_id, to_wire(exc)))
        finally:
            self.active.discard(request_id)
            self.cancelled.discard(request_id)

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError) as exc:  # the server is gone (or its end of the pipe closed)
                logging.getLogger("voxhost.worker").info("pipe to the server closed (%r); exiting", exc)
                return
            try:
                request = protocol.decode_request(message)
            except protocol.ProtocolError:
                logging.getLogger("voxhost.worker").warning("ignoring a message that is not a request")
                continue
            match request:
                case Call(request_id, method, kwargs):
                    self.pool.submit(self.run_call, request_id, method, kwargs)
                case Cancel(request_id):
                    if request_id in self.active:
                        self.cancelled.add(request_id)
                case Ping(request_id):
                    self.send(Pong(request_id, self.stats()))
                case Shutdown():
                    return


def _progress_bars_share_a_thread_lock() -> None:
    """tqdm's bars (faster-whisper makes one, disabled, for every decode) share a lock between processes
    by default: a named semaphore, which a worker ending with `os._exit` leaves to the server's resource
    tracker, reported at the server's exit as "leaked semaphore objects" (one per worker that decoded).
    A worker's bars are only ever its own threads': a thread lock is all they need."""
    try:
        from tqdm import tqdm
    except ImportError:  # no library of this worker's uses it
        return
    tqdm.set_lock(threading.RLock())


def worker_main(
    conn: Connection, spec: ModelSpec, config: EngineConfig, parallel: int, log_level: str
) -> None:
    """Entry point of the spawned process."""
    # Ctrl+C reaches the whole process group; the server decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level.upper(), format=f"%(asctime)s %(levelname)s worker[{spec.id}] %(message)s"
    )
    log = logging.getLogger("voxhost.worker")
    if log_level.lower() != "debug":
        # one line per request is noise: faster-whisper's per-file info, phonemizer's per-text warning
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
    _progress_bars_share_a_thread_lock()
    started = time.perf_counter()
    try:
        lower_process(engine_class(spec.engine).nice(config))  # before the model's library starts threads
        engine = spec.load(config)
        info = engine.describe()
    except BaseException as exc:
        log.error("loading %s failed: %s", spec.id, exc)
        try:
            conn.send(protocol.encode(LoadFailed(to_wire(exc))))
        finally:
            os._exit(1)
    load_seconds = time.perf_counter() - started
    log.info("loaded %s in %.2fs (pid %d)", spec.id, load_seconds, os.getpid())
    worker = _Worker(conn, spec, engine, parallel)
    worker.send(Ready(info.to_wire()))
    worker.serve()
    # Skip interpreter teardown: model libraries can take long (or crash) freeing their state, and the
    # whole point of a worker process is that ending it frees everything.
    os._exit(0)
