"""Run the HTTP server with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from voxhost.api.http import create_app
from voxhost.logs import configure_logging
from voxhost.settings import Settings

log = logging.getLogger("voxhost")


def run_server(settings: Settings) -> None:
    configure_logging(settings.log_level)
    app = create_app(settings)
    log.info("voxhost serving %s on http://%s:%d", ", ".join(settings.models), settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
