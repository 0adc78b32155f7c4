"""Backend URL options: one model per backend, one policy for all of them.

Nothing here connects: building a backend from its URL reads the options, and that is where a
wrong one must stop the process, naming the variable, the option and the valid ones, with any
password in the URL masked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from slipstream.brokers import create_broker
from slipstream.errors import ConfigError
from slipstream.stores import create_store
from slipstream.stores.duckdb import DuckDBStore
from slipstream.stores.postgres import PostgresStore
from tests import helpers

SECRET = "s3cret-pw"


def build(url: str) -> object:
    """The backend `url` names (a broker or a store), made but not opened."""
    if url.startswith(("duckdb:", "postgresql:", "postgres:", "bigquery:")):
        return create_store(helpers.settings(store_url=url))
    return create_broker(helpers.settings(broker_url=url))


def refusal(url: str) -> str:
    with pytest.raises(ConfigError) as info:
        build(url)
    message = str(info.value)
    assert SECRET not in message
    return message


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("local:///{tmp}/queue.db?bogus=1", "this URL takes no options"),
        (
            f"nats://bob:{SECRET}@127.0.0.1:4222?bogus=1",
            "the options are prefix, replicas, max_age",
        ),
        ("pubsub://my-project?bogus=1", "the options are prefix"),
        ("sqs://us-east-1?bogus=1", "the options are prefix, sns"),
        ("duckdb:///{tmp}/w.duckdb?bogus=1", "the options are threads, and any DuckDB setting"),
        (
            f"postgresql://app:{SECRET}@db:5432/events?bogus=1",
            "the options are schema, pool_min, pool_max, pool_timeout, and any libpq connection",
        ),
        ("bigquery://my-project/events?bogus=1", "the options are location"),
    ],
)
def test_every_backend_refuses_an_unknown_option_the_same_way(
    url: str, valid: str, tmp_path: Path
) -> None:
    message = refusal(url.format(tmp=tmp_path))
    assert message.startswith(("SLIPSTREAM_BROKER_URL='", "SLIPSTREAM_STORE_URL='"))
    assert "unknown option 'bogus'; " in message
    assert valid in message


def test_the_variable_named_is_the_one_that_holds_the_url(tmp_path: Path) -> None:
    assert refusal(f"local:///{tmp_path}/q.db?x=1").startswith("SLIPSTREAM_BROKER_URL='local:")
    assert refusal(f"duckdb:///{tmp_path}/w.db?x=1").startswith("SLIPSTREAM_STORE_URL='duckdb:")


def test_every_unknown_option_is_named_at_once() -> None:
    message = refusal("sqs://us-east-1?prefx=a&sms=false")
    assert "unknown options 'prefx', 'sms'; the options are prefix, sns" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            f"nats://bob:{SECRET}@h1?replicas=three",
            "option replicas='three' must be a whole number",
        ),
        ("nats://h1?max_age=-5", "option max_age='-5' should be greater than 0"),
        ("sqs://us-east-1?sns=maybe", "option sns='maybe' must be true or false"),
        (f"postgresql://app:{SECRET}@db/events?pool_max=many", "option pool_max='many' must be a"),
        ("postgresql://db/events?pool_timeout=inf", "option pool_timeout='inf' must be a finite"),
        ("postgresql://db/events?schema=Bad-Name", "option schema='Bad-Name' must be lower case"),
        ("duckdb:///:memory:?threads=0", "option threads='0' should be greater than or equal to 1"),
    ],
)
def test_a_bad_value_names_the_option_and_what_is_wrong(url: str, problem: str) -> None:
    message = refusal(url)
    assert message.startswith("SLIPSTREAM_")
    assert problem in message


def test_a_password_given_as_an_option_is_masked_too() -> None:
    message = refusal(f"postgresql://db/events?password={SECRET}&bogus=1")
    assert "password=***" in message


def test_postgresql_passes_libpq_parameters_on_and_keeps_its_own() -> None:
    store = build("postgresql://app@db/events?schema=analytics&sslmode=require&pool_max=4")
    assert isinstance(store, PostgresStore)
    params = conninfo_to_dict(store.conninfo)
    assert params["sslmode"] == "require"
    assert "schema" not in params
    assert "pool_max" not in params
    assert (store.schema, store._pool_max) == ("analytics", 4)


def test_the_test_only_schema_drop_is_no_option() -> None:
    """Closing a store never drops its schema: tests drop theirs themselves."""
    message = refusal("postgresql://db/events?schema=t_x&drop_schema_on_close=true")
    assert "unknown option 'drop_schema_on_close'" in message


def test_duckdb_passes_its_settings_on_by_any_case_of_their_names(tmp_path: Path) -> None:
    store = build(f"duckdb:///{tmp_path}/w.duckdb?memory_limit=256MB&TimeZone=UTC&threads=2")
    assert isinstance(store, DuckDBStore)
    assert store._config == {"threads": 2, "memory_limit": "256MB", "TimeZone": "UTC"}


@pytest.mark.parametrize(
    "url", [f"local://bob:{SECRET}@host/queue.db", f"duckdb://bob:{SECRET}@h/w"]
)
def test_a_file_url_with_a_host_is_refused_with_its_password_masked(url: str) -> None:
    assert "three slashes" in refusal(url)
