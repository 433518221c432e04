"""The server's vocabulary in the faster-whisper engine (`EngineConfig.vocabulary`, from `--vocabulary`):
joined after a request's own keywords, each name once, cut to Whisper's prompt budget with a warning at
load, and never a reason to refuse a request (tiny.en, real speech)."""

from __future__ import annotations

import logging

import pytest

from conftest import assert_transcript, synthesize
from voxhost.audio import decode_audio
from voxhost.engines import EngineConfig
from voxhost.engines.faster_whisper import MAX_KEYWORD_TOKENS, FasterWhisperEngine
from voxhost.errors import BadRequest
from voxhost.manager.registry import parse_entry
from voxhost.results import TranscribeOptions

HOME = ("Living Room", "Sheboygan", "Nguyen", "Joaquin")
GUESTS = tuple(f"Guest{i}" for i in range(30))  # more than fit: each takes a few tokens


@pytest.fixture(scope="module")
def loaded(caplog_module: list[logging.LogRecord]) -> FasterWhisperEngine:
    config = EngineConfig(threads=2, vocabulary=HOME + GUESTS)
    return FasterWhisperEngine.load(parse_entry("tiny.en").location(config), config)


@pytest.fixture(scope="module")
def caplog_module() -> list[logging.LogRecord]:
    """The engine's log records while the module's engine loads (caplog is per test)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("voxhost.engines.faster_whisper")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _tokens(engine: FasterWhisperEngine, text: str) -> int:
    return len(engine._encode(" " + text))


def test_the_vocabulary_alone_is_cut_to_the_prompt_budget_in_its_order(
    loaded: FasterWhisperEngine, caplog_module: list[logging.LogRecord]
) -> None:
    alone = loaded.hotwords(None)
    assert alone is not None
    names = alone.split(", ")
    assert names[: len(HOME)] == list(HOME)
    assert names == list((HOME + GUESTS)[: len(names)])  # a prefix: the first names matter most
    assert len(HOME) < len(names) < len(HOME + GUESTS)
    assert _tokens(loaded, alone) <= MAX_KEYWORD_TOKENS
    assert _tokens(loaded, ", ".join([*names, GUESTS[len(names) - len(HOME)]])) > MAX_KEYWORD_TOKENS
    # the load said which names are left out, once
    (warning,) = [r for r in caplog_module if "--vocabulary" in r.getMessage()]
    assert f"{len(names)} of {len(HOME + GUESTS)} names fit" in warning.getMessage()
    assert warning.getMessage().endswith(", ".join(GUESTS[len(names) - len(HOME) :]))


def test_a_request_s_keywords_come_first_and_each_name_once(loaded: FasterWhisperEngine) -> None:
    joined = loaded.hotwords("Wisconsin, nguyen")
    assert joined is not None
    assert joined.startswith("Wisconsin, nguyen, Living Room, Sheboygan, Joaquin, Guest0")
    assert "Nguyen" not in joined  # the request names it already, in its own spelling
    assert _tokens(loaded, joined) <= MAX_KEYWORD_TOKENS
    # keywords that fill the budget leave no room for the server's words, and are kept whole
    many: list[str] = []
    while _tokens(loaded, ", ".join([*many, f"Place{len(many)}"])) <= MAX_KEYWORD_TOKENS:
        many.append(f"Place{len(many)}")
    assert loaded.hotwords(", ".join(many)) == ", ".join(many)


def test_a_vocabulary_too_long_never_turns_a_request_into_a_400(loaded: FasterWhisperEngine) -> None:
    sentence = "We drove to Sheboygan on Tuesday."
    audio = decode_audio(synthesize(sentence).encoded("wav"))
    for keywords in (None, "Wisconsin", ", ".join(f"Place{i}" for i in range(18)) + ", Sheboygan"):
        text = loaded.transcribe(audio, TranscribeOptions(hotwords=keywords)).text
        assert_transcript(text, sentence, max_errors=0)
    # keywords too long on their own are still the client's to shorten
    with pytest.raises(BadRequest) as refused:
        loaded.transcribe(audio, TranscribeOptions(hotwords=", ".join(f"Name{i}" for i in range(60))))
    assert refused.value.param == "keywords"
