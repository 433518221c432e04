"""voxhost on Ray Serve: the engines as Serve deployments, behind the same OpenAI HTTP API.

- One deployment per engine kind (`asr`, `tts`). Each replica keeps up to `--ray-models-per-replica`
  models loaded (`serve.multiplexed`, least recently used unloaded first) and runs them with the same
  engine classes and the same request entry point (`engine_call`) as a local worker process. The
  diarization model (speaker labels) runs in the ASR deployment's replicas, loaded on first use.
- `--replicas` replicas each, or autoscaling from there up to `--ray-max-replicas`; a replica takes
  `max_ongoing_requests` = the worker's `parallel` requests at once, and Serve queues
  `max_queued_requests` = `--max-queue` more per caller before it refuses.
- The ingress deployment serves voxhost's FastAPI app. Its `ModelManager` is the one of the local server
  (aliases, priority lanes, 429s, long audio in pieces, retries, metrics), with `ServeWorker` in place
  of worker processes: a request goes to the engine deployment with its model id as the multiplexed id.
- Every front-end of the local server runs on that manager. Serve's HTTP proxy forwards WebSockets to the
  ingress (the live stream and OpenAI Realtime), and the ingress replica runs the app's ASGI lifespan,
  which starts the Wyoming listener there (see `Gateway.app`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import os
import time
from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from voxhost.engines import EngineConfig, engine_class
from voxhost.engines.base import Engine, ModelInfo, TaskKind
from voxhost.errors import ModelLoadError, QueueFull, WorkerCrashed, WorkerTimeout, from_wire, to_wire
from voxhost.manager.layout import Layout, engine_config, plan_layout
from voxhost.manager.priority import in_lower_thread
from voxhost.manager.protocol import Kind
from voxhost.manager.registry import ModelRegistry, ModelSpec
from voxhost.manager.worker import engine_call
from voxhost.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("voxhost.ray")
APP_NAME = "voxhost"
_END = object()


DIARIZE: TaskKind = "diarize"


def _deployment(task: TaskKind) -> TaskKind:
    """The deployment that runs a kind of model: the diarization model runs in the ASR deployment's
    replicas (`EngineReplica._engine`), every other kind in its own deployment."""
    return "asr" if task == DIARIZE else task


def _parallel(settings: Settings, task: TaskKind) -> int:
    """Requests one replica runs at once: what a local worker of the task's first model would run."""
    specs = [s for s in ModelRegistry.from_settings(settings) if s.task == task]
    return min(plan_layout(settings, s).parallel for s in specs)


def deployment_options(settings: Settings, task: TaskKind) -> dict[str, Any]:
    """Serve options of one engine deployment, from voxhost's settings."""
    parallel = _parallel(settings, task)
    options: dict[str, Any] = {
        "name": task,
        "max_ongoing_requests": parallel,
        "max_queued_requests": settings.max_queue if settings.max_queue > 0 else -1,
        "ray_actor_options": {"num_cpus": 1},
    }
    if settings.ray_max_replicas > settings.replicas:
        options["autoscaling_config"] = {
            "min_replicas": settings.replicas,
            "max_replicas": settings.ray_max_replicas,
            "target_ongoing_requests": parallel,
        }
    else:
        options["num_replicas"] = settings.replicas
    return options


class EngineReplica:
    """One replica of an engine deployment: loads the models it is asked for (up to the multiplexing
    limit) and runs requests on them. Answers are (kind, value) pairs, errors as voxhost's wire form,
    exactly as a worker process sends them."""

    def __init__(self, settings: Settings, task: TaskKind) -> None:
        self.settings = settings
        self.task = task
        self.registry = ModelRegistry.from_settings(settings)
        parallel = _parallel(settings, task)
        self.config = dataclasses.replace(engine_config(settings), parallel=parallel)
        self._diarizer: asyncio.Task[Engine] | None = None  # the ASR deployment's (see `_engine`)

    async def _engine(self) -> tuple[ModelSpec, Engine]:
        """The engine of the request's model. The ASR deployment's replicas also run the diarization
        model (every diarized request is a transcription too, and diarizing costs about a fiftieth of
        decoding): loaded once on first use beside the multiplexed models, never counted against
        `--ray-models-per-replica`, so that a diarized request never unloads the speech model."""
        from ray import serve

        model_id = serve.get_multiplexed_model_id()
        if self.task == "asr" and self.registry.get(model_id).task == DIARIZE:
            if self._diarizer is None or (self._diarizer.done() and self._diarizer.exception() is not None):
                self._diarizer = asyncio.ensure_future(self.load_engine(model_id, DIARIZE))
            return self.registry.get(model_id, DIARIZE), await asyncio.shield(self._diarizer)
        return self.registry.get(model_id, self.task), await self.model(model_id)  # type: ignore[attr-defined]

    async def load_engine(self, model_id: str, task: TaskKind | None = None) -> Engine:
        spec = self.registry.get(model_id, task or self.task)
        log.info("loading %s in Ray Serve replica (pid %d)", spec.id, os.getpid())
        # at the engine's lower priority (`Engine.nice`): the threads its library starts keep it
        nice = engine_class(spec.engine).nice(self.config)
        return await in_lower_thread(nice, lambda: spec.load(self.config))

    async def describe(self) -> tuple[str, Any]:
        try:
            _, engine = await self._engine()
            return Kind.READY, (engine.describe().to_wire(), os.getpid())
        except BaseException as exc:
            return Kind.LOAD_FAILED, to_wire(exc)

    async def call(self, method: str, kwargs: dict[str, Any]) -> tuple[str, Any]:
        try:
            spec, engine = await self._engine()
            started = time.monotonic()
            # the diarizer at its lower priority (`Engine.nice`), in a thread of its own
            work = functools.partial(engine_call, engine, spec, method, kwargs)
            result = await in_lower_thread(type(engine).nice(self.config), work)
            return Kind.RESULT, (result, (started, time.monotonic()))
        except BaseException as exc:
            return Kind.ERROR, to_wire(exc)

    async def stream(self, method: str, kwargs: dict[str, Any]) -> AsyncGenerator[tuple[str, Any], None]:
        items: Iterator[Any] | None = None
        try:
            spec, engine = await self._engine()
            items = iter(await asyncio.to_thread(engine_call, engine, spec, method, kwargs))
            source = items
            while (item := await asyncio.to_thread(lambda: next(source, _END))) is not _END:
                yield Kind.CHUNK, item
        except Exception as exc:
            yield Kind.ERROR, to_wire(exc)
        finally:  # the caller went away (Serve cancels the generator) or it is done
            close = getattr(items, "close", None)
            if close is not None:
                close()


