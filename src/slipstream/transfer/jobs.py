"""Imports the server runs (`POST /v1/datasets/{ds}/imports`): the same import as `slipstream
import`, from `s3://` and `https://` sources only (a key must not read the server's own files),
each on a thread of its own with its own broker connection, so the API's event loop never
reads a file.

A job lives in the process that started it: its progress is asked of that process, and a
restart ends it (run it again: the ids make that harmless). At most MAX_RUNNING run at once;
the last MAX_KEPT are kept to be asked about.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from slipstream.brokers import create_broker
from slipstream.config import Settings
from slipstream.datasets import DatasetError
from slipstream.errors import BackendUnavailable, ConfigError, MessageTooLarge
from slipstream.transfer.importer import Checkpoint, Destination, Importer, Tally
from slipstream.transfer.readers import UnreadableFile
from slipstream.transfer.sources import sources

log = logging.getLogger("slipstream.imports")
MAX_RUNNING = 2
MAX_KEPT = 100
REMOTE = ("s3://", "https://", "http://")
EXPECTED = (ConfigError, UnreadableFile, DatasetError, BackendUnavailable, MessageTooLarge)


class Busy(Exception):
    """As many imports as may run at once are running."""


@dataclass
class ImportJob:
    id: str
    dataset: str
    sources: list[str]
    max_backlog: int
    status: Literal["running", "done", "failed"] = "running"
    tally: Tally = field(default_factory=Tally)
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        tally = self.tally
        return {
            "id": self.id,
            "dataset": self.dataset,
            "sources": self.sources,
            "status": self.status,
            "files": tally.files,
            "events": tally.read,
            "accepted": tally.accepted,
            "refused": tally.refused,
            "refusals": list(tally.refusals),
            "left_out": list(tally.left_out),
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def local_sources(names: list[str]) -> list[str]:
    """The sources a server-side import refuses: anything not on S3 or behind HTTP(S)."""
    return [name for name in names if not name.startswith(REMOTE)]


class ImportJobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jobs: OrderedDict[str, ImportJob] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, dataset: str, names: list[str], max_backlog: int) -> ImportJob:
        """A new job, running; Busy when MAX_RUNNING are."""
        with self._lock:
            if sum(job.status == "running" for job in self._jobs.values()) >= MAX_RUNNING:
                raise Busy(f"{MAX_RUNNING} imports are running")
            job = ImportJob(str(uuid.uuid4()), dataset, names, max_backlog)
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_KEPT:
                self._jobs.popitem(last=False)
        threading.Thread(
            target=self._run, args=(job,), name=f"import-{job.id}", daemon=True
        ).start()
        return job

    def get(self, dataset: str, job_id: str) -> ImportJob | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.dataset == dataset else None

    def _run(self, job: ImportJob) -> None:
        try:
            asyncio.run(self._import(job))
            job.status = "done"
        except EXPECTED as exc:
            job.error, job.status = str(exc), "failed"
        except Exception as exc:  # a job's bug must not pass silently: logged, and said
            log.exception("import %s failed", job.id)
            job.error, job.status = f"{type(exc).__name__}: {exc}", "failed"
        finally:
            job.finished_at = datetime.now(UTC)

    async def _import(self, job: ImportJob) -> None:
        importer = Importer(self.settings, job.dataset, Checkpoint(None), job.max_backlog)
        importer.tally = job.tally  # its progress, as it goes
        with ExitStack() as downloads:
            files = list(sources(job.sources, downloads))
            broker: Destination = create_broker(self.settings)
            await broker.open([job.dataset])
            try:
                await importer.run(files, broker)
            finally:
                await broker.close()
