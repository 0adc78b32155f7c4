"""BigQuery, `bigquery://PROJECT/DATASET[?location=EU]`: a partitioned table per dataset.

The client library is synchronous; every call runs on the store's own thread pool, and the
client is made on first use. A write loads the batch as Parquet into a staging table that
expires by itself, MERGEs it into the dataset's table (inserting only ids not stored yet) and
drops the staging table. docs/backends/bigquery.md tells the whole story: resources, the MERGE
and its cost, the limits of its idempotence, IAM, and what the tests do and do not cover.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud import bigquery

from slipstream.datasets import Dataset, schema_changes
from slipstream.errors import BackendUnavailable, ConfigError, TransientStoreError
from slipstream.events import EventRows, Rejected
from slipstream.options import BackendOptions
from slipstream.stores import (
    DatasetSummary,
    ListQuery,
    QuarantinedEvent,
    QuarantineQuery,
    StatsQuery,
    StoreSettings,
    WriteResult,
    summary_of,
)
from slipstream.stores import bigquery_schema as tables
from slipstream.stores import bigquery_sql as sql
from slipstream.stores.coalesce import Coalescer
from slipstream.stores.dialects import BIGQUERY
from slipstream.stores.reads import Bound, Reads, reads_for

T = TypeVar("T")
log = logging.getLogger("slipstream.stores.bigquery")

THREADS = 8
STAGING_TTL = timedelta(hours=1)  # a staging table left by a crash disappears by itself
WRITE_TIMEOUT = 300.0  # seconds a load or MERGE job may take before the batch is retried
READ_TIMEOUT = 60.0
PING_TIMEOUT = 5.0
MIGRATE_ATTEMPTS = 3  # schema updates race other processes opening the same table (etag)
ClientFactory = Callable[[tables.Target], bigquery.Client]


def default_client(target: tables.Target) -> bigquery.Client:
    """Application Default Credentials; jobs run in the URL's location, if it names one."""
    return bigquery.Client(project=target.project, location=target.location)


