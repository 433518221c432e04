"""`voxhost models`: what can be served here, what is installed, and what this configuration serves."""

from __future__ import annotations

import json
import sys
from typing import TypedDict

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voxhost.engines import engines
from voxhost.errors import VoxhostError
from voxhost.manager.registry import TASK_ALIASES, ModelRegistry, ModelSpec, parse_entry
from voxhost.settings import Settings


class CatalogRow(TypedDict):
    """One model name. Plain data: `voxhost models --json` prints a list of these."""

    name: str
    engine: str
    task: str
    source: str  # embedded, local or hub ("?" for a configured entry that resolves to nothing)
    installed: str  # yes / no (embedded, local), cached / download (hub), unknown
    served: list[str]  # ids and aliases this configuration serves it under; empty when not served
    default: bool  # the default model of its task
    location: str  # local directory, hub name, or the packages an embedded model ships in
    note: str  # how to install it, or why a configured entry cannot be served


def _row(name: str, engine: str, task: str, source: str, installed: str, location: str) -> CatalogRow:
    return CatalogRow(
        name=name, engine=engine, task=task, source=source, installed=installed, served=[], default=False,
        location=location, note="",
    )  # fmt: skip


def catalog_rows(settings: Settings) -> list[CatalogRow]:
    """One row per model name: embedded models, then other configured models, then hub names.

    A name that is both embedded and a hub name gets one row, for the copy `--model NAME` would load
    (the embedded one when it is installed). Raises ModelNotFound for an unknown `default_model` and
    ValueError for an id configured twice, as `voxhost serve` would.
    """
    specs: list[ModelSpec] = []
    broken: list[CatalogRow] = []
    for entry in settings.models:
        try:
            specs.append(parse_entry(entry))
        except VoxhostError as exc:
            row = _row(entry, "?", "?", "?", "no", entry)
            row["note"] = exc.message
            broken.append(row)
    registry = ModelRegistry(specs, settings.default_model, settings.hd_tts_model, settings.aliases)

    rows: dict[tuple[str, str], CatalogRow] = {}  # by (source, name)
    for engine in engines().values():
        hub = engine.hub_models(settings.cache_dir)
        for name, embedded in engine.embedded_models().items():
            if not embedded.installed and name in hub:
                continue  # `--model NAME` downloads it; the hub row below says how to embed it
            row = _row(name, engine.name, engine.task, "embedded", "yes" if embedded.installed else "no",
                       " ".join(embedded.packages))  # fmt: skip
            if not embedded.installed:
                row["note"] = f"pip install {' '.join(embedded.packages)}"
            rows["embedded", name] = row
        for name, cached in hub.items():
            embedded_copy = engine.embedded_models().get(name)
            if embedded_copy is not None and embedded_copy.installed:
                continue
            row = _row(name, engine.name, engine.task, "hub", "cached" if cached else "download", name)
            if embedded_copy is not None:
                row["note"] = f"or embedded: pip install {' '.join(embedded_copy.packages)}"
            rows["hub", name] = row

    configured: dict[tuple[str, str], CatalogRow] = {}
    for spec in registry:
        key = (spec.origin, spec.source)
        found = rows.get(key) or configured.get(key)
        if found is None:  # a local directory, or a hub name the engine does not list
            installed = "yes" if spec.origin == "local" else "unknown"
            name = spec.id if spec.origin == "local" else spec.source
            found = configured[key] = _row(name, spec.engine, spec.task, spec.origin, installed, spec.source)
        row = found
        row["served"] += [spec.id, *registry.aliases_of(spec.id)]
        row["default"] = row["default"] or registry.default(spec.task) == spec.id
    embedded_rows = [row for key, row in rows.items() if key[0] == "embedded"]
    hub_rows = [row for key, row in rows.items() if key[0] == "hub"]
    return [*embedded_rows, *configured.values(), *broken, *hub_rows]


def _table(rows: list[CatalogRow]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("name", style="bold", overflow="fold")
    table.add_column("engine", overflow="fold")
    table.add_column("task", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("installed", no_wrap=True)
    table.add_column("served as", min_width=9)
    openai_names = {name for names in TASK_ALIASES.values() for name in names}
    for row in rows:
        # OpenAI's model names (whisper-1, gpt-4o-transcribe, tts-1...) in one word: `--json` lists them
        own = [name for name in row["served"] if name not in openai_names]
        served = ", ".join(own + (["OpenAI's names"] if len(own) < len(row["served"]) else []))
        if row["default"] and len(row["served"]) == 1:  # with OpenAI's names it is the default anyway
            served += " (default)"
        cells = (row["name"], row["engine"], row["task"], row["source"], row["installed"], served)
        table.add_row(*(escape(cell) for cell in cells))
    return table


def print_catalog(settings: Settings, as_json: bool = False) -> int:
    """Print the catalog (a table, or JSON); returns the exit status: 1 if a configured model is unusable."""
    try:
        rows = catalog_rows(settings)
    except (VoxhostError, ValueError) as exc:
        message = exc.message if isinstance(exc, VoxhostError) else str(exc)
        Console(stderr=True).print(f"[red]error:[/] {escape(message)}", highlight=False)
        return 2
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        console = Console(highlight=False)
        console.print(_table(rows))
        for row in rows:
            if row["note"]:
                style = "red" if row["source"] == "?" else "dim"
                console.print(f"[{style}]{escape(row['name'])}: {escape(row['note'])}[/]")
            elif row["source"] == "local":
                console.print(f"[dim]{escape(row['name'])}: {escape(row['location'])}[/]")
    return 1 if any(row["source"] == "?" for row in rows) else 0
