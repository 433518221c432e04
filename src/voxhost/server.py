"""Run the HTTP server with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from voxhost.api.http import create_app
from voxhost.logs import configure_logging
from voxhost.settings import Settings

log = logging.getLogger("voxhost")


def run_server(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    log.info("voxhost serving %s on http://%s:%d", ", ".join(settings.models), settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # voxhost's own logging set-up (request ids, JSON) applies to uvicorn too
        access_log=False,  # one access line per request comes from voxhost, with its id and model
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
