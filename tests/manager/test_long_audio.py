"""Long recordings: no lost words, batched decoding, sentence-sized segments, text streamed as it is
decoded. Real tiny.en on real (Piper) speech of several minutes; every sentence is looked for."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from conftest import Recording, ServerProcess, public_domain_text, read_aloud, start_server
from voxhost.audio import chunks, encode_audio
from voxhost.engines.base import EngineConfig
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.engines.sentences import MAX_SECONDS, group_words
from voxhost.harness.wer import missing_sentences, word_errors, words
from voxhost.manager import ModelManager
from voxhost.manager.registry import parse_entry
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import Segment, TranscribeOptions, Transcription, VadParameters, Word
from voxhost.settings import Settings

T = TypeVar("T")
RATE = 16000
# A shopping list read twice, and a speaker who says "yes, okay" again and again: every repeat is speech.
SHOPPING = ["Two cartons of milk.", "A loaf of brown bread.", "Six large eggs.", "A bag of green apples."]
YES = "Yes, okay."
WORD_MARGIN = 4  # word errors over faster-whisper's own in a reading of some 600 words


# --- units: windows, clocks, sentences ------------------------------------------------------------
def test_speech_regions_are_packed_into_windows_of_at_most_thirty_seconds() -> None:
    s = RATE
    regions = [(0, 10 * s), (12 * s, 22 * s), (25 * s, 36 * s), (40 * s, 75 * s), (80 * s, 81 * s)]
    windows = chunks.pack_windows(regions)
    assert windows == [
        [(0, 10 * s), (12 * s, 22 * s)],
        [(25 * s, 36 * s)],
        [(40 * s, 75 * s)],
        [(80 * s, 81 * s)],
    ]
    assert all(sum(b - a for a, b in w) <= 30 * s for w in windows if len(w) > 1)


def test_times_on_the_packed_speech_map_back_to_the_file() -> None:
    timeline = chunks.SpeechMap([(RATE, 2 * RATE), (5 * RATE, 7 * RATE)])  # 1-2 s and 5-7 s of the file
    assert timeline.packed_samples == 3 * RATE
    assert timeline.to_file(0.0) == 1.0
    assert timeline.to_file(0.5) == 1.5
    assert timeline.to_file(1.0) == 5.0  # a word starting at the join starts after the pause
    assert timeline.to_file(1.0, is_end=True) == 2.0  # a word ending at the join ends before it
    assert timeline.to_file(2.5) == 6.5
    assert timeline.to_file(9.0) == 7.0  # never past the speech
    # a word's end decoded a step past the join ends before the pause, not in the speech after it
    assert timeline.word_to_file(0.6, 1.02) == (1.6, 2.0)
    assert timeline.word_to_file(0.6, 0.9) == (1.6, 1.9)
    assert timeline.word_to_file(0.9, 1.5) == (1.9, 5.5)  # one that reaches well into it (the control)
    assert timeline.word_to_file(1.1, 1.5) == (5.1, 5.5)


def _words(spec: list[tuple[str, float, float]]) -> list[Word]:
    return [Word(text, start, end, 0.9) for text, start, end in spec]


def test_words_are_grouped_into_sentences_and_no_group_outlasts_the_limit() -> None:
    groups = group_words(
        _words([(" Hello", 0, 0.4), (" there.", 0.4, 0.8), (" How", 1.0, 1.2), (" are", 1.2, 1.4)])
        + _words([(" you", 3.0, 3.2), (" today?", 3.2, 3.6)])  # a long pause ends a group too
    )
    assert [[w.word.strip() for w in g] for g in groups] == [
        ["Hello", "there."],
        ["How", "are"],
        ["you", "today?"],
    ]
    # no punctuation, no pauses: a clause break after 8 s, a hard stop before 15 s
    run = _words([(f" w{i}{',' if i == 20 else ''}", i * 0.45, i * 0.45 + 0.4) for i in range(60)])
    groups = group_words(run)
    assert groups[0][-1].word == " w20,"
    assert all(g[-1].end - g[0].start <= MAX_SECONDS for g in groups)
    assert [w for g in groups for w in g] == run


def test_a_piece_is_conditioned_on_the_tokens_before_it_unless_they_needed_a_high_temperature() -> None:
    def segment(tokens: list[int], temperature: float) -> Segment:
        return Segment(0, 0, 0.0, 1.0, " x", tokens, temperature, -0.2, 1.0, 0.01)

    assert chunks.context_tokens([segment([50364, 1, 2, 50400], 0.0), segment([3], 0.2)]) == (
        50364,
        1,
        2,
        50400,
        3,
    )
    assert chunks.context_tokens([segment([1], 0.0), segment([2], 0.8)]) is None
    assert chunks.context_tokens([]) is None


# --- recordings -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book() -> Recording:
    """About two and a half minutes (five windows and more): twenty-eight different sentences, pauses of
    0.3 to 1.5 s."""
    return read_aloud(public_domain_text()[:28])


@pytest.fixture(scope="module")
def whole_book() -> Recording:
    """The whole reading, about three and a half minutes (forty sentences): for the tests of a client
    that leaves, where the calls already running when it leaves must be a small share of all."""
    return read_aloud(public_domain_text())


@pytest.fixture(scope="module")
def repeats() -> Recording:
    """Over 30 s (a long file): a list read twice, "yes, okay" five times between the readings."""
    return read_aloud([*SHOPPING, *[YES] * 5, *SHOPPING], pauses=(0.9, 1.8), seed=3)


@pytest.fixture(scope="module")
def in_process(book: Recording) -> Transcription:
    """faster-whisper itself on the same audio (sequential, the server's defaults): the accuracy to meet."""
    config = EngineConfig(threads=2)
    engine = FasterWhisperEngine.load(parse_entry("tiny.en").location(config), config)
    return engine.transcribe(book.audio, TranscribeOptions())


def run_with_manager(settings: Settings, body: Callable[[ModelManager], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ModelManager(settings) as manager:
            return await asyncio.wait_for(body(manager), 400)

    return asyncio.run(main())


def check_segments(result: Transcription, recording: Recording, *, with_words: bool) -> None:
    """Sentence-sized segments where the sentences are; with words (asked for, on the segments), the
    words in order inside the file."""
    segments = result.segments
    assert [s.id for s in segments] == list(range(len(segments)))
    assert all(s.end - s.start <= MAX_SECONDS + 0.5 for s in segments), max(s.end - s.start for s in segments)
    assert len(recording.sentences) * 0.8 <= len(segments) <= len(recording.sentences) * 2
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    near = sum(any(abs(t - s) < 0.7 for s in starts) for t in recording.starts)
    assert near >= 0.9 * len(recording.starts), f"{near} of {len(recording.starts)} sentences start a segment"
    found = result.words
    assert bool(found) == with_words
    if with_words:
        assert [w.start for w in found] == sorted(w.start for w in found)
        assert all(0 <= w.start <= w.end <= recording.seconds for w in found)


@pytest.mark.parametrize("long_audio", ["batched", "sequential"])
def test_every_sentence_of_a_long_recording_comes_back(
    cache_dir: Path, book: Recording, in_process: Transcription, long_audio: str
) -> None:
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, long_audio=long_audio)  # type: ignore[arg-type]
    options = TranscribeOptions(word_timestamps=True)
    result = run_with_manager(
        settings, lambda manager: manager.transcribe(TranscribeRequest(book.audio, options))
    )
    assert missing_sentences(result.text, book.sentences) == []
    assert missing_sentences(in_process.text, book.sentences) == []
    # no worse than faster-whisper's own beyond a few words in the whole reading: one word of another
    # CPU's float arithmetic is no defect, a lost sentence (every sentence is looked for above) is
    ours, theirs = word_errors(result.text, book.text), word_errors(in_process.text, book.text)
    assert ours <= theirs + WORD_MARGIN, f"{ours} word errors against faster-whisper's own {theirs}"
    assert result.duration == pytest.approx(book.seconds)
    check_segments(result, book, with_words=True)


def count(text: str, phrase: str) -> int:
    said, wanted = words(text), words(phrase)
    return sum(said[i : i + len(wanted)] == wanted for i in range(len(said)))


@pytest.mark.parametrize("long_audio", ["batched", "sequential"])
def test_a_speaker_who_repeats_himself_keeps_every_repeat(
    cache_dir: Path, repeats: Recording, long_audio: str
) -> None:
    assert repeats.seconds > 30
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, long_audio=long_audio)  # type: ignore[arg-type]
    result = run_with_manager(settings, lambda m: m.transcribe(TranscribeRequest(repeats.audio)))
    assert count(result.text, "yes okay") == 5, result.text
    assert missing_sentences(result.text, repeats.sentences) == []


def test_repeats_in_a_short_request_stay_too(cache_dir: Path) -> None:
    clip = read_aloud([YES, YES, YES, "Two cartons of milk.", "Two cartons of milk."], pauses=(0.5, 1.0))
    assert clip.seconds < 30
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir)
    result = run_with_manager(settings, lambda m: m.transcribe(TranscribeRequest(clip.audio)))
    assert count(result.text, "yes okay") == 3, result.text
    assert count(result.text, "two cartons of milk") == 2, result.text


