"""The playground page at `/`: plain HTML/JS/CSS shipped inside the package (`voxhost/web`), no CDN.
The page and its files need no API key (the page asks for one and sends it with its API calls)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(str(files("voxhost") / "web"))
PREFIX = "/playground"

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def playground() -> HTMLResponse:
    return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"))


def static_files() -> StaticFiles:
    return StaticFiles(directory=WEB_DIR)
