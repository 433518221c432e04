"""The Dockerfile and the systemd unit agree with the code: settings they set exist and parse, ports and
the health probe match the server's, and stopping gives the drain its grace period. (No image is built
here: that needs a registry for the base image.)"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

from voxhost.api.http import create_app
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