class ServeWorker:
    """A model on an engine deployment, as the manager sees a worker (`voxhost.manager.process.Worker`)."""

    def __init__(self, handle: Any, spec: ModelSpec) -> None:
        self.spec = spec
        self._handle: Any = handle.options(multiplexed_model_id=spec.id)
        self.info: ModelInfo | None = None
        self.timings: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self._stopped = False
        self._pid: int | None = None  # of the replica that answered the load, for /health

    @property
    def pid(self) -> int | None:
        return None  # the model lives in a Ray actor, possibly on another machine

    @property
    def alive(self) -> bool:
        return not self._stopped

    async def start(self, timeout: float) -> ModelInfo:
        kind, value = await self._remote(timeout, self._handle.describe.remote())
        if kind != Kind.READY:
            raise ModelLoadError(f"loading {self.spec.id!r} failed: {from_wire(value).message}")
        info, self._pid = value
        self.info = ModelInfo.from_wire(info)
        return self.info

    async def stop(self, grace: float = 5.0) -> None:
        # Replicas unload models by themselves (least recently used first); Serve owns their processes.
        self._stopped = True

    def kill(self) -> None:
        self._stopped = True

    async def call(self, method: str, timeout: float, **kwargs: Any) -> Any:
        kind, value = await self._remote(timeout, self._handle.call.remote(method, kwargs))
        if kind == Kind.ERROR:
            raise from_wire(value)
        result, timing = value
        self.timings.append(timing)
        return result

    async def stream(self, method: str, timeout: float, **kwargs: Any) -> AsyncGenerator[Any, None]:
        items: Any = self._handle.options(stream=True).stream.remote(method, kwargs)
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        kind, value = await items.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise self._stuck(timeout) from None
                except Exception as exc:
                    self._raise_ray_error(exc)
                if kind == Kind.ERROR:
                    raise from_wire(value)
                yield value
        finally:
            items.cancel()

    async def ping(self, timeout: float = 2.0) -> dict[str, Any]:
        return {"pid": self._pid, "deployment": self.spec.task, "ray": True}

    async def _remote(self, timeout: float, response: Any) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await response
        except TimeoutError:
            response.cancel()
            raise self._stuck(timeout) from None
        except Exception as exc:
            self._raise_ray_error(exc)

    def _raise_ray_error(self, exc: Exception) -> NoReturn:
        """Ray's failures as voxhost's: a full Serve queue is a 429, a dead or unreachable replica a 503
        (retried once by the manager, and Serve routes the retry to a healthy replica)."""
        from ray.exceptions import RayError
        from ray.serve.exceptions import BackPressureError, RayServeException

        if isinstance(exc, BackPressureError):
            full = f"the {self.spec.task!r} deployment's queue is full; retry shortly"
            raise QueueFull(full, retry_after=1) from exc
        if isinstance(exc, (RayError, RayServeException)):
            raise self._crashed(exc) from exc
        raise exc

    def _stuck(self, timeout: float) -> WorkerTimeout:
        return WorkerTimeout(f"the {self.spec.id!r} deployment did not answer within {timeout:g}s")

    def _crashed(self, exc: Exception) -> WorkerCrashed:
        return WorkerCrashed(f"the Ray replica serving {self.spec.id!r} failed: {type(exc).__name__}: {exc}")


