"""`voxhost doctor`: check the install and the machine, and say what to do about each problem."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voxhost.engines import engine_class, engines
from voxhost.errors import VoxhostError
from voxhost.manager.registry import parse_entry
from voxhost.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: "[green]ok[/]", WARN: "[yellow]warn[/]", FAIL: "[red]FAIL[/]"}


@dataclass(frozen=True)
class Check:
    what: str
    status: str
    detail: str
    fix: str = ""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def check_python() -> Check:
    return Check("python", OK, f"{'.'.join(map(str, sys.version_info[:3]))} ({sys.executable})")


def check_engines() -> list[Check]:
    checks = []
    for name, engine in engines().items():
        about = engine.about
        try:
            importlib.import_module(about.library)
            checks.append(Check(f"engine {name}", OK, f"{about.distribution} {_version(about.distribution)}"))
        except Exception as exc:
            status = FAIL if about.required else WARN
            checks.append(Check(f"engine {name}", status, f"not importable: {exc}", about.install))
    return checks


def check_models(settings: Settings) -> list[Check]:
    """Each configured model resolves, and an embedded one has its packages."""
    checks = []
    for entry in settings.models:
        try:
            spec = parse_entry(entry)
        except VoxhostError as exc:
            checks.append(Check(f"model {entry}", FAIL, exc.message, "fix --model / VOXHOST_MODELS"))
            continue
        engine = engine_class(spec.engine)
        if not engine.about.installed:
            checks.append(Check(f"model {spec.id}", FAIL, f"its engine {spec.engine} is not installed",
                                engine.about.install))  # fmt: skip
        elif spec.origin == "hub":
            cached = engine.hub_models(settings.cache_dir).get(spec.source) or any(
                p.exists() for p in engine.hub_cache_paths(spec.source, settings.cache_dir)
            )
            if cached:
                checks.append(Check(f"model {spec.id}", OK, f"{spec.engine}, downloaded"))
            else:
                hint = f"voxhost models pull {spec.source}" + (
                    " (and drop --offline)" if settings.offline else ""
                )
                status = FAIL if settings.offline else WARN
                checks.append(
                    Check(f"model {spec.id}", status, "not downloaded yet (first load fetches it)", hint)
                )
        else:
            checks.append(Check(f"model {spec.id}", OK, f"{spec.engine}, {spec.origin}: {spec.source}"))
    return checks


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(settings: Settings) -> list[Check]:
    targets = [("http", settings.host, settings.port)]
    if settings.wyoming:
        uri = urlparse(settings.wyoming_uri)
        if uri.hostname and uri.port:
            targets.append(("wyoming", uri.hostname, uri.port))
    checks = []
    for name, host, port in targets:
        if _port_free(host, port):
            checks.append(Check(f"port {name}", OK, f"{host}:{port} is free"))
        else:
            checks.append(Check(f"port {name}", FAIL, f"{host}:{port} is in use",
                                "is voxhost already running (`voxhost status`)? Or pick another with "
                                f"--{'port' if name == 'http' else 'wyoming-uri'}"))  # fmt: skip
    return checks


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_machine(settings: Settings) -> list[Check]:
    checks = []
    flags = _cpu_flags()
    cores = os.cpu_count() or 1
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    if not flags:
        checks.append(Check("cpu", WARN, f"{cores} cores; CPU features unknown"))
    elif "avx2" in flags:
        checks.append(Check("cpu", OK, f"{cores} cores; {', '.join(simd)}"))
    else:
        slow = "CTranslate2's int8 kernels are much slower without AVX2: expect slow ASR"
        checks.append(Check("cpu", WARN, f"{cores} cores; no AVX2", slow))
    try:
        import ctranslate2

        gpus = ctranslate2.get_cuda_device_count()
        checks.append(
            Check("cuda", OK, f"{gpus} GPU(s) for CTranslate2" if gpus else "no GPU: CPU inference")
        )
    except Exception as exc:
        checks.append(Check("cuda", WARN, f"could not ask CTranslate2: {exc}"))
    cache = settings.cache_dir
    probe = cache if cache.exists() else next((p for p in cache.parents if p.exists()), Path("/"))
    if os.access(probe, os.W_OK):
        free = shutil.disk_usage(probe).free / 2**30
        status = OK if free > 2 else WARN
        fix = "" if status == OK else "hub models take 0.1-3 GiB each: free some disk"
        checks.append(Check("cache", status, f"{cache} writable, {free:.1f} GiB free", fix))
    else:
        checks.append(Check("cache", FAIL, f"{cache} is not writable", "set --cache-dir / VOXHOST_CACHE_DIR"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_python(), *check_engines(), *check_models(settings), *check_ports(settings),
        *check_machine(settings),
    ]  # fmt: skip


def run_doctor(settings: Settings, console: Console | None = None) -> int:
    """Print the checks; 1 when any failed (warnings alone pass)."""
    console = console or Console()
    checks = run_checks(settings)
    table = Table(show_edge=False, pad_edge=False)
    for column in ("check", "", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(escape(check.what), MARKS[check.status], escape(check.detail), escape(check.fix))
    console.print(table)
    failed = [c for c in checks if c.status == FAIL]
    console.print("[red]problems found[/]" if failed else "[green]ready to serve[/]: voxhost serve")
    return 1 if failed else 0
