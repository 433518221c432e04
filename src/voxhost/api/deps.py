"""FastAPI dependencies shared by the routers.

They take the `HTTPConnection` both a `Request` and a `WebSocket` are, so the same function serves HTTP
routes (`Depends(get_manager)`) and WebSocket handlers (called with their socket).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from voxhost.manager import ModelManager
from voxhost.settings import Settings


def get_manager(connection: HTTPConnection) -> ModelManager:
    manager: ModelManager = connection.app.state.manager
    return manager


def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings
