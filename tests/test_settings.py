"""Settings: from the environment, checked, explicit values over the environment."""

from __future__ import annotations

import pytest

from voxhost.settings import Settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXHOST_MODELS", "tiny.en, base")
    monkeypatch.setenv("VOXHOST_PORT", "9123")
    settings = Settings()
    assert settings.models == ["tiny.en", "base"]
    assert settings.port == 9123
    monkeypatch.setenv("VOXHOST_MODELS", '["fast=tiny.en", "base"]')
    assert Settings().models == ["fast=tiny.en", "base"]
    assert Settings(port=8001).port == 8001  # explicit values (CLI flags) win over the environment


def test_settings_reject_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VOXHOST_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        Settings()
    monkeypatch.setenv("VOXHOST_PORT", "8000")
    monkeypatch.setenv("VOXHOST_MODELS", " , ")
    with pytest.raises(ValidationError, match="at least one model"):
        Settings()


def test_vocabulary_is_names_from_the_environment_or_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().vocabulary == []
    monkeypatch.setenv("VOXHOST_VOCABULARY", " Living Room, Nguyen,, joaquin ")
    assert Settings().vocabulary == ["Living Room", "Nguyen", "joaquin"]
    monkeypatch.setenv("VOXHOST_VOCABULARY", '["Kitchen", "Joe Quinn"]')
    assert Settings().vocabulary == ["Kitchen", "Joe Quinn"]
    # each --vocabulary flag may hold several names; a name comes once, as first written
    flags = ["Kitchen, Nguyen", "nguyen", " Sheboygan ", "KITCHEN"]
    assert Settings(vocabulary=flags).vocabulary == ["Kitchen", "Nguyen", "Sheboygan"]