def test_an_echo_of_the_text_before_over_silence_still_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompted with what came before, tiny.en 'hears' it again in a silent piece. Shown first with the
    audio check switched off (the echo is there), then with it on (gone)."""
    sentence = "We will meet again in the garden tomorrow morning."
    config = EngineConfig(threads=2)
    engine = FasterWhisperEngine.load(parse_entry("tiny.en").location(config), config)
    said = engine.transcribe(read_aloud([sentence]).audio, TranscribeOptions())
    silence = np.random.default_rng(0).normal(0, 0.001, 5 * RATE).astype(np.float32)
    options = TranscribeOptions(
        context_tokens=chunks.context_tokens(said.segments), context_text=said.segments[-1].text
    )
    with monkeypatch.context() as patch:
        patch.setattr(engine, "_has_speech", lambda audio, start, end: True)
        assert count(engine.transcribe(silence, options).text, sentence) == 1  # the hallucination
    assert engine.transcribe(silence, options).text == ""


# --- the request's own options on both long paths: logprobs, keywords, chunking_strategy ----------
@pytest.fixture(scope="module")
def tiny_engine() -> FasterWhisperEngine:
    config = EngineConfig(threads=2)
    return FasterWhisperEngine.load(parse_entry("tiny.en").location(config), config)


def _long(engine: FasterWhisperEngine, audio: np.ndarray, options: TranscribeOptions, long_audio: str) -> Any:
    from voxhost.manager import longform

    settings = Settings(models=["tiny.en"], long_audio=long_audio)  # type: ignore[arg-type]
    assert longform.is_long(audio, settings)

    async def main() -> tuple[list[Any], Transcription]:
        updates = [u async for u in longform.in_process_updates(engine, audio, options, settings)]
        result = updates[-1].result
        assert result is not None
        return updates, result

    return asyncio.run(main())


@pytest.mark.parametrize("long_audio", ["batched", "sequential"])
def test_logprobs_keywords_and_vad_reach_both_long_paths(
    tiny_engine: FasterWhisperEngine, long_talk: Recording, long_audio: str
) -> None:
    options = TranscribeOptions(logprobs=True, hotwords="Dorothy, Toto", vad=VadParameters(threshold=0.4))
    updates, result = _long(tiny_engine, long_talk.audio, options, long_audio)
    assert missing_sentences(result.text, long_talk.sentences) == []
    assert result.logprobs is not None
    assert "".join(lp.token for lp in result.logprobs).strip() == result.text
    assert all(lp.logprob <= 0 for lp in result.logprobs)
    # each update carries its own text's log-probabilities, and together they are the whole
    streamed = [lp for u in updates if u.logprobs is not None for lp in u.logprobs]
    assert streamed == result.logprobs
    assert all("".join(lp.token for lp in u.logprobs) == u.text for u in updates if u.logprobs)
    # without them asked for: the same text, no log-probabilities
    _, plain = _long(tiny_engine, long_talk.audio, TranscribeOptions(hotwords="Dorothy, Toto"), long_audio)
    assert plain.logprobs is None
    assert word_errors(plain.text, result.text) <= 2
    # the request's VAD decides what is speech: a threshold no frame reaches leaves nothing to decode
    _, deaf = _long(
        tiny_engine, long_talk.audio, TranscribeOptions(vad=VadParameters(threshold=1.0)), long_audio
    )
    assert deaf.text == ""


# --- streaming, cancellation ------------------------------------------------------------------------
def test_text_comes_in_file_order_before_the_end_and_a_closed_stream_stops_the_work(
    cache_dir: Path, whole_book: Recording
) -> None:
    book = whole_book
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, batch_size=1)

    async def body(manager: ModelManager) -> tuple[int, int, list[float]]:
        await manager.load("tiny.en")
        updates = manager.transcribe_stream(TranscribeRequest(book.audio))
        seen: list[float] = []
        text = ""
        async with contextlib.aclosing(updates):
            async for update in updates:
                seen.append(update.seconds)
                text += update.text
                if update.result is not None:
                    assert update.result.text == text.strip()
        full = len(manager.recent_inferences("tiny.en"))
        # again, but the client goes away after the first text
        updates = manager.transcribe_stream(TranscribeRequest(book.audio))
        first = await anext(updates)
        assert first.text
        assert first.result is None
        await updates.aclose()
        for _ in range(100):  # what was running finishes; nothing new starts
            if manager.status("tiny.en")[0].in_flight == 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        return full, len(manager.recent_inferences("tiny.en")) - full, seen

    full, after_close, seen = run_with_manager(settings, body)
    assert len(seen) >= 5
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(book.seconds)
    assert seen[0] < book.seconds / 2  # the first text covers the start, long before the end
    assert after_close < full / 2, (after_close, full)


# --- over HTTP, with the official SDK (conftest's `server`: tiny.en and base, preloaded) -----------
@pytest.fixture(scope="module")
def book_wav(book: Recording) -> bytes:
    return encode_audio(book.audio, RATE, "wav")


def test_the_sdk_streams_a_long_transcription_as_it_is_decoded(
    server: ServerProcess, book: Recording, book_wav: bytes
) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused")
    stream = client.audio.transcriptions.create(model="whisper-1", file=("book.wav", book_wav), stream=True)
    events = list(stream)
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert len(deltas) >= 2
    assert all(e.type == "transcript.text.delta" for e in events[:-1])
    assert "".join(deltas) == done.text
    assert missing_sentences(done.text, book.sentences) == []
    assert done.usage is not None
    assert done.usage.type == "tokens"
    assert done.usage.output_tokens > len(words(book.text)) / 2
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens


@pytest.fixture(scope="module")
def long_talk_wav(long_talk: Recording) -> bytes:
    return encode_audio(long_talk.audio, RATE, "wav")


def test_every_response_format_on_the_long_path(
    server: ServerProcess, long_talk: Recording, long_talk_wav: bytes
) -> None:
    """Over 30 s (the long path), and short enough to be decoded four times."""
    url = server.url + "/v1/audio/transcriptions"
    verbose = httpx.post(
        url,
        files={"file": ("talk.wav", long_talk_wav)},
        data={"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
        timeout=300,
    ).json()
    assert verbose["language"] == "english"
    assert verbose["duration"] == pytest.approx(long_talk.seconds, abs=0.01)
    assert verbose["usage"] == {"type": "duration", "seconds": int(np.ceil(long_talk.seconds))}
    assert missing_sentences(verbose["text"], long_talk.sentences) == []
    result = Transcription(
        text=verbose["text"],
        language="en",
        language_probability=1.0,
        duration=verbose["duration"],
        segments=[
            Segment(s["id"], s["seek"], s["start"], s["end"], s["text"], s["tokens"], 0.0, 0.0, 0.0, 0.0)
            for s in verbose["segments"]
        ],
    )
    check_segments(result, long_talk, with_words=False)  # the words come beside the segments here
    times = [(w["start"], w["end"]) for w in verbose["words"]]
    assert len(times) > 0.9 * len(words(long_talk.text))
    assert [t[0] for t in times] == sorted(t[0] for t in times)
    assert all(0 <= a <= b <= long_talk.seconds for a, b in times)
    for fmt in ("srt", "vtt"):
        body = httpx.post(
            url, files={"file": ("talk.wav", long_talk_wav)}, data={"response_format": fmt}, timeout=300
        )
        cues = [line for line in body.text.splitlines() if "-->" in line]
        assert len(cues) == len(verbose["segments"])
        assert all(_cue_seconds(cue) <= MAX_SECONDS + 0.5 for cue in cues)
    text = httpx.post(
        url, files={"file": ("talk.wav", long_talk_wav)}, data={"response_format": "text"}, timeout=300
    )
    assert text.text.strip() == verbose["text"]


def _cue_seconds(cue: str) -> float:
    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.strip().replace(",", ".").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    start, end = cue.split("-->")
    return seconds(end) - seconds(start)


@pytest.fixture(scope="module")
def toto_wav() -> bytes:
    """A minute of the reading (a long file): the sentences with the four "Toto"s, which tiny.en does
    not hear as the dog's name unless told."""
    return encode_audio(read_aloud(public_domain_text()[18:30]).audio, RATE, "wav")


