"""The Dockerfile and the systemd unit agree with the code: settings they set exist and parse, ports and
the health probe match the server's, and stopping gives the drain its grace period. (No image is built
here: that needs a registry for the base image.)"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shlex
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from voxhost import __version__
from voxhost.api.http import create_app
from voxhost.cli.options import field_type, is_list
from voxhost.settings import Settings

ROOT = Path(__file__).parent.parent


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_installs_the_repo_and_serves_with_valid_settings() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'pip install ".[all]"' in text
    assert 'ENTRYPOINT ["voxhost", "serve"]' in text
    env = {
        k.removeprefix("VOXHOST_").lower(): v for k, v in dockerfile_env().items() if k.startswith("VOXHOST_")
    }
    assert set(env) <= set(Settings.model_fields), "the Dockerfile sets a setting that does not exist"
    settings = Settings(**env)  # type: ignore[arg-type]
    exposed = {int(p) for p in re.findall(r"^EXPOSE (.+)$", text, re.M)[0].split()}
    assert exposed == {settings.port, int(settings.wyoming_uri.rsplit(":", 1)[1])}
    probe = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", text)
    assert probe is not None
    assert int(probe.group(1)) == settings.port
    assert probe.group(2) in create_app(settings).openapi()["paths"]


def test_the_dockerfile_example_starts() -> None:
    """The `docker run` example at the top of the Dockerfile, with the image's own environment, passes
    the start-up checks (it once set a key with Wyoming on every interface and no --wyoming-open)."""
    from voxhost.server import check_exposure

    text = (ROOT / "Dockerfile").read_text().replace("\\\n#", " ")
    example = next(line for line in text.splitlines() if "docker run" in line)
    flags = dict(pair.split("=", 1) for pair in re.findall(r"-e (\S+)", example))
    env = {**dockerfile_env(), **flags}
    settings = Settings(
        **{k.removeprefix("VOXHOST_").lower(): v for k, v in env.items() if k.startswith("VOXHOST_")}
    )
    assert settings.api_key  # the example sets a key
    check_exposure(settings)  # raises SystemExit when the server would refuse to start


def test_systemd_unit_stops_through_the_drain() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None, inline_comment_prefixes=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "packaging" / "voxhost.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/voxhost serve")
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the server only: it stops its workers itself
    assert float(service["TimeoutStopSec"]) > Settings().shutdown_grace + 5
    assert service["Environment"].split("=", 1)[0].removeprefix("VOXHOST_").lower() in Settings.model_fields
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Install everything and run the whole test suite") :]
    command = section.split("```bash\n", 1)[1].split("\n```", 1)[0].strip()
    assert "pytest" in command
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


# --- the Home Assistant add-on (homeassistant/voxhost) --------------------------------------------------

ADDON = ROOT / "homeassistant" / "voxhost"
SCHEMA_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "password": str}


def addon_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ADDON / name).read_text())
    assert isinstance(data, dict)
    return data


def addon_dockerfile_env() -> dict[str, str]:
    text = (ADDON / "Dockerfile").read_text().replace("\\\n", " ")
    return dict(
        pair.partition("=")[::2]
        for line in text.splitlines()
        if line.startswith("ENV ")
        for pair in shlex.split(line[4:])
    )


def addon_run_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("voxhost_addon_run", ADDON / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def addon_settings(monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]) -> Settings:
    """The settings voxhost serves with in the add-on: the image's fixed variables, then those that
    run.py makes of the options."""
    for name in [name for name in os.environ if name.startswith("VOXHOST_")]:
        monkeypatch.delenv(name)
    fixed = {k: v for k, v in addon_dockerfile_env().items() if k.startswith("VOXHOST_")}
    for name, value in {**fixed, **addon_run_script().environment(options)}.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_home_assistant_addon_options_are_voxhost_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = addon_yaml("config.yaml")
    schema, options = config["schema"], config["options"]
    assert set(schema) <= set(Settings.model_fields), "an add-on option that is no voxhost setting"
    assert set(options) <= set(schema)
    for key, kind in schema.items():
        if isinstance(kind, list):
            assert kind == ["str"], key
            assert is_list(key), f"{key}: a list option for a setting that is no list"
            continue
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?(\?)?", kind)
        assert match is not None, f"{key}: {kind}"
        name, args, optional = match.groups()
        assert bool(optional) == (key not in options), f"{key}: optional options are those with no default"
        if name == "list":  # a choice: each one a valid value of the setting
            for choice in args.split("|"):
                Settings(**{key: choice})
            continue
        if is_list(key):  # one text, its items comma-separated (as in VOXHOST_<SETTING>)
            assert SCHEMA_TYPES[name] is str, key
            continue
        assert SCHEMA_TYPES[name] is field_type(key), f"{key}: {kind} for a {field_type(key)} setting"
        for bound in (args or "").split(","):  # the ends of a range are valid values of the setting
            if bound:
                Settings(**{key: field_type(key)(bound)})
    # each option reaches voxhost as its setting, through run.py
    given = {**options, "default_model": "base", "tts_language": "ja", "api_key": "k1,k2", "threads": 2,
             "wyoming_endpoint": 1.3, "vocabulary": "Kitchen,Nguyen"}  # fmt: skip
    settings = addon_settings(monkeypatch, given)
    for key, value in given.items():
        expected = value.split(",") if key in ("api_key", "vocabulary") else value
        assert getattr(settings, key) == expected, key
    # the Supervisor leaves an optional option out, or sends it empty: voxhost's default
    assert addon_settings(monkeypatch, {**options, "api_key": ""}).api_key == []
    translated = addon_yaml("translations/en.yaml")
    assert set(translated["configuration"]) == set(schema), "every option is named and explained"
    assert set(translated["network"]) == set(config["ports"])


def test_the_home_assistant_addon_ports_probe_and_discovery_match_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = addon_yaml("config.yaml")
    settings = addon_settings(monkeypatch, config["options"])
    wyoming = urlparse(settings.wyoming_uri)
    assert wyoming.scheme == "tcp"
    assert wyoming.hostname == "0.0.0.0"  # Home Assistant connects from outside the container
    assert settings.host == "0.0.0.0"
    # the ports voxhost listens on are its defaults, and those the add-on declares
    defaults = Settings.model_fields
    assert settings.port == defaults["port"].default
    assert wyoming.port == urlparse(defaults["wyoming_uri"].default).port
    assert set(config["ports"]) == {f"{settings.port}/tcp", f"{wyoming.port}/tcp"}
    # the Supervisor's watchdog and the image's health check ask a real route on the HTTP port
    paths = create_app(settings).openapi()["paths"]
    watchdog = re.fullmatch(r"http://\[HOST\]:\[PORT:(\d+)\](/[\w/]+)", config["watchdog"])
    assert watchdog is not None
    assert int(watchdog.group(1)) == settings.port
    assert watchdog.group(2) in paths
    dockerfile = (ADDON / "Dockerfile").read_text()
    probe = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", dockerfile)
    assert probe is not None
    assert int(probe.group(1)) == settings.port
    assert probe.group(2) in paths
    # Home Assistant is told where Wyoming is, by the Supervisor, once it listens
    assert config["discovery"] == ["wyoming"]
    run = addon_run_script()
    assert run.wyoming_port(dict(os.environ)) == wyoming.port
    assert run.discovery_message("local-voxhost", wyoming.port) == {
        "service": "wyoming",
        "config": {"uri": f"tcp://local-voxhost:{wyoming.port}"},
    }
    assert 'os.execvpe("voxhost", ["voxhost", "serve"], env)' in (ADDON / "run.py").read_text()
    # stopping gives voxhost's drain its grace period
    assert 10 <= config["timeout"] <= 300
    assert config["timeout"] > settings.shutdown_grace + 5
    assert "STOPSIGNAL SIGTERM" in dockerfile


def test_the_home_assistant_addon_builds_this_voxhost() -> None:
    config, build = addon_yaml("config.yaml"), addon_yaml("build.yaml")
    dockerfile = (ADDON / "Dockerfile").read_text()
    assert "ARG BUILD_FROM\nFROM ${BUILD_FROM}\n" in dockerfile
    assert set(build["build_from"]) == set(config["arch"])
    assert config["version"] == build["args"]["VOXHOST_VERSION"] == __version__
    extras = build["args"]["VOXHOST_EXTRAS"]
    assert f"ARG VOXHOST_EXTRAS={extras}\n" in dockerfile
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(extras.split(",")) <= set(pyproject["project"]["optional-dependencies"])
    assert 'CMD ["python3", "/run.py"]' in dockerfile


def test_the_repository_is_an_addon_repository_with_one_addon() -> None:
    """Added by git URL, the Supervisor reads repository.yaml and takes every config.yaml/json in the
    tree for an add-on: there must be exactly the one."""
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert repository["name"] == "voxhost"
    assert set(repository) <= {"name", "url", "maintainer"}
    found = [
        path.relative_to(ROOT)
        for suffix in ("yaml", "yml", "json")
        for path in ROOT.rglob(f"config.{suffix}")
    ]
    # what a clone holds: not the virtual environment or build output a checkout may have beside it
    configs = sorted(
        path.as_posix()
        for path in found
        if not any(part.startswith(".") or part in ("build", "dist") for part in path.parts)
    )
    assert configs == ["homeassistant/voxhost/config.yaml"]
