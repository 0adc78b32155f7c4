"""Property-based requests generated from /openapi.json never make the server answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from slipstream.api.app import create_app
from slipstream.config import Settings
from slipstream.runtime import Runtime
from tests.e2e.harness import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _spec() -> dict[str, object]:
    # The schema the server serves, built without starting anything.
    app = create_app(Runtime(Settings(_env_file=None)))  # type: ignore[call-arg]
    return app.openapi()


schema = schemathesis.openapi.from_dict(_spec())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    server = ServerProcess(workdir).start()
    yield server
    server.kill()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, live: ServerProcess) -> None:
    response = case.call(base_url=live.url, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