def test_prompt_language_and_temperature_are_honoured_on_the_long_path(
    server: ServerProcess, toto_wav: bytes, long_talk_wav: bytes
) -> None:
    """The prompt and keywords on the reading whose "Toto"s tiny.en misses without them; temperature
    and language on another long file."""
    url = server.url + "/v1/audio/transcriptions"

    def ask(audio: bytes = toto_wav, **data: Any) -> dict[str, Any]:
        answer = httpx.post(
            url,
            files={"file": ("book.wav", audio)},
            data={"response_format": "verbose_json", **data},
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    plain = ask()
    prompted = ask(prompt="Toto is Dorothy's little dog.")
    assert count(prompted["text"], "toto") > count(plain["text"], "toto")
    keyed = ask(**{"keywords[]": ["Toto", "Dorothy"]})  # OpenAI's `keywords`: Whisper's hotwords
    assert count(keyed["text"], "toto") > count(plain["text"], "toto")
    warm = ask(long_talk_wav, temperature="0.4", language="en")
    assert {s["temperature"] for s in warm["segments"]} == {0.4}
    assert warm["language"] == "english"
    refused = httpx.post(url, files={"file": ("a.wav", long_talk_wav)}, data={"language": "de"}, timeout=60)
    assert refused.status_code == 400  # tiny.en is English only


def test_a_long_translation_streams_with_a_multilingual_model(
    server: ServerProcess, long_talk: Recording, long_talk_wav: bytes
) -> None:
    events = _sse(server.url + "/v1/audio/translations", long_talk_wav, {"model": "base", "stream": "true"})
    assert events[-1]["type"] == "transcript.text.done"
    assert len(events) >= 2  # text, then done (both windows of 45 s can be one batched call)
    assert all(e["type"] == "transcript.text.delta" for e in events[:-1])
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
    assert missing_sentences(events[-1]["text"], long_talk.sentences, tolerance=0.5) == []


def _sse(url: str, audio: bytes, data: dict[str, str]) -> list[dict[str, Any]]:
    events = []
    with httpx.stream("POST", url, files={"file": ("a.wav", audio)}, data=data, timeout=300) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_stream_takes_json_or_text_only(server: ServerProcess, book_wav: bytes) -> None:
    url = server.url + "/v1/audio/transcriptions"
    for fmt in ("srt", "vtt", "verbose_json"):
        answer = httpx.post(
            url, files={"file": ("a.wav", book_wav)}, data={"stream": "true", "response_format": fmt}
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "response_format"
    answer = httpx.post(url, files={"file": ("a.wav", book_wav)}, data={"stream": "maybe"})
    assert answer.status_code == 400


def test_a_client_that_leaves_mid_stream_cancels_the_rest(
    server: ServerProcess, whole_book: Recording
) -> None:
    book_wav = encode_audio(whole_book.audio, RATE, "wav")
    status = server.url + "/status"

    def served() -> int:
        models = httpx.get(status, timeout=10).json()["models"]
        return int(next(m for m in models if m["id"] == "tiny.en")["requests"])

    before = served()
    with httpx.stream(
        "POST",
        server.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", book_wav)},
        data={"stream": "true"},
        timeout=300,
    ) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert json.loads(first[6:])["type"] == "transcript.text.delta"
    # bounded wait for what was running to finish
    for _ in range(100):
        models = httpx.get(status, timeout=10).json()["models"]
        if next(m for m in models if m["id"] == "tiny.en")["in_flight"] == 0:
            break
        asyncio.run(asyncio.sleep(0.1))
    calls_after_leaving = served() - before
    full = served()
    httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("a.wav", book_wav)}, timeout=300)
    assert calls_after_leaving < (served() - full) * 0.75


