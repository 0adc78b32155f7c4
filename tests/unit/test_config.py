from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from slipstream.config import load_settings, parse_api_keys, path_from_url
from slipstream.errors import ConfigError
from tests import helpers


def test_defaults_are_the_embedded_pipeline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.broker_url == "local:///./data/queue.db"
    assert settings.store_url == "duckdb:///./data/warehouse.duckdb"
    assert path_from_url(settings.broker_url) == tmp_path / "data" / "queue.db"


def test_absolute_paths_take_four_slashes() -> None:
    assert path_from_url("local:////var/lib/slipstream/q.db") == Path("/var/lib/slipstream/q.db")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "SLIPSTREAM_BATCH_SIZE",
            "lots",
            "SLIPSTREAM_BATCH_SIZE='lots': Input should be a valid integer",
        ),
        ("SLIPSTREAM_BATCH_SIZE", "0", "SLIPSTREAM_BATCH_SIZE='0'"),
        ("SLIPSTREAM_BROKER_URL", "queue.db", "SLIPSTREAM_BROKER_URL='queue.db': must be a URL"),
        (
            "SLIPSTREAM_API_KEYS",
            "abcdefgh:write",
            "SLIPSTREAM_API_KEYS: entry 1 has unknown scope write",
        ),
        ("SLIPSTREAM_API_KEYS", "short:read", "at least 8 characters"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    if variable == "SLIPSTREAM_API_KEYS":
        assert value.split(":")[0] not in message, "a secret must not be echoed"


def test_api_keys_format() -> None:
    keys = parse_api_keys("reader-key-1:read, writer-key-1:ingest , ops-key-123:read+ingest+admin")
    assert keys == {
        "reader-key-1": {"read"},
        "writer-key-1": {"ingest"},
        "ops-key-123": {"read", "ingest", "admin"},
    }
    assert parse_api_keys("") == {}


def test_env_wins_over_dotenv_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slipstream.toml").write_text("batch_size = 7\nbatch_wait = 0.5\nport = 9000\n")
    (tmp_path / ".env").write_text("SLIPSTREAM_BATCH_WAIT=0.25\nSLIPSTREAM_PORT=9001\n")
    monkeypatch.setenv("SLIPSTREAM_PORT", "9002")
    settings = load_settings()
    assert (settings.batch_size, settings.batch_wait, settings.port) == (7, 0.25, 9002)


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("slipstream.toml", b"batch_size = \n", "slipstream.toml: not valid TOML: Invalid value"),
        ("slipstream.toml", b"port = 1 # \xe9\n", "slipstream.toml: not UTF-8 text (byte 11)"),
        (".env", b"SLIPSTREAM_PORT=\xff\n", ".env: not UTF-8 text (byte 16)"),
    ],
    ids=["toml-syntax", "toml-not-utf8", "env-not-utf8"],
)
def test_an_unreadable_settings_file_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, file: str, content: bytes, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / file).write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_url_that_does_not_parse_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLIPSTREAM_BROKER_URL", "nats://[::1")
    with pytest.raises(ConfigError, match=r"SLIPSTREAM_BROKER_URL='nats://\[::1': not a valid URL"):
        load_settings()


def test_a_bad_url_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_STORE_URL", "postgresql//app:s3cret-pw@db/events")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "SLIPSTREAM_STORE_URL" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgress://app:s3cret-pw@db/events",  # unknown scheme
        "nats://app:s3cret-pw@nats:4222/path",  # a NATS URL with a path
        "nats://app:s3cret-pw@nats:4222?bogus=1",  # an unknown NATS option
    ],
)
def test_backend_url_errors_never_show_the_password(url: str) -> None:
    from slipstream.brokers import create_broker
    from slipstream.stores import create_store

    create: Callable[[], object]
    if url.startswith("nats"):
        create = partial(create_broker, helpers.settings(broker_url=url))
    else:
        create = partial(create_store, helpers.settings(store_url=url))
    with pytest.raises(ConfigError) as caught:
        create()
    assert "s3cret-pw" not in str(caught.value)
    assert "app:***@" in str(caught.value)


def test_the_asgi_factory_runs_the_worker_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from slipstream.api import asgi

    monkeypatch.chdir(tmp_path)
    assert asgi.app().state.runtime.worker is not None
    for off in ("false", "0", "no"):
        monkeypatch.setenv("SLIPSTREAM_WORKER_IN_API", off)
        assert asgi.app().state.runtime.worker is None
    monkeypatch.setenv("SLIPSTREAM_WORKER_IN_API", "maybe")
    with pytest.raises(ConfigError, match="SLIPSTREAM_WORKER_IN_API='maybe'"):
        asgi.app()


def test_client_keys_come_from_the_settings_like_every_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--api-key, else SLIPSTREAM_CLIENT_KEY (from the environment or the .env file), else the
    former SLIPSTREAM_API_KEY with a warning."""
    from slipstream.cli_support import client_key

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SLIPSTREAM_API_KEY=former-key-1\n")
    assert client_key("given-key-1", load_settings()) == "given-key-1"
    assert client_key(None, load_settings()) == "former-key-1"
    assert "SLIPSTREAM_API_KEY is now SLIPSTREAM_CLIENT_KEY" in capsys.readouterr().err
    (tmp_path / ".env").write_text("SLIPSTREAM_CLIENT_KEY=client-key-1\nSLIPSTREAM_API_KEY=x\n")
    assert client_key(None, load_settings()) == "client-key-1"
    assert "warning" not in capsys.readouterr().err
