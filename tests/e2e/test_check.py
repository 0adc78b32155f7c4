"""`slipstream check` as a user runs it: beside a running server, in a fresh directory, and
with each kind of configuration mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.commands import slipstream
from tests.e2e.harness import ServerProcess
from tests.services import free_port

pytestmark = pytest.mark.e2e


def lines(output: str, state: str, name: str) -> list[str]:
    """The report's lines for one check: `STATE  NAME  detail`."""
    return [line for line in output.splitlines() if line.split()[:2] == [state, name]]


def test_a_fresh_directory_is_reported_and_left_untouched(tmp_path: Path) -> None:
    result = slipstream("check", cwd=tmp_path, env={"SLIPSTREAM_PORT": str(free_port())})
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("settings", "datasets"):
        assert lines(result.stdout, "ok", name), result.stdout
    for name, file in (("broker", "queue.db"), ("store", "warehouse.duckdb")):
        [line] = lines(result.stdout, "ok", name)
        assert f"({tmp_path / 'data' / file}): not created yet" in line
    assert lines(result.stdout, "--", "server")
    assert list(tmp_path.iterdir()) == [], "check must create nothing"


def test_beside_a_running_server_the_server_answers_for_its_files(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        assert server.process is not None
        here = {"SLIPSTREAM_PORT": str(server.port)}
        result = slipstream("check", cwd=tmp_path, env=here)
        assert result.returncode == 0, result.stdout + result.stderr
        [store] = lines(result.stdout, "ok", "store")
        assert f"in use by process {server.process.pid} (" in store
        assert f"the server at {server.url} reports it ok" in store
        assert lines(result.stdout, "ok", "broker")  # SQLite in WAL mode: shared, not locked
        [answer] = lines(result.stdout, "ok", "server")
        assert answer.endswith(f"{server.url}: ready")

        elsewhere = {"SLIPSTREAM_PORT": str(free_port())}  # the server is not where check asks
        result = slipstream("check", cwd=tmp_path, env=elsewhere)
        assert result.returncode == 1
        [store] = lines(result.stdout, "FAILED", "store")
        assert f"in use by process {server.process.pid} (" in store
        assert "set SLIPSTREAM_HOST and SLIPSTREAM_PORT to its address" in store
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("variable", "value", "name", "message"),
    [
        (
            "SLIPSTREAM_BROKER_URL",
            "kafka://127.0.0.1:9092",
            "broker",
            "SLIPSTREAM_BROKER_URL='kafka://127.0.0.1:9092': unknown scheme 'kafka'; use one of:",
        ),
        ("SLIPSTREAM_STORE_URL", "mysql://db/x", "store", "unknown scheme 'mysql'; use one of:"),
        ("SLIPSTREAM_BROKER_URL", "local://queue.db", "broker", "SCHEME:////absolute/path"),
        ("SLIPSTREAM_BROKER_URL", "nats://", "broker", "expected nats://host:4222"),
        ("SLIPSTREAM_STORE_URL", "bigquery://p", "store", "expected bigquery://PROJECT/DATASET"),
        ("SLIPSTREAM_BROKER_URL", "nats://[::1", "settings", "not a valid URL: Invalid IPv6 URL"),
        ("SLIPSTREAM_DATASETS", ".", "datasets", "cannot read the datasets file: Is a directory"),
        ("SLIPSTREAM_DATASETS", "latin1.yaml", "datasets", "latin1.yaml: the datasets file is not"),
    ],
    ids=[
        "unknown-broker",
        "unknown-store",
        "local-host",
        "nats-empty",
        "bigquery-no-dataset",
        "unparsable-url",
        "datasets-directory",
        "datasets-not-utf8",
    ],
)
def test_each_configuration_mistake_is_one_line(
    tmp_path: Path, variable: str, value: str, name: str, message: str
) -> None:
    (tmp_path / "latin1.yaml").write_bytes("datasets: [{name: caf\xe9}]\n".encode("latin-1"))
    env = {variable: value, "SLIPSTREAM_PORT": str(free_port())}
    result = slipstream("check", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    [line] = lines(result.stdout, "FAILED", name)
    assert message in line, result.stdout


def test_a_missing_driver_names_the_extra(tmp_path: Path) -> None:
    hide_nats = "import sys; sys.modules['nats'] = None; from slipstream.cli import main; main()"
    env = {"SLIPSTREAM_BROKER_URL": "nats://127.0.0.1:4222", "SLIPSTREAM_PORT": str(free_port())}
    result = slipstream("check", cwd=tmp_path, env=env, python=("-c", hide_nats))
    assert result.returncode == 1
    [line] = lines(result.stdout, "FAILED", "broker")
    assert line.endswith("the nats:// backend needs its driver: pip install 'slipstream[nats]'")
    assert lines(result.stdout, "ok", "store")  # one bad backend does not hide the other


@pytest.mark.parametrize("command", ["up", "publish", "check"])
@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("slipstream.toml", b"batch_size = \n", "slipstream.toml: not valid TOML: Invalid value"),
        (".env", b"SLIPSTREAM_PORT=\xff\n", ".env: not UTF-8 text (byte 16)"),
    ],
    ids=["toml", "env"],
)
def test_an_unreadable_settings_file_stops_every_command_in_one_line(
    tmp_path: Path, command: str, file: str, content: bytes, message: str
) -> None:
    (tmp_path / file).write_bytes(content)
    args = ["publish", "flights", "-"] if command == "publish" else [command]
    result = slipstream(*args, cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr, result.stderr
    assert message in result.stdout + result.stderr


def test_an_unreachable_broker_is_reported_with_its_reason(tmp_path: Path) -> None:
    env = {"SLIPSTREAM_BROKER_URL": f"nats://127.0.0.1:{free_port()}"}
    result = slipstream("check", cwd=tmp_path, env={**env, "SLIPSTREAM_PORT": str(free_port())})
    assert result.returncode == 1
    [line] = lines(result.stdout, "FAILED", "broker")
    assert "Connect call failed" in line, line  # the reason, not a timeout of the check's own