# --- large inputs -----------------------------------------------------------------------------------
def _three_hours_of_flac(clips: dict[int, np.ndarray]) -> bytes:
    """Three hours of 16 kHz FLAC, silent but for `clips` (16 kHz float32) at the given minutes; built
    ten seconds at a time, so this process never holds the three hours."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=RATE, layout="mono")
        stream.format = "s16"
        position = 0
        for block in range(3 * 360):  # ten-second blocks
            samples = np.zeros(10 * RATE, dtype=np.float32)
            clip = clips.get(block // 6) if block % 6 == 0 else None
            if clip is not None:
                samples[: len(clip)] = clip
            frame = av.AudioFrame.from_ndarray(
                (samples * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, position
            position += len(samples)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


@pytest.mark.slow
def test_a_three_hour_file_is_transcribed_with_its_audio_held_once(tmp_path: Path, cache_dir: Path) -> None:
    import threading

    import psutil

    said = {0: "The quick brown fox jumps over the lazy dog.", 61: "Ask her to bring these things with her.",
            179: "We will meet again in the garden tomorrow morning."}  # fmt: skip
    clips = {minute: read_aloud([text]).audio for minute, text in said.items()}
    data = _three_hours_of_flac(clips)
    server = start_server(
        tmp_path, cache_dir, "--model", "tiny.en", "--preload", "--no-wyoming", "--max-audio-seconds", "10801"
    )
    try:
        process = psutil.Process(server.process.pid)
        idle = process.memory_info().rss
        peak = idle
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, process.memory_info().rss)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        answer = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("long.flac", data)},
            data={"response_format": "verbose_json"},
            timeout=600,
        )
        done.set()
        watcher.join()
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["duration"] == pytest.approx(3 * 3600, abs=0.1)
        assert missing_sentences(body["text"], list(said.values())) == []
        starts = [s["start"] for s in body["segments"]]
        # each where it was said, nothing else
        assert [round(t / 60) for t in starts] == list(said), body["segments"]
        decoded = 3 * 3600 * RATE * 4  # float32 samples
        growth = peak - idle
        assert growth < 1.3 * decoded, (
            f"the server grew by {growth / 2**20:.0f} MiB for {decoded / 2**20:.0f} MiB of audio"
        )
        assert process.memory_info().rss < idle + decoded / 8  # and given back once answered
    finally:
        server.stop()


def test_queue_limits_apply_to_a_long_file_once_and_never_halfway(
    cache_dir: Path, repeats: Recording
) -> None:
    """A full queue refuses a new long file at once (429), but never the later calls of one already
    admitted: refusing them would throw its work away."""
    from voxhost.errors import QueueFull

    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, parallel=1, max_queue=0, batch_size=1)

    async def body(manager: ModelManager) -> tuple[Transcription, str]:
        await manager.load("tiny.en")
        first = asyncio.create_task(manager.transcribe(TranscribeRequest(repeats.audio)))
        for _ in range(200):
            if manager.status("tiny.en")[0].in_flight:
                break
            await asyncio.sleep(0.01)
        try:
            await manager.transcribe(TranscribeRequest(repeats.audio))
            refused = "not refused"
        except QueueFull as exc:
            refused = exc.code
        return await first, refused

    result, refused = run_with_manager(settings, body)
    assert refused == "queue_full"
    assert count(result.text, "yes okay") == 5
