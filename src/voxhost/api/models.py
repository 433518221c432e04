"""`/v1/models` (OpenAI's model list, with voxhost's state) and model load/unload."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_responses
from voxhost.manager import ModelManager, ModelStatus

router = APIRouter(tags=["models"])
_CREATED = int(time.time())


def model_object(status: ModelStatus, *, alias_of: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": status.id if alias_of is None else alias_of,
        "object": "model",
        "created": _CREATED,
        "owned_by": "voxhost",
        "task": status.task,
        "engine": status.engine,
        "description": status.description,
        "state": status.state,
        "loaded": status.state == "ready",
        "aliases": status.aliases,
    }
    if alias_of is not None:
        body["alias_of"] = status.id
    if status.info is not None and status.info.languages:
        body["languages"] = list(status.info.languages)
    return body


@router.get("/v1/models", summary="List the served models (and their aliases)", responses=error_responses())
async def list_models(manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    data = []
    for status in manager.status():
        data.append(model_object(status))
        data.extend(model_object(status, alias_of=alias) for alias in status.aliases)
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}", summary="One model", responses=error_responses(404))
async def get_model(model_id: str, manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    (status,) = manager.status(model_id)
    return model_object(status, alias_of=model_id if model_id != status.id else None)


@router.post(
    "/v1/models/{model_id:path}/load",
    summary="Load a model now (no-op when loaded)",
    responses=error_responses(404, 504),
)
async def load_model(model_id: str, manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    return model_object(await manager.load(model_id))


@router.post(
    "/v1/models/{model_id:path}/unload",
    summary="Stop a model's worker, freeing its memory",
    responses=error_responses(404),
)
async def unload_model(model_id: str, manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    await manager.unload(model_id)
    (status,) = manager.status(model_id)
    return model_object(status)
