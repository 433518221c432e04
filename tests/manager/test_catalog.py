"""What the served models are, answered from their files: voices, languages and Wyoming's `info`, with
nothing loaded to answer (Home Assistant sends `describe` at every set-up)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from wyoming.client import AsyncClient
from wyoming.info import Describe, Info

from conftest import ServerFactory
from voxhost.engines import EngineConfig
from voxhost.manager.registry import resolve_source
from wyoming_helpers import events_until


@pytest.mark.parametrize("model", ["en_US-joe-medium", "kokoro"])
def test_a_tts_models_files_say_what_loading_it_says(model: str, cache_dir: Path) -> None:
    spec = resolve_source(model)
    config = EngineConfig(cache_dir=cache_dir)
    from_files = spec.describe_files(config)
    assert from_files is not None
    assert from_files == spec.load(config).describe()
    assert from_files.voices
    assert from_files.voice_aliases["marin"] in {v.id for v in from_files.voices}


def test_an_asr_model_is_not_described_from_files_it_cannot_read(cache_dir: Path) -> None:
    assert resolve_source("tiny.en").describe_files(EngineConfig(cache_dir=cache_dir)) is None


def test_describe_and_voice_listings_load_nothing(server_factory: ServerFactory) -> None:
    server = server_factory("--model", "tiny.en", "--model", "en_US-joe-medium", "--model", "kokoro")

    async def describe() -> Info:
        async with AsyncClient.from_uri(server.wyoming_uri) as client:
            await client.write_event(Describe().event())
            (event,) = await events_until(client, "info")
            return Info.from_event(event)

    info = asyncio.run(describe())
    (asr,) = info.asr
    assert [m.name for m in asr.models] == ["tiny.en"]
    assert asr.models[0].languages == ["en"]
    (tts,) = info.tts
    names = {v.name for v in tts.voices}
    assert {"en_US-joe-medium", "jf_alpha", "jm_kumo"} <= names
    listed = httpx.get(server.url + "/v1/audio/voices", timeout=30).json()
    assert {v["id"] for v in listed["data"]} == names
    status = httpx.get(server.url + "/status", timeout=30).json()
    assert {m["id"]: m["state"] for m in status["models"]} == dict.fromkeys(
        ["tiny.en", "en_US-joe-medium", "kokoro", "speakers"],
        "unloaded",  # speakers: the diarizer
    )
    assert all(m["loads"] == 0 for m in status["models"])
