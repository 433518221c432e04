"""No word lost at the end of a window: every stretch of speech comes back covered by words.

Whisper sometimes ends a window early (an end-of-text token before the window's last speech); on which
window depends on the CPU's float arithmetic. The engine checks what it decoded against the speech and
decodes what no word reached again, on its own. Shown three ways: the arithmetic; a real decode made to
stop early (the batched decoder held to a few tokens, a sequential decode that loses its last sentence),
with the guarantee switched off first (the words are gone: the test can fail) and then on (they are
back); and recordings cut at many lengths, each ending with a known sentence, on both long paths.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import pytest

from conftest import Recording, public_domain_text, read_aloud
from voxhost.audio import chunks
from voxhost.engines import whisper_coverage
from voxhost.engines.base import EngineConfig
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.harness.wer import missing_sentences
from voxhost.manager import longform
from voxhost.manager.registry import parse_entry
from voxhost.results import Segment, TranscribeOptions, Transcription, Word
from voxhost.settings import Settings

RATE = 16000


def test_uncovered_finds_speech_no_word_reaches() -> None:
    regions = [(0.0, 10.0), (12.0, 14.0), (20.0, 21.0)]
    words = [(0.5, 1.0), (1.1, 6.0)]  # the first region's last four seconds and the second region: none
    found = chunks.uncovered(regions, words, pad=0.3, minimum=1.0)
    assert found == [(6.3, 10.0), (12.0, 14.0), (20.0, 21.0)]
    # words up to the end reach everything; a short leftover (the padding of voice detection) is no loss
    assert chunks.uncovered([(0.0, 6.5)], [(0.4, 6.0)], pad=0.3, minimum=1.0) == []
    # a gap between words inside a region counts too
    assert chunks.uncovered([(0.0, 10.0)], [(0.0, 3.0), (8.0, 10.0)], pad=0.3, minimum=1.0) == [(3.3, 7.7)]


def test_a_stretched_alignment_is_no_coverage() -> None:
    """An alignment of text cut short (the words of "... except a small" when Whisper stopped before
    "hole dug in the ground"): its next-to-last word stretched over the speech never decoded, its last
    given no time. Such words account for what a slow speaker takes to say them; the words of a segment
    decoded whole (the control) cover their segment as its own timestamps do."""

    def segment(*words: tuple[str, float, float]) -> Segment:
        found = [Word(text, start, end, 0.9) for text, start, end in words]
        text = "".join(w.word for w in found)
        return Segment(0, 0, found[0].start, found[-1].end, text, [], 0.0, -0.2, 1.0, 0.01, found)

    speech = [(22.0, 31.0)]
    cut = segment(
        (" no", 26.4, 26.6),
        (" cellar,", 26.6, 26.9),
        (" except", 27.4, 27.6),
        (" a", 27.6, 30.0),
        (" small", 30.0, 30.0),
    )
    spans = whisper_coverage._spans(cut)
    assert spans[-1] == (27.6, pytest.approx(28.3))  # "a": half a second and a letter's time
    assert chunks.uncovered(speech, spans, pad=0.3, minimum=0.5)[-1] == (pytest.approx(28.6), 31.0)
    by_its_end = chunks.uncovered(speech, [(cut.start, cut.end)], pad=0.3, minimum=0.5)
    assert by_its_end[-1][0] > 30  # the segment's own end hides that speech
    whole = segment(
        (" except", 27.4, 27.6),
        (" a", 27.6, 27.7),
        (" small", 27.7, 28.0),
        (" hole", 28.0, 28.3),
        (" dug", 28.3, 28.5),
        (" in", 28.5, 28.6),
        (" the", 28.6, 28.7),
        (" ground.", 28.7, 30.8),
    )
    assert chunks.uncovered([(27.4, 30.8)], whisper_coverage._spans(whole), pad=0.3, minimum=0.5) == []
    # a drawn-out long word reaches at most two seconds
    assert whisper_coverage._spans(segment((" extraordinarily", 1.0, 5.0))) == [(1.0, 3.0)]
    # a segment without words (no word timestamps asked) covers what its timestamps say
    bare = dataclasses.replace(cut, words=None)
    assert whisper_coverage._spans(bare) == [(26.4, 30.0)]


def test_a_packed_time_maps_back_and_forth() -> None:
    timeline = chunks.SpeechMap([(RATE, 2 * RATE), (5 * RATE, 7 * RATE)])
    assert timeline.to_packed(1.5) == RATE // 2
    assert timeline.to_packed(6.0) == 2 * RATE
    assert timeline.to_file(timeline.to_packed(6.25) / RATE) == pytest.approx(6.25)


@pytest.fixture(scope="module")
def engine() -> FasterWhisperEngine:
    config = EngineConfig(threads=2)
    return FasterWhisperEngine.load(parse_entry("tiny.en").location(config), config)


@pytest.fixture(scope="module")
def reading() -> Recording:
    """About eighty seconds of sentences with pauses of half a second, as in a real reading."""
    return read_aloud(public_domain_text()[:14], pauses=(0.5, 0.6), seed=11)


def tail(recording: Recording, count: int) -> tuple[np.ndarray, list[str]]:
    """The recording up to the pause's end after its `count`-th sentence (half a second later), and
    the sentences it holds."""
    end = recording.starts[count] if count < len(recording.starts) else recording.seconds
    return recording.audio[: int(end * RATE)], recording.sentences[:count]


def long_result(engine: FasterWhisperEngine, audio: np.ndarray, options: TranscribeOptions, path: str) -> Any:
    settings = Settings(models=["tiny.en"], long_audio=path)  # type: ignore[arg-type]
    assert longform.is_long(audio, settings)

    async def main() -> Transcription:
        return await longform.collect(longform.in_process_updates(engine, audio, options, settings))

    return asyncio.run(main())


def _capped_batches(monkeypatch: pytest.MonkeyPatch, tokens: int) -> None:
    """The batched decoder stops after `tokens` tokens a window: a real decode that ends early, as
    Whisper does now and then with an early end-of-text token."""
    from faster_whisper import BatchedInferencePipeline

    original = BatchedInferencePipeline.transcribe

    def capped(self: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **{**kwargs, "max_new_tokens": tokens})

    monkeypatch.setattr(BatchedInferencePipeline, "transcribe", capped)


def test_a_window_that_ends_early_is_decoded_again(
    engine: FasterWhisperEngine, reading: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio, sentences = tail(reading, 8)  # about 50 s: two windows
    options = TranscribeOptions(word_timestamps=True)
    _capped_batches(monkeypatch, 40)
    with monkeypatch.context() as off:
        off.setattr(whisper_coverage, "uncovered", lambda *args, **kwargs: [])
        lost = long_result(engine, audio, options, "batched")
    assert len(missing_sentences(lost.text, sentences)) >= 2, lost.text  # the control: words are gone
    found = long_result(engine, audio, options, "batched")
    assert missing_sentences(found.text, sentences) == [], found.text
    words = found.words
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert all(0 <= w.start <= w.end <= len(audio) / RATE for w in words)


def test_a_sequential_decode_that_loses_its_last_sentence_gets_it_back(
    engine: FasterWhisperEngine, reading: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path of short requests, sequential pieces and live and Wyoming finals: Whisper's segments
    end one sentence early (its last segment is dropped, as an early end-of-text token drops it)."""
    audio, sentences = tail(reading, 5)
    model = engine._model
    original = model.transcribe

    def early(clip: np.ndarray, **kwargs: Any) -> Any:
        segments, info = original(clip, **kwargs)
        found = list(segments)
        return (iter(found[:-1] if len(clip) > 8 * RATE else found), info)

    monkeypatch.setattr(model, "transcribe", early)
    with monkeypatch.context() as off:
        off.setattr(whisper_coverage, "uncovered", lambda *args, **kwargs: [])
        lost = engine.transcribe(audio, TranscribeOptions())
    assert missing_sentences(lost.text, sentences) == [len(sentences) - 1], lost.text
    for options in (TranscribeOptions(), TranscribeOptions(word_timestamps=True, logprobs=True)):
        found = engine.transcribe(audio, options)
        assert missing_sentences(found.text, sentences) == [], found.text
        assert [s.id for s in found.segments] == list(range(len(found.segments)))
        assert [s.start for s in found.segments] == sorted(s.start for s in found.segments)
        if options.logprobs:
            assert found.logprobs is not None
            assert "".join(lp.token for lp in found.logprobs).strip() == found.text


@pytest.mark.parametrize("path", ["batched", "sequential"])
def test_every_tail_of_a_reading_ends_with_its_last_sentence(
    engine: FasterWhisperEngine, reading: Recording, path: str
) -> None:
    """The recording cut half a second after each of its sentences that end between 30 s and 62 s (about
    every 6 seconds: the end at every place of the second 30 s window): the last sentence is always in
    the answer. The two long paths take the lengths in turn (the batched path the 1st, 3rd, ... the
    sequential the 2nd, 4th, ...): every length is tried on one path, each path at three lengths, at
    half the cost of every length on both."""
    counts = [n for n in range(1, len(reading.starts)) if 30 <= reading.starts[n] <= 62]
    assert len(counts) >= 6
    counts = counts[0::2] if path == "batched" else counts[1::2]
    lost = {}
    for count in counts:
        audio, sentences = tail(reading, count)
        result = long_result(engine, audio, TranscribeOptions(), path)
        missing = missing_sentences(result.text, sentences)
        if missing:
            lost[round(len(audio) / RATE, 1)] = missing
    assert lost == {}, lost
