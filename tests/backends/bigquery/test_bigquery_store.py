"""The BigQuery store's own text and control flow: its SQL, schemas, job configs, Parquet
batches, and the failures bqemulator cannot stage (a dataset in another location, a table
changed under a migration, a staging table that will not drop, missing credentials).

What every store does is proven against bqemulator by tests/contracts. Here the
`bigquery.Client` is a fake (`FakeClient`) that records the calls the store makes and answers
with canned tables, jobs and `bigquery.Row`s. The objects passed to it are the library's own
(`Table`, `LoadJobConfig`, `QueryJobConfig`, `ScalarQueryParameter`…), and the errors raised are
`google.api_core.exceptions` built the way the library builds them from a failed job.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import bigquery
from google.cloud.bigquery.job.base import _error_result_to_exception

from slipstream.datasets import Dataset, DatasetError, FieldSpec
from slipstream.errors import (
    BackendUnavailable,
    ConfigError,
    TerminalStoreError,
    TransientStoreError,
)
from slipstream.events import EventCodec, EventRows, Rejected
from slipstream.stores import ListQuery, QuarantineQuery, StatsQuery, create_store
from slipstream.stores import bigquery_schema as tables
from slipstream.stores import bigquery_sql as sql
from slipstream.stores.bigquery import BigQueryStore
from slipstream.stores.dialects import BIGQUERY
from slipstream.stores.reads import Reads
from tests import helpers

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TARGET = tables.Target("my-project", "events", "EU")
FLIGHTS = "`my-project`.`events`.`flights`"


# --- the fake client ---------------------------------------------------------------------------


class FakeJob:
    def __init__(self, affected: int | None = None, error: Exception | None = None) -> None:
        self.num_dml_affected_rows = affected
        self.error = error
        self.timeout: float | None = None

    def result(self, timeout: float | None = None) -> FakeJob:
        self.timeout = timeout
        if self.error is not None:
            raise self.error
        return self


class FakeClient:
    """Records every call; tables live in a dict, jobs answer what the test arranged."""

    def __init__(self, location: str | None = "EU") -> None:
        self.location = location
        self.calls: list[tuple[str, Any]] = []
        self.datasets: dict[str, bigquery.Dataset] = {}
        self.tables: dict[str, bigquery.Table] = {}
        self.loads: list[tuple[str, bytes, bigquery.LoadJobConfig]] = []
        self.queries: list[tuple[str, bigquery.QueryJobConfig]] = []
        self.affected: list[int] = []  # num_dml_affected_rows of the next DML jobs
        self.rows: list[list[bigquery.Row]] = []  # results of the next query_and_wait calls
        self.errors: dict[str, Exception] = {}  # method (or "merge") → error it raises
        self.closed = False

    def _maybe_fail(self, method: str) -> None:
        self.calls.append((method, None))
        if method in self.errors:
            raise self.errors[method]

    def get_dataset(self, ref: str, timeout: float | None = None) -> bigquery.Dataset:
        self._maybe_fail("get_dataset")
        if ref not in self.datasets:
            raise gexc.NotFound(f"Dataset {ref} not found")
        return self.datasets[ref]

    def create_dataset(self, dataset: bigquery.Dataset, exists_ok: bool = False) -> Any:
        self._maybe_fail("create_dataset")
        self.datasets.setdefault(f"{dataset.project}.{dataset.dataset_id}", dataset)
        return self.datasets[f"{dataset.project}.{dataset.dataset_id}"]

    def get_table(self, ref: str) -> bigquery.Table:
        self._maybe_fail("get_table")
        if ref not in self.tables:
            raise gexc.NotFound(f"Table {ref} not found")
        return bigquery.Table.from_api_repr(self.tables[ref].to_api_repr())  # a fresh copy

    def create_table(self, table: bigquery.Table, exists_ok: bool = False) -> bigquery.Table:
        self._maybe_fail("create_table")
        ref = f"{table.project}.{table.dataset_id}.{table.table_id}"
        if ref in self.tables:
            if not exists_ok:
                raise gexc.Conflict(f"Already Exists: Table {ref}")
            return self.tables[ref]
        self.tables[ref] = table
        return table

    def update_table(self, table: bigquery.Table, fields: list[str]) -> bigquery.Table:
        self._maybe_fail("update_table")
        self.calls[-1] = ("update_table", fields)
        self.tables[f"{table.project}.{table.dataset_id}.{table.table_id}"] = table
        return table

    def delete_table(self, ref: str, not_found_ok: bool = False) -> None:
        self._maybe_fail("delete_table")
        self.calls[-1] = ("delete_table", ref)
        self.tables.pop(ref, None)

    def load_table_from_file(
        self, file: io.BytesIO, ref: str, job_config: bigquery.LoadJobConfig
    ) -> FakeJob:
        self._maybe_fail("load_table_from_file")
        assert ref in self.tables, "loads go into the staging table made just before"
        self.loads.append((ref, file.read(), job_config))
        return FakeJob()

    def query(self, statement: str, job_config: bigquery.QueryJobConfig) -> FakeJob:
        self._maybe_fail("query")
        self.queries.append((statement, job_config))
        if statement.startswith("MERGE") and "merge" in self.errors:
            return FakeJob(error=self.errors["merge"])
        return FakeJob(self.affected.pop(0) if self.affected else 0)

    def query_and_wait(
        self, statement: str, job_config: bigquery.QueryJobConfig, wait_timeout: float
    ) -> list[bigquery.Row]:
        self._maybe_fail("query_and_wait")
        self.queries.append((statement, job_config))
        return self.rows.pop(0) if self.rows else []

    def close(self) -> None:
        self.closed = True


def rows(*values: tuple[Any, ...]) -> list[bigquery.Row]:
    """Result rows as the library hands them out (positional access is all the store uses)."""
    return [bigquery.Row(v, {f"c{i}": i for i in range(len(v))}) for v in values]


def job_error(reason: str, message: str = "boom") -> gexc.GoogleAPICallError:
    """The exception `job.result()` raises for a failed job with this reason."""
    error: gexc.GoogleAPICallError = _error_result_to_exception(
        {"reason": reason, "message": message}
    )
    return error


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def typed(flights: Dataset) -> Dataset:
    extra = (
        FieldSpec(name="ratio", type="float"),
        FieldSpec(name="on_time", type="bool"),
        FieldSpec(name="payload", type="json"),
        FieldSpec(name="landed_at", type="timestamp"),
    )
    return flights.model_copy(update={"fields": (*flights.fields, *extra)})


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


def make_store(client: FakeClient, create: bool = True) -> BigQueryStore:
    return BigQueryStore(TARGET, create_resources=create, client_factory=lambda target: client)  # type: ignore[arg-type,return-value]


@pytest.fixture
async def store(client: FakeClient, flights: Dataset) -> Any:
    instance = make_store(client)
    await instance.open([flights])
    client.calls.clear()
    yield instance
    await instance.close()


def event(i: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"ev-{i:03d}",
        "flight_id": f"LA{800 + i}",
        "status": "landed",
        "event_time": (T0 + timedelta(minutes=7 * i)).isoformat(),
        "delay_minutes": i,
    }
    base.update(fields)
    return base


def decode(dataset: Dataset, *events: dict[str, Any]) -> EventRows:
    messages = [(str(e["id"]), orjson.dumps(e), T0) for e in events]
    decoded, rejected = EventCodec(dataset).decode(messages)
    assert not rejected
    return decoded


def merges(client: FakeClient) -> list[str]:
    return [statement for statement, _ in client.queries if statement.startswith("MERGE")]


# --- URL and registry --------------------------------------------------------------------------


def test_url_names_project_dataset_and_optional_location() -> None:
    settings = helpers.settings(store_url="bigquery://my-project/events?location=EU")

    store = create_store(settings)

    assert isinstance(store, BigQueryStore)
    assert store.target == tables.Target("my-project", "events", "EU")
    assert store._client is None  # made lazily, on first use
    bare = tables.parse_url("bigquery://example.com:my-project/raw_events")
    assert bare == tables.Target("example.com:my-project", "raw_events", None)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("bigquery://my-project", "PROJECT/DATASET"),
        ("bigquery://my-project/a/b", "PROJECT/DATASET"),
        ("bigquery://My_Project/events", "not a Google Cloud project id"),
        ("bigquery://my-project/ev-ents", "only letters, digits and _"),
        ("bigquery://my-project/events?region=EU", "unknown option 'region'; the options are"),
    ],
)
def test_bad_urls_fail_naming_the_variable(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="SLIPSTREAM_STORE_URL") as caught:
        tables.parse_url(url)
    assert complaint in str(caught.value)


def test_identifiers_are_validated_before_being_backquoted() -> None:
    assert tables.quote("delay_minutes") == "`delay_minutes`"
    assert TARGET.sql("flights") == FLIGHTS
    for bad in ("a`b", "x; DROP TABLE y", "", "1abc"):
        with pytest.raises(ValueError, match="cannot be a BigQuery"):
            tables.quote(bad)


# --- schema, partitioning, clustering -----------------------------------------------------------


def test_every_field_type_maps_to_a_nullable_column(typed: Dataset) -> None:
    schema = tables.table_schema(typed)

    assert [(c.name, c.field_type, c.mode) for c in schema] == [
        ("id", "STRING", "NULLABLE"),
        ("flight_id", "STRING", "NULLABLE"),
        ("status", "STRING", "NULLABLE"),
        ("event_time", "TIMESTAMP", "NULLABLE"),
        ("origin", "STRING", "NULLABLE"),
        ("destination", "STRING", "NULLABLE"),
        ("delay_minutes", "INT64", "NULLABLE"),
        ("gate", "STRING", "NULLABLE"),
        ("aircraft", "STRING", "NULLABLE"),
        ("ratio", "FLOAT64", "NULLABLE"),
        ("on_time", "BOOL", "NULLABLE"),
        ("payload", "JSON", "NULLABLE"),
        ("landed_at", "TIMESTAMP", "NULLABLE"),
        ("extra", "JSON", "NULLABLE"),
        ("_received_at", "TIMESTAMP", "NULLABLE"),
        ("_stored_at", "TIMESTAMP", "NULLABLE"),
    ]
    assert schema[1].description.startswith("Carrier code")


def test_table_is_day_partitioned_on_event_time_and_clustered_key_first(typed: Dataset) -> None:
    table = tables.new_table(TARGET, typed)

    assert table.reference.path == "/projects/my-project/datasets/events/tables/flights"
    assert table.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
    assert table.time_partitioning.field == "event_time"
    assert table.time_partitioning.expiration_ms is None  # retention is the sweep's (docs)
    assert table.require_partition_filter is None  # GET by id has no time range
    # key, then enums, then other clusterable fields; never json, float or the partition column
    assert table.clustering_fields == ["id", "status", "flight_id", "origin"]
    quarantine = tables.new_quarantine_table(TARGET, typed)
    assert quarantine.table_id == "flights__quarantine"
    assert [(c.name, c.field_type) for c in quarantine.schema] == [
        ("id", "STRING"),
        ("reason", "STRING"),
        ("raw", "STRING"),
        ("received_at", "TIMESTAMP"),
    ]
    assert quarantine.clustering_fields == ["id"]


async def test_open_creates_dataset_table_and_quarantine(
    client: FakeClient, flights: Dataset
) -> None:
    store = make_store(client)

    await store.open([flights])

    dataset = client.datasets["my-project.events"]
    assert dataset.location == "EU"
    assert set(client.tables) == {
        "my-project.events.flights",
        "my-project.events.flights__quarantine",
    }
    table = client.tables["my-project.events.flights"]
    assert table.time_partitioning.field == "event_time"
    calls = [name for name, _ in client.calls]
    assert "update_table" not in calls  # a table just made needs no migration
    await store.open([flights])  # again: nothing new is made
    assert [n for n, _ in client.calls].count("create_dataset") == 1
    await store.close()
    assert client.closed


async def test_without_create_resources_missing_ones_fail_by_name(
    client: FakeClient, flights: Dataset
) -> None:
    with pytest.raises(ConfigError, match=r"dataset my-project\.events does not exist"):
        await make_store(client, create=False).open([flights])
    client.datasets["my-project.events"] = bigquery.Dataset("my-project.events")
    with pytest.raises(ConfigError, match=r"table my-project\.events\.flights does not exist"):
        await make_store(client, create=False).open([flights])
    assert not client.tables


async def test_dataset_in_another_location_is_refused(client: FakeClient, flights: Dataset) -> None:
    elsewhere = bigquery.Dataset("my-project.events")
    elsewhere.location = "US"
    client.datasets["my-project.events"] = elsewhere

    with pytest.raises(ConfigError, match=r"location EU.*is in US"):
        await make_store(client).open([flights])


# --- migrations ---------------------------------------------------------------------------------


def existing_table(dataset: Dataset, columns: list[tuple[str, str]]) -> bigquery.Table:
    """A table as `get_table` returns it: legacy type names, as the API answers."""
    table = bigquery.Table(TARGET.ref(dataset.name))
    table.schema = [bigquery.SchemaField(name, kind) for name, kind in columns]
    return table


OLD_COLUMNS = [
    ("id", "STRING"),
    ("flight_id", "STRING"),
    ("status", "STRING"),
    ("event_time", "TIMESTAMP"),
    ("origin", "STRING"),
    ("destination", "STRING"),
    ("delay_minutes", "INTEGER"),
    ("gate", "STRING"),
    ("aircraft", "STRING"),
    ("extra", "JSON"),
    ("_received_at", "TIMESTAMP"),
    ("_stored_at", "TIMESTAMP"),
]


async def test_migration_adds_a_nullable_field_with_update_table(
    client: FakeClient, typed: Dataset, flights: Dataset
) -> None:
    client.tables[TARGET.ref("flights")] = existing_table(flights, OLD_COLUMNS)

    await make_store(client).open([typed])

    assert ("update_table", ["schema"]) in client.calls
    schema = client.tables[TARGET.ref("flights")].schema
    assert [c.name for c in schema][: len(OLD_COLUMNS)] == [n for n, _ in OLD_COLUMNS]
    added = [(c.name, c.field_type, c.mode) for c in schema[len(OLD_COLUMNS) :]]
    assert added == [
        ("ratio", "FLOAT64", "NULLABLE"),
        ("on_time", "BOOL", "NULLABLE"),
        ("payload", "JSON", "NULLABLE"),
        ("landed_at", "TIMESTAMP", "NULLABLE"),
    ]


async def test_unchanged_table_is_left_alone(client: FakeClient, flights: Dataset) -> None:
    client.tables[TARGET.ref("flights")] = existing_table(flights, OLD_COLUMNS)

    await make_store(client).open([flights])

    assert "update_table" not in [name for name, _ in client.calls]


async def test_a_new_required_field_and_unmappable_columns_are_refused(
    client: FakeClient, flights: Dataset
) -> None:
    client.tables[TARGET.ref("flights")] = existing_table(flights, OLD_COLUMNS)
    required = flights.model_copy(
        update={"fields": (*flights.fields, FieldSpec(name="tail", type="string", required=True))}
    )
    with pytest.raises(DatasetError, match="new field 'tail' is required"):
        await make_store(client).open([required])

    columns = [(n, "NUMERIC" if n == "delay_minutes" else k) for n, k in OLD_COLUMNS]
    client.tables[TARGET.ref("flights")] = existing_table(flights, columns)
    with pytest.raises(DatasetError, match="NUMERIC in BigQuery"):
        await make_store(client).open([flights])


async def test_migration_reads_again_when_another_process_changed_the_table(
    client: FakeClient, typed: Dataset, flights: Dataset
) -> None:
    client.tables[TARGET.ref("flights")] = existing_table(flights, OLD_COLUMNS)
    client.errors["update_table"] = gexc.PreconditionFailed("etag mismatch")

    with pytest.raises(BackendUnavailable, match="kept changing"):
        await make_store(client).open([typed])
    assert [name for name, _ in client.calls].count("update_table") == 3


# --- writes ------------------------------------------------------------------------------------


async def test_write_loads_parquet_into_an_expiring_staging_table_then_merges(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    client.affected = [2]

    result = await store.write(flights, decode(flights, event(1), event(2)), [])

    assert result.inserted == 2
    [(ref, _data, config)] = client.loads
    prefix = "my-project.events.flights__staging_"
    assert ref.startswith(prefix)
    assert len(ref) == len(prefix) + 32
    assert config.source_format == bigquery.SourceFormat.PARQUET
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_EMPTY
    assert config.create_disposition == bigquery.CreateDisposition.CREATE_NEVER
    assert [(f.name, f.field_type) for f in config.schema] == [
        (f.name, f.field_type) for f in tables.staging_schema(flights)
    ]
    calls = [name for name, _ in client.calls]
    assert calls == ["create_table", "load_table_from_file", "query", "delete_table"]
    assert ("delete_table", ref) in client.calls
    assert ref not in client.tables
    [(statement, job_config)] = client.queries
    staging = ref.rsplit(".", 1)[1]
    assert statement == sql.merge_rows(TARGET, flights, staging)
    assert job_config.labels == {
        "app": "slipstream",
        "slipstream_dataset": "flights",
        "slipstream_op": "merge",
    }
    times = {p.name: p for p in job_config.query_parameters}
    assert times["first_time"].type_ == "TIMESTAMP"
    assert (times["first_time"].value, times["last_time"].value) == (
        T0 + timedelta(minutes=7),
        T0 + timedelta(minutes=14),
    )


async def test_staging_table_expires_by_itself(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    kept: list[bigquery.Table] = []
    original = client.create_table

    def spy(table: bigquery.Table, exists_ok: bool = False) -> bigquery.Table:
        kept.append(table)
        return original(table, exists_ok)

    client.create_table = spy  # type: ignore[method-assign]
    before = datetime.now(UTC)

    await store.write(flights, decode(flights, event(1)), [])

    [staging] = kept
    assert staging.table_id.startswith("flights__staging_")
    assert staging.expires is not None
    assert before + timedelta(minutes=59) < staging.expires < before + timedelta(minutes=61)
    assert [c.field_type for c in staging.schema if c.name == "extra"] == ["STRING"]


def test_merge_inserts_only_unseen_key_and_event_time_and_prunes(typed: Dataset) -> None:
    statement = sql.merge_rows(TARGET, typed, "flights__staging_abc")

    lines = statement.splitlines()
    assert lines[0] == f"MERGE {FLIGHTS} AS T"
    assert lines[1] == "USING `my-project`.`events`.`flights__staging_abc` AS S"
    assert lines[2] == "ON T.`id` = S.`id` AND T.`event_time` = S.`event_time`"
    assert lines[3] == "  AND T.`event_time` BETWEEN @first_time AND @last_time"
    assert lines[4] == "WHEN NOT MATCHED THEN"
    assert "WHEN MATCHED" not in statement  # a stored row is never touched: first write wins
    names = [*typed.field_names, "extra", "_received_at", "_stored_at"]
    assert lines[5] == f"  INSERT ({', '.join(f'`{n}`' for n in names)})"
    json = "PARSE_JSON(S.`{}`, wide_number_mode => 'round')"
    values = [json.format(n) if n == "payload" else f"S.`{n}`" for n in typed.field_names]
    values += [json.format("extra"), "S.`_received_at`", "CURRENT_TIMESTAMP()"]
    assert lines[6] == f"  VALUES ({', '.join(values)})"
    assert len(lines) == 7


async def test_inserted_is_the_merge_jobs_affected_rows(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    batch = decode(flights, event(1), event(2), event(3))
    client.affected = [1]  # two of the three were already stored: BigQuery says 1

    result = await store.write(flights, batch, [])

    assert (result.inserted, result.quarantined) == (1, 0)


async def test_quarantine_is_merged_on_id(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    rejected = [
        Rejected("q-1", "flight_id: missing", b'{"id": "q-1"}', T0),
        Rejected("q-1", "again", b"{}", T0),
        Rejected("q-2", "not valid JSON", b"\xff{", T0 + timedelta(seconds=1)),
    ]
    client.affected = [1, 2]

    result = await store.write(flights, decode(flights, event(1)), rejected)

    assert (result.inserted, result.quarantined) == (1, 2)
    assert [ref.rsplit(".", 1)[1].split("__staging_")[0] for ref, _, _ in client.loads] == [
        "flights",
        "flights__quarantine",
    ]
    statement = merges(client)[1]
    assert statement.startswith("MERGE `my-project`.`events`.`flights__quarantine` AS T\n")
    assert "ON T.id = S.id\nWHEN NOT MATCHED THEN\n" in statement
    assert statement.endswith("VALUES (S.id, S.reason, S.raw, S.received_at)")
    staged = pq.read_table(io.BytesIO(client.loads[1][1]))
    assert staged.column("id").to_pylist() == ["q-1", "q-2"]  # the first of an id wins
    assert staged.column("raw").to_pylist() == ['{"id": "q-1"}', "\ufffd{"]
    assert staged.schema.field("received_at").type == pa.timestamp("us", tz="UTC")
    assert [name for name, _ in client.calls].count("delete_table") == 2


async def test_nothing_to_write_makes_no_call(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    result = await store.write(flights, EventRows(EventCodec(flights).columns), [])

    assert (result.inserted, result.quarantined) == (0, 0)
    assert client.calls == []


async def test_staging_table_is_dropped_even_when_the_merge_fails(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    client.errors["merge"] = job_error("backendError")

    with pytest.raises(TransientStoreError, match="will retry"):
        await store.write(flights, decode(flights, event(1)), [])

    [(ref, _, _)] = client.loads
    assert ("delete_table", ref) in client.calls
    assert ref not in client.tables


async def test_a_failed_drop_of_the_staging_table_does_not_fail_the_write(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    client.errors["delete_table"] = gexc.ServiceUnavailable("later")
    client.affected = [1]

    assert (await store.write(flights, decode(flights, event(1)), [])).inserted == 1


@pytest.mark.parametrize(
    "error",
    [
        gexc.ServiceUnavailable("down"),
        gexc.InternalServerError("oops"),
        gexc.TooManyRequests("slow down"),
        gexc.DeadlineExceeded("late"),
        ConnectionError("reset by peer"),
        TimeoutError("job.result(timeout) ran out"),
        job_error("rateLimitExceeded"),  # 429 from a job
        gexc.Forbidden("quota", errors=[{"reason": "rateLimitExceeded"}]),  # 403 from the API
        job_error("quotaExceeded"),
        job_error("backendError"),
        job_error("invalidQuery", "Unrecognized name: gate"),  # our SQL vs the table: fixable
        job_error("accessDenied"),  # IAM: fixable by an operator, the data is not at fault
    ],
    ids=lambda e: "-".join([type(e).__name__, *sorted(tables.reasons(e))]),
)
async def test_failures_not_caused_by_the_rows_are_transient(
    client: FakeClient, store: BigQueryStore, flights: Dataset, error: Exception
) -> None:
    client.errors["merge"] = error

    with pytest.raises(TransientStoreError):
        await store.write(flights, decode(flights, event(1)), [])


async def test_a_value_bigquery_refuses_is_terminal(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    client.errors["load_table_from_file"] = job_error("invalid", "Error while reading data")

    with pytest.raises(TerminalStoreError, match="cannot store this batch"):
        await store.write(flights, decode(flights, event(1)), [])
    assert [name for name, _ in client.calls][-1] == "delete_table"


def test_error_sorting_reads_the_reason_of_the_job_error(flights: Dataset) -> None:
    invalid = job_error("invalid")
    assert isinstance(invalid, gexc.BadRequest)
    assert tables.reasons(invalid) == {"invalid"}
    assert isinstance(tables.sort_error(flights, invalid), TerminalStoreError)
    assert isinstance(tables.sort_error(flights, OverflowError("int too big")), TerminalStoreError)
    assert isinstance(tables.sort_error(flights, job_error("invalidQuery")), TransientStoreError)
    assert tables.is_unavailable(job_error("rateLimitExceeded"))
    assert not tables.is_unavailable(job_error("invalidQuery"))


# --- Parquet batches -----------------------------------------------------------------------------


def test_parquet_batch_round_trips_with_bigquery_friendly_types(typed: Dataset) -> None:
    payload = {"legs": [1, 2], "note": "ação", "nested": {"ok": True, "none": None}}
    batch_rows = decode(
        typed,
        event(
            2,
            event_time="2026-03-01T09:00:00.123456-03:00",
            delay_minutes=-(2**62),
            ratio=0.25,
            on_time=False,
            payload=payload,
            landed_at="2026-03-01T15:30:00.5+01:00",
            terminal="B",
        ),
        event(3, status="boarding"),
        event(3, status="landed"),  # a later duplicate of ev-003: dropped
    )

    batch = tables.rows_batch(typed, batch_rows)

    staged = pq.read_table(io.BytesIO(batch.parquet))
    assert batch.rows == staged.num_rows == 2
    types = {f.name: f.type for f in staged.schema}
    utc_micros = pa.timestamp("us", tz="UTC")
    assert types["event_time"] == types["landed_at"] == types["_received_at"] == utc_micros
    assert types["delay_minutes"] == pa.int64()
    assert types["ratio"] == pa.float64()
    assert types["on_time"] == pa.bool_()
    assert types["payload"] == types["extra"] == types["id"] == pa.string()
    assert staged.column_names == [c.name for c in tables.staging_schema(typed)]
    first = staged.to_pylist()[0]
    assert first["event_time"] == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert first["landed_at"] == datetime(2026, 3, 1, 14, 30, 0, 500000, tzinfo=UTC)
    assert first["delay_minutes"] == -(2**62)
    assert orjson.loads(first["payload"]) == payload
    assert orjson.loads(first["extra"]) == {"terminal": "B"}
    assert staged.column("status").to_pylist() == ["landed", "boarding"]  # first ev-003 kept
    meta = pq.read_metadata(io.BytesIO(batch.parquet)).schema.column(3)  # event_time
    stamp = orjson.loads(meta.logical_type.to_json())
    assert (stamp["Type"], stamp["isAdjustedToUTC"], stamp["timeUnit"]) == (
        "Timestamp",
        True,
        "microseconds",
    )
    params = {p.name: p.value for p in batch.params}
    assert params == {
        "first_time": datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "last_time": T0 + timedelta(minutes=21),
    }


def test_rows_with_unexpected_columns_are_refused(flights: Dataset) -> None:
    with pytest.raises(ValueError, match="not those of 'flights'"):
        tables.rows_batch(flights, EventRows(("id", "event_time"), [("a", T0)]))


# --- reads ---------------------------------------------------------------------------------------


def params_of(items: list[Any]) -> list[tuple[str, str, Any]]:
    return [(p.name, p.type_, p.value) for p in items]


def reads(dataset: Dataset) -> Reads:
    return Reads(BIGQUERY, dataset, (TARGET.project, TARGET.dataset))


def test_list_sql_with_filters_time_window_keyset_and_limit(flights: Dataset) -> None:
    since = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    query = ListQuery(
        limit=10,
        filters={"status": "delayed", "delay_minutes": 20, "gate": None, "origin": "O'Hare"},
        since=since,
        until=T0 + timedelta(hours=1),
        after=(T0 + timedelta(minutes=30), "ev-012"),
    )

    bound = reads(flights).list(query)

    select, where = bound.sql.split(" WHERE ")
    assert select.startswith("SELECT `id`, `flight_id`, `status`, `event_time`, ")
    assert select.endswith(f", TO_JSON_STRING(`extra`) FROM {FLIGHTS}")
    # The first position term is a plain range on the partitioning column: it prunes partitions.
    assert where == (
        "`event_time` >= @since AND `event_time` < @until AND "
        "(`event_time` <= @after_time AND (`event_time` < @after_time OR `id` < @after_key)) "
        "AND `status` = @f0 AND `delay_minutes` = @f1 AND `gate` IS NULL AND `origin` = @f3 "
        "ORDER BY `event_time` DESC, `id` DESC LIMIT 10"
    )
    params = sql.query_parameters(bound)
    assert sorted(params_of(params)) == [
        ("after_key", "STRING", "ev-012"),
        ("after_time", "TIMESTAMP", T0 + timedelta(minutes=30)),
        ("f0", "STRING", "delayed"),
        ("f1", "INT64", 20),
        ("f3", "STRING", "O'Hare"),
        ("since", "TIMESTAMP", T0),  # 09:00-03:00 is 12:00 UTC
        ("until", "TIMESTAMP", T0 + timedelta(hours=1)),
    ]
    assert bound.params["since"].utcoffset() == timedelta(0)
    assert "O'Hare" not in bound.sql


def test_list_sql_without_conditions_and_filter_types(typed: Dataset) -> None:
    bound = reads(typed).list(ListQuery(limit=-5))
    assert bound.sql.endswith(f"FROM {FLIGHTS} ORDER BY `event_time` DESC, `id` DESC LIMIT 0")
    assert "TO_JSON_STRING(`payload`)" in bound.sql
    assert sql.query_parameters(bound) == []

    naive = datetime(2026, 3, 1, 15, 0)
    filters = {"ratio": 0.5, "on_time": True, "landed_at": naive}
    typed_params = sql.query_parameters(reads(typed).list(ListQuery(filters=filters)))
    assert params_of(typed_params) == [
        ("f0", "FLOAT64", 0.5),
        ("f1", "BOOL", True),
        ("f2", "TIMESTAMP", naive.replace(tzinfo=UTC)),
    ]
    with pytest.raises(ValueError, match="json"):
        reads(typed).list(ListQuery(filters={"payload": "x"}))
    with pytest.raises(ValueError, match="no field 'nope'"):
        reads(typed).list(ListQuery(filters={"nope": "x"}))


def test_stats_sql_buckets_groups_and_averages(typed: Dataset) -> None:
    query = StatsQuery(bucket="hour", group_by="status", since=T0, until=T0 + timedelta(days=1))

    bound = reads(typed).stats(query)

    assert bound.sql == (
        "SELECT TIMESTAMP_TRUNC(`event_time`, HOUR), `status`, COUNT(*), "
        "CAST(AVG(`delay_minutes`) AS FLOAT64), CAST(AVG(`ratio`) AS FLOAT64) "
        f"FROM {FLIGHTS} WHERE `event_time` >= @since AND `event_time` < @until "
        "GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2 NULLS LAST"
    )
    assert bound.statement.columns == (
        "bucket",
        "group",
        "count",
        "avg_delay_minutes",
        "avg_ratio",
    )
    params = sql.query_parameters(bound)
    assert [p.type_ for p in params if isinstance(p, bigquery.ScalarQueryParameter)] == [
        "TIMESTAMP",
        "TIMESTAMP",
    ]
    plain = reads(typed).stats(StatsQuery(bucket="day"))
    assert plain.sql.startswith("SELECT TIMESTAMP_TRUNC(`event_time`, DAY), COUNT(*)")
    assert plain.sql.endswith("GROUP BY 1 ORDER BY 1 NULLS LAST")
    assert "group" not in plain.statement.columns
    with pytest.raises(ValueError, match="bucket"):
        reads(typed).stats(StatsQuery(bucket="week"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="json"):
        reads(typed).stats(StatsQuery(group_by="payload"))


def test_stats_sql_takes_the_list_filters(typed: Dataset) -> None:
    query = StatsQuery(
        bucket="day",
        filters={"status": "delayed", "ratio": 0.5, "gate": None},
        since=T0,
    )

    bound = reads(typed).stats(query)

    assert bound.sql.endswith(
        f"FROM {FLIGHTS} WHERE `event_time` >= @since AND `status` = @f0 AND `ratio` = @f1 "
        "AND `gate` IS NULL GROUP BY 1 ORDER BY 1 NULLS LAST"
    )
    assert params_of(sql.query_parameters(bound)) == [
        ("since", "TIMESTAMP", T0),
        ("f0", "STRING", "delayed"),
        ("f1", "FLOAT64", 0.5),
    ]
    with pytest.raises(ValueError, match="json"):
        reads(typed).stats(StatsQuery(filters={"payload": "x"}))


async def test_get_reads_by_key_only_and_parses_json_and_times(
    client: FakeClient, store: BigQueryStore, typed: Dataset
) -> None:
    stamp = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    first = ("ev-1", "LA1", "landed", stamp, None, None, 5, None, None, 0.5, True)
    client.rows = [
        rows(
            (*first, '{"a":[1,2]}', None, '{"terminal":"B"}'),
            (*first[:2], "boarding", *first[3:], "null", None, None),  # a later duplicate
        )
    ]

    got = await store.get(typed, "ev-1")

    assert got is not None
    assert got["event_time"] == stamp
    assert got["event_time"].utcoffset() == timedelta(0)
    assert (got["payload"], got["extra"], got["status"]) == (
        {"a": [1, 2]},
        {"terminal": "B"},
        "landed",
    )
    assert set(got) == {*typed.field_names, "extra"}
    [(statement, job_config)] = client.queries
    assert statement.endswith(
        f"FROM {FLIGHTS} WHERE `id` IN UNNEST(@ids) ORDER BY `_stored_at` ASC"
    )
    [param] = job_config.query_parameters
    assert isinstance(param, bigquery.ArrayQueryParameter)
    assert (param.array_type, param.values) == ("STRING", ["ev-1"])
    assert job_config.labels["slipstream_op"] == "get"
    assert await store.get(typed, "unknown") is None


async def test_quarantine_reads_release_and_expire(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    client.rows = [rows(("q-1", "bad", "{}", T0)), rows(("q-2", "worse", "[", T0))]
    client.affected = [2, 7]

    page = await store.quarantined(flights, QuarantineQuery(limit=5, after=(T0, "q-0")))
    chosen = await store.quarantined_by_id(flights, ["q-2", "nope"], limit=10)
    released = await store.release_quarantined(flights, ["q-1", "q-2", "nope"])
    expired = await store.expire(flights, T0)

    assert [(q.id, q.received_at) for q in page] == [("q-1", T0)]
    assert [q.id for q in chosen] == ["q-2"]
    assert (released, expired) == (2, 7)
    statements = [s for s, _ in client.queries]
    quarantine = "`my-project`.`events`.`flights__quarantine`"
    assert statements[0] == (
        f"SELECT `id`, `reason`, `raw`, `received_at` FROM {quarantine} WHERE "
        "`received_at` >= @after_time AND (`received_at` > @after_time OR `id` > @after_key) "
        "ORDER BY `received_at` ASC, `id` ASC LIMIT 5"
    )
    assert statements[1].endswith(
        "WHERE `id` IN UNNEST(@ids) ORDER BY `received_at` ASC, `id` ASC LIMIT 10"
    )
    assert statements[2] == f"DELETE FROM {quarantine} WHERE `id` IN UNNEST(@ids)"
    assert statements[3] == f"DELETE FROM {FLIGHTS} WHERE `event_time` < @before"
    assert params_of(client.queries[3][1].query_parameters) == [("before", "TIMESTAMP", T0)]
    assert await store.quarantined_by_id(flights, [], limit=10) == []
    assert await store.release_quarantined(flights, []) == 0
    assert len(client.queries) == 4


async def test_summary(client: FakeClient, store: BigQueryStore, flights: Dataset) -> None:
    client.rows = [rows((0, 0, None, None)), rows((5, 2, T0, T0 + timedelta(hours=1)))]

    empty = await store.summary(flights, exclude_key_prefix="probe-")
    full = await store.summary(flights, exclude_key_prefix="probe-")

    assert (empty.rows, empty.quarantined, empty.newest_event_time) == (0, 0, None)
    assert (full.rows, full.quarantined) == (5, 2)
    assert (full.newest_event_time, full.last_stored_at) == (T0, T0 + timedelta(hours=1))
    rows_sql = f"{FLIGHTS} WHERE NOT STARTS_WITH(`id`, @prefix)"
    assert client.queries[0][0] == (
        f"SELECT (SELECT COUNT(*) FROM {rows_sql}), "
        "(SELECT COUNT(*) FROM `my-project`.`events`.`flights__quarantine`), "
        f"(SELECT MAX(`event_time`) FROM {rows_sql}), (SELECT MAX(`_stored_at`) FROM {rows_sql})"
    )


async def test_reads_and_ping_turn_outages_into_backend_unavailable(
    client: FakeClient, store: BigQueryStore, flights: Dataset
) -> None:
    client.errors["query_and_wait"] = gexc.ServiceUnavailable("down")
    with pytest.raises(BackendUnavailable, match=r"my-project\.events"):
        await store.list(flights, ListQuery())

    client.errors["query_and_wait"] = job_error("invalidQuery")
    with pytest.raises(gexc.BadRequest):  # a wrong query is a bug, not an outage
        await store.list(flights, ListQuery())

    await store.ping()
    client.errors["get_dataset"] = gexc.Forbidden("no access")
    with pytest.raises(BackendUnavailable, match="Forbidden"):
        await store.ping()


async def test_missing_credentials_say_so(flights: Dataset) -> None:
    def no_credentials(target: tables.Target) -> bigquery.Client:
        raise DefaultCredentialsError("Your default credentials were not found.")

    store = BigQueryStore(TARGET, client_factory=no_credentials)

    with pytest.raises(BackendUnavailable, match="no Google credentials for BigQuery"):
        await store.open([flights])
    with pytest.raises(TransientStoreError, match="no Google credentials"):
        await store.write(flights, decode(flights, event(1)), [])
    await store.close()


def test_an_excluded_key_prefix_is_a_parameter_of_lists_stats_and_counts_not_get(
    typed: Dataset,
) -> None:
    # A prefix test of the key column: no JSON lookup, and reads by id still find the event.
    marker = "NOT STARTS_WITH(`id`, @prefix)"
    prefixed = {"status": "landed"}
    listed = reads(typed).list(ListQuery(filters=prefixed, exclude_key_prefix="probe-"))
    stats = reads(typed).stats(StatsQuery(group_by="status", exclude_key_prefix="probe-"))
    summary = reads(typed).summary("probe-")
    by_id = reads(typed).get(["probe-1"])

    assert marker in listed.sql
    assert marker in stats.sql
    assert summary.sql.count(marker) == 3
    assert ("prefix", "STRING", "probe-") in params_of(sql.query_parameters(summary))
    assert "STARTS_WITH" not in by_id.sql
    assert "STARTS_WITH" not in reads(typed).list(ListQuery()).sql
    assert "STARTS_WITH" not in reads(typed).summary(None).sql
