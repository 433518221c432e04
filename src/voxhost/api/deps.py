"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request, WebSocket

from voxhost.manager import ModelManager
from voxhost.settings import Settings


def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_manager_ws(websocket: WebSocket) -> ModelManager:
    manager: ModelManager = websocket.app.state.manager
    return manager


def get_settings_ws(websocket: WebSocket) -> Settings:
    settings: Settings = websocket.app.state.settings
    return settings
