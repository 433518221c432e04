"""Where jobs live: one SQLite database (WAL mode, every commit synced) and one folder of files per job
under `--data-dir`/jobs.

A crash at any moment leaves a consistent state: a job's audio is written (temporary file, fsync,
rename, fsync of the folder) before its row is committed, so a row always has its audio; a folder
without a row (a crash between the two) is removed at the next start. Every completed engine call of a
job is a row of its own (`calls`), committed as it completes: a restarted job finds them there and
runs only the calls after them. One server per data dir: `JobStore.open` takes an exclusive lock on a
file in it and refuses a second server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "running", "completed", "failed", "cancelled")
FINISHED: tuple[Status, ...] = ("completed", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    response_format TEXT NOT NULL,
    filename TEXT NOT NULL,
    params TEXT NOT NULL,
    duration REAL NOT NULL,
    seconds_done REAL NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '',
    error TEXT,
    webhook_url TEXT,
    webhook TEXT,
    idempotency_key TEXT UNIQUE,
    runs INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs (seq);
CREATE TABLE IF NOT EXISTS calls (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    signature TEXT NOT NULL,
    run INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
);
"""

AUDIO = "audio"
RESULT = "result.json"
SPEAKERS = "speakers.json"  # a diarized job's speaker turns, written once they are known


class DataDirLocked(RuntimeError):
    """Another server holds this data dir."""


@dataclass(slots=True)
class Job:
    """A job's row."""

    id: str
    seq: int
    created_at: float
    status: Status
    model: str
    task: str
    response_format: str
    filename: str
    params: dict[str, Any]
    duration: float
    started_at: float | None = None
    finished_at: float | None = None
    seconds_done: float = 0.0
    text: str = ""
    error: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook: dict[str, Any] | None = None
    idempotency_key: str | None = None
    runs: int = 0
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


