"""Run the HTTP server with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator
from types import FrameType
from urllib.parse import urlparse

import uvicorn

from voxhost.api import discovery
from voxhost.api.auth import is_loopback, load_keys
from voxhost.api.connections import bounded_protocol
from voxhost.api.http import create_app
from voxhost.jobs.store import DataDirLocked, JobStore
from voxhost.logs import configure_logging
from voxhost.manager.enrolment import EnrolmentError
from voxhost.manager.process import reap_all
from voxhost.settings import Settings

log = logging.getLogger("voxhost")

# The most the server's exit waits for its worker processes to be reaped (each was stopped or killed).
REAP_SECONDS = 5.0


def check_exposure(settings: Settings) -> None:
    """Refuse or warn about set-ups that open the server to the network without protection."""
    keys = load_keys(settings.api_key, settings.api_key_file)
    if not is_loopback(settings.host) and not keys:
        log.warning(
            "the HTTP API listens on %s, beyond this machine, with no API key: anyone who can reach "
            "the port can use it. Set --api-key (or VOXHOST_API_KEY) or bind 127.0.0.1.",
            settings.host or "every interface",
        )
    if settings.wyoming and settings.zeroconf is not None:
        try:
            discovery.check(settings)
        except discovery.DiscoveryError as exc:
            raise SystemExit(str(exc)) from None
    wyoming_host = urlparse(settings.wyoming_uri).hostname if settings.wyoming else None
    if wyoming_host is not None and not is_loopback(wyoming_host):
        if keys and not settings.wyoming_open:
            raise SystemExit(
                f"Wyoming would listen on {settings.wyoming_uri}, beyond this machine, but the Wyoming "
                "protocol has no authentication and API keys are on: pass --wyoming-open to allow it, "
                "or bind Wyoming to 127.0.0.1 (or --no-wyoming)."
            )
        log.warning(
            "Wyoming listens on %s with no authentication (the protocol has none)", settings.wyoming_uri
        )


def run_server(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    check_exposure(settings)
    try:  # one server per data dir: a second one is refused here, before it listens
        store = JobStore.open(settings.data_dir)
    except DataDirLocked as exc:
        raise SystemExit(str(exc)) from None
    try:  # a bad --speakers recording stops the server here, named
        app = create_app(settings, jobs_store=store)
    except EnrolmentError as exc:
        raise SystemExit(f"voxhost: {exc}") from None
    log.info("voxhost serving %s on http://%s:%d", ", ".join(settings.models), settings.host, settings.port)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # voxhost's own logging set-up (request ids, JSON) applies to uvicorn too
        access_log=False,  # one access line per request comes from voxhost, with its id and model
        # connections bounded (api/connections.py): how many, and how long headers and idle keep-alives take
        http=bounded_protocol(settings.max_connections, settings.header_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        # room for a largest audio message sent as base64 inside a Realtime JSON event
        ws_max_size=max(2**20, settings.max_ws_message_kb * 1024 * 3 // 2),
    )
    _Server(config, app.state.begin_drain, app.state.manager.kill_all).run()


class _Server(uvicorn.Server):
    """uvicorn's server, plus: the first SIGTERM/SIGINT starts the drain (503 for new requests on every
    front-end, in-flight ones finish within the grace period); a second one stops at once. Either way
    the server exits only once every worker process it started has been reaped."""

    def __init__(
        self, config: uvicorn.Config, begin_drain: Callable[[], None], stop_workers: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self._begin_drain = begin_drain
        self._stop_workers = stop_workers

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.warning("second signal: stopping now, without waiting for requests in flight")
            self.force_exit = True
            self._stop_workers()
        else:
            with contextlib.suppress(RuntimeError):  # no running loop yet: nothing to drain
                asyncio.get_running_loop().call_soon_threadsafe(self._begin_drain)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn ends `serve` by raising the signal it caught again, with the default handler: the
        # process dies there and then, with no atexit clean-up. Reap every process started here before
        # that. The drain has stopped the workers the manager knows of (the lifespan's `manager.close()`);
        # a second signal only sends SIGKILL (and skips the lifespan shutdown), so whether their daemon
        # reader threads had reaped them was a race; and multiprocessing's resource tracker, which spawn
        # starts with the first worker, was never reaped at all. What the server leaves unreaped outlives
        # it, as a zombie (or, still running, as an orphan) for whoever inherits it.
        with super().capture_signals():
            try:
                yield
            finally:
                left = reap_all(REAP_SECONDS)
                if left:
                    log.error("worker processes %s were not reaped in %.0fs", left, REAP_SECONDS)
