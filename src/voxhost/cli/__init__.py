"""The `voxhost` command line: the typer app (`commands.py`), its flags generated from the settings
(`options.py`), and one module per command that does more than call the server (`transcribe.py`,
`speak.py`, `live.py`, `catalog.py`, `store.py`, `doctor.py`, `status.py`; `progress.py` is their
progress display)."""

from voxhost.cli.commands import app, main

__all__ = ["app", "main"]