_JSON_COLUMNS = ("params", "error", "webhook")


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    for column in _JSON_COLUMNS:
        if values[column] is not None:
            values[column] = json.loads(values[column])
    return Job(**values)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path` whole or not at all, and on disk before this returns."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _sync_dir(path.parent)


def _sync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class JobStore:
    """The database and files of one data dir. Thread-safe (one connection behind a lock): the runner
    calls it from the event loop for small rows and from threads for files."""

    def __init__(self, root: Path, lock_file: Any) -> None:
        self.root = root
        self.jobs_dir = root / "jobs"
        self._lock_file = lock_file
        self._lock = threading.Lock()
        self._db = sqlite3.connect(root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk once it returns
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._remove_orphans()

    @classmethod
    def open(cls, data_dir: Path) -> JobStore:
        """The store of `data_dir`, created if new; DataDirLocked if another server holds it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "jobs").mkdir(exist_ok=True)
        lock_file = open(data_dir / "server.lock", "a+")  # noqa: SIM115 (held open while the store lives)
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise DataDirLocked(
                f"another voxhost server uses the data dir {data_dir} (it holds server.lock); "
                "stop it, or give this one its own --data-dir"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        return cls(data_dir, lock_file)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()  # releases the lock

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _remove_orphans(self) -> None:
        """Folders of jobs whose row was never committed (a crash between the two), or deleted."""
        known = {row[0] for row in self._db.execute("SELECT id FROM jobs")}
        for folder in self.jobs_dir.iterdir():
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)

    # --- jobs -------------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def create(self, job: Job, audio: bytes) -> Job:
        """The job's audio written, then its row committed. An `idempotency_key` already used returns
        the job that has it (and writes nothing)."""
        if job.idempotency_key is not None:
            existing = self.by_key(job.idempotency_key)
            if existing is not None:
                return existing
        folder = self.folder(job.id)
        folder.mkdir()
        write_atomically(folder / AUDIO, audio)
        job.bytes = len(audio)
        try:
            with self._transaction() as db:
                job.seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
                db.execute(
                    "INSERT INTO jobs (id, seq, created_at, status, model, task, response_format, filename,"
                    " params, duration, webhook_url, idempotency_key, bytes)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.id, job.seq, job.created_at, job.status, job.model, job.task, job.response_format,
                     job.filename, json.dumps(job.params), job.duration, job.webhook_url,
                     job.idempotency_key, job.bytes),
                )  # fmt: skip
        except sqlite3.IntegrityError:  # the same key submitted twice at once: the other one won
            shutil.rmtree(folder, ignore_errors=True)
            existing = self.by_key(job.idempotency_key or "")
            if existing is None:
                raise
            return existing
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def by_key(self, key: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else _job(row)

    def page(
        self, *, limit: int = 20, after: str | None = None, status: str | None = None
    ) -> tuple[list[Job], bool]:
        """Newest first; `after`: the jobs older than that one. Returns the page and whether more follow."""
        query, args = "SELECT * FROM jobs WHERE 1=1", list[Any]()
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        if after is not None:
            query += " AND seq < COALESCE((SELECT seq FROM jobs WHERE id = ?), -1)"
            args.append(after)
        query += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_job(row) for row in rows[:limit]], len(rows) > limit

    def with_status(self, *statuses: Status) -> list[Job]:
        """Oldest first."""
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY seq", statuses
            ).fetchall()
        return [_job(row) for row in rows]

    def count(self, *statuses: Status) -> int:
        marks = ",".join("?" * len(statuses))
        with self._lock:
            query = f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})"
            row = self._db.execute(query, statuses).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | {row[0]: row[1] for row in rows}

    def disk_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM jobs").fetchone()[0])

    def update(self, job_id: str, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        args = [json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in values.items()]
        with self._transaction() as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*args, job_id))

    def finish(self, job_id: str, status: Status, *, result: bytes | None = None, **values: Any) -> None:
        """The job ended: its result written (atomically) first, then its row says so."""
        if result is not None:
            write_atomically(self.folder(job_id) / RESULT, result)
            values["bytes"] = self._audio_bytes(job_id) + len(result)
        self.update(job_id, status=status, finished_at=time.time(), **values)

    def _audio_bytes(self, job_id: str) -> int:
        with contextlib.suppress(OSError):
            return (self.folder(job_id) / AUDIO).stat().st_size
        return 0

    def audio(self, job_id: str) -> bytes:
        return (self.folder(job_id) / AUDIO).read_bytes()

    def result(self, job_id: str) -> bytes:
        return (self.folder(job_id) / RESULT).read_bytes()

    def save_speakers(self, job_id: str, turns: bytes) -> None:
        """A diarized job's speaker turns, kept (atomically) so that a resumed job does not redo them."""
        write_atomically(self.folder(job_id) / SPEAKERS, turns)

    def speakers(self, job_id: str) -> bytes | None:
        with contextlib.suppress(FileNotFoundError):
            return (self.folder(job_id) / SPEAKERS).read_bytes()
        return None

    def delete(self, job_id: str) -> None:
        """Row first (and its calls), then files: a crash between leaves an orphan folder (removed at
        the next start)."""
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def finished_before(self, moment: float) -> list[str]:
        marks = ",".join("?" * len(FINISHED))
        with self._lock:
            rows = self._db.execute(
                f"SELECT id FROM jobs WHERE status IN ({marks}) AND finished_at < ?", (*FINISHED, moment)
            ).fetchall()
        return [row[0] for row in rows]

    # --- the completed calls of a job -------------------------------------------------------------
    def calls(self, job_id: str) -> dict[int, tuple[str, int, str]]:
        """Index -> (signature, run that made it, result as JSON)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, signature, run, result FROM calls WHERE job_id = ?", (job_id,)
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def add_call(self, job_id: str, index: int, signature: str, run: int, result: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO calls (job_id, idx, signature, run, result) VALUES (?, ?, ?, ?, ?)",
                (job_id, index, signature, run, result),
            )

    def drop_calls(self, job_id: str, from_index: int) -> None:
        """Calls from `from_index` on no longer match the plan (a different model or settings)."""
        with self._transaction() as db:
            db.execute("DELETE FROM calls WHERE job_id = ? AND idx >= ?", (job_id, from_index))


def new_id() -> str:
    return "job_" + secrets.token_hex(12)
