"""Schemathesis against the running server's own OpenAPI schema: for inputs the schema allows and inputs
it forbids, every operation answers within a timeout, never with a 5xx, and in the documented shape.

Operations are listed at collection from the app's schema (the same code the server runs; the test
checks that the served schema is that one), so each operation is a test of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import ServerProcess, start_server
from voxhost.api.http import create_app
from voxhost.settings import Settings

EXAMPLES = 60  # per operation (and its invalid-input twin)
CALL_TIMEOUT = 60  # seconds; a call that takes longer is a hang, and fails the test
# Short texts and uploads keep each generated request cheap; the limits themselves are under test too.
FLAGS = (
    "--model",
    "tiny.en",
    "--model",
    "en_US-joe-medium",
    "--max-input-chars",
    "200",
    "--max-upload-mb",
    "1",
)
SETTINGS = Settings(models=["tiny.en", "en_US-joe-medium"], max_input_chars=200, max_upload_mb=1)
SCHEMA = create_app(SETTINGS).openapi()
OPERATIONS = [result.ok() for result in schemathesis.openapi.from_dict(SCHEMA).get_all_operations()]

ANSWERS: dict[int, int] = {}  # requests sent, by status class (2 for 2xx, ...)


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("schema"), cache_dir, *FLAGS, "--preload")
    yield server
    server.stop()


def test_the_served_schema_is_the_one_under_test(schema_server: ServerProcess) -> None:
    assert httpx.get(schema_server.url + "/openapi.json", timeout=10).json() == SCHEMA
    assert len(OPERATIONS) >= 12


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_any_request_gets_a_well_formed_answer_and_never_a_5xx(
    schema_server: ServerProcess, operation: schemathesis.APIOperation
) -> None:
    @given(
        case=operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE)
        | operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
    )
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=schema_server.url, timeout=CALL_TIMEOUT)
        ANSWERS[response.status_code // 100] = ANSWERS.get(response.status_code // 100, 0) + 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
        # Every check but one: "schema-valid data is accepted" can't hold for bytes that are not audio, or
        # a voice name that no loaded model has; a schema can't say either. Those get a 400, checked here.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    check()
    assert "Traceback" not in schema_server.log()
    assert httpx.get(schema_server.url + "/health/ready", timeout=10).status_code == 200


def test_the_fuzzing_ran_and_the_server_survived(schema_server: ServerProcess) -> None:
    """Last in the module: figures for the README, and the server still ready after it all."""
    print(f"schemathesis: {sum(ANSWERS.values())} requests, by status class {sorted(ANSWERS.items())}")
    assert ANSWERS.get(4, 0) > 200  # invalid input was tried, and refused
    assert ANSWERS.get(2, 0) > 20  # and valid input answered
    assert 5 not in ANSWERS
    assert httpx.get(schema_server.url + "/health/ready", timeout=10).status_code == 200