class Gateway:
    """The ingress replica's state: handles to the engine deployments, and the app built on them."""

    def __init__(self, settings: Settings, handles: dict[str, Any]) -> None:
        self.settings = settings
        self.handles = handles

    def worker(self, spec: ModelSpec, config: EngineConfig, parallel: int, log_level: str) -> ServeWorker:
        return ServeWorker(self.handles[_deployment(spec.task)], spec)

    def layout(self, settings: Settings, spec: ModelSpec) -> Layout:
        """One "worker" per model stands for the whole engine deployment: as many requests at once as
        all its replicas can run (at the most replicas autoscaling allows). Beyond that the ingress
        queues by priority and answers 429 as a local server does; a request admitted while replicas
        are still scaling up waits in Serve's queue, which is what makes Serve add replicas."""
        replicas = max(settings.replicas, settings.ray_max_replicas)
        return Layout(1, _parallel(settings, _deployment(spec.task)) * replicas, settings.threads)

    def app(self) -> FastAPI:
        """voxhost's app, every front-end included. Serve runs its lifespan in the ingress replica (at
        replica start, and the shutdown when Serve stops the replica), so the Wyoming listener binds
        `--wyoming-uri` on the machine of the ingress replica: that is the node where `serve --ray` runs
        when Ray is local; on a multi-node cluster, whichever node Serve places the ingress on (the Ray
        dashboard's Serve page shows which; it is not pinned), unlike HTTP, which Serve's proxies serve
        on every node. The ingress has one replica: a second one on the same machine could not bind the
        port, and one on another machine would be a second Wyoming server at another address."""
        from voxhost.api.http import create_app
        from voxhost.manager import ModelManager

        # The engine deployments load the models: nothing to preload on the ingress.
        settings = self.settings.model_copy(update={"preload": False})
        return create_app(settings, ModelManager(settings, workers=self.worker, layouts=self.layout))


def build(settings: Settings) -> Any:
    """The Serve application: the engine deployments this configuration needs, and the ingress."""
    from ray import serve

    tasks = sorted({_deployment(spec.task) for spec in ModelRegistry.from_settings(settings)})

    def engine_deployment(task: TaskKind) -> Any:
        class Engines(EngineReplica):
            async def model(self, model_id: str) -> Engine:
                return await self.load_engine(model_id)

        limit = settings.ray_models_per_replica
        Engines.model = serve.multiplexed(max_num_models_per_replica=limit)(Engines.model)  # type: ignore[method-assign]
        deployment: Any = serve.deployment(**deployment_options(settings, task))(Engines)
        return deployment.bind(settings, task)

    class Ingress:
        def __init__(self, **handles: Any) -> None:
            self.gateway = Gateway(settings, handles)

        def __serve_build_asgi_app__(self) -> FastAPI:
            return self.gateway.app()

    # One replica: it holds the Wyoming listener, and the manager's queues and priority lanes are its own.
    # When Serve stops it, requests and WebSocket sessions in flight, then the app's lifespan shutdown
    # (Wyoming's requests, the manager), get --shutdown-grace in all, as on a local server.
    ingress: Any = serve.deployment(
        name="ingress",
        num_replicas=1,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=1000,
        graceful_shutdown_timeout_s=settings.shutdown_grace,
    )(serve.ingress()(Ingress))
    return ingress.bind(**{task: engine_deployment(task) for task in tasks})


# A local Ray's ports (its GCS, raylet, dashboard agent and job API, object manager) run whatever code
# reaches them, and on Linux Ray binds them on every interface under the machine's address, whatever
# `_node_ip_address` says (it "resolves" loopback away). One started here is kept on loopback: Ray's
# single-machine mode (its default on macOS and Windows) takes 127.0.0.1 as the node's address for it
# and every process it spawns, and the dashboard is bound there too. A cluster joined with --ray-address
# is its operator's to protect (SECURITY.md).
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


def start_ray(address: str | None, **options: Any) -> None:
    """Join the cluster at `address`, or start a local Ray (with `options`, on loopback, sending no usage
    statistics unless the user opted in with `RAY_USAGE_STATS_ENABLED=1`) when there is none."""
    import ray

    # Serve's HTTP proxy must answer its readiness check in 5 s by default; on a small, busy machine its
    # first start takes longer, and Serve then kills and restarts it in a loop. Local Ray only.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    if address is None:
        from ray._private import ray_constants

        os.environ[SINGLE_MACHINE] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False  # read when the node's address is chosen
        options = {"_node_ip_address": LOOPBACK, "dashboard_host": LOOPBACK, **options}
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **options)


def run(settings: Settings, *, blocking: bool = True) -> None:
    """Deploy on the Ray cluster at `--ray-address` (or a local one) and serve HTTP at --host/--port
    (and Wyoming at --wyoming-uri, from the ingress replica)."""
    from ray import serve

    from voxhost.logs import configure_logging
    from voxhost.server import check_exposure

    configure_logging(settings.log_level, settings.log_format)
    check_exposure(settings)
    start_ray(settings.ray_address)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build(settings), name=APP_NAME, route_prefix="/", blocking=False)
    log.info("voxhost on Ray Serve at http://%s:%d", settings.host, settings.port)
    if settings.wyoming:
        log.info("Wyoming at %s on the ingress replica's node", settings.wyoming_uri)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            serve.delete(APP_NAME)