class BigQueryStore:
    url_options: ClassVar[type[BackendOptions]] = tables.BigQueryOptions

    def __init__(
        self,
        target: tables.Target,
        *,
        create_resources: bool = True,
        client_factory: ClientFactory = default_client,
    ) -> None:
        self.target = target
        self._create = create_resources
        self._factory = client_factory
        self._client: bigquery.Client | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="bigquery")
        self._lookups: dict[str, Coalescer[str, dict[str, Any]]] = {}
        self._reads: dict[str, Reads] = {}

    @classmethod
    def from_url(cls, url: str, settings: StoreSettings) -> BigQueryStore:
        return cls(tables.parse_url(url), create_resources=settings.create_resources)

    # --- plumbing ---------------------------------------------------------------------------

    def client(self) -> bigquery.Client:
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._factory(self.target)
                except auth_exc.DefaultCredentialsError as exc:
                    raise BackendUnavailable(f"no Google credentials for BigQuery: {exc}") from exc
            return self._client

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, fn, *args)
        except RuntimeError as exc:  # the pool was shut down
            raise BackendUnavailable("the BigQuery store is closed") from exc
        return await future

    async def _read(self, fn: Callable[[], T]) -> T:
        try:
            return await self._run(fn)
        except BackendUnavailable:
            raise
        except Exception as exc:
            if tables.is_unavailable(exc) or isinstance(exc, gexc.NotFound):
                raise BackendUnavailable(f"BigQuery {self._where}: {exc}") from exc
            raise

    @property
    def _where(self) -> str:
        return f"{self.target.project}.{self.target.dataset}"

    def _config(self, op: str, dataset: Dataset, params: list[Any]) -> bigquery.QueryJobConfig:
        # Labels let billing exports and INFORMATION_SCHEMA.JOBS split cost by dataset and kind.
        labels = {"app": "slipstream", "slipstream_dataset": dataset.name, "slipstream_op": op}
        return bigquery.QueryJobConfig(query_parameters=params, labels=labels)

    def _rows(self, op: str, dataset: Dataset, bound: Bound) -> list[Any]:
        config = self._config(op, dataset, sql.query_parameters(bound))
        result = self.client().query_and_wait(
            bound.sql, job_config=config, wait_timeout=READ_TIMEOUT
        )
        return list(result)

    def _dml(self, op: str, dataset: Dataset, statement: str, params: list[Any]) -> int:
        job = self.client().query(statement, job_config=self._config(op, dataset, params))
        job.result(timeout=WRITE_TIMEOUT)
        return int(job.num_dml_affected_rows or 0)

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self, datasets: Sequence[Dataset]) -> None:
        try:
            await self._run(self._open, list(datasets))
        except Exception as exc:
            if tables.is_unavailable(exc):
                raise BackendUnavailable(f"BigQuery {self._where}: {exc}") from exc
            raise

    def _open(self, datasets: list[Dataset]) -> None:
        self._ensure_dataset()
        for dataset in datasets:
            self._ensure_table(dataset)
            self._ensure_quarantine(dataset)

    def _ensure_dataset(self) -> None:
        client = self.client()
        ref = f"{self.target.project}.{self.target.dataset}"
        try:
            found = client.get_dataset(ref)
        except gexc.NotFound:
            if not self._create:
                raise ConfigError(
                    f"BigQuery dataset {ref} does not exist and SLIPSTREAM_CREATE_RESOURCES is off"
                ) from None
            made = bigquery.Dataset(ref)
            if self.target.location:
                made.location = self.target.location
            made.description = "Slipstream event tables"
            found = client.create_dataset(made, exists_ok=True)
        wanted = self.target.location
        if wanted and found.location and found.location.lower() != wanted.lower():
            raise ConfigError(
                f"SLIPSTREAM_STORE_URL asks for location {wanted}, but BigQuery dataset {ref} "
                f"is in {found.location}"
            )

    def _ensure_table(self, dataset: Dataset) -> None:
        client = self.client()
        ref = self.target.ref(dataset.name)
        for _ in range(MIGRATE_ATTEMPTS):
            try:
                table = client.get_table(ref)
            except gexc.NotFound:
                if not self._create:
                    raise ConfigError(
                        f"BigQuery table {ref} does not exist and SLIPSTREAM_CREATE_RESOURCES is off"
                    ) from None
                # exists_ok: another process may create it first; then it is migrated below.
                table = client.create_table(tables.new_table(self.target, dataset), exists_ok=True)
            current = list(table.schema)
            added = schema_changes(dataset, tables.stored_fields(dataset, current))
            columns = tables.added_columns(dataset, current, added)
            if not columns:
                return
            table.schema = current + columns
            try:
                client.update_table(table, ["schema"])
            except gexc.PreconditionFailed:  # changed since we read it: read it again
                continue
            log.info("added %s to %s", ", ".join(c.name for c in columns), ref)
            return
        raise BackendUnavailable(f"BigQuery table {ref} kept changing while being migrated")

    def _ensure_quarantine(self, dataset: Dataset) -> None:
        client = self.client()
        if self._create:
            client.create_table(tables.new_quarantine_table(self.target, dataset), exists_ok=True)
            return
        ref = self.target.ref(tables.quarantine_name(dataset))
        try:
            client.get_table(ref)
        except gexc.NotFound:
            raise ConfigError(
                f"BigQuery table {ref} does not exist and SLIPSTREAM_CREATE_RESOURCES is off"
            ) from None

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            if self._client is not None:
                self._client.close()  # type: ignore[no-untyped-call]
                self._client = None

    async def ping(self) -> None:
        ref = f"{self.target.project}.{self.target.dataset}"
        try:
            await self._run(lambda: self.client().get_dataset(ref, timeout=PING_TIMEOUT))
        except BackendUnavailable:
            raise
        except Exception as exc:
            raise BackendUnavailable(f"BigQuery {ref}: {type(exc).__name__}: {exc}") from exc

    # --- writes -----------------------------------------------------------------------------

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        if not rows.rows and not rejected:
            return WriteResult(0, 0)
        try:
            return await self._run(self._write, dataset, rows, list(rejected))
        except BackendUnavailable as exc:
            raise TransientStoreError(str(exc)) from exc
        except Exception as exc:
            raise tables.sort_error(dataset, exc) from exc

    def _write(self, dataset: Dataset, rows: EventRows, rejected: list[Rejected]) -> WriteResult:
        # Two statements, each atomic and each idempotent: if the second fails, the batch is
        # redelivered and the first adds nothing the second time.
        inserted = quarantined = 0
        if rows.rows:
            batch = tables.rows_batch(dataset, rows)
            inserted = self._merge(
                dataset,
                dataset.name,
                tables.staging_schema(dataset),
                batch,
                lambda staging: sql.merge_rows(self.target, dataset, staging),
            )
        if rejected:
            table = tables.quarantine_name(dataset)
            quarantined = self._merge(
                dataset,
                table,
                tables.quarantine_schema(),
                tables.quarantine_batch(rejected),
                lambda staging: sql.merge_quarantine(self.target, dataset, staging),
            )
        return WriteResult(inserted, quarantined)

    def _merge(
        self,
        dataset: Dataset,
        table: str,
        columns: list[bigquery.SchemaField],
        batch: tables.Batch,
        statement: Callable[[str], str],
    ) -> int:
        """Load `batch` into a fresh staging table, MERGE it, drop the staging table."""
        client = self.client()
        staging = tables.staging_name(table, uuid.uuid4().hex)
        ref = self.target.ref(staging)
        try:
            made = bigquery.Table(ref, schema=columns)
            made.expires = datetime.now(UTC) + STAGING_TTL
            client.create_table(made)
            load = client.load_table_from_file(
                io.BytesIO(batch.parquet), ref, job_config=load_config(columns)
            )
            load.result(timeout=WRITE_TIMEOUT)
            return self._dml("merge", dataset, statement(staging), batch.params)
        finally:
            try:
                client.delete_table(ref, not_found_ok=True)
            except Exception as exc:  # it expires on its own within STAGING_TTL
                log.warning("could not drop staging table %s: %s", ref, exc)

    async def _delete(self, op: str, dataset: Dataset, bound: Bound) -> int:
        params = sql.query_parameters(bound)
        return await self._read(lambda: self._dml(op, dataset, bound.sql, params))

    async def release_quarantined(self, dataset: Dataset, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return await self._delete("release", dataset, self._reads_for(dataset).release(ids))

    async def expire(self, dataset: Dataset, before: datetime) -> int:
        return await self._delete("expire", dataset, self._reads_for(dataset).expire(before))

    # --- reads ------------------------------------------------------------------------------

    def _reads_for(self, dataset: Dataset) -> Reads:
        return reads_for(self._reads, BIGQUERY, dataset, (self.target.project, self.target.dataset))

    async def _fetch(self, op: str, dataset: Dataset, bound: Bound) -> list[Any]:
        return await self._read(lambda: self._rows(op, dataset, bound))

    async def get(self, dataset: Dataset, event_id: str) -> dict[str, Any] | None:
        lookups = self._lookups.get(dataset.name)
        if lookups is None:
            lookups = self._lookups[dataset.name] = Coalescer(self._fetcher(dataset))
        return await lookups.get(event_id)

    def _fetcher(
        self, dataset: Dataset
    ) -> Callable[[list[str]], Awaitable[dict[str, dict[str, Any]]]]:
        reads = self._reads_for(dataset)
        key = reads.key_index

        async def fetch(ids: list[str]) -> dict[str, dict[str, Any]]:
            rows = await self._fetch("get", dataset, reads.get(ids))
            found: dict[str, dict[str, Any]] = {}
            for row in rows:  # oldest write first: the first row of an id is the one kept
                if row[key] not in found:
                    found[row[key]] = reads.event(row)
            return found

        return fetch

    async def stats(self, dataset: Dataset, query: StatsQuery) -> list[dict[str, Any]]:
        reads = self._reads_for(dataset)
        bound = reads.stats(query)
        rows = await self._fetch("stats", dataset, bound)
        return [reads.stats_row(query, bound, row) for row in rows]

    async def quarantined(self, dataset: Dataset, query: QuarantineQuery) -> list[QuarantinedEvent]:
        bound = self._reads_for(dataset).quarantine(query.after, None, query.limit)
        return [Reads.quarantined(row) for row in await self._fetch("quarantine", dataset, bound)]

    async def quarantined_by_id(
        self, dataset: Dataset, ids: Sequence[str] | None, limit: int
    ) -> list[QuarantinedEvent]:
        if ids is not None and not ids:
            return []
        bound = self._reads_for(dataset).quarantine(None, ids, limit)
        return [Reads.quarantined(row) for row in await self._fetch("quarantine", dataset, bound)]

    async def summary(
        self, dataset: Dataset, *, exclude_key_prefix: str | None = None
    ) -> DatasetSummary:
        bound = self._reads_for(dataset).summary(exclude_key_prefix)
        return summary_of(*(await self._fetch("summary", dataset, bound))[0])

    # Last in the class: below this, `list` would name the method in annotations.
    async def list(self, dataset: Dataset, query: ListQuery) -> list[dict[str, Any]]:
        reads = self._reads_for(dataset)
        rows = await self._fetch("list", dataset, reads.list(query))
        return [reads.event(row) for row in rows]


def load_config(schema: list[bigquery.SchemaField]) -> bigquery.LoadJobConfig:
    """Parquet into the empty staging table made just before: WRITE_EMPTY refuses to load a
    batch twice into the same table, CREATE_NEVER to make one without the expiration."""
    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        schema=schema,
        write_disposition=bigquery.WriteDisposition.WRITE_EMPTY,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
    )
